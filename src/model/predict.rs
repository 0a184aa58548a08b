//! Entities from raw text with a fine-tuned model, as transformers' token-classification
//! pipeline with `aggregation_strategy="first"`: words are whitespace-separated runs, each
//! word takes the label (and probability) of its first sub-word, consecutive words of one
//! type merge into an entity unless a `B-` starts a new one. `E-`/`S-` (BIOES) close an
//! entity, which the pipeline does not know about.

use super::align::{align_sentence, LabelAlignment};
use super::head::TokenClassifier;
use super::load::{load_model, resolve, LoadError};
use super::tokenizer::{load_tokenizer, TokenizerError};
use super::{align::AlignError, encoder::Inputs};
use candle_core::{Device, D};
use std::collections::HashMap;

/// Errors loading a model for prediction or running it.
#[derive(Debug, thiserror::Error)]
pub enum PredictError {
    #[error(transparent)]
    Load(#[from] LoadError),
    #[error(transparent)]
    Tokenizer(#[from] TokenizerError),
    #[error("{model}: config.json has no id2label; is this a fine-tuned token classifier?")]
    NoLabels { model: String },
    #[error("text {index}")]
    Align {
        index: usize,
        #[source]
        source: AlignError,
    },
    #[error("running the model")]
    Tensor(#[from] candle_core::Error),
}

/// One entity found in a text; offsets count characters (Unicode scalar values), as Python
/// string indices do.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Entity {
    /// The entity type (`DRUG` for `B-DRUG`).
    #[serde(rename = "type")]
    pub kind: String,
    pub text: String,
    pub start: usize,
    pub end: usize,
    /// Mean over the entity's words of the probability of their label.
    pub score: f64,
}

/// A word of a text: its character span.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WordSpan {
    pub start: usize,
    pub end: usize,
}

/// Maximal runs of non-whitespace characters, with character offsets.
pub fn split_words(text: &str) -> Vec<WordSpan> {
    let mut spans = Vec::new();
    let mut start = None;
    for (i, c) in text.chars().chain(std::iter::once(' ')).enumerate() {
        match (c.is_whitespace(), start) {
            (false, None) => start = Some(i),
            (true, Some(s)) => {
                spans.push(WordSpan { start: s, end: i });
                start = None;
            }
            _ => {}
        }
    }
    spans
}

/// `(prefix, type)` of a label: `B-X` -> ('B', X); a label without a one-letter prefix
/// is a continuation of its own type, as in the pipeline's `get_tag`.
fn split_label(label: &str) -> (char, &str) {
    match label.split_once('-') {
        Some((p, ty)) if p.len() == 1 => (p.chars().next().unwrap_or('I'), ty),
        _ if label == "O" => ('O', ""),
        _ => ('I', label),
    }
}

/// Groups labelled words into entities (pure): `labels[i]` and `scores[i]` belong to
/// `words[i]`.
pub fn group_entities(text: &str, words: &[WordSpan], labels: &[&str], scores: &[f64]) -> Vec<Entity> {
    let chars: Vec<char> = text.chars().collect();
    let mut entities = Vec::new();
    // (type, first word, last word, closed by E-/S-)
    let mut open: Option<(&str, usize, usize)> = None;
    let mut close = |open: &mut Option<(&str, usize, usize)>| {
        if let Some((kind, first, last)) = open.take() {
            let (start, end) = (words[first].start, words[last].end);
            let n = (last - first + 1) as f64;
            entities.push(Entity {
                kind: kind.to_string(),
                text: chars[start..end].iter().collect(),
                start,
                end,
                score: scores[first..=last].iter().sum::<f64>() / n,
            });
        }
    };
    for (i, label) in labels.iter().enumerate() {
        let (prefix, kind) = split_label(label);
        let continues = matches!(prefix, 'I' | 'E') && open.is_some_and(|(k, _, _)| k == kind);
        if !continues {
            close(&mut open);
        }
        if prefix == 'O' {
            continue;
        }
        open = Some(match open {
            Some((k, first, _)) if continues => (k, first, i),
            _ => (kind, i, i),
        });
        if matches!(prefix, 'E' | 'S') {
            close(&mut open);
        }
    }
    close(&mut open);
    entities
}

/// A fine-tuned model ready to tag text.
pub struct Predictor {
    model: TokenClassifier,
    tokenizer: tokenizers::Tokenizer,
    device: Device,
}

impl Predictor {
    /// Loads a model saved by nergrid (or any `*ForTokenClassification` checkpoint with
    /// `id2label`) from a directory or hub id.
    pub fn load(model: &str, device: &Device) -> Result<Predictor, PredictError> {
        let files = resolve(model)?;
        let cfg = super::Config::from_file(&files.config).map_err(LoadError::from)?;
        let labels = cfg.id2label.clone().ok_or_else(|| PredictError::NoLabels { model: model.to_string() })?;
        let loaded = load_model(&files, &labels, 0, device)?;
        let max_length = cfg.max_position_embeddings.min(512);
        Ok(Predictor { model: loaded.model, tokenizer: load_tokenizer(&files, max_length)?, device: device.clone() })
    }

    /// A predictor over an in-memory model.
    pub fn new(model: TokenClassifier, tokenizer: tokenizers::Tokenizer, device: Device) -> Self {
        Predictor { model, tokenizer, device }
    }

    /// Entities of `text`. Words beyond the model's maximum length are not tagged.
    pub fn predict(&self, text: &str, index: usize) -> Result<Vec<Entity>, PredictError> {
        let spans = split_words(text);
        let chars: Vec<char> = text.chars().collect();
        let words: Vec<String> = spans.iter().map(|w| chars[w.start..w.end].iter().collect()).collect();
        let aligned = align_sentence(&self.tokenizer, &words, None, &HashMap::new(), LabelAlignment::First)
            .map_err(|source| PredictError::Align { index, source })?;
        let inputs = Inputs::new(std::slice::from_ref(&aligned.ids), self.model.config(), &self.device)?;
        let probs = candle_nn::ops::softmax(&self.model.forward(&inputs, None)?, D::Minus1)?;
        let probs = probs.to_vec2::<f32>()?;
        let labels = self.model.labels();
        let (mut word_labels, mut scores) = (Vec::new(), Vec::new());
        for first in &aligned.first_token {
            let (label, score) = match first {
                Some(t) => argmax(&probs[*t]),
                None => (0, 1.0),
            };
            let name = first.map_or("O", |_| labels[label].as_str());
            word_labels.push(name);
            scores.push(score);
        }
        Ok(group_entities(text, &spans, &word_labels, &scores))
    }
}

fn argmax(row: &[f32]) -> (usize, f64) {
    let mut best = (0, f32::NEG_INFINITY);
    for (i, &p) in row.iter().enumerate() {
        if p > best.1 {
            best = (i, p);
        }
    }
    (best.0, best.1 as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_have_character_offsets() {
        let spans = split_words("  Ödem i\tbenen ");
        assert_eq!(
            spans,
            vec![WordSpan { start: 2, end: 6 }, WordSpan { start: 7, end: 8 }, WordSpan { start: 9, end: 14 }]
        );
    }

    fn group(text: &str, labels: &str) -> Vec<(String, String, usize, usize)> {
        let words = split_words(text);
        let labels: Vec<&str> = labels.split_whitespace().collect();
        let scores = vec![0.5; labels.len()];
        group_entities(text, &words, &labels, &scores).into_iter().map(|e| (e.kind, e.text, e.start, e.end)).collect()
    }

    #[test]
    fn bio_words_merge_like_the_pipeline() {
        let text = "Ta två Alvedon mot ont i huvudet";
        let got = group(text, "O O B-DRUG O B-DIS I-DIS I-BODY");
        assert_eq!(
            got,
            vec![
                ("DRUG".into(), "Alvedon".into(), 7, 14),
                ("DIS".into(), "ont i".into(), 19, 24),
                ("BODY".into(), "huvudet".into(), 25, 32),
            ]
        );
    }

    #[test]
    fn b_starts_a_new_entity_and_i_after_o_starts_one() {
        let got = group("a b c d", "B-X B-X O I-X");
        let texts: Vec<&str> = got.iter().map(|g| g.1.as_str()).collect();
        assert_eq!(texts, vec!["a", "b", "d"]);
    }

    #[test]
    fn bioes_ends_close_entities() {
        let got = group("a b c d", "B-X E-X I-X S-X");
        let texts: Vec<&str> = got.iter().map(|g| g.1.as_str()).collect();
        assert_eq!(texts, vec!["a b", "c", "d"]);
    }

    #[test]
    fn scores_average_over_words() {
        let text = "a b";
        let words = split_words(text);
        let e = group_entities(text, &words, &["B-X", "I-X"], &[0.9, 0.5]);
        assert!((e[0].score - 0.7).abs() < 1e-12);
    }
}
