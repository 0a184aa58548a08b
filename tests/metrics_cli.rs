//! `nergrid eval` end to end: CoNLL files built from a deterministic sample of seqeval
//! fixture cases, scored by the real binary in every mode, compared with seqeval's numbers;
//! plus the ways a file or the arguments can be wrong.

mod common;

use std::path::{Path, PathBuf};

use assert_cmd::Command;
use serde_json::Value;

const TOLERANCE: f64 = 1e-12;

fn shared() -> PathBuf {
    std::env::var_os("NERGRID_SHARED")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared"))
}

fn fixture_cases() -> Vec<Value> {
    let path = shared().join("fixtures/seqeval_cases.jsonl");
    let text =
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e} (set NERGRID_SHARED)", path.display()));
    text.lines().map(|line| serde_json::from_str(line).expect("fixture line is JSON")).collect()
}

/// Every 45th case plus the hand-written odd-label cases (where strict mode raises), keeping
/// those a two-column file can hold (gold and predicted of equal lengths).
fn sample(cases: &[Value]) -> Vec<&Value> {
    cases
        .iter()
        .enumerate()
        .filter(|(i, case)| {
            let odd = case["scheme_of_generation"].as_str().is_some_and(|s| s.starts_with("edge_odd_labels"));
            i % 45 == 0 || odd
        })
        .map(|(_, case)| case)
        .filter(|case| {
            let lengths = |key: &str| -> Vec<usize> { common::tag_lists(&case[key]).iter().map(Vec::len).collect() };
            lengths("y_true") == lengths("y_pred")
        })
        .collect()
}

fn same_number(expected: &Value, got: &Value) -> bool {
    match (expected, got) {
        (Value::String(s), Value::Null) => s == "NaN",
        (Value::Number(e), Value::Number(g)) => {
            matches!((e.as_f64(), g.as_f64()), (Some(e), Some(g)) if (e - g).abs() <= TOLERANCE)
        }
        _ => false,
    }
}

fn check_number(out: &mut Vec<String>, what: &str, expected: &Value, got: &Value) {
    if !same_number(expected, got) {
        out.push(format!("{what}: expected {expected}, got {got}"));
    }
}

/// Mismatches between seqeval's block (`zero_division_N`) and the CLI's JSON.
fn compare(expected: &Value, accuracy: &Value, got: &Value) -> Vec<String> {
    let mut out = Vec::new();
    for key in ["precision", "recall", "f1"] {
        check_number(&mut out, key, &expected[key], &got[key]);
    }
    if accuracy.get("error").is_none() {
        check_number(&mut out, "accuracy", accuracy, &got["accuracy"]);
    }
    let (Some(want), Some(have)) = (expected["report"].as_object(), got["report"].as_object()) else {
        return vec![format!("report missing: {got}")];
    };
    let want_keys: Vec<&String> = want.keys().collect();
    let have_keys: Vec<&String> = have.keys().collect();
    if want_keys.len() != have_keys.len() || !want_keys.iter().all(|k| have.contains_key(*k)) {
        return vec![format!("report rows: expected {want_keys:?}, got {have_keys:?}")];
    }
    for (row, fields) in want {
        for key in ["precision", "recall", "f1-score"] {
            check_number(&mut out, &format!("{row}.{key}"), &fields[key], &have[row][key]);
        }
        if fields["support"] != have[row]["support"] {
            let (e, g) = (&fields["support"], &have[row]["support"]);
            out.push(format!("{row}.support: expected {e}, got {g}"));
        }
    }
    out
}

const MODES: [(&str, &[&str]); 3] = [
    ("default", &[]),
    ("strict_iob2", &["--mode", "strict", "--scheme", "IOB2"]),
    ("strict_iobes", &["--mode", "strict", "--scheme", "IOBES"]),
];

fn eval(path: &Path, extra: &[&str]) -> std::process::Output {
    Command::cargo_bin("nergrid")
        .expect("nergrid binary")
        .arg("eval")
        .arg(path)
        .args(extra)
        .output()
        .expect("nergrid runs")
}

/// What went wrong for one run, if anything.
fn check_run(case: &Value, block: &str, zd: &str, path: &Path, output: &std::process::Output) -> Vec<String> {
    let expected = &case[block][format!("zero_division_{zd}")];
    let stderr = String::from_utf8_lossy(&output.stderr);
    let tokens: usize = common::tag_lists(&case["y_true"]).iter().map(Vec::len).sum();
    if let Some(error) = expected["report"].get("error").and_then(Value::as_str) {
        let located = stderr.contains(&format!("{}:", path.display())) && stderr.contains(" tag: ");
        return match (output.status.code(), located) {
            (Some(2), true) => vec![],
            _ => vec![format!("expected a located error for {error}, got {:?}: {stderr}", output.status)],
        };
    }
    if tokens == 0 {
        return match (output.status.code(), stderr.contains("no token lines")) {
            (Some(2), true) => vec![],
            _ => vec![format!("expected 'no token lines', got {:?}: {stderr}", output.status)],
        };
    }
    if !output.status.success() {
        return vec![format!("failed with {:?}: {stderr}", output.status)];
    }
    match serde_json::from_slice::<Value>(&output.stdout) {
        Ok(got) => compare(expected, &case["default"]["accuracy"], &got),
        Err(e) => vec![format!("stdout is not JSON ({e})")],
    }
}

#[test]
fn eval_json_reproduces_seqeval_on_sampled_fixture_cases() {
    let cases = fixture_cases();
    let sampled = sample(&cases);
    assert!(sampled.len() >= 50, "only {} cases sampled", sampled.len());
    let dir = tempfile::tempdir().expect("temp dir");
    let mut mismatches = Vec::new();
    let mut errors_expected = 0;
    for case in &sampled {
        let id = case["id"].as_str().expect("case id");
        let path = dir.path().join(format!("{id}.conll"));
        std::fs::write(&path, common::conll_text(case)).expect("write case file");
        for (block, args) in MODES {
            for zd in ["0", "1"] {
                let mut extra = args.to_vec();
                extra.extend(["--format", "json", "--zero-division", zd]);
                let output = eval(&path, &extra);
                errors_expected += usize::from(case[block]["report"].get("error").is_some());
                for problem in check_run(case, block, zd, &path, &output) {
                    mismatches.push(format!("{id} {block} zd={zd}: {problem}"));
                }
            }
        }
    }
    assert!(errors_expected > 0, "the sample has no case where seqeval raises");
    assert!(
        mismatches.is_empty(),
        "{} mismatches over {} cases:\n{}",
        mismatches.len(),
        sampled.len(),
        mismatches.iter().take(30).cloned().collect::<Vec<_>>().join("\n")
    );
}

#[test]
fn eval_text_prints_seqeval_layout_with_four_digits() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("readme.conll");
    let text = "EU O O\nrejects O O\nGerman O B-MISC\ncall B-MISC I-MISC\nto I-MISC I-MISC\n\
                boycott I-MISC I-MISC\nlamb O O\n\nPeter B-PER B-PER\nBlackburn I-PER I-PER\n. O O\n";
    std::fs::write(&path, text).expect("write file");
    let output = eval(&path, &[]);
    assert!(output.status.success());
    insta::assert_snapshot!(String::from_utf8(output.stdout).unwrap(), @r"
                  precision    recall  f1-score   support

            MISC     0.0000    0.0000    0.0000         1
             PER     1.0000    1.0000    1.0000         1

       micro avg     0.5000    0.5000    0.5000         2
       macro avg     0.5000    0.5000    0.5000         2
    weighted avg     0.5000    0.5000    0.5000         2
    ");
}

#[test]
fn malformed_lines_are_reported_with_path_and_line() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("bad.conll");
    std::fs::write(&path, "a NN O O\nb NN B-PER B-PER\n\nc B-PER\n").expect("write file");
    let output = eval(&path, &[]);
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    let want = format!("{}:4: expected 4 columns like line 1, found 2", path.display());
    assert!(stderr.contains(&want), "{stderr}");
}

#[test]
fn unusable_arguments_exit_with_2() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("ok.conll");
    std::fs::write(&path, "a B-PER B-PER\n").expect("write file");
    let strict_without_scheme = eval(&path, &["--mode", "strict"]);
    assert_eq!(strict_without_scheme.status.code(), Some(2));
    let bad_zero_division = eval(&path, &["--zero-division", "2"]);
    assert_eq!(bad_zero_division.status.code(), Some(2));
    let missing = eval(&dir.path().join("missing.conll"), &[]);
    assert_eq!(missing.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("missing.conll: cannot read"));
}
