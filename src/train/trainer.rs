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
use crate::model::align::AlignedSentence;
use crate::model::bf16;
use crate::model::encoder::HostBatch;
use crate::model::fused;
use crate::model::head::labelled_count;
use crate::model::kernels::Products;
use crate::model::transfer::Transfers;
use crate::model::{masked_cross_entropy, Dropout, TokenClassifier};
use candle_core::{Device, Tensor, D};
use std::time::Instant;

/// The metric the caller scores tag sequences with: (gold, predicted) -> scores.
pub type Evaluate<'a> = &'a dyn Fn(&[Vec<String>], &[Vec<String>]) -> anyhow::Result<EvalScores>;

/// A split's windows (one per sentence without a stride) and each sentence's windows.
#[derive(Debug, Clone, Default)]
pub struct AlignedSplit {
    pub windows: Vec<AlignedSentence>,
    /// Per sentence: the range of its windows in `windows`.
    pub sentences: Vec<std::ops::Range<usize>>,
}

impl AlignedSplit {
    /// One window per sentence.
    pub fn whole(windows: Vec<AlignedSentence>) -> AlignedSplit {
        let sentences = (0..windows.len()).map(|i| i..i + 1).collect();
        AlignedSplit { windows, sentences }
    }

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

/// A run's three splits, tokenized and aligned to the model's labels, with the word-level
/// gold tags that validation and test are scored against.
#[derive(Debug, Clone, Default)]
pub struct AlignedSplits {
    pub train: AlignedSplit,
    pub validation: AlignedSplit,
    pub test: AlignedSplit,
    /// Per validation sentence: its words' gold tags.
    pub validation_tags: Vec<Vec<String>>,
    /// Per test sentence: its words' gold tags.
    pub test_tags: Vec<Vec<String>>,
}

impl AlignedSplits {
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

/// Fine-tunes `model` (already loaded, its head sized for the labels) on `splits.train`,
/// validating after every epoch, and scores the best epoch on `splits.test`. No file, network
/// or process-wide effects: loading, tokenizing and aligning are the caller's
/// (`runner::prepare_run`), and so are allocator settings.
pub fn train(
    model: TokenClassifier,
    splits: &AlignedSplits,
    cfg: &TrainConfig,
    device: &Device,
    evaluate: Evaluate,
    on_event: &mut dyn FnMut(TrainEvent),
) -> Result<TrainOutcome, TrainError> {
    if let Some(what) = cfg.invalid() {
        return Err(TrainError::Config(what));
    }
    if splits.train.windows.is_empty() {
        return Err(TrainError::EmptyTrain);
    }
    if cfg.early_stopping_patience > 0 && splits.validation.windows.is_empty() {
        return Err(TrainError::Config("early stopping needs a validation split; this run has none".into()));
    }
    let mut run = Run::new(model, cfg, device, splits)?;
    on_event(TrainEvent::Kernels {
        precision: cfg.precision.name(),
        family: run.kernels.family.clone(),
        note: run.kernels.note.clone(),
    });
    let started = Instant::now();
    let epochs = run.epochs(splits, evaluate, on_event)?;
    let train_seconds = started.elapsed().as_secs_f64();
    let tested = run.test(&splits.test, &splits.test_tags, evaluate, on_event)?;
    let (engine, skipped_steps, transfers_per_step) = run.finish()?;
    let tokens = splits.train.windows.iter().map(|s| s.ids.len()).sum::<usize>();
    Ok(TrainOutcome {
        best_epoch: run.best_epoch,
        stopped_epoch: run.stopped_epoch,
        test: tested.scores,
        test_gold: tested.gold,
        test_pred: tested.pred,
        entities_lost_to_truncation: splits.truncation(),
        n_parameters: run.model.params().n_elements(),
        train_seconds,
        train_tokens_per_sec: training_tokens_per_sec(tokens, &epochs),
        train_tokens_per_epoch: tokens,
        test_seconds: tested.seconds,
        epochs,
        engine,
        skipped_steps,
        transfers_per_step,
        precision: cfg.precision.name(),
        kernels: run.kernels.family,
        model: run.model,
    })
}

/// Training tokens of every epoch over the epochs' training time (validation excluded).
fn training_tokens_per_sec(tokens_per_epoch: usize, epochs: &[EpochRecord]) -> f64 {
    let seconds: f64 = epochs.iter().map(|e| e.seconds).sum();
    (tokens_per_epoch * epochs.len()) as f64 / seconds.max(1e-9)
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
    /// The kernels of the matrix products (the fused engine's bf16 or f32 family).
    kernels: Kernels,
}

/// How a run's matrix products compute and which kernels do it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Kernels {
    /// What the fused engine's products compute in (`F32` on the graph engine: unused).
    products: Products,
    /// The family's name for `result.json`.
    family: String,
    /// The line `log.txt` gets.
    note: String,
}

/// The kernels for `precision` on a resolved `engine`, with the bf16 family `select` gives on
/// the fused engine (the graph engine's products are candle's, in its compute dtype).
fn kernels(
    precision: Precision,
    engine: Engine,
    select: impl FnOnce() -> Result<bf16::Selection, String>,
) -> Result<Kernels, TrainError> {
    let f32_kernels = |family: &str| Kernels {
        products: Products::F32,
        family: family.to_string(),
        note: format!("matrix products: {} in f32 ({family})", precision.name()),
    };
    match (precision, engine) {
        (Precision::Fp32 | Precision::Tf32, Engine::Fused) => Ok(f32_kernels(bf16::f32_family())),
        (Precision::Bf16, Engine::Fused) => {
            let selection = select().map_err(TrainError::Config)?;
            let family = selection.family.name().to_string();
            Ok(Kernels { products: Products::Bf16(selection.family), family, note: selection.note })
        }
        (Precision::Fp16, Engine::Fused) => Err(TrainError::Config(format!(
            "precision fp16 is not computed by the fused engine (it computes {}); engine = \"graph\" computes {}",
            precisions_of(Engine::Fused).join(", "),
            precisions_of(Engine::Graph).join(", ")
        ))),
        (_, _) => Ok(Kernels {
            products: Products::F32,
            family: "candle".into(),
            note: format!("matrix products: {} on the graph engine (candle)", precision.name()),
        }),
    }
}

/// The engine `cfg` asks for on `device`, refused when it cannot run there or cannot compute
/// the precision.
fn choose_engine(cfg: &TrainConfig, model: &TokenClassifier, device: &Device) -> Result<Engine, TrainError> {
    let engine = match (cfg.engine, device.is_cpu() && fused::available(model)) {
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
        splits: &AlignedSplits,
    ) -> Result<Run<'a>, TrainError> {
        let total = cfg.epochs * steps_per_epoch(splits.train.windows.len(), cfg.batch_size);
        let engine = choose_engine(cfg, &model, device)?;
        let kernels = kernels(cfg.precision, engine, bf16::select)?;
        let steps = match engine {
            Engine::Fused => Steps::Fused {
                optimizer: AdamW::new(model.params(), AdamWConfig::with_weight_decay(cfg.weight_decay))?,
                dropout: Dropout::new(cfg.seed),
                grads: fused::zero_grads(model.params()),
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
            kernels,
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
            Steps::Fused { .. } => {
                predict_split(self.kernels.products, &self.model, aligned, self.cfg.eval_batch_size, &Device::Cpu)
            }
            Steps::Graph(g) => predict_on_graph(g, aligned, self.cfg.eval_batch_size),
        }
    }

    /// Trains every epoch, validating after each; leaves the best epoch's weights loaded.
    fn epochs(
        &mut self,
        splits: &AlignedSplits,
        evaluate: Evaluate,
        on_event: &mut dyn FnMut(TrainEvent),
    ) -> Result<Vec<EpochRecord>, TrainError> {
        let mut records = Vec::new();
        for epoch in 1..=self.cfg.epochs {
            let record = self.epoch(epoch, splits, evaluate, on_event)?;
            on_event(TrainEvent::EpochEnd(record.clone()));
            records.push(record);
            self.keep_if_best(&records, splits.validation.windows.is_empty())?;
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
        splits: &AlignedSplits,
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
        let (val, val_loss) = self.validate(&splits.validation, &splits.validation_tags, evaluate)?;
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
        let products = self.kernels.products;
        let loss = fused_gradients(products, &self.model, &micro, train, denominator, dropout, grads);
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
        tags: &[Vec<String>],
        evaluate: Evaluate,
    ) -> Result<(EvalScores, f64), TrainError> {
        if aligned.windows.is_empty() {
            return Ok((EvalScores::default(), f64::NAN));
        }
        let SplitPrediction { words, loss } = self.predict(&aligned.windows)?;
        let predicted = aligned.sentence_words(&words);
        let (gold, pred) = kept_words(tags, &predicted, self.model.labels());
        let scores = evaluate(&gold, &pred).map_err(|e| TrainError::Evaluate(e.into()))?;
        Ok((scores, loss))
    }

    /// Scores the test split once with the restored weights.
    fn test(
        &self,
        aligned: &AlignedSplit,
        tags: &[Vec<String>],
        evaluate: Evaluate,
        on_event: &mut dyn FnMut(TrainEvent),
    ) -> Result<Tested, TrainError> {
        let started = Instant::now();
        let SplitPrediction { words, .. } = self.predict(&aligned.windows)?;
        let predicted = aligned.sentence_words(&words);
        let (gold, pred) = kept_words(tags, &predicted, self.model.labels());
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
        Ok(Tested { scores, gold: tags.to_vec(), pred: all_pred, seconds: started.elapsed().as_secs_f64() })
    }
}

/// Loss, and gradients into `grads`, on the fused CPU path ([`fused`]). `grads` are zero on
/// entry: [`fused::zero_grads`] makes them so and every AdamW step leaves them so (a step that
/// fails ends the run).
fn fused_gradients(
    products: Products,
    model: &TokenClassifier,
    micro: &[&[usize]],
    train: &[AlignedSentence],
    denominator: f64,
    dropout: &mut Dropout,
    grads: &mut [Vec<f32>],
) -> Result<f64, TrainError> {
    let mut loss = 0.0;
    for rows in micro {
        let (batch, targets) = host_batch(rows, train, model.config());
        loss += fused::loss_and_grads(products, model, &batch, &targets, denominator, Some(&mut *dropout), grads)?;
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
fn eval_logits(
    products: Products,
    model: &TokenClassifier,
    batch: &HostBatch,
    device: &Device,
) -> Result<Tensor, TrainError> {
    if fused::available(model) {
        let labels = model.labels().len();
        let logits = fused::logits(products, model, batch)?;
        return Ok(Tensor::from_vec(logits, (batch.batch * batch.seq, labels), &Device::Cpu)?);
    }
    let inputs = crate::model::Inputs::from_host(batch, device)?;
    Ok(model.forward(&inputs, None)?.to_dtype(candle_core::DType::F32)?)
}

/// Gold and predicted tags of the words that kept a sub-word (the recipe drops the rest).
fn kept_words(
    tags: &[Vec<String>],
    predicted: &[Vec<Option<usize>>],
    labels: &[String],
) -> (Vec<Vec<String>>, Vec<Vec<String>>) {
    tags.iter()
        .zip(predicted)
        .map(|(s, p)| {
            s.iter().zip(p).filter_map(|(gold, pred)| pred.map(|c| (gold.clone(), labels[c].clone()))).unzip()
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
    let mut loss_sum = 0.0;
    let words = predict_words(aligned, batch_size, model.config(), |host, targets, weight| {
        let logits = eval_logits(products, model, host, device)?;
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::bf16::{choose, Family};
    use crate::model::{random_model, Config};

    /// Sentence `i` of a toy language: word ids 5..15, entity words 15..20 tagged B-X.
    fn toy(i: usize) -> (AlignedSentence, Vec<String>) {
        let words: Vec<u32> =
            (0..6).map(|w| if w == i % 6 { 15 + (i % 5) as u32 } else { 5 + ((i + w) % 10) as u32 }).collect();
        let targets: Vec<i64> = words.iter().map(|&w| i64::from(w >= 15)).collect();
        let tags = targets.iter().map(|&t| if t == 1 { "B-X" } else { "O" }.to_string()).collect();
        let ids = [vec![2], words, vec![3]].concat();
        let targets = [vec![-100], targets, vec![-100]].concat();
        let first_token = (1..=6).map(Some).collect();
        (AlignedSentence { ids, targets, first_token, truncated_words: 0, entities_lost: 0 }, tags)
    }

    fn split(range: std::ops::Range<usize>) -> (Vec<AlignedSentence>, Vec<Vec<String>>) {
        range.map(toy).unzip()
    }

    /// Word accuracy as the "metric" (the trainer takes any).
    fn accuracy(gold: &[Vec<String>], pred: &[Vec<String>]) -> anyhow::Result<EvalScores> {
        let pairs: Vec<(&String, &String)> = gold.iter().flatten().zip(pred.iter().flatten()).collect();
        let right = pairs.iter().filter(|(g, p)| g == p).count() as f64 / pairs.len().max(1) as f64;
        Ok(EvalScores { precision: right, recall: right, f1: right, accuracy: right })
    }

    /// An in-memory model and in-memory aligned splits: no path, tokenizer or hub anywhere.
    #[test]
    fn trains_an_in_memory_model_on_in_memory_splits() {
        let config = r#"{"model_type": "bert", "vocab_size": 20, "hidden_size": 16, "num_hidden_layers": 1,
            "num_attention_heads": 2, "intermediate_size": 32, "max_position_embeddings": 16,
            "type_vocab_size": 2, "hidden_act": "gelu", "pad_token_id": 0}"#;
        let cfg = Config::from_json(config, std::path::Path::new("config.json")).unwrap();
        let labels = ["O", "B-X"].map(String::from);
        let model = random_model(&cfg, &labels, 3, &Device::Cpu).unwrap();
        let (train_part, _) = split(0..64);
        let (validation, validation_tags) = split(64..80);
        let (test, test_tags) = split(80..96);
        let (train, validation, test) =
            (AlignedSplit::whole(train_part), AlignedSplit::whole(validation), AlignedSplit::whole(test));
        let splits = AlignedSplits { train, validation, test, validation_tags, test_tags };
        let settings =
            TrainConfig { epochs: 3, batch_size: 8, learning_rate: 1e-2, max_length: 16, ..TrainConfig::default() };
        let mut events = Vec::new();
        let outcome =
            super::train(model, &splits, &settings, &Device::Cpu, &accuracy, &mut |e| events.push(e)).unwrap();
        assert_eq!(outcome.epochs.len(), 3);
        assert!(outcome.test.accuracy > 0.9, "{:?}", outcome.test);
        assert_eq!(outcome.test_pred.len(), 16);
        assert_eq!(events.iter().filter(|e| matches!(e, TrainEvent::Step { .. })).count(), 3 * 8);
        // Tokens per second count training time only.
        let seconds: f64 = outcome.epochs.iter().map(|e| e.seconds).sum();
        assert_eq!(outcome.train_tokens_per_sec, (3 * 64 * 8) as f64 / seconds);
        assert!(outcome.train_seconds > seconds, "the epoch loop includes validation");
    }

    #[test]
    fn tokens_per_second_exclude_validation_time() {
        let record = |seconds, eval_seconds| EpochRecord {
            epoch: 1,
            train_loss: 0.0,
            val: EvalScores::default(),
            val_loss: 0.0,
            learning_rate: 0.0,
            seconds,
            eval_seconds,
            tokens_per_sec: 0.0,
        };
        assert_eq!(training_tokens_per_sec(100, &[record(1.0, 3.0), record(1.0, 5.0)]), 100.0);
    }

    #[test]
    fn precision_picks_the_products_and_names_the_kernels() {
        let amx = || choose(Family::Amx, None);
        let bf16 = kernels(Precision::Bf16, Engine::Fused, amx).unwrap();
        assert_eq!((bf16.products, bf16.family.as_str()), (Products::Bf16(Family::Amx), "amx"));
        assert_eq!(bf16.note, "bf16 kernels: amx");
        let forced = kernels(Precision::Bf16, Engine::Fused, || choose(Family::Amx, Some("emulated"))).unwrap();
        assert_eq!(forced.products, Products::Bf16(Family::Emulated));
        for precision in [Precision::Fp32, Precision::Tf32] {
            let f32_kernels = kernels(precision, Engine::Fused, amx).unwrap();
            assert_eq!((f32_kernels.products, f32_kernels.family.as_str()), (Products::F32, bf16::f32_family()));
        }
        // The graph engine computes every precision with candle's products.
        for precision in [Precision::Fp32, Precision::Bf16, Precision::Fp16] {
            let graph = kernels(precision, Engine::Graph, amx).unwrap();
            assert_eq!((graph.products, graph.family.as_str()), (Products::F32, "candle"));
        }
        let refused = kernels(Precision::Fp16, Engine::Fused, amx).unwrap_err().to_string();
        assert!(refused.contains("precision fp16 is not computed by the fused engine"), "{refused}");
        let bad = kernels(Precision::Bf16, Engine::Fused, || choose(Family::Amx, Some("x"))).unwrap_err();
        assert!(bad.to_string().contains("NERGRID_CPU_KERNELS: unknown kernel family \"x\""), "{bad}");
    }
}
