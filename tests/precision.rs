//! `[train] precision` through the real binary: a tiny model trained for one epoch on the demo
//! corpus in bf16 with each kernel family this CPU has (forced by NERGRID_CPU_KERNELS), and in
//! fp32; `log.txt` and `result.json` say which kernels ran. fp16, which the fused CPU engine
//! cannot compute (the graph engine can), is refused by `nergrid validate` with its location.

use assert_cmd::Command;
use candle_core::Device;
use nergrid::model::bf16::{Family, FORCE_VARIABLE};
use nergrid::model::{self, Config};
use std::fs;
use std::path::{Path, PathBuf};

mod common;

fn nergrid() -> Command {
    Command::cargo_bin("nergrid").unwrap()
}

fn demo_corpus() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("experiments/data/demo_medical_en.jsonl")
}

/// A 2-layer BERT with random weights and a word-level vocabulary of the demo corpus.
fn tiny_model(dir: &Path) -> PathBuf {
    let text = fs::read_to_string(demo_corpus()).unwrap();
    let mut words: Vec<String> = text
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .flat_map(|v| v["text"].as_str().unwrap_or("").split_whitespace().map(str::to_lowercase).collect::<Vec<_>>())
        .collect();
    words.sort();
    words.dedup();
    let vocab: Vec<String> =
        ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"].map(String::from).into_iter().chain(words).collect();
    let model_dir = dir.join("tiny");
    fs::create_dir_all(&model_dir).unwrap();
    fs::write(model_dir.join("vocab.txt"), vocab.join("\n") + "\n").unwrap();
    let config = format!(
        r#"{{"model_type": "bert", "architectures": ["BertModel"], "vocab_size": {},
        "hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 4,
        "intermediate_size": 64, "max_position_embeddings": 64, "type_vocab_size": 2,
        "hidden_act": "gelu", "pad_token_id": 0}}"#,
        vocab.len()
    );
    fs::write(model_dir.join("config.json"), &config).unwrap();
    let cfg = Config::from_json(&config, Path::new("config.json")).unwrap();
    let m = model::random_model(&cfg, &["O".to_string(), "X".to_string()], 5, &Device::Cpu).unwrap();
    fs::write(model_dir.join("model.safetensors"), model::export::safetensors_bytes(&m).unwrap()).unwrap();
    model_dir
}

fn spec(dir: &Path, precision: &str) -> PathBuf {
    let model = tiny_model(dir);
    let text = format!(
        r#"[experiment]
name = "precision"
output_dir = "{out}"

[models.tiny]
path = "{model}"

[datasets.demo]
format = "jsonl"
path = "{data}"
split = {{ test = 0.2, validation = 0.1, seed = 67 }}

[grid]
models = ["tiny"]
schemes = ["BIO"]
learning_rates = [3e-3]
datasets = ["demo"]
seeds = [1]

[train]
epochs = 1
max_length = 32
precision = "{precision}"

[schedule]
devices = "cpu"
"#,
        out = dir.join("results").display(),
        model = model.display(),
        data = demo_corpus().display(),
    );
    let path = dir.join("spec.toml");
    fs::write(&path, text).unwrap();
    path
}

/// Runs the spec with `kernels` forced (or not); returns the run's log.txt and result.json.
fn run(dir: &Path, spec: &Path, kernels: Option<&str>) -> (String, serde_json::Value) {
    let mut cmd = nergrid();
    cmd.arg("run").arg(spec).env_remove(FORCE_VARIABLE);
    if let Some(k) = kernels {
        cmd.env(FORCE_VARIABLE, k);
    }
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let files = common::walk(&dir.join("results"));
    let read = |name: &str| {
        let path =
            files.iter().find(|p| p.file_name().is_some_and(|n| n == name)).unwrap_or_else(|| panic!("no {name}"));
        fs::read_to_string(path).unwrap()
    };
    (read("log.txt"), serde_json::from_str(&read("result.json")).unwrap())
}

#[test]
fn bf16_runs_complete_with_each_forced_kernel_family_and_say_so() {
    for family in Family::available() {
        let tmp = tempfile::tempdir().unwrap();
        let spec = spec(tmp.path(), "bf16");
        let (log, result) = run(tmp.path(), &spec, Some(family.name()));
        let line = format!("bf16 kernels: {}", family.name());
        assert!(log.contains(&line), "{family:?}: log.txt lacks {line:?}:\n{log}");
        assert_eq!(result["status"], "done", "{result}");
        assert_eq!(result["details"]["precision"], "bf16");
        assert_eq!(result["details"]["kernels"], family.name());
        assert_eq!(result["params"]["precision"], "bf16");
        let f1 = result["test"]["f1"].as_f64().unwrap();
        assert!(f1.is_finite(), "{result}");
    }
}

#[test]
fn fp32_runs_record_the_f32_kernels() {
    let tmp = tempfile::tempdir().unwrap();
    let spec = spec(tmp.path(), "fp32");
    let (log, result) = run(tmp.path(), &spec, Some("emulated"));
    assert!(log.contains("matrix products: fp32 in f32 (gemm"), "{log}");
    let kernels = result["details"]["kernels"].as_str().unwrap();
    assert!(kernels.starts_with("gemm"), "{kernels}");
    assert_eq!(result["details"]["precision"], "fp32");
}

#[test]
fn an_unknown_forced_family_fails_the_run_with_the_variable_named() {
    let tmp = tempfile::tempdir().unwrap();
    let spec = spec(tmp.path(), "bf16");
    nergrid().arg("run").arg(&spec).env(FORCE_VARIABLE, "sse9").assert().failure();
    let result = common::walk(&tmp.path().join("results"))
        .into_iter()
        .find(|p| p.ends_with("result.json"))
        .map(|p| fs::read_to_string(p).unwrap())
        .unwrap();
    assert!(result.contains("NERGRID_CPU_KERNELS: unknown kernel family \\\"sse9\\\""), "{result}");
}

#[test]
fn fp16_is_refused_by_validate_with_its_location() {
    let tmp = tempfile::tempdir().unwrap();
    let spec = spec(tmp.path(), "fp16");
    let out = nergrid().arg("validate").arg(&spec).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    let want = "spec.toml:23:13: train.precision: precision \"fp16\" is not computed by engine \"auto\" (the fused \
                engine on the CPU), which supports \"fp32\", \"tf32\", \"bf16\"; the graph engine (engine = \"graph\") \
                supports \"fp32\", \"tf32\", \"bf16\", \"fp16\"";
    assert!(err.contains(want), "{err}");
    let bad = spec.with_file_name("fp8.toml");
    fs::write(&bad, fs::read_to_string(&spec).unwrap().replace("\"fp16\"", "\"fp8\"")).unwrap();
    let out = nergrid().arg("validate").arg(&bad).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("fp8.toml:23:13: train.precision: unknown value \"fp8\""), "{err}");
    assert!(err.contains("\"fp32\", \"tf32\", \"bf16\", \"fp16\""), "{err}");
}
