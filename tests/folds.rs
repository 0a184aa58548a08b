//! k-fold cross-validation and learning curves through the binary: `data split --folds` on
//! every golden case, a folded grid's plan, pairs and report, a learning-curve grid's plot,
//! and the spec errors of both.

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use assert_cmd::Command;
use serde_json::Value;

fn nergrid() -> Command {
    Command::cargo_bin("nergrid").unwrap()
}

fn shared() -> PathBuf {
    std::env::var_os("NERGRID_SHARED")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared"))
}

fn usizes(value: &Value) -> Vec<u64> {
    value.as_array().unwrap().iter().map(|v| v.as_u64().unwrap()).collect()
}

/// A CoNLL file of `n` one-word sentences.
fn corpus_file(dir: &Path, n: usize) -> PathBuf {
    let path = dir.join(format!("n{n}.conll"));
    if !path.exists() {
        let text: String = (0..n).map(|i| format!("w{i}\tO\n\n")).collect();
        fs::write(&path, text).unwrap();
    }
    path
}

#[test]
fn every_kfold_case_matches_through_the_cli() {
    let text = fs::read_to_string(shared().join("fixtures/kfold_cases.jsonl")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut mismatches = Vec::new();
    let mut cases = 0;
    for line in text.lines() {
        let case: Value = serde_json::from_str(line).unwrap();
        cases += 1;
        let id = case["id"].as_str().unwrap();
        let file = corpus_file(dir.path(), case["n"].as_u64().unwrap() as usize);
        let mut command = nergrid();
        command.args(["data", "split"]).arg(&file);
        command.args(["--folds", &case["folds_k"].to_string(), "--seed", &case["seed"].to_string()]);
        if !case["validation"].is_null() {
            command.args(["--validation-size", &case["validation"].to_string()]);
        }
        let out = command.args(["--format", "json"]).output().unwrap();
        if !out.status.success() {
            mismatches.push(format!("{id}: exit {:?}: {}", out.status.code(), String::from_utf8_lossy(&out.stderr)));
            continue;
        }
        let got: Value = serde_json::from_slice(&out.stdout).unwrap();
        let (got, want) = (got["folds"].as_array().unwrap(), case["folds"].as_array().unwrap());
        if got.len() != want.len() {
            mismatches.push(format!("{id}: {} folds, want {}", got.len(), want.len()));
            continue;
        }
        for (i, (g, w)) in got.iter().zip(want).enumerate() {
            let (train, validation) = match w.get("train") {
                Some(train) => (usizes(train), usizes(&w["validation"])),
                None => (usizes(&w["train_part"]), Vec::new()),
            };
            for (name, want) in [("test", usizes(&w["test"])), ("train", train), ("validation", validation)] {
                if usizes(&g[name]) != want {
                    mismatches.push(format!("{id} fold {i}: {name} differs"));
                }
            }
        }
    }
    assert_eq!(cases, 408);
    assert!(mismatches.is_empty(), "{} of {cases} cases differ:\n{}", mismatches.len(), mismatches.join("\n"));
}

#[test]
fn fold_split_errors_are_usage_errors() {
    let dir = tempfile::tempdir().unwrap();
    let file = corpus_file(dir.path(), 3);
    let run = |extra: &[&str]| {
        let out = nergrid().args(["data", "split"]).arg(&file).args(extra).output().unwrap();
        (out.status.code(), String::from_utf8_lossy(&out.stderr).into_owned())
    };
    let (code, err) = run(&["--folds", "4", "--seed", "1"]);
    assert_eq!(code, Some(2));
    assert!(err.contains("n_splits=4 greater than the number of samples: n_samples=3"), "{err}");
    let (code, err) = run(&["--folds", "2"]);
    assert_eq!(code, Some(2));
    assert!(err.contains("--seed is required with --folds"), "{err}");
    let (code, err) = run(&["--folds", "2", "--seed", "1", "--test-size", "0.5"]);
    assert_eq!(code, Some(2));
    assert!(err.contains("--test-size cannot be combined with --folds"), "{err}");
    let (code, err) = run(&["--folds", "2", "--seed", "4294967296"]);
    assert_eq!(code, Some(2));
    assert!(err.contains("split.seed: must be between 0 and 4294967295 with folds"), "{err}");
}

const FOLDED: &str = r#"[experiment]
name = "folded"
output_dir = "OUT"

[models.m]
path = "models/m"

[datasets.d]
format = "brackets"
path = "d.txt"
split = { folds = 5, validation = 0.1, seed = 67 }

[grid]
models = ["m"]
schemes = ["BIO", "BIOES"]
learning_rates = [2e-4]
datasets = ["d"]
seeds = [1, 2, 3]
"#;

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    fs::write(&path, text.replace("OUT", &dir.join("results").display().to_string())).unwrap();
    path
}

fn read_csv(path: &Path) -> Vec<BTreeMap<String, String>> {
    let mut reader = csv::Reader::from_path(path).unwrap();
    let header: Vec<String> = reader.headers().unwrap().iter().map(String::from).collect();
    reader.records().map(|r| header.iter().cloned().zip(r.unwrap().iter().map(String::from)).collect()).collect()
}

#[test]
fn a_folded_grid_has_a_fold_axis_and_fifteen_pairs() {
    let dir = tempfile::tempdir().unwrap();
    let spec = write(dir.path(), "folded.toml", FOLDED);
    let out = nergrid().args(["validate", "--no-path-check"]).arg(&spec).output().unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains("30 runs"), "{}", String::from_utf8_lossy(&out.stderr));
    let out = nergrid().args(["plan", "--format", "csv"]).arg(&spec).output().unwrap();
    let plan = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(plan.starts_with("index,id,status,model,scheme,learning_rate,dataset,fold,seed\n"), "{plan}");
    assert!(plan.contains(",m-bio-lr2e-4-d-f4-s3-"), "{plan}");
    nergrid().args(["run", "--dry-run"]).arg(&spec).assert().success();
    nergrid().arg("report").arg(&spec).assert().success();
    let root = dir.path().join("results");

    // The pairs, recomputed from runs.csv: BIO and BIOES matched on (fold, seed).
    let runs = read_csv(&root.join("runs.csv"));
    assert_eq!(runs.len(), 30);
    let f1 = |scheme: &str, fold: &str, seed: &str| -> f64 {
        let row = runs.iter().find(|r| r["scheme"] == scheme && r["fold"] == fold && r["seed"] == seed).unwrap();
        row["test_f1"].parse().unwrap()
    };
    let mut diffs = Vec::new();
    for fold in ["0", "1", "2", "3", "4"] {
        for seed in ["1", "2", "3"] {
            diffs.push(f1("BIO", fold, seed) - f1("BIOES", fold, seed));
        }
    }
    let rows = read_csv(&root.join("comparisons.csv"));
    assert_eq!(rows.len(), 1, "{rows:?}");
    let row = &rows[0];
    assert_eq!((row["a"].as_str(), row["b"].as_str(), row["n_pairs"].as_str()), ("BIO", "BIOES", "15"));
    assert!(!row.contains_key("fold") && !row.contains_key("seed"), "folds and seeds are replicates: {row:?}");
    let mean = diffs.iter().sum::<f64>() / 15.0;
    assert!((row["mean_diff_f1"].parse::<f64>().unwrap() - mean).abs() < 1e-6, "{row:?} vs {mean}");
    assert!((row["sign_flip_p"].parse::<f64>().unwrap() - common::sign_flip(&diffs)).abs() < 1e-6, "{row:?}");
    assert!((row["smallest_p"].parse::<f64>().unwrap() - 2.0 / 32768.0).abs() < 1e-6, "{row:?}");

    let cells = read_csv(&root.join("cells.csv"));
    assert_eq!(cells.len(), 2);
    assert!(cells.iter().all(|c| c["n"] == "15"), "{cells:?}");
    let md = fs::read_to_string(root.join("report.md")).unwrap();
    for text in ["## Every cell over folds × seeds", "**Folds**: runs are matched on (fold, seed)", "| n pairs |"] {
        assert!(md.contains(text), "report.md lacks {text:?}");
    }
    assert!(md.contains("| 15 |") && md.contains("6.10e-5"), "15 pairs and 2/2^15 in report.md");
}

#[test]
fn a_grid_without_folds_keeps_its_plan() {
    // The same grid without folds: no fold axis and the ids of a plain split.
    let dir = tempfile::tempdir().unwrap();
    let plain = FOLDED.replace("folds = 5, validation", "test = 0.2, validation");
    let spec = write(dir.path(), "plain.toml", &plain);
    let out = nergrid().args(["plan", "--format", "csv"]).arg(&spec).output().unwrap();
    let plan = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(plan.starts_with("index,id,status,model,scheme,learning_rate,dataset,seed\n"), "{plan}");
    assert_eq!(plan.lines().count(), 7);
    let out = nergrid().args(["plan", "--format", "json"]).arg(&spec).output().unwrap();
    let rows: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    for key in ["fold", "early_stopping_patience", "early_stopping_threshold", "train_fraction"] {
        assert!(rows[0]["params"].get(key).is_none(), "{key} in a plan that does not use it");
    }
}

#[test]
fn spec_errors_for_folds_and_early_stopping_are_located() {
    let dir = tempfile::tempdir().unwrap();
    let check = |name: &str, text: &str, want: &str| {
        let spec = write(dir.path(), name, text);
        let out = nergrid().arg("validate").arg(&spec).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        assert_eq!(out.status.code(), Some(2), "{name}: {err}");
        assert!(err.contains(want), "{name}: {err}");
    };
    let both = FOLDED.replace("folds = 5,", "folds = 5, test = 0.2,");
    check("both.toml", &both, "both.toml:11:9: datasets.d.split.test: cannot be combined with split.folds");
    check("one.toml", &FOLDED.replace("folds = 5", "folds = 1"), "datasets.d.split.folds: must be at least 2");
    let no_validation = FOLDED.replace(", validation = 0.1", "") + "\n[train]\nearly_stopping_patience = 1\n";
    check(
        "es.toml",
        &no_validation,
        "es.toml:21:27: train.early_stopping_patience: early stopping needs a validation split",
    );
    let own = FOLDED.replace("path = \"d.txt\"", "train = \"a.txt\"\ntest = \"b.txt\"");
    check("own.toml", &own, "datasets.d.split.folds: a corpus with its own train/validation/test files");
    let fraction = FOLDED.replace("seeds = [1, 2, 3]", "seeds = [1]\ntrain_fraction = [0.5, 1.5]");
    check("tf.toml", &fraction, "grid.train_fraction[1]: out of range, got 1.5 (a number > 0 and <= 1)");
}

const CURVE: &str = r#"[experiment]
name = "curve"
output_dir = "OUT"

[models.m]
path = "models/m"

[datasets.d]
format = "brackets"
path = "d.txt"
split = { test = 0.2, validation = 0.1, seed = 67 }

[grid]
models = ["m"]
schemes = ["BIO", "BIOES"]
learning_rates = [2e-4]
datasets = ["d"]
train_fraction = [0.25, 0.5, 1.0]
seeds = [1, 2]
"#;

#[test]
fn a_learning_curve_grid_plots_three_points_per_line() {
    let dir = tempfile::tempdir().unwrap();
    let spec = write(dir.path(), "curve.toml", CURVE);
    nergrid().args(["run", "--dry-run"]).arg(&spec).assert().success();
    nergrid().arg("report").arg(&spec).assert().success();
    let root = dir.path().join("results");
    let rows = read_csv(&root.join("learning_curve.csv"));
    assert_eq!(rows.len(), 6, "2 schemes × 3 fractions");
    assert!(rows.iter().all(|r| r["n"] == "2"));
    let plots: Vec<PathBuf> = fs::read_dir(root.join("plots"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.file_name().unwrap().to_string_lossy().starts_with("learning_curve"))
        .collect();
    assert_eq!(plots.len(), 1, "{plots:?}");
    let svg = fs::read_to_string(&plots[0]).unwrap();
    for label in ["0.25", "0.5", "1.0", "m / BIO", "m / BIOES", "train_fraction"] {
        assert!(svg.contains(label), "the learning curve lacks {label:?}");
    }
    // Each line's mean points are filled circles of radius 5, one colour per model × scheme.
    let mut means: BTreeMap<String, usize> = BTreeMap::new();
    for circle in svg.split("<circle").skip(1) {
        let tag = &circle[..circle.find("/>").unwrap()];
        let attr = |name: &str| tag.split(&format!("{name}=\"")).nth(1).map(|r| r[..r.find('"').unwrap()].to_string());
        if attr("r").as_deref() == Some("5") && attr("fill").is_some_and(|f| f != "none") {
            *means.entry(attr("fill").unwrap()).or_default() += 1;
        }
    }
    assert_eq!(means.len(), 2, "two lines: {means:?}");
    assert!(means.values().all(|&n| n == 3), "three points per line: {means:?}");
    let md = fs::read_to_string(root.join("report.md")).unwrap();
    assert!(md.contains("## Learning curve") && md.contains("learning_curve.csv"));
}
