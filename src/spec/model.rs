//! The typed, validated grid spec that the rest of nergrid consumes.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// A validated experiment grid.
#[derive(Debug, Clone, PartialEq)]
pub struct Spec {
    /// The file the spec was read from.
    pub file: PathBuf,
    /// The spec text as read, snapshotted into the results directory.
    pub source: String,
    pub experiment: Experiment,
    pub grid: Grid,
    pub models: BTreeMap<String, ModelSource>,
    pub datasets: BTreeMap<String, DatasetEntry>,
    /// Training parameters with defaults filled in.
    pub train: BTreeMap<String, ParamValue>,
    pub schedule: ScheduleSpec,
    pub slurm: SlurmSpec,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Experiment {
    pub name: String,
    pub description: String,
    pub output_dir: PathBuf,
}

/// The axes of the grid in the fixed expansion order, plus explicit exclusions and inclusions.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Grid {
    /// `(parameter name, values)` in expansion order (the first axis varies slowest).
    pub axes: Vec<(String, Vec<ParamValue>)>,
    pub exclude: Vec<BTreeMap<String, ParamValue>>,
    pub include: Vec<BTreeMap<String, ParamValue>>,
}

/// Where a model's weights come from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ModelSource {
    Hub { id: String, revision: Option<String> },
    Path { path: String },
}

impl ModelSource {
    /// A machine-independent description used in run ids (paths as written, not expanded).
    pub fn canonical(&self) -> String {
        match self {
            ModelSource::Hub { id, revision: Some(r) } => format!("hub:{id}@{r}"),
            ModelSource::Hub { id, revision: None } => format!("hub:{id}"),
            ModelSource::Path { path } => format!("path:{path}"),
        }
    }
}

/// A `[datasets.<alias>]` table, kept as written; the data module interprets it.
#[derive(Debug, Clone, PartialEq)]
pub struct DatasetEntry {
    pub table: toml::Table,
}

impl DatasetEntry {
    /// Canonical JSON of the table as written (sorted keys), used in run ids.
    pub fn canonical(&self) -> String {
        serde_json::to_string(&self.table).unwrap_or_default()
    }

    /// k of `split = { folds = k, ... }`, when the dataset is cross-validated.
    pub fn folds(&self) -> Option<usize> {
        let split = self.table.get("split")?.as_table()?;
        split.get("folds")?.as_integer().and_then(|k| usize::try_from(k).ok())
    }
}

/// `[schedule]`: how runs are spread over devices.
#[derive(Debug, Clone, PartialEq)]
pub struct ScheduleSpec {
    pub devices: String,
    pub runs_per_device: usize,
    pub threads_per_run: Option<usize>,
    pub retries: usize,
    pub timeout_secs: Option<u64>,
}

impl Default for ScheduleSpec {
    fn default() -> Self {
        ScheduleSpec {
            devices: "auto".into(),
            runs_per_device: 1,
            threads_per_run: None,
            retries: 0,
            timeout_secs: None,
        }
    }
}

/// `[slurm]`: defaults for `nergrid slurm`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SlurmSpec {
    pub values: BTreeMap<String, ParamValue>,
}

/// One parameter value of a run. Floats are normalised so that `2e-5`, `2.0e-5` and
/// `0.00002` compare and hash equal.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ParamValue {
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
}

impl ParamValue {
    /// The canonical text of the value: shortest round-trip decimal for floats.
    pub fn canonical(&self) -> String {
        match self {
            ParamValue::Bool(b) => b.to_string(),
            ParamValue::Int(i) => i.to_string(),
            ParamValue::Float(f) => format_float(*f),
            ParamValue::Str(s) => s.clone(),
        }
    }

    pub fn as_f64(&self) -> Option<f64> {
        match self {
            ParamValue::Float(f) => Some(*f),
            ParamValue::Int(i) => Some(*i as f64),
            _ => None,
        }
    }

    pub fn as_i64(&self) -> Option<i64> {
        match self {
            ParamValue::Int(i) => Some(*i),
            _ => None,
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            ParamValue::Str(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_bool(&self) -> Option<bool> {
        match self {
            ParamValue::Bool(b) => Some(*b),
            _ => None,
        }
    }

    /// JSON form with floats kept as numbers.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(self).unwrap_or(serde_json::Value::Null)
    }
}

impl fmt::Display for ParamValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.canonical())
    }
}

/// Shortest decimal that round-trips, always with a fractional part or exponent so that
/// floats never collide with integers (`1.0`, `2e-5`).
pub fn format_float(f: f64) -> String {
    if f == 0.0 {
        return "0.0".into();
    }
    let abs = f.abs();
    if !(1e-3..1e15).contains(&abs) {
        let s = format!("{f:e}");
        return s;
    }
    let s = format!("{f}");
    if s.contains('.') || s.contains('e') || s.contains("inf") || s.contains("NaN") {
        s
    } else {
        format!("{s}.0")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_floats_format_identically() {
        let a: f64 = "2e-5".parse().unwrap();
        let b: f64 = "2.0e-5".parse().unwrap();
        let c: f64 = "0.00002".parse().unwrap();
        assert_eq!(format_float(a), "2e-5");
        assert_eq!(format_float(a), format_float(b));
        assert_eq!(format_float(b), format_float(c));
        assert_eq!(format_float(0.01), "0.01");
        assert_eq!(format_float(1.0), "1.0");
        assert_eq!(format_float(5e-5), "5e-5");
        assert_eq!(format_float(0.0), "0.0");
        assert_eq!(format_float(2e-4), "2e-4");
        assert_eq!(format_float(0.001), "0.001");
    }
}
