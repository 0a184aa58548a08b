//! Markdown rendering of DataFrames and of `report.md`.

use polars::prelude::*;

use super::audit::DatasetAudit;
use super::compare::{Comparison, MIN_PAIRS};
use super::gather::ReportInputs;
use super::plots::Plot;
use super::study::{axes_without, Cell, LrChoice, TypeScores};
use crate::stats::{BootstrapConfig, Interval, SeedSummary, EXACT_SIGN_FLIP_MAX, MIN_SEEDS_FOR_CI};

/// A DataFrame as a Markdown table; floats with `digits` decimals, nulls as "–".
pub fn table(df: &DataFrame, digits: usize) -> String {
    let names: Vec<String> = df.get_column_names().iter().map(|n| n.to_string()).collect();
    let mut out =
        format!("| {} |\n|{}|\n", names.join(" | "), names.iter().map(|_| "---").collect::<Vec<_>>().join("|"));
    for i in 0..df.height() {
        let cells: Vec<String> =
            df.columns().iter().map(|c| cell(c.get(i).unwrap_or(AnyValue::Null), digits)).collect();
        out.push_str(&format!("| {} |\n", cells.join(" | ")));
    }
    out
}

fn cell(v: AnyValue<'_>, digits: usize) -> String {
    match v {
        AnyValue::Null => "–".into(),
        AnyValue::Float64(f) if f.is_nan() => "NaN".into(),
        AnyValue::Float64(f) => format!("{f:.digits$}"),
        AnyValue::Float32(f) => format!("{f:.digits$}"),
        AnyValue::String(s) => s.replace('|', "\\|"),
        AnyValue::StringOwned(s) => s.replace('|', "\\|"),
        other => other.to_string(),
    }
}

/// The whole `report.md`.
pub fn report(
    inputs: &ReportInputs,
    summary: &DataFrame,
    pivot: &DataFrame,
    runs: &DataFrame,
    study: &str,
) -> PolarsResult<String> {
    let done = inputs.results.iter().filter(|r| r.status == crate::store::RunStatus::Done).count();
    let failed = inputs.results.len() - done;
    let mut md = format!("# {}\n\n", inputs.experiment);
    if inputs.any_dry_run() {
        md.push_str("> **DRY RUN**: metrics below come from the dry-run trainer (a function of the run id), not from training.\n\n");
    }
    md.push_str(&format!(
        "Runs: {} planned, {done} done, {failed} failed, {} pending.\n\n",
        inputs.planned, inputs.pending
    ));
    for w in &inputs.warnings {
        md.push_str(&format!("- warning: {w}\n"));
    }
    // The dry_run key column says something only when a store mixes dry and trained runs.
    let mixed = inputs.any_dry_run() && inputs.results.iter().any(|r| !r.dry_run);
    md.push_str("## Test F1 by learning rate (mean over seeds and other axes)\n\n");
    md.push_str(&table(&shown_columns(pivot, mixed)?, 4));
    let folded = inputs.axes.iter().any(|a| a == "fold");
    md.push_str(if folded {
        "\n## Summary over folds × seeds (test set)\n\n"
    } else {
        "\n## Summary over seeds (test set)\n\n"
    });
    let short = shown_columns(&summary.select(summary_columns(summary))?, mixed)?;
    md.push_str(&table(&short, 4));
    md.push_str("\nAll statistics: `summary.csv`. Every run: `runs.csv`.\n\n");
    md.push_str(study);
    md.push_str("## Runs\n\n");
    let cols: Vec<String> =
        ["index", "id", "status", "test_precision", "test_recall", "test_f1", "best_epoch", "seconds"]
            .iter()
            .map(|s| s.to_string())
            .collect();
    md.push_str(&table(&runs.select(cols)?, 4));
    let failures: Vec<_> = inputs.results.iter().filter(|r| !r.error.is_empty()).collect();
    if !failures.is_empty() {
        md.push_str("\n## Failed runs\n\n");
        for r in failures {
            md.push_str(&format!("- `{}`: {}\n", r.id, r.error.join(": ")));
        }
    }
    Ok(md)
}

/// `frame` without its dry_run column unless the store mixes dry and trained runs.
fn shown_columns(frame: &DataFrame, mixed: bool) -> PolarsResult<DataFrame> {
    match mixed || frame.column("dry_run").is_err() {
        true => Ok(frame.clone()),
        false => frame.drop("dry_run"),
    }
}

fn summary_columns(summary: &DataFrame) -> Vec<String> {
    summary
        .get_column_names()
        .iter()
        .map(|n| n.to_string())
        .filter(|n| !n.ends_with("_min") && !n.ends_with("_max"))
        .collect()
}

/// A Markdown table of already formatted cells.
pub(crate) fn text_table(header: &[String], rows: &[Vec<String>]) -> String {
    let escape = |s: &String| s.replace('|', "\\|");
    let mut out = format!(
        "| {} |\n|{}|\n",
        header.iter().map(escape).collect::<Vec<_>>().join(" | "),
        vec!["---"; header.len()].join("|")
    );
    for row in rows {
        out.push_str(&format!("| {} |\n", row.iter().map(escape).collect::<Vec<_>>().join(" | ")));
    }
    out
}

/// Everything the study sections show.
pub(crate) struct StudyView<'v, 'a> {
    pub cell_axes: &'v [String],
    pub cells: &'v [Cell<'a>],
    pub choices: &'v [LrChoice<'v, 'a>],
    pub comparisons: &'v [Comparison],
    pub types: &'v [TypeScores],
    pub audits: &'v [DatasetAudit],
    pub plots: &'v [Plot],
    /// Whether the store mixes dry runs with trained ones (then tables show a dry_run column).
    pub mixed: bool,
    /// Whether the grid has a `fold` axis (k-fold cross-validation).
    pub folded: bool,
}

fn f4(v: f64) -> String {
    format!("{v:.4}")
}

fn mean_std(s: Option<SeedSummary>) -> String {
    match s {
        None => "–".into(),
        Some(SeedSummary { mean, std: Some(sd), .. }) => format!("{mean:.4} ± {sd:.4}"),
        Some(SeedSummary { mean, .. }) => f4(mean),
    }
}

fn interval(i: Option<Interval>, n: usize) -> String {
    match i {
        Some(i) => format!("[{:.4}, {:.4}]", i.low, i.high),
        None => format!("n={n} < {MIN_SEEDS_FOR_CI}"),
    }
}

/// The header of a table's key columns: the axes, and `dry_run` when the store mixes them.
pub(super) fn key_header(axes: &[String], mixed: bool) -> Vec<String> {
    let mut h = axes.to_vec();
    if mixed {
        h.push("dry_run".into());
    }
    h
}

/// A row's key cells, as [`key_header`] heads them.
pub(super) fn key_cells(key: &[String], dry_run: bool, mixed: bool) -> Vec<String> {
    let mut row = key.to_vec();
    if mixed {
        row.push(dry_run.to_string());
    }
    row
}

/// The study sections of `report.md`, placed before the list of runs.
pub(crate) fn study_sections(v: &StudyView<'_, '_>) -> String {
    [lr_section(v), cells_section(v), comparisons_section(v), types_section(v), audit_section(v), plots_section(v)]
        .concat()
}

fn lr_section(v: &StudyView<'_, '_>) -> String {
    let mut md = String::from("## Learning rate chosen on validation F1\n\n");
    md.push_str(
        "Per combination of the other axes, the learning rate with the highest mean **validation** F1 over \
         seeds; ties go to the rate listed first in the grid and the tied rates are named. The test scores are \
         those of the chosen rate: the test set plays no part in the choice. Table: `lr_selection.csv`; the \
         notebook's table (`Model, Tagging Scheme, Learning Rate, Precision, Recall, F1`, every rate): `study.csv`.\n\n",
    );
    let axes = axes_without(v.cell_axes, &["learning_rate"]);
    let mut header = key_header(&axes, v.mixed);
    header.extend(
        ["learning rate", "tied with", "n", "val F1", "test P", "test R", "test F1", "test F1 95% CI"]
            .map(String::from),
    );
    let rows: Vec<Vec<String>> = v
        .choices
        .iter()
        .map(|c| {
            let cell = c.chosen;
            let lr = v
                .cell_axes
                .iter()
                .position(|a| a == "learning_rate")
                .map_or(String::new(), |i| cell.group.key[i].clone());
            let mut row = key_cells(&c.key, cell.group.dry_run, v.mixed);
            row.extend([
                lr,
                if c.tied_with.is_empty() { "–".into() } else { c.tied_with.join(", ") },
                cell.group.runs.len().to_string(),
                mean_std(cell.val_f1()),
                cell.metrics[0].map_or("–".into(), |s| f4(s.mean)),
                cell.metrics[1].map_or("–".into(), |s| f4(s.mean)),
                mean_std(cell.test_f1()),
                interval(cell.test_f1().and_then(|s| s.ci95), cell.group.runs.len()),
            ]);
            row
        })
        .collect();
    md.push_str(&text_table(&header, &rows));
    md.push('\n');
    md
}

fn cells_section(v: &StudyView<'_, '_>) -> String {
    let mut md = String::from(match v.folded {
        true => "## Every cell over folds × seeds\n\n",
        false => "## Every cell over seeds\n\n",
    });
    let (folds, caveat) = match v.folded {
        true => (
            " and folds",
            "; over folds it treats the runs as independent, which they are not: see the paired comparisons",
        ),
        false => ("", ""),
    };
    md.push_str(&format!(
        "Mean ± sample standard deviation over seeds{folds}, and a 95% confidence interval for the mean test F1 \
         (Student's t with n − 1 degrees of freedom; none below {MIN_SEEDS_FOR_CI} runs{caveat}). With few seeds the \
         interval is wide and may pass 1: it is reported as computed, not clipped. `cells.csv` holds the same \
         for test precision, recall and validation F1.\n\n"
    ));
    let mut header = key_header(v.cell_axes, v.mixed);
    header.extend(["n", "test F1", "test F1 95% CI", "val F1"].map(String::from));
    let rows: Vec<Vec<String>> = v
        .cells
        .iter()
        .map(|c| {
            let n = c.group.runs.len();
            let mut row = key_cells(&c.group.key, c.group.dry_run, v.mixed);
            row.extend([
                n.to_string(),
                mean_std(c.test_f1()),
                interval(c.test_f1().and_then(|s| s.ci95), n),
                mean_std(c.val_f1()),
            ]);
            row
        })
        .collect();
    md.push_str(&text_table(&header, &rows));
    md.push('\n');
    md
}

/// What a comparison over folds × seeds does and does not show.
const FOLDS_CAVEAT: &str =
    "**Folds**: runs are matched on (fold, seed), so k folds × s seeds give k·s pairs, and each \
    fold's test sentences are resampled within that fold (the folds' test sets are disjoint; their draws are \
    independent). The folds share training data (any two folds' training parts overlap in (k − 2)/(k − 1) of \
    their sentences) and the seeds share everything but the seed, so the pairs are not independent \
    replications: the sign-flip p-value treats them as exchangeable and is optimistic, and the bootstrap \
    interval covers test-sentence sampling given these trained models, not the variation of a new training \
    set. The smallest p column is 2/2ⁿ for the n pairs: the test cannot go below it.\n\n";

fn comparisons_section(v: &StudyView<'_, '_>) -> String {
    let mut md = String::from("## Paired comparisons\n\n");
    let BootstrapConfig { replicates, seed, .. } = BootstrapConfig::default();
    md.push_str(&format!(
        "Runs are matched on every other axis, seed (and fold) included; a difference is A − B in test F1, \
         averaged over the matched seeds (and folds): n pairs. **Bootstrap**: {replicates} resamples of the test sentences with \
         replacement (ChaCha8, seed {seed}), rescoring A and B of every pair on the same sentences \
         (pairs that share a test set share each draw) and averaging the pairs' differences; the interval is the \
         2.5–97.5 percentile range. It measures test-set sampling for these seeds, not seed variation. \
         **Sign-flip test**: two-sided, over the signs of the n per-seed differences (exact for n ≤ \
         {EXACT_SIGN_FLIP_MAX}); not computed below {MIN_PAIRS} pairs. With n pairs the smallest possible p is \
         2/2ⁿ (0.0625 for 5 seeds), so fewer than 6 seeds can never give p < 0.05. Table: `comparisons.csv`.\n\n"
    ));
    if v.folded {
        md.push_str(FOLDS_CAVEAT);
    }
    if v.comparisons.is_empty() {
        md.push_str("No axis among scheme, model, precision and engine has two values with matched runs.\n\n");
    }
    let mut seen: Vec<(&str, &str, &str)> = Vec::new();
    for c in v.comparisons {
        let id = (c.axis.as_str(), c.a.as_str(), c.b.as_str());
        if seen.contains(&id) {
            continue;
        }
        seen.push(id);
        md.push_str(&format!("### {}: {} vs {}\n\n", c.axis, c.a, c.b));
        let axes = axes_without(v.cell_axes, &[c.axis.as_str()]);
        let mut header = key_header(&axes, v.mixed);
        header.extend(
            ["n pairs", "mean diff (A − B)", "bootstrap 95%", "sign-flip p", "smallest p", "note"].map(String::from),
        );
        let rows: Vec<Vec<String>> = v
            .comparisons
            .iter()
            .filter(|o| (o.axis.as_str(), o.a.as_str(), o.b.as_str()) == id)
            .map(|o| comparison_row(o, v))
            .collect();
        md.push_str(&text_table(&header, &rows));
        md.push('\n');
    }
    md
}

fn comparison_row(c: &Comparison, v: &StudyView<'_, '_>) -> Vec<String> {
    let key: Vec<String> =
        v.cell_axes.iter().zip(&c.key).filter(|(a, _)| **a != c.axis).map(|(_, k)| k.clone()).collect();
    let mut row = key_cells(&key, c.dry_run, v.mixed);
    row.extend([
        c.diffs.len().to_string(),
        format!("{:+.4}", c.mean_diff()),
        c.bootstrap.as_ref().map_or("–".into(), |b| format!("[{:+.4}, {:+.4}]", b.interval.low, b.interval.high)),
        c.sign_flip.map_or("–".into(), |t| format!("{:.4}", t.p_value)),
        c.sign_flip.map_or("–".into(), |t| format!("{:.2e}", t.smallest_p)),
        c.note(),
    ]);
    row
}

fn types_section(v: &StudyView<'_, '_>) -> String {
    let mut md = String::from("## Per entity type (test set, mean over seeds)\n\n");
    if v.types.is_empty() {
        md.push_str("No run stored a per-type report.\n\n");
        return md;
    }
    md.push_str("Table: `per_type.csv`.\n\n");
    let mut header = key_header(v.cell_axes, v.mixed);
    header.extend(["type", "n", "precision", "recall", "F1", "support"].map(String::from));
    let rows: Vec<Vec<String>> = v
        .types
        .iter()
        .map(|t| {
            let cell = &v.cells[t.cell];
            let mut row = key_cells(&cell.group.key, cell.group.dry_run, v.mixed);
            row.extend([
                t.kind.clone(),
                t.n.to_string(),
                f4(t.precision),
                f4(t.recall),
                mean_std(Some(t.f1)),
                format!("{:.1}", t.support),
            ]);
            row
        })
        .collect();
    md.push_str(&text_table(&header, &rows));
    md.push('\n');
    md
}

fn audit_section(v: &StudyView<'_, '_>) -> String {
    format!("## Data audit\n\n{}", super::audit::markdown(v.audits))
}

fn plots_section(v: &StudyView<'_, '_>) -> String {
    let mut md = String::from("## Plots\n\n");
    if v.plots.is_empty() {
        md.push_str("No run stored epochs or test scores to plot.\n\n");
    }
    for p in v.plots {
        md.push_str(&format!("![{}]({})\n\n", p.title, p.file));
    }
    md
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dry_run_column_is_shown_only_for_a_mixed_store() {
        let frame = df!("model" => ["a", "b"], "dry_run" => [false, true], "lr=1e-4" => [0.5, 0.6]).unwrap();
        assert_eq!(shown_columns(&frame, true).unwrap().get_column_names(), ["model", "dry_run", "lr=1e-4"]);
        assert_eq!(shown_columns(&frame, false).unwrap().get_column_names(), ["model", "lr=1e-4"]);
        let plain = frame.drop("dry_run").unwrap();
        assert_eq!(shown_columns(&plain, false).unwrap().get_column_names(), ["model", "lr=1e-4"]);
    }
}
