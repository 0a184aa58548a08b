//! `DatasetConfig`: one `[datasets.<alias>]` table of a grid file, its checks, and loading it.
//!
//! ```toml
//! [datasets.ncbi]
//! train = "data/ncbi/train.tsv"        # corpora with their own splits: train/validation/test
//! validation = "data/ncbi/devel.tsv"
//! test = "data/ncbi/test.tsv"
//!
//! [datasets.swedish]
//! hub = "community-datasets/swedish_medical_ner"
//! config = "1177"
//! split = { test = 0.2, validation = 0.1, seed = 67 }   # floats: fractions, integers: counts
//! # or 5-fold cross-validation, a validation part taken from each fold's train part:
//! # split = { folds = 5, validation = 0.1, seed = 67 }
//!
//! [datasets.original]
//! path = "1177_annotated_sentences.txt"
//! format = "brackets"
//! on_error = "skip"
//! ```
//!
//! `format` is inferred from the file extension when omitted: `.conll`, `.tsv`, `.iob`,
//! `.iob2`, `.bio`, `.bioes` → conll; `.jsonl`, `.ndjson` → jsonl; `.parquet` → parquet; a
//! `hub` id → hub. `.txt` is ambiguous (CoNLL or brackets) and must be named.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::brackets::{closing_bracket, default_brackets, load_brackets, BRACKET_PAIRS};
use super::conll::{load_conll, ConllOptions};
use super::corpus::{Corpus, PredefinedSplits, Sentence};
use super::error::DataError;
use super::hub::{self, HubEnv, HubSource};
use super::records::{OnError, Skipped};
use super::scheme::Scheme;
use super::spans::{load_jsonl, load_parquet, SpanOptions};
use super::split::{SplitConfig, SplitSize};

/// The format of a dataset's files.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum InputFormat {
    Conll,
    Jsonl,
    Parquet,
    Brackets,
    Hub,
}

const FORMAT_NAMES: &str = "conll, jsonl, parquet, brackets, hub";

impl FromStr for InputFormat {
    type Err = String;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        match name.to_ascii_lowercase().as_str() {
            "conll" => Ok(InputFormat::Conll),
            "jsonl" => Ok(InputFormat::Jsonl),
            "parquet" => Ok(InputFormat::Parquet),
            "brackets" => Ok(InputFormat::Brackets),
            "hub" => Ok(InputFormat::Hub),
            _ => Err(format!("unknown format {name:?}, expected one of {FORMAT_NAMES}")),
        }
    }
}

impl fmt::Display for InputFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self {
            InputFormat::Conll => "conll",
            InputFormat::Jsonl => "jsonl",
            InputFormat::Parquet => "parquet",
            InputFormat::Brackets => "brackets",
            InputFormat::Hub => "hub",
        };
        f.write_str(name)
    }
}

/// The format a file extension implies, if any (see the module docs).
pub fn infer_format(path: &Path) -> Option<InputFormat> {
    let extension = path.extension()?.to_str()?.to_ascii_lowercase();
    match extension.as_str() {
        "conll" | "tsv" | "iob" | "iob2" | "bio" | "bioes" => Some(InputFormat::Conll),
        "jsonl" | "ndjson" => Some(InputFormat::Jsonl),
        "parquet" => Some(InputFormat::Parquet),
        _ => None,
    }
}

/// One dataset of a grid file.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Default)]
#[serde(deny_unknown_fields)]
pub struct DatasetConfig {
    /// File format; inferred from the extension when omitted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<InputFormat>,
    /// A single file holding the whole corpus.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<PathBuf>,
    /// Files of a corpus that ships its own splits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub train: Option<PathBuf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub validation: Option<PathBuf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub test: Option<PathBuf>,
    /// A Hub dataset id, `owner/name`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hub: Option<String>,
    /// The Hub config (subset), e.g. `1177`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config: Option<String>,
    /// The Hub revision: a branch, tag or commit (default `main`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision: Option<String>,
    /// CoNLL: 0-based column of the tag (default: the last column).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tag_column: Option<usize>,
    /// CoNLL: column separator (default: tab if the line has one, else whitespace).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub separator: Option<String>,
    /// Span tables: the text column (default `text`, or `sentence` when there is no `text`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text_column: Option<String>,
    /// Span tables: the entities column (default `entities`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entities_column: Option<String>,
    /// Span tables: names of integer type ids, id 0 first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub type_names: Option<Vec<String>>,
    /// Bracket files: opening bracket → entity type (default: the 1177 corpus' three).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub brackets: Option<BTreeMap<String, String>>,
    /// CoNLL: the scheme the tags are written in (default BIO).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_scheme: Option<Scheme>,
    /// How to split the corpus; without it the corpus' own splits are used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub split: Option<SplitConfig>,
    /// What to do with malformed records.
    #[serde(default)]
    pub on_error: OnError,
}

/// A loaded corpus with the messages of the records `on_error = "skip"` left out.
#[derive(Debug, Clone, Default)]
pub struct LoadedCorpus {
    pub corpus: Corpus,
    pub skipped: Vec<String>,
}

type Problems = Vec<(String, String)>;

fn problem(problems: &mut Problems, field: &str, message: impl Into<String>) {
    problems.push((field.to_string(), message.into()));
}

impl DatasetConfig {
    /// A dataset that is one file, its format given or inferred from the extension.
    pub fn from_path(path: impl Into<PathBuf>, format: Option<InputFormat>) -> Self {
        DatasetConfig { path: Some(path.into()), format, ..Default::default() }
    }

    /// A Hub dataset.
    pub fn from_hub(repo: &str, config: Option<&str>, revision: Option<&str>) -> Self {
        DatasetConfig {
            hub: Some(repo.to_string()),
            config: config.map(String::from),
            revision: revision.map(String::from),
            ..Default::default()
        }
    }

    fn split_files(&self) -> [(&'static str, Option<&PathBuf>); 3] {
        [("train", self.train.as_ref()), ("validation", self.validation.as_ref()), ("test", self.test.as_ref())]
    }

    /// The format given, or inferred from the hub id or the first file's extension.
    pub fn resolved_format(&self) -> Option<InputFormat> {
        if self.format.is_some() {
            return self.format;
        }
        if self.hub.is_some() {
            return Some(InputFormat::Hub);
        }
        let first = self.path.as_ref().or(self.train.as_ref()).or(self.validation.as_ref());
        first.or(self.test.as_ref()).and_then(|p| infer_format(p))
    }

    /// Semantic problems as `(field path, message)`, empty when the dataset can be loaded.
    pub fn check(&self) -> Vec<(String, String)> {
        let mut problems = Vec::new();
        self.check_source(&mut problems);
        self.check_format(&mut problems);
        self.check_options(&mut problems);
        if let Some(split) = &self.split {
            check_split_size(&mut problems, "split.test", split.test);
            check_split_size(&mut problems, "split.validation", split.validation);
            problems.extend(split.fold_problems());
            if split.folds.is_some() && self.split_files().iter().any(|(_, p)| p.is_some()) {
                let message = "a corpus with its own train/validation/test files cannot be folded \
                               (its official test sentences would be trained on); give one file";
                problem(&mut problems, "split.folds", message);
            }
        }
        problems
    }

    fn check_source(&self, problems: &mut Problems) {
        let has_files = self.split_files().iter().any(|(_, p)| p.is_some());
        let sources = [self.path.is_some(), has_files, self.hub.is_some()];
        let message = match sources.iter().filter(|s| **s).count() {
            0 => Some("no data: give path, train/validation/test files or hub"),
            1 => None,
            _ => Some("give only one of path, train/validation/test files and hub"),
        };
        if let Some(message) = message {
            problem(problems, "path", message);
        }
        if self.train.is_none() && (self.validation.is_some() || self.test.is_some()) {
            problem(problems, "train", "validation and test files need a train file");
        }
        self.check_hub(problems);
    }

    fn check_hub(&self, problems: &mut Problems) {
        if let Some(repo) = &self.hub {
            let parts: Vec<_> = repo.split('/').collect();
            if parts.len() != 2 || parts.iter().any(|p| p.is_empty()) {
                problem(problems, "hub", format!("expected \"owner/name\", got {repo:?}"));
            }
        }
        let hub_only = [("config", self.config.is_some()), ("revision", self.revision.is_some())];
        for (field, set) in hub_only {
            if set && self.hub.is_none() {
                problem(problems, field, "only applies to hub datasets");
            }
        }
    }

    fn check_format(&self, problems: &mut Problems) {
        match (self.format, &self.hub) {
            (Some(InputFormat::Hub), None) => problem(problems, "format", "format \"hub\" needs hub = \"owner/name\""),
            (Some(f), Some(_)) if f != InputFormat::Hub => {
                problem(problems, "format", format!("hub datasets are read as format \"hub\", not {f:?}"))
            }
            (None, None) if self.resolved_format().is_none() => {
                let file = self.path.as_ref().or(self.train.as_ref());
                if let Some(file) = file {
                    let message = format!(
                        "cannot infer the format of {:?} from its extension; set format to one of \
                         conll, jsonl, parquet, brackets",
                        file.display().to_string()
                    );
                    problem(problems, "format", message);
                }
            }
            _ => {}
        }
    }

    fn check_options(&self, problems: &mut Problems) {
        let Some(format) = self.resolved_format() else {
            return;
        };
        for (field, set, formats) in self.format_options() {
            if set && !formats.contains(&format) {
                problem(problems, field, format!("does not apply to format \"{format}\""));
            }
        }
        if self.separator.as_deref() == Some("") {
            problem(problems, "separator", "must not be empty");
        }
        self.check_names(problems);
    }

    /// Each format-specific option: its field, whether it is set, the formats it applies to.
    fn format_options(&self) -> [(&'static str, bool, &'static [InputFormat]); 7] {
        use InputFormat::{Brackets, Conll, Hub, Jsonl, Parquet};
        const SPANS: &[InputFormat] = &[Jsonl, Parquet, Hub];
        [
            ("tag_column", self.tag_column.is_some(), &[Conll]),
            ("separator", self.separator.is_some(), &[Conll]),
            ("source_scheme", self.source_scheme.is_some(), &[Conll]),
            ("text_column", self.text_column.is_some(), SPANS),
            ("entities_column", self.entities_column.is_some(), SPANS),
            ("type_names", self.type_names.is_some(), SPANS),
            ("brackets", self.brackets.is_some(), &[Brackets]),
        ]
    }

    fn check_names(&self, problems: &mut Problems) {
        for (i, name) in self.type_names.iter().flatten().enumerate() {
            let earlier = self.type_names.iter().flatten().take(i);
            if name.trim().is_empty() {
                problem(problems, &format!("type_names[{i}]"), "must not be empty");
            } else if earlier.into_iter().any(|n| n == name) {
                problem(problems, &format!("type_names[{i}]"), format!("duplicate name {name:?}"));
            }
        }
        for (open, kind) in self.brackets.iter().flatten() {
            let field = format!("brackets.{open:?}");
            if closing_bracket(open).is_none() {
                let allowed: Vec<_> = BRACKET_PAIRS.iter().map(|(o, _)| *o).collect();
                let message = format!("unsupported opening bracket, use one of {}", allowed.join(" "));
                problem(problems, &field, message);
            } else if kind.trim().is_empty() {
                problem(problems, &field, "the entity type must not be empty");
            }
        }
    }

    /// Loads the corpus; relative paths are resolved against `base_dir`.
    pub fn load(&self, base_dir: &Path) -> Result<LoadedCorpus, DataError> {
        self.load_with_hub(base_dir, &HubEnv::from_env())
    }

    /// [`DatasetConfig::load`] with an explicit Hub environment.
    pub fn load_with_hub(&self, base_dir: &Path, env: &HubEnv) -> Result<LoadedCorpus, DataError> {
        if let Some((field, message)) = self.check().into_iter().next() {
            return Err(DataError::Config { field, message });
        }
        let format = self.resolved_format().expect("check() ensures a format");
        let mut skipped = Skipped::new(self.on_error);
        let parts = match (&self.hub, &self.path) {
            (Some(repo), _) => self.hub_parts(repo, env, &mut skipped)?,
            (None, Some(path)) => vec![self.read(format, &base_dir.join(path), &mut skipped)?],
            (None, None) => self.file_parts(format, base_dir, &mut skipped)?,
        };
        let corpus = assemble(parts);
        Ok(LoadedCorpus { corpus, skipped: skipped.messages })
    }

    fn file_parts(
        &self,
        format: InputFormat,
        base_dir: &Path,
        skipped: &mut Skipped,
    ) -> Result<Vec<Vec<Sentence>>, DataError> {
        let mut parts = Vec::new();
        for (_, file) in self.split_files() {
            parts.push(match file {
                Some(file) => self.read(format, &base_dir.join(file), skipped)?,
                None => Vec::new(),
            });
        }
        Ok(parts)
    }

    fn hub_parts(&self, repo: &str, env: &HubEnv, skipped: &mut Skipped) -> Result<Vec<Vec<Sentence>>, DataError> {
        let source = HubSource { repo: repo.to_string(), config: self.config.clone(), revision: self.revision.clone() };
        let files = hub::resolve(&source, env)?;
        let mut parts = Vec::new();
        for split in [&files.train, &files.validation, &files.test] {
            let mut sentences = Vec::new();
            for file in split {
                sentences.extend(self.read(InputFormat::Parquet, file, skipped)?);
            }
            parts.push(sentences);
        }
        Ok(parts)
    }

    fn read(&self, format: InputFormat, path: &Path, skipped: &mut Skipped) -> Result<Vec<Sentence>, DataError> {
        match format {
            InputFormat::Conll => load_conll(path, &self.conll_options(), skipped),
            InputFormat::Jsonl => load_jsonl(path, &self.span_options(), skipped),
            InputFormat::Parquet | InputFormat::Hub => load_parquet(path, &self.span_options(), skipped),
            InputFormat::Brackets => {
                load_brackets(path, &self.brackets.clone().unwrap_or_else(default_brackets), skipped)
            }
        }
    }

    fn conll_options(&self) -> ConllOptions {
        ConllOptions {
            tag_column: self.tag_column,
            separator: self.separator.clone(),
            scheme: self.source_scheme.unwrap_or(Scheme::Bio),
        }
    }

    fn span_options(&self) -> SpanOptions {
        SpanOptions {
            text_column: self.text_column.clone(),
            entities_column: self.entities_column.clone(),
            type_names: self.type_names.clone(),
        }
    }
}

fn check_split_size(problems: &mut Problems, field: &str, size: Option<SplitSize>) {
    let bad = match size {
        Some(SplitSize::Fraction(f)) => !(f > 0.0 && f < 1.0),
        Some(SplitSize::Count(c)) => c == 0,
        None => false,
    };
    if let (true, Some(size)) = (bad, size) {
        let message = format!("must be a fraction in (0, 1) or a count of at least 1, got {size}");
        problem(problems, field, message);
    }
}

/// One part: a corpus without splits of its own. Train, validation and test parts: their
/// sentences laid end to end, with predefined splits when there is a validation or test part.
fn assemble(mut parts: Vec<Vec<Sentence>>) -> Corpus {
    if parts.len() == 1 {
        return Corpus { sentences: parts.remove(0), predefined: None };
    }
    let sizes: Vec<usize> = parts.iter().map(Vec::len).collect();
    let predefined = (sizes[1] + sizes[2] > 0).then(|| PredefinedSplits::consecutive(sizes[0], sizes[1], sizes[2]));
    Corpus { sentences: parts.into_iter().flatten().collect(), predefined }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(toml_text: &str) -> DatasetConfig {
        toml::from_str(toml_text).unwrap()
    }

    fn fields(config: &DatasetConfig) -> Vec<String> {
        config.check().into_iter().map(|(field, _)| field).collect()
    }

    #[test]
    fn format_is_inferred_from_extension() {
        assert_eq!(infer_format(Path::new("a/train.tsv")), Some(InputFormat::Conll));
        assert_eq!(infer_format(Path::new("x.JSONL")), Some(InputFormat::Jsonl));
        assert_eq!(infer_format(Path::new("x.parquet")), Some(InputFormat::Parquet));
        assert_eq!(infer_format(Path::new("x.txt")), None);
        let config = parse("path = \"x.txt\"");
        assert_eq!(fields(&config), ["format"]);
    }

    #[test]
    fn unknown_fields_are_rejected() {
        let error = toml::from_str::<DatasetConfig>("paht = \"x\"").unwrap_err().to_string();
        assert!(error.contains("unknown field `paht`"), "{error}");
    }

    #[test]
    fn check_reports_semantic_problems_by_field() {
        let config = parse(
            r#"
            path = "x.jsonl"
            hub = "a/b"
            tag_column = 2
            split = { test = 1.5, validation = 0, seed = 1 }
            "#,
        );
        let found = fields(&config);
        for field in ["path", "tag_column", "split.test", "split.validation"] {
            assert!(found.contains(&field.to_string()), "{field} missing from {found:?}");
        }
        let config = parse("test = \"t.tsv\"\nconfig = \"c\"\ntype_names = [\"A\", \"A\"]");
        assert_eq!(fields(&config), ["train", "config", "type_names", "type_names[1]"]);
    }

    #[test]
    fn a_valid_config_has_no_problems_and_round_trips() {
        let config = parse(
            r#"
            hub = "community-datasets/swedish_medical_ner"
            config = "1177"
            split = { test = 0.2, validation = 0.1, seed = 67 }
            on_error = "skip"
            "#,
        );
        assert!(config.check().is_empty(), "{:?}", config.check());
        assert_eq!(config.resolved_format(), Some(InputFormat::Hub));
        let again: DatasetConfig = toml::from_str(&toml::to_string(&config).unwrap()).unwrap();
        assert_eq!(again, config);
    }

    #[test]
    fn brackets_must_be_known_pairs() {
        let config = parse("path = \"x.txt\"\nformat = \"brackets\"\nbrackets = { \"|\" = \"A\", \"<\" = \"B\" }");
        assert_eq!(fields(&config), ["brackets.\"|\""]);
    }

    #[test]
    fn split_files_become_predefined_splits() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.tsv"), "x\tO\n\ny\tB-D\n").unwrap();
        std::fs::write(dir.path().join("b.tsv"), "z\tO\n").unwrap();
        let config = parse("train = \"a.tsv\"\ntest = \"b.tsv\"");
        let loaded = config.load(dir.path()).unwrap();
        let predefined = loaded.corpus.predefined.unwrap();
        assert_eq!(predefined.train, [0, 1]);
        assert!(predefined.validation.is_empty());
        assert_eq!(predefined.test, [2]);
    }

    #[test]
    fn loading_an_invalid_config_fails_with_the_field() {
        let error = parse("path = \"x.txt\"").load(Path::new(".")).unwrap_err().to_string();
        assert!(error.starts_with("dataset: format: cannot infer"), "{error}");
    }
}
