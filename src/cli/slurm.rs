//! `nergrid slurm`: prints, or submits, the grid as SLURM job arrays (one task per run) and
//! an optional report job that runs after them.

use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::Args;

use super::grid::load_spec;
use super::EXIT_USAGE;
use crate::plan::expand;
use crate::slurm::{
    cluster_max_array_size, effective_max_array_size, render_array, render_report, runs_to_submit, sbatch,
    split_arrays, ArrayPlan, ScriptContext, SlurmOptionFlags, SlurmOptions,
};
use crate::store::{RunState, Store};

#[derive(Args, Debug)]
pub struct SlurmArgs {
    /// The grid spec (TOML).
    spec: PathBuf,
    /// Partition (`#SBATCH --partition`). Overrides `[slurm] partition`, like every flag below.
    #[arg(long, value_name = "P")]
    partition: Option<String>,
    /// Account to charge (`--account`).
    #[arg(long, value_name = "A")]
    account: Option<String>,
    /// GPUs per run (`--gres=gpu:G`; 0: none). Default 1.
    #[arg(long, value_name = "G")]
    gpus_per_run: Option<u32>,
    /// CPUs per run (`--cpus-per-task`).
    #[arg(long, value_name = "C", value_parser = clap::value_parser!(u32).range(1..))]
    cpus_per_run: Option<u32>,
    /// Memory per run (`--mem`, e.g. 32G).
    #[arg(long, value_name = "M")]
    mem: Option<String>,
    /// Time limit per run (`--time`, e.g. 04:00:00).
    #[arg(long, value_name = "T")]
    time: Option<String>,
    /// Array tasks running at once (`--array=...%K`).
    #[arg(long, value_name = "K", value_parser = clap::value_parser!(u64).range(1..))]
    max_parallel: Option<u64>,
    /// Largest array (used when `scontrol show config` gives no MaxArraySize; the smaller wins).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    max_array_size: Option<u64>,
    /// Submit tasks only for runs that are not done (failed ones are retried).
    #[arg(long)]
    only_pending: bool,
    /// Submit with sbatch and print the job ids (default: print the scripts).
    #[arg(long)]
    submit: bool,
    /// Add a job that runs `nergrid report` once every array task has ended.
    #[arg(long)]
    report: bool,
}

impl SlurmArgs {
    fn flags(&self) -> SlurmOptionFlags {
        SlurmOptionFlags {
            partition: self.partition.clone(),
            account: self.account.clone(),
            gpus_per_run: self.gpus_per_run,
            cpus_per_run: self.cpus_per_run,
            mem: self.mem.clone(),
            time: self.time.clone(),
            max_parallel: self.max_parallel.map(|k| k as usize),
            max_array_size: self.max_array_size.map(|n| n as usize),
        }
    }
}

/// The scripts of one submission.
struct Scripts {
    arrays: Vec<(ArrayPlan, String)>,
    report: Option<String>,
}

pub fn run(args: SlurmArgs) -> anyhow::Result<i32> {
    let Some(spec) = load_spec(&args.spec) else { return Ok(EXIT_USAGE) };
    let opts = SlurmOptions::from_spec(&spec.slurm).overridden_by(args.flags());
    if let Err(e) = opts.check() {
        eprintln!("error: {e}");
        return Ok(EXIT_USAGE);
    }
    let plan = expand(&spec);
    let store = Store::new(&spec.experiment.output_dir);
    let runs = runs_to_submit(&plan, |id| matches!(store.state(id), RunState::Done(_)), args.only_pending);
    if runs.is_empty() {
        eprintln!("nothing to submit: all {} runs of {} are done", plan.runs.len(), args.spec.display());
        return Ok(0);
    }
    let max_array_size = effective_max_array_size(cluster_max_array_size(), opts.max_array_size)?;
    let selected = runs.len();
    let arrays = split_arrays(runs, max_array_size);
    let ctx = script_context(&spec.experiment.name, &args, &store)?;
    let scripts = render(&ctx, &opts, arrays, args.report)?;
    eprintln!(
        "{selected} of {} runs in {} array(s) of at most {max_array_size} tasks; job output in {}",
        plan.runs.len(),
        scripts.arrays.len(),
        ctx.log_dir.display()
    );
    if args.submit {
        submit(&scripts)?;
    } else {
        print_scripts(&scripts);
    }
    Ok(0)
}

/// Absolute paths for the scripts; creates the job output directory (SLURM does not).
fn script_context(experiment: &str, args: &SlurmArgs, store: &Store) -> anyhow::Result<ScriptContext> {
    let log_dir = store.slurm_dir();
    std::fs::create_dir_all(&log_dir).with_context(|| format!("{}: cannot create it", log_dir.display()))?;
    Ok(ScriptContext {
        experiment: experiment.to_string(),
        exe: std::env::current_exe().context("locating the nergrid executable for the job scripts")?,
        spec: absolute(&args.spec)?,
        workdir: std::env::current_dir().context("reading the current directory")?,
        log_dir: absolute(&log_dir)?,
        rerun_failed: args.only_pending,
    })
}

fn absolute(path: &Path) -> anyhow::Result<PathBuf> {
    path.canonicalize().with_context(|| format!("{}: cannot resolve its absolute path", path.display()))
}

fn render(ctx: &ScriptContext, opts: &SlurmOptions, arrays: Vec<ArrayPlan>, report: bool) -> anyhow::Result<Scripts> {
    let count = arrays.len();
    let mut rendered = Vec::with_capacity(count);
    for (k, array) in arrays.into_iter().enumerate() {
        let script = render_array(ctx, opts, &array, k + 1, count)?;
        rendered.push((array, script));
    }
    let report = if report { Some(render_report(ctx, opts)?) } else { None };
    Ok(Scripts { arrays: rendered, report })
}

fn print_scripts(scripts: &Scripts) {
    for (_, script) in &scripts.arrays {
        println!("{script}");
    }
    if let Some(report) = &scripts.report {
        println!("# submitted with: sbatch --dependency=afterany:<the array job ids above>\n{report}");
    }
}

/// Submits the arrays, then the report job after them; prints `array JOBID` and `report JOBID`.
fn submit(scripts: &Scripts) -> anyhow::Result<()> {
    let mut ids: Vec<String> = Vec::new();
    for (array, script) in &scripts.arrays {
        let id = sbatch(script, &[]).with_context(|| submitted_so_far(&ids))?;
        let (first, last) = (array.offset + 1, array.offset + array.runs.len());
        eprintln!("array job {id}: {} task(s), submitted runs {first}-{last}", array.runs.len());
        println!("array {id}");
        ids.push(id);
    }
    if let Some(report) = &scripts.report {
        let id = sbatch(report, &ids).with_context(|| submitted_so_far(&ids))?;
        eprintln!("report job {id}: runs `nergrid report` after job(s) {}", ids.join(", "));
        println!("report {id}");
    }
    Ok(())
}

fn submitted_so_far(ids: &[String]) -> String {
    if ids.is_empty() {
        "submitting the job array".to_string()
    } else {
        format!("submitting the next job (already submitted: {}; `scancel` them if needed)", ids.join(", "))
    }
}
