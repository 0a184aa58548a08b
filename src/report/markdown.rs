//! Markdown rendering of DataFrames and of `report.md`.

use polars::prelude::*;

use super::gather::ReportInputs;

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
pub fn report(inputs: &ReportInputs, summary: &DataFrame, pivot: &DataFrame, runs: &DataFrame) -> PolarsResult<String> {
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
    md.push_str("## Test F1 by learning rate (mean over seeds and other axes)\n\n");
    md.push_str(&table(pivot, 4));
    md.push_str("\n## Summary over seeds (test set)\n\n");
    let short = summary.select(summary_columns(summary))?;
    md.push_str(&table(&short, 4));
    md.push_str("\nAll statistics: `summary.csv`. Every run: `runs.csv`.\n\n## Runs\n\n");
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

fn summary_columns(summary: &DataFrame) -> Vec<String> {
    summary
        .get_column_names()
        .iter()
        .map(|n| n.to_string())
        .filter(|n| !n.ends_with("_min") && !n.ends_with("_max"))
        .collect()
}
