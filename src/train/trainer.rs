//! The epoch loop of the Hugging Face Trainer: seeded shuffling, padded batches, AdamW with
//! clipping and a linear schedule, validation after every epoch, the best epoch's weights
//! restored for the single test evaluation.

use super::batch::{epoch_order, eval_batches, micro_batches, padded_targets, steps_per_epoch};
use super::clip::{clip_coefficient, global_norm, global_norm_host};
use super::config::{Precision, TrainConfig};
use super::error::TrainError;
use super::optimizer::{AdamW, AdamWConfig};
use super::outcome::{EpochRecord, EvalScores, TrainEvent, TrainOutcome, TruncationLoss};
use super::schedule::LinearSchedule;
use super::select::best_epoch;
use crate::model::align::{align_sentence, AlignedSentence};
use crate::model::bf16;
use crate::model::encoder::HostBatch;
use crate::model::fast;
use crate::model::head::labelled_count;
use crate::model::kernels::Products;
use crate::model::load::{load_model, resolve, LoadedModel};
use crate::model::tokenizer::load_tokenizer;
use crate::model::{masked_cross_entropy, Dropout, Inputs, TokenClassifier};
use candle_core::{Device, Tensor, D};
use std::collections::HashMap;
use std::path::Path;
use std::time::Instant;

/// A sentence of words with one tag each.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrainSentence {
    pub words: Vec<String>,
    pub tags: Vec<String>,
}

/// The metric the caller scores tag sequences with: (gold, predicted) -> scores.
pub type Evaluate<'a> = &'a dyn Fn(&[Vec<String>], &[Vec<String>]) -> anyhow::Result<EvalScores>;

/// Fine-tunes the model at `model` (a directory or hub id) for token classification over
/// `labels` (index = class id) and scores the best epoch on `test`.
#[allow(clippy::too_many_arguments)]
pub fn train(
    model: &Path,
    labels: &[String],
    train: &[TrainSentence],
    validation: &[TrainSentence],
    test: &[TrainSentence],
    cfg: &TrainConfig,
    device: &Device,
    evaluate: Evaluate,
    on_event: &mut dyn FnMut(TrainEvent),
) -> Result<TrainOutcome, TrainError> {
    if let Some(what) = cfg.invalid() {
        return Err(TrainError::Config(what));
    }
    if train.is_empty() {
        return Err(TrainError::EmptyTrain);
    }
    keep_freed_memory();
    let prepared = prepare(model, labels, [train, validation, test], cfg, device)?;
    let Prepared { files, tokenizer, loaded, splits } = prepared;
    let LoadedModel { model, missing, unexpected, .. } = loaded;
    on_event(TrainEvent::Loaded {
        n_parameters: model.params().n_elements(),
        missing: missing.clone(),
        unexpected: unexpected.clone(),
    });
    let mut run = Run::new(model, cfg, device, &splits)?;
    let kernels = run.kernels.clone();
    on_event(TrainEvent::Kernels {
        precision: cfg.precision.name(),
        family: kernels.family.clone(),
        note: kernels.note,
    });
    let started = Instant::now();
    let epochs = run.epochs(&splits, validation, evaluate, on_event)?;
    let train_seconds = started.elapsed().as_secs_f64();
    let tested = run.test(&splits.test, test, evaluate, on_event)?;
    let tokens = splits.train.iter().map(|s| s.ids.len()).sum::<usize>();
    Ok(TrainOutcome {
        best_epoch: run.best_epoch,
        epochs,
        test: tested.scores,
        test_gold: tested.gold,
        test_pred: tested.pred,
        entities_lost_to_truncation: splits.truncation(),
        n_parameters: run.model.params().n_elements(),
        train_seconds,
        train_tokens_per_sec: (tokens * cfg.epochs) as f64 / train_seconds.max(1e-9),
        train_tokens_per_epoch: tokens,
        test_seconds: tested.seconds,
        missing_tensors: missing,
        unexpected_tensors: unexpected,
        precision: cfg.precision.name(),
        kernels: kernels.family,
        model: run.model,
        tokenizer,
        source: files,
    })
}

/// Every step allocates and frees the same large activation buffers. glibc serves blocks
/// above its mmap threshold (at most 32 MiB) with fresh mappings and trims the heap top, so
/// each step page-faulted them in again and unmapped them (with TLB shootdowns): 15% of a
/// MiniLM step. Keeping freed memory in the heap lets steps reuse it; the peak is unchanged.
fn keep_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    static ONCE: std::sync::Once = std::sync::Once::new();
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    ONCE.call_once(|| {
        // SAFETY: mallopt only changes allocator thresholds; any value is valid.
        unsafe {
            libc::mallopt(libc::M_MMAP_THRESHOLD, 1 << 30);
            libc::mallopt(libc::M_TRIM_THRESHOLD, i32::MAX);
        }
    });
}

/// A run's inputs after loading: model files, tokenizer, model and aligned splits.
struct Prepared {
    files: crate::model::ModelFiles,
    tokenizer: tokenizers::Tokenizer,
    loaded: LoadedModel,
    splits: Splits,
}

fn prepare(
    model: &Path,
    labels: &[String],
    [train, validation, test]: [&[TrainSentence]; 3],
    cfg: &TrainConfig,
    device: &Device,
) -> Result<Prepared, TrainError> {
    let files = resolve(&model.to_string_lossy())?;
    let tokenizer = load_tokenizer(&files, cfg.max_length)?;
    let mut loaded = load_model(&files, labels, cfg.seed, device)?;
    check_lengths(loaded.model.config(), cfg.max_length)?;
    loaded.model = with_dropout_override(loaded.model, cfg.dropout);
    let label_ids: HashMap<String, usize> = labels.iter().enumerate().map(|(i, l)| (l.clone(), i)).collect();
    let align = |split, sentences| align_split(&tokenizer, sentences, &label_ids, cfg, split);
    let splits = Splits {
        train: align("train", train)?,
        validation: align("validation", validation)?,
        test: align("test", test)?,
    };
    check_vocabulary(&splits, loaded.model.config().vocab_size)?;
    Ok(Prepared { files, tokenizer, loaded, splits })
}

/// `max_length` must fit the position embeddings (RoBERTa's start after the padding id).
fn check_lengths(model: &crate::model::Config, max_length: usize) -> Result<(), TrainError> {
    let offset = match model.architecture {
        crate::model::Architecture::Roberta => model.pad_token_id as usize + 1,
        _ => 0,
    };
    let limit = model.max_position_embeddings.saturating_sub(offset);
    match max_length > limit {
        true => Err(TrainError::Config(format!("max_length {max_length} exceeds the model's {limit} positions"))),
        false => Ok(()),
    }
}

/// Token ids must index the embedding table (a tokenizer from another model would not).
fn check_vocabulary(splits: &Splits, vocab_size: usize) -> Result<(), TrainError> {
    let all = splits.train.iter().chain(&splits.validation).chain(&splits.test);
    match all.flat_map(|s| s.ids.iter()).find(|&&id| id as usize >= vocab_size) {
        Some(id) => Err(TrainError::Config(format!(
            "the tokenizer produced id {id}, beyond the model's vocabulary of {vocab_size}"
        ))),
        None => Ok(()),
    }
}

fn with_dropout_override(model: TokenClassifier, dropout: Option<f64>) -> TokenClassifier {
    let Some(p) = dropout else { return model };
    let mut cfg = model.config().clone();
    (cfg.hidden_dropout, cfg.attention_dropout, cfg.classifier_dropout) = (p, p, p);
    TokenClassifier::new(cfg, model.labels().to_vec(), model.params().clone())
}

fn align_split(
    tokenizer: &tokenizers::Tokenizer,
    sentences: &[TrainSentence],
    label_ids: &HashMap<String, usize>,
    cfg: &TrainConfig,
    split: &'static str,
) -> Result<Vec<AlignedSentence>, TrainError> {
    sentences
        .iter()
        .enumerate()
        .map(|(index, s)| {
            align_sentence(tokenizer, &s.words, Some(&s.tags), label_ids, cfg.label_alignment)
                .map_err(|source| TrainError::Align { split, index, source })
        })
        .collect()
}

struct Splits {
    train: Vec<AlignedSentence>,
    validation: Vec<AlignedSentence>,
    test: Vec<AlignedSentence>,
}

impl Splits {
    fn truncation(&self) -> TruncationLoss {
        let lost = |split: &[AlignedSentence]| split.iter().map(|s| s.entities_lost).sum();
        TruncationLoss {
            train: lost(&self.train),
            validation: lost(&self.validation),
            test: lost(&self.test),
            test_words: self.test.iter().map(|s| s.truncated_words).sum(),
        }
    }
}

/// Mutable state of one run.
struct Run<'a> {
    model: TokenClassifier,
    cfg: &'a TrainConfig,
    device: &'a Device,
    optimizer: AdamW,
    schedule: LinearSchedule,
    dropout: Dropout,
    step: usize,
    best_epoch: usize,
    best_weights: Option<Vec<Tensor>>,
    /// Gradient buffers of the fused CPU path, reused across steps; `None` on other devices.
    host_grads: Option<Vec<Vec<f32>>>,
    kernels: Kernels,
}

/// How a run's matrix products compute and which kernels do it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Kernels {
    products: Products,
    /// The family's name for `result.json`.
    family: String,
    /// The line `log.txt` gets.
    note: String,
}

/// The kernels for `precision` on the fused CPU path (`fused`) or candle's graph, with the
/// bf16 family `select` gives.
fn kernels(
    precision: Precision,
    fused: bool,
    select: impl FnOnce() -> Result<bf16::Selection, String>,
) -> Result<Kernels, TrainError> {
    let f32_kernels = |family: &str| Kernels {
        products: Products::F32,
        family: family.to_string(),
        note: format!("matrix products: {} in f32 ({family})", precision.name()),
    };
    match (precision, fused) {
        (Precision::Fp32 | Precision::Tf32, true) => Ok(f32_kernels(bf16::f32_family())),
        (Precision::Fp32, false) => Ok(f32_kernels("candle")),
        (Precision::Bf16, true) => {
            let selection = select().map_err(TrainError::Config)?;
            let family = selection.family.name().to_string();
            Ok(Kernels { products: Products::Bf16(selection.family), family, note: selection.note })
        }
        (other, _) => Err(TrainError::Config(format!(
            "precision {} is not computed on this device (the fused CPU engine computes fp32, tf32 and bf16; \
             the candle graph path fp32)",
            other.name()
        ))),
    }
}

impl<'a> Run<'a> {
    fn new(
        model: TokenClassifier,
        cfg: &'a TrainConfig,
        device: &'a Device,
        splits: &Splits,
    ) -> Result<Run<'a>, TrainError> {
        let total = cfg.epochs * steps_per_epoch(splits.train.len(), cfg.batch_size);
        let optimizer = AdamW::new(model.params(), AdamWConfig::with_weight_decay(cfg.weight_decay))?;
        let host_grads = fast::available(&model).then(|| fast::zero_grads(model.params()));
        let kernels = kernels(cfg.precision, host_grads.is_some(), bf16::select)?;
        Ok(Run {
            kernels,
            schedule: LinearSchedule::new(cfg.learning_rate, total, cfg.warmup_steps, cfg.warmup_ratio),
            optimizer,
            dropout: Dropout::new(cfg.seed),
            model,
            cfg,
            device,
            step: 0,
            best_epoch: 0,
            best_weights: None,
            host_grads,
        })
    }

    /// Trains every epoch, validating after each; leaves the best epoch's weights loaded.
    fn epochs(
        &mut self,
        splits: &Splits,
        validation: &[TrainSentence],
        evaluate: Evaluate,
        on_event: &mut dyn FnMut(TrainEvent),
    ) -> Result<Vec<EpochRecord>, TrainError> {
        let mut records = Vec::new();
        for epoch in 1..=self.cfg.epochs {
            let record = self.epoch(epoch, splits, validation, evaluate, on_event)?;
            on_event(TrainEvent::EpochEnd(record.clone()));
            records.push(record);
            self.keep_if_best(&records, validation.is_empty())?;
        }
        if let Some(weights) = self.best_weights.take() {
            self.model.params().restore(&weights)?;
        }
        on_event(TrainEvent::BestEpoch { epoch: self.best_epoch });
        Ok(records)
    }

    /// Snapshots the weights when the last epoch is the best so far (the last one when there
    /// is no validation split).
    fn keep_if_best(&mut self, records: &[EpochRecord], no_validation: bool) -> Result<(), TrainError> {
        let last = records.last().map_or(0, |r| r.epoch);
        let best = match no_validation {
            true => Some(last),
            false => best_epoch(records, self.cfg.select_best_by),
        };
        if best == Some(last) && last != self.best_epoch {
            self.best_epoch = last;
            // The last epoch's weights are the live ones: no copy needed if it stays best.
            self.best_weights = match last == self.cfg.epochs {
                true => None,
                false => Some(self.model.params().snapshot()?),
            };
        }
        Ok(())
    }

    fn epoch(
        &mut self,
        epoch: usize,
        splits: &Splits,
        validation: &[TrainSentence],
        evaluate: Evaluate,
        on_event: &mut dyn FnMut(TrainEvent),
    ) -> Result<EpochRecord, TrainError> {
        let started = Instant::now();
        let order = epoch_order(splits.train.len(), self.cfg.seed, epoch);
        let batches: Vec<&[usize]> = order.chunks(self.cfg.batch_size).collect();
        on_event(TrainEvent::EpochStart { epoch, steps: batches.len() });
        let (mut loss_sum, mut lr) = (0.0, 0.0);
        for batch in &batches {
            lr = self.schedule.lr(self.step);
            let loss = self.optimizer_step(batch, &splits.train, lr, epoch)?;
            loss_sum += loss;
            self.step += 1;
            on_event(TrainEvent::Step {
                epoch,
                step: self.step,
                total_steps: self.schedule.total,
                loss,
                learning_rate: lr,
            });
        }
        let seconds = started.elapsed().as_secs_f64();
        let tokens: usize = splits.train.iter().map(|s| s.ids.len()).sum();
        let eval_started = Instant::now();
        let (val, val_loss) = self.validate(&splits.validation, validation, evaluate)?;
        Ok(EpochRecord {
            epoch,
            train_loss: loss_sum / batches.len().max(1) as f64,
            val,
            val_loss,
            learning_rate: lr,
            seconds,
            eval_seconds: eval_started.elapsed().as_secs_f64(),
            tokens_per_sec: tokens as f64 / seconds.max(1e-9),
        })
    }

    /// Forward, backward over the batch's micro-batches, clipping and one AdamW update.
    /// Returns the batch's mean loss over labelled positions.
    fn optimizer_step(
        &mut self,
        batch: &[usize],
        train: &[AlignedSentence],
        lr: f64,
        epoch: usize,
    ) -> Result<f64, TrainError> {
        let labelled: usize = batch.iter().map(|&i| labelled_count(&train[i].targets)).sum();
        let denominator = labelled.max(1) as f64;
        let micro = micro_batches(batch, self.cfg.grad_accum);
        let non_finite = TrainError::NonFiniteLoss { epoch, step: self.step + 1 };
        if let Some(mut grads) = self.host_grads.take() {
            let loss = self.host_gradients(&micro, train, denominator, &mut grads);
            let norm = global_norm_host(&grads);
            let result = match loss {
                Ok(loss) if !loss.is_finite() || !norm.is_finite() => Err(non_finite),
                Ok(loss) => {
                    let scale = clip_coefficient(norm, self.cfg.max_grad_norm);
                    self.optimizer.step_host(&grads, lr, scale).map(|_| loss).map_err(TrainError::from)
                }
                Err(e) => Err(e),
            };
            self.host_grads = Some(grads);
            return result;
        }
        let (loss, grads) = self.graph_gradients(&micro, train, denominator)?;
        let present: Vec<&Tensor> = grads.iter().flatten().collect();
        let norm = global_norm(&present)?;
        if !loss.is_finite() || !norm.is_finite() {
            return Err(non_finite);
        }
        let scale = clip_coefficient(norm, self.cfg.max_grad_norm);
        self.optimizer.step(&grads, lr, scale)?;
        Ok(loss)
    }

    /// Loss, and gradients into `grads` (zeroed first), on the fused CPU path ([`fast`]).
    fn host_gradients(
        &mut self,
        micro: &[&[usize]],
        train: &[AlignedSentence],
        denominator: f64,
        grads: &mut [Vec<f32>],
    ) -> Result<f64, TrainError> {
        grads.iter_mut().for_each(|g| crate::model::kernels::zero(g));
        let mut loss = 0.0;
        for rows in micro {
            let (batch, targets) = host_batch(rows, train, self.model.config());
            let dropout = Some(&mut self.dropout);
            loss += fast::loss_and_grads(
                self.kernels.products,
                &self.model,
                &batch,
                &targets,
                denominator,
                dropout,
                grads,
            )?;
        }
        Ok(loss)
    }

    /// Loss and gradients through candle's autograd (any device).
    fn graph_gradients(
        &mut self,
        micro: &[&[usize]],
        train: &[AlignedSentence],
        denominator: f64,
    ) -> Result<(f64, Vec<Option<Tensor>>), TrainError> {
        let mut grads: Vec<Option<Tensor>> = vec![None; self.model.params().len()];
        let mut loss = 0.0;
        for rows in micro {
            let (batch, targets) = host_batch(rows, train, self.model.config());
            let inputs = Inputs::from_host(&batch, self.device)?;
            let logits = self.model.forward(&inputs, Some(&mut self.dropout))?;
            let micro_loss = masked_cross_entropy(&logits, &targets, denominator)?;
            loss += micro_loss.to_scalar::<f32>()? as f64;
            let mut store = micro_loss.backward()?;
            for (slot, (_, var)) in grads.iter_mut().zip(self.model.params().iter()) {
                if let Some(g) = store.remove(var.as_tensor()) {
                    *slot = Some(match slot.take() {
                        Some(acc) => (acc + g)?,
                        None => g,
                    });
                }
            }
        }
        Ok((loss, grads))
    }

    /// Scores the validation split: word-level tags at first sub-words of kept words.
    fn validate(
        &self,
        aligned: &[AlignedSentence],
        sentences: &[TrainSentence],
        evaluate: Evaluate,
    ) -> Result<(EvalScores, f64), TrainError> {
        if aligned.is_empty() {
            return Ok((EvalScores::default(), f64::NAN));
        }
        let SplitPrediction { words: predicted, loss } =
            predict_split(self.kernels.products, &self.model, aligned, self.cfg.eval_batch_size, self.device)?;
        let (gold, pred) = kept_words(aligned, sentences, &predicted, self.model.labels());
        let scores = evaluate(&gold, &pred).map_err(|e| TrainError::Evaluate(e.into()))?;
        Ok((scores, loss))
    }

    /// Scores the test split once with the restored weights.
    fn test(
        &self,
        aligned: &[AlignedSentence],
        sentences: &[TrainSentence],
        evaluate: Evaluate,
        on_event: &mut dyn FnMut(TrainEvent),
    ) -> Result<Tested, TrainError> {
        let started = Instant::now();
        let SplitPrediction { words: predicted, .. } =
            predict_split(self.kernels.products, &self.model, aligned, self.cfg.eval_batch_size, self.device)?;
        let (gold, pred) = kept_words(aligned, sentences, &predicted, self.model.labels());
        let scores = match aligned.is_empty() {
            true => EvalScores::default(),
            false => evaluate(&gold, &pred).map_err(|e| TrainError::Evaluate(e.into()))?,
        };
        on_event(TrainEvent::TestScored(scores));
        let labels = self.model.labels();
        let all_pred = predicted
            .iter()
            .map(|words| words.iter().map(|p| p.map_or_else(|| "O".to_string(), |c| labels[c].clone())).collect())
            .collect();
        Ok(Tested {
            scores,
            gold: sentences.iter().map(|s| s.tags.clone()).collect(),
            pred: all_pred,
            seconds: started.elapsed().as_secs_f64(),
        })
    }
}

/// The test evaluation: scores on kept words, every word's gold and predicted tag.
struct Tested {
    scores: EvalScores,
    gold: Vec<Vec<String>>,
    pred: Vec<Vec<String>>,
    seconds: f64,
}

/// Predicted classes of a split's words and its mean loss.
pub struct SplitPrediction {
    /// Per sentence and word: the class at the word's first sub-word, `None` without one.
    pub words: Vec<Vec<Option<usize>>>,
    /// Mean loss over batches, weighted by batch size (the Trainer's `eval_loss`).
    pub loss: f64,
}

/// The padded batch of sentences `rows` and its targets.
fn host_batch(rows: &[usize], split: &[AlignedSentence], cfg: &crate::model::Config) -> (HostBatch, Vec<i64>) {
    let ids: Vec<Vec<u32>> = rows.iter().map(|&i| split[i].ids.clone()).collect();
    let targets: Vec<&[i64]> = rows.iter().map(|&i| split[i].targets.as_slice()).collect();
    (HostBatch::new(&ids, cfg), padded_targets(&targets))
}

/// Logits without dropout: [batch * seq, labels] on the host, by the fused path on the CPU.
fn eval_logits(
    products: Products,
    model: &TokenClassifier,
    batch: &HostBatch,
    device: &Device,
) -> Result<Tensor, TrainError> {
    if fast::available(model) {
        let labels = model.labels().len();
        let logits = fast::logits(products, model, batch)?;
        return Ok(Tensor::from_vec(logits, (batch.batch * batch.seq, labels), &Device::Cpu)?);
    }
    Ok(model.forward(&Inputs::from_host(batch, device)?, None)?)
}

/// Gold and predicted tags of the words that kept a sub-word (the recipe drops the rest).
fn kept_words(
    aligned: &[AlignedSentence],
    sentences: &[TrainSentence],
    predicted: &[Vec<Option<usize>>],
    labels: &[String],
) -> (Vec<Vec<String>>, Vec<Vec<String>>) {
    aligned
        .iter()
        .zip(sentences)
        .zip(predicted)
        .map(|((a, s), p)| {
            a.first_token
                .iter()
                .zip(&s.tags)
                .zip(p)
                .filter(|((first, _), _)| first.is_some())
                .map(|((_, gold), pred)| (gold.clone(), labels[pred.unwrap_or(0)].clone()))
                .unzip()
        })
        .unzip()
}

/// Runs the model without dropout over `aligned` in length-grouped batches.
pub fn predict_split(
    products: Products,
    model: &TokenClassifier,
    aligned: &[AlignedSentence],
    batch_size: usize,
    device: &Device,
) -> Result<SplitPrediction, TrainError> {
    let lengths: Vec<usize> = aligned.iter().map(|s| s.ids.len()).collect();
    let mut predicted = vec![Vec::new(); aligned.len()];
    let mut loss_sum = 0.0;
    for batch in eval_batches(&lengths, batch_size) {
        let (host, targets) = host_batch(&batch, aligned, model.config());
        let logits = eval_logits(products, model, &host, device)?;
        let labelled = labelled_count(&targets).max(1) as f64;
        let loss = masked_cross_entropy(&logits, &targets, labelled)?.to_scalar::<f32>()?;
        loss_sum += loss as f64 * batch.len() as f64;
        let classes = logits.argmax(D::Minus1)?.to_vec1::<u32>()?;
        for (row, &i) in batch.iter().enumerate() {
            predicted[i] =
                aligned[i].first_token.iter().map(|t| t.map(|t| classes[row * host.seq + t] as usize)).collect();
        }
    }
    Ok(SplitPrediction { words: predicted, loss: loss_sum / aligned.len().max(1) as f64 })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::bf16::{choose, Family};

    #[test]
    fn precision_picks_the_products_and_names_the_kernels() {
        let amx = || choose(Family::Amx, None);
        let bf16 = kernels(Precision::Bf16, true, amx).unwrap();
        assert_eq!((bf16.products, bf16.family.as_str()), (Products::Bf16(Family::Amx), "amx"));
        assert_eq!(bf16.note, "bf16 kernels: amx");
        let forced = kernels(Precision::Bf16, true, || choose(Family::Amx, Some("emulated"))).unwrap();
        assert_eq!(forced.products, Products::Bf16(Family::Emulated));
        for precision in [Precision::Fp32, Precision::Tf32] {
            let f32_kernels = kernels(precision, true, amx).unwrap();
            assert_eq!((f32_kernels.products, f32_kernels.family.as_str()), (Products::F32, bf16::f32_family()));
        }
        assert_eq!(kernels(Precision::Fp32, false, amx).unwrap().family, "candle");
        let refused = |p, fused| kernels(p, fused, amx).unwrap_err().to_string();
        assert!(refused(Precision::Fp16, true).contains("precision fp16 is not computed"));
        assert!(refused(Precision::Bf16, false).contains("precision bf16 is not computed"));
        let bad = kernels(Precision::Bf16, true, || choose(Family::Amx, Some("x"))).unwrap_err();
        assert!(bad.to_string().contains("NERGRID_CPU_KERNELS: unknown kernel family \"x\""), "{bad}");
    }
}
