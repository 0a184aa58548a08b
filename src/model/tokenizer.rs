//! The sub-word tokenizer of a model: `tokenizer.json`, or a WordPiece tokenizer rebuilt from
//! `vocab.txt` + `tokenizer_config.json` as transformers' `BertTokenizer` does. Padding is
//! removed and truncation set to the run's `max_length` whatever the file says (MiniLM's
//! `tokenizer.json` pads every input to 128).

use super::load::ModelFiles;
use std::path::{Path, PathBuf};
use tokenizers::decoders::wordpiece::WordPiece as WordPieceDecoder;
use tokenizers::models::wordpiece::WordPiece;
use tokenizers::normalizers::BertNormalizer;
use tokenizers::pre_tokenizers::bert::BertPreTokenizer;
use tokenizers::processors::bert::BertProcessing;
use tokenizers::{Tokenizer, TruncationParams};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Errors building a tokenizer.
#[derive(Debug, thiserror::Error)]
pub enum TokenizerError {
    #[error("{model}: no tokenizer.json and no vocab.txt")]
    Missing { model: String },
    #[error("{path}: cannot load tokenizer")]
    Load {
        path: PathBuf,
        #[source]
        source: BoxError,
    },
    #[error("{path}: special token {token:?} is not in the vocabulary")]
    SpecialToken { path: PathBuf, token: String },
    #[error("tokenizing {what}")]
    Encode {
        what: String,
        #[source]
        source: BoxError,
    },
}

/// Loads the tokenizer of `files`, without padding, truncating to `max_length` tokens.
pub fn load_tokenizer(files: &ModelFiles, max_length: usize) -> Result<Tokenizer, TokenizerError> {
    let mut tokenizer = match (&files.tokenizer_json, &files.vocab) {
        (Some(json), _) => from_tokenizer_json(json)?,
        (None, Some(vocab)) => from_vocab(vocab, files.tokenizer_config.as_deref())?,
        (None, None) => return Err(TokenizerError::Missing { model: files.source.clone() }),
    };
    set_lengths(&mut tokenizer, max_length)
        .map_err(|source| TokenizerError::Load { path: files.config.clone(), source })?;
    Ok(tokenizer)
}

/// No padding; truncation (right, longest-first) to `max_length` tokens including the
/// special tokens, as transformers' `truncation=True, max_length=...`.
pub fn set_lengths(tokenizer: &mut Tokenizer, max_length: usize) -> Result<(), BoxError> {
    tokenizer.with_padding(None);
    let params = TruncationParams { max_length, ..TruncationParams::default() };
    tokenizer.with_truncation(Some(params))?;
    Ok(())
}

fn from_tokenizer_json(path: &Path) -> Result<Tokenizer, TokenizerError> {
    let load = |source: BoxError| TokenizerError::Load { path: path.to_path_buf(), source };
    let text = std::fs::read_to_string(path).map_err(|e| load(e.into()))?;
    let mut json: serde_json::Value = serde_json::from_str(&text).map_err(|e| load(e.into()))?;
    prefix_space_for_words(&mut json["pre_tokenizer"]);
    serde_json::from_value(json).map_err(|e| load(e.into()))
}

/// Byte-level BPE (RoBERTa) needs a prefix space when words are given one by one
/// (transformers requires `add_prefix_space=True` with `is_split_into_words`).
fn prefix_space_for_words(pre_tokenizer: &mut serde_json::Value) {
    if pre_tokenizer["type"] == "ByteLevel" {
        pre_tokenizer["add_prefix_space"] = serde_json::Value::Bool(true);
    }
    if let Some(list) = pre_tokenizer["pretokenizers"].as_array_mut() {
        list.iter_mut().for_each(prefix_space_for_words);
    }
}

/// The parts of `tokenizer_config.json` a BERT WordPiece tokenizer needs.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(default)]
struct BertTokenizerConfig {
    do_lower_case: bool,
    strip_accents: Option<bool>,
    tokenize_chinese_chars: bool,
    unk_token: String,
    sep_token: String,
    cls_token: String,
}

impl Default for BertTokenizerConfig {
    fn default() -> Self {
        BertTokenizerConfig {
            do_lower_case: true,
            strip_accents: None,
            tokenize_chinese_chars: true,
            unk_token: "[UNK]".into(),
            sep_token: "[SEP]".into(),
            cls_token: "[CLS]".into(),
        }
    }
}

fn read_bert_config(path: Option<&Path>) -> Result<BertTokenizerConfig, TokenizerError> {
    let Some(path) = path else {
        return Ok(BertTokenizerConfig::default());
    };
    let load = |source: BoxError| TokenizerError::Load { path: path.to_path_buf(), source };
    let text = std::fs::read_to_string(path).map_err(|e| load(e.into()))?;
    serde_json::from_str(&text).map_err(|e| load(e.into()))
}

/// transformers' `BertTokenizer` rebuilt from a vocabulary file.
fn from_vocab(vocab: &Path, config: Option<&Path>) -> Result<Tokenizer, TokenizerError> {
    let cfg = read_bert_config(config)?;
    let load = |source: BoxError| TokenizerError::Load { path: vocab.to_path_buf(), source };
    let model =
        WordPiece::from_file(&vocab.to_string_lossy()).unk_token(cfg.unk_token.clone()).build().map_err(load)?;
    let id = |token: &str| {
        tokenizers::Model::token_to_id(&model, token)
            .ok_or_else(|| TokenizerError::SpecialToken { path: vocab.to_path_buf(), token: token.to_string() })
    };
    let (sep, cls) = (id(&cfg.sep_token)?, id(&cfg.cls_token)?);
    let mut tokenizer = Tokenizer::new(model);
    let normalizer = BertNormalizer::new(true, cfg.tokenize_chinese_chars, cfg.strip_accents, cfg.do_lower_case);
    tokenizer.with_normalizer(Some(normalizer)).map_err(load)?;
    tokenizer.with_pre_tokenizer(Some(BertPreTokenizer));
    tokenizer.with_post_processor(Some(BertProcessing::new((cfg.sep_token, sep), (cfg.cls_token, cls))));
    tokenizer.with_decoder(Some(WordPieceDecoder::default()));
    Ok(tokenizer)
}

/// Sub-word ids and, for each token, the index of its word (`None` for special tokens).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WordEncoding {
    pub ids: Vec<u32>,
    pub word_ids: Vec<Option<u32>>,
}

/// Tokenizes pre-split `words` with special tokens, truncated as the tokenizer is set.
pub fn encode_words(tokenizer: &Tokenizer, words: &[String]) -> Result<WordEncoding, TokenizerError> {
    let refs: Vec<&str> = words.iter().map(String::as_str).collect();
    let encoding = tokenizer
        .encode(refs.as_slice(), true)
        .map_err(|source| TokenizerError::Encode { what: format!("{:?}", words.join(" ")), source })?;
    Ok(WordEncoding { ids: encoding.get_ids().to_vec(), word_ids: encoding.get_word_ids().to_vec() })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_vocab(dir: &Path) -> PathBuf {
        let vocab = "[PAD]\n[UNK]\n[CLS]\n[SEP]\nhello\nworld\n##s\nstock\n##holm\n";
        let path = dir.join("vocab.txt");
        std::fs::write(&path, vocab).unwrap();
        path
    }

    #[test]
    fn vocab_tokenizer_splits_words_and_lowercases() {
        let dir = tempfile::tempdir().unwrap();
        let vocab = write_vocab(dir.path());
        let mut tok = from_vocab(&vocab, None).unwrap();
        set_lengths(&mut tok, 32).unwrap();
        let words = ["Hello", "worlds", "Stockholm", "xyz"].map(String::from);
        let enc = encode_words(&tok, &words).unwrap();
        assert_eq!(enc.ids, vec![2, 4, 5, 6, 7, 8, 1, 3]);
        let w = enc.word_ids;
        assert_eq!(w, vec![None, Some(0), Some(1), Some(1), Some(2), Some(2), Some(3), None]);
    }

    #[test]
    fn truncation_counts_special_tokens() {
        let dir = tempfile::tempdir().unwrap();
        let mut tok = from_vocab(&write_vocab(dir.path()), None).unwrap();
        set_lengths(&mut tok, 4).unwrap();
        let words = ["hello", "worlds", "hello"].map(String::from);
        let enc = encode_words(&tok, &words).unwrap();
        assert_eq!(enc.ids, vec![2, 4, 5, 3]);
    }

    #[test]
    fn cased_config_keeps_case() {
        let dir = tempfile::tempdir().unwrap();
        let vocab = write_vocab(dir.path());
        let cfg = dir.path().join("tokenizer_config.json");
        std::fs::write(&cfg, r#"{"do_lower_case": false}"#).unwrap();
        let tok = from_vocab(&vocab, Some(&cfg)).unwrap();
        let enc = encode_words(&tok, &["Hello".to_string()]).unwrap();
        assert_eq!(enc.ids, vec![2, 1, 3]);
    }

    #[test]
    fn byte_level_gets_a_prefix_space() {
        let mut pt = serde_json::json!({"type": "Sequence", "pretokenizers": [
            {"type": "ByteLevel", "add_prefix_space": false}]});
        prefix_space_for_words(&mut pt);
        assert_eq!(pt["pretokenizers"][0]["add_prefix_space"], true);
    }
}
