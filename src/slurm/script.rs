//! The sbatch scripts: one per job array, whose task `t` runs
//! `nergrid run SPEC --index INDICES[t] --expect-id IDS[t]` on the device SLURM gave it, and
//! the report job. Paths are absolute and the script `cd`s into the submission directory, so a
//! task depends neither on the job's working directory nor on PATH.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use super::arrays::ArrayPlan;
use super::options::SlurmOptions;
use super::SlurmError;

/// Where the scripts point: all paths absolute.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScriptContext {
    pub experiment: String,
    /// The `nergrid` executable the tasks run.
    pub exe: PathBuf,
    pub spec: PathBuf,
    /// The submission directory, against which the spec's relative paths resolve.
    pub workdir: PathBuf,
    /// Where SLURM writes the jobs' output (`results/<experiment>/slurm`).
    pub log_dir: PathBuf,
    /// Tasks retry failed runs (`--only-pending` submissions exist to retry them).
    pub rerun_failed: bool,
}

/// Index values per line of the script's `INDICES` array.
const INDICES_PER_LINE: usize = 20;

/// The script of array `number` (1-based) of `count`.
pub fn render_array(
    ctx: &ScriptContext,
    opts: &SlurmOptions,
    array: &ArrayPlan,
    number: usize,
    count: usize,
) -> Result<String, SlurmError> {
    let mut s = String::from("#!/bin/bash\n");
    sbatch(&mut s, "job-name", &format!("nergrid-{}", ctx.experiment));
    sbatch(&mut s, "array", &array_range(array.runs.len(), opts.max_parallel));
    sbatch(&mut s, "output", &output_pattern(&ctx.log_dir, "%A_%a.out")?);
    resources(&mut s, opts, true);
    s += &array_header(ctx, array, number, count)?;
    s += &task_table(array);
    s += &task_body(ctx)?;
    Ok(s)
}

/// The report job's script; it is submitted with `--dependency=afterany:<array job ids>`.
pub fn render_report(ctx: &ScriptContext, opts: &SlurmOptions) -> Result<String, SlurmError> {
    let mut s = String::from("#!/bin/bash\n");
    sbatch(&mut s, "job-name", &format!("nergrid-{}-report", ctx.experiment));
    sbatch(&mut s, "output", &output_pattern(&ctx.log_dir, "report_%j.out")?);
    let report_opts = SlurmOptions { cpus_per_run: Some(1), mem: None, ..opts.clone() };
    resources(&mut s, &report_opts, false);
    let _ = write!(
        s,
        "#\n# nergrid {version}: the report of experiment \"{exp}\" from {spec}.\n\
         # Submitted with --dependency=afterany:<array job ids>: it runs once every array task has\n\
         # ended, whether its run succeeded or not, and reads only the stored results.\n\
         set -euo pipefail\n\ncd {workdir}\nexec {exe} report {spec_q}\n",
        version = env!("CARGO_PKG_VERSION"),
        exp = ctx.experiment,
        spec = text(&ctx.spec)?,
        workdir = quoted_path(&ctx.workdir)?,
        exe = quoted_path(&ctx.exe)?,
        spec_q = quoted_path(&ctx.spec)?,
    );
    Ok(s)
}

fn sbatch(s: &mut String, key: &str, value: &str) {
    let _ = writeln!(s, "#SBATCH --{key}={value}");
}

/// `0-(N-1)`, with `%K` when at most K tasks may run at once.
fn array_range(tasks: usize, max_parallel: Option<usize>) -> String {
    let range = format!("0-{}", tasks.saturating_sub(1));
    match max_parallel {
        Some(k) => format!("{range}%{k}"),
        None => range,
    }
}

/// The resource lines; `gres` is false for the report job, which needs no GPU.
fn resources(s: &mut String, opts: &SlurmOptions, gres: bool) {
    let lines = [
        ("partition", opts.partition.clone()),
        ("account", opts.account.clone()),
        ("gres", (gres && opts.gpus_per_run > 0).then(|| format!("gpu:{}", opts.gpus_per_run))),
        ("cpus-per-task", opts.cpus_per_run.map(|c| c.to_string())),
        ("mem", opts.mem.clone()),
        ("time", opts.time.clone()),
    ];
    for (key, value) in lines {
        if let Some(v) = value {
            sbatch(s, key, &v);
        }
    }
}

fn array_header(ctx: &ScriptContext, array: &ArrayPlan, number: usize, count: usize) -> Result<String, SlurmError> {
    let first = array.offset + 1;
    let last = array.offset + array.runs.len();
    Ok(format!(
        "#\n# nergrid {version}: experiment \"{exp}\", array {number} of {count}: submitted runs {first}-{last}\n\
         # (offset {offset}) of {spec}.\n\
         # Task t runs plan index INDICES[t]; `--expect-id IDS[t]` makes it fail if the spec no\n\
         # longer gives that index that id. Done runs are skipped and locks make each run execute\n\
         # once, so resubmitting is safe.\n\
         set -euo pipefail\n\n",
        version = env!("CARGO_PKG_VERSION"),
        exp = ctx.experiment,
        offset = array.offset,
        spec = text(&ctx.spec)?,
    ))
}

/// The `INDICES` and `IDS` bash arrays mapping task ids to runs.
fn task_table(array: &ArrayPlan) -> String {
    let mut s = String::from("INDICES=(\n");
    for line in array.runs.chunks(INDICES_PER_LINE) {
        let values: Vec<String> = line.iter().map(|r| r.index.to_string()).collect();
        let _ = writeln!(s, "  {}", values.join(" "));
    }
    s += ")\nIDS=(\n";
    for run in &array.runs {
        let _ = writeln!(s, "  {}", shell_quote(&run.id));
    }
    s += ")\n\n";
    s
}

fn task_body(ctx: &ScriptContext) -> Result<String, SlurmError> {
    let rerun = if ctx.rerun_failed { " --rerun-failed" } else { "" };
    Ok(format!(
        r#"task=${{SLURM_ARRAY_TASK_ID:?this script runs as a task of a SLURM job array}}
if (( task >= ${{#INDICES[@]}} )); then
  echo "nergrid slurm: array task $task is out of range (this array has ${{#INDICES[@]}} tasks)" >&2
  exit 2
fi
echo "nergrid slurm: task $task of array job ${{SLURM_ARRAY_JOB_ID:-?}} runs plan index ${{INDICES[task]}} (${{IDS[task]}}) on ${{SLURMD_NODENAME:-?}} with CUDA_VISIBLE_DEVICES=${{CUDA_VISIBLE_DEVICES-<unset>}}" >&2
# `--devices auto` trains on the GPU SLURM gave this task. A CPU worker gets an empty
# CUDA_VISIBLE_DEVICES from the scheduler, so keep SLURM's value for result.json.
export NERGRID_SLURM_CUDA_VISIBLE_DEVICES="${{CUDA_VISIBLE_DEVICES-}}"
cd {workdir}
exec {exe} run {spec} --index "${{INDICES[task]}}" --expect-id "${{IDS[task]}}" --devices auto{rerun}
"#,
        workdir = quoted_path(&ctx.workdir)?,
        exe = quoted_path(&ctx.exe)?,
        spec = quoted_path(&ctx.spec)?,
    ))
}

/// An `--output` value: `dir/pattern` with `%` in the directory doubled (SLURM's escape), in
/// double quotes when it holds whitespace (sbatch strips them).
fn output_pattern(dir: &Path, pattern: &str) -> Result<String, SlurmError> {
    let dir = text(dir)?;
    if dir.contains('"') {
        return Err(SlurmError::Path { path: dir.into(), why: "cannot hold a '\"' in an #SBATCH line" });
    }
    let value = format!("{}/{pattern}", dir.trim_end_matches('/').replace('%', "%%"));
    Ok(if value.chars().any(char::is_whitespace) { format!("\"{value}\"") } else { value })
}

/// A path as text: absolute, UTF-8, without control characters.
fn text(path: &Path) -> Result<&str, SlurmError> {
    let err = |why| SlurmError::Path { path: path.to_path_buf(), why };
    let s = path.to_str().ok_or_else(|| err("is not valid UTF-8"))?;
    if s.chars().any(char::is_control) {
        return Err(err("holds control characters"));
    }
    if !path.is_absolute() {
        return Err(err("must be absolute in a job script"));
    }
    Ok(s)
}

fn quoted_path(path: &Path) -> Result<String, SlurmError> {
    text(path).map(shell_quote)
}

/// `s` as one bash word: single-quoted, with each `'` written as `'\''`.
fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

#[cfg(test)]
mod tests;
