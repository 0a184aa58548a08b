//! Entities from raw text with a fine-tuned model, as transformers' token-classification
//! pipeline does (`pipeline("token-classification", model=DIR, aggregation_strategy=A,
//! stride=N)`): a text longer than the model's window is cut into windows that overlap by
//! `stride` tokens (the tokenizers' overflow rule, as the pipeline asks for it), every window is
//! tagged, the [`aggregate`](super::aggregate) strategy turns each window's tokens into entities
//! and the entities of overlapping windows are merged by the pipeline's rule. Without an explicit
//! stride (where the pipeline would truncate) windows overlap by half a window
//! ([`Predictor::default_stride`]) and each token takes its probabilities from the window where
//! it is farthest from an edge, the rule training evaluates with; the strategy then runs once
//! over the whole text, so no entity is cut or doubled at a window edge. Windows of many texts
//! are batched together.
//!
//! A token starts a new word unless it is a sub-word (WordPiece: its text is longer than the
//! span it covers, `##…`; other tokenizers: no space before it). An entity's `text` is the
//! original span (the pipeline's `word` is the decoded tokens, lower-cased by an uncased model).
//!
//! Token offsets are the ones transformers' own tokenizer classes give, so that entities start
//! where the pipeline's do: a bare SentencePiece `Metaspace` pre-tokenizer (xlm-roberta-base's
//! `tokenizer.json` on the Hub, files written by transformers 4) is preceded by a whitespace
//! split as transformers 5 builds XLM-R's tokenizer (same tokens; the `▁` token no longer
//! covers the space before a word), and leading whitespace is trimmed off any span that still
//! has it. Tested against the pipeline on every tokenizer family (`tests/reference_models.rs`)
//! and, with windows and every strategy, on a model nergrid trained (`tests/long_documents.rs`).

use super::aggregate::{merge_overlapping, window_entities, ScoredToken};
pub use super::aggregate::{Aggregation, Entity};
use super::align::{farthest_window, window_ranges};
use super::encoder::HostBatch;
use super::encoder::Inputs;
use super::fused;
use super::head::TokenClassifier;
use super::load::{load_model, resolve, LoadError};
use super::tokenizer::{load_tokenizer, TokenizerError};
use super::{Architecture, Config};
use candle_core::Device;
use std::path::Path;

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
    Fast(#[from] fused::FastError),
    #[error("stride {stride} must be below the {tokens} text tokens of a window of {window} (the model's limit)")]
    Stride { stride: usize, tokens: usize, window: usize },
    #[error("the model's window of {window} tokens leaves no room beside its {added} special tokens")]
    Window { window: usize, added: usize },
    #[error("the tokenizer produced id {id}, beyond the model's vocabulary of {vocab}")]
    Vocabulary { id: u32, vocab: usize },
    #[error("setting the tokenizer's windows")]
    Truncation(#[source] Box<dyn std::error::Error + Send + Sync>),
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

/// A fine-tuned model ready to tag text.
pub struct Predictor {
    model: TokenClassifier,
    /// Without truncation: [`Predictor::windows`] cuts the windows.
    tokenizer: tokenizers::Tokenizer,
    /// The same without its post-processor: tokens before special tokens are added.
    unprocessed: tokenizers::Tokenizer,
    device: Device,
    /// Tokens of a window, special tokens included.
    window: usize,
    /// Special tokens of each window.
    added: usize,
    stride: usize,
    /// Whether the stride was asked for: entities of overlapping windows are then merged by the
    /// pipeline's rule; otherwise each token is taken from the window where it is farthest
    /// from an edge.
    pipeline_merge: bool,
    subword_prefix: Option<String>,
    unknown: Option<u32>,
}

/// One window of a text: its token ids and what aggregation needs of each token.
struct Window {
    text: usize,
    ids: Vec<u32>,
    tokens: Vec<TokenInfo>,
    /// Where its text tokens start among its tokens and among the whole text's, and how many.
    text_at: usize,
    first: usize,
    len: usize,
}

impl Predictor {
    /// Loads a model saved by nergrid (or any `*ForTokenClassification` checkpoint with
    /// `id2label`) from a directory or hub id, with the default stride.
    pub fn load(model: &str, device: &Device) -> Result<Predictor, PredictError> {
        let files = resolve(model)?;
        let cfg = Config::from_file(&files.config).map_err(LoadError::from)?;
        let labels = cfg.id2label.clone().ok_or_else(|| PredictError::NoLabels { model: model.to_string() })?;
        let loaded = load_model(&files, &labels, 0, device)?;
        let window = window_length(&cfg, files.tokenizer_config.as_deref());
        Predictor::new(loaded.model, load_tokenizer(&files, window)?, device.clone(), window)
    }

    /// A predictor over an in-memory model whose windows hold `window` tokens (at most the
    /// model's positions).
    pub fn new(
        model: TokenClassifier,
        mut tokenizer: tokenizers::Tokenizer,
        device: Device,
        window: usize,
    ) -> Result<Self, PredictError> {
        use tokenizers::PostProcessor;
        split_whitespace_before_metaspace(&mut tokenizer);
        let window = window.min(position_limit(model.config()));
        let added = tokenizer.get_post_processor().map_or(0, |p| p.added_tokens(false));
        if window <= added + 1 {
            return Err(PredictError::Window { window, added });
        }
        let (subword_prefix, unknown) = subword_convention(&tokenizer);
        let mut unprocessed = tokenizer.clone();
        unprocessed.with_post_processor(None::<tokenizers::PostProcessorWrapper>);
        let predictor = Predictor {
            model,
            tokenizer,
            unprocessed,
            device,
            window,
            added,
            stride: 0,
            pipeline_merge: false,
            subword_prefix,
            unknown,
        };
        predictor.with_stride(None)
    }

    /// Windows overlap by `explicit` tokens, their entities merged as the pipeline merges them;
    /// with `None`, by [`Predictor::default_stride`], each token tagged in its farthest window.
    pub fn with_stride(mut self, explicit: Option<usize>) -> Result<Self, PredictError> {
        let tokens = self.window - self.added;
        let stride = explicit.unwrap_or_else(|| self.default_stride());
        if stride >= tokens {
            return Err(PredictError::Stride { stride, tokens, window: self.window });
        }
        self.tokenizer.with_truncation(None).map_err(PredictError::Truncation)?;
        self.unprocessed.with_truncation(None).map_err(PredictError::Truncation)?;
        self.stride = stride;
        self.pipeline_merge = explicit.is_some();
        Ok(self)
    }

    /// Half a window's text tokens: every token is at least a quarter of a window from an
    /// edge in one of its windows, so it is tagged with context on both sides.
    pub fn default_stride(&self) -> usize {
        (self.window - self.added) / 2
    }

    /// Tokens of a window, special tokens included.
    pub fn window(&self) -> usize {
        self.window
    }

    /// Entities of `text` (`index` names it in errors), aggregated as `first`.
    pub fn predict(&self, text: &str, index: usize) -> Result<Vec<Entity>, PredictError> {
        let found = self.predict_texts(&[text], Aggregation::First, 1).map_err(|e| match e {
            PredictError::Tokenizer(TokenizerError::Encode { source, .. }) => {
                PredictError::Tokenizer(TokenizerError::Encode { what: format!("text {index}"), source })
            }
            other => other,
        })?;
        Ok(found.into_iter().next().unwrap_or_default())
    }

    /// Entities of every text, in order; the windows of all texts are tagged in batches of
    /// `batch_size` windows of similar length.
    pub fn predict_texts(
        &self,
        texts: &[&str],
        strategy: Aggregation,
        batch_size: usize,
    ) -> Result<Vec<Vec<Entity>>, PredictError> {
        let chars: Vec<Vec<char>> = texts.iter().map(|t| t.chars().collect()).collect();
        let windows = self.windows(texts, &chars)?;
        let probs = self.probabilities(&windows, batch_size.max(1))?;
        let mut by_text: Vec<Vec<usize>> = vec![Vec::new(); texts.len()];
        windows.iter().enumerate().for_each(|(w, window)| by_text[window.text].push(w));
        let scored = Scored { windows: &windows, probs: &probs, n_labels: self.model.labels().len() };
        let entities = by_text.iter().zip(&chars).map(|(of_text, chars)| {
            let tag = |tokens: &[ScoredToken]| window_entities(tokens, strategy, self.model.labels(), chars);
            match (of_text.len(), self.pipeline_merge) {
                (1, _) => tag(&scored.window(of_text[0])),
                (_, true) => merge_overlapping(of_text.iter().flat_map(|&w| tag(&scored.window(w))).collect()),
                (_, false) => tag(&scored.farthest(of_text)),
            }
        });
        Ok(entities.collect())
    }

    /// The windows of every text, in text order. The tokenizer's own truncation with a stride
    /// would do this, but tokenizers 0.23.2 stops tokenizing at the first window when
    /// truncating, so the overflow is cut here by the same rule (`Encoding::truncate`) from
    /// the tokens before post-processing, and the post-processor (special tokens, offset
    /// trimming) runs on each window after.
    fn windows(&self, texts: &[&str], chars: &[Vec<char>]) -> Result<Vec<Window>, PredictError> {
        let encode_error =
            |source| PredictError::Tokenizer(TokenizerError::Encode { what: format!("{} texts", texts.len()), source });
        let encodings = self.unprocessed.encode_batch_char_offsets(texts.to_vec(), false).map_err(encode_error)?;
        let mut windows = Vec::new();
        for (text, mut encoding) in encodings.into_iter().enumerate() {
            let right = tokenizers::TruncationDirection::Right;
            let ranges = window_ranges(encoding.len(), self.window - self.added, self.stride);
            encoding.truncate(self.window - self.added, self.stride, right);
            let mut encoding = self.tokenizer.post_process(encoding, None, true).map_err(encode_error)?;
            let overflowing = encoding.take_overflowing();
            for (e, (first, end)) in std::iter::once(encoding).chain(overflowing).zip(ranges) {
                let tokens = self.token_infos(&e, &chars[text]);
                let text_at = e.get_sequence_ids().iter().position(Option::is_some).unwrap_or(0);
                windows.push(Window { text, ids: e.get_ids().to_vec(), tokens, text_at, first, len: end - first });
            }
        }
        Ok(windows)
    }

    fn token_infos(&self, encoding: &tokenizers::Encoding, chars: &[char]) -> Vec<TokenInfo> {
        let prefix = self.subword_prefix.as_deref();
        let special = encoding.get_special_tokens_mask();
        encoding
            .get_tokens()
            .iter()
            .zip(encoding.get_offsets())
            .zip(encoding.get_ids())
            .enumerate()
            .map(|(i, ((token, &(start, end)), &id))| TokenInfo {
                start: trim_start(chars, start, end),
                end,
                special: special[i] == 1,
                subword: is_subword(token, chars, (start, end), prefix, Some(id) == self.unknown),
            })
            .collect()
    }

    /// Label probabilities of every token of every window: [tokens * labels] per window.
    fn probabilities(&self, windows: &[Window], batch_size: usize) -> Result<Vec<Vec<f32>>, PredictError> {
        let mut order: Vec<usize> = (0..windows.len()).filter(|&w| !windows[w].ids.is_empty()).collect();
        order.sort_by_key(|&w| std::cmp::Reverse(windows[w].ids.len()));
        let mut probs = vec![Vec::new(); windows.len()];
        for rows in order.chunks(batch_size) {
            let ids: Vec<Vec<u32>> = rows.iter().map(|&w| windows[w].ids.clone()).collect();
            let batch = HostBatch::new(&ids, self.model.config());
            let logits = self.logits(&batch)?;
            let n_labels = self.model.labels().len();
            for (row, &w) in rows.iter().enumerate() {
                let at = row * batch.seq * n_labels;
                let mut window = logits[at..at + ids[row].len() * n_labels].to_vec();
                window.chunks_mut(n_labels).for_each(softmax);
                probs[w] = window;
            }
        }
        Ok(probs)
    }

    /// Logits of a padded batch, [batch * seq * labels], by the fused path on the CPU.
    fn logits(&self, batch: &HostBatch) -> Result<Vec<f32>, PredictError> {
        let vocab = self.model.config().vocab_size;
        if let Some(&id) = batch.input_ids.iter().find(|&&id| id as usize >= vocab) {
            return Err(PredictError::Vocabulary { id, vocab });
        }
        if fused::available(&self.model) {
            return Ok(fused::logits(super::kernels::Products::F32, &self.model, batch)?);
        }
        let logits = self.model.forward(&Inputs::from_host(batch, &self.device)?, None)?;
        Ok(logits.flatten_all()?.to_vec1::<f32>()?)
    }
}

/// The windows of a batch of texts with their label probabilities.
struct Scored<'a> {
    windows: &'a [Window],
    probs: &'a [Vec<f32>],
    n_labels: usize,
}

impl<'a> Scored<'a> {
    /// The non-special token at `i` of window `w`.
    fn token(&self, w: usize, i: usize) -> Option<ScoredToken<'a>> {
        let t = self.windows[w].tokens[i];
        let probs = &self.probs[w][i * self.n_labels..(i + 1) * self.n_labels];
        (!t.special).then_some(ScoredToken { start: t.start, end: t.end, subword: t.subword, probs })
    }

    /// The tokens of window `w`.
    fn window(&self, w: usize) -> Vec<ScoredToken<'a>> {
        (0..self.windows[w].tokens.len()).filter_map(|i| self.token(w, i)).collect()
    }

    /// The tokens of a text cut into `windows` (in order), each from the window where it is
    /// farthest from an edge.
    fn farthest(&self, windows: &[usize]) -> Vec<ScoredToken<'a>> {
        let ranges: Vec<(usize, usize)> =
            windows.iter().map(|&w| (self.windows[w].first, self.windows[w].first + self.windows[w].len)).collect();
        let total = ranges.last().map_or(0, |r| r.1);
        (0..total)
            .filter_map(|g| {
                let w = windows[farthest_window(g, &ranges)?];
                self.token(w, self.windows[w].text_at + g - self.windows[w].first)
            })
            .collect()
    }
}

/// The pipeline's softmax: exp(x - max) / sum.
fn softmax(row: &mut [f32]) {
    let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    row.iter_mut().for_each(|x| *x = (*x - max).exp());
    let sum: f32 = row.iter().sum();
    row.iter_mut().for_each(|x| *x /= sum);
}

/// Positions a sequence may use: RoBERTa's start after the padding id.
fn position_limit(cfg: &Config) -> usize {
    let offset = match cfg.architecture {
        Architecture::Roberta => cfg.pad_token_id as usize + 1,
        _ => 0,
    };
    cfg.max_position_embeddings.saturating_sub(offset)
}

/// A window: the tokenizer's `model_max_length` as the pipeline uses it, at most the model's
/// positions; 512 when the tokenizer does not say.
fn window_length(cfg: &Config, tokenizer_config: Option<&Path>) -> usize {
    let said = tokenizer_config
        .and_then(|p| std::fs::read_to_string(p).ok())
        .and_then(|text| serde_json::from_str::<serde_json::Value>(&text).ok())
        .and_then(|json| json["model_max_length"].as_f64())
        .filter(|n| (1.0..1e9).contains(n))
        .map(|n| n as usize);
    said.unwrap_or(512).min(position_limit(cfg))
}

/// The start of span `start..end` of `chars` past any leading whitespace.
fn trim_start(chars: &[char], start: usize, end: usize) -> usize {
    (start..end).find(|&i| !chars[i].is_whitespace()).unwrap_or(end)
}

/// A bare `Metaspace` pre-tokenizer becomes `WhitespaceSplit` then `Metaspace`, as in
/// transformers 5's XLM-R tokenizer: the same tokens, and offsets that leave out the space
/// before a word (a bare Metaspace gives `▁knät` the span of " knät").
fn split_whitespace_before_metaspace(tokenizer: &mut tokenizers::Tokenizer) {
    use tokenizers::pre_tokenizers::sequence::Sequence;
    use tokenizers::pre_tokenizers::whitespace::WhitespaceSplit;
    use tokenizers::pre_tokenizers::PreTokenizerWrapper;
    if let Some(PreTokenizerWrapper::Metaspace(metaspace)) = tokenizer.get_pre_tokenizer() {
        let split = Sequence::new(vec![WhitespaceSplit.into(), PreTokenizerWrapper::Metaspace(metaspace.clone())]);
        tokenizer.with_pre_tokenizer(Some(split));
    }
}

/// The tokenizer's continuing-sub-word prefix (`##` for WordPiece) and unknown-token id. An
/// empty prefix (byte-level BPE as transformers writes it) counts as none, as in the pipeline,
/// which tests the prefix for truth.
fn subword_convention(tokenizer: &tokenizers::Tokenizer) -> (Option<String>, Option<u32>) {
    use tokenizers::models::ModelWrapper;
    let (prefix, unk) = match tokenizer.get_model() {
        ModelWrapper::WordPiece(wp) => (Some(wp.continuing_subword_prefix.clone()), Some(wp.unk_token.clone())),
        ModelWrapper::BPE(bpe) => (bpe.continuing_subword_prefix.clone(), bpe.unk_token.clone()),
        _ => (None, Some("<unk>".to_string())),
    };
    (prefix.filter(|p| !p.is_empty()), unk.and_then(|u| tokenizer.token_to_id(&u)))
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

    /// xlm-roberta-base's Hub pre-tokenizer: `▁knät` covers " knät" (the 52..57 where
    /// the pipeline says 53..57) until the whitespace split is put in front.
    #[test]
    fn metaspace_tokens_do_not_cover_the_space_before_a_word() {
        use tokenizers::models::unigram::Unigram;
        use tokenizers::pre_tokenizers::metaspace::{Metaspace, PrependScheme};
        let vocab = ["<unk>", "\u{2581}ont", "\u{2581}i", "\u{2581}knät"].map(|p| (p.to_string(), -1.0)).to_vec();
        let mut tok = tokenizers::Tokenizer::new(Unigram::from(vocab, Some(0), false).unwrap());
        tok.with_pre_tokenizer(Some(Metaspace::new('\u{2581}', PrependScheme::Always, true)));
        let encode = |t: &tokenizers::Tokenizer| {
            let e = t.encode_char_offsets("ont i knät", false).unwrap();
            (e.get_ids().to_vec(), e.get_offsets().to_vec())
        };
        let (ids, bare) = encode(&tok);
        assert_eq!(bare, vec![(0, 3), (3, 5), (5, 10)]);
        split_whitespace_before_metaspace(&mut tok);
        assert_eq!(encode(&tok), (ids, vec![(0, 3), (4, 5), (6, 10)]));
    }

    #[test]
    fn spans_lose_leading_whitespace_only() {
        let chars: Vec<char> = "ont i  knät".chars().collect();
        assert_eq!(trim_start(&chars, 5, 11), 7);
        assert_eq!(trim_start(&chars, 7, 11), 7);
        assert_eq!(trim_start(&chars, 5, 7), 7);
    }

    /// Byte-level BPE as transformers writes it has `continuing_subword_prefix: ""`, which the
    /// pipeline treats as no prefix (word starts by the space before a token).
    #[test]
    fn an_empty_sub_word_prefix_is_no_prefix() {
        use tokenizers::models::bpe::BPE;
        let bpe = BPE::builder()
            .vocab_and_merges([("<unk>".to_string(), 0), ("a".to_string(), 1)], vec![])
            .unk_token("<unk>".into())
            .continuing_subword_prefix(String::new())
            .build()
            .unwrap();
        let (prefix, unk) = subword_convention(&tokenizers::Tokenizer::new(bpe));
        assert_eq!((prefix, unk), (None, Some(0)));
    }
}
