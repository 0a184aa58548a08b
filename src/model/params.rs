//! The trainable parameters of a token-classification model under their Hugging Face names
//! (without the `bert.`/`roberta.`/`distilbert.` prefix), and how missing ones are initialised.
//!
//! Every random draw comes from a seeded ChaCha stream in the fixed order of [`model_specs`]:
//! candle's CPU device cannot be seeded, so no `Tensor::randn` is used.

use super::config::{Architecture, Config};
use candle_core::{DType, Device, Tensor, Var};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::collections::HashMap;

/// How a parameter is initialised when the checkpoint does not provide it (as transformers'
/// `_init_weights` does for BERT: normal weights and embeddings, zero biases, unit norms).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Init {
    /// N(0, initializer_range).
    Normal,
    /// N(0, initializer_range) with the padding row zeroed (word and position embeddings).
    NormalPaddingRow,
    Zeros,
    Ones,
}

/// One parameter: its Hugging Face name (unprefixed), shape and fallback initialisation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParamSpec {
    pub name: String,
    pub shape: Vec<usize>,
    pub init: Init,
}

/// The classifier's weight name; the head is the only part never found in a base checkpoint.
pub const CLASSIFIER_WEIGHT: &str = "classifier.weight";
/// The classifier's bias name.
pub const CLASSIFIER_BIAS: &str = "classifier.bias";

fn spec(name: String, shape: &[usize], init: Init) -> ParamSpec {
    ParamSpec { name, shape: shape.to_vec(), init }
}

fn linear_specs(out: &mut Vec<ParamSpec>, name: &str, n_out: usize, n_in: usize) {
    out.push(spec(format!("{name}.weight"), &[n_out, n_in], Init::Normal));
    out.push(spec(format!("{name}.bias"), &[n_out], Init::Zeros));
}

fn norm_specs(out: &mut Vec<ParamSpec>, name: &str, hidden: usize) {
    out.push(spec(format!("{name}.weight"), &[hidden], Init::Ones));
    out.push(spec(format!("{name}.bias"), &[hidden], Init::Zeros));
}

/// HF names of one layer's tensors: (q, k, v, attention output, attention norm,
/// feed-forward in, feed-forward out, output norm).
pub fn layer_names(arch: Architecture, i: usize) -> [String; 8] {
    let names: [&str; 8] = match arch {
        Architecture::DistilBert => [
            "attention.q_lin",
            "attention.k_lin",
            "attention.v_lin",
            "attention.out_lin",
            "sa_layer_norm",
            "ffn.lin1",
            "ffn.lin2",
            "output_layer_norm",
        ],
        Architecture::Bert | Architecture::Roberta => [
            "attention.self.query",
            "attention.self.key",
            "attention.self.value",
            "attention.output.dense",
            "attention.output.LayerNorm",
            "intermediate.dense",
            "output.dense",
            "output.LayerNorm",
        ],
    };
    let stack = match arch {
        Architecture::DistilBert => "transformer.layer",
        _ => "encoder.layer",
    };
    names.map(|n| format!("{stack}.{i}.{n}"))
}

/// Every encoder parameter in Hugging Face state-dict order.
pub fn encoder_specs(cfg: &Config) -> Vec<ParamSpec> {
    let (h, ff) = (cfg.hidden_size, cfg.intermediate_size);
    let mut out = vec![
        spec("embeddings.word_embeddings.weight".into(), &[cfg.vocab_size, h], Init::NormalPaddingRow),
        spec(
            "embeddings.position_embeddings.weight".into(),
            &[cfg.max_position_embeddings, h],
            position_init(cfg.architecture),
        ),
    ];
    if cfg.type_vocab_size > 0 {
        let name = "embeddings.token_type_embeddings.weight".to_string();
        out.push(spec(name, &[cfg.type_vocab_size, h], Init::Normal));
    }
    norm_specs(&mut out, "embeddings.LayerNorm", h);
    for i in 0..cfg.num_layers {
        let [q, k, v, ao, an, fi, fo, on] = layer_names(cfg.architecture, i);
        for name in [q, k, v, ao] {
            linear_specs(&mut out, &name, h, h);
        }
        norm_specs(&mut out, &an, h);
        linear_specs(&mut out, &fi, ff, h);
        linear_specs(&mut out, &fo, h, ff);
        norm_specs(&mut out, &on, h);
    }
    out
}

fn position_init(arch: Architecture) -> Init {
    match arch {
        // RoBERTa's position embedding has padding_idx = pad_token_id.
        Architecture::Roberta => Init::NormalPaddingRow,
        _ => Init::Normal,
    }
}

/// Encoder parameters followed by the token-classification head.
pub fn model_specs(cfg: &Config, num_labels: usize) -> Vec<ParamSpec> {
    let mut out = encoder_specs(cfg);
    out.push(spec(CLASSIFIER_WEIGHT.into(), &[num_labels, cfg.hidden_size], Init::Normal));
    out.push(spec(CLASSIFIER_BIAS.into(), &[num_labels], Init::Zeros));
    out
}

/// Named trainable variables in a fixed order.
#[derive(Debug, Clone)]
pub struct Params {
    vars: Vec<(String, Var)>,
    index: HashMap<String, usize>,
}

impl Params {
    /// Wraps named variables; the order is kept.
    pub fn new(vars: Vec<(String, Var)>) -> Params {
        let index = vars.iter().enumerate().map(|(i, (n, _))| (n.clone(), i)).collect();
        Params { vars, index }
    }

    /// The variable called `name`. Panics if absent: names come from [`model_specs`].
    pub fn get(&self, name: &str) -> &Var {
        match self.index.get(name) {
            Some(&i) => &self.vars[i].1,
            None => panic!("no parameter {name}"),
        }
    }

    /// The position of `name` in the order. Panics if absent, as [`Params::get`].
    pub fn index_of(&self, name: &str) -> usize {
        match self.index.get(name) {
            Some(&i) => i,
            None => panic!("no parameter {name}"),
        }
    }

    /// The tensor of `name` (a variable's value, shared storage).
    pub fn tensor(&self, name: &str) -> Tensor {
        self.get(name).as_tensor().clone()
    }

    /// (name, variable) pairs in order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Var)> {
        self.vars.iter().map(|(n, v)| (n.as_str(), v))
    }

    pub fn len(&self) -> usize {
        self.vars.len()
    }

    pub fn is_empty(&self) -> bool {
        self.vars.is_empty()
    }

    /// Total number of scalar parameters.
    pub fn n_elements(&self) -> usize {
        self.vars.iter().map(|(_, v)| v.elem_count()).sum()
    }

    /// Deep copies of every value (for keeping the best epoch in memory).
    pub fn snapshot(&self) -> candle_core::Result<Vec<Tensor>> {
        self.vars.iter().map(|(_, v)| v.as_tensor().copy()).collect()
    }

    /// Writes values taken by [`Params::snapshot`] back into the variables.
    pub fn restore(&self, values: &[Tensor]) -> candle_core::Result<()> {
        for ((_, var), value) in self.vars.iter().zip(values) {
            var.set(value)?;
        }
        Ok(())
    }
}

/// Draws the initial value of `spec` from `rng` (host memory, f32).
pub fn initial_value(spec: &ParamSpec, std: f64, pad_row: usize, rng: &mut ChaCha8Rng) -> Vec<f32> {
    let n: usize = spec.shape.iter().product();
    match spec.init {
        Init::Zeros => vec![0.0; n],
        Init::Ones => vec![1.0; n],
        Init::Normal => normal_vec(n, std, rng),
        Init::NormalPaddingRow => {
            let mut values = normal_vec(n, std, rng);
            let width = spec.shape[1];
            if pad_row < spec.shape[0] {
                values[pad_row * width..(pad_row + 1) * width].fill(0.0);
            }
            values
        }
    }
}

/// `n` draws from N(0, std²) by Box-Muller on the seeded stream.
pub fn normal_vec(n: usize, std: f64, rng: &mut ChaCha8Rng) -> Vec<f32> {
    let mut out = Vec::with_capacity(n + 1);
    while out.len() < n {
        // 1 - u keeps the logarithm's argument in (0, 1].
        let u1: f64 = 1.0 - rng.random::<f64>();
        let u2: f64 = rng.random::<f64>();
        let r = (-2.0 * u1.ln()).sqrt() * std;
        let theta = std::f64::consts::TAU * u2;
        out.push((r * theta.cos()) as f32);
        out.push((r * theta.sin()) as f32);
    }
    out.truncate(n);
    out
}

/// A variable holding `values` with `shape` on `device`.
pub fn new_var(values: Vec<f32>, shape: &[usize], device: &Device) -> candle_core::Result<Var> {
    let tensor = Tensor::from_vec(values, shape, &Device::Cpu)?;
    Var::from_tensor(&tensor.to_device(device)?.to_dtype(DType::F32)?)
}

/// The RNG all initialisation draws come from, for a run seed.
pub fn init_rng(seed: u64) -> ChaCha8Rng {
    ChaCha8Rng::seed_from_u64(seed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::config::Config;
    use std::path::Path;

    fn tiny(model_type: &str) -> Config {
        let text = format!(
            r#"{{"model_type": "{model_type}", "vocab_size": 50, "hidden_size": 8,
            "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 16,
            "max_position_embeddings": 20, "type_vocab_size": 2}}"#
        );
        Config::from_json(&text, Path::new("c.json")).unwrap()
    }

    #[test]
    fn bert_specs_follow_hf_names() {
        let specs = model_specs(&tiny("bert"), 3);
        // 3 embeddings + 2 norm + 2 layers * 16 + 2 head
        assert_eq!(specs.len(), 39);
        assert_eq!(specs[5].name, "encoder.layer.0.attention.self.query.weight");
        assert_eq!(specs[5].shape, vec![8, 8]);
        let ff = specs.iter().find(|s| s.name == "encoder.layer.1.intermediate.dense.weight");
        assert_eq!(ff.unwrap().shape, vec![16, 8]);
        assert_eq!(specs.last().unwrap().name, CLASSIFIER_BIAS);
    }

    #[test]
    fn distilbert_has_no_token_types() {
        let specs = model_specs(&tiny("distilbert"), 3);
        assert_eq!(specs.len(), 38);
        assert!(specs.iter().all(|s| !s.name.contains("token_type")));
        assert!(specs.iter().any(|s| s.name == "transformer.layer.1.output_layer_norm.bias"));
    }

    #[test]
    fn normal_draws_are_seeded_and_scaled() {
        let a = normal_vec(20_000, 0.02, &mut init_rng(7));
        let b = normal_vec(20_000, 0.02, &mut init_rng(7));
        assert_eq!(a, b);
        let mean = a.iter().map(|&x| x as f64).sum::<f64>() / a.len() as f64;
        let var = a.iter().map(|&x| (x as f64 - mean).powi(2)).sum::<f64>() / a.len() as f64;
        assert!(mean.abs() < 1e-3, "{mean}");
        assert!((var.sqrt() - 0.02).abs() < 1e-3, "{}", var.sqrt());
        assert_ne!(a, normal_vec(20_000, 0.02, &mut init_rng(8)));
    }

    #[test]
    fn padding_row_is_zero() {
        let s = spec("e".into(), &[4, 3], Init::NormalPaddingRow);
        let v = initial_value(&s, 1.0, 2, &mut init_rng(1));
        assert_eq!(&v[6..9], &[0.0, 0.0, 0.0]);
        assert!(v[..6].iter().all(|&x| x != 0.0));
    }
}
