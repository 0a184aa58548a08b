//! `make bench`: fine-tunes all-MiniLM-L6-v2 for one epoch on the original Swedish 1177 file
//! (BIO, batch 16, lr 1e-4, max_length 256) and prints seconds per epoch, train tokens/s and
//! peak RSS, the figures hf_trainer_ner.py prints for the Hugging Face Trainer.
//!
//! The split is a fixed seeded shuffle cut to the study's sizes (666 / 75 / 186 sentences),
//! not the study's own split: the speed of an epoch does not depend on which sentences.
//!
//! Settings (environment): NERGRID_BENCH_MODEL (default models/all-MiniLM-L6-v2),
//! NERGRID_SHARED (default ../shared), NERGRID_BENCH_EPOCHS (default 1),
//! NERGRID_BENCH_SEED (default 1), NERGRID_BENCH_LR (default 1e-4), NERGRID_BENCH_DROPOUT
//! (overrides the model's dropout), NERGRID_BENCH_SAVE (a directory to export the model to),
//! NERGRID_BENCH_STEPS (stop after this many steps, for profiling).

use anyhow::Context;
use candle_core::Device;
use nergrid::train::{self, EvalScores, TrainConfig, TrainEvent, TrainSentence};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use std::path::{Path, PathBuf};
use std::time::Instant;

fn main() -> anyhow::Result<()> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let shared = std::env::var_os("NERGRID_SHARED").map(PathBuf::from).unwrap_or_else(|| root.join("../shared"));
    let model = std::env::var_os("NERGRID_BENCH_MODEL")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("models/all-MiniLM-L6-v2"));
    anyhow::ensure!(model.is_dir(), "{}: no model; run `make models`", model.display());
    let data = shared.join("data/swedish-medical-ner/1177_annotated_sentences.txt");
    let text = std::fs::read_to_string(&data).with_context(|| data.display().to_string())?;
    let mut sentences: Vec<TrainSentence> = text.lines().map(bracket_sentence).collect();
    sentences.shuffle(&mut rand_chacha::ChaCha8Rng::seed_from_u64(1));
    let (train_set, rest) = sentences.split_at(666.min(sentences.len()));
    let (validation, test) = rest.split_at(75.min(rest.len()));
    let epochs = env_usize("NERGRID_BENCH_EPOCHS", 1);
    let learning_rate = std::env::var("NERGRID_BENCH_LR").ok().and_then(|v| v.parse().ok()).unwrap_or(1e-4);
    let seed = env_usize("NERGRID_BENCH_SEED", 1) as u64;
    let dropout = std::env::var("NERGRID_BENCH_DROPOUT").ok().and_then(|v| v.parse().ok());
    let cfg = TrainConfig { epochs, batch_size: 16, learning_rate, seed, dropout, ..TrainConfig::default() };
    let labels: Vec<String> =
        ["O", "B-DISORDER", "I-DISORDER", "B-DRUG", "I-DRUG", "B-BODY", "I-BODY"].map(String::from).to_vec();
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
        _ => {}
    };
    let started = Instant::now();
    let cpu_started = cpu_seconds();
    let outcome =
        train::train(&model, &labels, train_set, validation, test, &cfg, &Device::Cpu, &entity_f1, &mut on_event)?;
    let total = started.elapsed().as_secs_f64();
    let cpu = cpu_seconds() - cpu_started;
    let epoch_seconds: f64 = outcome.epochs.iter().map(|e| e.seconds).sum::<f64>() / epochs as f64;
    println!("model            {}", model.display());
    println!("sentences        {} train / {} validation / {} test", train_set.len(), validation.len(), test.len());
    println!("threads          {}", rayon::current_num_threads());
    println!("train tokens     {} per epoch", outcome.train_tokens_per_epoch);
    println!("seconds/epoch    {epoch_seconds:.2} (training only; validation {:.2})", outcome.epochs[0].eval_seconds);
    println!(
        "train tokens/s   {:.0} (epoch loop incl. validation: {:.0})",
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
    if let Some(dir) = std::env::var_os("NERGRID_BENCH_SAVE") {
        outcome.save_model(Path::new(&dir))?;
        println!("saved            {}", Path::new(&dir).display());
    }
    Ok(())
}

/// A line of the original file: `(`..`)` disorder, `[`..`]` drug, `{`..`}` body structure,
/// each bracket its own whitespace-separated token; BIO tags.
fn bracket_sentence(line: &str) -> TrainSentence {
    let (mut words, mut tags) = (Vec::new(), Vec::new());
    let mut open: Option<(&str, &str)> = None;
    let mut first = false;
    for token in line.split_whitespace() {
        let kind = match token {
            "(" => Some(("DISORDER", ")")),
            "[" => Some(("DRUG", "]")),
            "{" => Some(("BODY", "}")),
            _ => None,
        };
        match (open, kind) {
            (None, Some(k)) => (open, first) = (Some(k), true),
            (Some((_, close)), _) if token == close => open = None,
            (Some((ty, _)), _) => {
                words.push(token.to_string());
                tags.push(format!("{}-{ty}", if first { "B" } else { "I" }));
                first = false;
            }
            (None, None) => {
                words.push(token.to_string());
                tags.push("O".to_string());
            }
        }
    }
    TrainSentence { words, tags }
}

/// Micro entity F1 over BIO chunks (exact type and span; an I- after O or another type
/// starts a chunk, as seqeval's default mode) and token accuracy. A stand-in for the metrics
/// module, which the benchmark does not need to be exact about.
fn entity_f1(gold: &[Vec<String>], pred: &[Vec<String>]) -> anyhow::Result<EvalScores> {
    fn chunks(tags: &[String], sentence: usize, out: &mut Vec<(usize, usize, usize, String)>) {
        let mut open: Option<(usize, &str)> = None;
        for (i, t) in tags.iter().map(String::as_str).chain(["O"]).enumerate() {
            let (prefix, kind) = t.split_once('-').unwrap_or(("O", ""));
            if prefix == "I" && open.is_some_and(|(_, k)| k == kind) {
                continue;
            }
            if let Some((start, k)) = open.take() {
                out.push((sentence, start, i, k.to_string()));
            }
            if prefix != "O" {
                open = Some((i, kind));
            }
        }
    }
    let (mut g, mut p) = (Vec::new(), Vec::new());
    let (mut right, mut total) = (0, 0);
    for (i, (gs, ps)) in gold.iter().zip(pred).enumerate() {
        chunks(gs, i, &mut g);
        chunks(ps, i, &mut p);
        right += gs.iter().zip(ps).filter(|(a, b)| a == b).count();
        total += gs.len();
    }
    let gold_set: std::collections::HashSet<_> = g.iter().collect();
    let hits = p.iter().filter(|c| gold_set.contains(c)).count() as f64;
    let precision = if p.is_empty() { 0.0 } else { hits / p.len() as f64 };
    let recall = if g.is_empty() { 0.0 } else { hits / g.len() as f64 };
    let f1 = if hits == 0.0 { 0.0 } else { 2.0 * precision * recall / (precision + recall) };
    Ok(EvalScores { precision, recall, f1, accuracy: right as f64 / (total as f64).max(1.0) })
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
