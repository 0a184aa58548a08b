//! Tag parsing as seqeval 1.2.2 does it, and the table that interns entity type names.
//!
//! seqeval splits a tag in two different ways. Default mode (`get_entities`) takes the first
//! character as the prefix and, of the rest, everything after the first `-`
//! (`B-DRUG-NAME` -> `DRUG-NAME`, `BPER` -> `PER`). Strict mode (`seqeval.scheme.Token`) takes
//! the first character as the prefix and the rest with `-` stripped from both ends. Both give
//! the type `_` when nothing is left (`B`, `B-`, `O`).

use std::collections::HashMap;

use super::error::TagError;

pub(crate) use crate::tags::BARE_TYPE;

/// Interned entity type: an index into a [`TypeTable`].
pub(crate) type TypeId = u32;

/// Interns type names so the scanners compare integers, not strings.
#[derive(Debug)]
pub(crate) struct TypeTable {
    names: Vec<Box<str>>,
    ids: HashMap<Box<str>, TypeId>,
}

impl TypeTable {
    /// The id of [`BARE_TYPE`] in every table.
    pub(crate) const BARE: TypeId = 0;

    pub(crate) fn new() -> Self {
        let mut table = TypeTable { names: Vec::new(), ids: HashMap::new() };
        table.intern(BARE_TYPE);
        table
    }

    pub(crate) fn intern(&mut self, name: &str) -> TypeId {
        if let Some(&id) = self.ids.get(name) {
            return id;
        }
        let id = TypeId::try_from(self.names.len()).expect("fewer than 2^32 entity types");
        self.names.push(name.into());
        self.ids.insert(name.into(), id);
        id
    }

    pub(crate) fn name(&self, id: TypeId) -> &str {
        &self.names[id as usize]
    }

    pub(crate) fn len(&self) -> usize {
        self.names.len()
    }
}

/// A tag as default mode sees it: its first character and its interned type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct DefaultTag {
    pub prefix: char,
    pub kind: TypeId,
}

impl DefaultTag {
    /// The `O` seqeval appends after every sentence.
    pub(crate) const OUTSIDE: DefaultTag = DefaultTag { prefix: 'O', kind: TypeTable::BARE };
}

/// Splits `tag` like `get_entities` does. Fails only on an empty tag (Python's `chunk[0]`).
pub(crate) fn parse_default(tag: &str, table: &mut TypeTable) -> Result<DefaultTag, TagError> {
    if tag.is_empty() {
        return Err(TagError::Empty);
    }
    match crate::tags::split_tag(tag) {
        None => Ok(DefaultTag::OUTSIDE),
        Some((prefix, kind)) => Ok(DefaultTag { prefix, kind: table.intern(kind) }),
    }
}

/// The prefixes `seqeval.scheme.Prefix` knows; any other first character is a `KeyError` there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Prefix {
    I,
    O,
    B,
    E,
    S,
    U,
    L,
}

impl Prefix {
    fn from_char(c: char) -> Option<Prefix> {
        Some(match c {
            'I' => Prefix::I,
            'O' => Prefix::O,
            'B' => Prefix::B,
            'E' => Prefix::E,
            'S' => Prefix::S,
            'U' => Prefix::U,
            'L' => Prefix::L,
            _ => return None,
        })
    }

    pub(crate) fn letter(self) -> char {
        match self {
            Prefix::I => 'I',
            Prefix::O => 'O',
            Prefix::B => 'B',
            Prefix::E => 'E',
            Prefix::S => 'S',
            Prefix::U => 'U',
            Prefix::L => 'L',
        }
    }
}

/// A tag as strict mode sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct StrictTag {
    pub prefix: Prefix,
    pub kind: TypeId,
}

impl StrictTag {
    /// The `O` seqeval's `Tokens` appends after every sentence.
    pub(crate) const OUTSIDE: StrictTag = StrictTag { prefix: Prefix::O, kind: TypeTable::BARE };
}

/// Splits `tag` like `seqeval.scheme.Token` does (prefix = first character, type = the rest
/// with `-` stripped from both ends).
pub(crate) fn parse_strict(tag: &str, table: &mut TypeTable) -> Result<StrictTag, TagError> {
    if tag == "O" {
        return Ok(StrictTag::OUTSIDE);
    }
    let first = tag.chars().next().ok_or(TagError::Empty)?;
    let prefix =
        Prefix::from_char(first).ok_or_else(|| TagError::UnknownPrefix { tag: tag.to_owned(), prefix: first })?;
    let kind = tag[first.len_utf8()..].trim_matches('-');
    Ok(StrictTag { prefix, kind: table.intern(non_empty_type(kind)) })
}

fn non_empty_type(kind: &str) -> &str {
    if kind.is_empty() {
        BARE_TYPE
    } else {
        kind
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn default_parts(tag: &str) -> (char, String) {
        let mut table = TypeTable::new();
        let parsed = parse_default(tag, &mut table).unwrap();
        (parsed.prefix, table.name(parsed.kind).to_owned())
    }

    fn strict_parts(tag: &str) -> Result<(Prefix, String), TagError> {
        let mut table = TypeTable::new();
        let parsed = parse_strict(tag, &mut table)?;
        Ok((parsed.prefix, table.name(parsed.kind).to_owned()))
    }

    #[test]
    fn default_mode_keeps_everything_after_the_first_hyphen() {
        assert_eq!(default_parts("B-DRUG-NAME"), ('B', "DRUG-NAME".into()));
        assert_eq!(default_parts("I--X-"), ('I', "-X-".into()));
        assert_eq!(default_parts("BPER"), ('B', "PER".into()));
        assert_eq!(default_parts("X-PER"), ('X', "PER".into()));
    }

    #[test]
    fn bare_and_empty_types_become_underscore() {
        assert_eq!(default_parts("B"), ('B', "_".into()));
        assert_eq!(default_parts("B-"), ('B', "_".into()));
        assert_eq!(default_parts("O"), ('O', "_".into()));
        assert_eq!(strict_parts("I-").unwrap(), (Prefix::I, "_".into()));
        assert_eq!(strict_parts("B").unwrap(), (Prefix::B, "_".into()));
    }

    #[test]
    fn strict_mode_strips_hyphens_from_both_ends() {
        assert_eq!(strict_parts("B--X-").unwrap(), (Prefix::B, "X".into()));
        assert_eq!(strict_parts("B-DRUG-NAME").unwrap(), (Prefix::B, "DRUG-NAME".into()));
    }

    #[test]
    fn prefixes_are_single_characters_even_outside_ascii() {
        assert_eq!(default_parts("É-PER"), ('É', "PER".into()));
        assert!(matches!(strict_parts("é-PER"), Err(TagError::UnknownPrefix { prefix: 'é', .. })));
    }

    #[test]
    fn strict_mode_rejects_unknown_prefixes_case_sensitively() {
        assert!(matches!(strict_parts("b-per"), Err(TagError::UnknownPrefix { prefix: 'b', .. })));
        assert_eq!(strict_parts("U-PER").unwrap(), (Prefix::U, "PER".into()));
    }

    #[test]
    fn empty_tags_are_errors() {
        let mut table = TypeTable::new();
        assert!(matches!(parse_default("", &mut table), Err(TagError::Empty)));
        assert!(matches!(parse_strict("", &mut table), Err(TagError::Empty)));
    }

    #[test]
    fn the_table_interns_each_name_once() {
        let mut table = TypeTable::new();
        let per = table.intern("PER");
        assert_eq!(table.intern("LOC"), per + 1);
        assert_eq!(table.intern("PER"), per);
        assert_eq!(table.intern("_"), TypeTable::BARE);
        assert_eq!(table.len(), 3);
    }
}
