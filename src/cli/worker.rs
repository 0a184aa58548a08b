//! `nergrid worker` (hidden): runs one attempt of one run for the `run` scheduler, which starts
//! it with the run, its device and attempt, and reads its reports on the fd named by
//! `NERGRID_REPORT_FD` (stdout when unset, for running a worker by hand).

use std::fs::File;
use std::io::Write;
use std::os::fd::FromRawFd;
use std::path::PathBuf;

use clap::Args;

use super::EXIT_FAILED;
use crate::schedule::{
    run_worker, DryRunTrainer, LockConfig, Trainer, WorkerReport, WorkerTask, EXIT_LOST_LOCK, REPORT_FD_ENV,
};
use crate::spec;

#[derive(Args, Debug)]
pub struct WorkerArgs {
    /// The grid spec (TOML).
    spec: PathBuf,
    /// The run's plan index.
    #[arg(long)]
    index: usize,
    /// The run's id (checked against the plan).
    #[arg(long)]
    id: String,
    /// The device as the scheduler names it (`cpu`, `cuda:N`); a GPU worker sees only its own.
    #[arg(long, default_value = "cpu")]
    device: String,
    #[arg(long, default_value_t = 1)]
    attempt: u32,
    #[arg(long, default_value_t = 1)]
    grad_accum: usize,
    /// Fingerprint of the result the scheduler saw ("absent": none).
    #[arg(long, default_value = "absent")]
    expect: String,
    /// Use the dry-run trainer.
    #[arg(long)]
    dry_run: bool,
}

pub fn run(args: WorkerArgs) -> anyhow::Result<i32> {
    let mut sink = report_sink();
    let mut report = |r: &WorkerReport| {
        let _ = sink.write_all(r.to_line().as_bytes()).and_then(|_| sink.flush());
    };
    match work(&args, &mut report) {
        Ok(()) => Ok(0),
        Err(e) => {
            eprintln!("error: {e:#}");
            report(&WorkerReport::Error { message: format!("{e:#}") });
            Ok(EXIT_FAILED)
        }
    }
}

fn work(args: &WorkerArgs, report: &mut dyn FnMut(&WorkerReport)) -> anyhow::Result<()> {
    let spec = spec::load(&args.spec).map_err(|e| match e {
        spec::SpecLoadError::Invalid(errors) => anyhow::anyhow!("{}: invalid spec:\n{errors}", args.spec.display()),
        other => anyhow::Error::new(other),
    })?;
    let trainer = trainer(args.dry_run)?;
    let task = WorkerTask {
        index: args.index,
        id: args.id.clone(),
        device: args.device.clone(),
        attempt: args.attempt,
        grad_accum: args.grad_accum,
        expect: args.expect.clone(),
    };
    run_worker(&spec, &task, trainer.as_ref(), &LockConfig::from_env(), Box::new(lost_lock), report)?;
    Ok(())
}

/// The test trainer when `NERGRID_TEST_TRAINER` is set (only in builds with the `test-trainer`
/// feature, which the tests enable), else the chosen one.
fn trainer(dry_run: bool) -> anyhow::Result<Box<dyn Trainer>> {
    #[cfg(feature = "test-trainer")]
    if let Some(test) = crate::schedule::TestTrainer::from_env() {
        return Ok(Box::new(test?));
    }
    if dry_run {
        return Ok(Box::new(DryRunTrainer::from_env()));
    }
    Ok(Box::new(crate::runner::CandleTrainer))
}

fn lost_lock() {
    eprintln!("error: this run's lock was taken over by another process; stopping without a result");
    std::process::exit(EXIT_LOST_LOCK);
}

fn report_sink() -> Box<dyn Write> {
    match std::env::var(REPORT_FD_ENV).ok().and_then(|v| v.parse::<i32>().ok()) {
        // SAFETY: the scheduler opened this fd for us and nothing else in the process uses it.
        Some(fd) if fd > 2 => Box::new(unsafe { File::from_raw_fd(fd) }),
        _ => Box::new(std::io::stdout()),
    }
}
