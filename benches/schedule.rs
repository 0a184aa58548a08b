//! Scheduler overhead: 200 no-op dry runs through `run_schedule`, each one a real worker
//! process (start the child, claim the run, report, write the result, collect it).
//! Target on a 2-core machine: under 50 ms per run with one run at a time.

use std::time::{Duration, Instant};

use nergrid::plan::expand;
use nergrid::schedule::{
    run_schedule, DeviceLayout, DeviceSlot, LockConfig, ScheduleOptions, SweepEvent, TrainerChoice, WorkerLaunch,
};
use nergrid::spec::parse;
use nergrid::store::Store;

/// 10 models × 2 schemes × 5 learning rates × 2 seeds = 200 runs.
fn grid(out: &str) -> String {
    let mut text = format!("[experiment]\nname = \"bench\"\noutput_dir = \"{out}\"\n\n");
    for m in 0..10 {
        text.push_str(&format!("[models.m{m}]\nhub = \"org/model-{m}\"\n"));
    }
    let names: Vec<String> = (0..10).map(|m| format!("\"m{m}\"")).collect();
    text.push_str("[datasets.d]\nformat = \"jsonl\"\npath = \"d.jsonl\"\n\n[grid]\n");
    text.push_str(&format!("models = [{}]\n", names.join(", ")));
    text.push_str("schemes = [\"BIO\", \"BIOES\"]\nlearning_rates = [1e-5, 2e-5, 3e-5, 5e-5, 1e-4]\n");
    text.push_str("datasets = [\"d\"]\nseeds = [1, 2]\n\n[train]\nepochs = 1\n");
    text
}

/// Seconds to run the whole grid with `slots` runs at a time.
fn sweep(slots: usize) -> (f64, usize) {
    let dir = tempfile::tempdir().unwrap();
    let spec_path = dir.path().join("bench.toml");
    let text = grid(&dir.path().join("results").display().to_string());
    std::fs::write(&spec_path, &text).unwrap();
    let spec = parse(&spec_path, &text).unwrap();
    let plan = expand(&spec);
    let runs: Vec<_> = plan.runs.iter().collect();
    let store = Store::new(&spec.experiment.output_dir);
    let opts = ScheduleOptions {
        force: false,
        rerun_failed: false,
        layout: DeviceLayout { devices: vec![DeviceSlot::Cpu], runs_per_device: slots, threads_per_run: 1 },
        retries: 0,
        timeout: Some(Duration::from_secs(60)),
        launch: WorkerLaunch {
            exe: env!("CARGO_BIN_EXE_nergrid").into(),
            cuda_exe: env!("CARGO_BIN_EXE_nergrid").into(),
            spec: spec_path,
            trainer: TrainerChoice::DryRun,
        },
        lock: LockConfig::default(),
    };
    let mut done = 0;
    let clock = Instant::now();
    let summary = run_schedule(&spec, &runs, &store, &opts, &mut |e| {
        if let SweepEvent::RunFinished { .. } = e {
            done += 1;
        }
    })
    .unwrap();
    let secs = clock.elapsed().as_secs_f64();
    assert_eq!(summary.succeeded, runs.len());
    (secs, done)
}

fn main() {
    std::env::remove_var("NERGRID_TEST_TRAINER");
    std::env::remove_var("NERGRID_DRY_RUN_SLEEP_MS");
    for slots in [1, 2] {
        let (secs, runs) = sweep(slots);
        println!(
            "schedule: {runs} no-op runs, {slots} at a time: {secs:.2} s, {:.1} ms per run{}",
            1000.0 * secs / runs as f64,
            if slots == 1 { " (target < 50 ms)" } else { "" }
        );
    }
}
