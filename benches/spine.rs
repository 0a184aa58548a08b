//! Spine benchmark: a 10,000-run grid validated and planned, and a report over 1,000 stored
//! runs. Targets on a 2-core machine: under 1 s and under 2 s.

use std::time::Instant;

use nergrid::plan::expand;
use nergrid::schedule::{execute_run, DryRunTrainer};
use nergrid::spec::parse;
use nergrid::store::Store;

fn grid(models: usize, seeds: usize, out: &str) -> String {
    let mut text = format!("[experiment]\nname = \"bench\"\noutput_dir = \"{out}\"\n\n");
    for m in 0..models {
        text.push_str(&format!("[models.m{m}]\nhub = \"org/model-{m}\"\n"));
    }
    text.push_str("[datasets.d]\nformat = \"jsonl\"\npath = \"d.jsonl\"\n\n[grid]\n");
    let names: Vec<String> = (0..models).map(|m| format!("\"m{m}\"")).collect();
    text.push_str(&format!("models = [{}]\n", names.join(", ")));
    text.push_str(
        "schemes = [\"IO\", \"BIO\", \"IOB1\", \"BIOES\"]\nlearning_rates = [1e-5, 2e-5, 3e-5, 5e-5, 1e-4]\n",
    );
    text.push_str("datasets = [\"d\"]\n");
    let seeds: Vec<String> = (0..seeds).map(|s| s.to_string()).collect();
    text.push_str(&format!("seeds = [{}]\n", seeds.join(", ")));
    text
}

fn best_of<T>(n: usize, mut f: impl FnMut() -> T) -> (f64, T) {
    let mut best = f64::INFINITY;
    let mut last = None;
    for _ in 0..n {
        let t = Instant::now();
        let out = f();
        best = best.min(t.elapsed().as_secs_f64());
        last = Some(out);
    }
    (best, last.unwrap())
}

fn main() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("results");
    let text = grid(10, 50, &out.display().to_string());
    let (secs, runs) = best_of(5, || expand(&parse("bench.toml".as_ref(), &text).unwrap()).runs.len());
    println!("plan: {runs} runs validated and planned in {secs:.3} s (target < 1 s)");

    let small = grid(10, 5, &out.display().to_string());
    let spec = parse("bench.toml".as_ref(), &small).unwrap();
    let plan = expand(&spec);
    let store = Store::new(&out);
    store.write_spec(&spec.source).unwrap();
    let trainer = DryRunTrainer { sleep_ms: 0 };
    for run in &plan.runs {
        execute_run(&spec, run, &store, &trainer, "cpu", 1, 1, &mut |_| {}).unwrap();
    }
    let (secs, files) = best_of(5, || nergrid::report::write_report(&store).unwrap());
    println!("report: {} stored runs reported in {secs:.3} s (target < 2 s)", files.inputs.results.len());
}
