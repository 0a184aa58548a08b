//! Turns a run's dataset alias into train/validation/test sentences in the run's scheme.

use std::path::{Path, PathBuf};

use anyhow::{anyhow, Context};

use crate::data::{
    split_corpus, split_fold, subsample, Corpus, DatasetConfig, Scheme, SplitConfig, SplitManifest, TaggedSentence,
};
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
    /// The share of the training split kept, when below 1.
    pub train_fraction: Option<f64>,
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

/// Which part of a dataset a run trains and tests on: its k-fold fold, if any, and the share
/// of the training split it keeps (learning curves).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RunSplit {
    /// The run's `fold` parameter (datasets with `split.folds`).
    pub fold: Option<usize>,
    /// `train_fraction`: a seeded, nested subsample of the training split; 1 keeps it all.
    pub train_fraction: f64,
    /// The run's seed, which draws the subsample.
    pub seed: u64,
}

impl Default for RunSplit {
    fn default() -> Self {
        RunSplit { fold: None, train_fraction: 1.0, seed: 0 }
    }
}

/// Loads, splits and tags a dataset for a run.
pub fn load_run_data(alias: &str, entry: &DatasetEntry, scheme: Scheme, part: RunSplit) -> anyhow::Result<RunData> {
    prepare(alias, &dataset_config(alias, entry)?, scheme, part)
}

/// Loads, splits and tags the dataset `config` (paths already expanded) named `alias`.
pub fn prepare(alias: &str, config: &DatasetConfig, scheme: Scheme, part: RunSplit) -> anyhow::Result<RunData> {
    let loaded = config.load(Path::new(".")).with_context(|| format!("loading dataset {alias}"))?;
    let rule = config.split.clone().unwrap_or(SplitConfig { test: None, validation: None, seed: 0, folds: None });
    let manifest = match (rule.folds, part.fold) {
        (Some(_), Some(fold)) => split_fold(&loaded.corpus, &rule, fold),
        (Some(_), None) => Err(anyhow!("datasets.{alias}: split.folds is set but the run has no fold parameter"))?,
        (None, _) => split_corpus(&loaded.corpus, &rule),
    };
    let mut manifest = manifest.with_context(|| format!("splitting dataset {alias}"))?;
    if part.train_fraction < 1.0 {
        let train = subsample(&manifest.train, part.train_fraction, part.seed);
        manifest = SplitManifest::new(train, manifest.validation, manifest.test);
    }
    let tagged = loaded.corpus.tagged(scheme);
    let pick = |indices: &[usize]| indices.iter().map(|&i| tagged[i].clone()).collect::<Vec<_>>();
    let labels = scheme.label_set(&loaded.corpus.entity_types());
    Ok(RunData {
        train: pick(&manifest.train),
        validation: pick(&manifest.validation),
        test: pick(&manifest.test),
        labels,
        manifest,
        train_fraction: (part.train_fraction < 1.0).then_some(part.train_fraction),
        corpus: loaded.corpus,
        skipped: loaded.skipped,
    })
}
