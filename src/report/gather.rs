//! Reads what the report needs from the store: results of the current plan, in plan order.

use std::collections::{BTreeMap, BTreeSet};

use crate::plan::{expand, Plan};
use crate::store::TaggedSentence;
use crate::store::{EpochRow, RunResult, RunState, RunStatus, Store};

/// The stored results a report is built from.
#[derive(Debug, Clone, Default)]
pub struct ReportInputs {
    pub experiment: String,
    /// Axis parameter names in plan order.
    pub axes: Vec<String>,
    /// Done and failed runs of the plan, in plan order.
    pub results: Vec<RunResult>,
    pub planned: usize,
    pub pending: usize,
    /// Result files that could not be read, with the reason.
    pub warnings: Vec<String>,
}

impl ReportInputs {
    pub fn any_dry_run(&self) -> bool {
        self.results.iter().any(|r| r.dry_run)
    }
}

/// Collects results; runs that are not in the store's spec snapshot (older grids) are left out.
pub fn gather(store: &Store) -> Result<ReportInputs, crate::store::StoreError> {
    let plan = snapshot_plan(store);
    let states = store.all_states()?;
    let mut inputs = ReportInputs::default();
    let mut found = BTreeSet::new();
    let mut results = Vec::new();
    for (id, state) in states {
        if plan.as_ref().is_some_and(|p| !p.runs.iter().any(|r| r.id == id)) {
            continue;
        }
        match state {
            RunState::Done(r) | RunState::Failed(r) => {
                found.insert(id);
                results.push(*r);
            }
            RunState::Corrupt(msg) => inputs.warnings.push(msg),
            RunState::Pending => {}
        }
    }
    results.sort_by(|a, b| (a.index, &a.id).cmp(&(b.index, &b.id)));
    match plan {
        Some(plan) => {
            inputs.experiment = plan.experiment.clone();
            inputs.axes = plan.axes.clone();
            inputs.planned = plan.runs.len();
            inputs.pending = plan.runs.len() - found.len();
        }
        None => {
            inputs.experiment = results.first().map(|r| r.experiment.clone()).unwrap_or_default();
            inputs.axes = axes_from_results(&results);
            inputs.planned = results.len();
        }
    }
    inputs.results = results;
    Ok(inputs)
}

fn snapshot_plan(store: &Store) -> Option<Plan> {
    let text = std::fs::read_to_string(store.spec_path()).ok()?;
    crate::spec::parse(&store.spec_path(), &text).ok().map(|s| expand(&s))
}

/// Without a spec snapshot: the main axes plus every parameter that varies.
fn axes_from_results(results: &[RunResult]) -> Vec<String> {
    let main = ["model", "scheme", "learning_rate", "dataset"];
    let mut axes: Vec<String> = main.iter().map(|s| s.to_string()).collect();
    let keys: BTreeSet<&String> = results.iter().flat_map(|r| r.params.keys()).collect();
    for key in keys {
        if main.contains(&key.as_str()) || key == "seed" || key == "fold" {
            continue;
        }
        let values: BTreeSet<String> =
            results.iter().filter_map(|r| r.params.get(key)).map(|v| v.to_string()).collect();
        if values.len() > 1 {
            axes.push(key.clone());
        }
    }
    if results.iter().any(|r| r.params.contains_key("fold")) {
        axes.push("fold".into());
    }
    axes.push("seed".into());
    axes
}

/// What the study sections read beside `result.json`: epochs and test predictions of done runs.
#[derive(Debug, Clone, Default)]
pub(crate) struct RunFiles {
    pub epochs: BTreeMap<String, Vec<EpochRow>>,
    pub predictions: BTreeMap<String, Vec<TaggedSentence>>,
    /// Files that exist but cannot be read, with the reason.
    pub warnings: Vec<String>,
}

/// Reads `epochs.csv` and `predictions.conll` of every done run that has them.
pub(crate) fn gather_run_files(store: &Store, results: &[RunResult]) -> RunFiles {
    let mut files = RunFiles::default();
    for r in results.iter().filter(|r| r.status == RunStatus::Done) {
        if store.epochs_path(&r.id).exists() {
            match store.read_epochs(&r.id) {
                Ok(rows) => drop(files.epochs.insert(r.id.clone(), rows)),
                Err(e) => files.warnings.push(e.to_string()),
            }
        }
        match store.read_predictions(&r.id) {
            Ok(Some(sentences)) => drop(files.predictions.insert(r.id.clone(), sentences)),
            Ok(None) => {}
            Err(e) => files.warnings.push(e.to_string()),
        }
    }
    files
}
