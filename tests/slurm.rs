//! `nergrid slurm` against a real single-node SLURM cluster (`../shared/tools/slurm`, 2 fake
//! GPUs as GRES): a grid of a tiny BERT trained for real, one run failing because its data is
//! missing, submitted as a job array with a report job; then the data is written and only the
//! failed run is resubmitted with `--only-pending`. Needs root (the cluster's daemons); skipped
//! with a message otherwise, except in CI (`CI` set), where that fails. Also the parts that
//! need no cluster: printed scripts and `nergrid run --expect-id`.

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command as Process;
use std::time::Instant;

use assert_cmd::Command;
use candle_core::Device;
use nergrid::model::{self, export::safetensors_bytes, Config};
use serde_json::Value;

fn shared() -> PathBuf {
    std::env::var_os("NERGRID_SHARED")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared"))
}

fn tools() -> PathBuf {
    shared().join("tools/slurm")
}

fn nergrid(dir: &Path) -> Command {
    let mut cmd = Command::cargo_bin("nergrid").unwrap();
    cmd.current_dir(dir).env("NO_COLOR", "1").timeout(std::time::Duration::from_secs(120));
    cmd
}

// ---------------------------------------------------------------------------------------
// A tiny BERT, a toy corpus and a spec, all in the test's directory.

const FILLER: [&str; 8] = ["the", "a", "went", "to", "saw", "and", "met", "today"];
const PEOPLE: [&str; 5] = ["anna", "erik", "maria", "johan", "karin"];
const PLACES: [&str; 5] = ["stockholm", "uppsala", "paris", "berlin", "oslo"];

fn vocab() -> Vec<String> {
    let specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]"];
    specials.iter().chain(&FILLER).chain(&PEOPLE).chain(&PLACES).map(|s| s.to_string()).collect()
}

/// config.json, vocab.txt, tokenizer_config.json and random weights with Hugging Face names.
fn write_tiny_bert(dir: &Path) {
    fs::create_dir_all(dir).unwrap();
    fs::write(dir.join("vocab.txt"), vocab().join("\n") + "\n").unwrap();
    fs::write(dir.join("tokenizer_config.json"), r#"{"do_lower_case": true}"#).unwrap();
    let config = format!(
        r#"{{"model_type": "bert", "architectures": ["BertModel"], "vocab_size": {},
        "hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2,
        "intermediate_size": 64, "max_position_embeddings": 64, "type_vocab_size": 2,
        "hidden_act": "gelu", "pad_token_id": 0}}"#,
        vocab().len()
    );
    fs::write(dir.join("config.json"), &config).unwrap();
    let cfg = Config::from_json(&config, Path::new("config.json")).unwrap();
    let m = model::random_model(&cfg, &["O".to_string(), "X".to_string()], 5, &Device::Cpu).unwrap();
    fs::write(dir.join("model.safetensors"), safetensors_bytes(&m).unwrap()).unwrap();
}

/// `{"text", "entities": [{start, end, type}]}` lines: a person and a place per sentence.
fn toy_jsonl(n: usize) -> String {
    let mut out = String::new();
    for i in 0..n {
        let (person, place) = (PEOPLE[i % 5], PLACES[(i / 2) % 5]);
        let before = format!("{} {} ", FILLER[i % 8], FILLER[(i + 3) % 8]);
        let middle = format!(" {} ", FILLER[(i + 5) % 8]);
        let text = format!("{before}{person}{middle}{place} {}", FILLER[(i + 1) % 8]);
        let p0 = before.chars().count();
        let l0 = p0 + person.len() + middle.len();
        let entities = serde_json::json!([
            {"start": p0, "end": p0 + person.len(), "type": "PER"},
            {"start": l0, "end": l0 + place.len(), "type": "LOC"},
        ]);
        out += &format!("{}\n", serde_json::json!({"text": text, "entities": entities}));
    }
    out
}

/// Six runs on `toy.jsonl` and a seventh on `late.jsonl`, which does not exist yet.
const SPEC: &str = r#"
[experiment]
name = "slurm_it"
output_dir = "results"

[models.tiny]
path = "tiny-bert"

[datasets.toy]
format = "jsonl"
path = "toy.jsonl"
split = { test = 0.2, validation = 0.2, seed = 7 }

[datasets.late]
format = "jsonl"
path = "late.jsonl"
split = { test = 0.2, validation = 0.2, seed = 7 }

[grid]
models = ["tiny"]
schemes = ["BIO", "BIOES"]
learning_rates = [1e-3, 3e-3, 1e-2]
datasets = ["toy"]
include = [{ dataset = "late", scheme = "BIO", learning_rate = 1e-3 }]

[train]
epochs = 2
batch_size = 8
max_length = 32

[schedule]
threads_per_run = 1

[slurm]
cpus_per_run = 1
max_parallel = 4
"#;

fn write_experiment(dir: &Path) -> PathBuf {
    write_tiny_bert(&dir.join("tiny-bert"));
    fs::write(dir.join("toy.jsonl"), toy_jsonl(60)).unwrap();
    fs::write(dir.join("spec.toml"), SPEC).unwrap();
    dir.join("spec.toml")
}

/// `(index, id)` of every run, from `nergrid plan`.
fn plan(dir: &Path) -> Vec<(usize, String)> {
    let out = nergrid(dir).args(["plan", "spec.toml", "--format", "json"]).output().unwrap();
    let rows: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    rows.iter().map(|r| (r["index"].as_u64().unwrap() as usize, r["id"].as_str().unwrap().to_string())).collect()
}

// ---------------------------------------------------------------------------------------
// The cluster.

/// Stops the cluster (and purges its state) when dropped, also when an assertion failed.
struct Cluster;

impl Cluster {
    fn start() -> Cluster {
        let guard = Cluster;
        let out = Process::new("timeout")
            .args(["900", &tools().join("start_slurm.sh").to_string_lossy()])
            .env("SLURM_FAKE_GPUS", "2")
            .output()
            .expect("running start_slurm.sh");
        assert!(out.status.success(), "start_slurm.sh failed:\n{}", String::from_utf8_lossy(&out.stderr));
        guard
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let stop = tools().join("stop_slurm.sh");
        let status = Process::new("timeout").args(["180", &stop.to_string_lossy(), "--purge"]).output();
        if !status.is_ok_and(|o| o.status.success()) {
            eprintln!("warning: stop_slurm.sh --purge failed");
        }
    }
}

/// Why this machine cannot host the test cluster, if it cannot.
fn cannot_host_cluster() -> Option<String> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Some("not root: the test cluster's daemons need root".into());
    }
    let conf = fs::read_to_string("/etc/slurm/slurm.conf").unwrap_or_default();
    if !conf.is_empty() && !conf.starts_with("# generated by start_slurm.sh") {
        return Some("/etc/slurm/slurm.conf belongs to a real cluster, which the test would overwrite".into());
    }
    None
}

/// Waits for every task of `job` to leave the queue; `(array task id or -1, state)` per task.
fn wait_job(job: &str, out_dir: &Path) -> Vec<(i64, String)> {
    let wait = tools().join("wait_jobs.sh");
    let out = Process::new("timeout").args(["660", &wait.to_string_lossy(), job, "600"]).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let states: Vec<(i64, String)> = text
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let task = f.get(1)?.rsplit_once('_').and_then(|(_, t)| t.parse().ok()).unwrap_or(-1);
            Some((task, format!("{} {}", f.get(2)?, f.get(3)?)))
        })
        .collect();
    assert!(
        !states.is_empty() && out.status.code() != Some(124),
        "job {job} did not finish: {text}{}\njob output:\n{}",
        String::from_utf8_lossy(&out.stderr),
        slurm_outputs(out_dir)
    );
    states
}

/// Every SLURM output file, for failure messages.
fn slurm_outputs(dir: &Path) -> String {
    let mut text = String::new();
    for entry in fs::read_dir(dir).into_iter().flatten().flatten() {
        text += &format!("== {}\n{}\n", entry.path().display(), fs::read_to_string(entry.path()).unwrap_or_default());
    }
    text
}

/// Submits; returns the array job ids and the report job id from `array ID` / `report ID` lines.
fn submit(dir: &Path, extra: &[&str]) -> (Vec<String>, String) {
    let mut args = vec!["slurm", "spec.toml", "--gpus-per-run", "1", "--report", "--submit"];
    args.extend(extra);
    let out = nergrid(dir).args(&args).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "nergrid slurm --submit: {stdout}{}", String::from_utf8_lossy(&out.stderr));
    let ids = |kind: &str| -> Vec<String> {
        stdout.lines().filter_map(|l| l.strip_prefix(kind)).map(|id| id.trim().to_string()).collect()
    };
    let report = ids("report ");
    assert_eq!(report.len(), 1, "{stdout}");
    (ids("array "), report[0].clone())
}

fn result(dir: &Path, id: &str) -> Value {
    let path = dir.join("results/runs").join(id).join("result.json");
    serde_json::from_str(&fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))).unwrap()
}

/// How many times the run started: `start` lines in its log.
fn starts(dir: &Path, id: &str) -> usize {
    let log = fs::read_to_string(dir.join("results/runs").join(id).join("log.txt")).unwrap_or_default();
    log.lines().filter(|l| l.split_whitespace().nth(1) == Some("start")).count()
}

fn log(dir: &Path, id: &str) -> String {
    fs::read_to_string(dir.join("results/runs").join(id).join("log.txt")).unwrap_or_default()
}

#[test]
fn a_grid_runs_as_a_job_array_on_a_real_cluster_and_failures_are_resubmitted() {
    if let Some(why) = cannot_host_cluster() {
        common::skip(&format!("the SLURM cluster test: {why}"));
        return;
    }
    let clock = Instant::now();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    write_experiment(dir);
    let runs = plan(dir);
    assert_eq!(runs.len(), 7);
    let late = &runs[6].1;
    assert!(late.contains("-late-"), "the included run is last: {late}");
    let _cluster = Cluster::start();
    eprintln!("cluster up after {:.0?}", clock.elapsed());

    let (arrays, report) = submit(dir, &[]);
    assert_eq!(arrays.len(), 1, "7 runs fit one array");
    let out_dir = dir.join("results/slurm");
    let states = wait_job(&arrays[0], &out_dir);
    let failed: Vec<&(i64, String)> = states.iter().filter(|(_, s)| s != "COMPLETED 0:0").collect();
    assert_eq!(states.len(), 7, "{states:?}");
    assert_eq!(
        failed,
        [&(6, "FAILED 1:0".to_string())],
        "only the run without data fails\n{}",
        slurm_outputs(&out_dir)
    );
    assert!(wait_job(&report, &out_dir).iter().all(|(_, s)| s == "COMPLETED 0:0"));
    eprintln!("grid and report done after {:.0?}", clock.elapsed());

    check_first_submission(dir, &runs, &arrays[0]);

    // The data arrives; only the failed run is resubmitted, and only it runs.
    fs::write(dir.join("late.jsonl"), toy_jsonl(60)).unwrap();
    let printed = nergrid(dir).args(["slurm", "spec.toml", "--only-pending"]).output().unwrap();
    let printed = String::from_utf8_lossy(&printed.stdout);
    assert!(printed.contains("#SBATCH --array=0-0%4\n") && printed.contains(&format!("\n  '{late}'\n)")), "{printed}");
    let before: BTreeMap<&str, Vec<u8>> = runs[..6]
        .iter()
        .map(|(_, id)| (id.as_str(), fs::read(dir.join("results/runs").join(id).join("result.json")).unwrap()))
        .collect();
    let (arrays, report) = submit(dir, &["--only-pending"]);
    assert_eq!(wait_job(&arrays[0], &out_dir), [(0, "COMPLETED 0:0".to_string())]);
    assert!(wait_job(&report, &out_dir).iter().all(|(_, s)| s == "COMPLETED 0:0"));

    let r = result(dir, late);
    assert_eq!((r["status"].as_str(), r["attempt"].as_u64()), (Some("done"), Some(1)), "{r}");
    assert_eq!(starts(dir, late), 2, "once failed, once done: {}", log(dir, late));
    for (id, bytes) in before {
        assert_eq!(fs::read(dir.join("results/runs").join(id).join("result.json")).unwrap(), bytes, "{id} untouched");
        assert_eq!(starts(dir, id), 1, "{id} ran once");
    }
    let table = fs::read_to_string(dir.join("results/runs.csv")).unwrap();
    assert_eq!(
        table.lines().filter(|l| l.contains(",done,")).count(),
        7,
        "the new report has every run done:\n{table}"
    );
    eprintln!("resubmission done after {:.0?}", clock.elapsed());
}

/// Six runs done once on the GPU SLURM gave their task (on the CPU, this build having no
/// CUDA), the run without data failed once, and the report written.
fn check_first_submission(dir: &Path, runs: &[(usize, String)], array: &str) {
    let mut spans = Vec::new();
    for (task, (index, id)) in runs.iter().enumerate() {
        let r = result(dir, id);
        let slurm = &r["details"]["slurm"];
        assert_eq!(starts(dir, id), 1, "{id} ran once:\n{}", log(dir, id));
        assert_eq!(r["attempt"].as_u64(), Some(1));
        assert_eq!(r["status"].as_str(), Some(if *index == 6 { "failed" } else { "done" }), "{r}");
        assert_eq!(
            (slurm["array_job_id"].as_str(), slurm["array_task_id"].as_str()),
            (Some(array), Some(&*task.to_string()))
        );
        let gpu = slurm["cuda_visible_devices"].as_str().unwrap_or_default().to_string();
        assert!(gpu == "0" || gpu == "1", "SLURM gave one of the 2 GPUs: {slurm}");
        let out = fs::read_to_string(dir.join(format!("results/slurm/{array}_{task}.out"))).unwrap();
        assert!(out.contains(&format!("runs plan index {index} ({id}) on")), "{out}");
        assert!(
            out.contains(&format!("CUDA_VISIBLE_DEVICES={gpu}\n")),
            "the task saw the GPU the result records: {out}"
        );
        assert_eq!((r["device"].as_str(), r["details"]["cuda_visible_devices"].as_str()), (Some("cpu"), Some("")));
        assert!(log(dir, id).contains("device: cpu (this build has no CUDA support"), "{}", log(dir, id));
        if *index == 6 {
            assert!(r["error"].to_string().contains("late.jsonl"), "{r}");
            continue;
        }
        let epochs = fs::read_to_string(dir.join("results/runs").join(id).join("epochs.csv")).unwrap();
        assert_eq!(epochs.lines().count(), 3, "2 epochs really trained:\n{epochs}");
        assert!(r["test"]["f1"].as_f64().is_some_and(|f| (0.0..=1.0).contains(&f)), "{r}");
        // On B/I/E/S/O tags nervaluate's strict schema counts exactly seqeval's matches.
        let strict_f1 = r["errors"]["overall"]["strict"]["f1"].as_f64().expect("result.json has the error analysis");
        assert!((strict_f1 - r["test"]["f1"].as_f64().unwrap()).abs() < 1e-12, "{r}");
        let t = &r["timings"];
        spans.push((
            t["started_at"].as_str().unwrap().to_string(),
            t["finished_at"].as_str().unwrap().to_string(),
            gpu,
        ));
    }
    for (i, a) in spans.iter().enumerate() {
        for b in &spans[i + 1..] {
            let overlap = a.0 < b.1 && b.0 < a.1;
            assert!(!overlap || a.2 != b.2, "runs at the same time had different GPUs: {a:?} {b:?}");
        }
    }
    let report = fs::read_to_string(dir.join("results/report.md")).unwrap();
    assert!(report.contains("late.jsonl"), "the report lists the failed run's error:\n{report}");
    assert!(report.contains("## Error analysis (test set, mean over seeds)"), "{report}");
    assert!(!report.contains("| n/a |"), "every done run stored its error analysis:\n{report}");
}

// ---------------------------------------------------------------------------------------
// Without a cluster.

#[test]
fn printed_scripts_map_tasks_to_runs_and_resources_come_from_the_spec_and_flags() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    fs::write(dir.join("spec.toml"), SPEC).unwrap();
    let out =
        nergrid(dir).args(["slurm", "spec.toml", "--max-array-size", "3", "--mem", "2G", "--report"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout);
    let arrays: Vec<&str> = text.lines().filter_map(|l| l.strip_prefix("#SBATCH --array=")).collect();
    assert_eq!(arrays, ["0-2%4", "0-2%4", "0-0%4"], "7 runs in arrays of at most 3 tasks");
    assert_eq!(text.matches("#SBATCH --mem=2G").count(), 3, "the flag reaches every array");
    assert_eq!(text.matches("#SBATCH --cpus-per-task=1").count(), 4, "[slurm] cpus_per_run, and the report's");
    assert_eq!(text.matches("#SBATCH --gres=gpu:1").count(), 3, "one GPU per run by default");
    let workdir = dir.canonicalize().unwrap();
    assert!(text.contains(&format!("#SBATCH --output={}/results/slurm/%A_%a.out\n", workdir.display())), "{text}");
    assert!(text.contains(&format!("\ncd '{}'\n", workdir.display())));
    assert!(text.contains(&format!("report '{}/spec.toml'", workdir.display())));
    for (index, id) in plan(dir) {
        assert_eq!(text.matches(&format!("  '{id}'\n")).count(), 1, "run {index} has one task");
    }
    assert!(dir.join("results/slurm").is_dir(), "the job output directory exists before submission");
}

#[test]
fn bad_slurm_options_and_a_changed_spec_are_usage_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    fs::write(dir.join("spec.toml"), SPEC).unwrap();
    let out = nergrid(dir).args(["slurm", "spec.toml", "--time", "1 day"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains(r#"time: "1 day": must not contain whitespace"#));
    let (index, id) = plan(dir)[2].clone();
    let out = nergrid(dir)
        .args(["run", "spec.toml", "--index", &index.to_string(), "--expect-id", "tiny-old-0000"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "a task whose run changed fails before running anything");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains(&format!("run 2 of the plan is {id}, not tiny-old-0000 (the spec changed")), "{stderr}");
    assert!(!dir.join("results/runs").exists());
}
