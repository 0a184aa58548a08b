//! Paired comparisons over matched runs: for each pair of values of `scheme` (and of `model`,
//! `precision` and `engine` when they are axes), runs that agree on every other axis, seed and
//! fold included. Reports the mean test-F1
//! difference A − B over the pairs (folds × seeds), a paired bootstrap over test sentences
//! (within each fold) from the saved predictions, and a sign-flip permutation test over pairs.

use std::collections::BTreeMap;

use polars::prelude::*;

use super::frames::{param_text, REPLICATE_AXES};
use super::study::{axes_without, group_runs, key_columns};
use crate::stats::{
    mean, paired_bootstrap, sentence_counts, sign_flip_test, BootstrapConfig, BootstrapResult, Counts, PairedRun,
    SignFlipTest, BOOTSTRAP_SEED, MIN_SEEDS_FOR_PERMUTATION,
};
use crate::store::PredictedSentence;
use crate::store::RunResult;

/// The smallest number of pairs a p-value is printed for.
pub(crate) const MIN_PAIRS: usize = MIN_SEEDS_FOR_PERMUTATION;

/// Axes whose values are compared pairwise, in report order.
pub(crate) const COMPARED_AXES: [&str; 4] = ["scheme", "model", "precision", "engine"];

/// A − B on the runs matched within one combination of the other axes.
#[derive(Debug, Clone)]
pub(crate) struct Comparison {
    pub axis: String,
    pub a: String,
    pub b: String,
    /// Values of the cell axes, with "" for the compared axis.
    pub key: Vec<String>,
    pub dry_run: bool,
    /// Test F1 differences A − B, one per matched (fold, seed).
    pub diffs: Vec<f64>,
    pub bootstrap: Result<BootstrapResult, String>,
    /// `None` below [`MIN_SEEDS_FOR_PERMUTATION`] pairs.
    pub sign_flip: Option<SignFlipTest>,
}

impl Comparison {
    pub fn mean_diff(&self) -> f64 {
        mean(&self.diffs).unwrap_or(f64::NAN)
    }

    /// What a reader should know beside the numbers.
    pub fn note(&self) -> String {
        let mut notes = Vec::new();
        if self.sign_flip.is_none() {
            notes.push(format!("too few seeds (n={}) for a p-value", self.diffs.len()));
        }
        match &self.bootstrap {
            Err(why) => notes.push(why.clone()),
            Ok(b) if (b.estimate - self.mean_diff()).abs() > 1e-6 => {
                notes.push(format!("predictions give a difference of {:.4}", b.estimate))
            }
            Ok(_) => {}
        }
        notes.join("; ")
    }
}

/// Distinct values of `axis` among the done runs, in plan order.
fn values(results: &[RunResult], axis: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for r in results.iter().filter(|r| r.status == crate::store::RunStatus::Done) {
        let v = param_text(r, axis);
        if !out.contains(&v) {
            out.push(v);
        }
    }
    out
}

/// Runs of `a` and `b` on `axis`, matched within one combination of the other cell axes.
#[derive(Debug, Clone)]
pub(crate) struct MatchedRuns<'r> {
    pub axis: String,
    pub a: String,
    pub b: String,
    /// Values of the cell axes, with "" for the compared axis.
    pub key: Vec<String>,
    pub dry_run: bool,
    /// (A, B) per matched seed, in A's plan order.
    pub pairs: Vec<(&'r RunResult, &'r RunResult)>,
}

/// The one matching rule of every paired comparison in the report: for each pair of values of
/// each compared axis (with at least two values), the done runs that agree on every other
/// cell axis, on dry_run and on the seed.
pub(crate) fn matched_runs<'r>(results: &'r [RunResult], cell_axes: &[String]) -> Vec<MatchedRuns<'r>> {
    let mut out = Vec::new();
    for axis in COMPARED_AXES.iter().filter(|a| cell_axes.iter().any(|c| c == *a)) {
        let vals = values(results, axis);
        for (i, a) in vals.iter().enumerate() {
            for b in &vals[i + 1..] {
                out.extend(match_values(results, cell_axes, axis, a, b));
            }
        }
    }
    out
}

fn match_values<'r>(
    results: &'r [RunResult],
    cell_axes: &[String],
    axis: &str,
    a: &str,
    b: &str,
) -> Vec<MatchedRuns<'r>> {
    let fixed = axes_without(cell_axes, &[axis]);
    let side = |value: &str| group_runs(results.iter().filter(|r| param_text(r, axis) == value), &fixed);
    let b_groups = side(b);
    let mut out = Vec::new();
    for ga in side(a) {
        let Some(gb) = b_groups.iter().find(|g| g.key == ga.key && g.dry_run == ga.dry_run) else { continue };
        let pairs = ga
            .runs
            .iter()
            .filter_map(|ra| gb.runs.iter().find(|rb| same_replicate(ra, rb)).map(|rb| (*ra, *rb)))
            .collect();
        let key =
            cell_axes.iter().map(|c| fixed.iter().position(|f| f == c).map_or(String::new(), |p| ga.key[p].clone()));
        out.push(MatchedRuns {
            axis: axis.to_string(),
            a: a.to_string(),
            b: b.to_string(),
            key: key.collect(),
            dry_run: ga.dry_run,
            pairs,
        });
    }
    out
}

/// Every comparison of every compared axis with at least two values.
pub(crate) fn comparisons(
    results: &[RunResult],
    cell_axes: &[String],
    predictions: &BTreeMap<String, Vec<PredictedSentence>>,
) -> Vec<Comparison> {
    matched_runs(results, cell_axes).into_iter().filter_map(|m| compare_matched(m, predictions)).collect()
}

/// The F1 comparison of matched runs that both have test scores; `None` when no pair has.
fn compare_matched(
    matched: MatchedRuns<'_>,
    predictions: &BTreeMap<String, Vec<PredictedSentence>>,
) -> Option<Comparison> {
    let pairs: Vec<(&RunResult, &RunResult)> =
        matched.pairs.into_iter().filter(|(ra, rb)| ra.test.is_some() && rb.test.is_some()).collect();
    if pairs.is_empty() {
        return None;
    }
    let diffs: Vec<f64> = pairs.iter().map(|(ra, rb)| ra.test.unwrap().f1 - rb.test.unwrap().f1).collect();
    Some(Comparison {
        axis: matched.axis,
        a: matched.a,
        b: matched.b,
        key: matched.key,
        dry_run: matched.dry_run,
        sign_flip: sign_flip_test(&diffs, BOOTSTRAP_SEED),
        diffs,
        bootstrap: bootstrap(&pairs, predictions),
    })
}

/// Whether two runs are the same replicate: the same seed and, cross-validated, the same fold.
fn same_replicate(a: &RunResult, b: &RunResult) -> bool {
    REPLICATE_AXES.iter().all(|axis| param_text(a, axis) == param_text(b, axis))
}

/// The paired bootstrap of one comparison; the reason when it cannot run. Pairs of one fold
/// (or, without folds, on the same sentences) share a test set and each replicate's draw of
/// it; the folds' test sets are resampled independently, each within itself.
fn bootstrap(
    pairs: &[(&RunResult, &RunResult)],
    predictions: &BTreeMap<String, Vec<PredictedSentence>>,
) -> Result<BootstrapResult, String> {
    let missing = pairs.iter().flat_map(|(a, b)| [a, b]).filter(|r| !predictions.contains_key(&r.id)).count();
    if missing > 0 {
        return Err(format!("no bootstrap: predictions missing for {missing} of {} runs", 2 * pairs.len()));
    }
    let mut test_sets: Vec<(String, Vec<&[String]>)> = Vec::new();
    let mut runs = Vec::with_capacity(pairs.len());
    for (ra, rb) in pairs {
        let (pa, pb) = (&predictions[&ra.id], &predictions[&rb.id]);
        let (wa, wb) = (words(pa), words(pb));
        if wa != wb {
            return Err(format!("no bootstrap: `{}` and `{}` were scored on different test sentences", ra.id, rb.id));
        }
        let fold = param_text(ra, "fold");
        if !fold.is_empty() && test_sets.iter().any(|(f, t)| *f == fold && *t != wa) {
            return Err(format!("no bootstrap: runs of fold {fold} were scored on different test sentences"));
        }
        let test_set = test_sets.iter().position(|(f, t)| *f == fold && *t == wa).unwrap_or_else(|| {
            test_sets.push((fold, wa));
            test_sets.len() - 1
        });
        runs.push(PairedRun { test_set, a: counts(ra, pa)?, b: counts(rb, pb)? });
    }
    paired_bootstrap(&runs, &BootstrapConfig::default()).ok_or_else(|| "no bootstrap: empty test set".to_string())
}

fn words(sentences: &[PredictedSentence]) -> Vec<&[String]> {
    sentences.iter().map(|s| s.words.as_slice()).collect()
}

fn counts(run: &RunResult, sentences: &[PredictedSentence]) -> Result<Vec<Counts>, String> {
    let tags = |f: fn(&PredictedSentence) -> &Vec<String>| -> Vec<Vec<&str>> {
        sentences.iter().map(|s| f(s).iter().map(String::as_str).collect()).collect()
    };
    sentence_counts(&tags(|s| &s.gold), &tags(|s| &s.predicted)).map_err(|e| format!("no bootstrap: `{}`: {e}", run.id))
}

/// `comparisons.csv`: compared axis, a, b, the cell axes ("" for the compared one), dry_run,
/// n_pairs, mean_diff_f1, the bootstrap interval, the sign-flip p-value, the smallest p-value
/// n_pairs can give and a note.
pub(crate) fn comparisons_frame(rows: &[Comparison], cell_axes: &[String]) -> PolarsResult<DataFrame> {
    let text = |name: &str, f: &dyn Fn(&Comparison) -> String| {
        Column::new(name.into(), rows.iter().map(f).collect::<Vec<_>>())
    };
    let float = |name: &str, f: &dyn Fn(&Comparison) -> Option<f64>| {
        Column::new(name.into(), rows.iter().map(f).collect::<Vec<_>>())
    };
    let mut cols =
        vec![text("compared", &|c| c.axis.clone()), text("a", &|c| c.a.clone()), text("b", &|c| c.b.clone())];
    cols.extend(key_columns(cell_axes, rows.iter().map(|c| (c.key.as_slice(), c.dry_run))));
    cols.push(Column::new("n_pairs".into(), rows.iter().map(|c| c.diffs.len() as u64).collect::<Vec<_>>()));
    cols.push(float("mean_diff_f1", &|c| Some(c.mean_diff())));
    cols.push(float("bootstrap_ci95_low", &|c| c.bootstrap.as_ref().ok().map(|b| b.interval.low)));
    cols.push(float("bootstrap_ci95_high", &|c| c.bootstrap.as_ref().ok().map(|b| b.interval.high)));
    cols.push(float("sign_flip_p", &|c| c.sign_flip.map(|t| t.p_value)));
    cols.push(float("smallest_p", &|c| c.sign_flip.map(|t| t.smallest_p)));
    cols.push(text("note", &|c| c.note()));
    DataFrame::new_infer_height(cols)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::sentence_counts;

    fn run(id: &str, scheme: &str, fold: i64, seed: i64, f1: f64) -> RunResult {
        serde_json::from_value(serde_json::json!({
            "id": id, "index": 0, "experiment": "e", "status": "done", "dry_run": false,
            "params": { "model": "m", "scheme": scheme, "fold": fold, "seed": seed },
            "test": { "precision": f1, "recall": f1, "f1": f1, "accuracy": 1.0 },
            "timings": { "started_at": "", "finished_at": "", "seconds": 0.0 },
            "device": "cpu", "host": "h", "attempt": 1,
            "tool": { "name": "nergrid", "version": "0", "git_commit": "x" },
        }))
        .unwrap()
    }

    fn sentences(words: &[&str], right: usize) -> Vec<PredictedSentence> {
        let tag = |ok: bool| vec![if ok { "B-X" } else { "O" }.to_string()];
        words
            .iter()
            .enumerate()
            .map(|(i, w)| PredictedSentence { words: vec![w.to_string()], gold: tag(true), predicted: tag(i < right) })
            .collect()
    }

    #[test]
    fn pairs_match_on_fold_and_seed_and_folds_are_resampled_apart() {
        let test_words = [vec!["a", "b"], vec!["c", "d", "e"]];
        let mut results = Vec::new();
        let mut predictions = BTreeMap::new();
        for fold in 0..2 {
            for seed in 1..=2 {
                for (scheme, right) in [("BIO", 2), ("BIOES", seed as usize - 1)] {
                    let id = format!("{scheme}-f{fold}-s{seed}");
                    let words = &test_words[fold as usize];
                    predictions.insert(id.clone(), sentences(words, right.min(words.len())));
                    results.push(run(&id, scheme, fold, seed, 0.25 * right as f64));
                }
            }
        }
        let axes: Vec<String> = ["model", "scheme"].map(String::from).to_vec();
        let found = comparisons(&results, &axes, &predictions);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].diffs, [0.5, 0.25, 0.5, 0.25], "BIO − BIOES per (fold, seed)");
        // The same bootstrap by hand: one test set per fold, each pair on its fold's.
        let counts = |id: &str| {
            let s = &predictions[id];
            let tags = |f: fn(&PredictedSentence) -> &Vec<String>| -> Vec<Vec<&str>> {
                s.iter().map(|t| f(t).iter().map(String::as_str).collect()).collect()
            };
            sentence_counts(&tags(|t| &t.gold), &tags(|t| &t.predicted)).unwrap()
        };
        let pairs: Vec<PairedRun> = [(0, 1), (0, 2), (1, 1), (1, 2)]
            .iter()
            .map(|(f, s)| PairedRun {
                test_set: *f,
                a: counts(&format!("BIO-f{f}-s{s}")),
                b: counts(&format!("BIOES-f{f}-s{s}")),
            })
            .collect();
        let want = paired_bootstrap(&pairs, &BootstrapConfig::default()).unwrap();
        assert_eq!(found[0].bootstrap.as_ref().unwrap(), &want);
        // Runs of one fold scored on other sentences cannot be resampled together.
        predictions.insert("BIO-f1-s2".into(), sentences(&["x", "y", "z"], 3));
        predictions.insert("BIOES-f1-s2".into(), sentences(&["x", "y", "z"], 1));
        let broken = comparisons(&results, &axes, &predictions);
        assert!(broken[0].bootstrap.as_ref().unwrap_err().contains("fold 1"), "{:?}", broken[0].bootstrap);
    }

    #[test]
    fn precisions_are_compared_paired_by_seed_in_the_order_the_grid_lists_them() {
        let mut results = Vec::new();
        for seed in 1..=3 {
            for (precision, f1) in [("bf16", 0.5 + 0.1 * seed as f64), ("fp32", 0.5)] {
                let mut r = run(&format!("{precision}-s{seed}"), "BIO", 0, seed, f1);
                r.params.insert("precision".into(), serde_json::json!(precision));
                results.push(r);
            }
        }
        let axes: Vec<String> = ["model", "scheme", "precision"].map(String::from).to_vec();
        let found = comparisons(&results, &axes, &BTreeMap::new());
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!((found[0].axis.as_str(), found[0].a.as_str(), found[0].b.as_str()), ("precision", "bf16", "fp32"));
        let rounded: Vec<f64> = found[0].diffs.iter().map(|d| (d * 1e9).round() / 1e9).collect();
        assert_eq!(rounded, [0.1, 0.2, 0.3], "bf16 − fp32 per seed");
        // Without predictions the bootstrap says why it could not run; the comparison stands.
        assert!(found[0].bootstrap.is_err());
    }
}
