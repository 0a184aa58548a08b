//! Inline bracket annotation, as in the original Swedish 1177 corpus: one sentence per line,
//! entities marked by bracket tokens (`( … )` disorder and finding, `[ … ]` pharmaceutical
//! drug, `{ … }` body structure by default).
//!
//! A bracket counts only as a whitespace-separated token of its own; brackets inside words are
//! ordinary characters. The bracket tokens are removed: the words are the other tokens, the
//! text is those words joined by single spaces, and each entity spans the words between its
//! brackets. Every line is a sentence, an empty line an empty sentence (the original file has
//! one, and the Hub table keeps it). Nesting is not supported.

use std::collections::BTreeMap;
use std::path::Path;

use super::corpus::{Sentence, WordSpan};
use super::error::{DataError, Problem};
use super::records::{read_lines, Skipped};
use super::words::split_words;

/// Opening brackets that may be configured, with their closing partners.
pub const BRACKET_PAIRS: [(&str, &str); 4] = [("(", ")"), ("[", "]"), ("{", "}"), ("<", ">")];

/// The original corpus' map from opening bracket to entity type.
pub fn default_brackets() -> BTreeMap<String, String> {
    [("(", "Disorder and Finding"), ("[", "Pharmaceutical Drug"), ("{", "Body Structure")]
        .into_iter()
        .map(|(open, kind)| (open.to_string(), kind.to_string()))
        .collect()
}

/// The closing partner of an opening bracket in [`BRACKET_PAIRS`].
pub fn closing_bracket(open: &str) -> Option<&'static str> {
    BRACKET_PAIRS.iter().find(|(o, _)| *o == open).map(|(_, close)| *close)
}

/// A token's role in the annotation.
enum Token<'a> {
    Open(&'a str),
    Close(&'a str),
    Word,
}

fn classify<'a>(token: &str, brackets: &'a BTreeMap<String, String>) -> Token<'a> {
    for (open, kind) in brackets {
        if token == open {
            return Token::Open(kind);
        }
        if Some(token) == closing_bracket(open) {
            return Token::Close(kind);
        }
    }
    Token::Word
}

/// An entity whose closing bracket has not come yet.
#[derive(Clone, Copy)]
struct OpenEntity<'a> {
    bracket: &'a str,
    /// 1-based token position of the opening bracket.
    position: usize,
    kind: &'a str,
    /// Index of its first word.
    start: usize,
}

/// Words and entities of one annotated line; errors name 1-based token positions.
pub fn parse_line(line: &str, brackets: &BTreeMap<String, String>) -> Result<Sentence, Problem> {
    let mut words = Vec::new();
    let mut entities = Vec::new();
    let mut open: Option<OpenEntity> = None;
    let tokens = split_words(line);
    for (index, token) in tokens.iter().map(|w| w.text.as_str()).enumerate() {
        let position = index + 1;
        match (classify(token, brackets), open) {
            (Token::Word, _) => words.push(token.to_string()),
            (Token::Open(kind), None) => open = Some(OpenEntity { bracket: token, position, kind, start: words.len() }),
            (Token::Close(kind), Some(entity)) if kind == entity.kind => {
                entities.push(close(entity, words.len())?);
                open = None;
            }
            (Token::Open(_), Some(_)) => return Err(Problem::NestedBracket { bracket: token.into(), word: position }),
            (Token::Close(_), _) => return Err(Problem::UnexpectedClose { bracket: token.into(), word: position }),
        }
    }
    if let Some(entity) = open {
        return Err(Problem::UnclosedBracket { bracket: entity.bracket.into(), word: entity.position });
    }
    let text = words.join(" ");
    Ok(Sentence { words, entities, text: Some(text) })
}

fn close(entity: OpenEntity, end: usize) -> Result<WordSpan, Problem> {
    if entity.start == end {
        return Err(Problem::EmptyEntity { word: entity.position });
    }
    Ok(WordSpan { kind: entity.kind.to_string(), start: entity.start, end })
}

/// Sentences of a bracket-annotated file, one per line.
pub fn load_brackets(
    path: &Path,
    brackets: &BTreeMap<String, String>,
    skipped: &mut Skipped,
) -> Result<Vec<Sentence>, DataError> {
    let mut sentences = Vec::new();
    for (number, line) in read_lines(path)? {
        let sentence = line.and_then(|text| {
            parse_line(&text, brackets).map_err(|problem| DataError::malformed(path, number, "brackets", problem))
        });
        sentences.extend(skipped.check(sentence)?);
    }
    Ok(sentences)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(line: &str) -> Result<Sentence, Problem> {
        parse_line(line, &default_brackets())
    }

    #[test]
    fn bracket_tokens_are_removed_and_mark_entities() {
        let sentence = parse("[ Medicinen ] påverkar { blodets } förmåga ( x y )").unwrap();
        assert_eq!(sentence.words, ["Medicinen", "påverkar", "blodets", "förmåga", "x", "y"]);
        let spans: Vec<_> = sentence.entities.iter().map(|e| (e.kind.as_str(), e.start, e.end)).collect();
        assert_eq!(spans, [("Pharmaceutical Drug", 0, 1), ("Body Structure", 2, 3), ("Disorder and Finding", 4, 6)]);
        assert_eq!(sentence.text.unwrap(), "Medicinen påverkar blodets förmåga x y");
    }

    #[test]
    fn brackets_inside_words_are_ordinary_characters() {
        let sentence = parse("a (b) c").unwrap();
        assert_eq!(sentence.words, ["a", "(b)", "c"]);
        assert!(sentence.entities.is_empty());
    }

    #[test]
    fn malformed_annotation_is_reported_with_the_token_position() {
        assert_eq!(parse("a ( b").unwrap_err(), Problem::UnclosedBracket { bracket: "(".into(), word: 2 });
        assert_eq!(parse("a ] b").unwrap_err(), Problem::UnexpectedClose { bracket: "]".into(), word: 2 });
        assert_eq!(parse("( a [ b ] )").unwrap_err(), Problem::NestedBracket { bracket: "[".into(), word: 3 });
        assert_eq!(parse("( a ]").unwrap_err(), Problem::UnexpectedClose { bracket: "]".into(), word: 3 });
        assert_eq!(parse("x ( )").unwrap_err(), Problem::EmptyEntity { word: 2 });
    }

    #[test]
    fn the_map_is_configurable() {
        let brackets: BTreeMap<String, String> = [("<".to_string(), "Gene".to_string())].into();
        let sentence = parse_line("< BRCA1 > and ( x )", &brackets).unwrap();
        assert_eq!(sentence.words, ["BRCA1", "and", "(", "x", ")"]);
        assert_eq!(sentence.entities[0].kind, "Gene");
    }

    #[test]
    fn empty_line_is_an_empty_sentence() {
        let sentence = parse("").unwrap();
        assert!(sentence.words.is_empty() && sentence.entities.is_empty());
    }
}
