//! Entity counts per test sentence, what the paired bootstrap resamples: seqeval default-mode
//! entities from `crate::metrics`, matched on type and boundaries within each sentence.

use std::collections::BTreeSet;

use super::bootstrap::Counts;
use crate::metrics::{extract_entities, Entity, MetricsError, Mode};

/// Per sentence: predicted entities equal to a gold one, predicted entities, gold entities.
/// Summing any selection of sentences and taking [`Counts::f1`] gives seqeval's micro F1 on
/// that selection (a sentence drawn twice counts twice).
pub fn sentence_counts<S: AsRef<str>>(gold: &[Vec<S>], predicted: &[Vec<S>]) -> Result<Vec<Counts>, MetricsError> {
    if gold.len() != predicted.len() {
        return Err(MetricsError::SentenceCount { gold: gold.len(), predicted: predicted.len() });
    }
    if let Some((sentence, (g, p))) = gold.iter().zip(predicted).enumerate().find(|(_, (g, p))| g.len() != p.len()) {
        return Err(MetricsError::SentenceLength { sentence, gold: g.len(), predicted: p.len() });
    }
    let mut counts = vec![Counts::default(); gold.len()];
    let gold = extract_entities(gold, Mode::Default)?;
    let predicted = extract_entities(predicted, Mode::Default)?;
    let gold_set: BTreeSet<&Entity> = gold.iter().collect();
    for e in &gold {
        counts[e.sentence].gold += 1;
    }
    for e in &predicted {
        counts[e.sentence].predicted += 1;
        counts[e.sentence].correct += u64::from(gold_set.contains(e));
    }
    Ok(counts)
}

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};

    use super::*;

    fn shared() -> PathBuf {
        std::env::var_os("NERGRID_SHARED")
            .map(PathBuf::from)
            .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared"))
    }

    fn c(correct: u64, predicted: u64, gold: u64) -> Counts {
        Counts { correct, predicted, gold }
    }

    #[test]
    fn counts_per_sentence_compare_type_and_boundaries() {
        let gold = vec![vec!["B-PER", "I-PER", "O", "B-LOC"], vec!["O"], vec!["S-X", "B-Y", "E-Y"]];
        let pred = vec![vec!["B-PER", "O", "O", "B-LOC"], vec!["B-LOC"], vec!["S-X", "S-Y", "O"]];
        assert_eq!(sentence_counts(&gold, &pred).unwrap(), [c(1, 2, 2), c(0, 1, 0), c(1, 2, 2)]);
        assert!(sentence_counts(&gold, &pred[..2]).is_err());
        assert!(sentence_counts(&gold[..1], &[vec!["O", "O"]]).is_err());
    }

    /// Summed over sentences, the counts give seqeval's micro F1 on every recorded case.
    #[test]
    fn golden_seqeval_micro_f1_from_summed_counts() {
        let path = shared().join("fixtures/seqeval_cases.jsonl");
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let mut checked = 0;
        for line in text.lines() {
            let case: serde_json::Value = serde_json::from_str(line).unwrap();
            let sentences = |key: &str| -> Vec<Vec<String>> { serde_json::from_value(case[key].clone()).unwrap() };
            let (gold, pred) = (sentences("y_true"), sentences("y_pred"));
            let Some(want) = case["default"]["f1"].as_f64() else {
                assert!(sentence_counts(&gold, &pred).is_err(), "{}: seqeval raised", case["id"]);
                continue;
            };
            let total = sentence_counts(&gold, &pred).unwrap().into_iter().fold(Counts::default(), |a, c| a + c);
            assert!((total.f1() - want).abs() < 1e-12, "{}: f1 {} vs seqeval {want}", case["id"], total.f1());
            checked += 1;
        }
        assert!(checked > 2000, "only {checked} cases checked");
    }
}
