//! Grid expansion: the cartesian product of the axes, minus `exclude`, plus `include`. Pure.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use super::id::{params_hash, slug};
use crate::spec::{ParamValue, Spec, TrainKey, ID_ONLY_WHEN_SET, TRAIN_KEYS};

/// One run of the grid with its stable id and every resolved parameter.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunSpec {
    /// Position in the plan (0-based); used by `--index` and job arrays.
    pub index: usize,
    pub id: String,
    pub params: BTreeMap<String, ParamValue>,
}

impl RunSpec {
    pub fn param(&self, key: &str) -> Option<&ParamValue> {
        self.params.get(key)
    }
    pub fn str_param(&self, key: &str) -> &str {
        self.params.get(key).and_then(|v| v.as_str()).unwrap_or("")
    }
    pub fn f64_param(&self, key: &str) -> f64 {
        self.params.get(key).and_then(|v| v.as_f64()).unwrap_or(f64::NAN)
    }
    pub fn usize_param(&self, key: &str) -> usize {
        self.params.get(key).and_then(|v| v.as_i64()).unwrap_or(0).max(0) as usize
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
    let axes: Vec<String> = spec.grid.axes.iter().map(|(k, _)| k.clone()).collect();
    let mut seen = BTreeSet::new();
    let mut runs = Vec::new();
    let mut push = |params: BTreeMap<String, ParamValue>, runs: &mut Vec<RunSpec>| {
        let id = run_id(spec, &params, &axes);
        if seen.insert(id.clone()) {
            runs.push(RunSpec { index: runs.len(), id, params });
        }
    };
    for combo in product(&spec.grid.axes) {
        if !spec.grid.exclude.iter().any(|f| matches(&combo, f)) {
            push(with_defaults(spec, combo), &mut runs);
        }
    }
    for include in &spec.grid.include {
        let free: Vec<(String, Vec<ParamValue>)> =
            spec.grid.axes.iter().filter(|(k, _)| !include.contains_key(k)).cloned().collect();
        for mut combo in product(&free) {
            combo.extend(include.iter().map(|(k, v)| (k.clone(), v.clone())));
            push(with_defaults(spec, combo), &mut runs);
        }
    }
    Plan { experiment: spec.experiment.name.clone(), axes, runs }
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

fn with_defaults(spec: &Spec, combo: BTreeMap<String, ParamValue>) -> BTreeMap<String, ParamValue> {
    let mut params = spec.train.clone();
    params.extend(combo);
    params
}

/// Id from the parameters that change results, the model's source and the dataset's table.
fn run_id(spec: &Spec, params: &BTreeMap<String, ParamValue>, axes: &[String]) -> String {
    let at_default = |k: &TrainKey| ID_ONLY_WHEN_SET.contains(&k.name) && params.get(k.name) == Some(&(k.default)());
    let skip: BTreeSet<&str> =
        TRAIN_KEYS.iter().filter(|k| !k.affects_results || at_default(k)).map(|k| k.name).collect();
    let mut canonical: BTreeMap<String, String> =
        params.iter().filter(|(k, _)| !skip.contains(k.as_str())).map(|(k, v)| (k.clone(), v.canonical())).collect();
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
