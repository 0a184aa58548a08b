//! Which runs get an array task, and how they split into arrays no larger than the limit.

use crate::plan::Plan;

/// A run one array task executes: its plan index and id (the task checks the id against the
/// plan it loads, so a spec changed since submission fails loudly).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskRun {
    pub index: usize,
    pub id: String,
}

/// One job array: task `t` runs `runs[t]`. `offset` is the position of `runs[0]` among all the
/// submitted runs, so array `k` covers positions `offset..offset + runs.len()`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArrayPlan {
    pub offset: usize,
    pub runs: Vec<TaskRun>,
}

/// The runs to submit, in plan order: every run, or with `only_pending` those that are not
/// done (failed ones, and those without a usable result).
pub fn runs_to_submit(plan: &Plan, is_done: impl Fn(&str) -> bool, only_pending: bool) -> Vec<TaskRun> {
    plan.runs
        .iter()
        .filter(|r| !only_pending || !is_done(&r.id))
        .map(|r| TaskRun { index: r.index, id: r.id.clone() })
        .collect()
}

/// Consecutive arrays of at most `max_array_size` tasks (task ids `0..max_array_size`, below
/// the cluster's MaxArraySize) covering `runs` once, in order.
pub fn split_arrays(runs: Vec<TaskRun>, max_array_size: usize) -> Vec<ArrayPlan> {
    let size = max_array_size.max(1);
    let mut arrays = Vec::new();
    let mut offset = 0;
    let mut rest = runs.into_iter().peekable();
    while rest.peek().is_some() {
        let chunk: Vec<TaskRun> = rest.by_ref().take(size).collect();
        let len = chunk.len();
        arrays.push(ArrayPlan { offset, runs: chunk });
        offset += len;
    }
    arrays
}

#[cfg(test)]
mod tests {
    use super::*;

    fn runs(n: usize) -> Vec<TaskRun> {
        (0..n).map(|i| TaskRun { index: i * 2, id: format!("r{i}") }).collect()
    }

    #[test]
    fn arrays_cover_every_run_once_within_the_limit() {
        for (n, max) in [(0, 5), (1, 5), (5, 5), (6, 5), (11, 5), (7, 1), (2500, 1001)] {
            let arrays = split_arrays(runs(n), max);
            assert_eq!(arrays.len(), n.div_ceil(max), "n={n} max={max}");
            let mut expected_offset = 0;
            for a in &arrays {
                assert_eq!(a.offset, expected_offset);
                assert!(!a.runs.is_empty() && a.runs.len() <= max);
                expected_offset += a.runs.len();
            }
            let flat: Vec<TaskRun> = arrays.into_iter().flat_map(|a| a.runs).collect();
            assert_eq!(flat, runs(n));
        }
    }
}
