//! The study tables over seeds: every cell's mean ± std and 95% CI, the learning rate chosen on
//! validation F1, per-entity-type scores and the notebook-shaped `study.csv`. Plain Rust over
//! the gathered results; polars only to hold the tables that become CSV.

use std::collections::BTreeSet;

use polars::prelude::*;

use super::frames::param_text;
use crate::stats::{summarize, SeedSummary};
use crate::store::{RunResult, RunStatus};

/// Done runs that share the values of some axes (and dry_run).
#[derive(Debug, Clone)]
pub(crate) struct Group<'a> {
    pub key: Vec<String>,
    pub dry_run: bool,
    pub runs: Vec<&'a RunResult>,
}

/// Done runs grouped by the values of `axes` and by dry_run, in order of first appearance.
pub(crate) fn group_runs<'a>(results: impl IntoIterator<Item = &'a RunResult>, axes: &[String]) -> Vec<Group<'a>> {
    let mut groups: Vec<Group<'a>> = Vec::new();
    for r in results.into_iter().filter(|r| r.status == RunStatus::Done) {
        let key: Vec<String> = axes.iter().map(|a| param_text(r, a)).collect();
        match groups.iter_mut().find(|g| g.key == key && g.dry_run == r.dry_run) {
            Some(g) => g.runs.push(r),
            None => groups.push(Group { key, dry_run: r.dry_run, runs: vec![r] }),
        }
    }
    groups
}

/// `axes` without the named ones, in order.
pub(crate) fn axes_without(axes: &[String], drop: &[&str]) -> Vec<String> {
    axes.iter().filter(|a| !drop.contains(&a.as_str())).cloned().collect()
}

/// Metrics summarised per cell, in column order.
pub(crate) const CELL_METRICS: [&str; 4] = ["test_precision", "test_recall", "test_f1", "val_f1"];
const TEST_F1: usize = 2;
const VAL_F1: usize = 3;

fn metric_value(r: &RunResult, metric: usize) -> Option<f64> {
    match metric {
        0 => r.test.map(|t| t.precision),
        1 => r.test.map(|t| t.recall),
        2 => r.test.map(|t| t.f1),
        _ => r.validation.map(|v| v.f1),
    }
}

/// One cell (every axis but seed) with its metrics summarised over seeds.
#[derive(Debug, Clone)]
pub(crate) struct Cell<'a> {
    pub group: Group<'a>,
    /// One summary per [`CELL_METRICS`] entry; `None` when no run has that metric.
    pub metrics: Vec<Option<SeedSummary>>,
}

impl Cell<'_> {
    pub fn test_f1(&self) -> Option<SeedSummary> {
        self.metrics[TEST_F1]
    }
    pub fn val_f1(&self) -> Option<SeedSummary> {
        self.metrics[VAL_F1]
    }
}

/// Every cell of the grid: done runs grouped by `cell_axes` (the axes but seed).
pub(crate) fn cells<'a>(results: &'a [RunResult], cell_axes: &[String]) -> Vec<Cell<'a>> {
    group_runs(results, cell_axes)
        .into_iter()
        .map(|group| {
            let metrics = (0..CELL_METRICS.len())
                .map(|m| summarize(&group.runs.iter().filter_map(|r| metric_value(r, m)).collect::<Vec<_>>()))
                .collect();
            Cell { group, metrics }
        })
        .collect()
}

/// Key columns (one per axis, then dry_run) for rows with these keys.
pub(crate) fn key_columns<'k>(
    axes: &[String],
    rows: impl Iterator<Item = (&'k [String], bool)> + Clone,
) -> Vec<Column> {
    let mut cols: Vec<Column> = axes
        .iter()
        .enumerate()
        .map(|(i, axis)| Column::new(axis.as_str().into(), rows.clone().map(|(k, _)| k[i].clone()).collect::<Vec<_>>()))
        .collect();
    cols.push(Column::new("dry_run".into(), rows.map(|(_, d)| d).collect::<Vec<_>>()));
    cols
}

fn summary_columns(prefix: &str, summaries: &[Option<SeedSummary>]) -> Vec<Column> {
    let col = |stat: &str, f: &dyn Fn(&SeedSummary) -> Option<f64>| {
        let values: Vec<Option<f64>> = summaries.iter().map(|s| s.as_ref().and_then(f)).collect();
        Column::new(format!("{prefix}_{stat}").into(), values)
    };
    vec![
        col("mean", &|s| Some(s.mean)),
        col("std", &|s| s.std),
        col("ci95_low", &|s| s.ci95.map(|c| c.low)),
        col("ci95_high", &|s| s.ci95.map(|c| c.high)),
    ]
}

/// `cells.csv`: cell axes, dry_run, n, then mean, std, ci95_low, ci95_high of each metric.
pub(crate) fn cells_frame(cells: &[Cell<'_>], cell_axes: &[String]) -> PolarsResult<DataFrame> {
    let mut cols = key_columns(cell_axes, cells.iter().map(|c| (c.group.key.as_slice(), c.group.dry_run)));
    cols.push(Column::new("n".into(), cells.iter().map(|c| c.group.runs.len() as u64).collect::<Vec<_>>()));
    for (m, name) in CELL_METRICS.iter().enumerate() {
        cols.extend(summary_columns(name, &cells.iter().map(|c| c.metrics[m]).collect::<Vec<_>>()));
    }
    DataFrame::new_infer_height(cols)
}

/// The learning rate chosen for one model × scheme (× dataset …) on mean validation F1.
#[derive(Debug, Clone)]
pub(crate) struct LrChoice<'c, 'a> {
    /// Values of the selection axes (the cell axes but learning rate).
    pub key: Vec<String>,
    pub chosen: &'c Cell<'a>,
    /// Learning rates with a validation score.
    pub candidates: usize,
    /// Other learning rates with the same mean validation F1.
    pub tied_with: Vec<String>,
}

/// Picks, per combination of the other axes, the learning rate with the highest mean validation
/// F1 over seeds; ties go to the rate listed first in the grid. Test F1 plays no part.
pub(crate) fn choose_learning_rates<'c, 'a>(cells: &'c [Cell<'a>], cell_axes: &[String]) -> Vec<LrChoice<'c, 'a>> {
    let Some(lr) = cell_axes.iter().position(|a| a == "learning_rate") else { return Vec::new() };
    let without_lr = |c: &Cell<'_>| -> Vec<String> {
        c.group.key.iter().enumerate().filter(|(i, _)| *i != lr).map(|(_, v)| v.clone()).collect()
    };
    let mut groups: Vec<(Vec<String>, bool, Vec<&'c Cell<'a>>)> = Vec::new();
    for cell in cells.iter().filter(|c| c.val_f1().is_some()) {
        let key = without_lr(cell);
        match groups.iter_mut().find(|(k, d, _)| *k == key && *d == cell.group.dry_run) {
            Some((_, _, members)) => members.push(cell),
            None => groups.push((key, cell.group.dry_run, vec![cell])),
        }
    }
    groups.into_iter().map(|(key, _, members)| pick(key, &members, lr)).collect()
}

fn pick<'c, 'a>(key: Vec<String>, members: &[&'c Cell<'a>], lr: usize) -> LrChoice<'c, 'a> {
    let val = |c: &Cell<'_>| c.val_f1().map_or(f64::NEG_INFINITY, |s| s.mean);
    // First strictly better wins, so ties keep the earlier rate.
    let chosen = members.iter().copied().fold(members[0], |best, c| if val(c) > val(best) { c } else { best });
    let tied_with = members
        .iter()
        .filter(|c| !std::ptr::eq(**c, chosen) && (val(c) - val(chosen)).abs() <= 1e-12)
        .map(|c| c.group.key[lr].clone())
        .collect();
    LrChoice { key, chosen, candidates: members.len(), tied_with }
}

/// `lr_selection.csv`: the selection axes, dry_run, the chosen learning rate, how many rates
/// were compared, the tied ones, n, mean validation F1, and the test scores of the choice.
pub(crate) fn lr_selection_frame(choices: &[LrChoice<'_, '_>], cell_axes: &[String]) -> PolarsResult<DataFrame> {
    let selection_axes = axes_without(cell_axes, &["learning_rate"]);
    let mut cols = key_columns(&selection_axes, choices.iter().map(|c| (c.key.as_slice(), c.chosen.group.dry_run)));
    let lr = cell_axes.iter().position(|a| a == "learning_rate").unwrap_or(0);
    let text = |name: &str, f: &dyn Fn(&LrChoice<'_, '_>) -> String| {
        Column::new(name.into(), choices.iter().map(f).collect::<Vec<_>>())
    };
    let float = |name: &str, f: &dyn Fn(&LrChoice<'_, '_>) -> Option<f64>| {
        Column::new(name.into(), choices.iter().map(f).collect::<Vec<_>>())
    };
    cols.push(text("learning_rate", &|c| c.chosen.group.key[lr].clone()));
    cols.push(Column::new("candidates".into(), choices.iter().map(|c| c.candidates as u64).collect::<Vec<_>>()));
    cols.push(text("tied_with", &|c| c.tied_with.join(" ")));
    cols.push(Column::new("n".into(), choices.iter().map(|c| c.chosen.group.runs.len() as u64).collect::<Vec<_>>()));
    cols.push(float("val_f1_mean", &|c| c.chosen.val_f1().map(|s| s.mean)));
    cols.push(float("test_precision_mean", &|c| c.chosen.metrics[0].map(|s| s.mean)));
    cols.push(float("test_recall_mean", &|c| c.chosen.metrics[1].map(|s| s.mean)));
    cols.push(float("test_f1_mean", &|c| c.chosen.test_f1().map(|s| s.mean)));
    cols.push(float("test_f1_std", &|c| c.chosen.test_f1().and_then(|s| s.std)));
    cols.push(float("test_f1_ci95_low", &|c| c.chosen.test_f1().and_then(|s| s.ci95).map(|i| i.low)));
    cols.push(float("test_f1_ci95_high", &|c| c.chosen.test_f1().and_then(|s| s.ci95).map(|i| i.high)));
    DataFrame::new_infer_height(cols)
}

/// Per-entity-type test scores of one cell, averaged over its seeds.
#[derive(Debug, Clone)]
pub(crate) struct TypeScores {
    pub cell: usize,
    pub kind: String,
    pub n: usize,
    pub precision: f64,
    pub recall: f64,
    pub f1: SeedSummary,
    pub support: f64,
}

/// Rows of `report` in result.json that are averages, not entity types.
fn is_average(name: &str) -> bool {
    matches!(name, "micro avg" | "macro avg" | "weighted avg")
}

/// Per cell and entity type (types sorted as strings, like seqeval), the mean over seeds.
pub(crate) fn per_type(cells: &[Cell<'_>]) -> Vec<TypeScores> {
    let mut rows = Vec::new();
    for (index, cell) in cells.iter().enumerate() {
        let kinds: BTreeSet<&String> =
            cell.group.runs.iter().flat_map(|r| r.report.keys()).filter(|k| !is_average(k)).collect();
        for kind in kinds {
            let scores: Vec<_> = cell.group.runs.iter().filter_map(|r| r.report.get(kind)).collect();
            let mean = |f: &dyn Fn(&crate::store::ClassScores) -> f64| {
                scores.iter().map(|s| f(s)).sum::<f64>() / scores.len() as f64
            };
            let Some(f1) = summarize(&scores.iter().map(|s| s.f1).collect::<Vec<_>>()) else { continue };
            rows.push(TypeScores {
                cell: index,
                kind: kind.clone(),
                n: scores.len(),
                precision: mean(&|s| s.precision),
                recall: mean(&|s| s.recall),
                f1,
                support: mean(&|s| s.support as f64),
            });
        }
    }
    rows
}

/// `per_type.csv`: cell axes, dry_run, type, n, precision, recall, f1 (means), f1_std, support.
/// A score column named like an axis of the grid (`precision` is a training key too) is written
/// as `type_<name>`, so that both columns stay.
pub(crate) fn per_type_frame(rows: &[TypeScores], cells: &[Cell<'_>], cell_axes: &[String]) -> PolarsResult<DataFrame> {
    let keys = rows.iter().map(|t| (cells[t.cell].group.key.as_slice(), cells[t.cell].group.dry_run));
    let mut cols = key_columns(cell_axes, keys);
    let name = |score: &str| match cell_axes.iter().any(|a| a == score) {
        true => format!("type_{score}"),
        false => score.to_string(),
    };
    cols.push(Column::new(name("type").into(), rows.iter().map(|t| t.kind.clone()).collect::<Vec<_>>()));
    cols.push(Column::new(name("n").into(), rows.iter().map(|t| t.n as u64).collect::<Vec<_>>()));
    cols.push(Column::new(name("precision").into(), rows.iter().map(|t| t.precision).collect::<Vec<_>>()));
    cols.push(Column::new(name("recall").into(), rows.iter().map(|t| t.recall).collect::<Vec<_>>()));
    cols.push(Column::new(name("f1").into(), rows.iter().map(|t| t.f1.mean).collect::<Vec<_>>()));
    cols.push(Column::new(name("f1_std").into(), rows.iter().map(|t| t.f1.std).collect::<Vec<_>>()));
    cols.push(Column::new(name("support").into(), rows.iter().map(|t| t.support).collect::<Vec<_>>()));
    DataFrame::new_infer_height(cols)
}

/// `study.csv` in the notebook's shape: `Model, Tagging Scheme, Learning Rate, Precision,
/// Recall, F1` (test, mean over seeds and any other axis), one row per model × scheme × rate,
/// and a last `Dataset` column only when the runs span several datasets. Trained runs only
/// when the store has any, so dry-run numbers never mix with trained ones.
pub(crate) fn study_frame(results: &[RunResult]) -> PolarsResult<DataFrame> {
    let done = || results.iter().filter(|r| r.status == RunStatus::Done);
    let trained = done().any(|r| !r.dry_run);
    let chosen: Vec<&RunResult> = done().filter(|r| !trained || !r.dry_run).collect();
    let datasets: BTreeSet<String> = chosen.iter().map(|r| param_text(r, "dataset")).collect();
    let mut axes: Vec<String> = ["model", "scheme", "learning_rate"].map(String::from).to_vec();
    if datasets.len() > 1 {
        axes.push("dataset".into());
    }
    let groups = group_runs(chosen, &axes);
    let mean = |g: &Group<'_>, f: &dyn Fn(&RunResult) -> Option<f64>| {
        crate::stats::mean(&g.runs.iter().filter_map(|r| f(r)).collect::<Vec<_>>())
    };
    let text =
        |name: &str, i: usize| Column::new(name.into(), groups.iter().map(|g| g.key[i].clone()).collect::<Vec<_>>());
    let float = |name: &str, f: &dyn Fn(&RunResult) -> Option<f64>| {
        Column::new(name.into(), groups.iter().map(|g| mean(g, f)).collect::<Vec<_>>())
    };
    let mut cols = vec![text("Model", 0), text("Tagging Scheme", 1), text("Learning Rate", 2)];
    cols.push(float("Precision", &|r| r.test.map(|t| t.precision)));
    cols.push(float("Recall", &|r| r.test.map(|t| t.recall)));
    cols.push(float("F1", &|r| r.test.map(|t| t.f1)));
    if datasets.len() > 1 {
        cols.push(text("Dataset", 3));
    }
    DataFrame::new_infer_height(cols)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(precision: &str, seed: i64, f1: f64) -> RunResult {
        let scores = serde_json::json!({ "precision": f1, "recall": f1, "f1": f1, "support": 4 });
        serde_json::from_value(serde_json::json!({
            "id": format!("{precision}-{seed}"), "index": 0, "experiment": "e", "status": "done", "dry_run": false,
            "params": { "model": "m", "scheme": "BIO", "precision": precision, "seed": seed },
            "test": { "precision": f1, "recall": f1, "f1": f1, "accuracy": 1.0 },
            "report": { "DIS": scores, "micro avg": scores },
            "timings": { "started_at": "", "finished_at": "", "seconds": 0.0 },
            "device": "cpu", "host": "h", "attempt": 1,
            "tool": { "name": "nergrid", "version": "0", "git_commit": "x" },
        }))
        .unwrap()
    }

    /// A grid with `precision` as an axis (the training key) still gets its per-type table:
    /// the axis keeps its name and the score column becomes `type_precision`.
    #[test]
    fn per_type_scores_named_like_an_axis_are_prefixed() {
        let results = vec![run("bf16", 1, 0.5), run("bf16", 2, 0.7), run("fp32", 1, 0.6), run("fp32", 2, 0.8)];
        let axes: Vec<String> = ["model", "scheme", "precision"].map(String::from).to_vec();
        let cells = cells(&results, &axes);
        let frame = per_type_frame(&per_type(&cells), &cells, &axes).unwrap();
        let names: Vec<&str> = frame.get_column_names().iter().map(|n| n.as_str()).collect();
        assert_eq!(
            names,
            [
                "model",
                "scheme",
                "precision",
                "dry_run",
                "type",
                "n",
                "type_precision",
                "recall",
                "f1",
                "f1_std",
                "support"
            ]
        );
        let axis: Vec<Option<&str>> = frame.column("precision").unwrap().str().unwrap().iter().collect();
        assert_eq!(axis, [Some("bf16"), Some("fp32")]);
        let means: Vec<Option<f64>> = frame.column("type_precision").unwrap().f64().unwrap().iter().collect();
        assert_eq!(means.iter().map(|m| (m.unwrap() * 1e9).round() / 1e9).collect::<Vec<_>>(), [0.6, 0.7]);
        // Without the axis the columns keep their documented names.
        let plain: Vec<String> = ["model", "scheme"].map(String::from).to_vec();
        let cells = super::cells(&results[..2], &plain);
        let frame = per_type_frame(&per_type(&cells), &cells, &plain).unwrap();
        assert!(frame.column("precision").is_ok() && frame.column("type_precision").is_err());
    }
}
