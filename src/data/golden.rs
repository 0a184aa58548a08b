//! Golden tests against the reference implementations (`shared/fixtures`) and acceptance
//! figures on the real corpora (`shared/data`). Each fixture test checks every case and
//! reports every mismatch.

use std::path::{Path, PathBuf};

use serde_json::Value;

use super::audit::{boundary_cues, CuePosition};
use super::config::DatasetConfig;
use super::conll::{read_conll, ConllOptions};
use super::corpus::{Corpus, Sentence};
use super::hub::{repo_cache_dir, HubEnv};
use super::numpy_rng::{seed_words, NumpyRng, Pcg64State, SeedSequence};
use super::records::{OnError, Skipped};
use super::scheme::{convert, Scheme};
use super::split::{fold_manifests, index_hash, split_corpus, train_test_split, SplitConfig, SplitSize};
use super::words::{covered_words, split_words, words_and_spans, CharSpan};

fn shared() -> PathBuf {
    std::env::var_os("NERGRID_SHARED")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared"))
}

fn fixture(name: &str) -> Vec<Value> {
    let path = shared().join("fixtures").join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    text.lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

/// Collects mismatches and fails once with all of them.
#[derive(Default)]
struct Mismatches(Vec<String>);

impl Mismatches {
    fn check<T: PartialEq + std::fmt::Debug>(&mut self, case: &str, what: &str, got: T, want: T) {
        if got != want {
            self.0.push(format!("{case}: {what}: got {got:?}, want {want:?}"));
        }
    }

    fn assert_none(self, cases: usize) {
        let shown: Vec<_> = self.0.iter().take(30).cloned().collect();
        assert!(self.0.is_empty(), "{} mismatches over {cases} cases:\n{}", self.0.len(), shown.join("\n"));
    }
}

fn u64s(value: &Value) -> Vec<u64> {
    value.as_array().unwrap().iter().map(|v| v.as_u64().unwrap()).collect()
}

fn usizes(value: &Value) -> Vec<usize> {
    u64s(value).into_iter().map(|v| v as usize).collect()
}

fn hex128(value: &Value) -> u128 {
    u128::from_str_radix(value.as_str().unwrap().trim_start_matches("0x"), 16).unwrap()
}

/// The state fields numpy reports, `uinteger` only when the buffer is full.
fn state_view(state: Pcg64State) -> (u128, u128, bool, Option<u32>) {
    (state.state, state.inc, state.has_uint32, state.has_uint32.then_some(state.uinteger))
}

fn expected_state(value: &Value) -> (u128, u128, bool, Option<u32>) {
    let has = value["has_uint32"].as_u64().unwrap() == 1;
    let uinteger = value["uinteger"].as_u64().unwrap() as u32;
    (hex128(&value["state_hex"]), hex128(&value["inc_hex"]), has, has.then_some(uinteger))
}

#[test]
fn numpy_rng_cases_match_step_by_step() {
    let cases = fixture("numpy_rng_cases.jsonl");
    let mut m = Mismatches::default();
    for case in &cases {
        let id = case["id"].as_str().unwrap();
        let seed = hex128(&case["seed_hex"]);
        let entropy: Vec<u32> = u64s(&case["entropy_uint32"]).into_iter().map(|v| v as u32).collect();
        m.check(id, "entropy", seed_words(seed), entropy);
        let seq = SeedSequence::from_seed(seed);
        let pool: Vec<u32> = u64s(&case["seedseq_pool_uint32"]).into_iter().map(|v| v as u32).collect();
        m.check(id, "pool", seq.pool().to_vec(), pool);
        let words: Vec<u64> = seq.generate_state_u32(8).into_iter().map(u64::from).collect();
        m.check(id, "generate_state u32", words, u64s(&case["generate_state_uint32_8"]));
        m.check(id, "generate_state u64", seq.generate_state_u64(4), u64s(&case["generate_state_uint64_4"]));
        let fresh = || NumpyRng::from_seed_sequence(&seq);
        m.check(id, "seeded", state_view(fresh().state()), expected_state(&case["pcg64_state_after_seeding"]));
        check_raw_draws(&mut m, id, case, &fresh);
        check_integers(&mut m, id, case, &fresh);
        check_permutations(&mut m, id, case, &fresh);
        check_shared_buffer(&mut m, id, &case["shared_buffer_example"], fresh());
    }
    m.assert_none(cases.len());
}

fn check_raw_draws(m: &mut Mismatches, id: &str, case: &Value, fresh: &dyn Fn() -> NumpyRng) {
    let mut rng = fresh();
    let raw: Vec<u64> = (0..20).map(|_| rng.next64()).collect();
    m.check(id, "random_raw", raw, u64s(&case["random_raw_20"]));
    m.check(id, "after raw", state_view(rng.state()), expected_state(&case["state_after_random_raw_20"]));
    for count in [20, 21] {
        let mut rng = fresh();
        let draws: Vec<u64> = (0..count).map(|_| u64::from(rng.next32())).collect();
        m.check(id, &format!("next32 x{count}"), draws, u64s(&case[format!("next_uint32_{count}")]));
        let after = expected_state(&case[format!("state_after_next_uint32_{count}")]);
        m.check(id, &format!("after next32 x{count}"), state_view(rng.state()), after);
    }
}

fn check_integers(m: &mut Mismatches, id: &str, case: &Value, fresh: &dyn Fn() -> NumpyRng) {
    for spec in case["integers"].as_array().unwrap() {
        let (low, high) = (spec["low"].as_i64().unwrap(), spec["high"].as_i64().unwrap());
        let size = spec["size"].as_u64().unwrap() as usize;
        let what = format!("integers({low}, {high})");
        let mut rng = fresh();
        let values: Vec<i64> = spec["values"].as_array().unwrap().iter().map(|v| v.as_i64().unwrap()).collect();
        m.check(id, &what, rng.integers(low, high, size), values);
        m.check(id, &format!("after {what}"), state_view(rng.state()), expected_state(&spec["state_after"]));
    }
}

fn check_permutations(m: &mut Mismatches, id: &str, case: &Value, fresh: &dyn Fn() -> NumpyRng) {
    for spec in case["permutations"].as_array().unwrap() {
        let n = spec["n"].as_u64().unwrap() as usize;
        let mut rng = fresh();
        m.check(id, &format!("permutation({n})"), rng.permutation(n), usizes(&spec["perm"]));
        m.check(id, &format!("after permutation({n})"), state_view(rng.state()), expected_state(&spec["state_after"]));
    }
}

fn check_shared_buffer(m: &mut Mismatches, id: &str, example: &Value, mut rng: NumpyRng) {
    let integers: Vec<i64> = example["integers"].as_array().unwrap().iter().map(|v| v.as_i64().unwrap()).collect();
    m.check(id, "shared integers", rng.integers(0, 10, 3), integers);
    m.check(id, "shared between", state_view(rng.state()), expected_state(&example["state_between"]));
    m.check(id, "shared permutation", rng.permutation(10), usizes(&example["perm"]));
    m.check(id, "shared after", state_view(rng.state()), expected_state(&example["state_after"]));
}

/// Compares an index list with a fixture: the full list when given, else length, hash, ends.
fn check_list(m: &mut Mismatches, id: &str, name: &str, got: &[usize], case: &Value) {
    let field = |suffix: &str| &case[format!("{name}_{suffix}")];
    if case[name].is_array() {
        m.check(id, name, got.to_vec(), usizes(&case[name]));
        return;
    }
    m.check(id, &format!("{name} length"), got.len() as u64, field("len").as_u64().unwrap());
    let hash = field("sha256_json").as_str().unwrap().to_string();
    m.check(id, &format!("{name} sha256"), index_hash(got), hash);
    m.check(id, &format!("{name} head"), got.iter().take(20).copied().collect(), usizes(field("head20")));
    let tail: Vec<usize> = got[got.len().saturating_sub(20)..].to_vec();
    m.check(id, &format!("{name} tail"), tail, usizes(field("tail20")));
}

#[test]
fn numpy_permutation_cases_match() {
    let cases = fixture("numpy_permutation_cases.jsonl");
    let mut m = Mismatches::default();
    for case in &cases {
        let id = case["id"].as_str().unwrap();
        let n = case["n"].as_u64().unwrap() as usize;
        let mut rng = NumpyRng::new(u128::from(case["seed"].as_u64().unwrap()));
        let permutation = rng.permutation(n);
        check_list(&mut m, id, "perm", &permutation, case);
        m.check(id, "state after", state_view(rng.state()), expected_state(&case["bitgen_state_after"]));
    }
    m.assert_none(cases.len());
}

fn split_size(case: &Value) -> SplitSize {
    match case["test_size_type"].as_str().unwrap() {
        "int" => SplitSize::Count(case["test_size"].as_u64().unwrap() as usize),
        _ => SplitSize::Fraction(case["test_size"].as_f64().unwrap()),
    }
}

/// A corpus of `n` one-word sentences, without splits of its own.
fn plain_corpus(n: usize) -> Corpus {
    Corpus { sentences: vec![Sentence { words: vec!["w".into()], entities: vec![], text: None }; n], predefined: None }
}

fn kfold_rule(case: &Value) -> SplitConfig {
    let validation = match case["validation_type"].as_str() {
        Some("int") => Some(SplitSize::Count(case["validation"].as_u64().unwrap() as usize)),
        Some(_) => Some(SplitSize::Fraction(case["validation"].as_f64().unwrap())),
        None => None,
    };
    let folds = Some(case["folds_k"].as_u64().unwrap() as usize);
    SplitConfig { test: None, validation, seed: case["seed"].as_u64().unwrap(), folds }
}

#[test]
fn kfold_cases_match() {
    let cases = fixture("kfold_cases.jsonl");
    let mut m = Mismatches::default();
    for case in &cases {
        let id = case["id"].as_str().unwrap();
        let (n, rule) = (case["n"].as_u64().unwrap() as usize, kfold_rule(case));
        let manifests = match fold_manifests(&plain_corpus(n), &rule) {
            Ok(manifests) => manifests,
            Err(e) => {
                m.0.push(format!("{id}: k-fold failed with {e}"));
                continue;
            }
        };
        let want = case["folds"].as_array().unwrap();
        m.check(id, "number of folds", manifests.len(), want.len());
        for (i, (got, want)) in manifests.iter().zip(want).enumerate() {
            let at = format!("{id} fold {i}");
            m.check(&at, "test", got.test.clone(), usizes(&want["test"]));
            let (train, validation) = match want.get("train") {
                Some(train) => (usizes(train), usizes(&want["validation"])),
                None => (usizes(&want["train_part"]), Vec::new()),
            };
            m.check(&at, "train", got.train.clone(), train);
            m.check(&at, "validation", got.validation.clone(), validation);
        }
    }
    m.assert_none(cases.len());
}

#[test]
fn hf_split_cases_match() {
    let cases = fixture("hf_split_cases.jsonl");
    let mut m = Mismatches::default();
    for case in &cases {
        let id = case["id"].as_str().unwrap();
        let n = case["n"].as_u64().unwrap() as usize;
        let result = train_test_split(n, split_size(case), case["seed"].as_u64().unwrap());
        match (result, case["error"].as_str()) {
            (Err(_), Some(_)) => {}
            (Ok(_), Some(error)) => m.0.push(format!("{id}: split succeeded, datasets raised {error}")),
            (Err(e), None) => m.0.push(format!("{id}: split failed with {e}")),
            (Ok((train, test)), None) => {
                m.check(id, "n_train", train.len() as u64, case["n_train"].as_u64().unwrap());
                m.check(id, "n_test", test.len() as u64, case["n_test"].as_u64().unwrap());
                check_list(&mut m, id, "train", &train, case);
                check_list(&mut m, id, "test", &test, case);
            }
        }
    }
    m.assert_none(cases.len());
}

#[test]
fn bio_bioes_conversion_cases_match() {
    let cases = fixture("bio_bioes_conversion.jsonl");
    let mut m = Mismatches::default();
    for case in &cases {
        let id = case["id"].as_str().unwrap();
        let text = case["text"].as_str().unwrap();
        let spans: Vec<CharSpan> = case["entities"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| CharSpan {
                kind: e["type"].as_str().unwrap().to_string(),
                start: e["start"].as_i64().unwrap(),
                end: e["end"].as_i64().unwrap(),
            })
            .collect();
        let (words, entities) = words_and_spans(text, &spans);
        let want_words: Vec<String> = serde_json::from_value(case["words"].clone()).unwrap();
        m.check(id, "words", &words, &want_words);
        let offsets: Vec<Vec<usize>> = split_words(text).iter().map(|w| vec![w.start, w.end]).collect();
        let want_offsets: Vec<Vec<usize>> = serde_json::from_value(case["word_offsets_cp"].clone()).unwrap();
        m.check(id, "word offsets", offsets, want_offsets);
        let covered: Vec<Vec<usize>> = spans
            .iter()
            .map(|s| covered_words(&split_words(text), s).map_or(vec![], |w| (w.start..w.end).collect()))
            .collect();
        let want_covered: Vec<Vec<usize>> = serde_json::from_value(case["covered_word_indices"].clone()).unwrap();
        m.check(id, "covered words", covered, want_covered);
        let corpus = Corpus { sentences: vec![Sentence { words, entities, text: None }], predefined: None };
        for (scheme, field) in [(Scheme::Bio, "bio"), (Scheme::Bioes, "bioes")] {
            let want: Vec<String> = serde_json::from_value(case[field].clone()).unwrap();
            m.check(id, field, &corpus.tagged(scheme)[0].tags, &want);
        }
    }
    m.assert_none(cases.len());
}

fn swedish(name: &str) -> PathBuf {
    shared().join("data/swedish-medical-ner").join(name)
}

fn load(config: &DatasetConfig) -> Corpus {
    config.load(Path::new("/")).unwrap().corpus
}

fn split_fixture(id: &str) -> Value {
    fixture("hf_split_cases.jsonl").into_iter().find(|c| c["id"] == id).unwrap_or_else(|| panic!("no fixture {id}"))
}

#[test]
fn hub_1177_table_splits_like_the_python_pipeline() {
    let corpus = load(&DatasetConfig::from_path(swedish("1177-hub.parquet"), None));
    assert_eq!(corpus.sentences.len(), 927);
    assert_eq!(corpus.entity_total(), 1082);
    let cfg = SplitConfig {
        test: Some(SplitSize::Fraction(0.2)),
        validation: Some(SplitSize::Fraction(0.1)),
        seed: 67,
        folds: None,
    };
    let manifest = split_corpus(&corpus, &cfg).unwrap();
    let sizes = (manifest.train.len(), manifest.validation.len(), manifest.test.len());
    assert_eq!(sizes, (666, 75, 186));
    let first = split_fixture("split-n927-s67-t0.2");
    let second = split_fixture("split-n741-s67-t0.1");
    let first_train = usizes(&first["train"]);
    let mapped = |key: &str| -> Vec<usize> { usizes(&second[key]).iter().map(|&i| first_train[i]).collect() };
    assert_eq!(manifest.test, usizes(&first["test"]));
    assert_eq!(manifest.validation, mapped("test"));
    assert_eq!(manifest.train, mapped("train"));
}

#[test]
fn hub_dataset_reads_offline_from_a_standard_cache() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("hub");
    let repo_dir = repo_cache_dir(&cache, "community-datasets/swedish_medical_ner");
    let commit = "637834ee9f899513f6d1382b8057c03a724f2fc8";
    let snapshot = repo_dir.join("snapshots").join(commit).join("1177");
    std::fs::create_dir_all(&snapshot).unwrap();
    std::fs::create_dir_all(repo_dir.join("refs")).unwrap();
    std::fs::write(repo_dir.join("refs/main"), commit).unwrap();
    std::fs::copy(swedish("1177-hub.parquet"), snapshot.join("train-00000-of-00001.parquet")).unwrap();
    // An unroutable endpoint: any network access would fail the test.
    let env = HubEnv { cache_dir: cache, token: None, offline: true, endpoint: Some("http://127.0.0.1:9".into()) };
    let config = DatasetConfig::from_hub("community-datasets/swedish_medical_ner", Some("1177"), None);
    let corpus = config.load_with_hub(dir.path(), &env).unwrap().corpus;
    assert!(corpus.predefined.is_none());
    assert_eq!(corpus, load(&DatasetConfig::from_path(swedish("1177-hub.parquet"), None)));
    let other = DatasetConfig::from_hub("community-datasets/swedish_medical_ner", Some("wiki"), None);
    let error = other.load_with_hub(dir.path(), &env).unwrap_err().to_string();
    assert!(error.contains("no parquet files of config wiki"), "{error}");
}

fn ncbi() -> DatasetConfig {
    let dir = shared().join("data/ncbi-disease");
    DatasetConfig {
        train: Some(dir.join("train.tsv")),
        validation: Some(dir.join("devel.tsv")),
        test: Some(dir.join("test.tsv")),
        ..Default::default()
    }
}

#[test]
fn ncbi_disease_loads_with_its_splits_and_converts_losslessly() {
    let corpus = load(&ncbi());
    let predefined = corpus.predefined.clone().unwrap();
    let splits = [&predefined.train, &predefined.validation, &predefined.test];
    let sentences: Vec<usize> = splits.iter().map(|s| s.len()).collect();
    assert_eq!(sentences, [5432, 923, 940]);
    let entities: Vec<usize> =
        splits.iter().map(|s| s.iter().map(|&i| corpus.sentences[i].entities.len()).sum()).collect();
    assert_eq!(entities, [5145, 787, 960]);
    let mut mismatches = 0;
    for file in ["train.tsv", "devel.tsv", "test.tsv"] {
        let path = shared().join("data/ncbi-disease").join(file);
        let raw = read_conll(&path, &ConllOptions::default(), &mut Skipped::new(OnError::Fail)).unwrap();
        for sentence in &raw {
            let bioes = convert(&sentence.tags, Scheme::Bio, Scheme::Bioes);
            mismatches += usize::from(convert(&bioes, Scheme::Bioes, Scheme::Bio) != sentence.tags);
        }
    }
    assert_eq!(mismatches, 0);
    let tagged = corpus.tagged(Scheme::Bio);
    assert!(tagged.iter().all(|s| s.tags.iter().all(|t| t == "O" || t.ends_with("-Disease"))));
}

#[test]
fn original_bracket_file_loads_without_bracket_tokens() {
    let mut config = DatasetConfig::from_path(swedish("1177_annotated_sentences.txt"), None);
    config.format = Some(super::config::InputFormat::Brackets);
    let corpus = load(&config);
    assert_eq!(corpus.sentences.len(), 927);
    let counts = corpus.entity_counts();
    assert_eq!(corpus.entity_total(), 1138);
    assert_eq!(counts["Disorder and Finding"], 500);
    assert_eq!(counts["Pharmaceutical Drug"], 425);
    assert_eq!(counts["Body Structure"], 213);
    let brackets = ["(", ")", "[", "]", "{", "}"];
    assert!(corpus.sentences.iter().flat_map(|s| &s.words).all(|w| !brackets.contains(&w.as_str())));
    assert_eq!(corpus.sentences.iter().filter(|s| s.entities.is_empty()).count(), 342);
}

#[test]
fn boundary_audit_flags_the_hub_table_and_not_the_original_file() {
    let hub = load(&DatasetConfig::from_path(swedish("1177-hub.parquet"), None));
    let first_words: Vec<(String, String)> = boundary_cues(&hub)
        .into_iter()
        .filter(|c| c.position == CuePosition::First)
        .map(|c| (c.token, c.kind))
        .collect();
    for (token, kind) in [("(", "Disorder and Finding"), ("[", "Pharmaceutical Drug"), ("{", "Body Structure")] {
        assert!(first_words.contains(&(token.to_string(), kind.to_string())), "{token}: {first_words:?}");
    }
    let mut config = DatasetConfig::from_path(swedish("1177_annotated_sentences.txt"), None);
    config.format = Some(super::config::InputFormat::Brackets);
    assert_eq!(boundary_cues(&load(&config)), []);
    assert_eq!(boundary_cues(&load(&ncbi())), []);
}
