//! The two outward shapes of a [`Report`]: seqeval's text classification report and the
//! dict of `classification_report(output_dict=True)` wrapped with the headline numbers.

use serde::ser::{Serialize, SerializeMap, Serializer};

use super::scores::{ClassScore, Report};

const AVERAGE_ROWS: [&str; 3] = ["micro avg", "macro avg", "weighted avg"];

/// seqeval's `StringReporter` layout with `digits` decimals: a right-aligned name column as
/// wide as the longest name (at least `weighted avg`), then precision, recall, f1-score and
/// support in 9-wide columns; a blank line after the header, the types and the averages.
/// NaN prints as `nan`, like Python.
pub fn classification_report(report: &Report, digits: usize) -> String {
    let longest = report.per_type.keys().map(|k| k.chars().count()).max();
    let width = longest.unwrap_or(0).max("weighted avg".len()).max(digits);
    let mut lines: Vec<String> = report.per_type.iter().map(|(name, score)| row(name, score, width, digits)).collect();
    lines.push(String::new());
    for (name, score) in AVERAGE_ROWS.into_iter().zip(averages(report)) {
        lines.push(row(name, score, width, digits));
    }
    lines.push(String::new());
    let header: String = ["precision", "recall", "f1-score", "support"].iter().map(|h| format!(" {h:>9}")).collect();
    format!("{:>width$} {header}\n\n{}", "", lines.join("\n"))
}

fn averages(report: &Report) -> [&ClassScore; 3] {
    [&report.micro_avg, &report.macro_avg, &report.weighted_avg]
}

fn row(name: &str, score: &ClassScore, width: usize, digits: usize) -> String {
    let numbers: String =
        [score.precision, score.recall, score.f1].iter().map(|&v| format!(" {:>9}", python_fixed(v, digits))).collect();
    format!("{name:>width$} {numbers} {:>9}", score.support)
}

/// Python's `'{:.{digits}f}'` for the values a report holds.
fn python_fixed(value: f64, digits: usize) -> String {
    if value.is_nan() {
        "nan".to_owned()
    } else {
        format!("{value:.digits$}")
    }
}

/// Serialises a [`Report`] as
/// `{"precision","recall","f1","accuracy","report":{TYPE.., "micro avg","macro avg","weighted avg"}}`
/// where each report row is `{"precision","recall","f1-score","support"}`, types in name
/// order. NaN is written as `null`.
pub struct SeqevalJson<'a>(pub &'a Report);

impl Serialize for SeqevalJson<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let report = self.0;
        let mut map = serializer.serialize_map(Some(5))?;
        map.serialize_entry("precision", &Number(report.precision))?;
        map.serialize_entry("recall", &Number(report.recall))?;
        map.serialize_entry("f1", &Number(report.f1))?;
        map.serialize_entry("accuracy", &Number(report.accuracy))?;
        map.serialize_entry("report", &Rows(report))?;
        map.end()
    }
}

struct Rows<'a>(&'a Report);

impl Serialize for Rows<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let report = self.0;
        let mut map = serializer.serialize_map(Some(report.per_type.len() + 3))?;
        for (name, score) in &report.per_type {
            map.serialize_entry(name, &Row(score))?;
        }
        for (name, score) in AVERAGE_ROWS.into_iter().zip(averages(report)) {
            map.serialize_entry(name, &Row(score))?;
        }
        map.end()
    }
}

struct Row<'a>(&'a ClassScore);

impl Serialize for Row<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let score = self.0;
        let mut map = serializer.serialize_map(Some(4))?;
        map.serialize_entry("precision", &Number(score.precision))?;
        map.serialize_entry("recall", &Number(score.recall))?;
        map.serialize_entry("f1-score", &Number(score.f1))?;
        map.serialize_entry("support", &score.support)?;
        map.end()
    }
}

/// An `f64` that serialises NaN as `null` whatever the serializer does with NaN.
struct Number(f64);

impl Serialize for Number {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if self.0.is_nan() {
            serializer.serialize_none()
        } else {
            serializer.serialize_f64(self.0)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::{evaluate, Mode, ZeroDivision};

    fn readme_report() -> Report {
        let gold = vec![vec!["O", "O", "O", "B-MISC", "I-MISC", "I-MISC", "O"], vec!["B-PER", "I-PER", "O"]];
        let predicted = vec![vec!["O", "O", "B-MISC", "I-MISC", "I-MISC", "I-MISC", "O"], vec!["B-PER", "I-PER", "O"]];
        evaluate(&gold, &predicted, Mode::Default, ZeroDivision::Zero).unwrap()
    }

    #[test]
    fn text_report_matches_seqeval_docstring_with_two_digits() {
        // seqeval's own docstring output for this input (digits=2).
        let expected = "              precision    recall  f1-score   support\n\
                        \n\
                        \x20       MISC       0.00      0.00      0.00         1\n\
                        \x20        PER       1.00      1.00      1.00         1\n\
                        \n\
                        \x20  micro avg       0.50      0.50      0.50         2\n\
                        \x20  macro avg       0.50      0.50      0.50         2\n\
                        weighted avg       0.50      0.50      0.50         2\n";
        assert_eq!(classification_report(&readme_report(), 2), expected);
    }

    #[test]
    fn text_report_with_four_digits_and_nan() {
        let none = evaluate(&[vec!["O"]], &[vec!["O"]], Mode::Default, ZeroDivision::Zero);
        insta::assert_snapshot!(classification_report(&none.unwrap(), 4), @r"
                      precision    recall  f1-score   support


           micro avg     0.0000    0.0000    0.0000         0
           macro avg        nan       nan       nan         0
        weighted avg     0.0000    0.0000    0.0000         0
        ");
    }

    #[test]
    fn json_keeps_seqeval_key_order_and_writes_nan_as_null() {
        let none = evaluate(&[vec!["O"]], &[vec!["O"]], Mode::Default, ZeroDivision::Zero);
        let json = serde_json::to_string(&SeqevalJson(&none.unwrap())).unwrap();
        assert_eq!(
            json,
            r#"{"precision":0.0,"recall":0.0,"f1":0.0,"accuracy":1.0,"report":{"micro avg":{"precision":0.0,"recall":0.0,"f1-score":0.0,"support":0},"macro avg":{"precision":null,"recall":null,"f1-score":null,"support":0},"weighted avg":{"precision":0.0,"recall":0.0,"f1-score":0.0,"support":0}}}"#
        );
    }

    #[test]
    fn json_lists_types_before_the_averages() {
        let json = serde_json::to_string(&SeqevalJson(&readme_report())).unwrap();
        let order: Vec<usize> = ["\"MISC\"", "\"PER\"", "\"micro avg\"", "\"weighted avg\""]
            .iter()
            .map(|k| json.find(k).unwrap())
            .collect();
        assert!(order.windows(2).all(|w| w[0] < w[1]), "{json}");
    }
}
