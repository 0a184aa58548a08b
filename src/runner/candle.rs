//! The real trainer: data -> model -> train -> metrics for one run, with candle.

use std::path::PathBuf;

use anyhow::{anyhow, Context};
use candle_core::Device;

use super::dataset::{load_run_data, RunData};
use crate::data::Scheme;
use crate::metrics::{evaluate, Mode, Report, ZeroDivision};
use crate::plan::RunSpec;
use crate::schedule::{FailureKind, RunContext, RunFailure, RunOutput, RunProgress, Trainer};
use crate::spec::{expand_env, ModelSource};
use crate::store::{ClassScores, EpochRow, Scores, TaggedSentence};
use crate::train::config::Precision;
use crate::train::{
    self, EvalScores, LabelAlignment, SelectMetric, TrainConfig, TrainError, TrainEvent, TrainOutcome, TrainSentence,
};

/// Fine-tunes each run's model with candle on the Hugging Face Trainer's recipe.
pub struct CandleTrainer;

impl Trainer for CandleTrainer {
    fn is_dry_run(&self) -> bool {
        false
    }

    fn train(
        &self,
        run: &RunSpec,
        ctx: &RunContext<'_>,
        progress: &mut dyn FnMut(RunProgress),
    ) -> anyhow::Result<RunOutput> {
        let scheme: Scheme = run.str_param("scheme").parse().map_err(|e: String| anyhow!(e))?;
        let alias = run.str_param("dataset");
        let entry = ctx.spec.datasets.get(alias).ok_or_else(|| anyhow!("unknown dataset alias {alias}"))?;
        let data = load_run_data(alias, entry, scheme)?;
        ctx.store.write_split_manifest(&run.id, &serde_json::to_value(&data.manifest)?)?;
        let log = |line: String| {
            let _ = ctx.store.log(&run.id, &line);
        };
        log(format!(
            "data: {} train / {} validation / {} test sentences, labels {:?}",
            data.train.len(),
            data.validation.len(),
            data.test.len(),
            data.labels
        ));
        for s in &data.skipped {
            log(format!("skipped record: {s}"));
        }
        let model = model_location(ctx, run.str_param("model"))?;
        let cfg = train_config(run, ctx.grad_accum)?;
        let device = device(&ctx.device)?;
        let epochs = cfg.epochs;
        let mut last_val = None;
        let mut on_event = |e: TrainEvent| match e {
            TrainEvent::Step { epoch, step, total_steps, loss, .. } => {
                progress(RunProgress { epoch, epochs, step, steps: total_steps, loss, val_f1: last_val })
            }
            TrainEvent::EpochEnd(rec) => {
                last_val = Some(rec.val.f1);
                log(format!(
                    "epoch {}: train_loss {:.4} val_f1 {:.4} ({:.1}s, {:.0} tokens/s)",
                    rec.epoch, rec.train_loss, rec.val.f1, rec.seconds, rec.tokens_per_sec
                ));
            }
            TrainEvent::Loaded { n_parameters, missing, unexpected } => {
                log(format!(
                    "model: {n_parameters} parameters; missing tensors {missing:?}; unexpected tensors {unexpected:?}"
                ));
            }
            TrainEvent::BestEpoch { epoch } => log(format!("best epoch {epoch} restored")),
            TrainEvent::Kernels { note, .. } => log(note),
            _ => {}
        };
        let (tr, va, te) = (sentences(&data.train), sentences(&data.validation), sentences(&data.test));
        let outcome = train::train(&model, &data.labels, &tr, &va, &te, &cfg, &device, &seqeval_scores, &mut on_event)
            .map_err(classify)?;
        if run.param("save_model").and_then(|v| v.as_bool()).unwrap_or(false) {
            let dir = ctx.store.model_dir(&run.id);
            outcome.save_model(&dir).with_context(|| format!("saving the model to {}", dir.display()))?;
        }
        output(run, &data, &outcome, &cfg)
    }
}

/// Tells the scheduler which failures are out-of-memory (retried with more accumulation) and
/// which are non-finite losses (never retried).
fn classify(e: TrainError) -> anyhow::Error {
    let message = anyhow::Error::new(e);
    let kind = match message.downcast_ref::<TrainError>() {
        Some(TrainError::OutOfMemory(_)) => FailureKind::OutOfMemory,
        Some(TrainError::NonFiniteLoss { .. }) => FailureKind::NonFiniteLoss,
        _ => return message,
    };
    let text = format!("{message:#}");
    message.context(RunFailure::new(kind, text))
}

/// seqeval's default mode (micro precision, recall, F1; no strict scheme), as the Trainer's
/// recipe scores validation and test.
pub fn seqeval_scores(gold: &[Vec<String>], pred: &[Vec<String>]) -> anyhow::Result<EvalScores> {
    let r = evaluate(gold, pred, Mode::Default, ZeroDivision::Zero)?;
    Ok(EvalScores { precision: r.precision, recall: r.recall, f1: r.f1, accuracy: r.accuracy })
}

/// Tagged sentences as the trainer takes them.
pub fn sentences(tagged: &[crate::data::TaggedSentence]) -> Vec<TrainSentence> {
    tagged.iter().map(|t| TrainSentence { words: t.words.clone(), tags: t.tags.clone() }).collect()
}

/// A local directory (with `${VAR}` expanded) or a hub id, as `train` resolves it.
fn model_location(ctx: &RunContext<'_>, alias: &str) -> anyhow::Result<PathBuf> {
    match ctx.spec.models.get(alias) {
        Some(ModelSource::Path { path }) => {
            Ok(PathBuf::from(expand_env(path).map_err(|e| anyhow!("models.{alias}.path: {e}"))?))
        }
        Some(ModelSource::Hub { id, revision: None }) => Ok(PathBuf::from(id)),
        Some(ModelSource::Hub { id, revision: Some(r) }) => Ok(PathBuf::from(format!("{id}@{r}"))),
        None => Err(anyhow!("unknown model alias {alias}")),
    }
}

/// The run's parameters as a training configuration.
pub fn train_config(run: &RunSpec, grad_accum: usize) -> anyhow::Result<TrainConfig> {
    let select_best_by = match run.str_param("select_best_by") {
        "precision" => SelectMetric::Precision,
        "recall" => SelectMetric::Recall,
        "accuracy" => SelectMetric::Accuracy,
        _ => SelectMetric::F1,
    };
    let label_alignment =
        if run.str_param("label_alignment") == "all" { LabelAlignment::All } else { LabelAlignment::First };
    let cfg = TrainConfig {
        epochs: run.usize_param("epochs"),
        batch_size: run.usize_param("batch_size"),
        grad_accum: grad_accum.max(1),
        learning_rate: run.f64_param("learning_rate"),
        weight_decay: run.f64_param("weight_decay"),
        warmup_ratio: run.f64_param("warmup_ratio"),
        warmup_steps: run.usize_param("warmup_steps"),
        max_grad_norm: run.f64_param("max_grad_norm"),
        max_length: run.usize_param("max_length"),
        label_alignment,
        seed: run.usize_param("seed") as u64,
        select_best_by,
        precision: Precision::parse(run.str_param("precision")).unwrap_or_default(),
        ..TrainConfig::default()
    };
    match cfg.invalid() {
        Some(what) => Err(anyhow!("invalid training settings: {what}")),
        None => Ok(cfg),
    }
}

/// `cpu` or `cuda:N` as a candle device.
pub fn device(name: &str) -> anyhow::Result<Device> {
    match name.strip_prefix("cuda:") {
        None => Ok(Device::Cpu),
        Some(n) => {
            let ordinal: usize = n.parse().map_err(|_| anyhow!("invalid device {name}"))?;
            Device::new_cuda(ordinal)
                .with_context(|| format!("opening {name} (is this build made with --features cuda?)"))
        }
    }
}

fn scores(e: &EvalScores) -> Scores {
    Scores { precision: e.precision, recall: e.recall, f1: e.f1, accuracy: e.accuracy }
}

fn class(c: &crate::metrics::ClassScore) -> ClassScores {
    ClassScores { precision: c.precision, recall: c.recall, f1: c.f1, support: c.support }
}

/// Per-type test report over every test word (words cut by truncation count as "O").
fn report_rows(report: &Report) -> std::collections::BTreeMap<String, ClassScores> {
    let mut rows: std::collections::BTreeMap<String, ClassScores> =
        report.per_type.iter().map(|(k, v)| (k.clone(), class(v))).collect();
    rows.insert("micro avg".into(), class(&report.micro_avg));
    rows.insert("macro avg".into(), class(&report.macro_avg));
    rows.insert("weighted avg".into(), class(&report.weighted_avg));
    rows
}

/// Every test sentence with its gold and predicted tags, for `predictions.conll`.
fn predicted_sentences(data: &RunData, outcome: &TrainOutcome) -> Vec<TaggedSentence> {
    let tagged = data.test.iter().zip(&outcome.test_gold).zip(&outcome.test_pred);
    tagged
        .map(|((t, gold), predicted)| TaggedSentence {
            words: t.words.clone(),
            gold: gold.clone(),
            predicted: predicted.clone(),
        })
        .collect()
}

fn output(run: &RunSpec, data: &RunData, outcome: &TrainOutcome, cfg: &TrainConfig) -> anyhow::Result<RunOutput> {
    let report = evaluate(&outcome.test_gold, &outcome.test_pred, Mode::Default, ZeroDivision::Zero)?;
    let best = outcome.epochs.iter().find(|e| e.epoch == outcome.best_epoch);
    let epochs = outcome
        .epochs
        .iter()
        .map(|e| EpochRow {
            epoch: e.epoch,
            train_loss: e.train_loss,
            val_precision: e.val.precision,
            val_recall: e.val.recall,
            val_f1: e.val.f1,
            learning_rate: e.learning_rate,
            seconds: e.seconds,
            tokens_per_sec: e.tokens_per_sec,
        })
        .collect();
    let micro_batch = cfg.batch_size.div_ceil(cfg.grad_accum);
    let details = serde_json::json!({
        "n_parameters": outcome.n_parameters,
        "labels": data.labels,
        "split": {
            "train": data.manifest.train.len(),
            "validation": data.manifest.validation.len(),
            "test": data.manifest.test.len(),
            "sha256": data.manifest.sha256,
        },
        "entities_lost_to_truncation": outcome.entities_lost_to_truncation,
        "missing_tensors": outcome.missing_tensors,
        "unexpected_tensors": outcome.unexpected_tensors,
        "micro_batch": micro_batch,
        "precision": outcome.precision,
        "kernels": outcome.kernels,
        "grad_accum": cfg.grad_accum,
        "train_tokens_per_epoch": outcome.train_tokens_per_epoch,
        "test_seconds": outcome.test_seconds,
        "skipped_records": data.skipped.len(),
        "audit": crate::data::audit(&data.corpus, &data.manifest),
        "versions": { "candle": env!("NERGRID_CANDLE_VERSION"), "nergrid": env!("CARGO_PKG_VERSION") },
        "run": run.id,
    });
    let serde_json::Value::Object(details) = details else { unreachable!() };
    Ok(RunOutput {
        test: scores(&outcome.test),
        validation: best.map(|b| scores(&b.val)),
        best_epoch: Some(outcome.best_epoch),
        report: report_rows(&report),
        epochs,
        predictions: Some(predicted_sentences(data, outcome)),
        train_seconds: Some(outcome.train_seconds),
        train_tokens_per_sec: Some(outcome.train_tokens_per_sec),
        details,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::ParamValue;

    fn run(pairs: &[(&str, ParamValue)]) -> RunSpec {
        let mut params: std::collections::BTreeMap<String, ParamValue> =
            crate::spec::TRAIN_KEYS.iter().map(|k| (k.name.to_string(), (k.default)())).collect();
        params.insert("learning_rate".into(), ParamValue::Float(2e-5));
        params.insert("seed".into(), ParamValue::Int(67));
        params.extend(pairs.iter().map(|(k, v)| (k.to_string(), v.clone())));
        RunSpec { index: 0, id: "r".into(), params }
    }

    #[test]
    fn run_parameters_become_the_training_configuration() {
        let cfg = train_config(&run(&[("label_alignment", ParamValue::Str("all".into()))]), 2).unwrap();
        assert_eq!((cfg.epochs, cfg.batch_size, cfg.grad_accum, cfg.max_length), (5, 16, 2, 256));
        assert_eq!((cfg.learning_rate, cfg.weight_decay, cfg.seed), (2e-5, 0.01, 67));
        assert_eq!(cfg.label_alignment, LabelAlignment::All);
        assert_eq!(cfg.select_best_by, SelectMetric::F1);
        let recall = train_config(&run(&[("select_best_by", ParamValue::Str("recall".into()))]), 1).unwrap();
        assert_eq!(recall.select_best_by, SelectMetric::Recall);
        assert!(train_config(&run(&[("batch_size", ParamValue::Int(2))]), 4).is_err(), "grad_accum > batch");
    }

    #[test]
    fn devices_and_recorded_versions() {
        assert!(matches!(device("cpu").unwrap(), Device::Cpu));
        assert!(device("cuda:x").is_err());
        assert!(env!("NERGRID_CANDLE_VERSION").starts_with("0."), "{}", env!("NERGRID_CANDLE_VERSION"));
    }
}
