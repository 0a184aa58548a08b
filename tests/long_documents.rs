//! Long documents in `nergrid predict`: texts cut into overlapping windows give the
//! token-classification pipeline's entities, offsets and scores for every aggregation strategy
//! (`tests/fixtures/long_documents/pipeline.json`, written by
//! `tests/fixtures/make_long_documents.py` with transformers over a tiny BERT that nergrid
//! trained and exported, 62 text tokens a window); a 2,100-word text is tagged to its end with
//! and without `--stride`; and no input makes `predict` panic.

use assert_cmd::Command;
use candle_core::Device;
use nergrid::model::predict::{Aggregation, Entity, Predictor};
use std::fs;
use std::path::{Path, PathBuf};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

fn model_dir() -> String {
    fixtures().join("long_documents/model").to_string_lossy().into_owned()
}

fn nergrid() -> Command {
    Command::cargo_bin("nergrid").unwrap()
}

#[derive(serde::Deserialize)]
struct Golden {
    texts: Vec<String>,
    cases: Vec<Case>,
}

#[derive(serde::Deserialize)]
struct Case {
    strategy: String,
    stride: Option<usize>,
    text: usize,
    entities: Vec<GoldEntity>,
}

#[derive(Debug, serde::Deserialize)]
struct GoldEntity {
    #[serde(rename = "type")]
    kind: String,
    start: usize,
    end: usize,
    score: f64,
}

fn golden() -> Golden {
    let path = fixtures().join("long_documents/pipeline.json");
    serde_json::from_str(&fs::read_to_string(path).unwrap()).unwrap()
}

fn strategy(name: &str) -> Aggregation {
    match name {
        "none" => Aggregation::None,
        "simple" => Aggregation::Simple,
        "first" => Aggregation::First,
        "average" => Aggregation::Average,
        "max" => Aggregation::Max,
        other => panic!("unknown strategy {other}"),
    }
}

/// Where `ours` differs from the pipeline's entities: types and offsets exactly, scores to 1e-4.
fn difference(ours: &[(String, usize, usize, f64)], want: &[GoldEntity]) -> Option<String> {
    let same = ours.len() == want.len()
        && ours.iter().zip(want).all(|(a, b)| {
            (a.0.as_str(), a.1, a.2) == (b.kind.as_str(), b.start, b.end) && (a.3 - b.score).abs() < 1e-4
        });
    (!same).then(|| format!("ours {ours:?}\n  want {want:?}"))
}

fn tuples(entities: &[Entity]) -> Vec<(String, usize, usize, f64)> {
    entities.iter().map(|e| (e.kind.clone(), e.start, e.end, e.score)).collect()
}

#[test]
fn every_strategy_and_stride_gives_the_pipeline_entities() {
    let golden = golden();
    let texts: Vec<&str> = golden.texts.iter().map(String::as_str).collect();
    let base = Predictor::load(&model_dir(), &Device::Cpu).unwrap();
    assert_eq!(base.window(), 64);
    let mut failures = Vec::new();
    let (mut compared, mut long_texts) = (0, 0);
    for stride in [None, Some(8), Some(32)] {
        let predictor = Predictor::load(&model_dir(), &Device::Cpu).unwrap().with_stride(stride).unwrap();
        for name in ["none", "simple", "first", "average", "max"] {
            let found = predictor.predict_texts(&texts, strategy(name), 4).unwrap();
            for case in golden.cases.iter().filter(|c| c.stride == stride && c.strategy == name) {
                if let Some(d) = difference(&tuples(&found[case.text]), &case.entities) {
                    failures.push(format!("{name} stride {stride:?} text {}:\n  {d}", case.text));
                }
                compared += case.entities.len();
                long_texts += usize::from(texts[case.text].split_whitespace().count() > 150);
            }
        }
    }
    assert!(failures.is_empty(), "{} cases differ:\n{}", failures.len(), failures.join("\n"));
    assert!(compared > 4000, "only {compared} pipeline entities compared");
    assert_eq!(long_texts, 2 * 2 * 5, "the 600-word and the 240-word text, two strides, five strategies");
}

/// `nergrid predict --stride 32 --format jsonl` on the 600-word text, each strategy.
#[test]
fn the_600_word_text_with_stride_32_equals_the_pipeline_through_the_binary() {
    let golden = golden();
    let index = golden.texts.iter().position(|t| t.split_whitespace().count() == 600).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("texts.jsonl");
    fs::write(&file, format!("{}\n", serde_json::json!({ "text": golden.texts[index] }))).unwrap();
    for name in ["none", "simple", "first", "average", "max"] {
        let out = nergrid()
            .args(["predict", "--model", &model_dir(), "--stride", "32", "--aggregation", name])
            .args(["--format", "jsonl", "--file", file.to_str().unwrap()])
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let line: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(line["text"].as_str(), Some(golden.texts[index].as_str()));
        let ours: Vec<(String, usize, usize, f64)> = line["entities"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| {
                let n = |k: &str| e[k].as_u64().unwrap() as usize;
                (e["type"].as_str().unwrap().to_string(), n("start"), n("end"), e["score"].as_f64().unwrap())
            })
            .collect();
        let case = golden.cases.iter().find(|c| c.stride == Some(32) && c.strategy == name && c.text == index);
        let want = &case.unwrap().entities;
        assert!(want.len() > 100, "{name}: {} entities", want.len());
        if let Some(d) = difference(&ours, want) {
            panic!("{name}: {d}");
        }
    }
}

/// Entities of `nergrid predict --aggregation A [--stride N] TEXT` (text format): type, start, text.
fn predicted(text: &str, aggregation: &str, stride: Option<&str>) -> Vec<(String, usize, String)> {
    let mut cmd = nergrid();
    cmd.args(["predict", "--model", &model_dir(), "--aggregation", aggregation, text]);
    if let Some(s) = stride {
        cmd.args(["--stride", s]);
    }
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8(out.stdout).unwrap();
    let fields = stdout.lines().filter(|l| !l.is_empty()).map(|l| l.split('\t').collect::<Vec<&str>>());
    fields.map(|f| (f[0].to_string(), f[1].parse().unwrap(), f[3].to_string())).collect()
}

/// The case: a 2,100-word text, the same sentence 350 times. With the default windows
/// (each token taken from the window where it is farthest from an edge) every copy gives its
/// person and its place and nothing else, whatever the strategy. With `--stride 32` and the
/// pipeline's merge, every place is found too (the tiny model mistakes some persons that a
/// window starts next to, as the pipeline does).
#[test]
fn a_2100_word_text_is_tagged_to_its_end() {
    let text = vec!["a met anna to uppsala today"; 350].join(" ");
    assert_eq!(text.split_whitespace().count(), 2100);
    let copies = |offset: usize| (0..350).map(move |i| i * 28 + offset);
    for name in ["first", "average", "max"] {
        let want: Vec<(String, usize, String)> = copies(0)
            .flat_map(|at| [("PER".into(), at + 6, "anna".into()), ("LOC".into(), at + 14, "uppsala".into())])
            .collect();
        assert_eq!(predicted(&text, name, None), want, "{name}");
    }
    // `simple` and `none` tag tokens: an|na and upp|sala.
    let tokens = |kinds: [&str; 2]| -> Vec<(String, usize, String)> {
        let spans = [(6, "an"), (8, "na"), (14, "upp"), (17, "sala")];
        copies(0)
            .flat_map(|at| spans.map(|(o, t)| (kinds[usize::from(o >= 14)].to_string(), at + o, t.to_string())))
            .collect()
    };
    assert_eq!(predicted(&text, "simple", None), tokens(["PER", "LOC"]));
    assert_eq!(predicted(&text, "none", None), tokens(["B-PER", "B-LOC"]));
    for name in ["first", "average", "max", "simple"] {
        let places: Vec<usize> = predicted(&text, name, Some("32"))
            .into_iter()
            .filter(|(kind, _, word)| kind == "LOC" && (word == "uppsala" || word == "upp"))
            .map(|(_, start, _)| start)
            .collect();
        assert_eq!(places, copies(14).collect::<Vec<_>>(), "{name} --stride 32");
    }
}

/// Empty, blank, JSON, and longer-than-the-positions lines each give a result, in input order.
#[test]
fn odd_inputs_give_results_in_input_order() {
    let long = vec!["the man met erik in oslo"; 2000].join(" ");
    let lines = [
        "a met anna to uppsala today".to_string(),
        String::new(),
        "   ".into(),
        long.clone(),
        serde_json::json!({"text": "johan went to paris", "id": 7}).to_string(),
        "é ö \u{1F600} ##".into(),
    ];
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("in.txt");
    fs::write(&file, lines.join("\n") + "\n").unwrap();
    let out = nergrid()
        .args(["predict", "--model", &model_dir(), "--format", "jsonl", "--batch-size", "3", "--file"])
        .arg(&file)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let results: Vec<serde_json::Value> =
        String::from_utf8(out.stdout).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let texts: Vec<&str> = results.iter().map(|r| r["text"].as_str().unwrap()).collect();
    assert_eq!(
        texts,
        ["a met anna to uppsala today", "", "   ", long.as_str(), "johan went to paris", "é ö \u{1F600} ##"]
    );
    let n_entities = |i: usize| results[i]["entities"].as_array().unwrap().len();
    assert_eq!((n_entities(1), n_entities(2)), (0, 0));
    assert!(n_entities(3) > 1000, "the 12,000-word text has {} entities", n_entities(3));
    let last_end = results[3]["entities"].as_array().unwrap().iter().map(|e| e["end"].as_u64().unwrap()).max();
    assert!(last_end.unwrap() as usize > long.chars().count() - 10, "tagged to the end");
    // The same texts in one JSON array.
    let out =
        nergrid().args(["predict", "--model", &model_dir(), "--format", "json", "--file"]).arg(&file).output().unwrap();
    let array: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(array.as_array().map(Vec::len), Some(6));
    assert_eq!(array[3]["entities"], results[3]["entities"]);
}

/// Bad lines and options are errors naming what is wrong, never a panic.
#[test]
fn bad_lines_and_strides_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let cases: [(&[u8], &str); 3] = [
        (b"a met anna\nok \xff\xfe bad\n", "in.txt:2: not valid UTF-8 (byte 4)"),
        (b"{\"id\": 1}\n", "in.txt:1: a JSON line needs a \"text\" field"),
        (b"fine\n{\"text\": [1]}\n", "in.txt:2: field \"text\" must be a string"),
    ];
    for (content, message) in cases {
        let file = dir.path().join("in.txt");
        fs::write(&file, content).unwrap();
        let out = nergrid().args(["predict", "--model", &model_dir(), "--file"]).arg(&file).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{stderr}");
        assert!(stderr.contains(message), "{stderr}");
    }
    let out = nergrid().args(["predict", "--model", &model_dir(), "--stride", "62", "anna"]).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("stride 62 must be below the 62 text tokens of a window of 64"), "{stderr}");
}

/// RoBERTa's positions start after the padding id: the tiny RoBERTa has 130 position rows, so
/// a window holds 128 tokens; a text of thousands of tokens is tagged without indexing past them.
#[test]
fn roberta_windows_leave_room_for_the_position_offset() {
    for family in ["roberta", "xlm-roberta"] {
        let dir = fixtures().join("reference_models").join(family);
        let predictor = Predictor::load(dir.to_str().unwrap(), &Device::Cpu).unwrap();
        assert!(predictor.window() <= 128, "{family}: window {}", predictor.window());
        let text = vec!["Patienten fick ont i knät efter löpning."; 300].join(" ");
        for name in ["none", "simple", "first", "average", "max"] {
            let found = predictor.predict_texts(&[&text, ""], strategy(name), 8).unwrap();
            assert_eq!(found.len(), 2);
            assert!(found[1].is_empty());
            assert!(!found[0].is_empty() || name != "none", "{family}: nothing tagged");
            assert!(found[0].iter().all(|e| e.end <= text.chars().count() && e.start <= e.end), "{family} {name}");
        }
    }
}

/// Sentences of 7 to 12 toy clauses (56 to 96 sub-words) with their PER and LOC spans.
fn long_corpus(n: usize) -> String {
    let (filler, people, places) = (
        ["the", "a", "went", "to", "saw", "and", "met", "today"],
        ["anna", "erik", "maria", "johan", "karin"],
        ["stockholm", "uppsala", "paris", "berlin", "oslo"],
    );
    let mut lines = String::new();
    for i in 0..n {
        let (mut text, mut entities) = (String::new(), Vec::new());
        for c in 0..7 + i % 6 {
            let k = i * 13 + c * 7;
            if !text.is_empty() {
                text.push(' ');
            }
            text += &format!("{} {} ", filler[k % 8], filler[(k + 3) % 8]);
            let (person, place) = (people[k % 5], places[(k / 2) % 5]);
            entities.push(serde_json::json!({"start": text.len(), "end": text.len() + person.len(), "type": "PER"}));
            text += &format!("{person} {} ", filler[(k + 5) % 8]);
            entities.push(serde_json::json!({"start": text.len(), "end": text.len() + place.len(), "type": "LOC"}));
            text += &format!("{place} {}", filler[(k + 1) % 8]);
        }
        lines += &format!("{}\n", serde_json::json!({"text": text, "entities": entities}));
    }
    lines
}

/// (word, predicted tag) of a CoNLL-style file (word, gold, predicted), sentence by sentence.
fn conll_words(text: &str) -> Vec<Vec<(String, String)>> {
    let row = |l: &str| {
        let f: Vec<&str> = l.split_whitespace().collect();
        (f[0].to_string(), f[f.len() - 1].to_string())
    };
    text.split("\n\n")
        .map(|s| s.lines().filter(|l| !l.trim().is_empty()).map(row).collect::<Vec<_>>())
        .filter(|s| !s.is_empty())
        .collect()
}

/// `stride = 32` with `max_length = 48` on sentences of up to 96 sub-words: nothing is lost and
/// every test word is predicted once; the same grid without a stride loses entities.
#[test]
fn training_with_a_stride_loses_no_entity_and_predicts_every_test_word_once() {
    let dir = tempfile::tempdir().unwrap();
    let corpus = long_corpus(60);
    fs::write(dir.path().join("long.jsonl"), &corpus).unwrap();
    let corpus_sentences: Vec<String> = corpus
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["text"].as_str().unwrap().to_string())
        .collect();
    let spec = format!(
        "[experiment]\nname = \"long\"\noutput_dir = \"results\"\n[models.tiny]\npath = {:?}\n\
         [datasets.long]\nformat = \"jsonl\"\npath = \"long.jsonl\"\nsplit = {{ test = 0.25, validation = 0.1, seed = 7 }}\n\
         [grid]\nmodels = [\"tiny\"]\nschemes = [\"BIO\"]\nlearning_rates = [1e-3]\ndatasets = [\"long\"]\nseeds = [3]\n\
         stride = [0, 32]\n[train]\nepochs = 1\nbatch_size = 8\nmax_length = 48\n[schedule]\ndevices = \"cpu\"\n",
        model_dir()
    );
    fs::write(dir.path().join("long.toml"), spec).unwrap();
    let out = nergrid().current_dir(dir.path()).args(["run", "long.toml"]).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && stderr.contains("executed 2, succeeded 2"), "{stderr}");
    let mut seen = Vec::new();
    for entry in fs::read_dir(dir.path().join("results/runs")).unwrap() {
        let run = entry.unwrap().path();
        let result: serde_json::Value =
            serde_json::from_str(&fs::read_to_string(run.join("result.json")).unwrap()).unwrap();
        let stride = result["params"]["stride"].as_i64().unwrap_or(0);
        let lost = &result["details"]["entities_lost_to_truncation"];
        let conll = conll_words(&fs::read_to_string(run.join("predictions.conll")).unwrap());
        assert!(conll.len() >= 10, "{} test sentences", conll.len());
        if stride == 32 {
            for split in ["train", "validation", "test", "test_words"] {
                assert_eq!(lost[split], 0, "{split}: {lost}");
            }
        } else {
            assert!(lost["test"].as_u64().unwrap() > 0, "without a stride entities are cut: {lost}");
        }
        // Every test sentence is a corpus sentence, each of its words there once.
        for sentence in &conll {
            let words: Vec<&str> = sentence.iter().map(|w| w.0.as_str()).collect();
            assert!(corpus_sentences.contains(&words.join(" ")), "{words:?}");
        }
        // Entities found in the last words, which a 48-token window without a stride cuts.
        let tail: usize = conll.iter().map(|s| s[40..].iter().filter(|w| w.1 != "O").count()).sum();
        seen.push((stride, conll, tail));
    }
    seen.sort_by_key(|s| s.0);
    assert_eq!(seen.iter().map(|s| s.0).collect::<Vec<_>>(), vec![0, 32]);
    assert_eq!(seen[0].2, 0, "no stride: the words past the window are O");
    assert!(seen[1].2 > 50, "stride: {} entity words past the first window", seen[1].2);
    // Same test split, same words, each exactly once, in both runs.
    let words = |c: &Vec<Vec<(String, String)>>| -> Vec<Vec<String>> {
        c.iter().map(|s| s.iter().map(|w| w.0.clone()).collect()).collect()
    };
    assert_eq!(words(&seen[0].1), words(&seen[1].1));
    // The report tells the runs with windows from the truncating one.
    let out = nergrid().current_dir(dir.path()).args(["report", "long.toml"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let md = fs::read_to_string(dir.path().join("results/report.md")).unwrap();
    let line = md.lines().find(|l| l.starts_with("- entities lost to truncation")).unwrap_or_default();
    assert!(line.contains("tiny (windows, stride 32): train 0, validation 0, test 0, test_words 0"), "{line}");
    assert!(line.contains(" tiny: train "), "{line}");
}
