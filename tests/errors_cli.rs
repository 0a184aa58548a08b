//! `nergrid eval --errors` end to end: every case of nervaluate 1.2.1's fixture written as a
//! CoNLL file and scored by the real binary, every number of `errors.overall` and
//! `errors.by_type` compared; the text tables as a snapshot; the refused combination.

mod common;

use std::path::{Path, PathBuf};

use assert_cmd::Command;
use serde_json::Value;

const TOLERANCE: f64 = 1e-12;
const SCHEMAS: [&str; 4] = ["strict", "exact", "partial", "ent_type"];
const FIELDS: [&str; 10] =
    ["correct", "incorrect", "partial", "missed", "spurious", "possible", "actual", "precision", "recall", "f1"];

fn fixture_cases() -> Vec<Value> {
    let shared = std::env::var_os("NERGRID_SHARED")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared"));
    let path = shared.join("fixtures/nervaluate_cases.jsonl");
    let text =
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e} (set NERGRID_SHARED)", path.display()));
    text.lines().map(|line| serde_json::from_str(line).expect("fixture line is JSON")).collect()
}

fn eval(path: &Path, extra: &[&str]) -> std::process::Output {
    Command::cargo_bin("nergrid")
        .expect("nergrid binary")
        .arg("eval")
        .arg(path)
        .args(extra)
        .output()
        .expect("nergrid runs")
}

fn compare_schemas(what: &str, expected: &Value, got: &Value, out: &mut Vec<String>) {
    for schema in SCHEMAS {
        for field in FIELDS {
            let (e, g) = (&expected[schema][field], &got[schema][field]);
            if !matches!((e.as_f64(), g.as_f64()), (Some(e), Some(g)) if (e - g).abs() <= TOLERANCE) {
                out.push(format!("{what}.{schema}.{field}: expected {e}, got {g}"));
            }
        }
    }
}

/// Mismatches between a fixture case and the CLI's `errors` object.
fn compare(case: &Value, errors: &Value) -> Vec<String> {
    let mut out = Vec::new();
    compare_schemas("overall", &case["overall"], &errors["overall"], &mut out);
    let (Some(want), Some(have)) = (case["by_type"].as_object(), errors["by_type"].as_object()) else {
        return vec![format!("by_type missing: {errors}")];
    };
    if want.len() != have.len() || !want.keys().all(|k| have.contains_key(k)) {
        let (w, h): (Vec<_>, Vec<_>) = (want.keys().collect(), have.keys().collect());
        return vec![format!("by_type: expected types {w:?}, got {h:?}")];
    }
    for (kind, expected) in want {
        compare_schemas(&format!("by_type.{kind}"), expected, &have[kind], &mut out);
    }
    out
}

#[test]
fn eval_errors_json_reproduces_nervaluate_on_every_fixture_case() {
    let cases = fixture_cases();
    assert!(cases.len() > 900, "only {} cases", cases.len());
    let dir = tempfile::tempdir().expect("temp dir");
    let mut mismatches = Vec::new();
    for case in &cases {
        let id = case["id"].as_str().expect("case id");
        let path = dir.path().join(format!("{id}.conll"));
        std::fs::write(&path, common::conll_text(case)).expect("write case file");
        let output = eval(&path, &["--errors", "--format", "json"]);
        if !output.status.success() {
            mismatches.push(format!("{id}: failed: {}", String::from_utf8_lossy(&output.stderr)));
            continue;
        }
        match serde_json::from_slice::<Value>(&output.stdout) {
            Ok(got) if got.get("f1").is_some() => {
                mismatches.extend(compare(case, &got["errors"]).into_iter().map(|m| format!("{id}: {m}")))
            }
            Ok(got) => mismatches.push(format!("{id}: seqeval's numbers missing beside the errors: {got}")),
            Err(e) => mismatches.push(format!("{id}: stdout is not JSON ({e})")),
        }
    }
    assert!(
        mismatches.is_empty(),
        "{} mismatches over {} cases:\n{}",
        mismatches.len(),
        cases.len(),
        mismatches[..mismatches.len().min(30)].join("\n")
    );
}

/// Gold PER, LOC, ORG entities against a prediction with every kind of error.
const SAMPLE: &str = "\
Anna B-PER B-PER\nBerg I-PER I-PER\nvisited O O\nNew B-LOC B-ORG\nYork I-LOC I-ORG\n\n\
The O B-ORG\nUnited B-ORG I-ORG\nNations I-ORG I-ORG\nmet O O\nin O O\nLund B-LOC O\n\n\
Per B-PER B-PER\nOlof I-PER O\nEk I-PER B-PER\nleft O I-PER\n.  O O\n\n\
Oslo O B-LOC\nand O O\nBergen B-LOC B-LOC\nRiver I-LOC O\n\n\
in O O\nNew B-LOC O\nYork I-LOC B-ORG\ncity O I-ORG\n";

#[test]
fn eval_errors_text_prints_every_table() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("sample.conll");
    std::fs::write(&path, SAMPLE).expect("write file");
    let output = eval(&path, &["--errors"]);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    insta::assert_snapshot!(String::from_utf8(output.stdout).unwrap());
}

#[test]
fn eval_errors_json_holds_the_confusion_and_boundaries() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("sample.conll");
    std::fs::write(&path, SAMPLE).expect("write file");
    let output = eval(&path, &["--errors", "--format", "json"]);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let got: Value = serde_json::from_slice(&output.stdout).expect("JSON");
    // Gold: PER 0-1, LOC 3-4 | ORG 1-2, LOC 5 | PER 0-2 | LOC 2-3 | LOC 1-2.
    // Predicted: PER 0-1, ORG 3-4 | ORG 0-2 | PER 0, PER 2-3 | LOC 0, LOC 2 | ORG 2-3.
    let boundaries = &got["errors"]["boundaries"];
    assert_eq!(boundaries["too_long"], 1, "ORG 0-2 over gold ORG 1-2: {boundaries}");
    assert_eq!(boundaries["too_short"], 2, "PER 0 in gold PER 0-2 and LOC 2 in gold LOC 2-3: {boundaries}");
    assert_eq!(boundaries["shifted"], 1, "ORG 2-3 against gold LOC 1-2: {boundaries}");
    assert_eq!(boundaries["with_type_error"], 1, "{boundaries}");
    let cell = |gold: Value, predicted: Value| {
        let cells = got["errors"]["confusion"].as_array().expect("confusion cells");
        cells
            .iter()
            .find(|c| c["gold"] == gold && c["predicted"] == predicted)
            .map_or(0, |c| c["count"].as_u64().unwrap())
    };
    assert_eq!(cell("LOC".into(), "ORG".into()), 2, "New York twice");
    assert_eq!(cell("LOC".into(), Value::Null), 1, "Lund is missed");
    assert_eq!(cell(Value::Null, "PER".into()), 1, "PER 2-3 finds gold PER 0-2 taken");
    assert_eq!(cell(Value::Null, "LOC".into()), 1, "Oslo is spurious");
    assert_eq!(got["errors"]["overall"]["strict"]["correct"], 1);
}

#[test]
fn errors_with_strict_mode_are_refused() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("ok.conll");
    std::fs::write(&path, "a B-PER B-PER\n").expect("write file");
    let output = eval(&path, &["--errors", "--mode", "strict", "--scheme", "IOB2"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("--errors reads entities as --mode default does"));
}
