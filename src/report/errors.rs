//! The error analysis in the report: per cell, the mean over seeds of nervaluate's categories,
//! boundary errors and type errors (`errors.csv`); per paired comparison, boundary and type
//! errors of A and B side by side with their paired differences (`error_comparisons.csv`).
//! Runs are paired by [`super::compare::matched_runs`], the rule of the F1 comparisons. A done
//! run whose `result.json` has no `errors` (written before the field existed) gets them from its
//! `predictions.conll`, the same test predictions the runner analyses; runs with neither (dry
//! runs) are left out of the means, and a cell or comparison with none shows "n/a".

use polars::prelude::*;

use super::compare::MatchedRuns;
use super::markdown::{key_cells, key_header, text_table};
use super::study::{axes_without, key_columns, Cell};
use crate::metrics::{error_analysis, ErrorAnalysis, SCHEMA_NAMES};
use crate::stats::{mean, sign_flip_test, SignFlipTest, BOOTSTRAP_SEED};
use crate::store::{PredictedSentence, RunResult, RunStatus};

/// Fills `errors` of done runs stored without it from their test predictions (what the runner
/// computes them from), so a store written before the field existed gets its error analysis.
pub(crate) fn fill_from_predictions(
    results: &mut [RunResult],
    predictions: &std::collections::BTreeMap<String, Vec<PredictedSentence>>,
) {
    for run in results.iter_mut().filter(|r| r.status == RunStatus::Done && r.errors.is_none()) {
        if let Some(sentences) = predictions.get(&run.id) {
            let gold: Vec<Vec<String>> = sentences.iter().map(|s| s.gold.clone()).collect();
            let pred: Vec<Vec<String>> = sentences.iter().map(|s| s.predicted.clone()).collect();
            run.errors = error_analysis(&gold, &pred).ok();
        }
    }
}

/// nervaluate's fields averaged per cell, for every schema.
const FIELDS: [&str; 8] = ["correct", "incorrect", "partial", "missed", "spurious", "precision", "recall", "f1"];

/// The counts beside the schemas, in column order.
const ERROR_COUNTS: [&str; 5] = ["too_long", "too_short", "shifted", "boundary_errors", "type_errors"];

fn error_count(e: &ErrorAnalysis, name: &str) -> f64 {
    let b = &e.boundaries;
    let n = match name {
        "too_long" => b.too_long,
        "too_short" => b.too_short,
        "shifted" => b.shifted,
        "boundary_errors" => b.total(),
        _ => e.type_errors(),
    };
    n as f64
}

fn schema_field(e: &ErrorAnalysis, schema: &str, field: &str) -> f64 {
    let c = e.overall.get(schema).expect("a known schema");
    match field {
        "correct" => c.correct as f64,
        "incorrect" => c.incorrect as f64,
        "partial" => c.partial as f64,
        "missed" => c.missed as f64,
        "spurious" => c.spurious as f64,
        "precision" => c.precision,
        "recall" => c.recall,
        _ => c.f1,
    }
}

/// One averaged column of `errors.csv`: a schema's field, or one of [`ERROR_COUNTS`].
#[derive(Debug, Clone, Copy)]
enum Metric {
    Field(&'static str, &'static str),
    Count(&'static str),
}

impl Metric {
    /// Every column after the keys, in order.
    fn all() -> Vec<Metric> {
        let fields = SCHEMA_NAMES.iter().flat_map(|s| FIELDS.iter().map(|f| Metric::Field(s, f)));
        fields.chain(ERROR_COUNTS.iter().map(|c| Metric::Count(c))).collect()
    }

    fn name(self) -> String {
        match self {
            Metric::Field(schema, field) => format!("{schema}_{field}"),
            Metric::Count(name) => name.to_string(),
        }
    }

    fn read(self, e: &ErrorAnalysis) -> f64 {
        match self {
            Metric::Field(schema, field) => schema_field(e, schema, field),
            Metric::Count(name) => error_count(e, name),
        }
    }
}

fn analyses<'a>(cell: &Cell<'a>) -> Vec<&'a ErrorAnalysis> {
    cell.group.runs.iter().filter_map(|r| r.errors.as_ref()).collect()
}

/// `errors.csv`: cell axes, dry_run, n (done runs), n_analysed (runs with an error analysis),
/// then the mean over those runs of every schema's fields and of the error counts (empty when
/// no run has one).
pub(crate) fn errors_frame(cells: &[Cell<'_>], cell_axes: &[String]) -> PolarsResult<DataFrame> {
    let mut cols = key_columns(cell_axes, cells.iter().map(|c| (c.group.key.as_slice(), c.group.dry_run)));
    cols.push(Column::new("n".into(), cells.iter().map(|c| c.group.runs.len() as u64).collect::<Vec<_>>()));
    cols.push(Column::new("n_analysed".into(), cells.iter().map(|c| analyses(c).len() as u64).collect::<Vec<_>>()));
    for metric in Metric::all() {
        let means: Vec<Option<f64>> =
            cells.iter().map(|c| mean(&analyses(c).iter().map(|e| metric.read(e)).collect::<Vec<_>>())).collect();
        cols.push(Column::new(metric.name().into(), means));
    }
    DataFrame::new_infer_height(cols)
}

/// Boundary and type errors of one paired comparison, over the pairs where both runs have an
/// error analysis.
#[derive(Debug, Clone)]
pub(crate) struct ErrorComparison {
    pub axis: String,
    pub a: String,
    pub b: String,
    pub key: Vec<String>,
    pub dry_run: bool,
    /// Per pair: (A, B) of each of [`ERROR_COUNTS`].
    pub counts: Vec<[(f64, f64); 5]>,
}

impl ErrorComparison {
    fn side(&self, count: usize, pick: fn(&(f64, f64)) -> f64) -> Option<f64> {
        mean(&self.counts.iter().map(|c| pick(&c[count])).collect::<Vec<_>>())
    }

    fn diffs(&self, count: usize) -> Vec<f64> {
        self.counts.iter().map(|c| c[count].0 - c[count].1).collect()
    }

    /// Mean A − B of one count over the pairs.
    fn mean_diff(&self, count: usize) -> Option<f64> {
        mean(&self.diffs(count))
    }

    fn sign_flip(&self, count: usize) -> Option<SignFlipTest> {
        sign_flip_test(&self.diffs(count), BOOTSTRAP_SEED)
    }
}

const BOUNDARY: usize = 3;
const TYPE: usize = 4;

/// The boundary and type errors of every group of matched runs, pairs without an error
/// analysis on either side left out.
pub(crate) fn error_comparisons(matched: &[MatchedRuns<'_>]) -> Vec<ErrorComparison> {
    matched
        .iter()
        .map(|m| ErrorComparison {
            axis: m.axis.clone(),
            a: m.a.clone(),
            b: m.b.clone(),
            key: m.key.clone(),
            dry_run: m.dry_run,
            counts: m.pairs.iter().filter_map(|(ra, rb)| pair_counts(ra, rb)).collect(),
        })
        .collect()
}

fn pair_counts(a: &RunResult, b: &RunResult) -> Option<[(f64, f64); 5]> {
    let (ea, eb) = (a.errors.as_ref()?, b.errors.as_ref()?);
    Some(ERROR_COUNTS.map(|name| (error_count(ea, name), error_count(eb, name))))
}

/// `error_comparisons.csv`: compared axis, a, b, the cell axes ("" for the compared one),
/// dry_run, n_pairs, then per error count the means of A and B and of A − B, and the sign-flip
/// p-value of the boundary and type error differences.
pub(crate) fn error_comparisons_frame(rows: &[ErrorComparison], cell_axes: &[String]) -> PolarsResult<DataFrame> {
    let text = |name: &str, f: &dyn Fn(&ErrorComparison) -> String| {
        Column::new(name.into(), rows.iter().map(f).collect::<Vec<_>>())
    };
    let float = |name: String, f: &dyn Fn(&ErrorComparison) -> Option<f64>| {
        Column::new(name.into(), rows.iter().map(f).collect::<Vec<_>>())
    };
    let mut cols =
        vec![text("compared", &|c| c.axis.clone()), text("a", &|c| c.a.clone()), text("b", &|c| c.b.clone())];
    cols.extend(key_columns(cell_axes, rows.iter().map(|c| (c.key.as_slice(), c.dry_run))));
    cols.push(Column::new("n_pairs".into(), rows.iter().map(|c| c.counts.len() as u64).collect::<Vec<_>>()));
    for (i, name) in ERROR_COUNTS.iter().enumerate() {
        cols.push(float(format!("{name}_a"), &|c| c.side(i, |p| p.0)));
        cols.push(float(format!("{name}_b"), &|c| c.side(i, |p| p.1)));
        cols.push(float(format!("{name}_mean_diff"), &|c| c.mean_diff(i)));
    }
    cols.push(float("boundary_errors_sign_flip_p".into(), &|c| c.sign_flip(BOUNDARY).map(|t| t.p_value)));
    cols.push(float("type_errors_sign_flip_p".into(), &|c| c.sign_flip(TYPE).map(|t| t.p_value)));
    DataFrame::new_infer_height(cols)
}

const NA: &str = "n/a";

fn f4(v: Option<f64>) -> String {
    v.map_or(NA.into(), |v| format!("{v:.4}"))
}

fn f1(v: Option<f64>) -> String {
    v.map_or(NA.into(), |v| format!("{v:.1}"))
}

fn signed(v: Option<f64>) -> String {
    v.map_or(NA.into(), |v| format!("{v:+.1}"))
}

/// What the report sections need to name their key columns.
pub(crate) struct ErrorView<'v, 'a> {
    pub cell_axes: &'v [String],
    pub cells: &'v [Cell<'a>],
    pub comparisons: &'v [ErrorComparison],
    /// Whether the store mixes dry runs with trained ones (then tables show a dry_run column).
    pub mixed: bool,
}

/// The two Markdown sections: errors per cell, then boundary and type errors per comparison.
pub(crate) fn error_sections(v: &ErrorView<'_, '_>) -> String {
    [cells_section(v), comparisons_section(v)].concat()
}

fn cells_section(v: &ErrorView<'_, '_>) -> String {
    let mut md = String::from("## Error analysis (test set, mean over seeds)\n\n");
    md.push_str(
        "nervaluate's SemEval-2013 schemas on seqeval's default-mode entities: **strict** (same span and \
         type), **exact** (same span), **partial** (overlap, half a point), **ent_type** (overlap and same \
         type). Predicted and gold entities are aligned as in the exact schema (the same span first, else the \
         first overlapping one); of the aligned pairs, a **type error** has different types, a **boundary \
         error** different spans: **too long** (the prediction contains the gold span), **too short** (the \
         gold span contains the prediction) or **shifted** (neither). A pair can be both. Counts are entities \
         per test set. n/a: no run of the cell stored an error analysis. Every field: `errors.csv`.\n\n",
    );
    let mut header = key_header(v.cell_axes, v.mixed);
    header.extend(
        ["n", "strict F1", "exact F1", "partial F1", "ent_type F1", "missed", "spurious", "too long", "too short"]
            .map(String::from),
    );
    header.extend(["shifted", "type errors"].map(String::from));
    let rows: Vec<Vec<String>> = v.cells.iter().map(|c| cell_row(c, v.mixed)).collect();
    md.push_str(&text_table(&header, &rows));
    md.push('\n');
    md
}

fn cell_row(cell: &Cell<'_>, mixed: bool) -> Vec<String> {
    let runs = analyses(cell);
    let avg = |read: &dyn Fn(&ErrorAnalysis) -> f64| mean(&runs.iter().map(|e| read(e)).collect::<Vec<_>>());
    let mut row = key_cells(&cell.group.key, cell.group.dry_run, mixed);
    row.push(format!("{}/{}", runs.len(), cell.group.runs.len()));
    row.extend(SCHEMA_NAMES.map(|s| f4(avg(&|e| schema_field(e, s, "f1")))));
    row.push(f1(avg(&|e| schema_field(e, "exact", "missed"))));
    row.push(f1(avg(&|e| schema_field(e, "exact", "spurious"))));
    for name in ["too_long", "too_short", "shifted", "type_errors"] {
        row.push(f1(avg(&|e| error_count(e, name))));
    }
    row
}

fn comparisons_section(v: &ErrorView<'_, '_>) -> String {
    let mut md = String::from("## Boundary and type errors in paired comparisons\n\n");
    md.push_str(
        "The runs of the paired F1 comparisons, where both runs stored an error analysis (n pairs): the mean \
         boundary and type errors of A and B (A vs B as in the heading) per test set, and Δ, the mean over pairs of A − B (negative: A \
         makes fewer); Δ of the three kinds of boundary error add up to the boundary Δ. p: two-sided sign-flip \
         test over the pairs' differences, as for F1 (– below 3 pairs). Table: `error_comparisons.csv`.\n\n",
    );
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
        let mut header = key_header(&axes_without(v.cell_axes, &[c.axis.as_str()]), v.mixed);
        let (a, b) = (&c.a, &c.b);
        header.extend([
            "n".into(),
            format!("boundary {a}"),
            format!("boundary {b}"),
            "boundary Δ".into(),
            "too long Δ".into(),
            "too short Δ".into(),
            "shifted Δ".into(),
            "p".into(),
            format!("type {a}"),
            format!("type {b}"),
            "type Δ".into(),
            "p".into(),
        ]);
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

fn comparison_row(c: &ErrorComparison, v: &ErrorView<'_, '_>) -> Vec<String> {
    let key: Vec<String> =
        v.cell_axes.iter().zip(&c.key).filter(|(a, _)| **a != c.axis).map(|(_, k)| k.clone()).collect();
    let p = |count: usize| {
        c.sign_flip(count).map_or(if c.counts.is_empty() { NA } else { "–" }.into(), |t| format!("{:.4}", t.p_value))
    };
    let mut row = key_cells(&key, c.dry_run, v.mixed);
    row.push(c.counts.len().to_string());
    row.extend([f1(c.side(BOUNDARY, |p| p.0)), f1(c.side(BOUNDARY, |p| p.1)), signed(c.mean_diff(BOUNDARY))]);
    row.extend((0..3).map(|i| signed(c.mean_diff(i))));
    row.push(p(BOUNDARY));
    row.extend([f1(c.side(TYPE, |p| p.0)), f1(c.side(TYPE, |p| p.1)), signed(c.mean_diff(TYPE)), p(TYPE)]);
    row
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::error_analysis;
    use crate::report::compare::matched_runs;
    use crate::report::study::cells;
    use crate::store::{RunStatus, Timings, ToolInfo};

    /// Two sentences; `variant` picks which mistakes the prediction makes.
    fn analysis(variant: usize) -> ErrorAnalysis {
        let gold = vec![vec!["B-PER", "I-PER", "O", "B-LOC"], vec!["O", "B-ORG", "I-ORG", "I-ORG"]];
        let predicted = match variant {
            // Too long, and a type error.
            0 => vec![vec!["B-PER", "I-PER", "I-PER", "B-ORG"], vec!["O", "B-ORG", "I-ORG", "I-ORG"]],
            // Too short and shifted.
            1 => vec![vec!["B-PER", "O", "O", "B-LOC"], vec!["B-ORG", "I-ORG", "O", "O"]],
            // Perfect.
            _ => gold.clone(),
        };
        error_analysis(&gold, &predicted).unwrap()
    }

    #[test]
    fn runs_stored_without_errors_get_them_from_their_predictions() {
        let gold = vec![vec!["B-PER", "I-PER", "O", "B-LOC"], vec!["O", "B-ORG", "I-ORG", "I-ORG"]];
        let predicted = vec![vec!["B-PER", "I-PER", "I-PER", "B-ORG"], vec!["O", "B-ORG", "I-ORG", "I-ORG"]];
        let owned = |v: &[&str]| v.iter().map(|t| t.to_string()).collect::<Vec<_>>();
        let sentences: Vec<PredictedSentence> = gold
            .iter()
            .zip(&predicted)
            .map(|(g, p)| PredictedSentence { words: vec!["w".into(); g.len()], gold: owned(g), predicted: owned(p) })
            .collect();
        let mut results = vec![run("BIO", 1e-5, 1, None), run("BIO", 1e-5, 2, Some(analysis(2)))];
        let stored = results[1].errors.clone();
        let predictions = [(results[0].id.clone(), sentences.clone()), (results[1].id.clone(), sentences)].into();
        fill_from_predictions(&mut results, &predictions);
        assert_eq!(results[0].errors, Some(error_analysis(&gold, &predicted).unwrap()));
        assert_eq!(results[1].errors, stored, "a stored analysis is kept");
    }

    fn run(scheme: &str, rate: f64, seed: i64, errors: Option<ErrorAnalysis>) -> RunResult {
        let params = [
            ("model".to_string(), serde_json::json!("m")),
            ("scheme".to_string(), serde_json::json!(scheme)),
            ("learning_rate".to_string(), serde_json::json!(rate)),
            ("seed".to_string(), serde_json::json!(seed)),
        ];
        RunResult {
            id: format!("{scheme}-{rate}-{seed}"),
            index: 0,
            experiment: "x".into(),
            status: RunStatus::Done,
            dry_run: false,
            params: params.into(),
            test: None,
            validation: None,
            best_epoch: None,
            report: Default::default(),
            errors,
            timings: Timings::default(),
            device: "cpu".into(),
            host: "h".into(),
            attempt: 1,
            tool: ToolInfo::current(),
            error: vec![],
            details: Default::default(),
        }
    }

    /// BIO and BIOES at two rates, three seeds; the 2e-5 runs predate the error analysis and
    /// BIOES seed 3 at 1e-5 lacks it too.
    fn store() -> Vec<RunResult> {
        let mut out = Vec::new();
        for rate in [1e-5, 2e-5] {
            for scheme in ["BIO", "BIOES"] {
                for seed in 1..=3 {
                    let errors = match (rate == 1e-5, scheme, seed) {
                        (false, _, _) | (true, "BIOES", 3) => None,
                        (true, "BIO", s) => Some(analysis(usize::from(s == 3))),
                        (true, _, s) => Some(analysis(s as usize)),
                    };
                    out.push(run(scheme, rate, seed, errors));
                }
            }
        }
        out
    }

    fn axes() -> Vec<String> {
        ["model", "scheme", "learning_rate"].map(String::from).to_vec()
    }

    #[test]
    fn the_analyses_count_what_their_comments_say() {
        let (a, b) = (analysis(0), analysis(1));
        assert_eq!((a.boundaries.too_long, a.type_errors(), a.boundaries.total()), (1, 1, 1));
        assert_eq!((b.boundaries.too_short, b.boundaries.shifted, b.type_errors()), (1, 1, 0));
        assert_eq!(analysis(2).overall.strict.f1, 1.0);
    }

    #[test]
    fn cell_means_leave_out_runs_without_an_analysis() {
        let results = store();
        let cells = cells(&results, &axes());
        let frame = errors_frame(&cells, &axes()).unwrap();
        let column = |name: &str| {
            let values = frame.column(name).unwrap().f64().unwrap().clone();
            (0..values.len()).map(|i| values.get(i)).collect::<Vec<_>>()
        };
        let counts = frame.column("n_analysed").unwrap().u64().unwrap().clone();
        let analysed: Vec<u64> = (0..counts.len()).filter_map(|i| counts.get(i)).collect();
        assert_eq!(analysed, [3, 2, 0, 0], "BIO 1e-5, BIOES 1e-5, BIO 2e-5, BIOES 2e-5");
        // BIO: variants 0, 0, 1; BIOES: variants 1, 2.
        assert_eq!(column("boundary_errors"), [Some(4.0 / 3.0), Some(1.0), None, None]);
        assert_eq!(column("type_errors"), [Some(2.0 / 3.0), Some(0.0), None, None]);
        assert_eq!(column("too_short")[1], Some(0.5));
    }

    #[test]
    fn comparisons_pair_the_runs_that_both_have_an_analysis() {
        let results = store();
        let rows = error_comparisons(&matched_runs(&results, &axes()));
        assert_eq!(rows.len(), 2, "one scheme comparison per learning rate");
        let (analysed, old) = (&rows[0], &rows[1]);
        assert_eq!((analysed.counts.len(), old.counts.len()), (2, 0));
        // Seed 1: BIO variant 0 (1 boundary) vs BIOES variant 1 (2); seed 2: 1 vs 0.
        assert_eq!(analysed.mean_diff(BOUNDARY), Some(0.0));
        assert_eq!(analysed.mean_diff(TYPE), Some(1.0));
        assert_eq!(old.mean_diff(BOUNDARY), None);
        let frame = error_comparisons_frame(&rows, &axes()).unwrap();
        assert_eq!(frame.height(), 2);
    }

    #[test]
    fn report_sections() {
        let results = store();
        let cells = cells(&results, &axes());
        let comparisons = error_comparisons(&matched_runs(&results, &axes()));
        let view = ErrorView { cell_axes: &axes(), cells: &cells, comparisons: &comparisons, mixed: false };
        insta::assert_snapshot!(error_sections(&view));
    }
}
