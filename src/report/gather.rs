//! Reads what the report needs from the store: results of the current plan, in plan order.

use std::collections::{BTreeMap, BTreeSet};

use crate::plan::{expand, Plan};
use crate::store::PredictedSentence;
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
    let (plan, snapshot_warning) = match snapshot_plan(store) {
        Ok(plan) => (plan, None),
        Err(warning) => (None, Some(warning)),
    };
    let states = store.all_states()?;
    let mut inputs = ReportInputs::default();
    inputs.warnings.extend(snapshot_warning);
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

/// The plan of the store's spec snapshot: `Ok(None)` without one (older stores), a warning
/// naming the file when it cannot be read or parsed (then every stored run is reported).
fn snapshot_plan(store: &Store) -> Result<Option<Plan>, String> {
    let path = store.spec_path();
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(format!("{}: cannot read the spec snapshot ({e}); reporting every stored run", path.display()))
        }
    };
    match crate::spec::parse(&path, &text) {
        Ok(spec) => Ok(Some(expand(&spec))),
        Err(e) => {
            let first = e.0.first().map_or_else(String::new, |e| e.to_string());
            Err(format!("{}: cannot parse the spec snapshot ({first}); reporting every stored run", path.display()))
        }
    }
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
    pub predictions: BTreeMap<String, Vec<PredictedSentence>>,
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
                Err(e) => files.warnings.push(crate::store::error_chain(&e)),
            }
        }
        match store.read_predictions(&r.id) {
            Ok(Some(sentences)) => drop(files.predictions.insert(r.id.clone(), sentences)),
            Ok(None) => {}
            Err(e) => files.warnings.push(crate::store::error_chain(&e)),
        }
    }
    files
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unparseable_spec_snapshot_is_a_warning_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(dir.path());
        std::fs::create_dir_all(store.runs_dir()).unwrap();
        assert!(gather(&store).unwrap().warnings.is_empty(), "no snapshot: an older store, no warning");
        store.write_spec("[experiment]\nname = \"x\"\n[grid\n").unwrap();
        let warnings = gather(&store).unwrap().warnings;
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        let path = store.spec_path().display().to_string();
        assert!(
            warnings[0].starts_with(&format!("{path}: cannot parse the spec snapshot ({path}:3:")),
            "{}",
            warnings[0]
        );
    }
}
