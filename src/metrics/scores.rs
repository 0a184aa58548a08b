//! Entity counts to precision, recall, F1 and the per-type report, computed the way seqeval
//! 1.2.2's `_precision_recall_fscore_support` and `classification_report` compute them.
//!
//! Per type: P = correct / predicted and R = correct / gold, `zero_division` where the
//! denominator is 0; F1 = 2·P·R / (P + R) from those floats (0 when P + R = 0). Micro sums the
//! counts first. Macro is the plain mean over types (NaN when no type has an entity). Weighted
//! is the mean weighted by gold support; when the total support is 0 seqeval returns
//! `(zd if nothing predicted else 0, zd, zd if nothing predicted else 0)` instead.
//! Sums run left to right; numpy's pairwise sums can differ in the last bits above 8 types.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::chunks::Chunk;
use super::entities::{scoring_chunks, Entity, Mode};
use super::error::{MetricsError, Side};
use super::tags::TypeTable;

/// The value a ratio takes when its denominator is 0 (seqeval's `zero_division`; its default
/// `"warn"` gives the same numbers as `Zero`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub enum ZeroDivision {
    #[default]
    Zero,
    One,
}

impl ZeroDivision {
    fn value(self) -> f64 {
        match self {
            ZeroDivision::Zero => 0.0,
            ZeroDivision::One => 1.0,
        }
    }
}

/// One row of the classification report. NaN serialises as `null` (and `null` reads back as
/// NaN).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ClassScore {
    #[serde(with = "nan_as_null")]
    pub precision: f64,
    #[serde(with = "nan_as_null")]
    pub recall: f64,
    #[serde(with = "nan_as_null")]
    pub f1: f64,
    /// Number of gold entities.
    pub support: usize,
}

/// What seqeval reports: micro P/R/F1 (`precision_score` etc.), token accuracy and
/// `classification_report(output_dict=True)`. NaN serialises as `null`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    #[serde(with = "nan_as_null")]
    pub precision: f64,
    #[serde(with = "nan_as_null")]
    pub recall: f64,
    #[serde(with = "nan_as_null")]
    pub f1: f64,
    /// Share of tokens whose predicted tag equals the gold tag; NaN with no tokens (seqeval
    /// raises `ZeroDivisionError`) and from [`score_entities`].
    #[serde(with = "nan_as_null")]
    pub accuracy: f64,
    /// Every type that has a gold or a predicted entity, sorted by name.
    pub per_type: BTreeMap<String, ClassScore>,
    pub micro_avg: ClassScore,
    pub macro_avg: ClassScore,
    pub weighted_avg: ClassScore,
}

/// Entity counts of one type.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Counts {
    gold: usize,
    predicted: usize,
    correct: usize,
}

/// Scores predicted tag sequences against gold ones as seqeval 1.2.2 does.
///
/// Fails when the sentence counts or the lengths of a sentence disagree (checked first), when
/// there are no sentences, and on the tags [`super::extract_entities`] rejects.
pub fn evaluate<S: AsRef<str>>(
    y_true: &[Vec<S>],
    y_pred: &[Vec<S>],
    mode: Mode,
    zero_division: ZeroDivision,
) -> Result<Report, MetricsError> {
    check_lengths(y_true, y_pred)?;
    let mut table = TypeTable::new();
    let gold = scoring_chunks(y_true, mode, Side::Gold, &mut table)?;
    let predicted = scoring_chunks(y_pred, mode, Side::Predicted, &mut table)?;
    let counts = count_matches(&gold, &predicted, table.len());
    let per_type = (0..).zip(counts).filter(|(_, c)| c.gold + c.predicted > 0).map(|(id, c)| (table.name(id), c));
    let accuracy = token_accuracy(y_true, y_pred);
    Ok(build_report(per_type, accuracy, zero_division))
}

/// Scores entity lists directly (for resampling sentences without re-reading tags). Lists are
/// sets, as in seqeval: an entity listed twice counts once, so give resampled sentences new
/// sentence numbers. `accuracy` is NaN.
pub fn score_entities(gold: &[Entity], predicted: &[Entity], zero_division: ZeroDivision) -> Report {
    let gold: BTreeSet<&Entity> = gold.iter().collect();
    let predicted: BTreeSet<&Entity> = predicted.iter().collect();
    let mut counts: BTreeMap<&str, Counts> = BTreeMap::new();
    for entity in &gold {
        counts.entry(&entity.kind).or_default().gold += 1;
    }
    for entity in &predicted {
        let row = counts.entry(&entity.kind).or_default();
        row.predicted += 1;
        row.correct += usize::from(gold.contains(entity));
    }
    build_report(counts.into_iter(), f64::NAN, zero_division)
}

pub(crate) fn check_lengths<S: AsRef<str>>(y_true: &[Vec<S>], y_pred: &[Vec<S>]) -> Result<(), MetricsError> {
    if y_true.len() != y_pred.len() {
        return Err(MetricsError::SentenceCount { gold: y_true.len(), predicted: y_pred.len() });
    }
    if y_true.is_empty() {
        return Err(MetricsError::NoSentences);
    }
    let mismatch = y_true.iter().zip(y_pred).position(|(g, p)| g.len() != p.len());
    match mismatch {
        Some(sentence) => Err(MetricsError::SentenceLength {
            sentence,
            gold: y_true[sentence].len(),
            predicted: y_pred[sentence].len(),
        }),
        None => Ok(()),
    }
}

/// Per-type counts. Both lists have strictly increasing ends, so one merge pass finds the
/// chunks that are identical in type and span.
fn count_matches(gold: &[Chunk], predicted: &[Chunk], types: usize) -> Vec<Counts> {
    let mut counts = vec![Counts::default(); types];
    for chunk in gold {
        counts[chunk.kind as usize].gold += 1;
    }
    for chunk in predicted {
        counts[chunk.kind as usize].predicted += 1;
    }
    let (mut g, mut p) = (0, 0);
    while g < gold.len() && p < predicted.len() {
        let (a, b) = (gold[g], predicted[p]);
        if a.end <= b.end {
            g += 1;
        }
        if b.end <= a.end {
            p += 1;
        }
        if a == b {
            counts[a.kind as usize].correct += 1;
        }
    }
    counts
}

fn token_accuracy<S: AsRef<str>>(y_true: &[Vec<S>], y_pred: &[Vec<S>]) -> f64 {
    let mut tokens = 0usize;
    let mut correct = 0usize;
    for (gold, predicted) in y_true.iter().zip(y_pred) {
        tokens += gold.len();
        correct += gold.iter().zip(predicted).filter(|(g, p)| g.as_ref() == p.as_ref()).count();
    }
    if tokens == 0 {
        f64::NAN
    } else {
        correct as f64 / tokens as f64
    }
}

/// The report from per-type counts given in name order.
fn build_report<'a>(
    per_type: impl Iterator<Item = (&'a str, Counts)>,
    accuracy: f64,
    zero_division: ZeroDivision,
) -> Report {
    let rows: Vec<(&str, Counts)> = per_type.collect();
    let scores: Vec<ClassScore> = rows.iter().map(|&(_, c)| class_score(c, zero_division)).collect();
    let total = rows.iter().fold(Counts::default(), |sum, &(_, c)| Counts {
        gold: sum.gold + c.gold,
        predicted: sum.predicted + c.predicted,
        correct: sum.correct + c.correct,
    });
    let micro_avg = class_score(total, zero_division);
    Report {
        precision: micro_avg.precision,
        recall: micro_avg.recall,
        f1: micro_avg.f1,
        accuracy,
        macro_avg: macro_average(&scores, total.gold),
        weighted_avg: weighted_average(&scores, total, zero_division),
        micro_avg,
        per_type: rows.iter().map(|&(name, _)| name.to_owned()).zip(scores).collect(),
    }
}

fn class_score(counts: Counts, zero_division: ZeroDivision) -> ClassScore {
    let precision = ratio(counts.correct, counts.predicted, zero_division);
    let recall = ratio(counts.correct, counts.gold, zero_division);
    ClassScore { precision, recall, f1: f1(precision, recall), support: counts.gold }
}

fn ratio(numerator: usize, denominator: usize, zero_division: ZeroDivision) -> f64 {
    if denominator == 0 {
        zero_division.value()
    } else {
        numerator as f64 / denominator as f64
    }
}

/// `(1 + beta²) · P · R / (beta² · P + R)` with beta = 1, evaluated in numpy's order.
fn f1(precision: f64, recall: f64) -> f64 {
    let denominator = precision + recall;
    let denominator = if denominator == 0.0 { 1.0 } else { denominator };
    2.0 * precision * recall / denominator
}

/// `np.average` without weights; the mean of no rows is NaN.
fn macro_average(scores: &[ClassScore], support: usize) -> ClassScore {
    let n = scores.len() as f64;
    let mean = |field: fn(&ClassScore) -> f64| scores.iter().map(field).sum::<f64>() / n;
    ClassScore { precision: mean(|s| s.precision), recall: mean(|s| s.recall), f1: mean(|s| s.f1), support }
}

/// `np.average` weighted by gold support, with seqeval's rule for zero total support.
fn weighted_average(scores: &[ClassScore], total: Counts, zero_division: ZeroDivision) -> ClassScore {
    if total.gold == 0 {
        let zd = zero_division.value();
        let nothing_predicted = if total.predicted == 0 { zd } else { 0.0 };
        return ClassScore { precision: nothing_predicted, recall: zd, f1: nothing_predicted, support: 0 };
    }
    let weight = total.gold as f64;
    let mean = |field: fn(&ClassScore) -> f64| scores.iter().map(|s| field(s) * s.support as f64).sum::<f64>() / weight;
    ClassScore { precision: mean(|s| s.precision), recall: mean(|s| s.recall), f1: mean(|s| s.f1), support: total.gold }
}

/// Serde for `f64` fields that may be NaN: NaN is written as `null`, `null` reads as NaN.
mod nan_as_null {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(value: &f64, serializer: S) -> Result<S::Ok, S::Error> {
        if value.is_nan() {
            serializer.serialize_none()
        } else {
            serializer.serialize_f64(*value)
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<f64, D::Error> {
        Ok(Option::<f64>::deserialize(deserializer)?.unwrap_or(f64::NAN))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::entities::{extract_entities, StrictScheme};

    fn tags(rows: &[&[&str]]) -> Vec<Vec<String>> {
        rows.iter().map(|r| r.iter().map(|t| t.to_string()).collect()).collect()
    }

    fn score(gold: &[&[&str]], predicted: &[&[&str]], zd: ZeroDivision) -> Report {
        evaluate(&tags(gold), &tags(predicted), Mode::Default, zd).unwrap()
    }

    #[test]
    fn seqeval_readme_example() {
        let report = score(
            &[&["O", "O", "O", "B-MISC", "I-MISC", "I-MISC", "O"], &["B-PER", "I-PER", "O"]],
            &[&["O", "O", "B-MISC", "I-MISC", "I-MISC", "I-MISC", "O"], &["B-PER", "I-PER", "O"]],
            ZeroDivision::Zero,
        );
        assert_eq!((report.precision, report.recall, report.f1), (0.5, 0.5, 0.5));
        assert_eq!(report.accuracy, 0.8);
        assert_eq!(report.per_type["MISC"].f1, 0.0);
        assert_eq!(report.per_type["PER"].f1, 1.0);
        assert_eq!(report.macro_avg.f1, 0.5);
        assert_eq!(report.weighted_avg.support, 2);
    }

    #[test]
    fn types_only_predicted_appear_with_zero_support() {
        let report = score(&[&["B", "I", "O"]], &[&["B-PER", "I-PER", "O"]], ZeroDivision::One);
        let names: Vec<_> = report.per_type.keys().map(String::as_str).collect();
        assert_eq!(names, ["PER", "_"]);
        assert_eq!(report.per_type["PER"].support, 0);
        // PER: precision 0/1, recall 0/0 -> zero_division.
        assert_eq!(report.per_type["PER"].recall, 1.0);
        assert_eq!(report.per_type["PER"].f1, 0.0);
    }

    #[test]
    fn no_entities_make_macro_nan_and_follow_zero_division_elsewhere() {
        let zero = score(&[&["O"]], &[&["O"]], ZeroDivision::Zero);
        assert!(zero.macro_avg.f1.is_nan() && zero.macro_avg.precision.is_nan());
        assert_eq!((zero.f1, zero.weighted_avg.f1), (0.0, 0.0));
        let one = score(&[&["O"]], &[&["O"]], ZeroDivision::One);
        assert_eq!((one.precision, one.recall, one.f1), (1.0, 1.0, 1.0));
        assert_eq!(one.weighted_avg.f1, 1.0);
    }

    #[test]
    fn weighted_average_without_support_is_zero_when_something_was_predicted() {
        let report = score(&[&["O"]], &[&["B-PER"]], ZeroDivision::One);
        let w = report.weighted_avg;
        assert_eq!((w.precision, w.recall, w.f1, w.support), (0.0, 1.0, 0.0, 0));
    }

    #[test]
    fn f1_comes_from_the_rounded_precision_and_recall() {
        // P = 1/3, R = 1/2: 2PR/(P+R) in floats, not 2·tp/(pred+gold) = 0.4 exactly.
        let (p, r) = (1.0 / 3.0, 0.5);
        assert_eq!(f1(p, r), 2.0 * p * r / (p + r));
        assert_eq!(f1(0.0, 0.0), 0.0);
    }

    #[test]
    fn lengths_that_disagree_name_the_sentence() {
        let err = evaluate(&tags(&[&["O"], &["O", "O"]]), &tags(&[&["O"], &["O"]]), Mode::Default, ZeroDivision::Zero)
            .unwrap_err();
        assert_eq!(err.to_string(), "sentence 1: gold has 2 tags but predicted has 1");
        let err = evaluate(&tags(&[&["O"]]), &tags(&[]), Mode::Default, ZeroDivision::Zero).unwrap_err();
        assert!(matches!(err, MetricsError::SentenceCount { gold: 1, predicted: 0 }));
        let none: Vec<Vec<String>> = Vec::new();
        let err = evaluate(&none, &none, Mode::Default, ZeroDivision::Zero).unwrap_err();
        assert!(matches!(err, MetricsError::NoSentences));
    }

    #[test]
    fn empty_sentences_give_nan_accuracy() {
        let report = score(&[&[], &[]], &[&[], &[]], ZeroDivision::Zero);
        assert!(report.accuracy.is_nan());
    }

    #[test]
    fn scoring_entity_lists_agrees_with_scoring_tags() {
        let gold = tags(&[&["B-PER", "I-PER", "O", "S-LOC"], &["B-LOC", "E-LOC"]]);
        let predicted = tags(&[&["B-PER", "E-PER", "B-LOC", "O"], &["S-LOC", "S-LOC"]]);
        let mode = Mode::Strict(StrictScheme::Iobes);
        let from_tags = evaluate(&gold, &predicted, mode, ZeroDivision::Zero).unwrap();
        let from_entities = score_entities(
            &extract_entities(&gold, mode).unwrap(),
            &extract_entities(&predicted, mode).unwrap(),
            ZeroDivision::Zero,
        );
        assert_eq!(from_entities.per_type, from_tags.per_type);
        assert_eq!(from_entities.micro_avg, from_tags.micro_avg);
        assert!(from_entities.accuracy.is_nan());
    }

    #[test]
    fn nan_round_trips_through_json_as_null() {
        let report = score(&[&["O"]], &[&["O"]], ZeroDivision::Zero);
        let json = serde_json::to_string(&report).unwrap();
        assert!(json.contains(r#""macro_avg":{"precision":null"#), "{json}");
        let back: Report = serde_json::from_str(&json).unwrap();
        assert!(back.macro_avg.f1.is_nan());
        assert_eq!(back.micro_avg, report.micro_avg);
    }
}
