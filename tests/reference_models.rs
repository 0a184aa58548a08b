//! Every tokenizer family against transformers itself. `tests/fixtures/reference_models/` holds
//! tiny randomly initialised token classifiers written by transformers with their real
//! tokenizer files (`tests/fixtures/make_reference_models.py`): BERT cased from `vocab.txt` +
//! `tokenizer_config.json` only, BERT uncased (accents stripped), BERT lower-cased keeping
//! accents, BERT without Chinese-character splitting, DistilBERT, RoBERTa (byte-level BPE) and
//! XLM-R (SentencePiece Unigram, as transformers 5 writes it and with the Hub's Metaspace-only
//! pre-tokenizer). For each, nergrid's token ids and word alignment equal transformers' exactly,
//! its eval logits agree within 1e-5, and `Predictor` finds the token-classification
//! pipeline's entities (`aggregation_strategy="first"`) with the same character offsets, from
//! the checkpoint as transformers wrote it and from nergrid's export of it.

mod common;

use candle_core::Device;
use nergrid::model::predict::Predictor;
use nergrid::model::{self, Inputs};
use std::path::PathBuf;

const FAMILIES: [&str; 8] = [
    "bert-cased-vocab",
    "bert-uncased",
    "bert-lower-keep-accents",
    "bert-no-chinese-split",
    "distilbert",
    "roberta",
    "xlm-roberta",
    "xlm-roberta-metaspace",
];

#[derive(serde::Deserialize)]
struct Reference {
    max_length: usize,
    cases: Vec<Case>,
    pipeline: Vec<Tagged>,
}

/// One word list: what transformers' tokenizer and model gave.
#[derive(serde::Deserialize)]
struct Case {
    words: Vec<String>,
    input_ids: Vec<u32>,
    word_ids: Vec<Option<u32>>,
    logits: Vec<Vec<f32>>,
}

/// One raw text and the pipeline's entities.
#[derive(serde::Deserialize)]
struct Tagged {
    text: String,
    entities: Vec<PipelineEntity>,
}

#[derive(serde::Deserialize)]
struct PipelineEntity {
    #[serde(rename = "type")]
    kind: String,
    start: usize,
    end: usize,
    score: f64,
}

fn model_dir(family: &str) -> PathBuf {
    common::fixture_model(&format!("reference_models/{family}"))
}

fn reference(family: &str) -> Reference {
    let path = model_dir(family).join("reference.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn files(family: &str) -> model::ModelFiles {
    model::resolve(model_dir(family).to_str().unwrap()).unwrap()
}

/// The tokenizers nergrid can build from a directory: from `tokenizer.json` when there is one,
/// and rebuilt from `vocab.txt` + `tokenizer_config.json` when there is a `vocab.txt`.
fn tokenizer_sources(family: &str) -> Vec<(&'static str, model::ModelFiles)> {
    let all = files(family);
    let mut sources = Vec::new();
    if all.tokenizer_json.is_some() {
        sources.push(("tokenizer.json", all.clone()));
    }
    if all.vocab.is_some() {
        sources.push(("vocab.txt", model::ModelFiles { tokenizer_json: None, ..all }));
    }
    sources
}

#[test]
fn token_ids_and_word_ids_equal_transformers() {
    let mut failures = Vec::new();
    for family in FAMILIES {
        let reference = reference(family);
        let sources = tokenizer_sources(family);
        assert!(!sources.is_empty(), "{family}: no tokenizer files");
        for (source, files) in sources {
            let tok = model::tokenizer::load_tokenizer(&files, reference.max_length).unwrap();
            for case in &reference.cases {
                let got = model::tokenizer::encode_words(&tok, &case.words).unwrap();
                if got.ids != case.input_ids || got.word_ids != case.word_ids {
                    failures.push(format!(
                        "{family} ({source}) {:?}:\n  ids   {:?}\n  want  {:?}\n  words {:?}\n  want  {:?}",
                        case.words, got.ids, case.input_ids, got.word_ids, case.word_ids
                    ));
                }
            }
        }
    }
    assert!(failures.is_empty(), "{} mismatches:\n{}", failures.len(), failures.join("\n"));
}

#[test]
fn eval_logits_equal_transformers_within_1e_5() {
    for family in FAMILIES {
        let reference = reference(family);
        let files = files(family);
        let config = model::Config::from_file(&files.config).unwrap();
        let labels = config.id2label.clone().unwrap();
        let loaded = model::load_model(&files, &labels, 0, &Device::Cpu).unwrap();
        assert!(loaded.missing.is_empty(), "{family}: missing {:?}", loaded.missing);
        assert!(loaded.unexpected.is_empty(), "{family}: unexpected {:?}", loaded.unexpected);
        let mut worst = 0f32;
        for case in &reference.cases {
            let inputs =
                Inputs::new(std::slice::from_ref(&case.input_ids), loaded.model.config(), &Device::Cpu).unwrap();
            let got = loaded.model.forward(&inputs, None).unwrap().to_vec2::<f32>().unwrap();
            assert_eq!(got.len(), case.logits.len(), "{family} {:?}", case.words);
            for (row, want) in got.iter().zip(&case.logits) {
                worst = row.iter().zip(want).fold(worst, |w, (a, b)| w.max((a - b).abs()));
            }
        }
        assert!(worst < 1e-5, "{family}: logits differ from transformers' by {worst}");
    }
}

/// Differences between `predictor`'s entities and the pipeline's on `family`'s texts, and the
/// number of pipeline entities compared.
fn differences_from_the_pipeline(family: &str, predictor: &Predictor) -> (Vec<String>, usize) {
    let mut failures = Vec::new();
    let mut compared = 0;
    for (i, tagged) in reference(family).pipeline.iter().enumerate() {
        let got = predictor.predict(&tagged.text, i).unwrap();
        let ours: Vec<(&str, usize, usize)> = got.iter().map(|e| (e.kind.as_str(), e.start, e.end)).collect();
        let want: Vec<(&str, usize, usize)> =
            tagged.entities.iter().map(|e| (e.kind.as_str(), e.start, e.end)).collect();
        let scores_agree = got.iter().zip(&tagged.entities).all(|(a, b)| (a.score - b.score).abs() < 1e-4);
        if ours != want || !scores_agree {
            failures.push(format!("{family} {:?}:\n  ours {ours:?}\n  want {want:?}", tagged.text));
        }
        compared += want.len();
    }
    (failures, compared)
}

#[test]
fn predicted_entities_and_offsets_equal_the_pipeline() {
    let mut failures = Vec::new();
    let mut compared = 0;
    for family in FAMILIES {
        let predictor = Predictor::load(model_dir(family).to_str().unwrap(), &Device::Cpu).unwrap();
        let (differ, n) = differences_from_the_pipeline(family, &predictor);
        failures.extend(differ);
        compared += n;
    }
    assert!(failures.is_empty(), "{} texts differ:\n{}", failures.len(), failures.join("\n"));
    assert!(compared > 300, "only {compared} pipeline entities compared");
}

/// What `save_model = true` writes (nergrid's own `tokenizer.json`, the side files, the
/// weights under Hugging Face names) predicts as the pipeline did on the original.
#[test]
fn models_exported_by_nergrid_predict_as_the_pipeline() {
    let tmp = tempfile::tempdir().unwrap();
    let mut failures = Vec::new();
    for family in FAMILIES {
        let files = files(family);
        let labels = model::Config::from_file(&files.config).unwrap().id2label.unwrap();
        let loaded = model::load_model(&files, &labels, 0, &Device::Cpu).unwrap();
        let tokenizer = model::tokenizer::load_tokenizer(&files, 128).unwrap();
        let out = tmp.path().join(family);
        model::export::save_model(&loaded.model, &tokenizer, &out, Some(&files)).unwrap();
        let predictor = Predictor::load(out.to_str().unwrap(), &Device::Cpu).unwrap();
        failures.extend(differences_from_the_pipeline(family, &predictor).0);
    }
    assert!(failures.is_empty(), "{} texts differ:\n{}", failures.len(), failures.join("\n"));
}

/// The case: XLM-R with the Hub's Metaspace-only pre-tokenizer, whose tokens' offsets
/// include the space before a word. An entity starts at its word, never at that space.
#[test]
fn xlm_r_entities_start_at_the_word_not_the_space_before_it() {
    let family = "xlm-roberta-metaspace";
    let predictor = Predictor::load(model_dir(family).to_str().unwrap(), &Device::Cpu).unwrap();
    for (i, tagged) in reference(family).pipeline.iter().enumerate() {
        for e in predictor.predict(&tagged.text, i).unwrap() {
            let first = e.text.chars().next();
            assert!(first.is_some_and(|c| !c.is_whitespace() && c != '\u{2581}'), "{e:?} in {:?}", tagged.text);
        }
    }
}
