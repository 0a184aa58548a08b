//! Drives the real binary through the grid lifecycle: validate, plan, run (dry), a sweep
//! killed mid-way and resumed, report; plus the usage and spec error paths.

mod common;
use common::walk;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command as StdCommand, Stdio};
use std::time::{Duration, Instant};

use assert_cmd::Command;

fn nergrid() -> Command {
    Command::cargo_bin("nergrid").unwrap()
}

fn manifest_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A 24-run grid whose results go under `dir`.
fn write_spec(dir: &Path) -> PathBuf {
    let spec = dir.join("grid.toml");
    let text = format!(
        r#"[experiment]
name = "resume"
output_dir = "{out}"

[models.a]
hub = "org/model-a"
[models.b]
path = "models/b"

[datasets.toy]
format = "jsonl"
path = "toy.jsonl"

[grid]
models = ["a", "b"]
schemes = ["BIO", "BIOES"]
learning_rates = [1e-5, 2e-5, 5e-5]
datasets = ["toy"]
seeds = [1, 2]

[train]
epochs = 2
"#,
        out = dir.join("results").display()
    );
    fs::write(&spec, text).unwrap();
    spec
}

fn results(dir: &Path) -> Vec<PathBuf> {
    let runs = dir.join("results/runs");
    let mut out: Vec<PathBuf> = fs::read_dir(&runs)
        .map(|rd| rd.flatten().map(|e| e.path().join("result.json")).filter(|p| p.exists()).collect())
        .unwrap_or_default();
    out.sort();
    out
}

fn plan_statuses(spec: &Path) -> Vec<String> {
    let out = nergrid().args(["plan", "--format", "json"]).arg(spec).output().unwrap();
    assert!(out.status.success());
    let rows: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    rows.iter().map(|r| r["status"].as_str().unwrap().to_string()).collect()
}

#[test]
fn killed_sweep_resumes_with_only_the_missing_runs() {
    let dir = tempfile::tempdir().unwrap();
    let spec = write_spec(dir.path());

    let out = nergrid().args(["validate", "--no-path-check"]).arg(&spec).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("24 runs"));
    assert_eq!(plan_statuses(&spec), vec!["pending"; 24]);

    // Start a slow dry-run sweep and kill -9 it once a few runs are done.
    let bin = assert_cmd::cargo::cargo_bin("nergrid");
    let mut child = StdCommand::new(bin)
        .args(["run", "--dry-run"])
        .arg(&spec)
        .env("NERGRID_DRY_RUN_SLEEP_MS", "200")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let start = Instant::now();
    while results(dir.path()).len() < 4 {
        assert!(start.elapsed() < Duration::from_secs(60), "sweep made no progress");
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let before: Vec<(PathBuf, Vec<u8>)> =
        results(dir.path()).into_iter().map(|p| (p.clone(), fs::read(&p).unwrap())).collect();
    let done_before = before.len();
    assert!((4..24).contains(&done_before), "{done_before} runs done before the kill");
    for (path, bytes) in &before {
        serde_json::from_slice::<serde_json::Value>(bytes)
            .unwrap_or_else(|e| panic!("{}: partial file: {e}", path.display()));
    }
    let statuses = plan_statuses(&spec);
    assert_eq!(statuses.iter().filter(|s| *s == "done").count(), done_before);

    // Resume: only the missing runs execute; finished ones are untouched.
    let out = nergrid().args(["run", "--dry-run"]).arg(&spec).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains(&format!("executed {}, succeeded {}", 24 - done_before, 24 - done_before)), "{stderr}");
    assert!(stderr.contains(&format!("skipped {done_before} done")), "{stderr}");
    for (path, bytes) in &before {
        assert_eq!(&fs::read(path).unwrap(), bytes, "{} was rewritten", path.display());
    }
    assert_eq!(plan_statuses(&spec), vec!["done"; 24]);
    let leftovers: Vec<_> =
        walk(&dir.path().join("results")).into_iter().filter(|p| p.to_string_lossy().contains(".tmp.")).collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");

    // A third run does nothing.
    let out = nergrid().args(["run", "--dry-run"]).arg(&spec).output().unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("executed 0,"));

    // Report.
    let out = nergrid().arg("report").arg(&spec).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let root = dir.path().join("results");
    let md = fs::read_to_string(root.join("report.md")).unwrap();
    assert!(md.contains("DRY RUN"), "{md}");
    assert!(md.contains("24 done, 0 failed, 0 pending"), "{md}");
    let runs_csv = fs::read_to_string(root.join("runs.csv")).unwrap();
    assert_eq!(runs_csv.lines().count(), 25);
    assert!(runs_csv
        .lines()
        .next()
        .unwrap()
        .starts_with("index,id,status,dry_run,model,scheme,learning_rate,dataset,seed,"));
    let summary = fs::read_to_string(root.join("summary.csv")).unwrap();
    assert_eq!(summary.lines().count(), 13, "{summary}");
    assert!(summary.lines().nth(1).unwrap().starts_with("a,BIO,1e-5,toy,true,2,"), "{summary}");
    let pivot = fs::read_to_string(root.join("pivot_f1.csv")).unwrap();
    assert_eq!(pivot.lines().next().unwrap(), "model,scheme,dataset,dry_run,lr=1e-5,lr=2e-5,lr=5e-5");
    // Reports are deterministic.
    nergrid().arg("report").arg(&root).assert().success();
    assert_eq!(fs::read_to_string(root.join("report.md")).unwrap(), md);
}

#[test]
fn selection_force_and_rerun() {
    let dir = tempfile::tempdir().unwrap();
    let spec = write_spec(dir.path());
    nergrid().args(["run", "--dry-run", "--index", "0", "--index", "5"]).arg(&spec).assert().success();
    let statuses = plan_statuses(&spec);
    assert_eq!(statuses[0], "done");
    assert_eq!(statuses[5], "done");
    assert_eq!(statuses.iter().filter(|s| *s == "done").count(), 2);
    nergrid().args(["run", "--dry-run", "--shard", "2/4"]).arg(&spec).assert().success();
    let statuses = plan_statuses(&spec);
    for (i, s) in statuses.iter().enumerate() {
        assert_eq!(s == "done", i == 0 || i % 4 == 1, "run {i}: {s}");
    }
    let out = nergrid().args(["run", "--dry-run", "--force", "--index", "0"]).arg(&spec).output().unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("executed 1,"));
    nergrid().args(["run", "--dry-run", "--index", "99"]).arg(&spec).assert().code(2);
    nergrid().args(["run", "--dry-run", "--shard", "0/4"]).arg(&spec).assert().code(2);
}

#[test]
fn corrupted_result_is_run_again() {
    let dir = tempfile::tempdir().unwrap();
    let spec = write_spec(dir.path());
    nergrid().args(["run", "--dry-run", "--index", "0"]).arg(&spec).assert().success();
    let result = results(dir.path()).pop().unwrap();
    fs::write(&result, "{\"id\": \"trunc").unwrap();
    assert_eq!(plan_statuses(&spec)[0], "pending");
    let out = nergrid().args(["run", "--dry-run", "--index", "0"]).arg(&spec).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("unreadable result") && stderr.contains("executed 1,"), "{stderr}");
    assert_eq!(plan_statuses(&spec)[0], "done");
}

#[test]
fn spec_errors_exit_2_with_locations() {
    let dir = tempfile::tempdir().unwrap();
    let spec = dir.path().join("bad.toml");
    fs::write(&spec, "[experiment]\nname = \"x\"\n[grid]\nmodels = [\"nope\"]\nlearning_rate = [1e-5]\n").unwrap();
    let out = nergrid().arg("validate").arg(&spec).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("bad.toml:4:11: grid.models[0]: unknown model alias \"nope\""), "{stderr}");
    assert!(
        stderr.contains("bad.toml:5:1: grid.learning_rate: unknown key (did you mean \"learning_rates\"?"),
        "{stderr}"
    );
    let engine = dir.path().join("engine.toml");
    fs::write(&engine, "[experiment]\nname = \"x\"\n[train]\nengine = \"gpu\"\nprecision = \"fp8\"\n").unwrap();
    let out = nergrid().arg("validate").arg(&engine).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr
            .contains("engine.toml:4:10: train.engine: unknown value \"gpu\" (one of \"auto\", \"fused\", \"graph\")"),
        "{stderr}"
    );
    assert!(stderr.contains("engine.toml:5:13: train.precision: unknown value \"fp8\""), "{stderr}");
    assert!(stderr.contains("one of \"fp32\", \"tf32\", \"bf16\", \"fp16\""), "{stderr}");
    nergrid().arg("plan").arg(dir.path().join("missing.toml")).assert().code(2);
    nergrid().arg("frobnicate").assert().code(2);
    for sub in ["validate", "plan", "run", "report"] {
        nergrid().args([sub, "--help"]).assert().success();
    }
}

#[test]
fn study_grid_has_twelve_pinned_runs() {
    let spec = manifest_dir().join("experiments/swedish_bio_vs_bioes.toml");
    let out = nergrid().args(["plan", "--format", "json"]).arg(&spec).output().unwrap();
    assert!(out.status.success());
    let rows: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    let ids: Vec<&str> = rows.iter().map(|r| r["id"].as_str().unwrap()).collect();
    assert_eq!(
        ids,
        [
            "kb-bert-bio-lr1e-5-swedish_1177_hub-s67-03b09c3a",
            "kb-bert-bio-lr2e-5-swedish_1177_hub-s67-2d7290e8",
            "kb-bert-bio-lr5e-5-swedish_1177_hub-s67-cc43f748",
            "kb-bert-bioes-lr1e-5-swedish_1177_hub-s67-48c81857",
            "kb-bert-bioes-lr2e-5-swedish_1177_hub-s67-8cb89657",
            "kb-bert-bioes-lr5e-5-swedish_1177_hub-s67-615c5817",
            "mbert-bio-lr1e-5-swedish_1177_hub-s67-fbad18b8",
            "mbert-bio-lr2e-5-swedish_1177_hub-s67-35c75f2c",
            "mbert-bio-lr5e-5-swedish_1177_hub-s67-83ed2574",
            "mbert-bioes-lr1e-5-swedish_1177_hub-s67-7fb4de18",
            "mbert-bioes-lr2e-5-swedish_1177_hub-s67-f813aa8c",
            "mbert-bioes-lr5e-5-swedish_1177_hub-s67-5fb08b4c",
        ]
    );
    let first = &rows[0]["params"];
    assert_eq!(first["epochs"], 5);
    assert_eq!(first["batch_size"], 16);
    assert_eq!(first["max_length"], 256);
    assert_eq!(first["weight_decay"], 0.01);
    assert_eq!(first["learning_rate"], 1e-5);
    assert_eq!(first["seed"], 67);
}

#[test]
fn pivot_of_a_single_cell_grid_has_its_value() {
    // One model, scheme, rate and dataset: polars gives single-valued key columns, which once
    // made every pivot cell empty.
    let dir = tempfile::tempdir().unwrap();
    let spec = dir.path().join("one.toml");
    let text = format!(
        "[experiment]\nname = \"one\"\noutput_dir = \"{}\"\n[models.a]\nhub = \"o/a\"\n[datasets.d]\nformat = \"jsonl\"\npath = \"d.jsonl\"\n[grid]\nmodels = [\"a\"]\nschemes = [\"BIO\"]\nlearning_rates = [1e-4]\ndatasets = [\"d\"]\nseeds = [1, 2]\n",
        dir.path().join("results").display()
    );
    fs::write(&spec, text).unwrap();
    nergrid().args(["run", "--dry-run"]).arg(&spec).assert().success();
    nergrid().arg("report").arg(&spec).assert().success();
    let pivot = fs::read_to_string(dir.path().join("results/pivot_f1.csv")).unwrap();
    let row = pivot.lines().nth(1).unwrap();
    let value: f64 = row.rsplit(',').next().unwrap().parse().unwrap_or_else(|_| panic!("empty cell: {pivot}"));
    assert!((0.5..0.9).contains(&value), "{pivot}");
}

// ---------------------------------------------------------------------------------------
// A real run through the binary: a tiny BERT trained on a toy corpus, exported, then read by
// `nergrid predict`.

const TOY_FILLER: [&str; 8] = ["the", "a", "went", "to", "saw", "and", "met", "today"];
const TOY_PEOPLE: [&str; 5] = ["anna", "erik", "maria", "johan", "karin"];
const TOY_PLACES: [&str; 5] = ["stockholm", "uppsala", "paris", "berlin", "oslo"];

/// config.json, vocab.txt (every toy word whole) and random weights of a 2-layer BERT.
fn write_toy_bert(dir: &Path) {
    use nergrid::model::{self, export::safetensors_bytes, Config};
    fs::create_dir_all(dir).unwrap();
    let specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]"];
    let vocab: Vec<&str> = specials.iter().chain(&TOY_FILLER).chain(&TOY_PEOPLE).chain(&TOY_PLACES).copied().collect();
    fs::write(dir.join("vocab.txt"), vocab.join("\n") + "\n").unwrap();
    let config = format!(
        r#"{{"model_type": "bert", "vocab_size": {}, "hidden_size": 32, "num_hidden_layers": 2,
        "num_attention_heads": 2, "intermediate_size": 64, "max_position_embeddings": 64,
        "type_vocab_size": 2, "hidden_act": "gelu", "pad_token_id": 0}}"#,
        vocab.len()
    );
    fs::write(dir.join("config.json"), &config).unwrap();
    let cfg = Config::from_json(&config, Path::new("config.json")).unwrap();
    let m = model::random_model(&cfg, &["O".to_string()], 5, &candle_core::Device::Cpu).unwrap();
    fs::write(dir.join("model.safetensors"), safetensors_bytes(&m).unwrap()).unwrap();
}

/// The plain progress of a one-run sweep with its numbers checked and then redacted: epoch k's
/// line must show epoch k's validation F1 from `epochs.csv`, and every epoch must have a line.
fn plain_progress(stderr: &str, epochs_csv: &str) -> String {
    let val_f1: Vec<String> = epochs_csv
        .lines()
        .skip(1)
        .map(|row| format!("{:.4}", row.split(',').nth(4).unwrap().parse::<f64>().unwrap()))
        .collect();
    let mut shown = Vec::new();
    let lines = stderr.lines().map(|line| {
        let words: Vec<&str> = line.split(' ').collect();
        match words.iter().position(|w| *w == "epoch") {
            Some(at) if line.starts_with("  ") => {
                let epoch: usize = words[at + 1].split('/').next().unwrap().parse().unwrap();
                assert_eq!(words[at + 5], val_f1[epoch - 1], "epoch {epoch}'s line shows another F1: {line}");
                shown.push(epoch);
                format!("  [id] epoch {} loss [loss] val_f1 [val_f1 of epoch {epoch}]", words[at + 1])
            }
            _ => line
                .split(' ')
                .map(|w| match w {
                    w if w.starts_with("tiny-bio-") => "[id]".to_string(),
                    w if w.starts_with("test_f1=") => "test_f1=[f1]".to_string(),
                    w if w.ends_with('s') && w[..w.len() - 1].parse::<f64>().is_ok() => "[seconds]".to_string(),
                    w if w.parse::<usize>().is_ok() && line.starts_with("devices:") => "[threads]".to_string(),
                    w => w.to_string(),
                })
                .collect::<Vec<_>>()
                .join(" "),
        }
    });
    let text = lines.collect::<Vec<_>>().join("\n");
    assert_eq!(shown, (1..=val_f1.len()).collect::<Vec<_>>(), "one line per epoch, the last included");
    text
}

/// Sentence `i` of the toy corpus, with the character spans of its person and place.
fn toy_sentence(i: usize) -> (String, [(usize, usize, &'static str); 2]) {
    let (person, place) = (TOY_PEOPLE[i % 5], TOY_PLACES[(i / 2) % 5]);
    let before = format!("{} {} ", TOY_FILLER[i % 8], TOY_FILLER[(i + 3) % 8]);
    let middle = format!(" {} ", TOY_FILLER[(i + 5) % 8]);
    let p0 = before.len();
    let l0 = p0 + person.len() + middle.len();
    let text = format!("{before}{person}{middle}{place} {}", TOY_FILLER[(i + 1) % 8]);
    (text, [(p0, p0 + person.len(), "PER"), (l0, l0 + place.len(), "LOC")])
}

#[test]
fn a_real_run_exports_a_model_that_predict_reads() {
    let dir = tempfile::tempdir().unwrap();
    write_toy_bert(&dir.path().join("tiny-bert"));
    let corpus: String = (0..80)
        .map(|i| {
            let (text, spans) = toy_sentence(i);
            let entities: Vec<_> =
                spans.iter().map(|(s, e, t)| serde_json::json!({"start": s, "end": e, "type": t})).collect();
            format!("{}\n", serde_json::json!({"text": text, "entities": entities}))
        })
        .collect();
    fs::write(dir.path().join("toy.jsonl"), corpus).unwrap();
    let spec = dir.path().join("real.toml");
    let text = "[experiment]\nname = \"real\"\noutput_dir = \"results\"\n[models.tiny]\npath = \"tiny-bert\"\n\
        [datasets.toy]\nformat = \"jsonl\"\npath = \"toy.jsonl\"\nsplit = { test = 0.2, validation = 0.1, seed = 7 }\n\
        [grid]\nmodels = [\"tiny\"]\nschemes = [\"BIO\"]\nlearning_rates = [1e-2]\ndatasets = [\"toy\"]\nseeds = [3]\n\
        [train]\nepochs = 2\nbatch_size = 8\nmax_length = 32\nsave_model = true\n[schedule]\ndevices = \"cpu\"\n";
    fs::write(&spec, text).unwrap();

    let out = nergrid().current_dir(dir.path()).args(["run", "real.toml"]).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && stderr.contains("executed 1, succeeded 1"), "{stderr}");
    let result_path = results(dir.path()).pop().expect("a result.json");
    let epochs_csv = fs::read_to_string(result_path.with_file_name("epochs.csv")).unwrap();
    insta::assert_snapshot!("real_run_plain_progress", plain_progress(&stderr, &epochs_csv));
    let result: serde_json::Value = serde_json::from_str(&fs::read_to_string(&result_path).unwrap()).unwrap();
    assert_eq!(result["status"], "done", "{result}");
    assert_eq!(result["dry_run"], false, "{result}");
    let f1 = result["test"]["f1"].as_f64().unwrap();
    assert!(f1 > 0.9, "test F1 {f1} after 2 epochs: {result}");

    let model = result_path.parent().unwrap().join("model");
    let config: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(model.join("config.json")).unwrap()).unwrap();
    assert_eq!(config["id2label"].as_object().map(|m| m.len()), Some(5), "{config}");
    // Not sentences of the corpus: pairs of a person and a place it never has together.
    let texts = ["a met anna to uppsala today", "today and erik saw  oslo a"];
    let out = nergrid()
        .args(["predict", "--model", model.to_str().unwrap(), "--format", "jsonl", texts[0], texts[1]])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let lines: Vec<serde_json::Value> =
        String::from_utf8_lossy(&out.stdout).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 2);
    let want = [
        vec![(6, 10, "PER", "anna"), (14, 21, "LOC", "uppsala")],
        vec![(10, 14, "PER", "erik"), (20, 24, "LOC", "oslo")],
    ];
    for ((line, text), want) in lines.iter().zip(texts).zip(want) {
        let found: Vec<(usize, usize, &str, &str)> = line["entities"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| {
                let n = |k: &str| e[k].as_u64().unwrap() as usize;
                (n("start"), n("end"), e["type"].as_str().unwrap(), e["text"].as_str().unwrap())
            })
            .collect();
        assert_eq!(found, want, "{text}");
    }
}

#[test]
fn predict_exits_2_for_a_missing_or_corrupt_model_directory() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("no-model");
    let out = nergrid().args(["predict", "--model", missing.to_str().unwrap(), "a text"]).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("no such model directory"), "{stderr}");
    let corrupt = dir.path().join("corrupt");
    fs::create_dir(&corrupt).unwrap();
    fs::write(corrupt.join("config.json"), "{ not json").unwrap();
    fs::write(corrupt.join("model.safetensors"), "not weights").unwrap();
    let out = nergrid().args(["predict", "--model", corrupt.to_str().unwrap(), "a text"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn validate_refuses_an_invalid_parameter_and_missing_local_paths() {
    let dir = tempfile::tempdir().unwrap();
    let spec = dir.path().join("s.toml");
    let text = "[experiment]\nname = \"x\"\n[models.m]\npath = \"${NERGRID_TEST_UNSET_ROOT}/m\"\n\
        [datasets.d]\npath = \"d.jsonl\"\nsplit = { test = 0.2, seed = 1 }\n\
        [grid]\nmodels = [\"m\"]\nschemes = [\"BIO\"]\nlearning_rates = [1e-5]\ndatasets = [\"d\"]\n";
    fs::write(&spec, format!("{text}[train]\nselect_best_by = \"los\"\n")).unwrap();
    let out = nergrid().current_dir(dir.path()).args(["validate", "s.toml"]).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("s.toml:14:18: train.select_best_by: unknown value \"los\" (did you mean \"loss\"?"),
        "{stderr}"
    );

    fs::write(&spec, text).unwrap();
    let out = nergrid()
        .current_dir(dir.path())
        .args(["validate", "s.toml"])
        .env_remove("NERGRID_TEST_UNSET_ROOT")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("s.toml:4:8: models.m.path: environment variable NERGRID_TEST_UNSET_ROOT is not set"),
        "{stderr}"
    );
    assert!(stderr.contains("s.toml:6:8: datasets.d.path: no such file: d.jsonl"), "{stderr}");
    let out = nergrid().current_dir(dir.path()).args(["validate", "--no-path-check", "s.toml"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    // `run` stops before starting any run, with the same report.
    let out = nergrid()
        .current_dir(dir.path())
        .args(["run", "s.toml"])
        .env_remove("NERGRID_TEST_UNSET_ROOT")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("datasets.d.path: no such file") && !stderr.contains("start #"), "{stderr}");
    assert!(!dir.path().join("results").exists(), "nothing ran");
}
