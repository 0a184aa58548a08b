//! `make bench`: fine-tunes all-MiniLM-L6-v2 for one epoch on the original Swedish 1177 file
//! (BIO, batch 16, lr 1e-4, max_length 256) and prints seconds per epoch, train tokens/s and
//! peak RSS, the figures hf_trainer_ner.py prints for the Hugging Face Trainer.
//!
//! The split is a fixed seeded shuffle cut to the study's sizes (666 / 75 / 186 sentences),
//! not the study's own split: the speed of an epoch does not depend on which sentences.
//!
//! Settings (environment): NERGRID_BENCH_MODEL (default models/all-MiniLM-L6-v2),
//! NERGRID_SHARED (default ../shared), NERGRID_BENCH_EPOCHS (default 1),
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
    let cfg = TrainConfig { epochs, batch_size: 16, learning_rate: 1e-4, seed: 1, ..TrainConfig::default() };
    let labels: Vec<String> =
        ["O", "B-DISORDER", "I-DISORDER", "B-DRUG", "I-DRUG", "B-BODY", "I-BODY"].map(String::from).to_vec();
    let step_limit = env_usize("NERGRID_BENCH_STEPS", usize::MAX);
    let mut last = Instant::now();
    let mut on_event = |e: TrainEvent| match e {
        TrainEvent::Step { step, total_steps, loss, .. } => {
            let now = Instant::now();
            eprintln!("step {step}/{total_steps} loss {loss:.4} {:.3}s", (now - last).as_secs_f64());
            last = now;
            if step >= step_limit {
                std::process::exit(0);
            }
        }
        TrainEvent::EpochEnd(r) => eprintln!("epoch {} val F1 {:.4}", r.epoch, r.val.f1),
        _ => {}
    };
    let started = Instant::now();
    let outcome =
        train::train(&model, &labels, train_set, validation, test, &cfg, &Device::Cpu, &token_accuracy, &mut on_event)?;
    let total = started.elapsed().as_secs_f64();
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
    println!("peak RSS         {:.0} MiB", peak_rss_mib());
    println!("total            {total:.2} s");
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

/// The benchmark times training, not scoring: token accuracy stands in for seqeval.
fn token_accuracy(gold: &[Vec<String>], pred: &[Vec<String>]) -> anyhow::Result<EvalScores> {
    let pairs = gold.iter().zip(pred).flat_map(|(g, p)| g.iter().zip(p));
    let (right, total) = pairs.fold((0, 0), |(r, t), (g, p)| (r + (g == p) as usize, t + 1));
    let accuracy = right as f64 / (total as f64).max(1.0);
    Ok(EvalScores { precision: accuracy, recall: accuracy, f1: accuracy, accuracy })
}

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn peak_rss_mib() -> f64 {
    let mut usage = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: getrusage fills the struct it is given.
    let usage = unsafe {
        libc::getrusage(libc::RUSAGE_SELF, usage.as_mut_ptr());
        usage.assume_init()
    };
    usage.ru_maxrss as f64 / 1024.0
}
