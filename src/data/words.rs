//! Words of a text and the words an entity covers, exactly as the reference notebook does it.
//!
//! Words are the matches of Python's `re.findall(r"\S+", text)`: maximal runs of characters
//! that are not Python whitespace. Python's whitespace set is Rust's `char::is_whitespace`
//! plus U+001C..=U+001F (the information separators). Offsets are Unicode code points, as in
//! Python strings. An entity covers every word it overlaps (`word.start < entity.end` and
//! `word.end > entity.start`), so spans that start or end inside a word take the whole word,
//! spans past the end of the text still cover the last words they overlap, and a span that
//! overlaps no word is dropped. Overlapping entities are all kept in source order: the tagger
//! paints them one after the other, so later entities overwrite earlier ones.

use super::corpus::WordSpan;

/// One word with its code-point offsets (end exclusive).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Word {
    pub text: String,
    pub start: usize,
    pub end: usize,
}

/// An entity in code-point offsets of its text, as span tables give it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CharSpan {
    pub kind: String,
    pub start: i64,
    pub end: i64,
}

/// Whether Python's `str.isspace` (and so `re`'s `\s`) treats `c` as whitespace.
pub fn is_python_whitespace(c: char) -> bool {
    c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c)
}

/// The `\S+` words of `text` with code-point offsets.
pub fn split_words(text: &str) -> Vec<Word> {
    let mut words = Vec::new();
    let mut current: Option<(usize, String)> = None;
    let mut position = 0;
    for c in text.chars() {
        if is_python_whitespace(c) {
            if let Some((start, word)) = current.take() {
                words.push(Word { text: word, start, end: position });
            }
        } else {
            current.get_or_insert_with(|| (position, String::new())).1.push(c);
        }
        position += 1;
    }
    if let Some((start, word)) = current {
        words.push(Word { text: word, start, end: position });
    }
    words
}

/// The word span an entity covers, or `None` when it overlaps no word.
///
/// Words are sorted and disjoint, so the covered words are contiguous.
pub fn covered_words(words: &[Word], span: &CharSpan) -> Option<WordSpan> {
    let overlaps = |w: &Word| (w.start as i64) < span.end && (w.end as i64) > span.start;
    let first = words.iter().position(overlaps)?;
    let count = words[first..].iter().take_while(|w| overlaps(w)).count();
    Some(WordSpan { kind: span.kind.clone(), start: first, end: first + count })
}

/// Words of `text` and the word spans of `entities`, in source order.
pub fn words_and_spans(text: &str, entities: &[CharSpan]) -> (Vec<String>, Vec<WordSpan>) {
    let words = split_words(text);
    let spans = entities.iter().filter_map(|e| covered_words(&words, e)).collect();
    (words.into_iter().map(|w| w.text).collect(), spans)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn span(kind: &str, start: i64, end: i64) -> CharSpan {
        CharSpan { kind: kind.into(), start, end }
    }

    #[test]
    fn python_whitespace_adds_information_separators() {
        assert!(is_python_whitespace('\u{1c}'));
        assert!(is_python_whitespace('\u{a0}'));
        assert!(!is_python_whitespace('\u{feff}'));
        assert!(!is_python_whitespace('\u{2060}'));
        let words = split_words("a\u{1d}b  c");
        let texts: Vec<_> = words.iter().map(|w| w.text.as_str()).collect();
        assert_eq!(texts, ["a", "b", "c"]);
        assert_eq!((words[2].start, words[2].end), (5, 6));
    }

    #[test]
    fn offsets_are_code_points() {
        let words = split_words("åäö x");
        assert_eq!((words[1].start, words[1].end), (4, 5));
    }

    #[test]
    fn partial_overlap_takes_whole_words() {
        let words = split_words("abc def ghi");
        let covered = covered_words(&words, &span("X", 2, 5)).unwrap();
        assert_eq!((covered.start, covered.end), (0, 2));
    }

    #[test]
    fn spans_touching_a_word_do_not_cover_it() {
        let words = split_words("abc def");
        assert_eq!(covered_words(&words, &span("X", 3, 4)), None);
        assert_eq!(covered_words(&words, &span("X", 3, 3)), None);
    }

    #[test]
    fn span_past_end_covers_last_words() {
        let words = split_words("abc def");
        let covered = covered_words(&words, &span("X", 5, 90)).unwrap();
        assert_eq!((covered.start, covered.end), (1, 2));
    }
}
