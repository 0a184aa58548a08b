//! The epoch loop of the Hugging Face Trainer: seeded shuffling, padded batches, AdamW with
//! clipping and a linear schedule, validation after every epoch (with early stopping when asked),
//! the best epoch's weights restored for the single test evaluation. With a `stride`, sentences
//! longer than `max_length` become overlapping windows: each window trains, and each word is
//! evaluated from the window where it is farthest from an edge.

use super::batch::{epoch_order, eval_batches, micro_batches, padded_targets, steps_per_epoch};
use super::clip::{clip_coefficient, global_norm_host};
use super::config::{precisions_of, Engine, Precision, TrainConfig};
use super::error::TrainError;
use super::graph::{read_loss, GraphEngine};
use super::optimizer::{AdamW, AdamWConfig};
use super::outcome::{EpochRecord, EvalScores, TrainEvent, TrainOutcome, TruncationLoss};
use super::schedule::LinearSchedule;
use super::select::{best_epoch, stops_early};
use crate::model::align::{align_sentence, align_windows, AlignedSentence};
use crate::model::encoder::HostBatch;
use crate::model::fast;
use crate::model::head::labelled_count;
use crate::model::load::{load_model, resolve, LoadedModel};
use crate::model::tokenizer::load_tokenizer;
use crate::model::transfer::Transfers;
use crate::model::{masked_cross_entropy, Dropout, TokenClassifier};
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
    if cfg.early_stopping_patience > 0 && validation.is_empty() {
        return Err(TrainError::Config("early stopping needs a validation split; this run has none".into()));
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
    let started = Instant::now();
    let epochs = run.epochs(&splits, validation, evaluate, on_event)?;
    let train_seconds = started.elapsed().as_secs_f64();
    let tested = run.test(&splits.test, test, evaluate, on_event)?;
    let (engine, skipped_steps, transfers_per_step) = run.finish()?;
    let tokens = splits.train.windows.iter().map(|s| s.ids.len()).sum::<usize>();
    let epochs_run = epochs.len();
    Ok(TrainOutcome {
        best_epoch: run.best_epoch,
        stopped_epoch: run.stopped_epoch,
        epochs,
        test: tested.scores,
        test_gold: tested.gold,
        test_pred: tested.pred,
        entities_lost_to_truncation: splits.truncation(),
        n_parameters: run.model.params().n_elements(),
        train_seconds,
        train_tokens_per_sec: (tokens * epochs_run) as f64 / train_seconds.max(1e-9),
        train_tokens_per_epoch: tokens,
        test_seconds: tested.seconds,
        missing_tensors: missing,
        unexpected_tensors: unexpected,
        engine,
        skipped_steps,
        transfers_per_step,
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
    // Windows are cut from whole sentences: a tokenizer that does not truncate.
    let mut whole = tokenizer.clone();
    whole.with_truncation(None).map_err(|e| TrainError::Config(format!("tokenizer without truncation: {e}")))?;
    let align = |split, sentences| align_split(&tokenizer, &whole, sentences, &label_ids, cfg, split);
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
    let all = splits.train.windows.iter().chain(&splits.validation.windows).chain(&splits.test.windows);
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

/// Aligns a split: one window per sentence (truncated at `max_length`), or with a stride as
/// many overlapping windows as a sentence needs (cut from `whole`, which does not truncate).
fn align_split(
    tokenizer: &tokenizers::Tokenizer,
    whole: &tokenizers::Tokenizer,
    sentences: &[TrainSentence],
    label_ids: &HashMap<String, usize>,
    cfg: &TrainConfig,
    split: &'static str,
) -> Result<AlignedSplit, TrainError> {
    let mut aligned = AlignedSplit { windows: Vec::new(), sentences: Vec::with_capacity(sentences.len()) };
    for (index, s) in sentences.iter().enumerate() {
        let windows = match cfg.stride {
            0 => align_sentence(tokenizer, &s.words, Some(&s.tags), label_ids, cfg.label_alignment).map(|a| vec![a]),
            stride => align_windows(whole, &s.words, &s.tags, label_ids, cfg.label_alignment, cfg.max_length, stride),
        };
        let windows = windows.map_err(|source| TrainError::Align { split, index, source })?;
        let first = aligned.windows.len();
        aligned.windows.extend(windows);
        aligned.sentences.push(first..aligned.windows.len());
    }
    Ok(aligned)
}

/// A split's windows (one per sentence without a stride) and each sentence's windows.
struct AlignedSplit {
    windows: Vec<AlignedSentence>,
    sentences: Vec<std::ops::Range<usize>>,
}

impl AlignedSplit {
    /// Per sentence and word, the prediction of the one window that has the word's first
    /// sub-word (`None` for words without one).
    fn sentence_words(&self, per_window: &[Vec<Option<usize>>]) -> Vec<Vec<Option<usize>>> {
        self.sentences
            .iter()
            .map(|range| {
                let mut words = per_window[range.start].clone();
                for window in &per_window[range.start + 1..range.end] {
                    words.iter_mut().zip(window).for_each(|(w, p)| *w = w.or(*p));
                }
                words
            })
            .collect()
    }
}

struct Splits {
    train: AlignedSplit,
    validation: AlignedSplit,
    test: AlignedSplit,
}

impl Splits {
    fn truncation(&self) -> TruncationLoss {
        let lost = |split: &AlignedSplit| split.windows.iter().map(|s| s.entities_lost).sum();
        TruncationLoss {
            train: lost(&self.train),
            validation: lost(&self.validation),
            test: lost(&self.test),
            test_words: self.test.windows.iter().map(|s| s.truncated_words).sum(),
        }
    }
}

/// The engine of a run and its state.
enum Steps {
    /// The fused CPU path: host gradient buffers reused across steps.
    Fused {
        optimizer: AdamW,
        dropout: Dropout,
        grads: Vec<Vec<f32>>,
    },
    Graph(Box<GraphEngine>),
}

/// Mutable state of one run.
struct Run<'a> {
    /// The f32 model (in half precision the graph engine trains a copy and writes its f32
    /// masters back here at the end).
    model: TokenClassifier,
    cfg: &'a TrainConfig,
    steps: Steps,
    schedule: LinearSchedule,
    /// Optimizer steps attempted.
    step: usize,
    /// Optimizer steps taken (the schedule's position: skipped fp16 steps do not advance it).
    scheduled: usize,
    best_epoch: usize,
    best_weights: Option<Vec<Tensor>>,
    /// Set when early stopping ended training after this epoch.
    stopped_epoch: Option<usize>,
}

/// The engine `cfg` asks for on `device`, refused when it cannot run there or cannot compute
/// the precision.
fn choose_engine(cfg: &TrainConfig, model: &TokenClassifier, device: &Device) -> Result<Engine, TrainError> {
    let engine = match (cfg.engine, device.is_cpu() && fast::available(model)) {
        (Engine::Auto, false) => Engine::Graph,
        (engine, _) => engine.resolve(device.is_cpu()),
    };
    if engine == Engine::Fused && !device.is_cpu() {
        return Err(TrainError::Config("the fused engine runs on the CPU only; use engine = \"graph\"".into()));
    }
    let supported = precisions_of(engine);
    if !supported.contains(&cfg.precision.name()) {
        return Err(TrainError::Config(format!(
            "the {} engine computes precision {}, not {}; engine = \"graph\" computes {}",
            engine.name(),
            supported.join(", "),
            cfg.precision.name(),
            precisions_of(Engine::Graph).join(", ")
        )));
    }
    Ok(engine)
}

impl<'a> Run<'a> {
    fn new(
        model: TokenClassifier,
        cfg: &'a TrainConfig,
        device: &Device,
        splits: &Splits,
    ) -> Result<Run<'a>, TrainError> {
        let total = cfg.epochs * steps_per_epoch(splits.train.windows.len(), cfg.batch_size);
        let steps = match choose_engine(cfg, &model, device)? {
            Engine::Fused => Steps::Fused {
                optimizer: AdamW::new(model.params(), AdamWConfig::with_weight_decay(cfg.weight_decay))?,
                dropout: Dropout::new(cfg.seed),
                grads: fast::zero_grads(model.params()),
            },
            _ => Steps::Graph(Box::new(GraphEngine::new(&model, cfg, device)?)),
        };
        Ok(Run {
            schedule: LinearSchedule::new(cfg.learning_rate, total, cfg.warmup_steps, cfg.warmup_ratio),
            steps,
            model,
            cfg,
            step: 0,
            scheduled: 0,
            best_epoch: 0,
            best_weights: None,
            stopped_epoch: None,
        })
    }

    /// The engine that ran, fp16 steps skipped, and (graph engine) the most copies of a step;
    /// leaves the f32 weights in `self.model`.
    fn finish(&self) -> Result<(Engine, usize, Option<Transfers>), TrainError> {
        match &self.steps {
            Steps::Fused { .. } => Ok((Engine::Fused, 0, None)),
            Steps::Graph(g) => {
                g.write_masters(self.model.params())?;
                Ok((Engine::Graph, g.skipped_steps(), Some(g.worst_step_transfers())))
            }
        }
    }

    /// The weights as they are now (the f32 masters on the graph engine).
    fn snapshot(&self) -> Result<Vec<Tensor>, TrainError> {
        match &self.steps {
            Steps::Fused { .. } => Ok(self.model.params().snapshot()?),
            Steps::Graph(g) => Ok(g.snapshot()),
        }
    }

    fn restore(&mut self, weights: &[Tensor]) -> Result<(), TrainError> {
        match &mut self.steps {
            Steps::Fused { .. } => Ok(self.model.params().restore(weights)?),
            Steps::Graph(g) => Ok(g.restore(weights)?),
        }
    }

    /// The model evaluation runs (in the compute dtype on the graph engine), and the engine.
    fn predict(&self, aligned: &[AlignedSentence]) -> Result<SplitPrediction, TrainError> {
        match &self.steps {
            Steps::Fused { .. } => predict_split(&self.model, aligned, self.cfg.eval_batch_size, &Device::Cpu),
            Steps::Graph(g) => predict_on_graph(g, aligned, self.cfg.eval_batch_size),
        }
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
            let (patience, threshold) = (self.cfg.early_stopping_patience, self.cfg.early_stopping_threshold);
            if epoch < self.cfg.epochs && stops_early(&records, self.cfg.select_best_by, patience, threshold) {
                self.stopped_epoch = Some(epoch);
                on_event(TrainEvent::StoppedEarly { epoch });
                break;
            }
        }
        if let Some(weights) = self.best_weights.take() {
            self.restore(&weights)?;
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
                false => Some(self.snapshot()?),
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
        let order = epoch_order(splits.train.windows.len(), self.cfg.seed, epoch);
        let batches: Vec<&[usize]> = order.chunks(self.cfg.batch_size).collect();
        on_event(TrainEvent::EpochStart { epoch, steps: batches.len() });
        let (mut loss_sum, mut lr) = (0.0, 0.0);
        for batch in &batches {
            lr = self.schedule.lr(self.scheduled);
            let loss = self.optimizer_step(batch, &splits.train.windows, lr, epoch)?;
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
        let tokens: usize = splits.train.windows.iter().map(|s| s.ids.len()).sum();
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
        if let Steps::Graph(engine) = &mut self.steps {
            let micro: Vec<_> = micro.iter().map(|rows| host_batch(rows, train, self.model.config())).collect();
            let outcome = engine.step(&micro, denominator, self.step as u64, lr, self.cfg.max_grad_norm)?;
            let scaled = self.cfg.precision == Precision::Fp16;
            if !scaled && !outcome.applied {
                return Err(non_finite);
            }
            self.scheduled += outcome.applied as usize;
            return Ok(outcome.loss);
        }
        let Steps::Fused { optimizer, dropout, grads } = &mut self.steps else { unreachable!("graph handled above") };
        let loss = fused_gradients(&self.model, &micro, train, denominator, dropout, grads);
        let norm = global_norm_host(grads);
        match loss {
            Ok(loss) if !loss.is_finite() || !norm.is_finite() => Err(non_finite),
            Ok(loss) => {
                let scale = clip_coefficient(norm, self.cfg.max_grad_norm);
                optimizer.step_host(grads, lr, scale)?;
                self.scheduled += 1;
                Ok(loss)
            }
            Err(e) => Err(e),
        }
    }

    /// Scores the validation split: word-level tags at first sub-words of kept words.
    fn validate(
        &self,
        aligned: &AlignedSplit,
        sentences: &[TrainSentence],
        evaluate: Evaluate,
    ) -> Result<(EvalScores, f64), TrainError> {
        if aligned.windows.is_empty() {
            return Ok((EvalScores::default(), f64::NAN));
        }
        let SplitPrediction { words, loss } = self.predict(&aligned.windows)?;
        let predicted = aligned.sentence_words(&words);
        let (gold, pred) = kept_words(sentences, &predicted, self.model.labels());
        let scores = evaluate(&gold, &pred).map_err(|e| TrainError::Evaluate(e.into()))?;
        Ok((scores, loss))
    }

    /// Scores the test split once with the restored weights.
    fn test(
        &self,
        aligned: &AlignedSplit,
        sentences: &[TrainSentence],
        evaluate: Evaluate,
        on_event: &mut dyn FnMut(TrainEvent),
    ) -> Result<Tested, TrainError> {
        let started = Instant::now();
        let SplitPrediction { words, .. } = self.predict(&aligned.windows)?;
        let predicted = aligned.sentence_words(&words);
        let (gold, pred) = kept_words(sentences, &predicted, self.model.labels());
        let scores = match aligned.windows.is_empty() {
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

/// Loss, and gradients into `grads` (zeroed first), on the fused CPU path ([`fast`]).
fn fused_gradients(
    model: &TokenClassifier,
    micro: &[&[usize]],
    train: &[AlignedSentence],
    denominator: f64,
    dropout: &mut Dropout,
    grads: &mut [Vec<f32>],
) -> Result<f64, TrainError> {
    grads.iter_mut().for_each(|g| crate::model::kernels::zero(g));
    let mut loss = 0.0;
    for rows in micro {
        let (batch, targets) = host_batch(rows, train, model.config());
        loss += fast::loss_and_grads(model, &batch, &targets, denominator, Some(&mut *dropout), grads)?;
    }
    Ok(loss)
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
fn eval_logits(model: &TokenClassifier, batch: &HostBatch, device: &Device) -> Result<Tensor, TrainError> {
    if fast::available(model) {
        let labels = model.labels().len();
        let logits = fast::logits(model, batch)?;
        return Ok(Tensor::from_vec(logits, (batch.batch * batch.seq, labels), &Device::Cpu)?);
    }
    let inputs = crate::model::Inputs::from_host(batch, device)?;
    Ok(model.forward(&inputs, None)?.to_dtype(candle_core::DType::F32)?)
}

/// Gold and predicted tags of the words that kept a sub-word (the recipe drops the rest).
fn kept_words(
    sentences: &[TrainSentence],
    predicted: &[Vec<Option<usize>>],
    labels: &[String],
) -> (Vec<Vec<String>>, Vec<Vec<String>>) {
    sentences
        .iter()
        .zip(predicted)
        .map(|(s, p)| {
            s.tags.iter().zip(p).filter_map(|(gold, pred)| pred.map(|c| (gold.clone(), labels[c].clone()))).unzip()
        })
        .unzip()
}

/// Runs the model without dropout over `aligned` in length-grouped batches.
pub fn predict_split(
    model: &TokenClassifier,
    aligned: &[AlignedSentence],
    batch_size: usize,
    device: &Device,
) -> Result<SplitPrediction, TrainError> {
    let mut loss_sum = 0.0;
    let words = predict_words(aligned, batch_size, model.config(), |host, targets, weight| {
        let logits = eval_logits(model, host, device)?;
        let labelled = labelled_count(targets).max(1) as f64;
        let loss = masked_cross_entropy(&logits, targets, labelled)?.to_scalar::<f32>()?;
        loss_sum += loss as f64 * weight;
        Ok(logits.argmax(D::Minus1)?.to_vec1::<u32>()?)
    })?;
    Ok(SplitPrediction { words, loss: loss_sum / aligned.len().max(1) as f64 })
}

/// [`predict_split`] on the graph engine: per batch only the class ids come back, the loss
/// once at the end.
fn predict_on_graph(
    engine: &GraphEngine,
    aligned: &[AlignedSentence],
    batch_size: usize,
) -> Result<SplitPrediction, TrainError> {
    let mut loss_sum = None;
    let words = predict_words(aligned, batch_size, engine.model().config(), |host, targets, weight| {
        Ok(engine.classify(host, targets, weight, &mut loss_sum)?)
    })?;
    Ok(SplitPrediction { words, loss: read_loss(loss_sum)? / aligned.len().max(1) as f64 })
}

/// Each word's class at its first sub-word, from `classify(batch, targets, sentences in the
/// batch)` -> the class id of every position, over length-grouped batches.
fn predict_words(
    aligned: &[AlignedSentence],
    batch_size: usize,
    cfg: &crate::model::Config,
    mut classify: impl FnMut(&HostBatch, &[i64], f64) -> Result<Vec<u32>, TrainError>,
) -> Result<Vec<Vec<Option<usize>>>, TrainError> {
    let lengths: Vec<usize> = aligned.iter().map(|s| s.ids.len()).collect();
    let mut predicted = vec![Vec::new(); aligned.len()];
    for batch in eval_batches(&lengths, batch_size) {
        let (host, targets) = host_batch(&batch, aligned, cfg);
        let classes = classify(&host, &targets, batch.len() as f64)?;
        for (row, &i) in batch.iter().enumerate() {
            predicted[i] =
                aligned[i].first_token.iter().map(|t| t.map(|t| classes[row * host.seq + t] as usize)).collect();
        }
    }
    Ok(predicted)
}
