//! Which errors a tagger makes: nervaluate's SemEval-2013 categories (overall and per type), a
//! type confusion table and boundary errors, all on the entities seqeval's default mode
//! extracts from each sentence (`get_entities(sentence)`, end inclusive).
//!
//! The confusion table and the boundary errors read one alignment of predicted with gold
//! entities: nervaluate's `exact` matching. In each sentence, in prediction order, a predicted
//! entity takes the first free gold entity with the same boundaries, else the first free gold
//! entity it overlaps (at least 1% of the gold span, as nervaluate requires), else nothing.
//! Types play no part in the alignment, so one pair can be a type error, a boundary error or
//! both:
//!
//! - **type error**: an aligned pair whose types differ (an off-diagonal cell of the confusion
//!   table), whatever its boundaries;
//! - **boundary error**: an aligned pair whose boundaries differ, whatever its types: **too
//!   long** when the predicted span contains the gold span, **too short** when the gold span
//!   contains the predicted one, **shifted** otherwise (they overlap, neither contains the
//!   other);
//! - **missed**: a gold entity no predicted entity took; **spurious**: a predicted entity that
//!   took none.
//!
//! These counts add up with nervaluate's `exact` schema: its `correct` are the pairs with the
//! same boundaries, its `incorrect` the boundary errors, and `missed` and `spurious` agree.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::entities::{default_entities, Entity};
use super::error::{MetricsError, Side};
use super::scores::check_lengths;
use super::semeval::{align, Outcome, Schema, SchemaScores, Span};

/// Boundary errors among aligned pairs (see the module documentation).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BoundaryErrors {
    /// The predicted span contains the gold span.
    pub too_long: usize,
    /// The gold span contains the predicted span.
    pub too_short: usize,
    /// The spans overlap and neither contains the other.
    pub shifted: usize,
    /// Boundary errors whose types differ too (counted in the three above and as type errors).
    pub with_type_error: usize,
}

impl BoundaryErrors {
    pub fn total(&self) -> usize {
        self.too_long + self.too_short + self.shifted
    }
}

/// One cell of the type confusion table: `gold` × `predicted` aligned pairs; a missed gold
/// entity has no `predicted`, a spurious predicted entity no `gold`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ConfusionCell {
    pub gold: Option<String>,
    pub predicted: Option<String>,
    pub count: usize,
}

/// The whole error analysis of one set of predictions.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorAnalysis {
    /// nervaluate's `overall` results per schema.
    pub overall: SchemaScores,
    /// nervaluate's per-type results: both sides filtered to the type first, for every type
    /// that occurs on either side. A type confusion is `missed` for one type and `spurious` for
    /// the other here, but `incorrect` overall.
    pub by_type: BTreeMap<String, SchemaScores>,
    /// Non-zero cells, sorted by gold then predicted type (missed and spurious last).
    pub confusion: Vec<ConfusionCell>,
    pub boundaries: BoundaryErrors,
}

impl ErrorAnalysis {
    /// Aligned pairs whose types differ.
    pub fn type_errors(&self) -> usize {
        self.confusion
            .iter()
            .filter(|c| matches!((&c.gold, &c.predicted), (Some(g), Some(p)) if g != p))
            .map(|c| c.count)
            .sum()
    }
}

/// Analyses predicted tag sequences against gold ones, sentence by sentence.
///
/// Fails like [`super::evaluate`] when the sentence counts or lengths disagree, when there are
/// no sentences, or on an empty tag.
pub fn error_analysis<S: AsRef<str>>(y_true: &[Vec<S>], y_pred: &[Vec<S>]) -> Result<ErrorAnalysis, MetricsError> {
    check_lengths(y_true, y_pred)?;
    let (gold_entities, predicted_entities) =
        (default_entities(y_true, Side::Gold)?, default_entities(y_pred, Side::Predicted)?);
    let gold = by_sentence(&gold_entities, y_true.len());
    let predicted = by_sentence(&predicted_entities, y_pred.len());
    let types: BTreeSet<&str> = gold.iter().chain(&predicted).flatten().map(|s| s.kind).collect();
    let mut overall = SchemaScores::default();
    let mut by_type: BTreeMap<String, SchemaScores> =
        types.iter().map(|t| (t.to_string(), SchemaScores::default())).collect();
    let mut confusion = BTreeMap::new();
    let mut boundaries = BoundaryErrors::default();
    for (g, p) in gold.iter().zip(&predicted) {
        overall.add_sentence(g, p);
        for (kind, scores) in by_type.iter_mut() {
            scores.add_sentence(&of_type(g, kind), &of_type(p, kind));
        }
        tally_errors(g, p, &mut confusion, &mut boundaries);
    }
    Ok(ErrorAnalysis {
        overall: overall.finish(),
        by_type: by_type.into_iter().map(|(k, v)| (k, v.finish())).collect(),
        confusion: confusion_cells(confusion),
        boundaries,
    })
}

/// Entities as end-inclusive spans, one list per sentence.
fn by_sentence(entities: &[Entity], sentences: usize) -> Vec<Vec<Span<'_>>> {
    let mut out = vec![Vec::new(); sentences];
    for e in entities {
        out[e.sentence].push(Span { kind: e.kind.as_str(), start: e.start, end: e.end - 1 });
    }
    out
}

fn of_type<'a>(spans: &[Span<'a>], kind: &str) -> Vec<Span<'a>> {
    spans.iter().filter(|s| s.kind == kind).copied().collect()
}

type ConfusionCounts = BTreeMap<(Option<String>, Option<String>), usize>;

/// Adds one sentence's `exact` alignment to the confusion counts and boundary errors.
fn tally_errors(gold: &[Span<'_>], predicted: &[Span<'_>], confusion: &mut ConfusionCounts, b: &mut BoundaryErrors) {
    let alignment = align(gold, predicted, Schema::Exact);
    for (p, outcome) in predicted.iter().zip(&alignment.outcomes) {
        let Some(g) = outcome.gold().map(|i| &gold[i]) else {
            *confusion.entry((None, Some(p.kind.to_string()))).or_default() += 1;
            continue;
        };
        *confusion.entry((Some(g.kind.to_string()), Some(p.kind.to_string()))).or_default() += 1;
        if let Outcome::Incorrect(_) = outcome {
            match (p.start <= g.start && p.end >= g.end, g.start <= p.start && g.end >= p.end) {
                (true, _) => b.too_long += 1,
                (_, true) => b.too_short += 1,
                _ => b.shifted += 1,
            }
            b.with_type_error += usize::from(g.kind != p.kind);
        }
    }
    for (g, _) in gold.iter().zip(&alignment.taken).filter(|(_, taken)| !**taken) {
        *confusion.entry((Some(g.kind.to_string()), None)).or_default() += 1;
    }
}

/// Cells in table order: gold types by name with missed last, then the spurious row.
fn confusion_cells(counts: ConfusionCounts) -> Vec<ConfusionCell> {
    let mut cells: Vec<ConfusionCell> =
        counts.into_iter().map(|((gold, predicted), count)| ConfusionCell { gold, predicted, count }).collect();
    cells.sort_by(|a, b| {
        (a.gold.is_none(), &a.gold, a.predicted.is_none(), &a.predicted).cmp(&(
            b.gold.is_none(),
            &b.gold,
            b.predicted.is_none(),
            &b.predicted,
        ))
    });
    cells
}
