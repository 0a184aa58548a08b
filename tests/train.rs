//! Training tests on tiny randomly initialised encoders: gradients reach every parameter,
//! a toy corpus is learnt, runs are deterministic, exports reload.

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

use nergrid::model::export::safetensors_bytes;
use nergrid::train::{self, EvalScores, TrainConfig, TrainEvent, TrainSentence};
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
fn toy_sentence(i: usize) -> TrainSentence {
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
    TrainSentence { words, tags }
}

fn toy_corpus(range: std::ops::Range<usize>) -> Vec<TrainSentence> {
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

fn toy_config(seed: u64) -> TrainConfig {
    TrainConfig { epochs: 5, batch_size: 16, learning_rate: 3e-3, max_length: 32, seed, ..TrainConfig::default() }
}

fn run_toy(dir: &Path, cfg: &TrainConfig, events: &mut Vec<TrainEvent>) -> train::TrainOutcome {
    let mut on_event = |e: TrainEvent| events.push(e);
    train::train(
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
    assert_eq!(outcome.missing_tensors, vec!["classifier.weight", "classifier.bias"]);
    assert!(outcome.unexpected_tensors.is_empty(), "{:?}", outcome.unexpected_tensors);
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
fn same_seed_same_run_other_seed_other_run() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tiny_model_dir(tmp.path());
    let cfg = TrainConfig { epochs: 1, ..toy_config(21) };
    let a = run_toy(&dir, &cfg, &mut Vec::new());
    let b = run_toy(&dir, &cfg, &mut Vec::new());
    let losses =
        |o: &train::TrainOutcome| o.epochs.iter().map(|e| (e.train_loss, e.val_loss, e.val)).collect::<Vec<_>>();
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
    let orig = model::tokenizer::encode_words(&outcome.tokenizer, &words).unwrap();
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
// Real weights: all-MiniLM-L6-v2 from `make models` (skipped when absent).

fn minilm() -> Option<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("models/all-MiniLM-L6-v2");
    if dir.join("model.safetensors").is_file() {
        Some(dir)
    } else {
        eprintln!("skipped: {} missing (make models)", dir.display());
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
fn predict_cli_tags_raw_text(outcome: &train::TrainOutcome, tmp: &Path) {
    let out = tmp.join("predict-model");
    outcome.save_model(&out).unwrap();
    let model = out.to_str().unwrap();
    let text = "today  anna karin went to stockholm";
    let json = assert_cmd::Command::cargo_bin("nergrid")
        .unwrap()
        .args(["predict", "--model", model, "--format", "json", text])
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
    use nergrid::model::fast;
    for model_type in ["bert", "distilbert", "roberta"] {
        let mut cfg = tiny_config(model_type);
        cfg.attention_dropout = 0.2;
        let m = model::random_model(&cfg, &labels(), 2, &Device::Cpu).unwrap();
        let seqs = vec![vec![2u32, 7, 8, 9, 3], vec![2, 10, 3], vec![2, 11, 12, 3]];
        let targets = [-100i64, 1, 2, 0, -100, -100, 1, -100, -100, -100, -100, 2, 0, -100, -100];
        let batch = HostBatch::new(&seqs, &cfg);
        let mut grads = fast::zero_grads(m.params());
        let loss =
            fast::loss_and_grads(Products::F32, &m, &batch, &targets, 6.0, Some(&mut Dropout::new(4)), &mut grads)
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
        let eval = fast::logits(Products::F32, &m, &batch).unwrap();
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
fn train_only(
    dir: &Path,
    cfg: &TrainConfig,
    train: std::ops::Range<usize>,
) -> Result<train::TrainOutcome, train::TrainError> {
    let mut on_event = |_| {};
    train::train(dir, &toy_labels(), &toy_corpus(train), &[], &[], cfg, &Device::Cpu, &entity_scores, &mut on_event)
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

/// 24 optimizer steps replayed against torch (tests/fixtures/torch_trajectory.py: the
/// Trainer's decay rule, torch AdamW, clip_grad_norm_, get_linear_schedule_with_warmup,
/// dropout off) from the same formula weights: nergrid's fused path, clipping, AdamW and
/// schedule give the same losses, gradient norms and final weights.
#[test]
fn optimizer_steps_follow_torch_and_the_trainer_schedule() {
    let fixture = torch_fixture();
    let replay = replay_torch_steps(&fixture, Products::F32);
    compare_with_torch(&replay, &fixture["steps"], &fixture["final"], (1e-4, 1e-4, 1e-4));
}

/// The same 24 steps with bf16 products on every kernel family of this CPU, against torch's
/// CPU autocast to bfloat16 (the Trainer's `bf16=True`). torch also rounds the products'
/// outputs (and the bias, activation and residual steps after them) to bf16 where nergrid
/// keeps f32, so the two agree to bf16's precision, not to f32's: losses within 0.3%,
/// gradient norms within 1%, final weights within 1e-3. The bf16 run must also differ from the
/// f32 trajectory (the products really are rounded).
#[test]
fn bf16_steps_follow_torch_autocast_on_every_kernel_family() {
    use nergrid::model::bf16::Family;
    let fixture = torch_fixture();
    let bf16 = &fixture["bf16"];
    let f32_replay = replay_torch_steps(&fixture, Products::F32);
    for family in Family::available() {
        let replay = replay_torch_steps(&fixture, Products::Bf16(family));
        compare_with_torch(&replay, &bf16["steps"], &bf16["final"], (3e-3, 1e-2, 1e-3));
        let moved = replay.steps.iter().zip(&f32_replay.steps).any(|(a, b)| (a.0 - b.0).abs() > 1e-5 * b.0.abs());
        assert!(moved, "{family:?}: the bf16 losses equal the f32 ones");
    }
}

fn torch_fixture() -> serde_json::Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/torch_trajectory.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// Per-step (loss, gradient norm, learning rate) and the final weights of a replay.
struct Replay {
    steps: Vec<(f64, f64, f64)>,
    model: nergrid::model::TokenClassifier,
}

fn replay_torch_steps(fixture: &serde_json::Value, products: Products) -> Replay {
    use nergrid::model::encoder::HostBatch;
    use nergrid::model::params::{model_specs, new_var, Params};
    use nergrid::model::{fast, TokenClassifier};
    use nergrid::train::clip::{clip_coefficient, global_norm_host};
    use nergrid::train::optimizer::{AdamW, AdamWConfig};
    use nergrid::train::schedule::LinearSchedule;

    let cfg = Config::from_json(&fixture["config"].to_string(), Path::new("fixture.json")).unwrap();
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
                    (if spec.name.ends_with("LayerNorm.weight") { 1.0 + 0.1 * base } else { 0.08 * base }) as f32
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
    assert_eq!(decayed, torch_decayed, "weight-decay groups");

    let steps = fixture["steps"].as_array().unwrap().len();
    let lr = fixture["learning_rate"].as_f64().unwrap();
    let warmup = fixture["warmup_steps"].as_u64().unwrap() as usize;
    let schedule = LinearSchedule::new(lr, steps, warmup, 0.0);
    let max_norm = fixture["max_grad_norm"].as_f64().unwrap();
    let batches = fixture["batches"].as_array().unwrap();
    let mut grads = fast::zero_grads(model.params());
    let mut out = Vec::new();
    for s in 0..steps {
        let b = &batches[s % batches.len()];
        let ids: Vec<Vec<u32>> = serde_json::from_value(b["ids"].clone()).unwrap();
        let rows: Vec<Vec<i64>> = serde_json::from_value(b["targets"].clone()).unwrap();
        let batch = HostBatch::new(&ids, &cfg);
        let targets: Vec<i64> =
            rows.iter().flat_map(|r| r.iter().copied().chain(std::iter::repeat(-100)).take(batch.seq)).collect();
        let labelled = targets.iter().filter(|&&t| t != -100).count() as f64;
        grads.iter_mut().for_each(|g| g.fill(0.0));
        let loss = fast::loss_and_grads(products, &model, &batch, &targets, labelled, None, &mut grads).unwrap();
        let norm = global_norm_host(&grads);
        let step_lr = schedule.lr(s);
        out.push((loss, norm, step_lr));
        optimizer.step_host(&grads, step_lr, clip_coefficient(norm, max_norm)).unwrap();
    }
    Replay { steps: out, model }
}

/// Relative tolerances of loss and gradient norm, absolute of the final weights.
fn compare_with_torch(replay: &Replay, steps: &serde_json::Value, last: &serde_json::Value, tol: (f64, f64, f32)) {
    for (s, (want, &(loss, norm, lr))) in steps.as_array().unwrap().iter().zip(&replay.steps).enumerate() {
        let close = |got: f64, key: &str, tol: f64| {
            let w = want[key].as_f64().unwrap();
            assert!((got - w).abs() <= tol * w.abs().max(1e-3), "step {s}: {key} {got} vs torch {w}");
        };
        close(lr, "lr", 1e-12);
        close(loss, "loss", tol.0);
        close(norm, "grad_norm", tol.1);
    }
    for (name, want) in last.as_object().unwrap() {
        let got = replay.model.params().get(name).as_tensor().flatten_all().unwrap().to_vec1::<f32>().unwrap();
        let want: Vec<f32> = serde_json::from_value(want.clone()).unwrap();
        let worst = got.iter().zip(&want).fold(0f32, |a, (x, y)| a.max((x - y).abs()));
        assert!(worst < tol.2, "{name}: final weights differ from torch by {worst}");
    }
}
