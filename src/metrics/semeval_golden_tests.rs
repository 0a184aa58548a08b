//! Golden tests against nervaluate 1.2.1's recorded answers: every case of
//! `shared/fixtures/nervaluate_cases.jsonl`, overall and per type, every schema and field,
//! compared through the JSON the analysis serialises to (so the field names are checked too).
//! Also checks, on the same cases, that the confusion table and boundary errors add up with
//! the `exact` schema they are aligned by.

use std::path::{Path, PathBuf};

use serde_json::Value;

use super::{error_analysis, ErrorAnalysis, SCHEMA_NAMES};

const TOLERANCE: f64 = 1e-12;
const FIELDS: [&str; 10] =
    ["correct", "incorrect", "partial", "missed", "spurious", "possible", "actual", "precision", "recall", "f1"];

fn cases() -> Vec<Value> {
    let shared = std::env::var_os("NERGRID_SHARED")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared"));
    let path = shared.join("fixtures/nervaluate_cases.jsonl");
    let text =
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e} (set NERGRID_SHARED)", path.display()));
    text.lines()
        .enumerate()
        .map(|(i, line)| serde_json::from_str(line).unwrap_or_else(|e| panic!("{}:{}: {e}", path.display(), i + 1)))
        .collect()
}

fn tags(value: &Value) -> Vec<Vec<String>> {
    serde_json::from_value(value.clone()).expect("a list of lists of tags")
}

/// Mismatches between nervaluate's `{SCHEMA: {FIELD: ..}}` and ours.
fn compare_schemas(what: &str, expected: &Value, got: &Value, out: &mut Vec<String>) {
    for schema in SCHEMA_NAMES {
        for field in FIELDS {
            let (e, g) = (&expected[schema][field], &got[schema][field]);
            let same = matches!((e.as_f64(), g.as_f64()), (Some(e), Some(g)) if (e - g).abs() <= TOLERANCE);
            if !same {
                out.push(format!("{what}.{schema}.{field}: expected {e}, got {g}"));
            }
        }
    }
}

fn mismatches(case: &Value, analysis: &ErrorAnalysis) -> Vec<String> {
    let got = serde_json::to_value(analysis).expect("an analysis serialises");
    let mut out = Vec::new();
    compare_schemas("overall", &case["overall"], &got["overall"], &mut out);
    let (want, have) = (case["by_type"].as_object().expect("by_type"), got["by_type"].as_object().expect("by_type"));
    let (want_types, have_types): (Vec<_>, Vec<_>) = (want.keys().collect(), have.keys().collect());
    let mut sorted_want = want_types.clone();
    sorted_want.sort();
    if sorted_want != have_types {
        out.push(format!("by_type keys: expected {want_types:?}, got {have_types:?}"));
        return out;
    }
    for (kind, expected) in want {
        compare_schemas(&format!("by_type.{kind}"), expected, &have[kind], &mut out);
    }
    out
}

#[test]
fn every_nervaluate_case_matches_overall_and_per_type() {
    let cases = cases();
    assert!(cases.len() > 900, "only {} cases", cases.len());
    let mut problems = Vec::new();
    for case in &cases {
        let id = case["id"].as_str().expect("case id");
        match error_analysis(&tags(&case["y_true"]), &tags(&case["y_pred"])) {
            Ok(analysis) => problems.extend(mismatches(case, &analysis).into_iter().map(|m| format!("{id}: {m}"))),
            Err(e) => problems.push(format!("{id}: {e}")),
        }
    }
    assert!(problems.is_empty(), "{} mismatches:\n{}", problems.len(), problems[..problems.len().min(30)].join("\n"));
}

#[test]
fn confusion_and_boundaries_add_up_with_the_exact_schema_on_every_case() {
    let mut checked_boundary_errors = 0;
    for case in cases() {
        let a = error_analysis(&tags(&case["y_true"]), &tags(&case["y_pred"])).expect("case scores");
        let exact = a.overall.exact;
        let count = |f: &dyn Fn(&super::ConfusionCell) -> bool| -> usize {
            a.confusion.iter().filter(|c| f(c)).map(|c| c.count).sum()
        };
        let pairs = count(&|c| c.gold.is_some() && c.predicted.is_some());
        let id = &case["id"];
        assert_eq!(count(&|c| c.predicted.is_none()), exact.missed, "{id}: missed");
        assert_eq!(count(&|c| c.gold.is_none()), exact.spurious, "{id}: spurious");
        assert_eq!(a.boundaries.total(), exact.incorrect, "{id}: boundary errors");
        assert_eq!(pairs, exact.correct + exact.incorrect, "{id}: aligned pairs");
        // A pair with the right span and the right type is strict-correct, and only those are.
        assert_eq!(
            pairs - a.type_errors() - (a.boundaries.total() - a.boundaries.with_type_error),
            a.overall.strict.correct,
            "{id}"
        );
        checked_boundary_errors += a.boundaries.total();
    }
    assert!(checked_boundary_errors > 100, "the fixture exercises boundary errors");
}
