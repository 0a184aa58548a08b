//! `validate`, `plan`, `run` and `report`: the grid lifecycle.

use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::{Args, ValueEnum};

use super::{EXIT_FAILED, EXIT_USAGE};
use crate::plan::{expand, parse_shard, select, Plan, RunSpec};
use crate::progress::stderr_renderer;
use crate::schedule::{
    cuda_worker_exe, layout, run_schedule, DeviceEnv, LockConfig, ScheduleOptions, SweepSummary, TrainerChoice,
    WorkerLaunch,
};
use crate::spec::{self, parse_devices, Spec, SpecLoadError};
use crate::store::Store;

#[derive(Args, Debug)]
pub struct ValidateArgs {
    /// The grid spec (TOML).
    spec: PathBuf,
    /// Do not check that local model directories and dataset files exist (a spec meant for
    /// another machine).
    #[arg(long)]
    no_path_check: bool,
}

#[derive(Copy, Clone, Debug, ValueEnum)]
pub enum PlanFormat {
    Table,
    Json,
    Csv,
}

#[derive(Args, Debug)]
pub struct PlanArgs {
    /// The grid spec (TOML).
    spec: PathBuf,
    #[arg(long, value_enum, default_value = "table")]
    format: PlanFormat,
}

#[derive(Args, Debug)]
pub struct RunArgs {
    /// The grid spec (TOML).
    spec: PathBuf,
    /// Use the dry-run trainer: metrics are a function of the run id, nothing is trained.
    #[arg(long)]
    dry_run: bool,
    /// Run only this plan index (repeatable).
    #[arg(long = "index", value_name = "I")]
    indices: Vec<usize>,
    /// With one --index: the id that run must have; exit 2 if the plan gives it another id (the
    /// spec changed since the id was taken, e.g. since a SLURM job array was submitted).
    #[arg(long, value_name = "ID", requires = "indices")]
    expect_id: Option<String>,
    /// Run only shard K of N (1-based): runs whose index % N == K-1.
    #[arg(long, value_name = "K/N")]
    shard: Option<String>,
    /// Run again even runs that are done.
    #[arg(long)]
    force: bool,
    /// Run again the runs that failed.
    #[arg(long)]
    rerun_failed: bool,
    /// Devices: auto (every visible CUDA device, else the CPU), cpu, or cuda:0,1,3.
    /// Overrides `[schedule] devices`.
    #[arg(long, value_name = "DEVICES")]
    devices: Option<String>,
}

#[derive(Args, Debug)]
pub struct ReportArgs {
    /// A grid spec (TOML) or a results directory.
    target: PathBuf,
}

/// Loads a spec, printing its errors; `None` means exit with `EXIT_USAGE`.
pub(super) fn load_spec(path: &Path) -> Option<Spec> {
    match spec::load(path) {
        Ok(s) => Some(s),
        Err(SpecLoadError::Invalid(errors)) => {
            eprintln!("{errors}");
            eprintln!("{}: {} error(s)", path.display(), errors.0.len());
            None
        }
        Err(e @ SpecLoadError::Read { .. }) => {
            eprintln!("error: {e}: {}", std::error::Error::source(&e).map(|s| s.to_string()).unwrap_or_default());
            None
        }
    }
}

pub fn validate(args: ValidateArgs) -> anyhow::Result<i32> {
    let Some(spec) = load_spec(&args.spec) else { return Ok(EXIT_USAGE) };
    if !args.no_path_check && !paths_exist(&spec) {
        return Ok(EXIT_USAGE);
    }
    let plan = expand(&spec);
    println!("{}: ok: experiment \"{}\", {} runs", args.spec.display(), spec.experiment.name, plan.runs.len());
    Ok(0)
}

/// Prints every missing local path of the spec's grid (after `${VAR}` expansion) with its
/// location; whether there were none.
fn paths_exist(spec: &Spec) -> bool {
    report_missing(spec, spec::missing_paths(spec, &|name| std::env::var(name).ok()))
}

/// [`paths_exist`] for the models and datasets of `runs` only.
fn run_paths_exist(spec: &Spec, runs: &[&RunSpec]) -> bool {
    let mut models: Vec<String> = runs.iter().map(|r| r.typed.model.clone()).collect();
    let mut datasets: Vec<String> = runs.iter().map(|r| r.typed.dataset.clone()).collect();
    models.sort();
    models.dedup();
    datasets.sort();
    datasets.dedup();
    let lookup = |name: &str| std::env::var(name).ok();
    report_missing(spec, spec::missing_paths_of(spec, (&models, &datasets), &lookup))
}

fn report_missing(spec: &Spec, missing: Vec<spec::SpecError>) -> bool {
    for e in &missing {
        eprintln!("{e}");
    }
    if !missing.is_empty() {
        eprintln!("{}: {} missing path(s) (--no-path-check skips this check)", spec.file.display(), missing.len());
    }
    missing.is_empty()
}

pub fn plan(args: PlanArgs) -> anyhow::Result<i32> {
    let Some(spec) = load_spec(&args.spec) else { return Ok(EXIT_USAGE) };
    let plan = expand(&spec);
    let store = Store::new(&spec.experiment.output_dir);
    let statuses: Vec<&str> = plan.runs.iter().map(|r| store.state(&r.id).label()).collect();
    let text = match args.format {
        PlanFormat::Json => plan_json(&plan, &statuses),
        PlanFormat::Csv => plan_csv(&plan, &statuses)?,
        PlanFormat::Table => plan_table(&plan, &statuses),
    };
    print!("{text}");
    Ok(0)
}

fn plan_json(plan: &Plan, statuses: &[&str]) -> String {
    let rows: Vec<serde_json::Value> = plan
        .runs
        .iter()
        .zip(statuses)
        .map(|(r, s)| {
            let params: serde_json::Map<String, serde_json::Value> =
                r.params.iter().map(|(k, v)| (k.clone(), v.to_json())).collect();
            serde_json::json!({ "index": r.index, "id": r.id, "status": s, "params": params })
        })
        .collect();
    format!("{}\n", serde_json::to_string_pretty(&rows).unwrap_or_default())
}

fn plan_csv(plan: &Plan, statuses: &[&str]) -> anyhow::Result<String> {
    let mut w = csv::Writer::from_writer(Vec::new());
    let mut header = vec!["index".to_string(), "id".into(), "status".into()];
    header.extend(plan.axes.iter().cloned());
    w.write_record(&header)?;
    for (r, s) in plan.runs.iter().zip(statuses) {
        let mut row = vec![r.index.to_string(), r.id.clone(), s.to_string()];
        row.extend(plan.axes.iter().map(|a| r.params.get(a).map(|v| v.canonical()).unwrap_or_default()));
        w.write_record(&row)?;
    }
    Ok(String::from_utf8(w.into_inner()?)?)
}

fn plan_table(plan: &Plan, statuses: &[&str]) -> String {
    let mut header = vec!["index".to_string(), "id".into(), "status".into()];
    header.extend(plan.axes.iter().cloned());
    let mut rows = vec![header];
    for (r, s) in plan.runs.iter().zip(statuses) {
        let mut row = vec![r.index.to_string(), r.id.clone(), s.to_string()];
        row.extend(plan.axes.iter().map(|a| r.params.get(a).map(|v| v.canonical()).unwrap_or_default()));
        rows.push(row);
    }
    let widths: Vec<usize> =
        (0..rows[0].len()).map(|c| rows.iter().map(|r| r[c].chars().count()).max().unwrap_or(0)).collect();
    let mut out = String::new();
    for row in rows {
        let cells: Vec<String> = row.iter().zip(&widths).map(|(c, w)| format!("{c:<w$}")).collect();
        out.push_str(cells.join("  ").trim_end());
        out.push('\n');
    }
    out
}

pub fn run(args: RunArgs) -> anyhow::Result<i32> {
    let Some(spec) = load_spec(&args.spec) else { return Ok(EXIT_USAGE) };
    let plan = expand(&spec);
    let shard = match args.shard.as_deref().map(parse_shard).transpose() {
        Ok(s) => s,
        Err(msg) => {
            eprintln!("error: {msg}");
            return Ok(EXIT_USAGE);
        }
    };
    let runs = match select(&plan, &args.indices, shard).and_then(|r| check_expected_id(r, args.expect_id.as_deref())) {
        Ok(r) => r,
        Err(msg) => {
            eprintln!("error: {msg}");
            return Ok(EXIT_USAGE);
        }
    };
    // One report of every missing input of the selected runs, before any worker starts. A dry
    // run reads no input; with `--index` (a SLURM array task, or a run picked by hand) each
    // run records its own failure instead, so that it can be resubmitted.
    if !args.dry_run && args.indices.is_empty() && !run_paths_exist(&spec, &runs) {
        return Ok(EXIT_USAGE);
    }
    let trainer = if args.dry_run {
        eprintln!("dry run: metrics are a deterministic function of each run id; nothing is trained");
        TrainerChoice::DryRun
    } else {
        TrainerChoice::Real
    };
    let Some(opts) = schedule_options(&args, &spec, trainer)? else { return Ok(EXIT_USAGE) };
    let store = Store::new(&spec.experiment.output_dir);
    let mut progress = stderr_renderer();
    let summary = run_schedule(&spec, &runs, &store, &opts, &mut |e| progress.event(&e))
        .with_context(|| format!("sweep over {}", store.root().display()))?;
    progress.finish();
    eprintln!("{}; results in {}", summary_line(&summary), store.root().display());
    Ok(if summary.all_done() { 0 } else { EXIT_FAILED })
}

/// `--expect-id`: the one selected run must have this id.
fn check_expected_id<'p>(runs: Vec<&'p RunSpec>, expected: Option<&str>) -> Result<Vec<&'p RunSpec>, String> {
    let Some(expected) = expected else { return Ok(runs) };
    match runs.as_slice() {
        [run] if run.id == expected => Ok(runs),
        [run] => Err(format!(
            "--expect-id: run {} of the plan is {}, not {expected} (the spec changed since the id was taken)",
            run.index, run.id
        )),
        _ => Err("--expect-id needs exactly one --index".into()),
    }
}

/// Devices from `--devices` or `[schedule]`; `None` (after printing why) on a usage error.
fn schedule_options(args: &RunArgs, spec: &Spec, trainer: TrainerChoice) -> anyhow::Result<Option<ScheduleOptions>> {
    let devices = args.devices.as_deref().unwrap_or(&spec.schedule.devices);
    let layout = parse_devices(devices).and_then(|selection| {
        layout(&selection, spec.schedule.runs_per_device, spec.schedule.threads_per_run, &DeviceEnv::detect())
    });
    let layout = match layout {
        Ok(l) => l,
        Err(msg) => {
            eprintln!("error: devices: {msg}");
            return Ok(None);
        }
    };
    let exe = std::env::current_exe().context("locating the nergrid executable for the workers")?;
    Ok(Some(ScheduleOptions {
        force: args.force,
        rerun_failed: args.rerun_failed,
        layout,
        retries: spec.schedule.retries,
        timeout: spec.schedule.timeout_secs.map(std::time::Duration::from_secs),
        launch: WorkerLaunch {
            cuda_exe: cuda_worker_exe().unwrap_or_else(|| exe.clone()),
            exe,
            spec: args.spec.clone(),
            trainer,
        },
        lock: LockConfig::from_env(),
    }))
}

fn summary_line(s: &SweepSummary) -> String {
    let mut line = format!(
        "executed {}, succeeded {}, failed {}, skipped {} done and {} failed",
        s.executed, s.succeeded, s.failed, s.skipped_done, s.skipped_failed
    );
    if s.elsewhere_done + s.elsewhere_failed > 0 {
        line += &format!("; finished by other processes: {} done, {} failed", s.elsewhere_done, s.elsewhere_failed);
    }
    if s.interrupted + s.not_started > 0 {
        line += &format!("; interrupted: {} stopped and {} not started (left pending)", s.interrupted, s.not_started);
    }
    if !s.still_held.is_empty() {
        line += &format!("; still running elsewhere: {}", s.still_held.join(", "));
    }
    line
}

pub fn report(args: ReportArgs) -> anyhow::Result<i32> {
    let root = if args.target.is_dir() {
        args.target.clone()
    } else {
        let Some(spec) = load_spec(&args.target) else { return Ok(EXIT_USAGE) };
        spec.experiment.output_dir
    };
    if !root.join("runs").is_dir() {
        eprintln!("error: {}: no stored runs (run the grid first)", root.display());
        return Ok(EXIT_USAGE);
    }
    let files = crate::report::write_report(&Store::new(&root))?;
    println!("{}", files.markdown.display());
    for w in &files.inputs.warnings {
        eprintln!("warning: {w}");
    }
    Ok(0)
}
