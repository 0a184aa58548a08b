//! `make bench`: fine-tunes all-MiniLM-L6-v2 for one epoch on the original Swedish 1177 file
//! (BIO, batch 16, lr 1e-4, max_length 256) and prints seconds per epoch, train tokens/s and
//! peak RSS, the figures hf_trainer_ner.py prints for the Hugging Face Trainer.
//!
//! The data are read, split and tagged by nergrid's data module exactly as a run of
//! `experiments/swedish_local.toml` sees them (brackets removed, `train_test_split(0.2, seed=67)`
//! then `(0.1, seed=67)`: 666 / 75 / 186 sentences), and validation is scored by the metrics
//! module, so the job is the one `hf_trainer_ner.py --data-format brackets` times.
//!
//! Settings (environment): NERGRID_BENCH_MODEL (default models/all-MiniLM-L6-v2),
//! NERGRID_SHARED (default ../shared), NERGRID_BENCH_EPOCHS (default 1),
//! NERGRID_BENCH_SEED (default 1), NERGRID_BENCH_LR (default 1e-4), NERGRID_BENCH_DROPOUT
//! (overrides the model's dropout), NERGRID_BENCH_SAVE (a directory to export the model to),
//! NERGRID_BENCH_STEPS (stop after this many steps, for profiling), NERGRID_BENCH_PRECISION
//! (`fp32` default, `bf16`; NERGRID_CPU_KERNELS forces a lower bf16 kernel family).
//!
//! The last line is the same figures as one JSON object (`{"tool": "nergrid", ...}`), for
//! benches/bf16_vs_trainer.sh.

use candle_core::Device;
use nergrid::data::TaggedSentence;
use nergrid::data::{DatasetConfig, Scheme};
use nergrid::model::kernels::product_flop;
use nergrid::runner::{self, seqeval_scores};
use nergrid::train::{self, Precision, TrainConfig, TrainEvent};
use std::path::{Path, PathBuf};
use std::time::Instant;

fn main() -> anyhow::Result<()> {
    nergrid::cli::keep_freed_memory();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let shared = std::env::var_os("NERGRID_SHARED").map(PathBuf::from).unwrap_or_else(|| root.join("../shared"));
    let model = std::env::var_os("NERGRID_BENCH_MODEL")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("models/all-MiniLM-L6-v2"));
    anyhow::ensure!(model.is_dir(), "{}: no model; run `make models`", model.display());
    let data = shared.join("data/swedish-medical-ner/1177_annotated_sentences.txt");
    let (train_set, validation, test, labels) = study_split(&data)?;
    let epochs = env_usize("NERGRID_BENCH_EPOCHS", 1);
    let learning_rate = std::env::var("NERGRID_BENCH_LR").ok().and_then(|v| v.parse().ok()).unwrap_or(1e-4);
    let seed = env_usize("NERGRID_BENCH_SEED", 1) as u64;
    let dropout = std::env::var("NERGRID_BENCH_DROPOUT").ok().and_then(|v| v.parse().ok());
    let precision_name = std::env::var("NERGRID_BENCH_PRECISION").unwrap_or_else(|_| "fp32".into());
    let precision = Precision::parse(&precision_name)
        .ok_or_else(|| anyhow::anyhow!("NERGRID_BENCH_PRECISION: unknown precision {precision_name:?}"))?;
    let cfg = TrainConfig { epochs, batch_size: 16, learning_rate, seed, dropout, precision, ..TrainConfig::default() };
    let step_limit = env_usize("NERGRID_BENCH_STEPS", usize::MAX);
    let mut last = Instant::now();
    let mut on_event = |e: TrainEvent| match e {
        TrainEvent::Step { step, total_steps, loss, .. } => {
            let now = Instant::now();
            eprintln!("step {step}/{total_steps} loss {loss:.8} {:.3}s", (now - last).as_secs_f64());
            last = now;
            if step >= step_limit {
                std::process::exit(0);
            }
        }
        TrainEvent::EpochEnd(r) => eprintln!("epoch {} val F1 {:.4}", r.epoch, r.val.f1),
        TrainEvent::Kernels { note, .. } => eprintln!("{note}"),
        _ => {}
    };
    let started = Instant::now();
    let cpu_started = cpu_seconds();
    let location = nergrid::model::ModelLocation::Dir(model.clone());
    let prepared = runner::prepare_run(&location, &labels, [&train_set, &validation, &test], &cfg, &Device::Cpu)?;
    let source = prepared.source;
    let flop_started = product_flop();
    let outcome = train::train(prepared.model, &prepared.splits, &cfg, &Device::Cpu, &seqeval_scores, &mut on_event)?;
    let total = started.elapsed().as_secs_f64();
    let flop = (product_flop() - flop_started) as f64;
    let cpu = cpu_seconds() - cpu_started;
    let epoch_seconds: f64 = outcome.epochs.iter().map(|e| e.seconds).sum::<f64>() / epochs as f64;
    println!("model            {}", model.display());
    println!("sentences        {} train / {} validation / {} test", train_set.len(), validation.len(), test.len());
    println!("threads          {}", rayon::current_num_threads());
    println!("train tokens     {} per epoch", outcome.train_tokens_per_epoch);
    println!("seconds/epoch    {epoch_seconds:.2} (training only; validation {:.2})", outcome.epochs[0].eval_seconds);
    println!(
        "train tokens/s   {:.0} (over all epochs: {:.0})",
        outcome.train_tokens_per_epoch as f64 / epoch_seconds,
        outcome.train_tokens_per_sec
    );
    println!(
        "best epoch       {} (validation F1 {:.4})",
        outcome.best_epoch,
        outcome.epochs[outcome.best_epoch - 1].val.f1
    );
    println!("test P/R/F1      {:.4} / {:.4} / {:.4}", outcome.test.precision, outcome.test.recall, outcome.test.f1);
    println!("peak RSS         {:.0} MiB", peak_rss_mib());
    // On a shared machine wall time depends on the neighbours; CPU time much less.
    println!("CPU time         {cpu:.2} s user+sys for {total:.2} s wall (load, training and tests)");
    println!("total            {total:.2} s");
    println!("precision        {} (kernels {})", outcome.precision, outcome.kernels);
    // Every product of the run (training, validation, test) over the whole training loop and
    // test: a lower bound on the products' own rate, which excludes the element-wise work.
    let rate = flop / (outcome.train_seconds + outcome.test_seconds) / 1e9;
    println!("matrix products  {:.1} TFLOP, {rate:.0} GFLOP/s over training and test", flop / 1e12);
    let json = serde_json::json!({
        "tool": "nergrid", "precision": outcome.precision, "kernels": outcome.kernels,
        "seconds_per_epoch": epoch_seconds, "train_seconds": outcome.train_seconds, "total_seconds": total,
        "product_tflop": flop / 1e12, "product_gflops": rate, "peak_rss_mib": peak_rss_mib(),
        "test_f1": outcome.test.f1, "threads": rayon::current_num_threads(),
    });
    println!("{json}");
    if let Some(dir) = std::env::var_os("NERGRID_BENCH_SAVE") {
        source.save_model(&outcome.model, Path::new(&dir))?;
        println!("saved            {}", Path::new(&dir).display());
    }
    Ok(())
}

type Split = Vec<TaggedSentence>;

/// The original 1177 file as a run sees it: brackets removed, the study's split, BIO.
fn study_split(path: &Path) -> anyhow::Result<(Split, Split, Split, Vec<String>)> {
    let table = toml::toml! {
        format = "brackets"
        split = { test = 0.2, validation = 0.1, seed = 67 }
    };
    let mut config: DatasetConfig = toml::Value::Table(table).try_into()?;
    config.path = Some(path.to_path_buf());
    let data = runner::prepare("swedish_1177", &config, Scheme::Bio, runner::RunSplit::default())?;
    Ok((data.train, data.validation, data.test, data.labels))
}

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn usage() -> libc::rusage {
    let mut usage = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: getrusage fills the struct it is given.
    unsafe {
        libc::getrusage(libc::RUSAGE_SELF, usage.as_mut_ptr());
        usage.assume_init()
    }
}

fn peak_rss_mib() -> f64 {
    usage().ru_maxrss as f64 / 1024.0
}

fn cpu_seconds() -> f64 {
    let u = usage();
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 * 1e-6;
    secs(u.ru_utime) + secs(u.ru_stime)
}
