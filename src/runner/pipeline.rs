//! The real per-run pipeline behind the scheduler's `Trainer` seam: load and split the
//! dataset, load the model and align (`prepare`), fine-tune (`train::train`), score and
//! assemble the run's output.

use anyhow::{anyhow, Context};
use candle_core::Device;

use super::dataset::{load_run_data, RunData, RunSplit};
use super::prepare::{prepare_run, PreparedRun};
use crate::data::Scheme;
use crate::metrics::{error_analysis, evaluate, Mode, Report, ZeroDivision};
use crate::model::ModelLocation;
use crate::plan::RunSpec;
use crate::schedule::{FailureKind, RunContext, RunFailure, RunOutput, RunProgress, Trainer};
use crate::spec::{expand_env, ModelSource, RunParams};
use crate::store::{ClassScores, EpochRow, PredictedSentence, Scores};
use crate::train::{self, EvalScores, TrainConfig, TrainError, TrainEvent, TrainOutcome};

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
        let params = &run.typed;
        let scheme: Scheme = params.scheme.parse().map_err(|e: String| anyhow!(e))?;
        let alias = &params.dataset;
        let entry = ctx.spec.datasets.get(alias).ok_or_else(|| anyhow!("unknown dataset alias {alias}"))?;
        let part = RunSplit { fold: params.fold, train_fraction: params.train.train_fraction, seed: params.seed };
        let data = load_run_data(alias, entry, scheme, part)?;
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
        let location = model_location(ctx, &params.model)?;
        let cfg = train_config(params, ctx.grad_accum)?;
        let device = device(&ctx.device)?;
        let PreparedRun { model, splits, source } =
            prepare_run(&location, &data.labels, [&data.train, &data.validation, &data.test], &cfg, &device)
                .map_err(classify)?;
        log(format!(
            "model: {} parameters; missing tensors {:?}; unexpected tensors {:?}",
            model.params().n_elements(),
            source.missing,
            source.unexpected
        ));
        let mut tracker = ProgressTracker { epochs: cfg.epochs, ..ProgressTracker::default() };
        let mut on_event = |e: TrainEvent| {
            if let Some(p) = tracker.on(&e) {
                progress(p);
            }
            match e {
                TrainEvent::EpochEnd(rec) => log(format!(
                    "epoch {}: train_loss {:.4} val_f1 {:.4} ({:.1}s, {:.0} tokens/s)",
                    rec.epoch, rec.train_loss, rec.val.f1, rec.seconds, rec.tokens_per_sec
                )),
                TrainEvent::StoppedEarly { epoch } => log(format!("early stopping after epoch {epoch}")),
                TrainEvent::BestEpoch { epoch } => log(format!("best epoch {epoch} restored")),
                TrainEvent::Kernels { note, .. } => log(note),
                _ => {}
            }
        };
        let outcome = train::train(model, &splits, &cfg, &device, &seqeval_scores, &mut on_event).map_err(classify)?;
        if params.train.save_model {
            let dir = ctx.store.model_dir(&run.id);
            source
                .save_model(&outcome.model, &dir)
                .with_context(|| format!("saving the model to {}", dir.display()))?;
        }
        let tensors = (source.missing.as_slice(), source.unexpected.as_slice());
        output(run, &data, &outcome, &cfg, tensors)
    }
}

/// Tells the scheduler which failures are out-of-memory (retried with more accumulation) and
/// which are non-finite losses (never retried).
/// Turns training events into progress reports: one per step (no validation score yet), and
/// one when an epoch's validation ends, carrying that epoch's F1.
#[derive(Debug, Default)]
struct ProgressTracker {
    epochs: usize,
    last_step: usize,
    steps: usize,
}

impl ProgressTracker {
    fn on(&mut self, e: &TrainEvent) -> Option<RunProgress> {
        let epochs = self.epochs;
        match e {
            TrainEvent::Step { epoch, step, total_steps, loss, .. } => {
                (self.last_step, self.steps) = (*step, *total_steps);
                Some(RunProgress { epoch: *epoch, epochs, step: *step, steps: *total_steps, loss: *loss, val_f1: None })
            }
            TrainEvent::EpochEnd(rec) => Some(RunProgress {
                epoch: rec.epoch,
                epochs,
                step: self.last_step,
                steps: self.steps,
                loss: rec.train_loss,
                val_f1: Some(rec.val.f1),
            }),
            _ => None,
        }
    }
}

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

/// The spec's model: a local directory (with `${VAR}` expanded) or a hub repository.
fn model_location(ctx: &RunContext<'_>, alias: &str) -> anyhow::Result<ModelLocation> {
    match ctx.spec.models.get(alias) {
        Some(ModelSource::Path { path }) => {
            Ok(ModelLocation::Dir(expand_env(path).map_err(|e| anyhow!("models.{alias}.path: {e}"))?.into()))
        }
        Some(ModelSource::Hub { id, revision }) => {
            Ok(ModelLocation::Hub { id: id.clone(), revision: revision.clone() })
        }
        None => Err(anyhow!("unknown model alias {alias}")),
    }
}

/// The run's typed parameters as a training configuration; `grad_accum` comes from the
/// scheduler (retries after running out of memory raise it).
pub fn train_config(params: &RunParams, grad_accum: usize) -> anyhow::Result<TrainConfig> {
    let t = &params.train;
    let cfg = TrainConfig {
        epochs: t.epochs,
        batch_size: t.batch_size,
        grad_accum: grad_accum.max(1),
        learning_rate: params.learning_rate,
        weight_decay: t.weight_decay,
        warmup_ratio: t.warmup_ratio,
        warmup_steps: t.warmup_steps,
        max_grad_norm: t.max_grad_norm,
        max_length: t.max_length,
        label_alignment: t.label_alignment,
        stride: t.stride,
        seed: params.seed,
        select_best_by: t.select_best_by,
        early_stopping_patience: t.early_stopping_patience,
        early_stopping_threshold: t.early_stopping_threshold,
        engine: t.engine,
        precision: t.precision,
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
fn predicted_sentences(data: &RunData, outcome: &TrainOutcome) -> Vec<PredictedSentence> {
    let tagged = data.test.iter().zip(&outcome.test_gold).zip(&outcome.test_pred);
    tagged
        .map(|((t, gold), predicted)| PredictedSentence {
            words: t.words.clone(),
            gold: gold.clone(),
            predicted: predicted.clone(),
        })
        .collect()
}

fn output(
    run: &RunSpec,
    data: &RunData,
    outcome: &TrainOutcome,
    cfg: &TrainConfig,
    (missing, unexpected): (&[String], &[String]),
) -> anyhow::Result<RunOutput> {
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
            "fold": run.typed.fold,
            "train_fraction": data.train_fraction,
        },
        "entities_lost_to_truncation": outcome.entities_lost_to_truncation,
        "missing_tensors": missing,
        "unexpected_tensors": unexpected,
        "micro_batch": micro_batch,
        "grad_accum": cfg.grad_accum,
        "train_tokens_per_epoch": outcome.train_tokens_per_epoch,
        "test_seconds": outcome.test_seconds,
        "early_stopping": {
            "patience": cfg.early_stopping_patience,
            "threshold": cfg.early_stopping_threshold,
            "stopped_epoch": outcome.stopped_epoch,
            "epochs_run": outcome.epochs.len(),
        },
        "engine": outcome.engine.name(),
        "precision": outcome.precision,
        "kernels": outcome.kernels,
        "skipped_steps": outcome.skipped_steps,
        "transfers_per_step": outcome.transfers_per_step,
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
        errors: Some(error_analysis(&outcome.test_gold, &outcome.test_pred)?),
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
    use crate::progress::PlainProgress;
    use crate::schedule::SweepEvent;
    use crate::spec::ParamValue;
    use crate::train::{EpochRecord, EvalScores};

    #[test]
    fn the_progress_line_of_an_epoch_shows_that_epochs_validation_f1_and_the_last_epoch_is_shown() {
        let step = |epoch, step| TrainEvent::Step {
            epoch,
            step,
            total_steps: 4,
            loss: 1.0 / step as f64,
            learning_rate: 1e-4,
        };
        let end = |epoch, f1| {
            let val = EvalScores { precision: f1, recall: f1, f1, accuracy: f1 };
            let rec = EpochRecord {
                epoch,
                train_loss: 0.5 / epoch as f64,
                val,
                val_loss: 0.0,
                learning_rate: 0.0,
                seconds: 1.0,
                eval_seconds: 0.1,
                tokens_per_sec: 1.0,
            };
            TrainEvent::EpochEnd(rec)
        };
        let events = [step(1, 1), step(1, 2), end(1, 0.25), step(2, 3), step(2, 4), end(2, 0.5)];
        let mut tracker = ProgressTracker { epochs: 2, ..ProgressTracker::default() };
        let mut plain = PlainProgress::new();
        let lines: Vec<String> = events
            .iter()
            .filter_map(|e| tracker.on(e))
            .filter_map(|progress| plain.line(&SweepEvent::Progress { id: "r".into(), progress }))
            .collect();
        assert_eq!(lines, ["  r epoch 1/2 loss 0.5000 val_f1 0.2500", "  r epoch 2/2 loss 0.2500 val_f1 0.5000"]);
    }

    fn run(pairs: &[(&str, ParamValue)]) -> RunParams {
        crate::plan::tests_support::run_spec(pairs).typed
    }

    #[test]
    fn run_parameters_become_the_training_configuration() {
        let cfg = train_config(&run(&[("label_alignment", ParamValue::Str("all".into()))]), 2).unwrap();
        assert_eq!((cfg.epochs, cfg.batch_size, cfg.grad_accum, cfg.max_length), (5, 16, 2, 256));
        assert_eq!((cfg.learning_rate, cfg.weight_decay, cfg.seed), (2e-5, 0.01, 67));
        assert_eq!(cfg.label_alignment, crate::spec::LabelAlignment::All);
        assert_eq!(cfg.select_best_by, crate::spec::SelectMetric::F1);
        let recall = train_config(&run(&[("select_best_by", ParamValue::Str("recall".into()))]), 1).unwrap();
        assert_eq!(recall.select_best_by, crate::spec::SelectMetric::Recall);
        let loss = train_config(&run(&[("select_best_by", ParamValue::Str("loss".into()))]), 1).unwrap();
        assert_eq!(loss.select_best_by, crate::spec::SelectMetric::Loss);
        assert!(train_config(&run(&[("batch_size", ParamValue::Int(2))]), 4).is_err(), "grad_accum > batch");
    }

    #[test]
    fn devices_and_recorded_versions() {
        assert!(matches!(device("cpu").unwrap(), Device::Cpu));
        assert!(device("cuda:x").is_err());
        assert!(env!("NERGRID_CANDLE_VERSION").starts_with("0."), "{}", env!("NERGRID_CANDLE_VERSION"));
    }
}
