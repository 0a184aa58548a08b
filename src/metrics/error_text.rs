//! The text shape of an [`ErrorAnalysis`]: nervaluate's categories per schema (all types, then
//! each type), the type confusion table and the boundary errors, in aligned columns.

use std::collections::BTreeSet;

use super::error_analysis::ErrorAnalysis;
use super::semeval::{Categories, SchemaScores, SCHEMA_NAMES};

const CATEGORY_HEADER: [&str; 10] =
    ["correct", "incorrect", "partial", "missed", "spurious", "possible", "actual", "precision", "recall", "f1"];

/// Every table of the analysis with `digits` decimals, separated by blank lines.
pub fn error_tables(analysis: &ErrorAnalysis, digits: usize) -> String {
    let mut out =
        format!("SemEval-2013 categories (nervaluate), all types\n\n{}", schema_table(&analysis.overall, digits));
    for (kind, scores) in &analysis.by_type {
        out.push_str(&format!("\nType {kind} (both sides filtered to it)\n\n{}", schema_table(scores, digits)));
    }
    out.push_str(&format!(
        "\nType confusion (rows: gold type, columns: predicted type; pairs aligned as in the exact schema)\n\n{}",
        confusion_table(analysis)
    ));
    let b = &analysis.boundaries;
    out.push_str(&format!(
        "\nBoundary errors: {} (too long {}, too short {}, shifted {}; {} of them with a type error)\n\
         Type errors: {}\n",
        b.total(),
        b.too_long,
        b.too_short,
        b.shifted,
        b.with_type_error,
        analysis.type_errors()
    ));
    out
}

fn schema_table(scores: &SchemaScores, digits: usize) -> String {
    let mut rows = vec![[""].into_iter().chain(CATEGORY_HEADER).map(String::from).collect::<Vec<_>>()];
    for name in SCHEMA_NAMES {
        let c: &Categories = scores.get(name).expect("every schema name has categories");
        let counts = [c.correct, c.incorrect, c.partial, c.missed, c.spurious, c.possible, c.actual];
        let mut row = vec![name.to_string()];
        row.extend(counts.iter().map(usize::to_string));
        row.extend([c.precision, c.recall, c.f1].iter().map(|v| format!("{v:.digits$}")));
        rows.push(row);
    }
    aligned(&rows)
}

fn confusion_table(analysis: &ErrorAnalysis) -> String {
    let cells = &analysis.confusion;
    let gold: BTreeSet<&str> = cells.iter().filter_map(|c| c.gold.as_deref()).collect();
    let predicted: BTreeSet<&str> = cells.iter().filter_map(|c| c.predicted.as_deref()).collect();
    let count = |g: Option<&str>, p: Option<&str>| {
        let cell = cells.iter().find(|c| c.gold.as_deref() == g && c.predicted.as_deref() == p);
        cell.map_or(0, |c| c.count).to_string()
    };
    let mut header = vec!["gold \\ predicted".to_string()];
    header.extend(predicted.iter().map(|p| p.to_string()));
    header.push("missed".into());
    let mut rows = vec![header];
    for g in &gold {
        let mut row = vec![g.to_string()];
        row.extend(predicted.iter().map(|p| count(Some(g), Some(p))));
        row.push(count(Some(g), None));
        rows.push(row);
    }
    let mut spurious = vec!["spurious".to_string()];
    spurious.extend(predicted.iter().map(|p| count(None, Some(p))));
    spurious.push("–".into());
    rows.push(spurious);
    aligned(&rows)
}

/// Rows as text: the first column left-aligned, the others right-aligned, two spaces apart.
fn aligned(rows: &[Vec<String>]) -> String {
    let columns = rows.iter().map(Vec::len).max().unwrap_or(0);
    let width = |i: usize| rows.iter().filter_map(|r| r.get(i)).map(|c| c.chars().count()).max().unwrap_or(0);
    let widths: Vec<usize> = (0..columns).map(width).collect();
    let mut out = String::new();
    for row in rows {
        let mut line = String::new();
        for (i, cell) in row.iter().enumerate() {
            let pad = widths[i] - cell.chars().count();
            match i {
                0 => line.push_str(&format!("{cell}{}", " ".repeat(pad))),
                _ => line.push_str(&format!("  {}{cell}", " ".repeat(pad))),
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}
