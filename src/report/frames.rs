//! The report's tables as polars DataFrames: runs, summary over seeds, F1 pivot by learning rate.

#![allow(deprecated)] // polars' eager group-by aggregations; the lazy API would pull polars-lazy.

use polars::prelude::*;

use super::gather::ReportInputs;
use crate::spec::ParamValue;
use crate::store::{RunResult, RunStatus};

const METRICS: [&str; 3] = ["test_precision", "test_recall", "test_f1"];

/// The canonical text of a stored parameter (`2e-5`, not `2e-05` or `0.00002`).
pub fn param_text(result: &RunResult, key: &str) -> String {
    result
        .params
        .get(key)
        .and_then(|v| serde_json::from_value::<ParamValue>(v.clone()).ok())
        .map(|p| p.canonical())
        .unwrap_or_default()
}

fn metric(result: &RunResult, f: impl Fn(&RunResult) -> Option<f64>) -> Option<f64> {
    f(result)
}

/// One row per run: index, id, status, axis columns, then metrics and timings.
pub fn runs_frame(inputs: &ReportInputs) -> PolarsResult<DataFrame> {
    let rs = &inputs.results;
    let mut cols: Vec<Column> = vec![
        Column::new("index".into(), rs.iter().map(|r| r.index as u64).collect::<Vec<_>>()),
        Column::new("id".into(), rs.iter().map(|r| r.id.clone()).collect::<Vec<_>>()),
        Column::new("status".into(), rs.iter().map(|r| status(r).to_string()).collect::<Vec<_>>()),
        Column::new("dry_run".into(), rs.iter().map(|r| r.dry_run).collect::<Vec<_>>()),
    ];
    for axis in &inputs.axes {
        cols.push(Column::new(axis.as_str().into(), rs.iter().map(|r| param_text(r, axis)).collect::<Vec<_>>()));
    }
    let f = |name: &str, get: &dyn Fn(&RunResult) -> Option<f64>| {
        Column::new(name.into(), rs.iter().map(|r| metric(r, get)).collect::<Vec<Option<f64>>>())
    };
    cols.push(f("test_precision", &|r| r.test.map(|t| t.precision)));
    cols.push(f("test_recall", &|r| r.test.map(|t| t.recall)));
    cols.push(f("test_f1", &|r| r.test.map(|t| t.f1)));
    cols.push(f("test_accuracy", &|r| r.test.map(|t| t.accuracy)));
    cols.push(f("val_f1", &|r| r.validation.map(|t| t.f1)));
    cols.push(Column::new("best_epoch".into(), rs.iter().map(|r| r.best_epoch.map(|e| e as u64)).collect::<Vec<_>>()));
    cols.push(f("seconds", &|r| Some(r.timings.seconds)));
    cols.push(f("train_tokens_per_sec", &|r| r.timings.train_tokens_per_sec));
    cols.push(f("peak_rss_mb", &|r| r.details.get("peak_rss_bytes").and_then(|v| v.as_f64()).map(|b| b / 1_048_576.0)));
    cols.push(Column::new("device".into(), rs.iter().map(|r| r.device.clone()).collect::<Vec<_>>()));
    cols.push(Column::new(
        "error".into(),
        rs.iter().map(|r| r.error.first().cloned().unwrap_or_default()).collect::<Vec<_>>(),
    ));
    DataFrame::new_infer_height(cols)
}

fn status(r: &RunResult) -> &'static str {
    match r.status {
        RunStatus::Done => "done",
        RunStatus::Failed => "failed",
    }
}

/// The axes whose runs are replicates of one cell: seeds and, cross-validated, folds.
pub(crate) const REPLICATE_AXES: [&str; 2] = ["fold", "seed"];

/// Done runs grouped by every axis except seed and fold: n, mean, std, min, max of P/R/F1.
pub fn summary_frame(runs: &DataFrame, axes: &[String]) -> PolarsResult<DataFrame> {
    // dry_run is a key so that dry-run numbers are never averaged with trained ones.
    let mut keys: Vec<&str> = axes.iter().map(String::as_str).filter(|a| !REPLICATE_AXES.contains(a)).collect();
    keys.push("dry_run");
    let done = done_rows(runs)?;
    let grouped = done.group_by_stable(keys.clone())?.select(METRICS);
    let count = grouped.count()?;
    let mut out = count.select(keys.clone())?;
    let n = count.column("test_f1_count")?.clone().with_name("n".into());
    out.hstack_mut(&[n])?;
    let stats =
        [("mean", grouped.mean()?), ("agg_std", grouped.std(1)?), ("min", grouped.min()?), ("max", grouped.max()?)];
    for metric in METRICS {
        for (stat, frame) in &stats {
            let name = format!("{metric}_{stat}");
            let column = frame
                .column(&name)?
                .cast(&DataType::Float64)?
                .with_name(format!("{metric}_{}", stat.trim_start_matches("agg_")).into());
            out.hstack_mut(&[column])?;
        }
    }
    Ok(out)
}

/// Rows model × scheme × dataset, one column per learning rate: mean test F1 over the rest.
pub fn pivot_frame(runs: &DataFrame) -> PolarsResult<DataFrame> {
    let done = done_rows(runs)?;
    let rows_keys = ["model", "scheme", "dataset", "dry_run"];
    let cells =
        done.group_by_stable(["model", "scheme", "dataset", "dry_run", "learning_rate"])?.select(["test_f1"]).mean()?;
    let rates = unique_in_order(done.column("learning_rate")?.str()?);
    let rows = done.group_by_stable(rows_keys)?.select(["test_f1"]).count()?.select(rows_keys)?;
    let mut out = rows.clone();
    for rate in &rates {
        let mut values = Vec::with_capacity(rows.height());
        for i in 0..rows.height() {
            values.push(cell_value(&cells, &rows, i, rate)?);
        }
        out.hstack_mut(&[Column::new(format!("lr={rate}").into(), values)])?;
    }
    Ok(out)
}

fn cell_value(cells: &DataFrame, rows: &DataFrame, row: usize, rate: &str) -> PolarsResult<Option<f64>> {
    let key = |df: &DataFrame, name: &str, i: usize| -> PolarsResult<String> {
        // Columns that hold one value (a single group) give owned strings: compare text only.
        let value = df.column(name)?.get(i)?;
        Ok(value.get_str().map_or_else(|| value.to_string(), str::to_string))
    };
    let names = ["model", "scheme", "dataset", "dry_run"];
    let want: Vec<String> = names.iter().map(|n| key(rows, n, row)).collect::<PolarsResult<_>>()?;
    for j in 0..cells.height() {
        let have: Vec<String> = names.iter().map(|n| key(cells, n, j)).collect::<PolarsResult<_>>()?;
        if have == want && key(cells, "learning_rate", j)? == rate {
            return Ok(cells.column("test_f1_mean")?.f64()?.get(j));
        }
    }
    Ok(None)
}

fn done_rows(runs: &DataFrame) -> PolarsResult<DataFrame> {
    let mask = runs.column("status")?.str()?.equal("done");
    runs.filter(&mask)
}

fn unique_in_order(ca: &StringChunked) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for v in (0..ca.len()).filter_map(|i| ca.get(i)) {
        if !out.iter().any(|o| o == v) {
            out.push(v.to_string());
        }
    }
    out
}
