//! Training tests on tiny randomly initialised encoders: gradients reach every parameter,
//! a toy corpus is learnt, runs are deterministic, exports reload.

mod common;

use candle_core::Device;
use nergrid::model::kernels::Products;
use nergrid::model::{self, Config, Dropout, Inputs};
use std::path::Path;

fn tiny_config(model_type: &str) -> Config {
    let text = format!(
        r#"{{"model_type": "{model_type}", "vocab_size": 60, "hidden_size": 32,
        "num_hidden_layers": 2, "num_attention_heads": 4, "intermediate_size": 64,
        "max_position_embeddings": 40, "type_vocab_size": 2, "hidden_act": "gelu",
        "pad_token_id": 0}}"#
    );
    Config::from_json(&text, Path::new("tiny.json")).unwrap()
}

fn labels() -> Vec<String> {
    ["O", "B-X", "I-X"].map(String::from).to_vec()
}

#[test]
fn every_parameter_gets_a_gradient() {
    for model_type in ["bert", "distilbert", "roberta"] {
        let cfg = tiny_config(model_type);
        let m = model::random_model(&cfg, &labels(), 1, &Device::Cpu).unwrap();
        let seqs = vec![vec![2u32, 7, 8, 9, 3], vec![2, 10, 3]];
        let inputs = Inputs::new(&seqs, &cfg, &Device::Cpu).unwrap();
        let mut dropout = Dropout::new(1);
        let logits = m.forward(&inputs, Some(&mut dropout)).unwrap();
        let targets = [-100i64, 1, 2, 0, -100, -100, 1, -100, -100, -100];
        let loss = model::masked_cross_entropy(&logits, &targets, 5.0).unwrap();
        let grads = loss.backward().unwrap();
        let mut without = Vec::new();
        for (name, var) in m.params().iter() {
            let g = grads.get(var.as_tensor());
            let norm = g.map(|g| g.sqr().unwrap().sum_all().unwrap().to_scalar::<f32>().unwrap());
            if norm.unwrap_or(0.0) == 0.0 {
                without.push(name.to_string());
            }
        }
        assert!(without.is_empty(), "{model_type}: no gradient for {without:?}");
    }
}

#[test]
fn evaluation_is_deterministic_and_dropout_changes_training_outputs() {
    let cfg = tiny_config("bert");
    let m = model::random_model(&cfg, &labels(), 3, &Device::Cpu).unwrap();
    let inputs = Inputs::new(&[vec![2u32, 5, 6, 3]], &cfg, &Device::Cpu).unwrap();
    let eval = |m: &model::TokenClassifier| m.forward(&inputs, None).unwrap().to_vec2::<f32>().unwrap();
    assert_eq!(eval(&m), eval(&m));
    let mut d = Dropout::new(9);
    let train = m.forward(&inputs, Some(&mut d)).unwrap().to_vec2::<f32>().unwrap();
    assert_ne!(train, eval(&m));
    let again = model::random_model(&cfg, &labels(), 3, &Device::Cpu).unwrap();
    assert_eq!(eval(&again), eval(&m));
}

// ---------------------------------------------------------------------------------------
// A toy corpus and a tiny model directory written by the test.

use nergrid::data::TaggedSentence;
use nergrid::model::export::safetensors_bytes;
use nergrid::train::{self, EvalScores, TrainConfig, TrainEvent};
use std::collections::HashSet;
use std::path::PathBuf;

const FILLER: [&str; 10] = ["the", "a", "went", "to", "saw", "and", "with", "met", "in", "today"];
const PEOPLE: [&str; 6] = ["anna", "erik", "maria", "johan", "karin", "lars"];
const PLACES: [&str; 6] = ["stockholm", "uppsala", "paris", "berlin", "oslo", "rome"];

/// WordPiece vocabulary: specials, filler, names, and pieces that split some place names.
fn vocab() -> Vec<String> {
    let mut v: Vec<String> = ["[PAD]", "[UNK]", "[CLS]", "[SEP]"].map(String::from).to_vec();
    v.extend(FILLER.iter().chain(&PEOPLE).map(|s| s.to_string()));
    // "stockholm" -> stock ##holm, "uppsala" -> upp ##sala; the rest are whole words.
    v.extend(["stock", "##holm", "upp", "##sala", "paris", "berlin", "oslo", "rome", "city", "of"].map(String::from));
    v
}

/// A deterministic toy sentence: filler words with people (B-PER, or B-PER I-PER for two
/// names) and places (B-LOC, or "city of X" where only X is the entity).
fn toy_sentence(i: usize) -> TaggedSentence {
    let mut words = Vec::new();
    let mut tags = Vec::new();
    let mut push = |w: &str, t: &str| {
        words.push(w.to_string());
        tags.push(t.to_string());
    };
    let f = |k: usize| FILLER[(i * 7 + k * 3) % FILLER.len()];
    push(f(0), "O");
    push(PEOPLE[i % 6], "B-PER");
    if i.is_multiple_of(3) {
        push(PEOPLE[(i / 3) % 6], "I-PER");
    }
    push(f(1), "O");
    push(f(2), "O");
    if i % 4 == 1 {
        push("city", "O");
        push("of", "O");
    }
    push(PLACES[(i / 2) % 6], "B-LOC");
    push(f(3), "O");
    TaggedSentence { words, tags }
}

fn toy_corpus(range: std::ops::Range<usize>) -> Vec<TaggedSentence> {
    range.map(toy_sentence).collect()
}

fn toy_labels() -> Vec<String> {
    ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"].map(String::from).to_vec()
}

/// A directory with config.json, vocab.txt and random weights saved under a `bert.` prefix.
fn tiny_model_dir(dir: &Path) -> PathBuf {
    let vocab = vocab();
    std::fs::write(dir.join("vocab.txt"), vocab.join("\n") + "\n").unwrap();
    let config = format!(
        r#"{{"model_type": "bert", "architectures": ["BertModel"], "vocab_size": {},
        "hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 4,
        "intermediate_size": 64, "max_position_embeddings": 64, "type_vocab_size": 2,
        "hidden_act": "gelu", "pad_token_id": 0}}"#,
        vocab.len()
    );
    std::fs::write(dir.join("config.json"), &config).unwrap();
    let cfg = Config::from_json(&config, Path::new("config.json")).unwrap();
    // Two labels: the saved head does not fit the toy label set and is replaced.
    let labels = ["O", "X"].map(String::from).to_vec();
    let m = model::random_model(&cfg, &labels, 11, &Device::Cpu).unwrap();
    std::fs::write(dir.join("model.safetensors"), safetensors_bytes(&m).unwrap()).unwrap();
    dir.to_path_buf()
}

/// Entity-level micro P/R/F1 (BIO chunks, seqeval's default rules for BIO) and accuracy.
fn entity_scores(gold: &[Vec<String>], pred: &[Vec<String>]) -> anyhow::Result<EvalScores> {
    fn chunks(tags: &[String], sentence: usize) -> HashSet<(usize, usize, usize, String)> {
        let mut out = HashSet::new();
        let mut open: Option<(usize, String)> = None;
        for (i, t) in tags.iter().chain(std::iter::once(&"O".to_string())).enumerate() {
            let (p, ty) = t.split_once('-').unwrap_or(("O", ""));
            let continues = p == "I" && open.as_ref().is_some_and(|(_, o)| o == ty);
            if !continues {
                if let Some((start, ty)) = open.take() {
                    out.insert((sentence, start, i, ty));
                }
                if p != "O" {
                    open = Some((i, ty.to_string()));
                }
            }
        }
        out
    }
    let (mut g, mut p) = (HashSet::new(), HashSet::new());
    let (mut right, mut total) = (0usize, 0usize);
    for (i, (gs, ps)) in gold.iter().zip(pred).enumerate() {
        anyhow::ensure!(gs.len() == ps.len(), "sentence {i}: lengths differ");
        g.extend(chunks(gs, i));
        p.extend(chunks(ps, i));
        right += gs.iter().zip(ps).filter(|(a, b)| a == b).count();
        total += gs.len();
    }
    let hit = g.intersection(&p).count() as f64;
    let precision = if p.is_empty() { 0.0 } else { hit / p.len() as f64 };
    let recall = if g.is_empty() { 0.0 } else { hit / g.len() as f64 };
    let f1 = if hit == 0.0 { 0.0 } else { 2.0 * precision * recall / (precision + recall) };
    Ok(EvalScores { precision, recall, f1, accuracy: right as f64 / total.max(1) as f64 })
}

/// A fine-tuned model with what it was loaded from (the runner's view of a run).
struct Trained {
    outcome: train::TrainOutcome,
    source: nergrid::runner::ModelSource,
}

impl std::fmt::Debug for Trained {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.outcome.fmt(f)
    }
}

impl std::ops::Deref for Trained {
    type Target = train::TrainOutcome;
    fn deref(&self) -> &train::TrainOutcome {
        &self.outcome
    }
}

impl Trained {
    fn save_model(&self, dir: &Path) -> Result<(), model::export::ExportError> {
        self.source.save_model(&self.outcome.model, dir)
    }
}

/// Loads the model in `dir`, aligns the splits (the runner's step) and fine-tunes.
#[allow(clippy::too_many_arguments)]
fn train_dir(
    dir: &Path,
    labels: &[String],
    train: &[TaggedSentence],
    validation: &[TaggedSentence],
    test: &[TaggedSentence],
    cfg: &TrainConfig,
    device: &Device,
    evaluate: train::Evaluate,
    on_event: &mut dyn FnMut(TrainEvent),
) -> Result<Trained, train::TrainError> {
    let location = model::ModelLocation::Dir(dir.to_path_buf());
    let prepared = nergrid::runner::prepare_run(&location, labels, [train, validation, test], cfg, device)?;
    let outcome = train::train(prepared.model, &prepared.splits, cfg, device, evaluate, on_event)?;
    Ok(Trained { outcome, source: prepared.source })
}

fn toy_config(seed: u64) -> TrainConfig {
    TrainConfig { epochs: 5, batch_size: 16, learning_rate: 3e-3, max_length: 32, seed, ..TrainConfig::default() }
}

fn run_toy(dir: &Path, cfg: &TrainConfig, events: &mut Vec<TrainEvent>) -> Trained {
    let mut on_event = |e: TrainEvent| events.push(e);
    train_dir(
        dir,
        &toy_labels(),
        &toy_corpus(0..200),
        &toy_corpus(200..240),
        &toy_corpus(240..280),
        cfg,
        &Device::Cpu,
        &entity_scores,
        &mut on_event,
    )
    .unwrap()
}

#[test]
fn tiny_bert_learns_the_toy_corpus() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tiny_model_dir(tmp.path());
    let mut events = Vec::new();
    let outcome = run_toy(&dir, &toy_config(5), &mut events);
    let best = &outcome.epochs[outcome.best_epoch - 1];
    assert!(best.val.f1 > 0.9, "validation F1 {:?}", outcome.epochs);
    assert!(outcome.test.f1 > 0.9, "test F1 {:?}", outcome.test);
    assert!(outcome.epochs[0].train_loss > outcome.epochs.last().unwrap().train_loss);
    // The saved head had 2 labels: it is replaced and reported missing, as are no others.
    assert_eq!(outcome.source.missing, vec!["classifier.weight", "classifier.bias"]);
    assert!(outcome.source.unexpected.is_empty(), "{:?}", outcome.source.unexpected);
    let steps = events.iter().filter(|e| matches!(e, TrainEvent::Step { .. })).count();
    assert_eq!(steps, 5 * 13);
    assert_eq!(outcome.test_pred.len(), 40);

    predict_cli_tags_raw_text(&outcome, tmp.path());

    // The same pipeline without learning (a vanishing learning rate) stays far below.
    let frozen = TrainConfig { learning_rate: 1e-12, epochs: 1, ..toy_config(5) };
    let untrained = run_toy(&dir, &frozen, &mut Vec::new());
    assert!(untrained.test.f1 < 0.5, "untrained F1 {:?}", untrained.test);
}

#[test]
fn patience_one_stops_where_validation_f1_falls() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tiny_model_dir(tmp.path());
    // Validation F1 rises, then falls at epoch 3; the last call scores the test set.
    let calls = std::cell::Cell::new(0usize);
    let forced = |gold: &[Vec<String>], pred: &[Vec<String>]| {
        let f1 = [0.5, 0.7, 0.6, 0.9, 0.95].get(calls.get()).copied().unwrap_or(0.0);
        calls.set(calls.get() + 1);
        let real = entity_scores(gold, pred)?;
        Ok(train::EvalScores { f1, ..real })
    };
    let cfg = TrainConfig { early_stopping_patience: 1, ..toy_config(5) };
    let mut events = Vec::new();
    let mut on_event = |e: TrainEvent| events.push(e);
    let (train_part, validation, test) = (toy_corpus(0..200), toy_corpus(200..240), toy_corpus(240..280));
    let outcome =
        train_dir(&dir, &toy_labels(), &train_part, &validation, &test, &cfg, &Device::Cpu, &forced, &mut on_event)
            .unwrap();
    assert_eq!(outcome.epochs.len(), 3, "stopped after the fall: {:?}", outcome.epochs);
    assert_eq!((outcome.stopped_epoch, outcome.best_epoch), (Some(3), 2));
    assert_eq!(calls.get(), 4, "three validations and one test");
    assert!(events.iter().any(|e| matches!(e, TrainEvent::StoppedEarly { epoch: 3 })));
    let steps = events.iter().filter(|e| matches!(e, TrainEvent::Step { .. })).count();
    assert_eq!(steps, 3 * 13);
    // The schedule still spans the five planned epochs: the learning rate has not reached 0.
    assert!(outcome.epochs[2].learning_rate > 0.0);
    // Patience 2 lets the run recover at epoch 4 and run all five.
    calls.set(0);
    let patient = TrainConfig { early_stopping_patience: 2, ..toy_config(5) };
    let outcome =
        train_dir(&dir, &toy_labels(), &train_part, &validation, &test, &patient, &Device::Cpu, &forced, &mut |_| {})
            .unwrap();
    assert_eq!((outcome.epochs.len(), outcome.stopped_epoch, outcome.best_epoch), (5, None, 5));
    // Without a validation split there is nothing to watch.
    let error = train_dir(&dir, &toy_labels(), &train_part, &[], &test, &cfg, &Device::Cpu, &forced, &mut |_| {});
    assert!(error.unwrap_err().to_string().contains("early stopping needs a validation split"));
}

#[test]
fn same_seed_same_run_other_seed_other_run() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tiny_model_dir(tmp.path());
    let cfg = TrainConfig { epochs: 1, ..toy_config(21) };
    let a = run_toy(&dir, &cfg, &mut Vec::new());
    let b = run_toy(&dir, &cfg, &mut Vec::new());
    let losses = |o: &Trained| o.epochs.iter().map(|e| (e.train_loss, e.val_loss, e.val)).collect::<Vec<_>>();
    assert_eq!(losses(&a), losses(&b));
    assert_eq!(a.test, b.test);
    assert_eq!(a.test_pred, b.test_pred);
    let c = run_toy(&dir, &TrainConfig { seed: 22, ..cfg }, &mut Vec::new());
    assert_ne!(losses(&a), losses(&c));
}

#[test]
fn exported_model_reloads_with_identical_logits() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tiny_model_dir(tmp.path());
    let cfg = TrainConfig { epochs: 1, ..toy_config(3) };
    let outcome = run_toy(&dir, &cfg, &mut Vec::new());
    let out = tmp.path().join("export");
    outcome.save_model(&out).unwrap();

    let config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("config.json")).unwrap()).unwrap();
    assert_eq!(config["architectures"][0], "BertForTokenClassification");
    assert_eq!(config["id2label"]["3"], "B-LOC");
    assert_eq!(config["label2id"]["I-PER"], 2);
    assert!(out.join("tokenizer.json").is_file() && out.join("vocab.txt").is_file());

    let files = model::resolve(out.to_str().unwrap()).unwrap();
    let reloaded = model::load_model(&files, &toy_labels(), 999, &Device::Cpu).unwrap();
    assert!(reloaded.missing.is_empty(), "{:?}", reloaded.missing);
    assert!(reloaded.unexpected.is_empty(), "{:?}", reloaded.unexpected);
    assert_eq!(reloaded.mapping.prefix.as_deref(), Some("bert."));
    let tok = model::tokenizer::load_tokenizer(&files, 32).unwrap();
    let words: Vec<String> = ["anna", "went", "to", "stockholm"].map(String::from).to_vec();
    let enc = model::tokenizer::encode_words(&tok, &words).unwrap();
    let orig = model::tokenizer::encode_words(&outcome.source.tokenizer, &words).unwrap();
    assert_eq!(enc, orig);
    let cfg = outcome.model.config();
    let inputs = Inputs::new(&[enc.ids], cfg, &Device::Cpu).unwrap();
    let before = outcome.model.forward(&inputs, None).unwrap().to_vec2::<f32>().unwrap();
    let after = reloaded.model.forward(&inputs, None).unwrap().to_vec2::<f32>().unwrap();
    assert_eq!(before, after);
}

#[test]
fn gamma_beta_names_and_unexpected_tensors_are_handled() {
    let cfg = tiny_config("bert");
    let m = model::random_model(&cfg, &labels(), 4, &Device::Cpu).unwrap();
    let mut tensors: Vec<(String, candle_core::Tensor)> = m
        .params()
        .iter()
        .filter(|(n, _)| !n.starts_with("classifier"))
        .map(|(n, v)| {
            let old = n.replace("LayerNorm.weight", "LayerNorm.gamma").replace("LayerNorm.bias", "LayerNorm.beta");
            (format!("bert.{old}"), v.as_tensor().copy().unwrap())
        })
        .collect();
    tensors.push((
        "cls.predictions.bias".into(),
        candle_core::Tensor::zeros(60, candle_core::DType::F32, &Device::Cpu).unwrap(),
    ));
    let loaded = model::load::build_model(&cfg, &labels(), tensors, 1, &Device::Cpu, Path::new("x")).unwrap();
    assert!(loaded.mapping.renamed_gamma_beta);
    assert_eq!(loaded.missing, vec!["classifier.weight", "classifier.bias"]);
    assert_eq!(loaded.unexpected, vec!["cls.predictions.bias"]);
    let name = "encoder.layer.1.output.LayerNorm.weight";
    let orig = m.params().get(name).to_vec1::<f32>().unwrap();
    assert_eq!(loaded.model.params().get(name).to_vec1::<f32>().unwrap(), orig);
}

#[test]
fn legacy_pytorch_files_get_a_clear_error() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("pytorch_model.bin");
    // A legacy torch.save file starts with a pickle protocol header, not a zip entry.
    std::fs::write(&path, [0x80u8, 0x02, 0x8a, 0x0a, 0x6c, 0xfc]).unwrap();
    let err = model::load::read_weights(&path).unwrap_err().to_string();
    assert!(err.contains("legacy (non-zip) PyTorch format"), "{err}");
    assert!(err.starts_with(&path.display().to_string()), "{err}");
}

// ---------------------------------------------------------------------------------------
// Real weights: all-MiniLM-L6-v2 from `make models` (which `make test` runs first; skipped
// when absent outside CI, a failure in CI).

fn minilm() -> Option<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("models/all-MiniLM-L6-v2");
    if dir.join("model.safetensors").is_file() {
        Some(dir)
    } else {
        common::skip(&format!("{} missing (make models)", dir.display()));
        None
    }
}

#[test]
fn minilm_encoder_matches_candle_transformers_bert() {
    let Some(dir) = minilm() else { return };
    let files = model::resolve(dir.to_str().unwrap()).unwrap();
    let loaded = model::load_model(&files, &labels(), 1, &Device::Cpu).unwrap();
    assert_eq!(loaded.missing, vec!["classifier.weight", "classifier.bias"]);
    assert!(loaded.mapping.prefix.is_none());
    let tok = model::tokenizer::load_tokenizer(&files, 256).unwrap();
    let words: Vec<String> = "Det är också lättare att dosera flytande medicin".split(' ').map(String::from).collect();
    let short: Vec<String> = words[..3].to_vec();
    let a = model::tokenizer::encode_words(&tok, &words).unwrap().ids;
    let b = model::tokenizer::encode_words(&tok, &short).unwrap().ids;
    let cfg = loaded.model.config();
    let inputs = Inputs::new(&[a.clone(), b.clone()], cfg, &Device::Cpu).unwrap();
    let ours = loaded.model.hidden_states(&inputs).unwrap();
    let ours = ours.reshape((2, a.len(), cfg.hidden_size)).unwrap();

    use candle_transformers::models::bert;
    let bert_cfg: bert::Config =
        serde_json::from_str(&std::fs::read_to_string(dir.join("config.json")).unwrap()).unwrap();
    // SAFETY: the file is not modified while mapped.
    let vb = unsafe {
        candle_nn::VarBuilder::from_mmaped_safetensors(
            &[dir.join("model.safetensors")],
            candle_core::DType::F32,
            &Device::Cpu,
        )
    }
    .unwrap();
    let reference = bert::BertModel::load(vb, &bert_cfg).unwrap();
    let mask: Vec<u32> = (0..2 * a.len()).map(|i| u32::from(i < a.len() || i - a.len() < b.len())).collect();
    let mask = candle_core::Tensor::from_vec(mask, (2, a.len()), &Device::Cpu).unwrap();
    let types = inputs.token_type_ids.clone().unwrap();
    let theirs = reference.forward(&inputs.input_ids, &types, Some(&mask)).unwrap();
    // Compare real tokens only (padding rows differ by construction).
    let diff = |row: usize, len: usize| {
        let x = ours.get(row).unwrap().narrow(0, 0, len).unwrap();
        let y = theirs.get(row).unwrap().narrow(0, 0, len).unwrap();
        (x - y).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap()
    };
    let (d0, d1) = (diff(0, a.len()), diff(1, b.len()));
    assert!(d0 < 1e-4 && d1 < 1e-4, "max differences {d0} {d1}");
}

#[test]
fn minilm_tokenizer_json_and_vocab_txt_agree() {
    let Some(dir) = minilm() else { return };
    let mut files = model::resolve(dir.to_str().unwrap()).unwrap();
    let from_json = model::tokenizer::load_tokenizer(&files, 256).unwrap();
    files.tokenizer_json = None;
    let from_vocab = model::tokenizer::load_tokenizer(&files, 256).unwrap();
    for line in ["Memantin ( Ebixa ) ger sällan några biverkningar.", "Hjärtat, njurarna och ÅÄÖ-test 12,5 mg."] {
        let words: Vec<String> = line.split_whitespace().map(String::from).collect();
        let x = model::tokenizer::encode_words(&from_json, &words).unwrap();
        let y = model::tokenizer::encode_words(&from_vocab, &words).unwrap();
        assert_eq!(x, y, "{line}");
    }
}

/// `nergrid predict` on the exported toy model finds the toy entities with char offsets.
fn predict_cli_tags_raw_text(outcome: &Trained, tmp: &Path) {
    let out = tmp.join("predict-model");
    outcome.save_model(&out).unwrap();
    let model = out.to_str().unwrap();
    let text = "today  anna karin went to stockholm";
    let json = assert_cmd::Command::cargo_bin("nergrid")
        .unwrap()
        .args(["predict", "--model", model, "--format", "jsonl", text])
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let line: serde_json::Value = serde_json::from_slice(&json).unwrap();
    let found: Vec<(String, String, u64, u64)> = line["entities"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            let s = |k: &str| e[k].as_str().unwrap().to_string();
            (s("type"), s("text"), e["start"].as_u64().unwrap(), e["end"].as_u64().unwrap())
        })
        .collect();
    let expected = vec![
        ("PER".to_string(), "anna karin".to_string(), 7, 17),
        ("LOC".to_string(), "stockholm".to_string(), 26, 35),
    ];
    assert_eq!(found, expected);
    let text_out = assert_cmd::Command::cargo_bin("nergrid")
        .unwrap()
        .args(["predict", "--model", model, text])
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    assert_eq!(String::from_utf8(text_out).unwrap(), "PER\t7\t17\tanna karin\nLOC\t26\t35\tstockholm\n\n");
    assert_cmd::Command::cargo_bin("nergrid").unwrap().args(["predict", "--model", model]).assert().code(2);
}

/// tests/fixtures/tiny_pytorch_model.bin.hex is the hex dump of what make_pytorch_bin.py
/// writes (torch's zip layout without torch): prefixed, gamma/beta names, one transposed
/// tensor. Kept as text so no binary checkpoint is committed.
#[test]
fn zip_pytorch_checkpoints_load() {
    let hex = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tiny_pytorch_model.bin.hex"),
    )
    .unwrap();
    let hex: String = hex.split_whitespace().collect();
    let bytes: Vec<u8> = (0..hex.len()).step_by(2).map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap()).collect();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("pytorch_model.bin");
    std::fs::write(&path, bytes).unwrap();
    let tensors = model::load::read_weights(&path).unwrap();
    let get = |name: &str| tensors.iter().find(|(n, _)| n == name).unwrap().1.clone();
    let gamma = get("bert.embeddings.LayerNorm.gamma").to_vec1::<f32>().unwrap();
    assert_eq!(gamma, vec![1.0, 2.0, 3.0, 4.0]);
    let weight = get("bert.encoder.layer.0.output.dense.weight").to_vec2::<f32>().unwrap();
    assert_eq!(weight, vec![vec![0.0, 1.0, 2.0], vec![3.0, 4.0, 5.0]]);
    let mapping = model::load::detect_names(tensors.iter().map(|(n, _)| n.as_str()));
    assert_eq!(mapping.prefix.as_deref(), Some("bert."));
    assert!(mapping.renamed_gamma_beta);
    assert_eq!(model::load::normalise_name("bert.embeddings.LayerNorm.beta", &mapping), "embeddings.LayerNorm.bias");
}

/// The fused CPU path computes the autograd path's loss and gradients (same dropout draws).
#[test]
fn fused_cpu_path_matches_autograd_gradients() {
    use nergrid::model::encoder::HostBatch;
    use nergrid::model::fused;
    for model_type in ["bert", "distilbert", "roberta"] {
        let mut cfg = tiny_config(model_type);
        cfg.attention_dropout = 0.2;
        let m = model::random_model(&cfg, &labels(), 2, &Device::Cpu).unwrap();
        let seqs = vec![vec![2u32, 7, 8, 9, 3], vec![2, 10, 3], vec![2, 11, 12, 3]];
        let targets = [-100i64, 1, 2, 0, -100, -100, 1, -100, -100, -100, -100, 2, 0, -100, -100];
        let batch = HostBatch::new(&seqs, &cfg);
        let mut grads = fused::zero_grads(m.params());
        let loss =
            fused::loss_and_grads(Products::F32, &m, &batch, &targets, 6.0, Some(&mut Dropout::new(4)), &mut grads)
                .unwrap();

        let inputs = Inputs::from_host(&batch, &Device::Cpu).unwrap();
        let logits = m.forward(&inputs, Some(&mut Dropout::new(4))).unwrap();
        let reference = model::masked_cross_entropy(&logits, &targets, 6.0).unwrap();
        let want = reference.to_scalar::<f32>().unwrap() as f64;
        assert!((loss - want).abs() < 1e-5 * want.abs().max(1.0), "{model_type}: loss {loss} vs {want}");
        let store = reference.backward().unwrap();
        for ((name, var), got) in m.params().iter().zip(&grads) {
            let want = store.get(var.as_tensor()).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap();
            let scale = want.iter().fold(0f32, |a, &b| a.max(b.abs())).max(1e-3);
            let worst = got.iter().zip(&want).fold(0f32, |a, (x, y)| a.max((x - y).abs()));
            assert!(worst <= 1e-4 * scale, "{model_type} {name}: max difference {worst} (scale {scale})");
        }
        // Padding rows are not computed on the fused path: compare the real tokens.
        let eval = fused::logits(Products::F32, &m, &batch).unwrap();
        let want = m.forward(&inputs, None).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap();
        let l = labels().len();
        let rows = batch.token_rows();
        let pick = |v: &[f32]| rows.iter().flat_map(|&r| v[r * l..(r + 1) * l].to_vec()).collect::<Vec<f32>>();
        let (eval, want) = (pick(&eval), pick(&want));
        assert_eq!(eval.len(), 12 * l);
        let worst = eval.iter().zip(&want).fold(0f32, |a, (x, y)| a.max((x - y).abs()));
        assert!(worst < 1e-5, "{model_type}: eval logits differ by {worst}");
    }
}

#[test]
fn gradient_accumulation_matches_the_full_batch() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tiny_model_dir(tmp.path());
    // Without dropout the micro-batches see the same function as the full batch.
    let cfg = TrainConfig { epochs: 1, dropout: Some(0.0), ..toy_config(8) };
    let full = run_toy(&dir, &cfg, &mut Vec::new());
    let split = run_toy(&dir, &TrainConfig { grad_accum: 4, ..cfg }, &mut Vec::new());
    let (a, b) = (full.epochs[0].train_loss, split.epochs[0].train_loss);
    assert!((a - b).abs() < 1e-4 * a, "train loss {a} vs {b}");
    assert!((full.epochs[0].val_loss - split.epochs[0].val_loss).abs() < 1e-4);
}

/// Trains on toy sentences `train` with no validation or test split.
fn train_only(dir: &Path, cfg: &TrainConfig, train: std::ops::Range<usize>) -> Result<Trained, train::TrainError> {
    let mut on_event = |_| {};
    train_dir(dir, &toy_labels(), &toy_corpus(train), &[], &[], cfg, &Device::Cpu, &entity_scores, &mut on_event)
}

#[test]
fn a_diverging_run_stops_with_non_finite_loss() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tiny_model_dir(tmp.path());
    let cfg = TrainConfig { epochs: 1, learning_rate: 1e30, ..toy_config(8) };
    let err = train_only(&dir, &cfg, 0..64).unwrap_err();
    assert!(matches!(err, train::TrainError::NonFiniteLoss { epoch: 1, .. }), "{err}");
    assert!(err.to_string().starts_with("non-finite loss or gradient at epoch 1, step "), "{err}");
}

#[test]
fn max_length_beyond_the_positions_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tiny_model_dir(tmp.path());
    let cfg = TrainConfig { max_length: 65, ..toy_config(1) };
    let err = train_only(&dir, &cfg, 0..4).unwrap_err();
    assert_eq!(err.to_string(), "invalid training settings: max_length 65 exceeds the model's 64 positions");
}

/// The torch trajectories of tests/fixtures/torch_trajectory.py, one per model family.
const TORCH_FIXTURES: [&str; 3] =
    ["torch_trajectory.json", "torch_trajectory_distilbert.json", "torch_trajectory_xlm-roberta.json"];

/// 24 optimizer steps replayed against torch (tests/fixtures/torch_trajectory.py: the
/// Trainer's decay rule, torch AdamW, clip_grad_norm_, get_linear_schedule_with_warmup,
/// dropout off) from the same formula weights, for BERT, DistilBERT and XLM-R: nergrid's fused
/// path, clipping, AdamW and schedule give the same losses, gradient norms and final weights.
#[test]
fn optimizer_steps_follow_torch_and_the_trainer_schedule() {
    for file in TORCH_FIXTURES {
        let fixture = torch_fixture(file);
        let replay = replay_torch_steps(file, &fixture, Some(Products::F32));
        compare_with_torch(file, &replay, &fixture["steps"], &fixture["final"], (1e-4, 1e-4, &|_| 1e-4));
    }
}

/// The same replay through the graph engine (autograd, flat AdamW, one download per step).
#[test]
fn graph_engine_steps_follow_torch_and_the_trainer_schedule() {
    for file in TORCH_FIXTURES {
        let fixture = torch_fixture(file);
        let replay = replay_torch_steps(file, &fixture, None);
        compare_with_torch(file, &replay, &fixture["steps"], &fixture["final"], (1e-4, 1e-4, &|_| 1e-4));
    }
}

/// The BERT fixture's 24 steps with bf16 products on every kernel family of this CPU, against
/// torch's CPU autocast to bfloat16 (the Trainer's `bf16=True`). torch also rounds the
/// products' outputs (and the bias, activation and residual steps after them) to bf16 where
/// nergrid keeps f32, so the two agree to bf16's precision, not to f32's: losses within 0.3%,
/// gradient norms within 1%, final weights within 1e-3. The bf16 run must also differ from the
/// f32 trajectory (the products really are rounded).
#[test]
fn bf16_steps_follow_torch_autocast_on_every_kernel_family() {
    use nergrid::model::bf16::Family;
    let file = TORCH_FIXTURES[0];
    let fixture = torch_fixture(file);
    let bf16 = &fixture["bf16"];
    // Final weights within 1e-3, or within half of torch's own f32-to-bf16 distance where that
    // is larger (the word embeddings: Adam's normalised steps on rows with tiny gradients move
    // them by up to the learning rate whichever way rounding tips the gradient).
    let bf16_weights = |name: &str| {
        let values = |v: &serde_json::Value| -> Vec<f32> { serde_json::from_value(v[name].clone()).unwrap() };
        let (f32_final, bf16_final) = (values(&fixture["final"]), values(&bf16["final"]));
        let torch_gap = f32_final.iter().zip(&bf16_final).fold(0f32, |a, (x, y)| a.max((x - y).abs()));
        (0.5 * torch_gap).max(1e-3)
    };
    let f32_replay = replay_torch_steps(file, &fixture, Some(Products::F32));
    for family in Family::available() {
        let replay = replay_torch_steps(file, &fixture, Some(Products::Bf16(family)));
        compare_with_torch(file, &replay, &bf16["steps"], &bf16["final"], (3e-3, 1e-2, &bf16_weights));
        let moved = replay.steps.iter().zip(&f32_replay.steps).any(|(a, b)| (a.0 - b.0).abs() > 1e-5 * b.0.abs());
        assert!(moved, "{family:?}: the bf16 losses equal the f32 ones");
    }
}

fn torch_fixture(file: &str) -> serde_json::Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(file);
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// Per-step (loss, gradient norm, learning rate) and the final weights of a replay.
struct Replay {
    steps: Vec<(f64, f64, f64)>,
    model: nergrid::model::TokenClassifier,
}

/// Replays the fixture's steps on the fused engine with `products`, or (`None`) on the graph
/// engine in fp32.
fn replay_torch_steps(file: &str, fixture: &serde_json::Value, products: Option<Products>) -> Replay {
    use nergrid::model::encoder::HostBatch;
    use nergrid::model::params::{model_specs, new_var, Params};
    use nergrid::model::{fused, TokenClassifier};
    use nergrid::train::clip::{clip_coefficient, global_norm_host};
    use nergrid::train::graph::GraphEngine;
    use nergrid::train::optimizer::{AdamW, AdamWConfig};
    use nergrid::train::schedule::LinearSchedule;

    let mut cfg = Config::from_json(&fixture["config"].to_string(), Path::new("fixture.json")).unwrap();
    // The fixture trains without dropout (the fused replay passes none; the graph engine
    // takes the model's probabilities).
    (cfg.hidden_dropout, cfg.attention_dropout, cfg.classifier_dropout) = (0.0, 0.0, 0.0);
    let num_labels = fixture["num_labels"].as_u64().unwrap() as usize;
    let labels: Vec<String> = (0..num_labels).map(|i| format!("L{i}")).collect();

    // The fixture's formula weights: k is the parameter's rank in sorted name order (the
    // parameters themselves stay in nergrid's order, which the fused path relies on).
    let specs = model_specs(&cfg, num_labels);
    let mut sorted: Vec<&str> = specs.iter().map(|s| s.name.as_str()).collect();
    sorted.sort_unstable();
    let vars = specs
        .iter()
        .map(|spec| {
            let k = sorted.binary_search(&spec.name.as_str()).unwrap();
            let n: usize = spec.shape.iter().product();
            let values = (0..n)
                .map(|i| {
                    let base = (0.37 * i as f64 + 1.3 * k as f64).sin();
                    let norm = spec.name.ends_with("LayerNorm.weight") || spec.name.ends_with("layer_norm.weight");
                    (if norm { 1.0 + 0.1 * base } else { 0.08 * base }) as f32
                })
                .collect();
            (spec.name.clone(), new_var(values, &spec.shape, &Device::Cpu).unwrap())
        })
        .collect();
    let model = TokenClassifier::new(cfg.clone(), labels, Params::new(vars));

    let weight_decay = fixture["weight_decay"].as_f64().unwrap();
    let mut optimizer = AdamW::new(model.params(), AdamWConfig::with_weight_decay(weight_decay)).unwrap();
    let decayed: Vec<String> = model
        .params()
        .iter()
        .zip(optimizer.decay_mask())
        .filter(|(_, decays)| *decays)
        .map(|((name, _), _)| name.to_string())
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    let torch_decayed: Vec<String> = serde_json::from_value(fixture["decay"].clone()).unwrap();
    assert_eq!(decayed, torch_decayed, "{file}: weight-decay groups");

    let steps = fixture["steps"].as_array().unwrap().len();
    let lr = fixture["learning_rate"].as_f64().unwrap();
    let warmup = fixture["warmup_steps"].as_u64().unwrap() as usize;
    let schedule = LinearSchedule::new(lr, steps, warmup, 0.0);
    let max_norm = fixture["max_grad_norm"].as_f64().unwrap();
    let batches = fixture["batches"].as_array().unwrap();
    let mut grads = fused::zero_grads(model.params());
    let train_cfg = TrainConfig { weight_decay, max_length: 64, batch_size: 8, ..TrainConfig::default() };
    let mut engine = products.is_none().then(|| GraphEngine::new(&model, &train_cfg, &Device::Cpu).unwrap());
    let mut out = Vec::new();
    for s in 0..steps {
        let b = &batches[s % batches.len()];
        let ids: Vec<Vec<u32>> = serde_json::from_value(b["ids"].clone()).unwrap();
        let rows: Vec<Vec<i64>> = serde_json::from_value(b["targets"].clone()).unwrap();
        let batch = HostBatch::new(&ids, &cfg);
        let targets: Vec<i64> =
            rows.iter().flat_map(|r| r.iter().copied().chain(std::iter::repeat(-100)).take(batch.seq)).collect();
        let labelled = targets.iter().filter(|&&t| t != -100).count() as f64;
        let step_lr = schedule.lr(s);
        match (&mut engine, products) {
            (Some(engine), _) => {
                let outcome = engine.step(&[(batch, targets)], labelled, s as u64, step_lr, max_norm).unwrap();
                assert!(outcome.applied);
                out.push((outcome.loss, outcome.grad_norm, step_lr));
            }
            (None, products) => {
                let products = products.expect("the fused replay has its products");
                grads.iter_mut().for_each(|g| g.fill(0.0));
                let loss =
                    fused::loss_and_grads(products, &model, &batch, &targets, labelled, None, &mut grads).unwrap();
                let norm = global_norm_host(&grads);
                out.push((loss, norm, step_lr));
                optimizer.step_host(&mut grads, step_lr, clip_coefficient(norm, max_norm)).unwrap();
            }
        }
    }
    Replay { steps: out, model }
}

/// The absolute tolerance of a final weight, by parameter name.
type WeightTolerance<'a> = &'a dyn Fn(&str) -> f32;

/// Relative tolerances of loss and gradient norm, absolute of each final weight.
fn compare_with_torch(
    file: &str,
    replay: &Replay,
    steps: &serde_json::Value,
    last: &serde_json::Value,
    tol: (f64, f64, WeightTolerance),
) {
    let steps = steps.as_array().unwrap();
    assert_eq!(steps.len(), replay.steps.len(), "{file}: steps");
    for (s, (want, &(loss, norm, lr))) in steps.iter().zip(&replay.steps).enumerate() {
        let close = |got: f64, key: &str, tol: f64| {
            let w = want[key].as_f64().unwrap();
            assert!((got - w).abs() <= tol * w.abs().max(1e-3), "{file} step {s}: {key} {got} vs torch {w}");
        };
        close(lr, "lr", 1e-12);
        close(loss, "loss", tol.0);
        close(norm, "grad_norm", tol.1);
    }
    for (name, want) in last.as_object().unwrap() {
        let got = replay.model.params().get(name).as_tensor().flatten_all().unwrap().to_vec1::<f32>().unwrap();
        let want: Vec<f32> = serde_json::from_value(want.clone()).unwrap();
        let worst = got.iter().zip(&want).fold(0f32, |a, (x, y)| a.max((x - y).abs()));
        let limit = (tol.2)(name);
        assert!(worst < limit, "{file} {name}: final weights differ from torch by {worst} (limit {limit})");
    }
}

/// A real sweep through the binary on a folded toy corpus with early stopping and half of each
/// training split, on both engines: the runs record their fold, their subsample, where they
/// stopped and the engine that ran.
#[test]
fn a_folded_sweep_records_folds_subsamples_and_early_stopping() {
    let tmp = tempfile::tempdir().unwrap();
    let model_dir = tmp.path().join("model");
    std::fs::create_dir(&model_dir).unwrap();
    tiny_model_dir(&model_dir);
    let corpus: String = toy_corpus(0..80)
        .iter()
        .map(|s| s.words.iter().zip(&s.tags).map(|(w, t)| format!("{w}\t{t}\n")).collect::<String>() + "\n")
        .collect();
    let data = tmp.path().join("toy.conll");
    std::fs::write(&data, corpus).unwrap();
    let spec = tmp.path().join("folds.toml");
    let text = format!(
        "[experiment]\nname = \"toyfolds\"\noutput_dir = \"{out}\"\n\n[models.tiny]\npath = \"{model}\"\n\n\
         [datasets.toy]\npath = \"{data}\"\nsplit = {{ folds = 2, validation = 0.25, seed = 3 }}\n\n\
         [grid]\nmodels = [\"tiny\"]\nschemes = [\"BIO\"]\nlearning_rates = [3e-3]\ndatasets = [\"toy\"]\nseeds = [1]\n\
         engine = [\"fused\", \"graph\"]\n\n\
         [train]\nepochs = 3\nmax_length = 32\nearly_stopping_patience = 1\ntrain_fraction = 0.5\n\n\
         [schedule]\ndevices = \"cpu\"\nthreads_per_run = 1\n",
        out = tmp.path().join("results").display(),
        model = model_dir.display(),
        data = data.display()
    );
    std::fs::write(&spec, text).unwrap();
    let out = assert_cmd::Command::cargo_bin("nergrid").unwrap().arg("run").arg(&spec).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let folds = assert_cmd::Command::cargo_bin("nergrid")
        .unwrap()
        .args(["data", "split"])
        .arg(&data)
        .args(["--folds", "2", "--validation-size", "0.25", "--seed", "3"])
        .output()
        .unwrap();
    let folds: serde_json::Value = serde_json::from_slice(&folds.stdout).unwrap();
    let indices =
        |v: &serde_json::Value| -> Vec<u64> { v.as_array().unwrap().iter().map(|i| i.as_u64().unwrap()).collect() };
    let runs = tmp.path().join("results/runs");
    let mut seen = Vec::new();
    for entry in std::fs::read_dir(&runs).unwrap() {
        let dir = entry.unwrap().path();
        let read = |name: &str| std::fs::read_to_string(dir.join(name)).unwrap();
        let result: serde_json::Value = serde_json::from_str(&read("result.json")).unwrap();
        assert_eq!(result["status"], "done", "{result}");
        let fold = result["params"]["fold"].as_u64().unwrap();
        seen.push(fold);
        let details = &result["details"];
        assert_eq!(details["split"]["fold"], fold);
        assert_eq!(details["engine"], result["params"]["engine"]);
        assert_eq!(details["precision"], "fp32");
        match details["engine"].as_str().unwrap() {
            "graph" => assert_eq!(details["transfers_per_step"], serde_json::json!({"to_device": 1, "to_host": 1})),
            _ => assert!(details["transfers_per_step"].is_null(), "{details}"),
        }
        assert_eq!(details["split"]["train_fraction"], 0.5);
        // The fold's test and validation parts, and half of its train part (nested order kept).
        let split: serde_json::Value = serde_json::from_str(&read("split.json")).unwrap();
        let want = &folds["folds"][fold as usize];
        assert_eq!(indices(&split["test"]), indices(&want["test"]));
        assert_eq!(indices(&split["validation"]), indices(&want["validation"]));
        let (kept, whole) = (indices(&split["train"]), indices(&want["train"]));
        assert_eq!(kept.len(), whole.len().div_ceil(2));
        let positions: Vec<usize> = kept.iter().map(|i| whole.iter().position(|w| w == i).unwrap()).collect();
        assert!(positions.windows(2).all(|p| p[0] < p[1]), "kept in the split's order");
        // epochs.csv ends where training stopped, and result.json says so.
        let stopping = &details["early_stopping"];
        assert_eq!(stopping["patience"], 1);
        let rows = read("epochs.csv").lines().count() - 1;
        assert_eq!(stopping["epochs_run"], rows as u64);
        match stopping["stopped_epoch"].as_u64() {
            Some(epoch) => assert!(epoch as usize == rows && rows < 3, "{stopping}"),
            None => assert_eq!(rows, 3, "{stopping}"),
        }
    }
    seen.sort_unstable();
    assert_eq!(seen, [0, 0, 1, 1]);
}

// ---------------------------------------------------------------------------------------
// The graph engine through `train::train` on the CPU: the code a GPU run takes.

use nergrid::model::transfer::Transfers;
use nergrid::train::{Engine, Precision};

fn step_losses(events: &[TrainEvent]) -> Vec<f64> {
    events.iter().filter_map(|e| if let TrainEvent::Step { loss, .. } = e { Some(*loss) } else { None }).collect()
}

/// Without dropout both engines compute the same function: a full epoch with warmup,
/// clipping that bites, both weight-decay groups and gradient accumulation gives the same
/// per-step losses.
#[test]
fn graph_engine_steps_equal_the_fused_engines() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tiny_model_dir(tmp.path());
    let base = TrainConfig {
        epochs: 1,
        dropout: Some(0.0),
        grad_accum: 2,
        warmup_steps: 4,
        max_grad_norm: 0.5,
        weight_decay: 0.1,
        ..toy_config(8)
    };
    let (mut fused_events, mut graph_events) = (Vec::new(), Vec::new());
    let fused = run_toy(&dir, &TrainConfig { engine: Engine::Fused, ..base.clone() }, &mut fused_events);
    let graph = run_toy(&dir, &TrainConfig { engine: Engine::Graph, ..base }, &mut graph_events);
    assert_eq!((fused.engine, graph.engine), (Engine::Fused, Engine::Graph));
    let (a, b) = (step_losses(&fused_events), step_losses(&graph_events));
    assert_eq!(a.len(), 13);
    assert!(a[0] > a[12] * 1.5, "the epoch learns: {a:?}");
    for (step, (x, y)) in a.iter().zip(&b).enumerate() {
        assert!((x - y).abs() <= 1e-4 * x.abs(), "step {}: fused {x} vs graph {y}", step + 1);
    }
    let (x, y) = (fused.epochs[0].val_loss, graph.epochs[0].val_loss);
    assert!((x - y).abs() <= 1e-4 * x, "validation loss {x} vs {y}");
}

/// Validation and test on the same sentences, validation F1 forced to peak at epoch 2: the
/// test evaluation sees exactly epoch 2's predictions, and the exported model is the run's.
fn restores_and_exports_the_best_epoch(precision: Precision) -> Trained {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tiny_model_dir(tmp.path());
    let seen = std::cell::RefCell::new(Vec::new());
    let forced = |gold: &[Vec<String>], pred: &[Vec<String>]| {
        let mut seen = seen.borrow_mut();
        let f1 = [0.5, 0.9, 0.6, 0.7].get(seen.len()).copied().unwrap_or(0.0);
        seen.push(pred.to_vec());
        Ok(EvalScores { f1, ..entity_scores(gold, pred)? })
    };
    // A learning rate low enough that predictions still change after epoch 2.
    let cfg = TrainConfig { epochs: 4, engine: Engine::Graph, precision, learning_rate: 5e-4, ..toy_config(4) };
    let (train_part, held_out) = (toy_corpus(0..200), toy_corpus(200..240));
    let outcome =
        train_dir(&dir, &toy_labels(), &train_part, &held_out, &held_out, &cfg, &Device::Cpu, &forced, &mut |_| {})
            .unwrap();
    let seen = seen.into_inner();
    assert_eq!((outcome.best_epoch, seen.len()), (2, 5));
    assert_eq!(seen[4], seen[1], "{precision:?}: the test saw other weights than epoch 2's");
    assert_ne!(seen[3], seen[1], "{precision:?}: the last epoch predicts differently");
    let out = tmp.path().join("export");
    outcome.save_model(&out).unwrap();
    let files = model::resolve(out.to_str().unwrap()).unwrap();
    let reloaded = model::load_model(&files, &toy_labels(), 1, &Device::Cpu).unwrap();
    for ((name, a), (_, b)) in outcome.model.params().iter().zip(reloaded.model.params().iter()) {
        assert_eq!(a.dtype(), candle_core::DType::F32, "{name}: export the f32 masters");
        let values = |v: &candle_core::Var| v.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        assert_eq!(values(a), values(b), "{name}");
    }
    outcome
}

#[test]
fn graph_engine_restores_and_exports_the_best_epoch() {
    restores_and_exports_the_best_epoch(Precision::Fp32);
    restores_and_exports_the_best_epoch(Precision::Bf16);
}

/// With dropout (masks drawn on the device), in every precision, the toy corpus is learnt to
/// the fused engine's threshold; runs repeat exactly.
#[test]
fn graph_engine_learns_the_toy_corpus_in_every_precision() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tiny_model_dir(tmp.path());
    for precision in [Precision::Fp32, Precision::Bf16, Precision::Fp16] {
        let cfg = TrainConfig { engine: Engine::Graph, precision, ..toy_config(5) };
        let mut events = Vec::new();
        let outcome = run_toy(&dir, &cfg, &mut events);
        let best = &outcome.epochs[outcome.best_epoch - 1];
        assert!(best.val.f1 > 0.9, "{precision:?}: validation F1 {:?}", outcome.epochs);
        assert!(outcome.test.f1 > 0.9, "{precision:?}: test F1 {:?}", outcome.test);
        assert_eq!(outcome.engine, Engine::Graph);
        // The scaler starts at 2^16: the tiny model's gradients do not overflow float16.
        assert_eq!(outcome.skipped_steps, 0, "{precision:?}");
        if precision == Precision::Bf16 {
            let again = run_toy(&dir, &cfg, &mut Vec::new());
            assert_eq!(
                step_losses(&events),
                step_losses(&{
                    let mut e = Vec::new();
                    run_toy(&dir, &cfg, &mut e);
                    e
                })
            );
            assert_eq!(again.test_pred, outcome.test_pred);
        }
    }
    // Dropout is on: the same run without it trains to other losses.
    let cfg = TrainConfig { engine: Engine::Graph, epochs: 1, ..toy_config(5) };
    let (mut with, mut without) = (Vec::new(), Vec::new());
    run_toy(&dir, &cfg, &mut with);
    run_toy(&dir, &TrainConfig { dropout: Some(0.0), ..cfg }, &mut without);
    assert_ne!(step_losses(&with)[1..], step_losses(&without)[1..]);
}

/// Every host <-> device copy of the graph engine is counted: a step uploads each
/// micro-batch once and downloads once (its loss and gradient norm), dropout included.
#[test]
fn a_graph_step_copies_each_micro_batch_up_and_two_numbers_down() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tiny_model_dir(tmp.path());
    for grad_accum in [1, 4] {
        let cfg = TrainConfig { engine: Engine::Graph, epochs: 1, grad_accum, ..toy_config(2) };
        let outcome = run_toy(&dir, &cfg, &mut Vec::new());
        assert_eq!(outcome.transfers_per_step, Some(Transfers { to_device: grad_accum as u64, to_host: 1 }));
    }
    let fused = run_toy(&dir, &TrainConfig { epochs: 1, ..toy_config(2) }, &mut Vec::new());
    assert_eq!((fused.engine, fused.transfers_per_step), (Engine::Fused, None));
}

#[test]
fn an_engine_that_cannot_compute_the_precision_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tiny_model_dir(tmp.path());
    let cfg = TrainConfig { precision: Precision::Fp16, ..toy_config(1) };
    let err = train_only(&dir, &cfg, 0..4).unwrap_err().to_string();
    assert!(err.contains("the fused engine computes precision fp32, tf32, bf16, not fp16"), "{err}");
}
