//! Word-to-sub-word alignment of the recipe: special tokens get -100, the first sub-word of a
//! word gets the word's label and later sub-words -100 (`First`, the study) or the word's
//! label again (`All`). Words cut by `max_length` truncation are recorded, with the number of
//! gold entities they break.

use super::head::IGNORE_INDEX;
use super::tokenizer::{encode_words, TokenizerError, WordEncoding};
use std::collections::HashMap;
use tokenizers::Tokenizer;

pub use crate::spec::LabelAlignment;

/// Errors aligning a sentence.
#[derive(Debug, thiserror::Error)]
pub enum AlignError {
    #[error("tag {tag:?} of word {word} is not in the label list")]
    UnknownTag { tag: String, word: usize },
    #[error("{words} words but {tags} tags")]
    Length { words: usize, tags: usize },
    #[error(transparent)]
    Tokenizer(#[from] TokenizerError),
}

/// One sentence ready for the model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlignedSentence {
    /// Sub-word ids with special tokens.
    pub ids: Vec<u32>,
    /// Per token: the class id to learn, or -100.
    pub targets: Vec<i64>,
    /// Per word: the token index of its first sub-word; `None` for words cut by truncation
    /// or that produced no sub-word.
    pub first_token: Vec<Option<usize>>,
    /// Words lost to truncation (at the end of the sentence).
    pub truncated_words: usize,
    /// Gold entities with at least one truncated word.
    pub entities_lost: usize,
}

/// Targets and first-sub-word positions from a tokenizer's word ids (pure).
/// `word_labels[w]` is word `w`'s class id.
pub fn align_labels(
    word_ids: &[Option<u32>],
    word_labels: &[i64],
    alignment: LabelAlignment,
) -> (Vec<i64>, Vec<Option<usize>>) {
    let mut first_token = vec![None; word_labels.len()];
    let mut previous = None;
    let targets = word_ids
        .iter()
        .enumerate()
        .map(|(token, word)| {
            let Some(w) = word.map(|w| w as usize) else {
                previous = None;
                return IGNORE_INDEX;
            };
            let first = previous != Some(w);
            previous = Some(w);
            if first {
                first_token[w] = Some(token);
            }
            match (first, alignment) {
                (true, _) | (false, LabelAlignment::All) => word_labels[w],
                (false, LabelAlignment::First) => IGNORE_INDEX,
            }
        })
        .collect();
    (targets, first_token)
}

/// Words after the last word that kept a sub-word (those truncation removed).
pub fn truncated_words(first_token: &[Option<usize>]) -> usize {
    let kept = first_token.iter().rposition(Option::is_some).map_or(0, |i| i + 1);
    first_token.len() - kept
}

/// Gold entities (chunks of a BIO/BIOES/IO tag sequence) that reach into the last
/// `cut` words.
pub fn entities_cut(tags: &[String], cut: usize) -> usize {
    let first_cut = tags.len() - cut.min(tags.len());
    chunk_ends(tags).iter().filter(|&&end| end >= first_cut).count()
}

/// The last word index of every chunk, with seqeval's default chunking rules.
fn chunk_ends(tags: &[String]) -> Vec<usize> {
    let split: Vec<(char, &str)> = tags.iter().map(|t| crate::tags::split_tag(t).unwrap_or(('O', ""))).collect();
    crate::tags::chunks(&split).iter().map(|c| c.end - 1).collect()
}

/// Class ids of `tags` under `label_ids`.
pub fn tag_ids(tags: &[String], label_ids: &HashMap<String, usize>) -> Result<Vec<i64>, AlignError> {
    tags.iter()
        .enumerate()
        .map(|(word, tag)| {
            label_ids.get(tag).map(|&id| id as i64).ok_or_else(|| AlignError::UnknownTag { tag: tag.clone(), word })
        })
        .collect()
}

/// Tokenizes and aligns one sentence. Without `tags` (prediction), targets are all -100.
pub fn align_sentence(
    tokenizer: &Tokenizer,
    words: &[String],
    tags: Option<&[String]>,
    label_ids: &HashMap<String, usize>,
    alignment: LabelAlignment,
) -> Result<AlignedSentence, AlignError> {
    let labels = match tags {
        Some(tags) if tags.len() != words.len() => {
            return Err(AlignError::Length { words: words.len(), tags: tags.len() })
        }
        Some(tags) => tag_ids(tags, label_ids)?,
        None => vec![IGNORE_INDEX; words.len()],
    };
    let WordEncoding { ids, word_ids } = encode_words(tokenizer, words)?;
    let (targets, first_token) = align_labels(&word_ids, &labels, alignment);
    let truncated = truncated_words(&first_token);
    Ok(AlignedSentence {
        ids,
        targets,
        first_token,
        truncated_words: truncated,
        entities_lost: tags.map_or(0, |t| entities_cut(t, truncated)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tags(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    // [CLS] w0 w1 w1 w2 w2 w2 [SEP]
    const WORD_IDS: [Option<u32>; 8] = [None, Some(0), Some(1), Some(1), Some(2), Some(2), Some(2), None];

    #[test]
    fn first_sub_word_carries_the_label() {
        let (targets, first) = align_labels(&WORD_IDS, &[0, 1, 2], LabelAlignment::First);
        assert_eq!(targets, vec![-100, 0, 1, -100, 2, -100, -100, -100]);
        assert_eq!(first, vec![Some(1), Some(2), Some(4)]);
    }

    #[test]
    fn all_sub_words_repeat_the_label() {
        let (targets, first) = align_labels(&WORD_IDS, &[0, 1, 2], LabelAlignment::All);
        assert_eq!(targets, vec![-100, 0, 1, 1, 2, 2, 2, -100]);
        assert_eq!(first, vec![Some(1), Some(2), Some(4)]);
    }

    #[test]
    fn truncated_words_are_counted_at_the_end_only() {
        // Word 1 produced no sub-word; words 3 and 4 were cut.
        let first = [Some(1), None, Some(2), None, None];
        assert_eq!(truncated_words(&first), 2);
        assert_eq!(truncated_words(&[Some(1)]), 0);
        assert_eq!(truncated_words(&[None, None]), 2);
    }

    #[test]
    fn entities_reaching_the_cut_are_lost() {
        let t = tags("B-X I-X O B-Y I-Y O B-X");
        assert_eq!(entities_cut(&t, 0), 0);
        assert_eq!(entities_cut(&t, 1), 1);
        assert_eq!(entities_cut(&t, 2), 1);
        assert_eq!(entities_cut(&t, 3), 2);
        assert_eq!(entities_cut(&t, 7), 3);
    }

    #[test]
    fn chunking_handles_bioes_and_type_changes() {
        assert_eq!(chunk_ends(&tags("S-X B-X E-X O")), vec![0, 2]);
        assert_eq!(chunk_ends(&tags("I-X I-Y B-Y")), vec![0, 1, 2]);
        assert_eq!(chunk_ends(&tags("B-X I-X")), vec![1]);
    }

    #[test]
    fn unknown_tags_are_reported_with_their_word() {
        let ids = HashMap::from([("O".to_string(), 0)]);
        let err = tag_ids(&tags("O B-Z"), &ids).unwrap_err().to_string();
        assert_eq!(err, "tag \"B-Z\" of word 1 is not in the label list");
    }
}
