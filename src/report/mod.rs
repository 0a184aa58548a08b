//! Report: tables and `report.md` built with polars from the store alone (no ML stack): the
//! stored results and the store's spec snapshot (`spec.toml`, parsed to know the plan's runs
//! and axes; a snapshot that cannot be parsed is a warning).

mod audit;
mod compare;
mod curve;
mod errors;
mod frames;
mod gather;
mod markdown;
mod plots;
mod study;

use std::path::PathBuf;

use polars::prelude::*;

pub use frames::{param_text, pivot_frame, runs_frame, summary_frame};
pub use gather::{gather, ReportInputs};

use gather::{gather_run_files, RunFiles};

use crate::store::{write_atomic, Store, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{path}: cannot draw plot", path = path.display())]
    Plot {
        path: PathBuf,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
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
    /// The study tables (`cells.csv`, `lr_selection.csv`, `comparisons.csv`, `per_type.csv`,
    /// `study.csv`, `errors.csv`, `error_comparisons.csv`, and `learning_curve.csv` with a
    /// `train_fraction` axis) and plots (`plots/*.svg`), in that order.
    pub study: Vec<PathBuf>,
    pub inputs: ReportInputs,
}

/// Builds every report file in the store's root.
pub fn write_report(store: &Store) -> Result<ReportFiles, ReportError> {
    let mut inputs = gather(store)?;
    let run_files = gather_run_files(store, &inputs.results);
    errors::fill_from_predictions(&mut inputs.results, &run_files.predictions);
    inputs.warnings.extend(run_files.warnings.iter().cloned());
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
    let (study_md, study_files) = write_study(store, &inputs, &run_files)?;
    let md = markdown::report(&inputs, &summary, &pivot, &runs, &study_md).map_err(at(markdown_path.clone()))?;
    write_atomic(&markdown_path, md.as_bytes())?;
    Ok(ReportFiles { markdown: markdown_path, runs_csv, summary_csv, pivot_csv, study: study_files, inputs })
}

/// Writes the study tables and plots; returns their Markdown sections and the files written.
fn write_study(
    store: &Store,
    inputs: &ReportInputs,
    run_files: &RunFiles,
) -> Result<(String, Vec<PathBuf>), ReportError> {
    let root = store.root();
    let results = &inputs.results;
    let cell_axes = study::axes_without(&inputs.axes, &frames::REPLICATE_AXES);
    let cells = study::cells(results, &cell_axes);
    let choices = study::choose_learning_rates(&cells, &cell_axes);
    let types = study::per_type(&cells);
    let comparisons = compare::comparisons(results, &cell_axes, &run_files.predictions);
    let error_comparisons = errors::error_comparisons(&compare::matched_runs(results, &cell_axes));
    let audits = audit::audits(results);
    let plots_path = root.join("plots");
    let plots = plots::plots(&cells, &cell_axes, &run_files.epochs)
        .map_err(|e| ReportError::Plot { path: plots_path.clone(), source: e })?;
    let tables: [(&str, PolarsResult<DataFrame>); 7] = [
        ("cells.csv", study::cells_frame(&cells, &cell_axes)),
        ("lr_selection.csv", study::lr_selection_frame(&choices, &cell_axes)),
        ("comparisons.csv", compare::comparisons_frame(&comparisons, &cell_axes)),
        ("per_type.csv", study::per_type_frame(&types, &cells, &cell_axes)),
        ("study.csv", study::study_frame(results)),
        ("errors.csv", errors::errors_frame(&cells, &cell_axes)),
        ("error_comparisons.csv", errors::error_comparisons_frame(&error_comparisons, &cell_axes)),
    ];
    let mut written = Vec::new();
    for (name, frame) in tables {
        let path = root.join(name);
        let mut frame = frame.map_err(|source| ReportError::Table { path: path.clone(), source })?;
        write_csv(&path, &mut frame)?;
        written.push(path);
    }
    let curve = curve::has_curve(&cell_axes);
    if curve {
        let path = root.join("learning_curve.csv");
        let mut frame = curve::curve_frame(&cells, &cell_axes)
            .map_err(|source| ReportError::Table { path: path.clone(), source })?;
        write_csv(&path, &mut frame)?;
        written.push(path);
    }
    for plot in &plots {
        let path = root.join(&plot.file);
        write_atomic(&path, plot.svg.as_bytes())?;
        written.push(path);
    }
    let dry = results.iter().any(|r| r.dry_run);
    let mixed = dry && results.iter().any(|r| !r.dry_run);
    let error_view = errors::ErrorView { cell_axes: &cell_axes, cells: &cells, comparisons: &error_comparisons, mixed };
    let view = markdown::StudyView {
        cell_axes: &cell_axes,
        cells: &cells,
        choices: &choices,
        comparisons: &comparisons,
        types: &types,
        audits: &audits,
        plots: &plots,
        mixed,
        folded: inputs.axes.iter().any(|a| a == "fold"),
    };
    let mut md = markdown::study_sections(&view);
    if curve {
        md.push_str(&curve::curve_section(&cells, &cell_axes, view.mixed));
    }
    md.push_str(&errors::error_sections(&error_view));
    Ok((md, written))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plot_errors_keep_their_cause_as_source() {
        let cause: Box<dyn std::error::Error + Send + Sync> = "backend failed".into();
        let e = ReportError::Plot { path: "r/plots".into(), source: cause };
        assert_eq!(e.to_string(), "r/plots: cannot draw plot");
        assert_eq!(std::error::Error::source(&e).map(|s| s.to_string()).as_deref(), Some("backend failed"));
    }
}
