//! Entities from raw text with a fine-tuned model, as transformers' token-classification
//! pipeline with `aggregation_strategy="first"`: the text is tokenised whole; a token starts
//! a new word unless it is a sub-word (WordPiece: its text is longer than the span it covers,
//! `##…`; other tokenizers: no space before it); each word takes the label and probability
//! of its first token; consecutive words of one type merge into an entity unless a `B-`
//! starts a new one. `E-`/`S-` (BIOES) also close an entity, which the pipeline does not know
//! about. An entity's `text` is the original span (the pipeline's `word` is the decoded
//! tokens, lower-cased by an uncased model).

use super::encoder::HostBatch;
use super::encoder::Inputs;
use super::fast;
use super::head::TokenClassifier;
use super::load::{load_model, resolve, LoadError};
use super::tokenizer::{load_tokenizer, TokenizerError};
use candle_core::{Device, Tensor, D};

/// Errors loading a model for prediction or running it.
#[derive(Debug, thiserror::Error)]
pub enum PredictError {
    #[error(transparent)]
    Load(#[from] LoadError),
    #[error(transparent)]
    Tokenizer(#[from] TokenizerError),
    #[error("{model}: config.json has no id2label; is this a fine-tuned token classifier?")]
    NoLabels { model: String },
    #[error("running the model")]
    Tensor(#[from] candle_core::Error),
    #[error(transparent)]
    Fast(#[from] fast::FastError),
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

/// What word grouping needs of a token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TokenInfo {
    /// Character span in the text.
    pub start: usize,
    pub end: usize,
    /// `[CLS]`, `[SEP]` and the like.
    pub special: bool,
    /// Continues the previous token's word.
    pub subword: bool,
}

/// Whether a token continues a word, by the pipeline's rule. `token` is the token's string,
/// `chars` the text, `prefix` the tokenizer's continuing-sub-word prefix if it has one.
pub fn is_subword(
    token: &str,
    chars: &[char],
    (start, end): (usize, usize),
    prefix: Option<&str>,
    unknown: bool,
) -> bool {
    if unknown {
        return false;
    }
    match prefix {
        // Word-aware tokenizers: a sub-word's text carries the prefix the span lacks.
        Some(_) => token.chars().count() != end - start,
        None => start > 0 && !chars[start - 1..(start + 1).min(chars.len())].contains(&' '),
    }
}

/// Words as (span, index of the first token), skipping special tokens.
pub fn pipeline_words(tokens: &[TokenInfo]) -> Vec<(WordSpan, usize)> {
    let mut words: Vec<(WordSpan, usize)> = Vec::new();
    for (i, t) in tokens.iter().enumerate().filter(|(_, t)| !t.special) {
        match words.last_mut() {
            Some((span, _)) if t.subword => span.end = t.end,
            _ => words.push((WordSpan { start: t.start, end: t.end }, i)),
        }
    }
    words
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

    /// Entities of `text`. Tokens beyond the model's maximum length are not tagged.
    pub fn predict(&self, text: &str, index: usize) -> Result<Vec<Entity>, PredictError> {
        let encoding = self.tokenizer.encode_char_offsets(text, true).map_err(|source| {
            PredictError::Tokenizer(TokenizerError::Encode { what: format!("text {index}"), source })
        })?;
        let tokens = self.token_infos(&encoding, text);
        let words = pipeline_words(&tokens);
        let probs = self.probabilities(encoding.get_ids())?;
        let labels = self.model.labels();
        let (spans, (word_labels, scores)): (Vec<WordSpan>, (Vec<&str>, Vec<f64>)) = words
            .iter()
            .map(|&(span, first)| {
                let (label, score) = argmax(&probs[first]);
                (span, (labels[label].as_str(), score))
            })
            .unzip();
        Ok(group_entities(text, &spans, &word_labels, &scores))
    }

    fn token_infos(&self, encoding: &tokenizers::Encoding, text: &str) -> Vec<TokenInfo> {
        let chars: Vec<char> = text.chars().collect();
        let (prefix, unk) = subword_convention(&self.tokenizer);
        let special = encoding.get_special_tokens_mask();
        encoding
            .get_tokens()
            .iter()
            .zip(encoding.get_offsets())
            .zip(encoding.get_ids())
            .enumerate()
            .map(|(i, ((token, &(start, end)), &id))| TokenInfo {
                start,
                end,
                special: special[i] == 1,
                subword: is_subword(token, &chars, (start, end), prefix.as_deref(), Some(id) == unk),
            })
            .collect()
    }
}

/// The tokenizer's continuing-sub-word prefix (`##` for WordPiece) and unknown-token id.
fn subword_convention(tokenizer: &tokenizers::Tokenizer) -> (Option<String>, Option<u32>) {
    use tokenizers::models::ModelWrapper;
    let (prefix, unk) = match tokenizer.get_model() {
        ModelWrapper::WordPiece(wp) => (Some(wp.continuing_subword_prefix.clone()), Some(wp.unk_token.clone())),
        ModelWrapper::BPE(bpe) => (bpe.continuing_subword_prefix.clone(), bpe.unk_token.clone()),
        _ => (None, Some("<unk>".to_string())),
    };
    (prefix, unk.and_then(|u| tokenizer.token_to_id(&u)))
}

impl Predictor {
    /// Label probabilities of every token of one sentence: [tokens][labels].
    fn probabilities(&self, ids: &[u32]) -> Result<Vec<Vec<f32>>, PredictError> {
        let batch = HostBatch::new(&[ids.to_vec()], self.model.config());
        let logits = match fast::available(&self.model) {
            true => {
                let labels = self.model.labels().len();
                let logits = fast::logits(super::kernels::Products::F32, &self.model, &batch)?;
                Tensor::from_vec(logits, (ids.len(), labels), &Device::Cpu)?
            }
            false => self.model.forward(&Inputs::from_host(&batch, &self.device)?, None)?,
        };
        Ok(candle_nn::ops::softmax(&logits, D::Minus1)?.to_vec2::<f32>()?)
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
    fn word_pieces_and_punctuation_follow_the_pipeline() {
        let text: Vec<char> = "Ta tabletter.".chars().collect();
        let prefix = Some("##");
        // "tab" "##letter" "." : the piece continues, the full stop starts a word.
        assert!(!is_subword("tab", &text, (3, 6), prefix, false));
        assert!(is_subword("##letter", &text, (6, 12), prefix, false));
        assert!(!is_subword(".", &text, (12, 13), prefix, false));
        // Without a prefix: no space before the token means a sub-word.
        assert!(is_subword("letter", &text, (6, 12), None, false));
        assert!(!is_subword("tab", &text, (3, 6), None, false));
        assert!(!is_subword("##x", &text, (6, 12), prefix, true));
    }

    #[test]
    fn words_group_tokens_and_skip_specials() {
        let t = |start, end, special, subword| TokenInfo { start, end, special, subword };
        let tokens = [
            t(0, 0, true, false),
            t(0, 2, false, false),
            t(3, 6, false, false),
            t(6, 12, false, true),
            t(12, 13, false, false),
            t(0, 0, true, false),
        ];
        let words = pipeline_words(&tokens);
        let spans: Vec<(usize, usize, usize)> = words.iter().map(|(w, i)| (w.start, w.end, *i)).collect();
        assert_eq!(spans, vec![(0, 2, 1), (3, 12, 2), (12, 13, 4)]);
    }

    fn split_words(text: &str) -> Vec<WordSpan> {
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
