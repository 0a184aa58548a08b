//! Turns a run's dataset alias into train/validation/test sentences in the run's scheme.

use std::path::{Path, PathBuf};

use anyhow::{anyhow, Context};

use crate::data::{split_corpus, Corpus, DatasetConfig, Scheme, SplitConfig, SplitManifest, TaggedSentence};
use crate::spec::{expand_env, DatasetEntry};

/// The sentences of one run, split and tagged.
pub struct RunData {
    pub corpus: Corpus,
    pub manifest: SplitManifest,
    pub labels: Vec<String>,
    pub train: Vec<TaggedSentence>,
    pub validation: Vec<TaggedSentence>,
    pub test: Vec<TaggedSentence>,
    /// Records skipped under `on_error = "skip"`.
    pub skipped: Vec<String>,
}

/// The `[datasets.<alias>]` table as the data module's config, with `${VAR}` expanded in paths.
pub fn dataset_config(alias: &str, entry: &DatasetEntry) -> anyhow::Result<DatasetConfig> {
    let mut config: DatasetConfig =
        toml::Value::Table(entry.table.clone()).try_into().map_err(|e| anyhow!("datasets.{alias}: {e}"))?;
    for path in [&mut config.path, &mut config.train, &mut config.validation, &mut config.test].into_iter().flatten() {
        *path = expand_path(path).with_context(|| format!("datasets.{alias}"))?;
    }
    Ok(config)
}

fn expand_path(path: &Path) -> anyhow::Result<PathBuf> {
    Ok(PathBuf::from(expand_env(&path.to_string_lossy()).map_err(|e| anyhow!(e))?))
}

/// Loads, splits and tags a dataset for a run.
pub fn load_run_data(alias: &str, entry: &DatasetEntry, scheme: Scheme) -> anyhow::Result<RunData> {
    prepare(alias, &dataset_config(alias, entry)?, scheme)
}

/// Loads, splits and tags the dataset `config` (paths already expanded) named `alias`.
pub fn prepare(alias: &str, config: &DatasetConfig, scheme: Scheme) -> anyhow::Result<RunData> {
    let loaded = config.load(Path::new(".")).with_context(|| format!("loading dataset {alias}"))?;
    let rule = config.split.clone().unwrap_or(SplitConfig { test: None, validation: None, seed: 0 });
    let manifest = split_corpus(&loaded.corpus, &rule).with_context(|| format!("splitting dataset {alias}"))?;
    let tagged = loaded.corpus.tagged(scheme);
    let pick = |indices: &[usize]| indices.iter().map(|&i| tagged[i].clone()).collect::<Vec<_>>();
    let labels = scheme.label_set(&loaded.corpus.entity_types());
    Ok(RunData {
        train: pick(&manifest.train),
        validation: pick(&manifest.validation),
        test: pick(&manifest.test),
        labels,
        manifest,
        corpus: loaded.corpus,
        skipped: loaded.skipped,
    })
}
