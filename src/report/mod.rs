//! Report: tables and `report.md` built with polars from the store alone (no ML stack).

mod frames;
mod gather;
mod markdown;

use std::path::PathBuf;

use polars::prelude::*;

pub use frames::{param_text, pivot_frame, runs_frame, summary_frame};
pub use gather::{gather, ReportInputs};

use crate::store::{write_atomic, Store, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{path}: cannot build report table", path = path.display())]
    Table {
        path: PathBuf,
        #[source]
        source: PolarsError,
    },
}

/// Files a report wrote.
#[derive(Debug, Clone)]
pub struct ReportFiles {
    pub markdown: PathBuf,
    pub runs_csv: PathBuf,
    pub summary_csv: PathBuf,
    pub pivot_csv: PathBuf,
    pub inputs: ReportInputs,
}

/// Builds every report file in the store's root.
pub fn write_report(store: &Store) -> Result<ReportFiles, ReportError> {
    let inputs = gather(store)?;
    let root = store.root();
    let at = |path: PathBuf| move |source| ReportError::Table { path: path.clone(), source };
    let runs_csv = root.join("runs.csv");
    let summary_csv = root.join("summary.csv");
    let pivot_csv = root.join("pivot_f1.csv");
    let markdown_path = root.join("report.md");
    let mut runs = runs_frame(&inputs).map_err(at(runs_csv.clone()))?;
    let mut summary = summary_frame(&runs, &inputs.axes).map_err(at(summary_csv.clone()))?;
    let mut pivot = pivot_frame(&runs).map_err(at(pivot_csv.clone()))?;
    write_csv(&runs_csv, &mut runs)?;
    write_csv(&summary_csv, &mut summary)?;
    write_csv(&pivot_csv, &mut pivot)?;
    let md = markdown::report(&inputs, &summary, &pivot, &runs).map_err(at(markdown_path.clone()))?;
    write_atomic(&markdown_path, md.as_bytes())?;
    Ok(ReportFiles { markdown: markdown_path, runs_csv, summary_csv, pivot_csv, inputs })
}

/// CSV with 6 decimals for floats, so output is byte-for-byte reproducible.
fn write_csv(path: &std::path::Path, df: &mut DataFrame) -> Result<(), ReportError> {
    let mut buf = Vec::new();
    CsvWriter::new(&mut buf)
        .include_header(true)
        .with_float_precision(Some(6))
        .finish(df)
        .map_err(|source| ReportError::Table { path: path.to_path_buf(), source })?;
    write_atomic(path, &buf)?;
    Ok(())
}
