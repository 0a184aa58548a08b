//! The learning curve table: with a `train_fraction` axis, every cell's mean training
//! sentences and test F1 (mean ± std over seeds and folds), as `learning_curve.csv` and a
//! section of `report.md`. The plot is in `plots`.

use polars::prelude::*;

use super::markdown::text_table;
use super::plots::train_size;
use super::study::{key_columns, Cell};

/// The axis a learning curve runs over.
pub(crate) const AXIS: &str = "train_fraction";

/// Whether the grid varies `train_fraction`.
pub(crate) fn has_curve(cell_axes: &[String]) -> bool {
    cell_axes.iter().any(|a| a == AXIS)
}

/// Mean training sentences of a cell's runs that recorded them.
fn mean_train_size(cell: &Cell<'_>) -> Option<f64> {
    let sizes: Vec<f64> = cell.group.runs.iter().filter_map(|r| train_size(r)).collect();
    (!sizes.is_empty()).then(|| sizes.iter().sum::<f64>() / sizes.len() as f64)
}

/// `learning_curve.csv`: cell axes, dry_run, n, train_sentences_mean, test_f1_mean, test_f1_std.
pub(crate) fn curve_frame(cells: &[Cell<'_>], cell_axes: &[String]) -> PolarsResult<DataFrame> {
    let mut cols = key_columns(cell_axes, cells.iter().map(|c| (c.group.key.as_slice(), c.group.dry_run)));
    cols.push(Column::new("n".into(), cells.iter().map(|c| c.group.runs.len() as u64).collect::<Vec<_>>()));
    cols.push(Column::new("train_sentences_mean".into(), cells.iter().map(mean_train_size).collect::<Vec<_>>()));
    let f1 = |f: &dyn Fn(&Cell<'_>) -> Option<f64>| cells.iter().map(f).collect::<Vec<_>>();
    cols.push(Column::new("test_f1_mean".into(), f1(&|c| c.test_f1().map(|s| s.mean))));
    cols.push(Column::new("test_f1_std".into(), f1(&|c| c.test_f1().and_then(|s| s.std))));
    DataFrame::new_infer_height(cols)
}

/// The `## Learning curve` section.
pub(crate) fn curve_section(cells: &[Cell<'_>], cell_axes: &[String], mixed: bool) -> String {
    let mut md = String::from("## Learning curve\n\n");
    md.push_str(
        "Test F1 (mean ± sample standard deviation over seeds and folds) against the share of the training \
         split each run kept (`train_fraction`: a subsample drawn with the run's seed, nested across fractions; \
         validation and test untouched). Training sentences are the mean over the cell's runs that recorded \
         them (dry runs do not). Table: `learning_curve.csv`; plots: `plots/learning_curve_*.svg`.\n\n",
    );
    let mut header = cell_axes.to_vec();
    if mixed {
        header.push("dry_run".into());
    }
    header.extend(["n", "training sentences", "test F1"].map(String::from));
    let rows: Vec<Vec<String>> = cells
        .iter()
        .map(|c| {
            let mut row = c.group.key.clone();
            if mixed {
                row.push(c.group.dry_run.to_string());
            }
            let f1 = match c.test_f1() {
                Some(s) => s.std.map_or(format!("{:.4}", s.mean), |sd| format!("{:.4} ± {sd:.4}", s.mean)),
                None => "–".into(),
            };
            row.extend([
                c.group.runs.len().to_string(),
                mean_train_size(c).map_or("–".into(), |n| format!("{n:.1}")),
                f1,
            ]);
            row
        })
        .collect();
    md.push_str(&text_table(&header, &rows));
    md.push('\n');
    md
}
