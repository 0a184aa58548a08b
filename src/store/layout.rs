//! The results directory: `spec.toml`, `runs/<run-id>/{run.toml, result.json, epochs.csv,
//! log.txt, predictions.conll, lock.json}` and `slurm/` (SLURM job output). Only this module
//! knows these names.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use super::predictions::{format_predictions, parse_predictions, PredictedSentence};
use super::result::{EpochRow, RunResult, RunStatus};
use super::StoreError;
use crate::plan::RunSpec;

/// [`crate::atomic::write_atomic`] with the path in a [`StoreError`].
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), StoreError> {
    crate::atomic::write_atomic(path, bytes).map_err(|source| StoreError::Io { path: path.to_path_buf(), source })
}

/// What the store knows about one run.
#[derive(Debug, Clone, PartialEq)]
pub enum RunState {
    Pending,
    Done(Box<RunResult>),
    Failed(Box<RunResult>),
    /// `result.json` exists but cannot be read: treated as pending, reported as a warning.
    Corrupt(String),
}

impl RunState {
    pub fn label(&self) -> &'static str {
        match self {
            RunState::Pending | RunState::Corrupt(_) => "pending",
            RunState::Done(_) => "done",
            RunState::Failed(_) => "failed",
        }
    }
}

/// A results directory.
#[derive(Debug, Clone)]
pub struct Store {
    root: PathBuf,
}

impl Store {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Store { root: root.into() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn spec_path(&self) -> PathBuf {
        self.root.join("spec.toml")
    }

    /// Where SLURM writes the output of `nergrid slurm` jobs.
    pub fn slurm_dir(&self) -> PathBuf {
        self.root.join("slurm")
    }

    pub fn runs_dir(&self) -> PathBuf {
        self.root.join("runs")
    }

    pub fn run_dir(&self, id: &str) -> PathBuf {
        self.runs_dir().join(id)
    }

    pub fn result_path(&self, id: &str) -> PathBuf {
        self.run_dir(id).join("result.json")
    }

    /// The claim of the process running the run (see `schedule::lock`).
    pub fn lock_path(&self, id: &str) -> PathBuf {
        self.run_dir(id).join("lock.json")
    }

    pub fn log_path(&self, id: &str) -> PathBuf {
        self.run_dir(id).join("log.txt")
    }

    pub fn epochs_path(&self, id: &str) -> PathBuf {
        self.run_dir(id).join("epochs.csv")
    }

    pub fn predictions_path(&self, id: &str) -> PathBuf {
        self.run_dir(id).join("predictions.conll")
    }

    pub fn model_dir(&self, id: &str) -> PathBuf {
        self.run_dir(id).join("model")
    }

    /// Snapshots the spec text that produced this store.
    pub fn write_spec(&self, text: &str) -> Result<(), StoreError> {
        write_atomic(&self.spec_path(), text.as_bytes())
    }

    /// Writes `run.toml`: the resolved parameters the run was started with.
    pub fn write_run_spec(&self, run: &RunSpec) -> Result<(), StoreError> {
        let mut table = toml::Table::new();
        table.insert("id".into(), toml::Value::String(run.id.clone()));
        table.insert("index".into(), toml::Value::Integer(run.index as i64));
        let mut params = toml::Table::new();
        for (k, v) in &run.params {
            let value = match v {
                crate::spec::ParamValue::Bool(b) => toml::Value::Boolean(*b),
                crate::spec::ParamValue::Int(i) => toml::Value::Integer(*i),
                crate::spec::ParamValue::Float(f) => toml::Value::Float(*f),
                crate::spec::ParamValue::Str(s) => toml::Value::String(s.clone()),
            };
            params.insert(k.clone(), value);
        }
        table.insert("params".into(), toml::Value::Table(params));
        let text = toml::to_string(&table).unwrap_or_default();
        write_atomic(&self.run_dir(&run.id).join("run.toml"), text.as_bytes())
    }

    pub fn state(&self, id: &str) -> RunState {
        let path = self.result_path(id);
        let bytes = match fs::read(&path) {
            Ok(b) => b,
            Err(_) => return RunState::Pending,
        };
        match serde_json::from_slice::<RunResult>(&bytes) {
            Ok(r) if r.status == RunStatus::Done => RunState::Done(Box::new(r)),
            Ok(r) => RunState::Failed(Box::new(r)),
            Err(e) => RunState::Corrupt(format!("{}: unreadable result ({e})", path.display())),
        }
    }

    pub fn write_result(&self, result: &RunResult) -> Result<(), StoreError> {
        let mut text = serde_json::to_string_pretty(result)
            .map_err(|e| StoreError::Encode { path: self.result_path(&result.id), source: e.into() })?;
        text.push('\n');
        write_atomic(&self.result_path(&result.id), text.as_bytes())
    }

    /// Removes a previous result, and temp files a killed writer left, so a run starts clean.
    pub fn clear_result(&self, id: &str) -> Result<(), StoreError> {
        let path = self.result_path(id);
        if let Err(e) = fs::remove_file(&path) {
            if e.kind() != std::io::ErrorKind::NotFound {
                return Err(StoreError::Io { path, source: e });
            }
        }
        if let Ok(entries) = fs::read_dir(self.run_dir(id)) {
            for entry in entries.flatten() {
                let name = entry.file_name().to_string_lossy().into_owned();
                if name.starts_with('.') && name.contains(".tmp.") {
                    let _ = fs::remove_file(entry.path());
                }
            }
        }
        Ok(())
    }

    pub fn write_epochs(&self, id: &str, rows: &[EpochRow]) -> Result<(), StoreError> {
        let path = self.epochs_path(id);
        let mut w = csv::Writer::from_writer(Vec::new());
        for row in rows {
            w.serialize(row).map_err(|e| StoreError::Encode { path: path.clone(), source: e.into() })?;
        }
        let bytes = w.into_inner().map_err(|e| StoreError::Encode { path: path.clone(), source: e.into() })?;
        write_atomic(&path, &bytes)
    }

    pub fn read_epochs(&self, id: &str) -> Result<Vec<EpochRow>, StoreError> {
        let path = self.epochs_path(id);
        let mut r =
            csv::Reader::from_path(&path).map_err(|e| StoreError::Decode { path: path.clone(), source: e.into() })?;
        r.deserialize().collect::<Result<_, _>>().map_err(|e| StoreError::Decode { path, source: e.into() })
    }

    /// Writes `split.json`: the sentence indices of each split and their sha256.
    pub fn write_split_manifest(&self, id: &str, manifest: &serde_json::Value) -> Result<(), StoreError> {
        let text = serde_json::to_string(manifest).unwrap_or_default();
        write_atomic(&self.run_dir(id).join("split.json"), text.as_bytes())
    }

    pub fn write_predictions(&self, id: &str, sentences: &[PredictedSentence]) -> Result<(), StoreError> {
        write_atomic(&self.predictions_path(id), format_predictions(sentences).as_bytes())
    }

    /// The run's test predictions; `None` when the run wrote none (dry runs).
    pub fn read_predictions(&self, id: &str) -> Result<Option<Vec<PredictedSentence>>, StoreError> {
        let path = self.predictions_path(id);
        match fs::read_to_string(&path) {
            Ok(text) => parse_predictions(&path, &text).map(Some),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(StoreError::Io { path, source }),
        }
    }

    /// Appends a line to the run's log.
    pub fn log(&self, id: &str, line: &str) -> Result<(), StoreError> {
        let path = self.log_path(id);
        let io = |source| StoreError::Io { path: path.clone(), source };
        fs::create_dir_all(self.run_dir(id)).map_err(io)?;
        let mut f = fs::OpenOptions::new().create(true).append(true).open(&path).map_err(io)?;
        writeln!(f, "{line}").map_err(io)
    }

    /// Every run directory's state, sorted by run id.
    pub fn all_states(&self) -> Result<Vec<(String, RunState)>, StoreError> {
        let dir = self.runs_dir();
        let entries = match fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(source) => return Err(StoreError::Io { path: dir, source }),
        };
        let mut ids: Vec<String> = entries
            .filter_map(|e| e.ok())
            .filter(|e| e.path().is_dir())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        ids.sort();
        Ok(ids
            .into_iter()
            .map(|id| {
                let state = self.state(&id);
                (id, state)
            })
            .collect())
    }
}
