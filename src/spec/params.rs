//! A run's parameters, typed: the high-level form of the `ParamValue` map a plan carries (as
//! ripgrep turns its low-level arguments into high-level ones in one step). Every run parameter
//! is read by name here and nowhere else; a `[train]` key is one [`super::keys::TRAIN_KEYS`]
//! entry (with its setter) plus its field in [`TrainSettings`].

use std::collections::BTreeMap;

use super::keys::{train_key, TRAIN_KEYS};
use super::model::ParamValue;

/// Which sub-words of a word carry its label in training (`label_alignment`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LabelAlignment {
    /// Only the first sub-word (the study's recipe).
    #[default]
    First,
    /// Every sub-word, with the word's label repeated.
    All,
}

impl LabelAlignment {
    /// The spec spellings, in the order of the variants.
    pub const NAMES: &'static [&'static str] = &["first", "all"];

    fn from_name(name: &str) -> Option<LabelAlignment> {
        [LabelAlignment::First, LabelAlignment::All]
            .into_iter()
            .zip(Self::NAMES)
            .find(|(_, n)| **n == name)
            .map(|(v, _)| v)
    }
}

/// The validation quantity that selects the best epoch (`select_best_by`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SelectMetric {
    #[default]
    F1,
    Precision,
    Recall,
    Accuracy,
    /// Validation loss, lower is better.
    Loss,
}

impl SelectMetric {
    /// The spec spellings, in the order of the variants.
    pub const NAMES: &'static [&'static str] = &["f1", "precision", "recall", "accuracy", "loss"];
    const ALL: [SelectMetric; 5] =
        [SelectMetric::F1, SelectMetric::Precision, SelectMetric::Recall, SelectMetric::Accuracy, SelectMetric::Loss];

    fn from_name(name: &str) -> Option<SelectMetric> {
        Self::ALL.into_iter().zip(Self::NAMES).find(|(_, n)| **n == name).map(|(v, _)| v)
    }
}

/// Which implementation computes training steps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Engine {
    /// The fused engine on the CPU, the graph engine on every other device.
    #[default]
    Auto,
    /// Fused CPU kernels with a hand-written backward pass (`model::fused`); CPU only.
    Fused,
    /// candle tensors and autograd: the code a GPU run takes, on any device.
    Graph,
}

impl Engine {
    /// The spec spellings, in the order of the variants.
    pub const NAMES: &'static [&'static str] = &["auto", "fused", "graph"];

    /// The spec's spelling (`auto`, `fused`, `graph`).
    pub fn parse(name: &str) -> Option<Engine> {
        match name {
            "auto" => Some(Engine::Auto),
            "fused" => Some(Engine::Fused),
            "graph" => Some(Engine::Graph),
            _ => None,
        }
    }

    /// The engine that runs on a device: `Auto` resolved.
    pub fn resolve(self, device_is_cpu: bool) -> Engine {
        match (self, device_is_cpu) {
            (Engine::Auto, true) => Engine::Fused,
            (Engine::Auto, false) => Engine::Graph,
            (engine, _) => engine,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Engine::Auto => "auto",
            Engine::Fused => "fused",
            Engine::Graph => "graph",
        }
    }
}

/// The arithmetic of a run's forward and backward passes. The graph engine computes weights
/// and activations in it (f32 masters and optimizer state); the fused CPU engine computes its
/// matrix products in it (bf16 operands, f32 accumulation) and keeps norms, softmax,
/// activations and the loss in f32. `train::precisions_of` says which engine computes which.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    #[default]
    Fp32,
    /// f32 with reduced-precision (TF32) matmuls on CUDA; equal to `Fp32` on the CPU.
    Tf32,
    /// bfloat16: graph engine forward and backward, fused engine matrix products.
    Bf16,
    /// float16 forward and backward with dynamic loss scaling (graph engine only).
    Fp16,
}

impl Precision {
    /// The spec spellings, in the order of the variants.
    pub const NAMES: &'static [&'static str] = &["fp32", "tf32", "bf16", "fp16"];

    /// The spec's spelling (`fp32`, `tf32`, `bf16`, `fp16`).
    pub fn parse(name: &str) -> Option<Precision> {
        match name {
            "fp32" => Some(Precision::Fp32),
            "tf32" => Some(Precision::Tf32),
            "bf16" => Some(Precision::Bf16),
            "fp16" => Some(Precision::Fp16),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Precision::Fp32 => "fp32",
            Precision::Tf32 => "tf32",
            Precision::Bf16 => "bf16",
            Precision::Fp16 => "fp16",
        }
    }
}

/// The `[train]` keys of one run, typed. Defaults are [`TRAIN_KEYS`]' defaults.
#[derive(Debug, Clone, PartialEq)]
pub struct TrainSettings {
    pub epochs: usize,
    pub batch_size: usize,
    pub max_length: usize,
    pub weight_decay: f64,
    pub warmup_ratio: f64,
    pub warmup_steps: usize,
    pub max_grad_norm: f64,
    pub label_alignment: LabelAlignment,
    pub select_best_by: SelectMetric,
    pub save_model: bool,
    pub early_stopping_patience: usize,
    pub early_stopping_threshold: f64,
    pub train_fraction: f64,
    /// Issue 18: windows of `max_length` tokens this many apart; 0 truncates.
    pub stride: usize,
    /// Issue 20: which implementation computes the steps.
    pub engine: Engine,
    /// Issues 19 and 20: the arithmetic of forward and backward passes.
    pub precision: Precision,
}

impl Default for TrainSettings {
    fn default() -> Self {
        let mut settings = TrainSettings {
            epochs: 0,
            batch_size: 0,
            max_length: 0,
            weight_decay: 0.0,
            warmup_ratio: 0.0,
            warmup_steps: 0,
            max_grad_norm: 0.0,
            label_alignment: LabelAlignment::First,
            select_best_by: SelectMetric::F1,
            save_model: false,
            early_stopping_patience: 0,
            early_stopping_threshold: 0.0,
            train_fraction: 0.0,
            stride: 0,
            engine: Engine::Auto,
            precision: Precision::Fp32,
        };
        for key in TRAIN_KEYS {
            (key.set)(&mut settings, &(key.default)()).expect("every default is of its key's kind");
        }
        settings
    }
}

/// Every parameter of one run, typed.
#[derive(Debug, Clone, PartialEq)]
pub struct RunParams {
    /// Alias into `[models]`.
    pub model: String,
    /// Canonical scheme name (`IO`, `BIO`, `IOB1`, `BIOES`).
    pub scheme: String,
    pub learning_rate: f64,
    /// Alias into `[datasets]`.
    pub dataset: String,
    pub seed: u64,
    /// The cross-validation fold, when the dataset is cross-validated.
    pub fold: Option<usize>,
    pub train: TrainSettings,
}

impl RunParams {
    /// Types a run's parameter map; an unknown name or a value of the wrong kind is an error
    /// naming the key (a validated spec never gives one).
    pub fn from_params(params: &BTreeMap<String, ParamValue>) -> Result<RunParams, String> {
        let mut run = RunParams {
            model: String::new(),
            scheme: String::new(),
            learning_rate: f64::NAN,
            dataset: String::new(),
            seed: 0,
            fold: None,
            train: TrainSettings::default(),
        };
        for (name, value) in params {
            let bad = |what: &str| format!("{name}: expected {what}, got {}", shown(value));
            match name.as_str() {
                "model" => run.model = value.as_str().ok_or_else(|| bad("a model alias"))?.to_string(),
                "scheme" => run.scheme = value.as_str().ok_or_else(|| bad("a scheme name"))?.to_string(),
                "dataset" => run.dataset = value.as_str().ok_or_else(|| bad("a dataset alias"))?.to_string(),
                "learning_rate" => run.learning_rate = positive(value).ok_or_else(|| bad("a number > 0"))?,
                "seed" => run.seed = count(value).ok_or_else(|| bad("an integer >= 0"))? as u64,
                "fold" => run.fold = Some(count(value).ok_or_else(|| bad("an integer >= 0"))?),
                _ => {
                    let key = train_key(name).ok_or_else(|| format!("{name}: not a run parameter"))?;
                    let set = key.kind.admits(value).then(|| (key.set)(&mut run.train, value)).flatten();
                    set.ok_or_else(|| bad(&key.kind.allowed()))?;
                }
            }
        }
        for (name, missing) in [("model", run.model.is_empty()), ("scheme", run.scheme.is_empty())] {
            if missing {
                return Err(format!("{name}: missing"));
            }
        }
        if run.dataset.is_empty() || run.learning_rate.is_nan() {
            return Err(format!("{}: missing", if run.dataset.is_empty() { "dataset" } else { "learning_rate" }));
        }
        Ok(run)
    }
}

/// A value as a spec writes it (strings quoted).
fn shown(value: &ParamValue) -> String {
    match value {
        ParamValue::Str(s) => format!("\"{s}\""),
        other => other.canonical(),
    }
}

/// A non-negative integer.
pub(crate) fn count(value: &ParamValue) -> Option<usize> {
    value.as_i64().and_then(|i| usize::try_from(i).ok())
}

fn positive(value: &ParamValue) -> Option<f64> {
    value.as_f64().filter(|x| *x > 0.0)
}

/// A finite number.
pub(crate) fn number(value: &ParamValue) -> Option<f64> {
    value.as_f64().filter(|x| x.is_finite())
}

pub(crate) fn label_alignment(value: &ParamValue) -> Option<LabelAlignment> {
    value.as_str().and_then(LabelAlignment::from_name)
}

pub(crate) fn select_metric(value: &ParamValue) -> Option<SelectMetric> {
    value.as_str().and_then(SelectMetric::from_name)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(pairs: &[(&str, ParamValue)]) -> BTreeMap<String, ParamValue> {
        let mut map: BTreeMap<String, ParamValue> = [
            ("model", ParamValue::Str("m".into())),
            ("scheme", ParamValue::Str("BIO".into())),
            ("dataset", ParamValue::Str("d".into())),
            ("learning_rate", ParamValue::Float(2e-5)),
            ("seed", ParamValue::Int(67)),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        map.extend(pairs.iter().map(|(k, v)| (k.to_string(), v.clone())));
        map
    }

    #[test]
    fn every_train_key_has_a_typed_field_and_defaults_round_trip() {
        let defaults: Vec<(&str, ParamValue)> = TRAIN_KEYS.iter().map(|k| (k.name, (k.default)())).collect();
        let typed = RunParams::from_params(&params(&defaults)).unwrap();
        assert_eq!(typed.train, TrainSettings::default());
        assert_eq!((typed.train.epochs, typed.train.batch_size, typed.train.max_length), (5, 16, 256));
        assert_eq!((typed.learning_rate, typed.seed, typed.fold), (2e-5, 67, None));
        // Each key changes its own field: setting it to another value changes the settings.
        let other = |k: &crate::spec::keys::TrainKey| match (k.default)() {
            ParamValue::Int(i) => ParamValue::Int(i + 1),
            ParamValue::Float(0.0) => ParamValue::Float(0.25),
            ParamValue::Float(f) => ParamValue::Float(f / 2.0),
            ParamValue::Bool(b) => ParamValue::Bool(!b),
            ParamValue::Str(_) => match k.kind {
                crate::spec::keys::Kind::Choice(c) => ParamValue::Str(c[1].to_string()),
                _ => unreachable!("string keys are choices"),
            },
        };
        for key in TRAIN_KEYS {
            let changed = RunParams::from_params(&params(&[(key.name, other(key))])).unwrap();
            assert_ne!(changed.train, TrainSettings::default(), "{} has no field of its own", key.name);
        }
    }

    #[test]
    fn choices_are_typed_and_unknown_values_are_errors() {
        let all = RunParams::from_params(&params(&[
            ("label_alignment", ParamValue::Str("all".into())),
            ("select_best_by", ParamValue::Str("loss".into())),
            ("fold", ParamValue::Int(2)),
        ]))
        .unwrap();
        assert_eq!(
            (all.train.label_alignment, all.train.select_best_by, all.fold),
            (LabelAlignment::All, SelectMetric::Loss, Some(2))
        );
        let bad = RunParams::from_params(&params(&[("select_best_by", ParamValue::Str("los".into()))])).unwrap_err();
        assert_eq!(
            bad,
            "select_best_by: expected one of \"f1\", \"precision\", \"recall\", \"accuracy\", \"loss\", got \"los\""
        );
        let bad = RunParams::from_params(&params(&[("label_alignment", ParamValue::Str("last".into()))])).unwrap_err();
        assert!(bad.starts_with("label_alignment: expected one of \"first\", \"all\""), "{bad}");
        let bad = RunParams::from_params(&params(&[("epochs", ParamValue::Int(-1))])).unwrap_err();
        assert!(bad.starts_with("epochs: expected"), "{bad}");
        assert_eq!(
            RunParams::from_params(&params(&[("epoch", ParamValue::Int(1))])).unwrap_err(),
            "epoch: not a run parameter"
        );
        let mut no_model = params(&[]);
        no_model.remove("model");
        assert_eq!(RunParams::from_params(&no_model).unwrap_err(), "model: missing");
    }
}
