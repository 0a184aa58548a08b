//! Grid expansion: the cartesian product of the axes, minus `exclude`, plus `include`. Pure.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use super::id::{params_hash, slug};
use crate::spec::{in_run_id, is_added_default, ParamValue, RunParams, Spec};

/// One run of the grid with its stable id and every resolved parameter: as values (for ids,
/// `run.toml` and listings) and typed (for everything that acts on them).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunSpec {
    /// Position in the plan (0-based); used by `--index` and job arrays.
    pub index: usize,
    pub id: String,
    pub params: BTreeMap<String, ParamValue>,
    /// `params`, typed.
    #[serde(skip)]
    pub typed: RunParams,
}

impl RunSpec {
    /// A run from its parameter values; an error names a parameter that is unknown or not
    /// of its kind.
    pub fn new(index: usize, id: String, params: BTreeMap<String, ParamValue>) -> Result<RunSpec, String> {
        let typed = RunParams::from_params(&params)?;
        Ok(RunSpec { index, id, params, typed })
    }
}

/// The expanded grid.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    pub experiment: String,
    /// Axis parameter names in expansion order.
    pub axes: Vec<String>,
    pub runs: Vec<RunSpec>,
}

/// Expands a spec into its runs.
pub fn expand(spec: &Spec) -> Plan {
    let grid_axes = with_fold_axis(spec);
    let axes: Vec<String> = grid_axes.iter().map(|(k, _)| k.clone()).collect();
    let mut seen = BTreeSet::new();
    let mut runs = Vec::new();
    let mut push = |combo: BTreeMap<String, ParamValue>, runs: &mut Vec<RunSpec>| {
        let Some(params) = with_fold(spec, combo) else { return };
        let params = with_defaults(spec, params);
        let id = run_id(spec, &params, &axes);
        if seen.insert(id.clone()) {
            // `parse` checked every value against its key's kind, which is what typing needs.
            let run = RunSpec::new(runs.len(), id, params).unwrap_or_else(|e| panic!("a validated spec: {e}"));
            runs.push(run);
        }
    };
    for combo in product(&grid_axes) {
        if !spec.grid.exclude.iter().any(|f| matches(&combo, f)) {
            push(combo, &mut runs);
        }
    }
    for include in &spec.grid.include {
        let free: Vec<(String, Vec<ParamValue>)> =
            grid_axes.iter().filter(|(k, _)| !include.contains_key(k)).cloned().collect();
        for mut combo in product(&free) {
            combo.extend(include.iter().map(|(k, v)| (k.clone(), v.clone())));
            push(combo, &mut runs);
        }
    }
    Plan { experiment: spec.experiment.name.clone(), axes, runs }
}

/// The grid's axes plus a `fold` axis (0 … k−1 for the largest k) just before `seed`, when a
/// dataset of the grid is cross-validated. Without folds the axes are the grid's own.
fn with_fold_axis(spec: &Spec) -> Vec<(String, Vec<ParamValue>)> {
    let mut axes = spec.grid.axes.clone();
    let datasets = axes.iter().find(|(k, _)| k == "dataset").map(|(_, v)| v.clone()).unwrap_or_default();
    let most = datasets.iter().filter_map(|d| dataset_folds(spec, d)).max();
    if let Some(k) = most {
        let at = axes.iter().position(|(name, _)| name == "seed").unwrap_or(axes.len());
        axes.insert(at, (FOLD.to_string(), (0..k as i64).map(ParamValue::Int).collect()));
    }
    axes
}

const FOLD: &str = "fold";

fn dataset_folds(spec: &Spec, dataset: &ParamValue) -> Option<usize> {
    spec.datasets.get(dataset.as_str()?)?.folds()
}

/// The combination with its fold kept when the dataset has that fold, dropped when the dataset
/// is not cross-validated (the duplicates this makes share an id), or `None` past its k.
fn with_fold(spec: &Spec, mut combo: BTreeMap<String, ParamValue>) -> Option<BTreeMap<String, ParamValue>> {
    let Some(fold) = combo.get(FOLD).and_then(ParamValue::as_i64) else { return Some(combo) };
    match combo.get("dataset").and_then(|d| dataset_folds(spec, d)) {
        Some(k) if fold as usize >= k => None,
        Some(_) => Some(combo),
        None => {
            combo.remove(FOLD);
            Some(combo)
        }
    }
}

/// Cartesian product, first axis varying slowest.
fn product(axes: &[(String, Vec<ParamValue>)]) -> Vec<BTreeMap<String, ParamValue>> {
    let mut combos = vec![BTreeMap::new()];
    for (key, values) in axes {
        combos = combos
            .into_iter()
            .flat_map(|c| {
                values.iter().map(move |v| {
                    let mut next = c.clone();
                    next.insert(key.clone(), v.clone());
                    next
                })
            })
            .collect();
    }
    combos
}

fn matches(params: &BTreeMap<String, ParamValue>, filter: &BTreeMap<String, ParamValue>) -> bool {
    filter.iter().all(|(k, v)| params.get(k).is_some_and(|p| p.canonical() == v.canonical()))
}

/// The `[train]` values under the combination's. Keys added after plans were pinned are left
/// out at their defaults, so a spec that does not use them gives the same plan as before.
fn with_defaults(spec: &Spec, combo: BTreeMap<String, ParamValue>) -> BTreeMap<String, ParamValue> {
    let mut params: BTreeMap<String, ParamValue> =
        spec.train.iter().filter(|(k, v)| !is_added_default(k, v)).map(|(k, v)| (k.clone(), v.clone())).collect();
    params.extend(combo);
    params
}

/// Id from the parameters that change results, the model's source and the dataset's table.
fn run_id(spec: &Spec, params: &BTreeMap<String, ParamValue>, axes: &[String]) -> String {
    let mut canonical: BTreeMap<String, String> =
        params.iter().filter(|(k, v)| in_run_id(k, v)).map(|(k, v)| (k.clone(), v.canonical())).collect();
    let model = params.get("model").and_then(|m| m.as_str()).and_then(|m| spec.models.get(m));
    if let Some(source) = model {
        canonical.insert("model_source".into(), source.canonical());
    }
    let dataset = params.get("dataset").and_then(|d| d.as_str()).and_then(|d| spec.datasets.get(d));
    if let Some(entry) = dataset {
        canonical.insert("dataset_source".into(), entry.canonical());
    }
    format!("{}-{}", slug(params, axes), params_hash(&canonical))
}

/// Selects runs by `--index` values and a `--shard K/N` (1-based K: runs with index % N == K-1).
pub fn select<'p>(
    plan: &'p Plan,
    indices: &[usize],
    shard: Option<(usize, usize)>,
) -> Result<Vec<&'p RunSpec>, String> {
    if let Some(bad) = indices.iter().find(|&&i| i >= plan.runs.len()) {
        return Err(format!(
            "--index {bad} is out of range (the plan has {} runs: 0..{})",
            plan.runs.len(),
            plan.runs.len().saturating_sub(1)
        ));
    }
    Ok(plan
        .runs
        .iter()
        .filter(|r| indices.is_empty() || indices.contains(&r.index))
        .filter(|r| shard.is_none_or(|(k, n)| r.index % n == k - 1))
        .collect())
}

/// Parses `K/N` with 1 <= K <= N.
pub fn parse_shard(s: &str) -> Result<(usize, usize), String> {
    let err = || format!("invalid shard \"{s}\" (K/N with 1 <= K <= N, e.g. 2/4)");
    let (k, n) = s.split_once('/').ok_or_else(err)?;
    let (k, n): (usize, usize) = (k.trim().parse().map_err(|_| err())?, n.trim().parse().map_err(|_| err())?);
    if k == 0 || n == 0 || k > n {
        return Err(err());
    }
    Ok((k, n))
}
