//! SLURM: renders a plan's runs as sbatch job arrays (one array task per run, split into
//! several arrays when the grid is larger than the cluster's MaxArraySize), plus an optional
//! report job that runs after them, and submits them with `sbatch`. Only this module writes
//! sbatch text.
//!
//! The decisions (options, which runs get a task, how they split into arrays, the script
//! text) are pure functions; `submit` holds the calls to `sbatch` and `scontrol`.

mod arrays;
mod options;
mod script;
mod submit;

pub use arrays::{runs_to_submit, split_arrays, ArrayPlan};
pub use options::{effective_max_array_size, SlurmOptionFlags, SlurmOptions};
pub use script::{render_array, render_report, ScriptContext};
pub use submit::{cluster_max_array_size, sbatch};

use std::path::PathBuf;

/// What can go wrong rendering or submitting job arrays.
#[derive(Debug, thiserror::Error)]
pub enum SlurmError {
    #[error("{key}: {value:?}: {why}")]
    Value { key: String, value: String, why: &'static str },
    #[error("{path}: {why}", path = path.display())]
    Path { path: PathBuf, why: &'static str },
    #[error("this cluster disables job arrays (MaxArraySize = 0 in `scontrol show config`)")]
    ArraysDisabled,
    #[error("{program}: cannot run it (is SLURM installed and on PATH?)")]
    Spawn {
        program: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{program}: no answer within {seconds} s (is slurmctld up?)")]
    Timeout { program: String, seconds: u64 },
    #[error("{program}: {status}: {stderr}")]
    Failed { program: String, status: String, stderr: String },
    #[error("{program}: unexpected output {output:?} (expected a job id)")]
    Output { program: String, output: String },
}
