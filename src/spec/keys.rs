//! The vocabulary of a grid spec: tables, keys, value kinds and defaults.

use super::model::ParamValue;

/// What a parameter value must be.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Kind {
    /// An integer `>= min`.
    Int {
        min: i64,
    },
    /// A number in `[min, max)`, or `(0, max)` when `positive`.
    Float {
        min: f64,
        max: f64,
        positive: bool,
    },
    /// One of a fixed set of strings (case-sensitive).
    Choice(&'static [&'static str]),
    /// A tagging scheme name, normalised to its canonical spelling.
    Scheme,
    /// An alias defined in `[models]`.
    ModelAlias,
    /// An alias defined in `[datasets]`.
    DatasetAlias,
    Bool,
    /// Any non-empty string.
    Text,
}

impl Kind {
    /// Human description of what is allowed, for error messages.
    pub(crate) fn allowed(&self) -> String {
        match self {
            Kind::Int { min } => format!("an integer >= {min}"),
            Kind::Float { positive: true, max, .. } if max.is_infinite() => "a number > 0".into(),
            Kind::Float { positive: true, max, .. } => format!("a number > 0 and < {max}"),
            Kind::Float { min, max, .. } if max.is_infinite() => format!("a number >= {min}"),
            Kind::Float { min, max, .. } => format!("a number >= {min} and < {max}"),
            Kind::Choice(c) => format!("one of {}", quoted(c)),
            Kind::Scheme => format!("one of {}", quoted(SCHEME_NAMES)),
            Kind::ModelAlias => "a model alias defined in [models]".into(),
            Kind::DatasetAlias => "a dataset alias defined in [datasets]".into(),
            Kind::Bool => "true or false".into(),
            Kind::Text => "a non-empty string".into(),
        }
    }
}

pub(crate) fn quoted(items: &[&str]) -> String {
    items.iter().map(|s| format!("\"{s}\"")).collect::<Vec<_>>().join(", ")
}

/// Accepted scheme spellings (case-insensitive) and their canonical names.
pub(crate) const SCHEME_NAMES: &[&str] = &["IO", "BIO", "IOB2", "IOB1", "BIOES", "IOBES", "BILOU"];

pub(crate) fn canonical_scheme(name: &str) -> Option<&'static str> {
    match name.to_ascii_uppercase().as_str() {
        "IO" => Some("IO"),
        "BIO" | "IOB2" => Some("BIO"),
        "IOB1" => Some("IOB1"),
        "BIOES" | "IOBES" | "BILOU" => Some("BIOES"),
        _ => None,
    }
}

/// A training parameter: its name, kind and default.
pub(crate) struct TrainKey {
    pub name: &'static str,
    pub kind: Kind,
    pub default: fn() -> ParamValue,
    /// Whether the value changes results (and so belongs in the run id).
    pub affects_results: bool,
}

/// `[train]` keys in the order they appear as grid axes. Defaults follow the Hugging Face
/// Trainer recipe of the Swedish study (reference/TRAINING_RECIPE.md).
pub(crate) const TRAIN_KEYS: &[TrainKey] = &[
    TrainKey { name: "epochs", kind: Kind::Int { min: 1 }, default: || ParamValue::Int(5), affects_results: true },
    TrainKey { name: "batch_size", kind: Kind::Int { min: 1 }, default: || ParamValue::Int(16), affects_results: true },
    TrainKey {
        name: "max_length",
        kind: Kind::Int { min: 8 },
        default: || ParamValue::Int(256),
        affects_results: true,
    },
    TrainKey {
        name: "weight_decay",
        kind: Kind::Float { min: 0.0, max: f64::INFINITY, positive: false },
        default: || ParamValue::Float(0.01),
        affects_results: true,
    },
    TrainKey {
        name: "warmup_ratio",
        kind: Kind::Float { min: 0.0, max: 1.0, positive: false },
        default: || ParamValue::Float(0.0),
        affects_results: true,
    },
    TrainKey {
        name: "warmup_steps",
        kind: Kind::Int { min: 0 },
        default: || ParamValue::Int(0),
        affects_results: true,
    },
    TrainKey {
        name: "max_grad_norm",
        kind: Kind::Float { min: 0.0, max: f64::INFINITY, positive: false },
        default: || ParamValue::Float(1.0),
        affects_results: true,
    },
    TrainKey {
        name: "label_alignment",
        kind: Kind::Choice(&["first", "all"]),
        default: || ParamValue::Str("first".into()),
        affects_results: true,
    },
    TrainKey {
        name: "select_best_by",
        kind: Kind::Choice(&["f1", "precision", "recall", "accuracy"]),
        default: || ParamValue::Str("f1".into()),
        affects_results: true,
    },
    TrainKey {
        name: "precision",
        kind: Kind::Choice(&["fp32", "tf32", "bf16", "fp16"]),
        default: || ParamValue::Str("fp32".into()),
        affects_results: true,
    },
    TrainKey { name: "save_model", kind: Kind::Bool, default: || ParamValue::Bool(false), affects_results: false },
];

/// Keys added after results existed: left out of the run id at their default, so the ids of
/// earlier runs (and their resume) do not change.
pub(crate) const ID_ONLY_WHEN_SET: &[&str] = &["precision"];

/// Why a value the key's kind allows cannot run in this build, for the key at `path`
/// (`train.precision`, `grid.precision[1]`).
pub(crate) fn refused(path: &str, value: &str) -> Option<String> {
    let key = path.rsplit('.').next().and_then(|k| k.split('[').next());
    match (key, value) {
        (Some("precision"), "fp16") => Some(
            "unsupported value \"fp16\" (the fused CPU engine computes \"fp32\", \"tf32\" and \"bf16\"; \
             fp16 has no CPU kernels)"
                .into(),
        ),
        _ => None,
    }
}

pub(crate) fn train_key(name: &str) -> Option<&'static TrainKey> {
    TRAIN_KEYS.iter().find(|k| k.name == name)
}

/// The main grid axes: `(key in [grid], run parameter name, kind)`.
pub(crate) const MAIN_AXES: &[(&str, &str, Kind)] = &[
    ("models", "model", Kind::ModelAlias),
    ("schemes", "scheme", Kind::Scheme),
    ("learning_rates", "learning_rate", Kind::Float { min: 0.0, max: f64::INFINITY, positive: true }),
    ("datasets", "dataset", Kind::DatasetAlias),
    ("seeds", "seed", Kind::Int { min: 0 }),
];

/// The seed used when `[grid]` lists none.
pub(crate) const DEFAULT_SEED: i64 = 42;

/// Kind of a run parameter by its (singular) name.
pub(crate) fn param_kind(name: &str) -> Option<Kind> {
    MAIN_AXES.iter().find(|(_, p, _)| *p == name).map(|(_, _, k)| *k).or_else(|| train_key(name).map(|k| k.kind))
}

/// Every run parameter name (singular), for `exclude`/`include` keys.
pub(crate) fn param_names() -> Vec<&'static str> {
    MAIN_AXES.iter().map(|(_, p, _)| *p).chain(TRAIN_KEYS.iter().map(|k| k.name)).collect()
}

pub(crate) const TOP_LEVEL: &[&str] = &["experiment", "grid", "models", "datasets", "train", "schedule", "slurm"];
pub(crate) const EXPERIMENT_KEYS: &[&str] = &["name", "description", "output_dir"];
pub(crate) const MODEL_KEYS: &[&str] = &["hub", "revision", "path"];
pub(crate) const SCHEDULE_KEYS: &[&str] = &["devices", "runs_per_device", "threads_per_run", "retries", "timeout"];
pub(crate) const SLURM_KEYS: &[(&str, Kind)] = &[
    ("partition", Kind::Text),
    ("account", Kind::Text),
    ("gpus_per_run", Kind::Int { min: 0 }),
    ("cpus_per_run", Kind::Int { min: 1 }),
    ("mem", Kind::Text),
    ("time", Kind::Text),
    ("max_parallel", Kind::Int { min: 1 }),
    ("max_array_size", Kind::Int { min: 1 }),
];

/// Keys allowed in `[grid]`.
pub(crate) fn grid_keys() -> Vec<&'static str> {
    MAIN_AXES
        .iter()
        .map(|(k, _, _)| *k)
        .chain(TRAIN_KEYS.iter().map(|k| k.name))
        .chain(["exclude", "include"])
        .collect()
}
