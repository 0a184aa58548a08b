//! Drives `nergrid run` with worker processes and the test-only trainer (NERGRID_TEST_TRAINER):
//! two schedulers on one results directory, a scheduler killed with SIGKILL, failing runs and
//! retries, out-of-memory halving, fake GPUs, timeouts, interrupts and locks held elsewhere.
//! Executions are counted from the test trainer's log, not from files.

mod common;
use common::walk;

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::PathBuf;
use std::process::{Child, Command as StdCommand, Output, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};

const SEEDS_40: &str = "seeds = [1, 2]\nlearning_rates = [1e-5, 2e-5, 5e-5, 1e-4, 2e-4]\nmodels = [\"a\", \"b\"]";

/// A test directory with a spec, a test trainer script and its execution log.
struct Sweep {
    dir: tempfile::TempDir,
}

impl Sweep {
    /// `grid` holds the `models`, `learning_rates` and `seeds` lines; schemes are BIO and BIOES.
    fn new(grid: &str, schedule: &str, script: Value) -> Self {
        let sweep = Sweep { dir: tempfile::tempdir().unwrap() };
        let spec = format!(
            "[experiment]\nname = \"sched\"\noutput_dir = \"{out}\"\n\n[models.a]\nhub = \"org/model-a\"\n\
             [models.b]\nhub = \"org/model-b\"\n\n[datasets.toy]\nformat = \"jsonl\"\npath = \"toy.jsonl\"\n\n\
             [grid]\n{grid}\nschemes = [\"BIO\", \"BIOES\"]\ndatasets = [\"toy\"]\n\n[train]\nepochs = 1\n\
             batch_size = 16\n\n[schedule]\n{schedule}\n",
            out = sweep.results().display()
        );
        fs::write(sweep.spec(), spec).unwrap();
        sweep.script(script);
        sweep
    }

    fn spec(&self) -> PathBuf {
        self.dir.path().join("grid.toml")
    }

    fn results(&self) -> PathBuf {
        self.dir.path().join("results")
    }

    fn exec_log(&self) -> PathBuf {
        self.dir.path().join("exec.log")
    }

    /// Writes the test trainer's script: `{"default": ..., "runs": ...}` plus the log path.
    fn script(&self, mut script: Value) {
        script["log"] = json!(self.exec_log());
        fs::write(self.dir.path().join("script.json"), script.to_string()).unwrap();
    }

    fn command(&self, args: &[&str]) -> StdCommand {
        let mut cmd = StdCommand::new(assert_cmd::cargo::cargo_bin("nergrid"));
        cmd.args(["run", "--dry-run"]).arg(self.spec()).args(args);
        cmd.env("NERGRID_TEST_TRAINER", self.dir.path().join("script.json"));
        cmd.env_remove("NERGRID_FAKE_CUDA_DEVICES").env_remove("CUDA_VISIBLE_DEVICES").env_remove("NO_COLOR");
        cmd.env_remove("NERGRID_CUDA_WORKER");
        cmd
    }

    fn spawn(&self, args: &[&str]) -> Child {
        self.command(args).stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap()
    }

    fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().unwrap()
    }

    /// The test trainer's log lines with `event` ("start" or "end").
    fn executions(&self, event: &str) -> Vec<Value> {
        let text = fs::read_to_string(self.exec_log()).unwrap_or_default();
        text.lines().map(|l| serde_json::from_str::<Value>(l).unwrap()).filter(|v| v["event"] == event).collect()
    }

    /// How many times each run id logged `event`.
    fn counts(&self, event: &str) -> BTreeMap<String, usize> {
        let mut counts = BTreeMap::new();
        for v in self.executions(event) {
            *counts.entry(v["id"].as_str().unwrap().to_string()).or_insert(0) += 1;
        }
        counts
    }

    /// Parsed `result.json` files by run id; panics on a partial or corrupt one.
    fn result_files(&self) -> BTreeMap<String, Value> {
        let mut out = BTreeMap::new();
        for entry in fs::read_dir(self.results().join("runs")).into_iter().flatten().flatten() {
            let path = entry.path().join("result.json");
            if let Ok(bytes) = fs::read(&path) {
                let v: Value = serde_json::from_slice(&bytes).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
                out.insert(v["id"].as_str().unwrap().to_string(), v);
            }
        }
        out
    }

    /// Run ids in plan order.
    fn plan_ids(&self) -> Vec<String> {
        let out = assert_cmd::Command::cargo_bin("nergrid")
            .unwrap()
            .args(["plan", "--format", "json"])
            .arg(self.spec())
            .output()
            .unwrap();
        let rows: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
        rows.iter().map(|r| r["id"].as_str().unwrap().to_string()).collect()
    }

    fn lock_of(&self, id: &str) -> PathBuf {
        self.results().join("runs").join(id).join("lock.json")
    }

    fn files_named(&self, pred: impl Fn(&str) -> bool) -> Vec<PathBuf> {
        walk(&self.results()).into_iter().filter(|p| pred(&p.file_name().unwrap().to_string_lossy())).collect()
    }
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// The number after `label` in the summary line (`executed 12,`).
fn number_after(text: &str, label: &str) -> usize {
    let at = text.rfind(label).unwrap_or_else(|| panic!("no \"{label}\" in {text}")) + label.len();
    text[at..].chars().take_while(char::is_ascii_digit).collect::<String>().parse().unwrap()
}

fn wait_until(what: &str, limit: Duration, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < limit, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn signal(child: &Child, sig: i32) {
    // SAFETY: signalling a child process this test started.
    assert_eq!(unsafe { libc::kill(child.id() as i32, sig) }, 0);
}

/// Whether a process runs (a zombie, killed but not yet reaped, does not).
fn pid_alive(pid: u64) -> bool {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let state = stat.rsplit_once(')').and_then(|(_, rest)| rest.trim_start().chars().next());
    state.is_some_and(|c| c != 'Z' && c != 'X')
}

#[test]
fn two_schedulers_on_one_directory_run_every_run_once() {
    let sweep = Sweep::new(SEEDS_40, "runs_per_device = 2", json!({"default": {"sleep_ms": 40}}));
    let children = [sweep.spawn(&[]), sweep.spawn(&[])];
    let outputs: Vec<Output> = children.into_iter().map(|c| c.wait_with_output().unwrap()).collect();
    let texts: Vec<String> = outputs.iter().map(stderr).collect();
    for (out, text) in outputs.iter().zip(&texts) {
        assert!(out.status.success(), "{text}");
    }
    let starts = sweep.counts("start");
    assert_eq!(starts.len(), 40, "{starts:?}");
    assert!(starts.values().all(|&n| n == 1), "a run executed twice: {starts:?}");
    let results = sweep.result_files();
    assert_eq!(results.len(), 40);
    assert!(results.values().all(|r| r["status"] == "done"));
    // Each scheduler accounts for all 40: its own executions, runs the other one had finished
    // when it started (a scheduler started late skips them), and runs the other one finished.
    let executed: Vec<usize> = texts.iter().map(|t| number_after(t, "executed ")).collect();
    assert_eq!(executed.iter().sum::<usize>(), 40, "{texts:?}");
    for (text, mine) in texts.iter().zip(&executed) {
        let skipped = number_after(text, "skipped ");
        let elsewhere = if mine + skipped == 40 { 0 } else { number_after(text, "finished by other processes: ") };
        assert_eq!(mine + skipped + elsewhere, 40, "{text}");
    }
    assert!(sweep.files_named(|n| n.starts_with("lock.json") || n.starts_with(".lock")).is_empty());
}

#[test]
fn scheduler_killed_with_sigkill_resumes_without_repeats() {
    let grid = "models = [\"a\"]\nlearning_rates = [1e-5, 2e-5, 5e-5]\nseeds = [1, 2, 3, 4]";
    let sweep = Sweep::new(grid, "", json!({"default": {"sleep_ms": 120}}));
    let mut child = sweep.spawn(&[]);
    // Kill it while a run is in flight: 5 done and a 6th started.
    wait_until("5 results and a run in flight", Duration::from_secs(30), || {
        let done = sweep.result_files().len();
        done >= 5 && sweep.executions("start").len() > done
    });
    child.kill().unwrap();
    child.wait().unwrap();
    std::thread::sleep(Duration::from_millis(50));
    // The worker in flight died with its scheduler (PR_SET_PDEATHSIG): its lock is stale.
    let locks = sweep.files_named(|n| n == "lock.json");
    assert_eq!(locks.len(), 1, "{locks:?}");
    let info: Value = serde_json::from_slice(&fs::read(&locks[0]).unwrap()).unwrap();
    assert!(!pid_alive(info["pid"].as_u64().unwrap()), "an orphan worker holds {}", locks[0].display());
    let before = sweep.result_files();
    assert!((5..24).contains(&before.len()), "{} done before the kill", before.len());

    let out = sweep.run(&[]);
    let text = stderr(&out);
    assert!(out.status.success(), "{text}");
    assert_eq!(number_after(&text, "executed "), 24 - before.len(), "{text}");
    let after = sweep.result_files();
    assert_eq!(after.len(), 24);
    assert!(after.values().all(|r| r["status"] == "done"));
    for (id, r) in &before {
        assert_eq!(&after[id], r, "{id} was run again");
    }
    let ends = sweep.counts("end");
    assert_eq!(ends.len(), 24);
    assert!(ends.values().all(|&n| n == 1), "{ends:?}");
    let restarted = sweep.counts("start").values().filter(|&&n| n > 1).count();
    assert_eq!(restarted, 1, "only the run in flight at the kill starts twice");
    assert!(sweep.files_named(|n| n.contains(".tmp.") || n.starts_with("lock.json")).is_empty());
}

#[test]
fn panics_nan_and_killed_workers_are_recorded_and_rerun_on_request() {
    let grid = "models = [\"a\"]\nlearning_rates = [1e-5, 2e-5]\nseeds = [1, 2]";
    let script = json!({
        "default": {"sleep_ms": 10},
        "runs": {"1": {"panic": "boom"}, "3": {"non_finite_loss": true}, "5": {"kill_self": true}}
    });
    let sweep = Sweep::new(grid, "retries = 1\nruns_per_device = 2", script);
    let ids = sweep.plan_ids();
    let out = sweep.run(&[]);
    let text = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    let results = sweep.result_files();
    let starts = sweep.counts("start");
    for (i, id) in ids.iter().enumerate() {
        let r = &results[id];
        let (status, kind, attempts) = match i {
            1 => ("failed", "panic", 2),
            3 => ("failed", "non_finite_loss", 1),
            5 => ("failed", "killed", 2),
            _ => ("done", "", 1),
        };
        assert_eq!(r["status"], status, "run {i}: {r}");
        assert_eq!(r["details"]["failure_kind"].as_str().unwrap_or(""), kind, "run {i}");
        assert_eq!(starts[id], attempts, "run {i} executions");
        assert_eq!(r["attempt"], attempts, "run {i}");
    }
    let error = |i: usize| results[&ids[i]]["error"][0].as_str().unwrap().to_string();
    assert!(error(1).contains("panicked: boom"), "{}", error(1));
    assert!(error(3).contains("NaN"), "{}", error(3));
    assert!(error(5).contains("signal 9"), "{}", error(5));
    let log = fs::read_to_string(sweep.results().join("runs").join(&ids[1]).join("log.txt")).unwrap();
    assert!(log.contains("boom"), "the worker's stderr is in log.txt: {log}");
    assert!(text.contains("FAILED (non_finite_loss)"), "{text}");
    assert!(text.contains("retry ") && text.contains("after panic"), "{text}");

    // Failed runs stay failed until asked; then only they run.
    assert_eq!(sweep.run(&[]).status.code(), Some(1));
    assert_eq!(sweep.counts("start").values().sum::<usize>(), 10);
    sweep.script(json!({"default": {"sleep_ms": 10}}));
    let out = sweep.run(&["--rerun-failed"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let again = sweep.counts("start");
    for (i, id) in ids.iter().enumerate() {
        let extra = usize::from([1, 3, 5].contains(&i));
        assert_eq!(again[id], starts[id] + extra, "run {i}");
    }
    assert!(sweep.result_files().values().all(|r| r["status"] == "done"));
}

#[test]
fn out_of_memory_halves_the_micro_batch_and_doubles_accumulation() {
    let grid = "models = [\"a\"]\nlearning_rates = [1e-5]\nseeds = [1]";
    let script = json!({"runs": {"0": {"oom_above_micro_batch": 4}, "1": {"oom_above_micro_batch": 0}}});
    let sweep = Sweep::new(grid, "retries = 0", script);
    let ids = sweep.plan_ids();
    let out = sweep.run(&[]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let results = sweep.result_files();
    let fixed = &results[&ids[0]];
    assert_eq!(fixed["status"], "done");
    assert_eq!(fixed["attempt"], 3);
    assert_eq!(fixed["details"]["micro_batch"], 4);
    assert_eq!(fixed["details"]["grad_accum"], 4);
    assert_eq!(fixed["params"]["batch_size"], 16, "the recipe's batch is unchanged");
    let tries = |id: &str| -> Vec<(u64, u64)> {
        sweep
            .executions("start")
            .iter()
            .filter(|v| v["id"] == id)
            .map(|v| (v["micro_batch"].as_u64().unwrap(), v["grad_accum"].as_u64().unwrap()))
            .collect()
    };
    assert_eq!(tries(&ids[0]), [(16, 1), (8, 2), (4, 4)]);
    let hopeless = &results[&ids[1]];
    assert_eq!(hopeless["status"], "failed");
    assert_eq!(hopeless["details"]["failure_kind"], "oom");
    assert_eq!(hopeless["details"]["micro_batch"], 1);
    assert_eq!(tries(&ids[1]), [(16, 1), (8, 2), (4, 4), (2, 8), (1, 16)]);
}

#[test]
fn fake_gpus_get_two_runs_each_and_see_only_their_device() {
    let grid = "models = [\"a\", \"b\"]\nlearning_rates = [1e-5, 2e-5]\nseeds = [1, 2]";
    let sweep = Sweep::new(grid, "runs_per_device = 2", json!({"default": {"sleep_ms": 500}}));
    let out = sweep
        .command(&[])
        .env("NERGRID_FAKE_CUDA_DEVICES", "8")
        .env("CUDA_VISIBLE_DEVICES", "7,5,3,1")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let visible = ["7", "5", "3", "1"];
    let results = sweep.result_files();
    let starts = sweep.executions("start");
    let ends: BTreeMap<String, u64> = sweep
        .executions("end")
        .iter()
        .map(|v| (v["id"].as_str().unwrap().into(), v["t_us"].as_u64().unwrap()))
        .collect();
    assert_eq!(starts.len(), 16);
    let mut intervals: BTreeMap<String, Vec<(u64, u64)>> = BTreeMap::new();
    for s in &starts {
        let id = s["id"].as_str().unwrap();
        let cvd = s["cuda_visible_devices"].as_str().unwrap().to_string();
        assert_eq!(s["device"], "cuda:0", "a worker uses its only visible GPU");
        let r = &results[id];
        let ordinal: usize = r["device"].as_str().unwrap().strip_prefix("cuda:").unwrap().parse().unwrap();
        assert_eq!(visible[ordinal], cvd, "{id} ran on {} but saw {cvd}", r["device"]);
        assert_eq!(r["details"]["cuda_visible_devices"], cvd.as_str());
        intervals.entry(cvd).or_default().push((s["t_us"].as_u64().unwrap(), ends[id]));
    }
    assert_eq!(intervals.keys().map(String::as_str).collect::<BTreeSet<_>>(), visible.into_iter().collect());
    let most = |spans: &[(u64, u64)]| {
        spans.iter().map(|&(s, _)| spans.iter().filter(|&&(a, b)| a <= s && s < b).count()).max()
    };
    let per_device: Vec<usize> = intervals.values().map(|v| most(v).unwrap()).collect();
    assert!(per_device.iter().all(|&n| n <= 2), "{per_device:?}");
    assert!(per_device.contains(&2), "runs_per_device = 2 was never used: {per_device:?}");

    // Devices that are not there are usage errors, before anything runs.
    let fake = |devices: &str| {
        let out =
            sweep.command(&["--force", "--devices", devices]).env("NERGRID_FAKE_CUDA_DEVICES", "2").output().unwrap();
        (out.status.code(), stderr(&out))
    };
    let (code, text) = fake("cuda:2");
    assert_eq!(code, Some(2), "{text}");
    assert!(text.contains("cuda:2: only 2 CUDA device(s) are visible"), "{text}");
    let (code, text) = fake("gpu");
    assert_eq!(code, Some(2), "{text}");
    assert!(text.contains("unknown devices \"gpu\""), "{text}");
    assert_eq!(sweep.executions("start").len(), 16);
}

/// Whether this machine's NVIDIA driver lists a GPU (as the scheduler checks it).
fn machine_has_gpu() -> bool {
    let listed = fs::read_dir("/proc/driver/nvidia/gpus").map(|d| d.count() > 0).unwrap_or(false);
    let node = |e: fs::DirEntry| {
        e.file_name()
            .to_str()
            .and_then(|n| n.strip_prefix("nvidia"))
            .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
    };
    listed || fs::read_dir("/dev").map(|d| d.flatten().any(node)).unwrap_or(false)
}

/// A stand-in for the `nergrid-cuda` worker binary: logs its arguments, then runs the real
/// worker (the CPU build, which the test trainer makes device-agnostic).
fn fake_cuda_worker(sweep: &Sweep) -> (PathBuf, PathBuf) {
    let (exe, calls) = (sweep.dir.path().join("nergrid-cuda"), sweep.dir.path().join("cuda-calls.log"));
    let script = format!(
        "#!/bin/sh\necho \"$*\" >> '{}'\nexec '{}' \"$@\"\n",
        calls.display(),
        assert_cmd::cargo::cargo_bin("nergrid").display()
    );
    fs::write(&exe, script).unwrap();
    fs::set_permissions(&exe, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    (exe, calls)
}

#[test]
fn gpu_runs_go_to_the_cuda_worker_binary_and_cpu_runs_stay_in_this_one() {
    let grid = "models = [\"a\"]\nlearning_rates = [1e-5]\nseeds = [1]";
    let sweep = Sweep::new(grid, "", json!({"default": {"sleep_ms": 10}}));
    let (exe, calls) = fake_cuda_worker(&sweep);
    let out =
        sweep.command(&[]).env("NERGRID_FAKE_CUDA_DEVICES", "1").env("NERGRID_CUDA_WORKER", &exe).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let logged = fs::read_to_string(&calls).unwrap();
    assert_eq!(logged.lines().count(), 2, "one GPU worker per run: {logged}");
    assert!(logged.lines().all(|l| l.starts_with("worker ") && l.contains("--device cuda:0")), "{logged}");

    fs::remove_file(&calls).unwrap();
    let out = sweep.command(&["--force", "--devices", "cpu"]).env("NERGRID_CUDA_WORKER", &exe).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(!calls.exists(), "a CPU run started the CUDA worker");
    assert_eq!(sweep.executions("end").len(), 4);
}

#[test]
fn with_a_cuda_worker_but_no_gpu_auto_falls_back_and_cuda_is_refused_in_one_line() {
    let grid = "models = [\"a\"]\nlearning_rates = [1e-5]\nseeds = [1]";
    let sweep = Sweep::new(grid, "", json!({"default": {"sleep_ms": 10}}));
    let (exe, calls) = fake_cuda_worker(&sweep);
    let out = sweep.command(&["--devices", "cuda:0"]).env("NERGRID_CUDA_WORKER", &exe).output().unwrap();
    let text = stderr(&out);
    if machine_has_gpu() {
        assert!(out.status.success(), "{text}");
        return;
    }
    assert_eq!(out.status.code(), Some(2), "{text}");
    let errors: Vec<&str> = text.lines().filter(|l| l.starts_with("error")).collect();
    assert_eq!(errors.len(), 1, "{text}");
    assert!(errors[0].starts_with("error: devices: cuda:0: no CUDA device is visible"), "{text}");
    assert!(!text.contains("panicked") && !text.contains("shared librar"), "{text}");
    assert!(!sweep.results().join("runs").exists(), "nothing ran");

    let out = sweep.command(&["--devices", "auto"]).env("NERGRID_CUDA_WORKER", &exe).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(!calls.exists(), "no GPU: the CUDA worker must not start");
    for id in sweep.plan_ids() {
        let log = fs::read_to_string(sweep.results().join("runs").join(&id).join("log.txt")).unwrap();
        assert!(log.contains("device: cpu (no NVIDIA GPU found"), "{log}");
    }
}

#[test]
fn timeout_kills_a_slow_run() {
    let grid = "models = [\"a\"]\nlearning_rates = [1e-5]\nseeds = [1]";
    let script = json!({"default": {"sleep_ms": 10}, "runs": {"0": {"sleep_ms": 30000}}});
    let sweep = Sweep::new(grid, "timeout = 1\nruns_per_device = 2", script);
    let ids = sweep.plan_ids();
    let clock = Instant::now();
    let out = sweep.run(&[]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(clock.elapsed() < Duration::from_secs(15), "the slow run was not stopped");
    let results = sweep.result_files();
    assert_eq!(results[&ids[0]]["status"], "failed");
    assert_eq!(results[&ids[0]]["details"]["failure_kind"], "timeout");
    assert!(results[&ids[0]]["error"][0].as_str().unwrap().contains("1 s timeout"));
    assert_eq!(sweep.counts("start")[&ids[0]], 1, "a timeout is not retried");
    assert_eq!(results[&ids[1]]["status"], "done");
    assert!(!sweep.lock_of(&ids[0]).exists());
}

#[test]
fn interrupts_finish_then_stop_running_runs_and_leave_them_pending() {
    let grid = "models = [\"a\"]\nlearning_rates = [1e-5, 2e-5, 5e-5]\nseeds = [1]";
    let sweep = Sweep::new(grid, "runs_per_device = 2", json!({"default": {"sleep_ms": 800}}));
    let started = |n: usize| {
        let sweep = &sweep;
        move || sweep.executions("start").len() >= n
    };

    // First interrupt: the two running runs finish, nothing new starts.
    let child = sweep.spawn(&[]);
    wait_until("2 starts", Duration::from_secs(20), started(2));
    signal(&child, libc::SIGINT);
    let out = child.wait_with_output().unwrap();
    let text = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("interrupt: starting no new runs"), "{text}");
    assert_eq!(sweep.executions("start").len(), 2);
    assert_eq!(sweep.result_files().len(), 2);
    assert!(sweep.result_files().values().all(|r| r["status"] == "done"));

    // Second interrupt: running runs are killed and stay pending (no result, no lock).
    let child = sweep.spawn(&[]);
    wait_until("4 starts", Duration::from_secs(20), started(4));
    signal(&child, libc::SIGTERM);
    std::thread::sleep(Duration::from_millis(50));
    signal(&child, libc::SIGINT);
    let out = child.wait_with_output().unwrap();
    let text = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("second interrupt") && text.contains("left pending"), "{text}");
    assert_eq!(sweep.result_files().len(), 2, "an interrupted run left a result");
    assert!(sweep.files_named(|n| n.starts_with("lock.json")).is_empty());

    let out = sweep.run(&[]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(sweep.result_files().len(), 6);
    assert!(sweep.counts("end").values().all(|&n| n == 1));
}

#[test]
fn locks_held_elsewhere_are_waited_for_and_stale_ones_taken_over() {
    let grid = "models = [\"a\"]\nlearning_rates = [1e-5, 2e-5]\nseeds = [1]";
    let sweep = Sweep::new(grid, "", json!({"default": {"sleep_ms": 10}}));
    let ids = sweep.plan_ids();
    let now_ms = || SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as u64;
    let plant = |id: &str, heartbeat_ms: u64| {
        let lock = json!({"run": id, "host": "other-host", "pid": 1, "token": "t",
                          "started_at": "2025-01-01T00:00:00.000Z", "heartbeat_ms": heartbeat_ms});
        fs::create_dir_all(sweep.lock_of(id).parent().unwrap()).unwrap();
        fs::write(sweep.lock_of(id), lock.to_string()).unwrap();
    };

    // A live holder on another host: the sweep waits, and counts the run it finishes.
    plant(&ids[0], now_ms());
    let mut child = sweep.spawn(&["--index", "0", "--index", "1"]);
    wait_until("run 1", Duration::from_secs(20), || sweep.result_files().contains_key(&ids[1]));
    std::thread::sleep(Duration::from_millis(400));
    assert!(child.try_wait().unwrap().is_none(), "the sweep did not wait for the held run");
    let mut finished = sweep.result_files()[&ids[1]].clone();
    finished["id"] = json!(ids[0]);
    finished["index"] = json!(0);
    fs::write(sweep.results().join("runs").join(&ids[0]).join("result.json"), finished.to_string()).unwrap();
    fs::remove_file(sweep.lock_of(&ids[0])).unwrap();
    let out = child.wait_with_output().unwrap();
    let text = stderr(&out);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("held by pid 1 on other-host") && text.contains("done by another process"), "{text}");
    assert!(!sweep.counts("start").contains_key(&ids[0]));

    // A holder whose heartbeat stopped: taken over.
    plant(&ids[2], now_ms() - 10_000);
    let out = sweep.command(&["--index", "2"]).env("NERGRID_LOCK_STALE_MS", "5000").output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(sweep.counts("start")[&ids[2]], 1);
    assert!(!sweep.lock_of(&ids[2]).exists());
}
