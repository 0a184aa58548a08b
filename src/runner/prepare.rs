//! Everything a run does before training, with its I/O: resolve (and download) the model,
//! load its weights and tokenizer, check them against the settings, and tokenize and align
//! the three splits. `train::train` then works on what this returns, in memory.

use std::collections::HashMap;

use candle_core::Device;

use crate::data::TaggedSentence;
use crate::model::align::{align_sentence, align_windows};
use crate::model::export::{save_model, ExportError};
use crate::model::load::{load_model, resolve_location, LoadedModel, ModelLocation};
use crate::model::tokenizer::load_tokenizer;
use crate::model::{ModelFiles, TokenClassifier};
use crate::train::{AlignedSplit, AlignedSplits, TrainConfig, TrainError};

/// A run's inputs after loading: the model to fine-tune, its aligned splits, and what saving
/// the fine-tuned model needs (the source files and tokenizer).
pub struct PreparedRun {
    pub model: TokenClassifier,
    pub splits: AlignedSplits,
    pub source: ModelSource,
}

/// What the fine-tuned model was loaded from.
pub struct ModelSource {
    /// The files the model was fine-tuned from (their tokenizer side files are exported).
    pub files: ModelFiles,
    pub tokenizer: tokenizers::Tokenizer,
    /// Checkpoint tensors the model lacked (a new head) and had in excess.
    pub missing: Vec<String>,
    pub unexpected: Vec<String>,
}

impl ModelSource {
    /// Saves `model` (fine-tuned from this source) in Hugging Face layout.
    pub fn save_model(&self, model: &TokenClassifier, dir: &std::path::Path) -> Result<(), ExportError> {
        save_model(model, &self.tokenizer, dir, Some(&self.files))
    }
}

/// Loads the model at `location` with a head for `labels` (index = class id) and aligns the
/// train, validation and test sentences to it.
pub fn prepare_run(
    location: &ModelLocation,
    labels: &[String],
    [train, validation, test]: [&[TaggedSentence]; 3],
    cfg: &TrainConfig,
    device: &Device,
) -> Result<PreparedRun, TrainError> {
    let files = resolve_location(location)?;
    let tokenizer = load_tokenizer(&files, cfg.max_length)?;
    let LoadedModel { model, missing, unexpected, .. } = load_model(&files, labels, cfg.seed, device)?;
    check_lengths(model.config(), cfg.max_length)?;
    let model = with_dropout_override(model, cfg.dropout);
    let label_ids: HashMap<String, usize> = labels.iter().enumerate().map(|(i, l)| (l.clone(), i)).collect();
    // Windows are cut from whole sentences: a tokenizer that does not truncate.
    let mut whole = tokenizer.clone();
    whole.with_truncation(None).map_err(|e| TrainError::Config(format!("tokenizer without truncation: {e}")))?;
    let align = |split, sentences| align_split(&tokenizer, &whole, sentences, &label_ids, cfg, split);
    let tags = |sentences: &[TaggedSentence]| sentences.iter().map(|s| s.tags.clone()).collect();
    let splits = AlignedSplits {
        train: align("train", train)?,
        validation: align("validation", validation)?,
        test: align("test", test)?,
        validation_tags: tags(validation),
        test_tags: tags(test),
    };
    check_vocabulary(&splits, model.config().vocab_size)?;
    Ok(PreparedRun { model, splits, source: ModelSource { files, tokenizer, missing, unexpected } })
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
fn check_vocabulary(splits: &AlignedSplits, vocab_size: usize) -> Result<(), TrainError> {
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
    sentences: &[TaggedSentence],
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
