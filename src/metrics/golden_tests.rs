//! Golden tests against seqeval 1.2.2's recorded answers in `shared/fixtures`: every case of
//! `seqeval_cases.jsonl` in the default, strict IOB2 and strict IOBES blocks, with
//! `zero_division` 0 and 1, plus the chunk counts of `conlleval_comparison.jsonl`. Each test
//! walks all cases and reports every mismatch, not just the first.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use serde_json::Value;

use super::chunks::flat_chunks;
use super::tags::TypeTable;
use super::{
    evaluate, extract_entities, ClassScore, Entity, MetricsError, Mode, Report, Side, StrictScheme, TagError,
    ZeroDivision,
};

const TOLERANCE: f64 = 1e-12;

fn shared() -> PathBuf {
    std::env::var_os("NERGRID_SHARED")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared"))
}

fn read_jsonl(name: &str) -> Vec<Value> {
    let path = shared().join("fixtures").join(name);
    let text =
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e} (set NERGRID_SHARED)", path.display()));
    text.lines()
        .enumerate()
        .map(|(i, line)| serde_json::from_str(line).unwrap_or_else(|e| panic!("{}:{}: {e}", path.display(), i + 1)))
        .collect()
}

fn tag_lists(value: &Value) -> Vec<Vec<String>> {
    serde_json::from_value(value.clone()).expect("a list of lists of tags")
}

/// The Python exception type seqeval raises where we return `err`.
fn python_error_type(err: &MetricsError) -> &'static str {
    match err {
        MetricsError::SentenceCount { .. } | MetricsError::SentenceLength { .. } | MetricsError::NoSentences => {
            "ValueError"
        }
        MetricsError::Tag { source, .. } => match source {
            TagError::Empty => "IndexError",
            TagError::UnknownPrefix { .. } => "KeyError",
            TagError::NotInScheme { .. } => "ValueError",
        },
    }
}

/// The exception type of a recorded `{"error": "Type: message"}`, if `value` is one.
fn recorded_error(value: &Value) -> Option<&str> {
    let message = value.get("error")?.as_str()?;
    Some(message.split(':').next().unwrap_or(message))
}

fn same_number(expected: &Value, got: f64) -> bool {
    match expected {
        Value::String(s) if s == "NaN" => got.is_nan(),
        Value::Number(n) => n.as_f64().is_some_and(|e| (e - got).abs() <= TOLERANCE),
        _ => false,
    }
}

/// Collects mismatches of one case.
struct Check<'a> {
    id: &'a str,
    mismatches: &'a mut Vec<String>,
}

impl Check<'_> {
    fn fail(&mut self, what: String) {
        self.mismatches.push(format!("{}: {what}", self.id));
    }

    fn number(&mut self, what: &str, expected: &Value, got: f64) {
        if !same_number(expected, got) {
            self.fail(format!("{what}: expected {expected}, got {got}"));
        }
    }

    fn row(&mut self, name: &str, expected: &Value, got: &ClassScore) {
        self.number(&format!("{name}.precision"), &expected["precision"], got.precision);
        self.number(&format!("{name}.recall"), &expected["recall"], got.recall);
        self.number(&format!("{name}.f1-score"), &expected["f1-score"], got.f1);
        if expected["support"].as_u64() != Some(got.support as u64) {
            let support = &expected["support"];
            self.fail(format!("{name}.support: expected {support}, got {}", got.support));
        }
    }

    /// `expected` holds `precision`, `recall`, `f1` and `report`, or errors in their place.
    fn scores(&mut self, label: &str, expected: &Value, got: &Result<Report, MetricsError>) {
        let wanted_error = recorded_error(&expected["report"]);
        let report = match (wanted_error, got) {
            (Some(want), Err(err)) => {
                let have = python_error_type(err);
                if want != have {
                    self.fail(format!("{label}: expected {want}, got {have} ({err})"));
                }
                return;
            }
            (Some(want), Ok(_)) => return self.fail(format!("{label}: expected {want}, got a report")),
            (None, Err(err)) => return self.fail(format!("{label}: unexpected error: {err}")),
            (None, Ok(report)) => report,
        };
        self.number(&format!("{label} precision"), &expected["precision"], report.precision);
        self.number(&format!("{label} recall"), &expected["recall"], report.recall);
        self.number(&format!("{label} f1"), &expected["f1"], report.f1);
        self.report_rows(label, &expected["report"], report);
    }

    fn report_rows(&mut self, label: &str, expected: &Value, report: &Report) {
        let Some(rows) = expected.as_object() else {
            return self.fail(format!("{label}: report is not an object"));
        };
        let averages = [
            ("micro avg", &report.micro_avg),
            ("macro avg", &report.macro_avg),
            ("weighted avg", &report.weighted_avg),
        ];
        let expected_types: BTreeSet<&str> =
            rows.keys().map(String::as_str).filter(|k| !averages.iter().any(|(name, _)| name == k)).collect();
        let got_types: BTreeSet<&str> = report.per_type.keys().map(String::as_str).collect();
        if expected_types != got_types {
            self.fail(format!("{label}: types {expected_types:?}, got {got_types:?}"));
        }
        for (name, score) in &report.per_type {
            if let Some(row) = rows.get(name) {
                self.row(&format!("{label} {name}"), row, score);
            }
        }
        for (name, score) in averages {
            self.row(&format!("{label} {name}"), &rows[name], score);
        }
    }

    /// `expected` is a list per sentence of entities or a recorded error; `to_json` renders
    /// one entity the way the fixture does.
    fn entities(
        &mut self,
        label: &str,
        expected: &Value,
        got: &Result<Vec<Entity>, MetricsError>,
        sentences: usize,
        to_json: fn(&Entity) -> Value,
    ) {
        match (recorded_error(expected), got) {
            (Some(want), Err(err)) => {
                let have = python_error_type(err);
                if want != have {
                    self.fail(format!("{label}: expected {want}, got {have} ({err})"));
                }
            }
            (Some(want), Ok(_)) => self.fail(format!("{label}: expected {want}, got entities")),
            (None, Err(err)) => self.fail(format!("{label}: unexpected error: {err}")),
            (None, Ok(entities)) => {
                let mut grouped = vec![Vec::new(); sentences];
                for entity in entities {
                    grouped[entity.sentence].push(to_json(entity));
                }
                let got = Value::Array(grouped.into_iter().map(Value::Array).collect());
                if &got != expected {
                    self.fail(format!("{label}: expected {expected}, got {got}"));
                }
            }
        }
    }
}

/// Default-mode entity as the fixture writes it per sentence: `[type, start, end_inclusive]`.
fn default_entity_json(e: &Entity) -> Value {
    serde_json::json!([e.kind, e.start, e.end - 1])
}

/// Strict-mode entity as the fixture writes it: `[sentence, type, start, end_exclusive]`.
fn strict_entity_json(e: &Entity) -> Value {
    serde_json::json!([e.sentence, e.kind, e.start, e.end])
}

/// The flattened default-mode chunks `[type, begin, end_inclusive]`, as `get_entities(y)`.
fn flat_entities_json(sentences: &[Vec<String>]) -> Value {
    let mut table = TypeTable::new();
    match flat_chunks(sentences, Side::Input, &mut table) {
        Ok(chunks) => chunks.iter().map(|c| serde_json::json!([table.name(c.kind), c.begin, c.end])).collect(),
        Err(err) => serde_json::json!({ "error": err.to_string() }),
    }
}

/// Checks one block of every case; returns the number of cases and the mismatches.
fn check_block(block: &str, mode: Mode) -> (usize, Vec<String>) {
    let cases = read_jsonl("seqeval_cases.jsonl");
    let mut mismatches = Vec::new();
    for case in &cases {
        let id = case["id"].as_str().expect("case id");
        let mut check = Check { id, mismatches: &mut mismatches };
        check_case(&mut check, case, &case[block], mode);
    }
    (cases.len(), mismatches)
}

fn check_case(check: &mut Check<'_>, case: &Value, expected: &Value, mode: Mode) {
    let y_true = tag_lists(&case["y_true"]);
    let y_pred = tag_lists(&case["y_pred"]);
    check_entities(check, expected, mode, &y_true, &y_pred);
    let warn = evaluate(&y_true, &y_pred, mode, ZeroDivision::Zero);
    check.scores("zero_division=warn", expected, &warn);
    check.scores("zero_division=0", &expected["zero_division_0"], &warn);
    let one = evaluate(&y_true, &y_pred, mode, ZeroDivision::One);
    check.scores("zero_division=1", &expected["zero_division_1"], &one);
    if let (Some(accuracy), Ok(report)) = (expected.get("accuracy"), &warn) {
        match recorded_error(accuracy) {
            Some(_) if report.accuracy.is_nan() => {}
            Some(want) => check.fail(format!("accuracy: expected {want} (NaN), got {}", report.accuracy)),
            None => check.number("accuracy", accuracy, report.accuracy),
        }
    }
}

fn check_entities(check: &mut Check<'_>, expected: &Value, mode: Mode, y_true: &[Vec<String>], y_pred: &[Vec<String>]) {
    let sides = [("true", y_true), ("pred", y_pred)];
    for (side, tags) in sides {
        let got = extract_entities(tags, mode);
        match mode {
            Mode::Default => {
                let key = format!("entities_{side}_per_sentence");
                check.entities(&key, &expected[&key], &got, tags.len(), default_entity_json);
                let key = format!("entities_{side}");
                let flat = flat_entities_json(tags);
                if flat != expected[&key] {
                    check.fail(format!("{key}: expected {}, got {flat}", expected[&key]));
                }
            }
            Mode::Strict(_) => {
                let key = format!("entities_{side}");
                check.entities(&key, &expected[&key], &got, tags.len(), strict_entity_json);
            }
        }
    }
}

fn assert_no_mismatches(block: &str, (cases, mismatches): (usize, Vec<String>)) {
    assert!(cases > 2000, "{block}: only {cases} cases read");
    let shown: Vec<&str> = mismatches.iter().take(40).map(String::as_str).collect();
    assert!(
        mismatches.is_empty(),
        "{block}: {} mismatches over {cases} cases, first ones:\n{}",
        mismatches.len(),
        shown.join("\n")
    );
}

#[test]
fn golden_default_mode() {
    assert_no_mismatches("default", check_block("default", Mode::Default));
}

#[test]
fn golden_strict_iob2() {
    let mode = Mode::Strict(StrictScheme::Iob2);
    assert_no_mismatches("strict_iob2", check_block("strict_iob2", mode));
}

#[test]
fn golden_strict_iobes() {
    let mode = Mode::Strict(StrictScheme::Iobes);
    assert_no_mismatches("strict_iobes", check_block("strict_iobes", mode));
}

/// seqeval's default-mode chunk counts recorded beside conlleval.pl's, for the cases whose
/// inputs `seqeval_cases.jsonl` holds.
#[test]
fn golden_conlleval_comparison_chunk_counts() {
    let cases: HashMap<String, Value> = read_jsonl("seqeval_cases.jsonl")
        .into_iter()
        .map(|c| (c["id"].as_str().expect("case id").to_owned(), c))
        .collect();
    let mut mismatches = Vec::new();
    let mut checked = 0;
    for row in read_jsonl("conlleval_comparison.jsonl") {
        let id = row["id"].as_str().expect("row id");
        let Some(case) = cases.get(id) else { continue };
        checked += 1;
        let got = chunk_counts(&tag_lists(&case["y_true"]), &tag_lists(&case["y_pred"]));
        let expected = &row["seqeval_default"];
        let want = ["true_chunks", "pred_chunks", "correct_chunks"].map(|k| expected[k].as_u64());
        if want != got.map(|n| Some(n as u64)) {
            mismatches.push(format!("{id}: expected {expected}, got {got:?}"));
        }
    }
    assert_no_mismatches("conlleval_comparison", (checked, mismatches));
}

/// `[gold, predicted, correct]` chunk counts in default mode.
fn chunk_counts(y_true: &[Vec<String>], y_pred: &[Vec<String>]) -> [usize; 3] {
    let mut table = TypeTable::new();
    let gold = flat_chunks(y_true, Side::Gold, &mut table).expect("gold chunks");
    let predicted = flat_chunks(y_pred, Side::Predicted, &mut table).expect("predicted chunks");
    let gold_set: BTreeSet<_> = gold.iter().map(|c| (c.kind, c.begin, c.end)).collect();
    let correct = predicted.iter().filter(|c| gold_set.contains(&(c.kind, c.begin, c.end))).count();
    [gold.len(), predicted.len(), correct]
}
