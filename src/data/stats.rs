//! Corpus statistics for `nergrid data inspect`: sizes per split, entities per type, words per
//! sentence, and sub-word fertility under a tokenizer.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Serialize;
use tokenizers::Tokenizer;

use super::corpus::{count_entities, Corpus};
use super::error::DataError;

/// Sizes of one split.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SplitStats {
    pub sentences: usize,
    pub words: usize,
    pub entities: usize,
    pub entities_per_type: BTreeMap<String, usize>,
}

/// Sizes of the sentences at `indices`.
pub fn split_stats(corpus: &Corpus, indices: &[usize]) -> SplitStats {
    let sentences: Vec<_> = indices.iter().map(|&i| &corpus.sentences[i]).collect();
    let entities_per_type = count_entities(sentences.iter().copied());
    SplitStats {
        sentences: sentences.len(),
        words: sentences.iter().map(|s| s.words.len()).sum(),
        entities: entities_per_type.values().sum(),
        entities_per_type,
    }
}

/// The distribution of words per sentence.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LengthStats {
    pub min: usize,
    pub median: f64,
    pub mean: f64,
    pub p95: usize,
    pub max: usize,
}

/// Words per sentence over the whole corpus; `None` for an empty corpus.
pub fn words_per_sentence(corpus: &Corpus) -> Option<LengthStats> {
    let mut lengths: Vec<usize> = corpus.sentences.iter().map(|s| s.words.len()).collect();
    lengths.sort_unstable();
    let n = lengths.len();
    if n == 0 {
        return None;
    }
    let median = if n % 2 == 1 { lengths[n / 2] as f64 } else { (lengths[n / 2 - 1] + lengths[n / 2]) as f64 / 2.0 };
    Some(LengthStats {
        min: lengths[0],
        median,
        mean: lengths.iter().sum::<usize>() as f64 / n as f64,
        p95: lengths[((n as f64 * 0.95).ceil() as usize).clamp(1, n) - 1],
        max: lengths[n - 1],
    })
}

/// How many sub-words a tokenizer makes of the corpus' words.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Fertility {
    pub words: usize,
    pub subwords: usize,
    /// Sub-words per word.
    pub mean: f64,
    /// Share of words split into more than one sub-word.
    pub split_share: f64,
    /// Sub-words of the longest sentence, without special tokens.
    pub max_sentence_subwords: usize,
}

/// Loads a `tokenizer.json` without the padding and truncation it may carry (MiniLM's pads
/// every input to 128 tokens, which would be counted as sub-words).
pub fn load_tokenizer(path: &Path) -> Result<Tokenizer, DataError> {
    let err = |source| DataError::Tokenizer { path: path.to_path_buf(), source };
    let mut tokenizer = Tokenizer::from_file(path).map_err(err)?;
    tokenizer.with_padding(None);
    tokenizer.with_truncation(None).map_err(err)?;
    Ok(tokenizer)
}

/// Sub-word fertility of the corpus' words (each sentence encoded pre-tokenized, no special
/// tokens).
pub fn fertility(corpus: &Corpus, tokenizer: &Tokenizer, path: &Path) -> Result<Fertility, DataError> {
    let (mut words, mut subwords, mut split, mut longest) = (0, 0, 0, 0);
    for sentence in corpus.sentences.iter().filter(|s| !s.words.is_empty()) {
        let encoding = tokenizer
            .encode(sentence.words.clone(), false)
            .map_err(|source| DataError::Tokenizer { path: path.to_path_buf(), source })?;
        let mut pieces = vec![0usize; sentence.words.len()];
        for word in encoding.get_word_ids().iter().flatten() {
            pieces[*word as usize] += 1;
        }
        let sentence_subwords: usize = pieces.iter().sum();
        words += pieces.len();
        subwords += sentence_subwords;
        split += pieces.iter().filter(|&&p| p > 1).count();
        longest = longest.max(sentence_subwords);
    }
    let ratio = |a: usize, b: usize| if b == 0 { 0.0 } else { a as f64 / b as f64 };
    Ok(Fertility {
        words,
        subwords,
        mean: ratio(subwords, words),
        split_share: ratio(split, words),
        max_sentence_subwords: longest,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::corpus::{Sentence, WordSpan};

    fn corpus(lengths: &[usize]) -> Corpus {
        let sentences = lengths
            .iter()
            .map(|&n| Sentence {
                words: vec!["w".to_string(); n],
                entities: if n > 0 { vec![WordSpan { kind: "A".into(), start: 0, end: 1 }] } else { vec![] },
                text: None,
            })
            .collect();
        Corpus { sentences, predefined: None }
    }

    #[test]
    fn length_distribution() {
        let stats = words_per_sentence(&corpus(&[4, 1, 3, 0])).unwrap();
        assert_eq!((stats.min, stats.max, stats.p95), (0, 4, 4));
        assert_eq!((stats.median, stats.mean), (2.0, 2.0));
        assert!(words_per_sentence(&corpus(&[])).is_none());
    }

    #[test]
    fn split_sizes_count_words_and_entities() {
        let stats = split_stats(&corpus(&[4, 1, 3, 0]), &[0, 3]);
        assert_eq!((stats.sentences, stats.words, stats.entities), (2, 4, 1));
        assert_eq!(stats.entities_per_type["A"], 1);
    }
}
