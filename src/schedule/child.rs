//! Starting one worker process: `nergrid worker` with its run, device and attempt; its reports
//! come back on a pipe (fd 3 in the child), its stdout and stderr go to the run's `log.txt`.
//!
//! The child gets its own process group (a terminal's Ctrl-C reaches only the scheduler, which
//! decides what happens to running runs) and `PR_SET_PDEATHSIG = SIGKILL` (a scheduler killed
//! with SIGKILL takes its workers with it, so no orphan keeps a run locked). The death signal
//! follows the thread that spawned the child, so workers must be spawned from the thread that
//! runs the whole sweep.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc::Sender;

use super::devices::DeviceSlot;
use super::failure::WorkerEnd;
use super::protocol::{WorkerReport, REPORT_FD, REPORT_FD_ENV};
use crate::plan::RunSpec;

/// Which trainer the workers use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrainerChoice {
    DryRun,
    Real,
}

/// How to start workers: the `nergrid` executable and the spec they load.
#[derive(Debug, Clone, PartialEq)]
pub struct WorkerLaunch {
    /// The executable of CPU workers (the scheduler's own).
    pub exe: PathBuf,
    /// The executable of GPU workers: the scheduler's own when it was built with CUDA, else the
    /// `nergrid-cuda` worker beside it (see `devices::cuda_worker_exe`).
    pub cuda_exe: PathBuf,
    pub spec: PathBuf,
    pub trainer: TrainerChoice,
}

/// One attempt of one run, as a worker is told it.
#[derive(Debug, Clone)]
pub struct WorkerOrder<'a> {
    pub run: &'a RunSpec,
    pub device: &'a DeviceSlot,
    pub attempt: u32,
    pub grad_accum: usize,
    /// Fingerprint of the run's result when the scheduler decided to run it.
    pub expect: &'a str,
    pub threads: usize,
}

/// What the reader thread of a worker passes to the scheduler.
#[derive(Debug, Clone, PartialEq)]
pub enum ChildMessage {
    Report(WorkerReport),
    /// A line that is not a report.
    Garbled(String),
    /// The worker ended (its pipe closed and it was reaped).
    Exited(WorkerEnd),
}

/// Starts a worker; its messages arrive on `tx` tagged with `token`. Returns its pid.
pub fn spawn_worker(
    launch: &WorkerLaunch,
    order: &WorkerOrder<'_>,
    log_path: &Path,
    token: u64,
    tx: Sender<(u64, ChildMessage)>,
) -> std::io::Result<u32> {
    let (read_end, write_end) = pipe()?;
    let mut cmd = worker_command(launch, order, log_path)?;
    let (fd, parent) = (write_end.as_raw_fd(), std::process::id() as libc::pid_t);
    // SAFETY: the closure only makes async-signal-safe system calls.
    unsafe { cmd.pre_exec(move || prepare_child(fd, parent)) };
    let mut child = cmd.spawn()?;
    drop(write_end);
    let pid = child.id();
    std::thread::spawn(move || {
        for line in BufReader::new(read_end).split(b'\n') {
            let Ok(line) = line else { break };
            let text = String::from_utf8_lossy(&line).into_owned();
            let msg = WorkerReport::parse(&text).map_or(ChildMessage::Garbled(text), ChildMessage::Report);
            let _ = tx.send((token, msg));
        }
        let end = child.wait().map(WorkerEnd::from_status).unwrap_or(WorkerEnd::Exited(-1));
        let _ = tx.send((token, ChildMessage::Exited(end)));
    });
    Ok(pid)
}

fn worker_command(launch: &WorkerLaunch, order: &WorkerOrder<'_>, log_path: &Path) -> std::io::Result<Command> {
    if let Some(dir) = log_path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let log = OpenOptions::new().create(true).append(true).open(log_path)?;
    let exe = match order.device {
        DeviceSlot::Cpu => &launch.exe,
        DeviceSlot::Cuda { .. } => &launch.cuda_exe,
    };
    let mut cmd = Command::new(exe);
    cmd.arg("worker").arg(&launch.spec);
    cmd.args(["--index", &order.run.index.to_string(), "--id", &order.run.id, "--device", &order.device.label()]);
    cmd.args(["--attempt", &order.attempt.to_string(), "--grad-accum", &order.grad_accum.to_string()]);
    cmd.args(["--expect", order.expect]);
    if launch.trainer == TrainerChoice::DryRun {
        cmd.arg("--dry-run");
    }
    cmd.env(REPORT_FD_ENV, REPORT_FD.to_string())
        .env("CUDA_VISIBLE_DEVICES", order.device.cuda_visible_devices())
        .env("RAYON_NUM_THREADS", order.threads.to_string())
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .process_group(0);
    Ok(cmd)
}

/// A pipe whose ends are closed on exec (so other workers never inherit them).
fn pipe() -> std::io::Result<(File, OwnedFd)> {
    let mut fds = [0 as RawFd; 2];
    // SAFETY: fds has room for the two descriptors pipe2 writes.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: both descriptors were just created and are owned here.
    Ok(unsafe { (File::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// In the child between fork and exec: die with the scheduler, and put the report pipe on fd 3.
fn prepare_child(write_fd: RawFd, parent: libc::pid_t) -> std::io::Result<()> {
    // SAFETY: prctl, getppid, fcntl, dup2 and _exit are async-signal-safe.
    unsafe {
        if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong) != 0 {
            return Err(std::io::Error::last_os_error());
        }
        // The scheduler died before the death signal was armed.
        if libc::getppid() != parent {
            libc::_exit(1);
        }
        let rc = if write_fd == REPORT_FD {
            libc::fcntl(write_fd, libc::F_SETFD, 0)
        } else {
            libc::dup2(write_fd, REPORT_FD)
        };
        if rc < 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

/// Sends `sig` to a worker's process group.
pub fn signal_worker(pid: u32, sig: libc::c_int) {
    if let Ok(pid) = i32::try_from(pid) {
        // SAFETY: signalling a process group we created; a stale id only fails with ESRCH.
        unsafe { libc::kill(-pid, sig) };
    }
}
