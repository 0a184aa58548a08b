//! The SemEval-2013 entity categories exactly as nervaluate 1.2.1 counts them: a literal port
//! of its four strategies (`strict`, `exact`, `partial`, `ent_type`) with the default
//! `min_overlap_percentage` of 1.
//!
//! nervaluate matches greedily in prediction order within one sentence: each predicted entity
//! takes the first gold entity (in gold order) that is not yet taken and matches it; only when
//! none matches does it fall back to the first one it overlaps. `ent_type` is the exception: of
//! the overlapping gold entities of the same type it takes the one with the closest boundaries
//! (|Δstart| + |Δend|, first on ties). Gold entities left untaken are `missed`, predicted ones
//! that take nothing are `spurious`.

use serde::{Deserialize, Serialize};

/// An entity of one sentence: words `start..=end` (end inclusive, as nervaluate reads them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Span<'a> {
    pub kind: &'a str,
    pub start: usize,
    pub end: usize,
}

impl Span<'_> {
    fn same_bounds(&self, other: &Span<'_>) -> bool {
        self.start == other.start && self.end == other.end
    }

    /// nervaluate's `_has_sufficient_overlap(pred, true)` at 1%: the share of the gold span
    /// covered, computed in the same floating-point steps (a one-word overlap with a gold span
    /// longer than 100 words is not enough).
    fn overlaps_gold(&self, gold: &Span<'_>) -> bool {
        if self.start > gold.end || self.end < gold.start {
            return false;
        }
        let overlap = self.end.min(gold.end) - self.start.max(gold.start) + 1;
        let gold_len = gold.end - gold.start + 1;
        (overlap as f64 / gold_len as f64) * 100.0 >= 1.0
    }

    fn boundary_distance(&self, other: &Span<'_>) -> usize {
        self.start.abs_diff(other.start) + self.end.abs_diff(other.end)
    }
}

/// nervaluate's four evaluation schemas.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Schema {
    /// Same boundaries and type.
    Strict,
    /// Same boundaries, any type.
    Exact,
    /// Same boundaries is correct, overlapping boundaries is partial; type ignored.
    Partial,
    /// Overlap and same type.
    EntType,
}

/// What one predicted entity became, with the gold entity it took.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    Correct(usize),
    Incorrect(usize),
    Partial(usize),
    Spurious,
}

impl Outcome {
    pub fn gold(self) -> Option<usize> {
        match self {
            Outcome::Correct(g) | Outcome::Incorrect(g) | Outcome::Partial(g) => Some(g),
            Outcome::Spurious => None,
        }
    }
}

/// The outcome of every predicted entity (in prediction order) and which gold entities were
/// taken.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Alignment {
    pub outcomes: Vec<Outcome>,
    pub taken: Vec<bool>,
}

/// Matches one sentence's predicted entities against its gold ones under `schema`.
pub(crate) fn align(gold: &[Span<'_>], predicted: &[Span<'_>], schema: Schema) -> Alignment {
    let mut taken = vec![false; gold.len()];
    let outcomes = predicted
        .iter()
        .map(|p| {
            let outcome = match schema {
                Schema::EntType => match_by_type(gold, &taken, p),
                _ => match_by_bounds(gold, &taken, p, schema),
            };
            if let Some(g) = outcome.gold() {
                taken[g] = true;
            }
            outcome
        })
        .collect();
    Alignment { outcomes, taken }
}

/// `strict`, `exact` and `partial`: the first free gold entity that matches exactly wins; else
/// the first free one that overlaps is incorrect (partial for `partial`).
fn match_by_bounds(gold: &[Span<'_>], taken: &[bool], p: &Span<'_>, schema: Schema) -> Outcome {
    let mut fallback = None;
    for (g, t) in gold.iter().enumerate().filter(|(g, _)| !taken[*g]) {
        let exact = p.same_bounds(t) && (schema != Schema::Strict || p.kind == t.kind);
        if exact {
            return Outcome::Correct(g);
        }
        if fallback.is_none() && p.overlaps_gold(t) {
            fallback = Some(g);
        }
    }
    match (fallback, schema) {
        (None, _) => Outcome::Spurious,
        (Some(g), Schema::Partial) => Outcome::Partial(g),
        (Some(g), _) => Outcome::Incorrect(g),
    }
}

/// `ent_type`: of the free overlapping gold entities of the predicted type, the one with the
/// closest boundaries; else the first free overlapping one of another type is incorrect.
fn match_by_type(gold: &[Span<'_>], taken: &[bool], p: &Span<'_>) -> Outcome {
    let mut best: Option<(usize, usize)> = None;
    let mut other_type = None;
    for (g, t) in gold.iter().enumerate().filter(|(g, t)| !taken[*g] && p.overlaps_gold(t)) {
        let distance = p.boundary_distance(t);
        if p.kind == t.kind {
            if best.is_none_or(|(_, d)| distance < d) {
                best = Some((g, distance));
            }
        } else if other_type.is_none() {
            other_type = Some(g);
        }
    }
    match (best, other_type) {
        (Some((g, _)), _) => Outcome::Correct(g),
        (None, Some(g)) => Outcome::Incorrect(g),
        (None, None) => Outcome::Spurious,
    }
}

/// nervaluate's `EvaluationResult`, under its field names.
///
/// `possible` = correct + incorrect + partial + missed, `actual` = correct + incorrect +
/// partial + spurious; precision = (correct + ½·partial) / actual and recall the same over
/// possible, 0 when the denominator is 0 (never NaN); F1 = 2·(P·R) / (P + R), 0 when P + R = 0.
/// Only `partial` ever has partial matches, so the half point changes nothing elsewhere.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Categories {
    pub correct: usize,
    pub incorrect: usize,
    pub partial: usize,
    pub missed: usize,
    pub spurious: usize,
    pub possible: usize,
    pub actual: usize,
    pub precision: f64,
    pub recall: f64,
    pub f1: f64,
}

impl Categories {
    /// Adds one sentence's alignment to the counts (the ratios are left stale: see
    /// [`Categories::finish`]).
    pub(crate) fn add(&mut self, alignment: &Alignment) {
        for outcome in &alignment.outcomes {
            match outcome {
                Outcome::Correct(_) => self.correct += 1,
                Outcome::Incorrect(_) => self.incorrect += 1,
                Outcome::Partial(_) => self.partial += 1,
                Outcome::Spurious => self.spurious += 1,
            }
        }
        self.missed += alignment.taken.iter().filter(|t| !**t).count();
    }

    /// nervaluate's `compute_metrics`.
    pub(crate) fn finish(mut self) -> Self {
        self.actual = self.correct + self.incorrect + self.partial + self.spurious;
        self.possible = self.correct + self.incorrect + self.partial + self.missed;
        let credit = self.correct as f64 + 0.5 * self.partial as f64;
        let ratio = |n: usize| if n > 0 { credit / n as f64 } else { 0.0 };
        self.precision = ratio(self.actual);
        self.recall = ratio(self.possible);
        let sum = self.precision + self.recall;
        self.f1 = if sum > 0.0 { 2.0 * (self.precision * self.recall) / sum } else { 0.0 };
        self
    }
}

/// The categories of every schema, keyed in JSON by nervaluate's names.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct SchemaScores {
    pub strict: Categories,
    pub exact: Categories,
    pub partial: Categories,
    pub ent_type: Categories,
}

impl SchemaScores {
    pub(crate) const SCHEMAS: [Schema; 4] = [Schema::Strict, Schema::Exact, Schema::Partial, Schema::EntType];

    pub fn get(&self, schema_name: &str) -> Option<&Categories> {
        match schema_name {
            "strict" => Some(&self.strict),
            "exact" => Some(&self.exact),
            "partial" => Some(&self.partial),
            "ent_type" => Some(&self.ent_type),
            _ => None,
        }
    }

    pub(crate) fn get_mut(&mut self, schema: Schema) -> &mut Categories {
        match schema {
            Schema::Strict => &mut self.strict,
            Schema::Exact => &mut self.exact,
            Schema::Partial => &mut self.partial,
            Schema::EntType => &mut self.ent_type,
        }
    }

    /// Adds one sentence under every schema.
    pub(crate) fn add_sentence(&mut self, gold: &[Span<'_>], predicted: &[Span<'_>]) {
        for schema in Self::SCHEMAS {
            self.get_mut(schema).add(&align(gold, predicted, schema));
        }
    }

    pub(crate) fn finish(self) -> Self {
        SchemaScores {
            strict: self.strict.finish(),
            exact: self.exact.finish(),
            partial: self.partial.finish(),
            ent_type: self.ent_type.finish(),
        }
    }
}

/// nervaluate's schema names, in the order reports show them.
pub const SCHEMA_NAMES: [&str; 4] = ["strict", "exact", "partial", "ent_type"];

#[cfg(test)]
mod tests {
    use super::*;

    fn s(kind: &str, start: usize, end: usize) -> Span<'_> {
        Span { kind, start, end }
    }

    fn counts(gold: &[Span<'_>], predicted: &[Span<'_>], schema: Schema) -> [usize; 5] {
        let mut c = Categories::default();
        c.add(&align(gold, predicted, schema));
        [c.correct, c.incorrect, c.partial, c.missed, c.spurious]
    }

    #[test]
    fn a_type_confusion_on_the_right_span() {
        let (gold, pred) = ([s("PER", 0, 1)], [s("LOC", 0, 1)]);
        assert_eq!(counts(&gold, &pred, Schema::Strict), [0, 1, 0, 0, 0]);
        assert_eq!(counts(&gold, &pred, Schema::Exact), [1, 0, 0, 0, 0]);
        assert_eq!(counts(&gold, &pred, Schema::Partial), [1, 0, 0, 0, 0]);
        assert_eq!(counts(&gold, &pred, Schema::EntType), [0, 1, 0, 0, 0]);
    }

    #[test]
    fn a_boundary_error_of_the_right_type() {
        let (gold, pred) = ([s("PER", 0, 1)], [s("PER", 1, 2)]);
        assert_eq!(counts(&gold, &pred, Schema::Strict), [0, 1, 0, 0, 0]);
        assert_eq!(counts(&gold, &pred, Schema::Exact), [0, 1, 0, 0, 0]);
        assert_eq!(counts(&gold, &pred, Schema::Partial), [0, 0, 1, 0, 0]);
        assert_eq!(counts(&gold, &pred, Schema::EntType), [1, 0, 0, 0, 0]);
    }

    #[test]
    fn an_exact_match_later_in_gold_order_beats_an_earlier_overlap() {
        let gold = [s("PER", 0, 3), s("PER", 2, 3)];
        let alignment = align(&gold, &[s("PER", 2, 3)], Schema::Strict);
        assert_eq!(alignment.outcomes, vec![Outcome::Correct(1)]);
        assert_eq!(counts(&gold, &[s("PER", 2, 3)], Schema::Strict), [1, 0, 0, 1, 0]);
    }

    #[test]
    fn ent_type_takes_the_closest_gold_of_its_type() {
        let gold = [s("PER", 0, 5), s("LOC", 6, 6), s("PER", 6, 7)];
        let alignment = align(&gold, &[s("PER", 5, 7)], Schema::EntType);
        assert_eq!(alignment.outcomes, vec![Outcome::Correct(2)]);
    }

    #[test]
    fn one_word_of_a_gold_span_over_100_words_is_not_an_overlap() {
        let long = s("PER", 0, 100);
        assert!(!s("PER", 100, 101).overlaps_gold(&long));
        assert!(s("PER", 99, 101).overlaps_gold(&long));
        assert!(s("PER", 100, 101).overlaps_gold(&s("PER", 1, 100)));
    }

    #[test]
    fn half_points_for_partial_and_zero_without_entities() {
        let mut c = Categories { correct: 1, partial: 1, missed: 1, spurious: 1, ..Categories::default() };
        c = c.finish();
        assert_eq!((c.possible, c.actual), (3, 3));
        assert_eq!((c.precision, c.recall), (0.5, 0.5));
        let empty = Categories::default().finish();
        assert_eq!((empty.precision, empty.recall, empty.f1), (0.0, 0.0, 0.0));
    }
}
