//! Command-line interface: parses arguments and wires the library modules together.
//! Exit codes: 0 ok, 1 runs failed (or an operation failed), 2 usage or spec error.

pub(crate) mod data;
pub(crate) mod eval;
mod grid;
pub(crate) mod predict;
mod slurm;
mod worker;

use clap::{Parser, Subcommand};

/// Declarative experiment grids for fine-tuning transformer encoders on NER.
#[derive(Parser)]
#[command(name = "nergrid", version, about, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Check a grid spec and report every problem with its location.
    Validate(grid::ValidateArgs),
    /// List the runs of a grid with their ids, parameters and status.
    Plan(grid::PlanArgs),
    /// Execute the runs of a grid that are not done yet.
    Run(grid::RunArgs),
    /// Build report.md, the CSV tables (runs, summary, pivot, cells, comparisons, learning-rate
    /// choice, per-type, study) and SVG plots from stored results.
    Report(grid::ReportArgs),
    /// Score a CoNLL-style file of gold and predicted tags with seqeval's entity metrics.
    Eval(eval::EvalArgs),
    /// Inspect, split and label datasets exactly as runs see them.
    Data(data::DataArgs),
    /// Predict entities in raw text with a model exported by a run (save_model = true).
    Predict(predict::PredictArgs),
    /// Submit a grid to SLURM as job arrays (one task per run), optionally with a report job.
    Slurm(slurm::SlurmArgs),
    /// Run one attempt of one run for `nergrid run` (internal).
    #[command(hide = true)]
    Worker(worker::WorkerArgs),
}

/// Every training step allocates and frees the same large activation buffers. glibc serves
/// blocks above its mmap threshold (at most 32 MiB) with fresh mappings and trims the heap top,
/// so each step page-faulted them in again and unmapped them (with TLB shootdowns): 15% of a
/// MiniLM step. Keeping freed memory in the heap lets steps reuse it; the peak is unchanged.
/// Process-wide, so set here at start-up (the benchmarks call it too), never by the library.
pub fn keep_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    static ONCE: std::sync::Once = std::sync::Once::new();
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    ONCE.call_once(|| {
        // SAFETY: mallopt only changes allocator thresholds; any value is valid.
        unsafe {
            libc::mallopt(libc::M_MMAP_THRESHOLD, 1 << 30);
            libc::mallopt(libc::M_TRIM_THRESHOLD, i32::MAX);
        }
    });
}

/// Exit code for usage and spec errors.
pub const EXIT_USAGE: i32 = 2;
/// Exit code when runs failed or an operation could not complete.
pub const EXIT_FAILED: i32 = 1;

/// Runs the CLI and returns the process exit code.
pub fn main() -> i32 {
    keep_freed_memory();
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() { EXIT_USAGE } else { 0 };
        }
    };
    let result = match cli.command {
        Command::Validate(a) => grid::validate(a),
        Command::Plan(a) => grid::plan(a),
        Command::Run(a) => grid::run(a),
        Command::Report(a) => grid::report(a),
        Command::Eval(a) => eval::run(a),
        Command::Data(a) => data::run(a),
        Command::Predict(a) => predict::run(a),
        Command::Slurm(a) => slurm::run(a),
        Command::Worker(a) => worker::run(a),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            EXIT_FAILED
        }
    }
}
