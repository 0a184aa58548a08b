//! The vocabulary of a grid spec: tables, keys, value kinds and defaults.

use super::model::ParamValue;
use super::params::{
    count, label_alignment, number, select_metric, Engine, LabelAlignment, Precision, SelectMetric, TrainSettings,
};

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
    /// A number in (0, 1].
    Fraction,
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
            Kind::Fraction => "a number > 0 and <= 1".into(),
            Kind::Text => "a non-empty string".into(),
        }
    }
}

impl Kind {
    /// Whether an already-parsed value is of this kind and in range (aliases: any string).
    pub(crate) fn admits(&self, value: &ParamValue) -> bool {
        match (self, value) {
            (Kind::Int { min }, ParamValue::Int(i)) => i >= min,
            (Kind::Float { min, max, positive }, v) => {
                v.as_f64().is_some_and(|x| x.is_finite() && x < *max && if *positive { x > 0.0 } else { x >= *min })
            }
            (Kind::Fraction, v) => v.as_f64().is_some_and(|x| x > 0.0 && x <= 1.0),
            (Kind::Choice(c), ParamValue::Str(s)) => c.contains(&s.as_str()),
            (Kind::Scheme, ParamValue::Str(s)) => canonical_scheme(s).is_some(),
            (Kind::ModelAlias | Kind::DatasetAlias | Kind::Text, ParamValue::Str(s)) => !s.is_empty(),
            (Kind::Bool, ParamValue::Bool(_)) => true,
            _ => false,
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

/// A training parameter: its name, kind, default and typed field. Adding a `[train]` key is
/// one entry here plus its field in [`TrainSettings`].
pub(crate) struct TrainKey {
    pub name: &'static str,
    pub kind: Kind,
    pub default: fn() -> ParamValue,
    /// Whether the value changes results (and so belongs in the run id).
    pub affects_results: bool,
    /// Stores a value of `kind` in its typed field; `None` when the value is not of the kind.
    pub set: fn(&mut TrainSettings, &ParamValue) -> Option<()>,
}

/// `[train]` keys in the order they appear as grid axes. Defaults follow the Hugging Face
/// Trainer recipe of the Swedish study (reference/TRAINING_RECIPE.md).
pub(crate) const TRAIN_KEYS: &[TrainKey] = &[
    TrainKey {
        name: "epochs",
        kind: Kind::Int { min: 1 },
        default: || ParamValue::Int(5),
        affects_results: true,
        set: |s, v| {
            s.epochs = count(v)?;
            Some(())
        },
    },
    TrainKey {
        name: "batch_size",
        kind: Kind::Int { min: 1 },
        default: || ParamValue::Int(16),
        affects_results: true,
        set: |s, v| {
            s.batch_size = count(v)?;
            Some(())
        },
    },
    TrainKey {
        name: "max_length",
        kind: Kind::Int { min: 8 },
        default: || ParamValue::Int(256),
        affects_results: true,
        set: |s, v| {
            s.max_length = count(v)?;
            Some(())
        },
    },
    TrainKey {
        name: "weight_decay",
        kind: Kind::Float { min: 0.0, max: f64::INFINITY, positive: false },
        default: || ParamValue::Float(0.01),
        affects_results: true,
        set: |s, v| {
            s.weight_decay = number(v)?;
            Some(())
        },
    },
    TrainKey {
        name: "warmup_ratio",
        kind: Kind::Float { min: 0.0, max: 1.0, positive: false },
        default: || ParamValue::Float(0.0),
        affects_results: true,
        set: |s, v| {
            s.warmup_ratio = number(v)?;
            Some(())
        },
    },
    TrainKey {
        name: "warmup_steps",
        kind: Kind::Int { min: 0 },
        default: || ParamValue::Int(0),
        affects_results: true,
        set: |s, v| {
            s.warmup_steps = count(v)?;
            Some(())
        },
    },
    TrainKey {
        name: "max_grad_norm",
        kind: Kind::Float { min: 0.0, max: f64::INFINITY, positive: false },
        default: || ParamValue::Float(1.0),
        affects_results: true,
        set: |s, v| {
            s.max_grad_norm = number(v)?;
            Some(())
        },
    },
    TrainKey {
        name: "label_alignment",
        kind: Kind::Choice(LabelAlignment::NAMES),
        default: || ParamValue::Str("first".into()),
        affects_results: true,
        set: |s, v| {
            s.label_alignment = label_alignment(v)?;
            Some(())
        },
    },
    TrainKey {
        name: "select_best_by",
        kind: Kind::Choice(SelectMetric::NAMES),
        default: || ParamValue::Str("f1".into()),
        affects_results: true,
        set: |s, v| {
            s.select_best_by = select_metric(v)?;
            Some(())
        },
    },
    TrainKey {
        name: "save_model",
        kind: Kind::Bool,
        default: || ParamValue::Bool(false),
        affects_results: false,
        set: |s, v| {
            s.save_model = v.as_bool()?;
            Some(())
        },
    },
    // Issue 16 (early stopping, learning curves). Added after run ids were pinned: at their
    // defaults they stay out of the id (`ADDED_KEYS`), so existing grids keep their ids.
    TrainKey {
        name: "early_stopping_patience",
        kind: Kind::Int { min: 0 },
        default: || ParamValue::Int(0),
        affects_results: true,
        set: |s, v| {
            s.early_stopping_patience = count(v)?;
            Some(())
        },
    },
    TrainKey {
        name: "early_stopping_threshold",
        kind: Kind::Float { min: 0.0, max: f64::INFINITY, positive: false },
        default: || ParamValue::Float(0.0),
        affects_results: true,
        set: |s, v| {
            s.early_stopping_threshold = number(v)?;
            Some(())
        },
    },
    TrainKey {
        name: "train_fraction",
        kind: Kind::Fraction,
        default: || ParamValue::Float(1.0),
        affects_results: true,
        set: |s, v| {
            s.train_fraction = number(v)?;
            Some(())
        },
    },
    // Issue 18 (long documents): windows with a stride instead of truncation; 0 is off.
    TrainKey {
        name: "stride",
        kind: Kind::Int { min: 0 },
        default: || ParamValue::Int(0),
        affects_results: true,
        set: |s, v| {
            s.stride = count(v)?;
            Some(())
        },
    },
    // Issue 20 (the graph engine, mixed precision).
    TrainKey {
        name: "engine",
        kind: Kind::Choice(Engine::NAMES),
        default: || ParamValue::Str("auto".into()),
        affects_results: true,
        set: |s, v| {
            s.engine = v.as_str().and_then(Engine::parse)?;
            Some(())
        },
    },
    TrainKey {
        name: "precision",
        kind: Kind::Choice(Precision::NAMES),
        default: || ParamValue::Str("fp32".into()),
        affects_results: true,
        set: |s, v| {
            s.precision = v.as_str().and_then(Precision::parse)?;
            Some(())
        },
    },
];

/// `[train]` keys added after run ids were first pinned: a run id includes them only when
/// their value differs from the default, so a spec that does not use them keeps its ids.
pub(crate) const ADDED_KEYS: &[&str] =
    &["early_stopping_patience", "early_stopping_threshold", "train_fraction", "stride", "engine", "precision"];

/// Whether `name` is one of [`ADDED_KEYS`] and `value` its default.
pub(crate) fn is_added_default(name: &str, value: &ParamValue) -> bool {
    ADDED_KEYS.contains(&name) && train_key(name).is_some_and(|k| (k.default)().canonical() == value.canonical())
}

/// Whether `name = value` belongs in a run id (see [`ADDED_KEYS`]).
pub(crate) fn in_run_id(name: &str, value: &ParamValue) -> bool {
    match train_key(name) {
        Some(key) if !key.affects_results => false,
        Some(_) => !is_added_default(name, value),
        None => true,
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
