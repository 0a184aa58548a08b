//! Span tables as the Hugging Face Hub publishes them: a text column and an entities column
//! with `start`, `end` (Python code-point offsets, end exclusive) and `type` per entity.
//!
//! * JSON Lines: one object per line; blank lines are ignored.
//! * Parquet (read eagerly with polars): one row per sentence.
//!
//! The entities column may be a list of `{start, end, type}` objects or, as 🤗 datasets stores
//! a `Sequence` of dicts, an object of lists `{start: [...], end: [...], type: [...]}`. A type is
//! a name or an integer id into `type_names`; for parquet files written by 🤗 datasets the
//! names default to the `ClassLabel` names in the file's `huggingface` metadata. The text
//! column defaults to `text`, or `sentence` (the Hub's name) when there is no `text`.
//!
//! A span must satisfy `0 <= start <= end <= len(text)`. Words and labels then follow
//! `words::words_and_spans`, the reference notebook's rule.

use std::fs::File;
use std::path::Path;

use polars::prelude::*;
use serde_json::Value;

use super::corpus::Sentence;
use super::error::{DataError, Problem};
use super::records::{read_lines, Skipped};
use super::words::{words_and_spans, CharSpan};

/// Which columns hold the text and the entities, and how type ids are named.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SpanOptions {
    pub text_column: Option<String>,
    pub entities_column: Option<String>,
    pub type_names: Option<Vec<String>>,
}

impl SpanOptions {
    fn entities_column(&self) -> &str {
        self.entities_column.as_deref().unwrap_or("entities")
    }

    /// The configured text column, else `text` or `sentence`, whichever `has` reports.
    fn text_column(&self, has: impl Fn(&str) -> bool) -> String {
        let default = if !has("text") && has("sentence") { "sentence" } else { "text" };
        self.text_column.clone().unwrap_or_else(|| default.to_string())
    }
}

/// An entity type as the table gives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RawType {
    Name(String),
    Id(i64),
}

/// One entity as read, before validation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawEntity {
    pub start: Option<i64>,
    pub end: Option<i64>,
    pub kind: Option<RawType>,
}

/// Where a record is, for error messages.
struct Place<'a> {
    path: &'a Path,
    line: usize,
    column: &'a str,
}

impl Place<'_> {
    fn error(&self, index: usize, field: &str, problem: Problem) -> DataError {
        let field = format!("{}[{index}].{field}", self.column);
        DataError::malformed(self.path, self.line, field, problem)
    }
}

/// Checks one record and turns it into a sentence.
fn sentence_from(
    place: &Place,
    text: &str,
    entities: &[RawEntity],
    type_names: &[String],
) -> Result<Sentence, DataError> {
    let len = text.chars().count();
    let spans = entities
        .iter()
        .enumerate()
        .map(|(i, e)| char_span(place, i, e, len, type_names))
        .collect::<Result<Vec<_>, _>>()?;
    let (words, entities) = words_and_spans(text, &spans);
    Ok(Sentence { words, entities, text: Some(text.to_string()) })
}

fn char_span(
    place: &Place,
    index: usize,
    entity: &RawEntity,
    len: usize,
    type_names: &[String],
) -> Result<CharSpan, DataError> {
    let offset = Problem::WrongType { expected: "an integer code-point offset" };
    let start = entity.start.ok_or_else(|| place.error(index, "start", offset.clone()))?;
    let end = entity.end.ok_or_else(|| place.error(index, "end", offset))?;
    if start < 0 || start > end {
        return Err(place.error(index, "start", Problem::InvalidSpan { start, end }));
    }
    if end > len as i64 {
        return Err(place.error(index, "end", Problem::SpanPastEnd { offset: end, len }));
    }
    let kind = type_name(entity.kind.as_ref(), type_names).map_err(|problem| place.error(index, "type", problem))?;
    Ok(CharSpan { kind, start, end })
}

/// The entity type's name, looking ids up in `type_names`.
fn type_name(kind: Option<&RawType>, type_names: &[String]) -> Result<String, Problem> {
    match kind {
        None => Err(Problem::WrongType { expected: "a type name or an integer id" }),
        Some(RawType::Name(name)) => Ok(name.clone()),
        Some(&RawType::Id(id)) => usize::try_from(id)
            .ok()
            .and_then(|i| type_names.get(i).cloned())
            .ok_or(Problem::UnknownTypeId { id, known: type_names.len() }),
    }
}

/// Sentences of a JSON Lines span table.
pub fn load_jsonl(path: &Path, options: &SpanOptions, skipped: &mut Skipped) -> Result<Vec<Sentence>, DataError> {
    let names = options.type_names.clone().unwrap_or_default();
    let mut sentences = Vec::new();
    for (line, text) in read_lines(path)? {
        if text.as_ref().is_ok_and(|t| t.trim().is_empty()) {
            continue;
        }
        let record = text.and_then(|t| jsonl_record(path, line, &t, options, &names));
        sentences.extend(skipped.check(record)?);
    }
    Ok(sentences)
}

fn jsonl_record(
    path: &Path,
    line: usize,
    text: &str,
    options: &SpanOptions,
    names: &[String],
) -> Result<Sentence, DataError> {
    let object = json_object(text).map_err(|p| DataError::malformed(path, line, "line", p))?;
    let text_column = options.text_column(|c| object.contains_key(c));
    let text = json_text(object.get(&text_column)).map_err(|p| DataError::malformed(path, line, &text_column, p))?;
    let column = options.entities_column();
    let entities = object
        .get(column)
        .ok_or(Problem::Missing)
        .and_then(json_entities)
        .map_err(|p| DataError::malformed(path, line, column, p))?;
    sentence_from(&Place { path, line, column }, text, &entities, names)
}

fn json_object(line: &str) -> Result<serde_json::Map<String, Value>, Problem> {
    match serde_json::from_str(line) {
        Ok(Value::Object(object)) => Ok(object),
        Ok(_) => Err(Problem::WrongType { expected: "a JSON object" }),
        Err(e) => Err(Problem::InvalidJson { detail: e.to_string() }),
    }
}

fn json_text(value: Option<&Value>) -> Result<&str, Problem> {
    let value = value.ok_or(Problem::Missing)?;
    value.as_str().ok_or(Problem::WrongType { expected: "a string" })
}

/// Entities from a list of objects or from an object of lists.
fn json_entities(value: &Value) -> Result<Vec<RawEntity>, Problem> {
    let expected = Problem::WrongType { expected: "a list of entities or an object of lists" };
    match value {
        Value::Null => Ok(Vec::new()),
        Value::Array(items) => Ok(items.iter().map(json_entity).collect()),
        Value::Object(columns) => {
            let count = columns.values().filter_map(Value::as_array).map(Vec::len).max();
            let count = count.ok_or(expected)?;
            Ok((0..count).map(|i| object_of_lists_entity(value, i)).collect())
        }
        _ => Err(expected),
    }
}

fn json_entity(item: &Value) -> RawEntity {
    RawEntity {
        start: item.get("start").and_then(Value::as_i64),
        end: item.get("end").and_then(Value::as_i64),
        kind: item.get("type").and_then(json_type),
    }
}

fn object_of_lists_entity(value: &Value, index: usize) -> RawEntity {
    let at = |field: &str| value.get(field).and_then(|list| list.get(index));
    RawEntity {
        start: at("start").and_then(Value::as_i64),
        end: at("end").and_then(Value::as_i64),
        kind: at("type").and_then(json_type),
    }
}

fn json_type(value: &Value) -> Option<RawType> {
    match value {
        Value::String(name) => Some(RawType::Name(name.clone())),
        Value::Number(n) => n.as_i64().map(RawType::Id),
        _ => None,
    }
}

/// Sentences of a parquet span table, one per row.
pub fn load_parquet(path: &Path, options: &SpanOptions, skipped: &mut Skipped) -> Result<Vec<Sentence>, DataError> {
    let (frame, metadata_names) = read_parquet(path, options.entities_column())?;
    let names = options.type_names.clone().or(metadata_names).unwrap_or_default();
    let text_column = options.text_column(|c| frame.column(c).is_ok());
    let texts = string_column(path, &frame, &text_column)?;
    let column = options.entities_column();
    let entities = entity_rows(path, &frame, column)?;
    let mut sentences = Vec::new();
    for (row, (text, entities)) in texts.into_iter().zip(entities).enumerate() {
        let place = Place { path, line: row + 1, column };
        let record = match text {
            None => Err(DataError::malformed(path, row + 1, &text_column, Problem::Missing)),
            Some(text) => sentence_from(&place, &text, &entities, &names),
        };
        sentences.extend(skipped.check(record)?);
    }
    Ok(sentences)
}

/// The frame and the `ClassLabel` names of `<entities>.type` from the 🤗 metadata, if any.
fn read_parquet(path: &Path, column: &str) -> Result<(DataFrame, Option<Vec<String>>), DataError> {
    let parquet_error = |source| DataError::Parquet { path: path.to_path_buf(), source };
    let file = File::open(path).map_err(|e| DataError::io(path, e))?;
    let mut reader = ParquetReader::new(file);
    let metadata = reader.get_metadata().map_err(parquet_error)?;
    let hf_json = metadata
        .key_value_metadata()
        .iter()
        .flatten()
        .find(|kv| kv.key == "huggingface")
        .and_then(|kv| kv.value.clone());
    let names = hf_json.and_then(|json| class_label_names(&json, column));
    let frame = reader.finish().map_err(parquet_error)?;
    Ok((frame, names))
}

/// `ClassLabel` names of the entity type in 🤗 datasets' feature JSON, for a struct of lists
/// (`features.entities.type.feature.names`) or a list of structs
/// (`features.entities.feature.type.names`).
pub fn class_label_names(hf_json: &str, column: &str) -> Option<Vec<String>> {
    let value: Value = serde_json::from_str(hf_json).ok()?;
    let feature = value.get("info")?.get("features")?.get(column)?;
    let names = feature
        .get("type")
        .and_then(|t| t.get("feature"))
        .and_then(|f| f.get("names"))
        .or_else(|| feature.get("feature")?.get("type")?.get("names"))?;
    names.as_array()?.iter().map(|n| n.as_str().map(String::from)).collect()
}

fn schema_error(path: &Path, field: &str, message: impl Into<String>) -> DataError {
    DataError::Schema { path: path.to_path_buf(), field: field.to_string(), message: message.into() }
}

fn column<'a>(path: &Path, frame: &'a DataFrame, name: &str) -> Result<&'a Column, DataError> {
    frame.column(name).map_err(|_| {
        let names: Vec<_> = frame.get_column_names().iter().map(|n| n.to_string()).collect();
        schema_error(path, name, format!("no such column; the columns are {}", names.join(", ")))
    })
}

fn string_column(path: &Path, frame: &DataFrame, name: &str) -> Result<Vec<Option<String>>, DataError> {
    let values = column(path, frame, name)?.str().map_err(|_| schema_error(path, name, "expected a string column"))?;
    Ok(values.iter().map(|v| v.map(String::from)).collect())
}

/// Entities of every row, from a list of structs or a struct of lists.
fn entity_rows(path: &Path, frame: &DataFrame, name: &str) -> Result<Vec<Vec<RawEntity>>, DataError> {
    let series = column(path, frame, name)?.as_materialized_series().clone();
    let wrong = |_| schema_error(path, name, "expected a list of {start, end, type} structs or a struct of lists");
    match series.dtype() {
        DataType::List(_) => {
            let lists = series.list().map_err(wrong)?;
            lists
                .series_iter()
                .map(|row| row.map_or(Ok(Vec::new()), |s| struct_entities(&s)))
                .collect::<PolarsResult<_>>()
                .map_err(wrong)
        }
        DataType::Struct(_) => struct_of_lists(&series).map_err(wrong),
        _ => Err(schema_error(path, name, format!("unsupported column type {}", series.dtype()))),
    }
}

/// Entities of one row stored as a struct series (one struct per entity).
fn struct_entities(row: &Series) -> PolarsResult<Vec<RawEntity>> {
    let fields = row.struct_()?;
    let starts = int_values(&fields.field_by_name("start")?)?;
    let ends = int_values(&fields.field_by_name("end")?)?;
    let kinds = type_values(&fields.field_by_name("type")?)?;
    Ok(zip_entities(starts, ends, kinds))
}

/// Entities of every row stored as a struct of per-row lists (🤗 `Sequence` of dicts).
fn struct_of_lists(series: &Series) -> PolarsResult<Vec<Vec<RawEntity>>> {
    let fields = series.struct_()?;
    let starts = per_row(&fields.field_by_name("start")?, int_values)?;
    let ends = per_row(&fields.field_by_name("end")?, int_values)?;
    let kinds = per_row(&fields.field_by_name("type")?, type_values)?;
    let rows = starts.into_iter().zip(ends).zip(kinds);
    Ok(rows.map(|((s, e), k)| zip_entities(s, e, k)).collect())
}

fn per_row<T>(lists: &Series, values: impl Fn(&Series) -> PolarsResult<Vec<T>>) -> PolarsResult<Vec<Vec<T>>> {
    lists.list()?.series_iter().map(|row| row.map_or(Ok(Vec::new()), |s| values(&s))).collect()
}

fn zip_entities(starts: Vec<Option<i64>>, ends: Vec<Option<i64>>, kinds: Vec<Option<RawType>>) -> Vec<RawEntity> {
    let count = starts.len().max(ends.len()).max(kinds.len());
    (0..count)
        .map(|i| RawEntity {
            start: starts.get(i).copied().flatten(),
            end: ends.get(i).copied().flatten(),
            kind: kinds.get(i).cloned().flatten(),
        })
        .collect()
}

fn int_values(series: &Series) -> PolarsResult<Vec<Option<i64>>> {
    Ok(series.cast(&DataType::Int64)?.i64()?.iter().collect())
}

fn type_values(series: &Series) -> PolarsResult<Vec<Option<RawType>>> {
    if series.dtype().is_integer() {
        let ids = int_values(series)?;
        return Ok(ids.into_iter().map(|id| id.map(RawType::Id)).collect());
    }
    let names = series.str()?;
    Ok(names.iter().map(|n| n.map(|n| RawType::Name(n.to_string()))).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::records::OnError;

    fn jsonl(content: &str, options: &SpanOptions, policy: OnError) -> (Result<Vec<Sentence>, DataError>, Vec<String>) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.jsonl");
        std::fs::write(&path, content).unwrap();
        let mut skipped = Skipped::new(policy);
        let result = load_jsonl(&path, options, &mut skipped);
        (result, skipped.messages)
    }

    #[test]
    fn list_of_objects_and_object_of_lists_read_the_same() {
        let a = r#"{"text": "ab cd", "entities": [{"start": 3, "end": 5, "type": "X"}]}"#;
        let b = r#"{"text": "ab cd", "entities": {"start": [3], "end": [5], "type": ["X"]}}"#;
        let options = SpanOptions::default();
        let (first, _) = jsonl(a, &options, OnError::Fail);
        let (second, _) = jsonl(b, &options, OnError::Fail);
        let first = first.unwrap();
        assert_eq!(first, second.unwrap());
        assert_eq!(first[0].entities[0].start, 1);
    }

    #[test]
    fn type_ids_use_type_names() {
        let line = r#"{"sentence": "ab cd", "entities": [{"start": 0, "end": 2, "type": 1}]}"#;
        let options = SpanOptions { type_names: Some(vec!["A".into(), "B".into()]), ..Default::default() };
        let (sentences, _) = jsonl(line, &options, OnError::Fail);
        assert_eq!(sentences.unwrap()[0].entities[0].kind, "B");
    }

    #[test]
    fn span_past_end_is_an_error_with_its_place() {
        let line = "\n{\"text\": \"ab\", \"entities\": [{\"start\": 0, \"end\": 3, \"type\": \"X\"}]}\n";
        let (result, _) = jsonl(line, &SpanOptions::default(), OnError::Fail);
        let message = result.unwrap_err().to_string();
        let expected = "s.jsonl:2: entities[0].end: span past the end of the text: offset 3, text has 2 code points";
        assert!(message.ends_with(expected), "{message}");
    }

    #[test]
    fn unknown_type_id_is_an_error_and_skip_mode_counts_it() {
        let lines = concat!(
            r#"{"text": "ab", "entities": [{"start": 0, "end": 2, "type": 3}]}"#,
            "\n",
            r#"{"text": "cd", "entities": []}"#,
        );
        let options = SpanOptions { type_names: Some(vec!["A".into()]), ..Default::default() };
        let (result, _) = jsonl(lines, &options, OnError::Fail);
        let message = result.unwrap_err().to_string();
        assert!(
            message.ends_with(":1: entities[0].type: unknown entity type id 3: type_names has 1 names (ids 0 to 0)"),
            "{message}"
        );
        let (result, skipped) = jsonl(lines, &options, OnError::Skip);
        assert_eq!(result.unwrap().len(), 1);
        assert_eq!(skipped.len(), 1);
    }

    #[test]
    fn class_label_names_come_from_either_layout() {
        let struct_of_lists = r#"{"info": {"features": {"entities": {"type": {"feature": {"names": ["A", "B"], "_type": "ClassLabel"}, "_type": "List"}}}}}"#;
        let list_of_structs =
            r#"{"info": {"features": {"entities": {"feature": {"type": {"names": ["C"]}}, "_type": "List"}}}}"#;
        assert_eq!(class_label_names(struct_of_lists, "entities").unwrap(), ["A", "B"]);
        assert_eq!(class_label_names(list_of_structs, "entities").unwrap(), ["C"]);
        assert_eq!(class_label_names(list_of_structs, "other"), None);
    }
}
