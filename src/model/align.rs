//! Word-to-sub-word alignment of the recipe: special tokens get -100, the first sub-word of a
//! word gets the word's label and later sub-words -100 (`First`, the study) or the word's
//! label again (`All`). Words cut by `max_length` truncation are recorded, with the number of
//! gold entities they break; with a stride, a long sentence becomes overlapping windows instead
//! and nothing is cut.

use super::head::IGNORE_INDEX;
use super::tokenizer::{encode_words, TokenizerError, WordEncoding};
use std::collections::HashMap;
use tokenizers::Tokenizer;

/// Which sub-words of a word carry its label in training.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LabelAlignment {
    /// Only the first sub-word (the study's recipe).
    #[default]
    First,
    /// Every sub-word, with the word's label repeated.
    All,
}

/// Errors aligning a sentence.
#[derive(Debug, thiserror::Error)]
pub enum AlignError {
    #[error("tag {tag:?} of word {word} is not in the label list")]
    UnknownTag { tag: String, word: usize },
    #[error("{words} words but {tags} tags")]
    Length { words: usize, tags: usize },
    #[error(transparent)]
    Tokenizer(#[from] TokenizerError),
    #[error("stride {stride} must be below the {room} sub-words a window of max_length holds")]
    Stride { stride: usize, room: usize },
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
    let split = |t: &str| -> (char, String) {
        match t.split_once('-') {
            Some((p, ty)) if p.len() == 1 => (p.chars().next().unwrap_or('O'), ty.to_string()),
            _ if t == "O" => ('O', String::new()),
            _ => ('I', t.to_string()),
        }
    };
    let mut ends = Vec::new();
    let mut open: Option<String> = None;
    for (i, tag) in tags.iter().enumerate() {
        let (prefix, ty) = split(tag);
        let continues = matches!(prefix, 'I' | 'E') && open.as_deref() == Some(ty.as_str());
        if open.is_some() && !continues {
            ends.push(i - 1);
            open = None;
        }
        if prefix != 'O' && open.is_none() {
            open = Some(ty);
        }
        if matches!(prefix, 'E' | 'S') && open.is_some() {
            ends.push(i);
            open = None;
        }
    }
    if open.is_some() {
        ends.push(tags.len() - 1);
    }
    ends
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

/// Token ranges `[start, end)` of the windows of `n` tokens, `max` tokens each, overlapping by
/// `stride` (pure): the rule of the tokenizers' `Encoding::truncate`, which the pipeline's
/// windows follow. Needs `stride < max`.
pub fn window_ranges(n: usize, max: usize, stride: usize) -> Vec<(usize, usize)> {
    if n <= max {
        return vec![(0, n)];
    }
    let mut ranges = Vec::new();
    for start in (0..n).step_by(max - stride) {
        let end = (start + max).min(n);
        ranges.push((start, end));
        if end == n {
            break;
        }
    }
    ranges
}

/// The window of `ranges` in which `token` is farthest from an edge (the first of equals).
pub fn farthest_window(token: usize, ranges: &[(usize, usize)]) -> Option<usize> {
    let margin = |&(start, end): &(usize, usize)| (token - start).min(end - 1 - token);
    let containing = ranges.iter().enumerate().filter(|(_, r)| r.0 <= token && token < r.1);
    containing
        .fold(None, |best: Option<(usize, usize)>, (w, r)| match best {
            Some((_, m)) if m >= margin(r) => best,
            _ => Some((w, margin(r))),
        })
        .map(|(w, _)| w)
}

/// A sentence as overlapping windows of at most `max_length` tokens (special tokens included)
/// that overlap by `stride` text tokens. Every window trains on its tokens' targets; a word's
/// `first_token` is set only in the window where its first sub-word is farthest from an edge,
/// so each word is predicted exactly once. `tokenizer` must not truncate.
#[allow(clippy::too_many_arguments)]
pub fn align_windows(
    tokenizer: &Tokenizer,
    words: &[String],
    tags: &[String],
    label_ids: &HashMap<String, usize>,
    alignment: LabelAlignment,
    max_length: usize,
    stride: usize,
) -> Result<Vec<AlignedSentence>, AlignError> {
    let whole = align_sentence(tokenizer, words, Some(tags), label_ids, alignment)?;
    let word_ids = encode_words(tokenizer, words)?.word_ids;
    let lead = word_ids.iter().take_while(|w| w.is_none()).count();
    let trail = word_ids[lead..].iter().rev().take_while(|w| w.is_none()).count();
    let text = lead..whole.ids.len() - trail;
    let room = max_length.saturating_sub(lead + trail);
    if stride >= room {
        return Err(AlignError::Stride { stride, room });
    }
    let ranges = window_ranges(text.len(), room, stride);
    let owner: Vec<Option<usize>> =
        whole.first_token.iter().map(|t| t.and_then(|t| farthest_window(t - lead, &ranges))).collect();
    let windows = ranges.iter().enumerate().map(|(w, &(start, end))| {
        let (from, to) = (lead + start, lead + end);
        let special = |range: std::ops::Range<usize>| range.map(|i| (whole.ids[i], IGNORE_INDEX));
        let (ids, targets): (Vec<u32>, Vec<i64>) = special(0..lead)
            .chain((from..to).map(|i| (whole.ids[i], whole.targets[i])))
            .chain(special(text.end..whole.ids.len()))
            .unzip();
        let first_token = whole
            .first_token
            .iter()
            .zip(&owner)
            .map(|(t, o)| t.filter(|_| *o == Some(w)).map(|t| t - from + lead))
            .collect();
        AlignedSentence { ids, targets, first_token, truncated_words: 0, entities_lost: 0 }
    });
    Ok(windows.collect())
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

    #[test]
    fn windows_follow_the_tokenizers_rule() {
        assert_eq!(window_ranges(5, 8, 2), vec![(0, 5)]);
        assert_eq!(window_ranges(10, 4, 1), vec![(0, 4), (3, 7), (6, 10)]);
        assert_eq!(window_ranges(11, 4, 1), vec![(0, 4), (3, 7), (6, 10), (9, 11)]);
        assert_eq!(window_ranges(0, 4, 1), vec![(0, 0)]);
    }

    #[test]
    fn a_token_belongs_to_the_window_where_it_is_farthest_from_an_edge() {
        let ranges = window_ranges(10, 4, 2); // (0,4) (2,6) (4,8) (6,10)
        assert_eq!(ranges, vec![(0, 4), (2, 6), (4, 8), (6, 10)]);
        assert_eq!(farthest_window(0, &ranges), Some(0));
        assert_eq!(farthest_window(2, &ranges), Some(0)); // margin 1 in windows 0 and 1: the first
        assert_eq!(farthest_window(4, &ranges), Some(1));
        assert_eq!(farthest_window(9, &ranges), Some(3));
        assert_eq!(farthest_window(10, &ranges), None);
    }

    #[test]
    fn long_sentences_become_windows_with_every_word_owned_once() {
        use tokenizers::models::wordlevel::WordLevel;
        use tokenizers::pre_tokenizers::whitespace::WhitespaceSplit;
        use tokenizers::processors::bert::BertProcessing;
        let words: Vec<String> = (0..9).map(|i| format!("w{i}")).collect();
        let mut vocab: HashMap<String, u32> =
            words.iter().enumerate().map(|(i, w)| (w.clone(), i as u32 + 3)).collect();
        vocab.extend([("[UNK]".to_string(), 0), ("[CLS]".into(), 1), ("[SEP]".into(), 2)]);
        let model = WordLevel::builder().vocab(vocab.into_iter().collect()).unk_token("[UNK]".into()).build().unwrap();
        let mut tok = Tokenizer::new(model);
        tok.with_pre_tokenizer(Some(WhitespaceSplit));
        tok.with_post_processor(Some(BertProcessing::new(("[SEP]".into(), 2), ("[CLS]".into(), 1))));
        let tags = tags("O B-X I-X O O B-X O O B-X");
        let ids = HashMap::from([("O".to_string(), 0), ("B-X".to_string(), 1), ("I-X".to_string(), 2)]);
        // 6 tokens a window, 4 of text, 2 shared: text tokens (0,4) (2,6) (4,8) (6,9).
        let windows = align_windows(&tok, &words, &tags, &ids, LabelAlignment::First, 6, 2).unwrap();
        assert_eq!(windows.len(), 4);
        assert_eq!(windows[1].ids, vec![1, 5, 6, 7, 8, 2]);
        assert_eq!(windows[1].targets, vec![-100, 2, 0, 0, 1, -100]);
        let owners: Vec<usize> =
            (0..9).map(|w| windows.iter().filter(|win| win.first_token[w].is_some()).count()).collect();
        assert_eq!(owners, vec![1; 9]);
        // Word 4 (text token 4) is 1 token from an edge in window 1, 0 in window 2.
        assert_eq!(windows[1].first_token[4], Some(3));
        assert!(windows.iter().all(|w| w.entities_lost == 0 && w.truncated_words == 0));
        let err = align_windows(&tok, &words, &tags, &ids, LabelAlignment::First, 6, 4).unwrap_err();
        assert_eq!(err.to_string(), "stride 4 must be below the 4 sub-words a window of max_length holds");
    }
}
