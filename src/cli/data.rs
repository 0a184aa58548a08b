//! `nergrid data inspect | split | labels`: look at a dataset, print its split, print its labels.
//!
//! DATASET is a file (format from its extension or `--input-format`) or a Hub dataset written
//! `hf://datasets/OWNER/NAME[/CONFIG][@REVISION]`. [`resolve_dataset`] is the one place that
//! turns the argument into a [`DatasetConfig`]. Exit codes: 0 done, 2 bad arguments or input.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;
use serde::Serialize;
use serde_json::json;

use crate::data::audit::{boundary_cues, duplicate_sentences, surface_overlap};
use crate::data::stats::{fertility, load_tokenizer, split_stats, words_per_sentence, Fertility};
use crate::data::{
    audit, fold_manifests, split_corpus, Corpus, DataError, DatasetConfig, InputFormat, LoadedCorpus, OnError, Scheme,
    SplitConfig, SplitManifest, SplitSize,
};

#[derive(clap::Args)]
pub struct DataArgs {
    #[command(subcommand)]
    pub command: DataCommand,
}

#[derive(clap::Subcommand)]
pub enum DataCommand {
    /// Sizes per split, entities per type, words per sentence, sub-word fertility and a
    /// leakage audit.
    Inspect(InspectArgs),
    /// Print the train/validation/test sentence indices (0-based, in split order) as JSON.
    Split(SplitArgs),
    /// Print each sentence's words and labels in a tagging scheme as JSON Lines.
    Labels(LabelsArgs),
}

/// The dataset to read.
#[derive(clap::Args)]
pub struct DatasetArgs {
    /// A file (.conll/.tsv/.jsonl/.parquet, or any with --input-format) or
    /// hf://datasets/OWNER/NAME[/CONFIG][@REVISION].
    pub dataset: String,
    /// conll, jsonl, parquet or brackets (default: from the file extension).
    #[arg(long, value_name = "FORMAT")]
    pub input_format: Option<InputFormat>,
    /// fail or skip on malformed records.
    #[arg(long, value_name = "POLICY", default_value = "fail")]
    pub on_error: OnError,
}

/// A split rule; without sizes the dataset's own splits are used.
#[derive(clap::Args)]
pub struct SplitRuleArgs {
    /// Test split on the whole set: a fraction (0.2) or a count (50).
    #[arg(long, value_name = "F|N")]
    pub test_size: Option<SplitSize>,
    /// Validation split of the remaining train part: a fraction or a count.
    #[arg(long, value_name = "F|N")]
    pub validation_size: Option<SplitSize>,
    /// Seed of numpy's default_rng, as in datasets' train_test_split (needed with a size).
    #[arg(long)]
    pub seed: Option<u64>,
}

#[derive(clap::Args)]
pub struct InspectArgs {
    #[command(flatten)]
    pub dataset: DatasetArgs,
    #[command(flatten)]
    pub split: SplitRuleArgs,
    /// A tokenizer.json to measure sub-words per word.
    #[arg(long, value_name = "PATH")]
    pub tokenizer: Option<PathBuf>,
    #[arg(long, value_enum, default_value = "text")]
    pub format: InspectFormat,
}

#[derive(clap::Args)]
pub struct SplitArgs {
    #[command(flatten)]
    pub dataset: DatasetArgs,
    #[command(flatten)]
    pub split: SplitRuleArgs,
    /// k-fold cross-validation (scikit-learn's shuffled KFold with --seed): prints every fold's
    /// train, validation (with --validation-size) and test indices; not with --test-size.
    #[arg(long, value_name = "K")]
    pub folds: Option<usize>,
    #[arg(long, value_enum, default_value = "json")]
    pub format: SplitFormat,
}

#[derive(clap::Args)]
pub struct LabelsArgs {
    #[command(flatten)]
    pub dataset: DatasetArgs,
    /// IO, BIO (IOB2), IOB1, BIOES (IOBES, BILOU).
    #[arg(long, default_value = "BIO")]
    pub scheme: Scheme,
    #[arg(long, value_enum, default_value = "jsonl")]
    pub format: LabelsFormat,
}

#[derive(Clone, Copy, clap::ValueEnum)]
pub enum InspectFormat {
    Text,
    Json,
}

#[derive(Clone, Copy, clap::ValueEnum)]
pub enum SplitFormat {
    Json,
}

#[derive(Clone, Copy, clap::ValueEnum)]
pub enum LabelsFormat {
    Jsonl,
}

/// Runs a `data` subcommand.
pub fn run(args: DataArgs) -> anyhow::Result<i32> {
    let outcome = match args.command {
        DataCommand::Inspect(args) => inspect(&args),
        DataCommand::Split(args) => split(&args),
        DataCommand::Labels(args) => labels(&args),
    };
    match outcome {
        Ok(()) => Ok(0),
        Err(Failure::Input(message)) => {
            eprintln!("error: {message}");
            Ok(2)
        }
        Err(Failure::Other(e)) => Err(e),
    }
}

/// Why a command stopped: bad arguments or input (exit 2), or anything else (exit 1).
enum Failure {
    Input(String),
    Other(anyhow::Error),
}

impl From<DataError> for Failure {
    fn from(e: DataError) -> Self {
        Failure::Input(format!("{:#}", anyhow::Error::from(e)))
    }
}

impl From<anyhow::Error> for Failure {
    fn from(e: anyhow::Error) -> Self {
        Failure::Other(e)
    }
}

impl From<std::io::Error> for Failure {
    fn from(e: std::io::Error) -> Self {
        Failure::Other(anyhow::Error::from(e).context("cannot write to stdout"))
    }
}

/// A dataset argument turned into a loadable description.
pub struct ResolvedDataset {
    pub name: String,
    pub config: DatasetConfig,
    pub base_dir: PathBuf,
}

/// Turns the DATASET argument into a dataset description (a file or a Hub id).
pub fn resolve_dataset(args: &DatasetArgs) -> Result<ResolvedDataset, String> {
    let mut config = match args.dataset.strip_prefix("hf://datasets/") {
        Some(spec) => hub_config(spec)?,
        None => DatasetConfig::from_path(&args.dataset, args.input_format),
    };
    config.on_error = args.on_error;
    if let Some((field, message)) = config.check().into_iter().next() {
        let hint = if field == "format" { " (use --input-format)" } else { "" };
        return Err(format!("{}: {field}: {message}{hint}", args.dataset));
    }
    Ok(ResolvedDataset { name: args.dataset.clone(), config, base_dir: PathBuf::from(".") })
}

/// `OWNER/NAME[/CONFIG][@REVISION]`.
fn hub_config(spec: &str) -> Result<DatasetConfig, String> {
    let (path, revision) = match spec.rsplit_once('@') {
        Some((path, revision)) => (path, Some(revision)),
        None => (spec, None),
    };
    let parts: Vec<&str> = path.split('/').collect();
    match parts.as_slice() {
        [owner, name] => Ok(DatasetConfig::from_hub(&format!("{owner}/{name}"), None, revision)),
        [owner, name, config] => Ok(DatasetConfig::from_hub(&format!("{owner}/{name}"), Some(config), revision)),
        _ => Err(format!("hf://datasets/{spec}: expected hf://datasets/OWNER/NAME[/CONFIG][@REVISION]")),
    }
}

fn load(args: &DatasetArgs) -> Result<(ResolvedDataset, LoadedCorpus), Failure> {
    let resolved = resolve_dataset(args).map_err(Failure::Input)?;
    let loaded = resolved.config.load(&resolved.base_dir)?;
    if let Some(first) = loaded.skipped.first() {
        eprintln!("warning: skipped {} malformed records; the first: {first}", loaded.skipped.len());
    }
    Ok((resolved, loaded))
}

/// The split rule of the arguments, else the dataset's own, else none.
fn split_rule(args: &SplitRuleArgs, config: &DatasetConfig) -> Result<Option<SplitConfig>, Failure> {
    if args.test_size.is_none() && args.validation_size.is_none() {
        if args.seed.is_some() {
            return Err(Failure::Input("--seed needs --test-size or --validation-size".into()));
        }
        return Ok(config.split.clone());
    }
    let seed =
        args.seed.ok_or_else(|| Failure::Input("--seed is required with --test-size/--validation-size".into()))?;
    Ok(Some(SplitConfig { test: args.test_size, validation: args.validation_size, seed, folds: None }))
}

/// The manifest from a rule or the corpus' own splits; `None` when neither exists.
fn manifest(corpus: &Corpus, rule: Option<&SplitConfig>) -> Result<Option<SplitManifest>, Failure> {
    match rule {
        Some(rule) => Ok(Some(split_corpus(corpus, rule)?)),
        None => Ok(corpus.predefined.as_ref().map(SplitManifest::from_predefined)),
    }
}

fn split(args: &SplitArgs) -> Result<(), Failure> {
    if let Some(folds) = args.folds {
        return split_folds(args, folds);
    }
    let (resolved, loaded) = load(&args.dataset)?;
    let rule = split_rule(&args.split, &resolved.config)?;
    let manifest = manifest(&loaded.corpus, rule.as_ref())?.ok_or_else(|| {
        Failure::Input(format!(
            "{}: the dataset has no splits of its own: give --test-size and/or --validation-size \
             with --seed",
            resolved.name
        ))
    })?;
    let SplitFormat::Json = args.format;
    let output = SplitOutput { train: &manifest.train, validation: &manifest.validation, test: &manifest.test };
    println!("{}", serde_json::to_string(&output).context("cannot write JSON")?);
    Ok(())
}

/// `--folds K`: every fold as `{"folds": [{"train", "validation", "test"}, ...]}`.
fn split_folds(args: &SplitArgs, folds: usize) -> Result<(), Failure> {
    if args.split.test_size.is_some() {
        return Err(Failure::Input("--test-size cannot be combined with --folds (each fold is a test part)".into()));
    }
    let seed = args.split.seed.ok_or_else(|| Failure::Input("--seed is required with --folds".into()))?;
    let (resolved, loaded) = load(&args.dataset)?;
    let rule = SplitConfig { test: None, validation: args.split.validation_size, seed, folds: Some(folds) };
    let manifests = fold_manifests(&loaded.corpus, &rule)
        .map_err(|e| Failure::Input(format!("{}: {:#}", resolved.name, anyhow::Error::from(e))))?;
    let SplitFormat::Json = args.format;
    let folds: Vec<SplitOutput<'_>> =
        manifests.iter().map(|m| SplitOutput { train: &m.train, validation: &m.validation, test: &m.test }).collect();
    println!("{}", serde_json::to_string(&json!({ "folds": folds })).context("cannot write JSON")?);
    Ok(())
}

/// The split as printed, in the order train, validation, test.
#[derive(Serialize)]
struct SplitOutput<'a> {
    train: &'a [usize],
    validation: &'a [usize],
    test: &'a [usize],
}

#[derive(Serialize)]
struct LabelLine<'a> {
    index: usize,
    words: &'a [String],
    labels: &'a [String],
}

fn labels(args: &LabelsArgs) -> Result<(), Failure> {
    let (_, loaded) = load(&args.dataset)?;
    let LabelsFormat::Jsonl = args.format;
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    for (index, sentence) in loaded.corpus.tagged(args.scheme).iter().enumerate() {
        let line = LabelLine { index, words: &sentence.words, labels: &sentence.tags };
        serde_json::to_writer(&mut out, &line).context("cannot write JSON")?;
        writeln!(out)?;
    }
    out.flush()?;
    Ok(())
}

/// Everything `inspect` reports.
#[derive(Serialize)]
struct Inspection {
    dataset: String,
    format: Option<InputFormat>,
    sentences: usize,
    entities: usize,
    skipped: Vec<String>,
    split_rule: Option<SplitConfig>,
    splits: Option<serde_json::Value>,
    entities_per_type: std::collections::BTreeMap<String, usize>,
    words_per_sentence: Option<crate::data::stats::LengthStats>,
    fertility: Option<Fertility>,
    audit: serde_json::Value,
}

fn inspect(args: &InspectArgs) -> Result<(), Failure> {
    let (resolved, loaded) = load(&args.dataset)?;
    let corpus = &loaded.corpus;
    let rule = split_rule(&args.split, &resolved.config)?;
    let manifest = manifest(corpus, rule.as_ref())?;
    let fertility = match &args.tokenizer {
        Some(path) => Some(fertility(corpus, &load_tokenizer(path)?, path)?),
        None => None,
    };
    let inspection = Inspection {
        dataset: resolved.name.clone(),
        format: resolved.config.resolved_format(),
        sentences: corpus.sentences.len(),
        entities: corpus.entity_total(),
        skipped: loaded.skipped.clone(),
        split_rule: rule,
        splits: manifest.as_ref().map(|m| splits_json(corpus, m)),
        entities_per_type: corpus.entity_counts(),
        words_per_sentence: words_per_sentence(corpus),
        fertility,
        audit: audit_json(corpus, manifest.as_ref()),
    };
    match args.format {
        InspectFormat::Json => println!("{}", serde_json::to_string_pretty(&inspection).context("cannot write JSON")?),
        InspectFormat::Text => print!("{}", render_text(&inspection)),
    }
    Ok(())
}

fn splits_json(corpus: &Corpus, manifest: &SplitManifest) -> serde_json::Value {
    let mut splits = serde_json::Map::new();
    for (name, indices) in manifest.named() {
        splits.insert(name.to_string(), json!(split_stats(corpus, indices)));
    }
    splits.insert("sha256".into(), json!(manifest.sha256));
    serde_json::Value::Object(splits)
}

fn audit_json(corpus: &Corpus, manifest: Option<&SplitManifest>) -> serde_json::Value {
    let warnings = match manifest {
        Some(m) => audit(corpus, m),
        None => {
            let no_split = SplitManifest::new((0..corpus.sentences.len()).collect(), vec![], vec![]);
            audit(corpus, &no_split)
        }
    };
    json!({
        "warnings": warnings,
        "boundary_cues": boundary_cues(corpus),
        "duplicate_sentences": manifest.map(|m| duplicate_sentences(corpus, m)),
        "surface_overlap": manifest.map(|m| surface_overlap(corpus, m)),
    })
}

fn render_text(inspection: &Inspection) -> String {
    let mut text = format!(
        "dataset: {} (format {})\nsentences: {}, entities: {}, skipped records: {}\n",
        inspection.dataset,
        inspection.format.map_or("?".to_string(), |f| f.to_string()),
        inspection.sentences,
        inspection.entities,
        inspection.skipped.len()
    );
    text.push_str(&render_splits(inspection));
    text.push_str("entities per type:\n");
    for (kind, count) in &inspection.entities_per_type {
        text.push_str(&format!("  {kind:<32} {count:>7}\n"));
    }
    if let Some(l) = &inspection.words_per_sentence {
        text.push_str(&format!(
            "words per sentence: min {}, median {}, mean {:.1}, p95 {}, max {}\n",
            l.min, l.median, l.mean, l.p95, l.max
        ));
    }
    if let Some(f) = &inspection.fertility {
        text.push_str(&format!(
            "sub-words per word: {:.3} ({:.1}% of words split; longest sentence {} sub-words)\n",
            f.mean,
            100.0 * f.split_share,
            f.max_sentence_subwords
        ));
    }
    text.push_str(&render_audit(&inspection.audit));
    text
}

fn render_splits(inspection: &Inspection) -> String {
    let Some(splits) = &inspection.splits else {
        return "splits: none (the dataset has no splits of its own; give --test-size and/or \
                --validation-size with --seed)\n"
            .into();
    };
    let mut text = String::from("  split       sentences     words  entities\n");
    for name in ["train", "validation", "test"] {
        let count = |field: &str| splits[name][field].as_u64().unwrap_or_default();
        text.push_str(&format!(
            "  {name:<10} {:>10} {:>9} {:>9}\n",
            count("sentences"),
            count("words"),
            count("entities")
        ));
    }
    text
}

fn render_audit(audit: &serde_json::Value) -> String {
    let mut text = String::new();
    if let Some(overlap) = audit["surface_overlap"].as_object() {
        text.push_str(&format!(
            "test entities also in train (type and words): {} of {}\n",
            overlap["shared"], overlap["test_entities"]
        ));
    }
    let warnings = audit["warnings"].as_array().cloned().unwrap_or_default();
    if warnings.is_empty() {
        text.push_str("leakage audit: no warnings\n");
        return text;
    }
    text.push_str(&format!("leakage audit: {} warnings\n", warnings.len()));
    for warning in warnings {
        let kind = warning["kind"].as_str().unwrap_or_default();
        let message = warning["message"].as_str().unwrap_or_default();
        text.push_str(&format!("  [{kind}] {message}\n"));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hub_arguments_name_owner_name_config_and_revision() {
        let config = hub_config("community-datasets/swedish_medical_ner/1177@main").unwrap();
        assert_eq!(config.hub.as_deref(), Some("community-datasets/swedish_medical_ner"));
        assert_eq!(config.config.as_deref(), Some("1177"));
        assert_eq!(config.revision.as_deref(), Some("main"));
        let config = hub_config("a/b").unwrap();
        assert_eq!((config.config, config.revision), (None, None));
        assert!(hub_config("a").is_err());
        assert!(hub_config("a/b/c/d").is_err());
    }
}
