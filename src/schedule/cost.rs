//! Longest-estimated runs first: a run's cost is model size × training data × epochs, each
//! factor 1 when it cannot be known before the run (a Hub model not in the local cache, a Hub
//! dataset). Starting the long runs first shortens the makespan of a sweep on several slots.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::plan::RunSpec;
use crate::spec::{expand_env, ModelSource, Spec};

/// The factors of a run's cost; `None` when unknown.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct CostInputs {
    pub model_params: Option<f64>,
    pub dataset_bytes: Option<f64>,
    pub epochs: usize,
}

/// Estimated relative cost of a run: model parameters × dataset bytes × epochs.
pub fn estimate_cost(c: &CostInputs) -> f64 {
    c.model_params.unwrap_or(1.0) * c.dataset_bytes.unwrap_or(1.0) * c.epochs.max(1) as f64
}

/// Positions of `costs` ordered by cost, highest first; equal costs keep their order.
pub fn longest_first(costs: &[f64]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..costs.len()).collect();
    order.sort_by(|&a, &b| costs[b].total_cmp(&costs[a]));
    order
}

/// Approximate parameter count of a BERT-family encoder from its Hugging Face `config.json`
/// (BERT and DistilBERT key names): embeddings plus per layer attention and feed-forward.
pub fn params_from_config(config: &serde_json::Value) -> Option<f64> {
    let get = |keys: &[&str]| keys.iter().find_map(|k| config.get(*k).and_then(|v| v.as_f64()));
    let hidden = get(&["hidden_size", "dim"])?;
    let layers = get(&["num_hidden_layers", "n_layers"])?;
    let inner = get(&["intermediate_size", "hidden_dim"]).unwrap_or(4.0 * hidden);
    let vocab = get(&["vocab_size"]).unwrap_or(0.0);
    let positions = get(&["max_position_embeddings"]).unwrap_or(0.0);
    Some((vocab + positions) * hidden + layers * (4.0 * hidden * hidden + 2.0 * hidden * inner))
}

/// Reads the facts behind the estimates, once per model and dataset alias.
pub struct CostModel {
    model_params: BTreeMap<String, Option<f64>>,
    dataset_bytes: BTreeMap<String, Option<f64>>,
}

impl CostModel {
    pub fn new(spec: &Spec) -> Self {
        let model_params =
            spec.models.iter().map(|(a, s)| (a.clone(), model_config(s).and_then(read_params))).collect();
        let dataset_bytes = spec.datasets.iter().map(|(a, d)| (a.clone(), files_bytes(&d.table))).collect();
        CostModel { model_params, dataset_bytes }
    }

    pub fn inputs(&self, run: &RunSpec) -> CostInputs {
        CostInputs {
            model_params: self.model_params.get(run.typed.model.as_str()).copied().flatten(),
            dataset_bytes: self.dataset_bytes.get(run.typed.dataset.as_str()).copied().flatten(),
            epochs: run.typed.train.epochs,
        }
    }

    /// `runs` ordered longest-estimated first, ties in plan order.
    pub fn order<'r>(&self, runs: &[&'r RunSpec]) -> Vec<&'r RunSpec> {
        let costs: Vec<f64> = runs.iter().map(|r| estimate_cost(&self.inputs(r))).collect();
        longest_first(&costs).into_iter().map(|i| runs[i]).collect()
    }
}

fn read_params(path: PathBuf) -> Option<f64> {
    let text = std::fs::read_to_string(path).ok()?;
    params_from_config(&serde_json::from_str(&text).ok()?)
}

/// A local `config.json`: in the model directory, or in the Hugging Face cache for a Hub id.
fn model_config(source: &ModelSource) -> Option<PathBuf> {
    match source {
        ModelSource::Path { path } => Some(Path::new(&expand_env(path).ok()?).join("config.json")),
        ModelSource::Hub { id, .. } => {
            let snapshots = hf_cache_dir()?.join(format!("models--{}", id.replace('/', "--"))).join("snapshots");
            let mut dirs: Vec<PathBuf> = std::fs::read_dir(snapshots).ok()?.flatten().map(|e| e.path()).collect();
            dirs.sort();
            dirs.into_iter().map(|d| d.join("config.json")).find(|p| p.is_file())
        }
    }
}

fn hf_cache_dir() -> Option<PathBuf> {
    let var = |k: &str| std::env::var_os(k).filter(|v| !v.is_empty()).map(PathBuf::from);
    var("HF_HUB_CACHE")
        .or_else(|| var("HF_HOME").map(|h| h.join("hub")))
        .or_else(|| var("HOME").map(|h| h.join(".cache/huggingface/hub")))
}

/// Total size of the existing files a dataset table names (any string value, nested too).
fn files_bytes(table: &toml::Table) -> Option<f64> {
    fn walk(v: &toml::Value, total: &mut u64) {
        match v {
            toml::Value::String(s) => {
                let size = expand_env(s).ok().and_then(|p| std::fs::metadata(p).ok()).filter(|m| m.is_file());
                *total += size.map_or(0, |m| m.len());
            }
            toml::Value::Array(items) => items.iter().for_each(|i| walk(i, total)),
            toml::Value::Table(t) => t.values().for_each(|i| walk(i, total)),
            _ => {}
        }
    }
    let mut total = 0;
    table.values().for_each(|v| walk(v, &mut total));
    (total > 0).then_some(total as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cost_multiplies_known_factors_and_defaults_to_one() {
        let c = CostInputs { model_params: Some(1e8), dataset_bytes: Some(2e6), epochs: 3 };
        assert_eq!(estimate_cost(&c), 6e14);
        let unknown = CostInputs { model_params: None, dataset_bytes: None, epochs: 5 };
        assert_eq!(estimate_cost(&unknown), 5.0);
        assert_eq!(estimate_cost(&CostInputs::default()), 1.0);
    }

    #[test]
    fn longest_first_is_stable() {
        assert_eq!(longest_first(&[1.0, 3.0, 2.0, 3.0, 1.0]), [1, 3, 2, 0, 4]);
        assert!(longest_first(&[]).is_empty());
    }

    #[test]
    fn bert_base_config_gives_about_110m_parameters() {
        let bert = serde_json::json!({"hidden_size": 768, "num_hidden_layers": 12, "intermediate_size": 3072,
            "vocab_size": 30522, "max_position_embeddings": 512});
        let p = params_from_config(&bert).unwrap();
        assert!((105e6..115e6).contains(&p), "{p}");
        let distil = serde_json::json!({"dim": 768, "n_layers": 6, "hidden_dim": 3072, "vocab_size": 30522});
        assert!(params_from_config(&distil).unwrap() < p);
        assert_eq!(params_from_config(&serde_json::json!({"vocab_size": 5})), None);
    }
}
