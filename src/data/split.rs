//! Seeded train/validation/test splits identical to 🤗 datasets 5.2.0.
//!
//! `train_test_split` reproduces `Dataset.train_test_split(test_size, seed=seed)` (shuffle on,
//! no stratification): `n_test = ceil(test_size * n)` in double precision for a fraction or the
//! count itself, `perm = default_rng(seed).permutation(n)`, `test = perm[:n_test]`,
//! `train = perm[n_test:]`, both in permutation order. `split_corpus` does the two-stage split
//! of the study (test on the full set, then validation on the train part) and writes a
//! manifest with a sha256 per split so two runs can be shown to share their splits.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::corpus::{Corpus, PredefinedSplits};
use super::error::DataError;
use super::kfold::kfold;
use super::numpy_rng::NumpyRng;

/// The size of a split: a fraction of the set in (0, 1) or a number of sentences.
///
/// In TOML and JSON an integer is a count and a float a fraction (`0.2` vs `50`), as in Python.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum SplitSize {
    Count(usize),
    Fraction(f64),
}

impl std::fmt::Display for SplitSize {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SplitSize::Count(count) => write!(f, "{count}"),
            SplitSize::Fraction(fraction) => write!(f, "{fraction:?}"),
        }
    }
}

impl std::str::FromStr for SplitSize {
    type Err = String;

    /// `"50"` is a count, `"0.2"` (anything with `.`, `e` or `inf`/`nan`) a fraction.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        if let Ok(count) = text.parse::<usize>() {
            return Ok(SplitSize::Count(count));
        }
        text.parse::<f64>().map(SplitSize::Fraction).map_err(|_| format!("{text:?} is neither a count nor a fraction"))
    }
}

/// `Dataset.train_test_split(test_size=test, seed=seed)` on `n` rows: `(train, test)` indices.
pub fn train_test_split(n: usize, test: SplitSize, seed: u64) -> Result<(Vec<usize>, Vec<usize>), DataError> {
    if n == 0 {
        return Ok((Vec::new(), Vec::new()));
    }
    let n_test = test_count(n, test)?;
    let mut permutation = NumpyRng::new(u128::from(seed)).permutation(n);
    let train = permutation.split_off(n_test);
    Ok((train, permutation))
}

/// The number of test rows datasets would take, or its `ValueError` as a `DataError::Split`.
fn test_count(n: usize, test: SplitSize) -> Result<usize, DataError> {
    let n_test = match test {
        SplitSize::Count(count) if count == 0 || count >= n => {
            return Err(DataError::Split(format!(
                "test_size={count} should be either positive and smaller than the number of \
                 samples {n} or a float in the (0, 1) range"
            )));
        }
        SplitSize::Fraction(f) if f.is_nan() || f <= 0.0 || f >= 1.0 => {
            return Err(DataError::Split(format!(
                "test_size={f:?} should be a float in the (0, 1) range or a positive integer"
            )));
        }
        SplitSize::Count(count) => count,
        SplitSize::Fraction(f) => (f * n as f64).ceil() as usize,
    };
    if n_test >= n {
        return Err(DataError::Split(format!(
            "with n_samples={n}, test_size={test} and train_size=None, the resulting train set \
             will be empty"
        )));
    }
    Ok(n_test)
}

/// The split rule of a dataset: `split = { test = 0.2, validation = 0.1, seed = 67 }`, or
/// k-fold cross-validation: `split = { folds = 5, validation = 0.1, seed = 67 }`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SplitConfig {
    pub test: Option<SplitSize>,
    pub validation: Option<SplitSize>,
    pub seed: u64,
    /// k of a k-fold split: each run tests on one fold (the plan's `fold` axis).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub folds: Option<usize>,
}

impl SplitConfig {
    /// Whether the rule splits anything (otherwise predefined splits are used).
    pub fn is_rule(&self) -> bool {
        self.test.is_some() || self.validation.is_some() || self.folds.is_some()
    }

    /// Problems of the rule as `(field, message)`, beside the size checks.
    pub fn fold_problems(&self) -> Vec<(String, String)> {
        let Some(k) = self.folds else { return Vec::new() };
        let mut problems = Vec::new();
        if k < 2 {
            problems.push(("split.folds".into(), format!("must be at least 2, got {k}")));
        }
        if self.test.is_some() {
            let message = "cannot be combined with split.folds (each fold's test part is the fold itself)";
            problems.push(("split.test".into(), message.into()));
        }
        if u32::try_from(self.seed).is_err() {
            let message =
                format!("must be between 0 and 4294967295 with folds (a 32-bit MT19937 seed), got {}", self.seed);
            problems.push(("split.seed".into(), message));
        }
        problems
    }
}

/// sha256 (hex) of each split's index list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SplitHashes {
    pub train: String,
    pub validation: String,
    pub test: String,
}

/// The sentence indices of each split, in the order the split produced them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SplitManifest {
    pub train: Vec<usize>,
    pub validation: Vec<usize>,
    pub test: Vec<usize>,
    pub sha256: SplitHashes,
}

impl SplitManifest {
    /// A manifest of three index lists with their hashes.
    pub fn new(train: Vec<usize>, validation: Vec<usize>, test: Vec<usize>) -> Self {
        let sha256 =
            SplitHashes { train: index_hash(&train), validation: index_hash(&validation), test: index_hash(&test) };
        SplitManifest { train, validation, test, sha256 }
    }

    /// The manifest of a corpus' own splits.
    pub fn from_predefined(splits: &PredefinedSplits) -> Self {
        let PredefinedSplits { train, validation, test } = splits.clone();
        SplitManifest::new(train, validation, test)
    }

    /// The splits by name, in the order train, validation, test.
    pub fn named(&self) -> [(&'static str, &[usize]); 3] {
        [("train", &self.train), ("validation", &self.validation), ("test", &self.test)]
    }
}

/// sha256 of the compact JSON array `[3,0,2]`, the same as Python's
/// `hashlib.sha256(json.dumps(indices, separators=(",", ":")).encode()).hexdigest()`.
pub fn index_hash(indices: &[usize]) -> String {
    let json = serde_json::to_string(indices).expect("a list of integers serialises");
    format!("{:x}", Sha256::digest(json.as_bytes()))
}

/// Splits a corpus into train, validation and test sentence indices.
///
/// * No rule (`test` and `validation` unset): the corpus' own splits; an error without them.
/// * `test` set: test split on the whole corpus (all of its sentences, predefined or not),
///   then, with `validation` set, a validation split of the train part with the same seed.
/// * Only `validation` set: validation is taken from the predefined train and validation
///   sentences (or from the whole corpus), the test split stays predefined (or empty).
pub fn split_corpus(corpus: &Corpus, cfg: &SplitConfig) -> Result<SplitManifest, DataError> {
    if cfg.folds.is_some() {
        return Err(DataError::Split("split.folds: a k-fold rule gives one split per fold: name the fold".into()));
    }
    let all: Vec<usize> = (0..corpus.sentences.len()).collect();
    if !cfg.is_rule() {
        return corpus.predefined.as_ref().map(SplitManifest::from_predefined).ok_or_else(|| {
            DataError::Split("the corpus has no splits of its own: give a test and/or validation size".into())
        });
    }
    let (pool, test) = match (cfg.test, &corpus.predefined) {
        (Some(size), _) => split_pool(&all, size, cfg.seed)?,
        (None, Some(p)) => ([p.train.as_slice(), &p.validation].concat(), p.test.clone()),
        (None, None) => (all, Vec::new()),
    };
    let (train, validation) = match cfg.validation {
        Some(size) => split_pool(&pool, size, cfg.seed)?,
        None => (pool, Vec::new()),
    };
    Ok(SplitManifest::new(train, validation, test))
}

/// Fold `fold` of a k-fold rule: its test part is scikit-learn's `KFold` fold (sorted); its
/// train part is the other folds (sorted), or, with `validation`, `train_test_split` of them
/// with the rule's seed (both in that function's order), as 🤗 datasets splits the subset.
///
/// A corpus with splits of its own is refused: folding its official test set into training
/// would make the scores incomparable with everything published on it.
pub fn split_fold(corpus: &Corpus, cfg: &SplitConfig, fold: usize) -> Result<SplitManifest, DataError> {
    let folds = fold_manifests(corpus, cfg)?;
    let k = folds.len();
    folds
        .into_iter()
        .nth(fold)
        .ok_or_else(|| DataError::Split(format!("fold {fold} does not exist (folds 0 to {})", k - 1)))
}

/// Every fold of a k-fold rule (see [`split_fold`]).
pub fn fold_manifests(corpus: &Corpus, cfg: &SplitConfig) -> Result<Vec<SplitManifest>, DataError> {
    let Some(k) = cfg.folds else {
        return Err(DataError::Split("the split rule has no folds".into()));
    };
    if let Some((field, message)) = cfg.fold_problems().into_iter().next() {
        return Err(DataError::Split(format!("{field}: {message}")));
    }
    if corpus.predefined.is_some() {
        return Err(DataError::Split(
            "split.folds: the corpus has splits of its own (train/validation/test); k-fold takes one \
             corpus without them, so that no official test sentence is trained on"
                .into(),
        ));
    }
    let mut manifests = Vec::with_capacity(k);
    for fold in kfold(corpus.sentences.len(), k, cfg.seed)? {
        let (train, validation) = match cfg.validation {
            Some(size) => split_pool(&fold.train, size, cfg.seed)?,
            None => (fold.train, Vec::new()),
        };
        manifests.push(SplitManifest::new(train, validation, fold.test));
    }
    Ok(manifests)
}

/// A seeded subsample of a training split for learning curves: the sentences at the first
/// `ceil(fraction · n)` positions of numpy's `default_rng(seed).permutation(n)`, kept in their
/// order in `train`. For one seed the samples are nested: a larger fraction takes a longer
/// prefix of the same permutation. `fraction` 1 (or more) returns `train` unchanged.
pub fn subsample(train: &[usize], fraction: f64, seed: u64) -> Vec<usize> {
    let n = train.len();
    if fraction >= 1.0 || n == 0 {
        return train.to_vec();
    }
    let keep = ((fraction * n as f64).ceil() as usize).clamp(1, n);
    let mut chosen = vec![false; n];
    for position in NumpyRng::new(u128::from(seed)).permutation(n).into_iter().take(keep) {
        chosen[position] = true;
    }
    train.iter().zip(chosen).filter(|(_, c)| *c).map(|(&i, _)| i).collect()
}

/// `train_test_split` over a list of source indices, mapped back to those indices.
fn split_pool(pool: &[usize], size: SplitSize, seed: u64) -> Result<(Vec<usize>, Vec<usize>), DataError> {
    let (train, test) = train_test_split(pool.len(), size, seed)?;
    let map = |positions: Vec<usize>| positions.into_iter().map(|i| pool[i]).collect();
    Ok((map(train), map(test)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::corpus::Sentence;

    fn corpus(n: usize, predefined: Option<PredefinedSplits>) -> Corpus {
        let sentence = Sentence { words: vec![], entities: vec![], text: None };
        Corpus { sentences: vec![sentence; n], predefined }
    }

    #[test]
    fn fraction_uses_double_precision_ceil() {
        assert_eq!(test_count(100, SplitSize::Fraction(0.07)).unwrap(), 8);
        assert_eq!(test_count(300, SplitSize::Fraction(0.17)).unwrap(), 52);
        assert_eq!(test_count(927, SplitSize::Fraction(0.2)).unwrap(), 186);
    }

    #[test]
    fn datasets_errors_are_reproduced() {
        assert!(train_test_split(1, SplitSize::Fraction(0.1), 0).is_err());
        assert!(train_test_split(10, SplitSize::Count(10), 0).is_err());
        assert!(train_test_split(10, SplitSize::Count(0), 0).is_err());
        assert!(train_test_split(10, SplitSize::Fraction(1.0), 0).is_err());
        assert!(train_test_split(10, SplitSize::Fraction(f64::NAN), 0).is_err());
        assert_eq!(train_test_split(0, SplitSize::Fraction(0.5), 0).unwrap(), (vec![], vec![]));
    }

    #[test]
    fn sizes_parse_like_python_literals() {
        assert_eq!("50".parse(), Ok(SplitSize::Count(50)));
        assert_eq!("0.2".parse(), Ok(SplitSize::Fraction(0.2)));
        assert!("x".parse::<SplitSize>().is_err());
        let cfg: SplitConfig = toml::from_str("test = 0.2\nvalidation = 50\nseed = 1").unwrap();
        assert_eq!(cfg.test, Some(SplitSize::Fraction(0.2)));
        assert_eq!(cfg.validation, Some(SplitSize::Count(50)));
    }

    #[test]
    fn hash_is_of_compact_json() {
        // hashlib.sha256(b"[0]").hexdigest()
        assert_eq!(index_hash(&[0]), "d0bca111f8628137adc4c16f123496dcdd1d590d06cb5d9acd68b39fe656fb97");
    }

    #[test]
    fn two_stage_split_maps_validation_back_to_source_indices() {
        let cfg = SplitConfig {
            test: Some(SplitSize::Fraction(0.2)),
            validation: Some(SplitSize::Fraction(0.1)),
            seed: 67,
            folds: None,
        };
        let manifest = split_corpus(&corpus(50, None), &cfg).unwrap();
        let (train1, test) = train_test_split(50, SplitSize::Fraction(0.2), 67).unwrap();
        let (train2, validation2) = train_test_split(40, SplitSize::Fraction(0.1), 67).unwrap();
        assert_eq!(manifest.test, test);
        let mapped: Vec<usize> = validation2.iter().map(|&i| train1[i]).collect();
        assert_eq!(manifest.validation, mapped);
        assert_eq!(manifest.train, train2.iter().map(|&i| train1[i]).collect::<Vec<_>>());
    }

    #[test]
    fn subsamples_are_nested_ordered_and_seeded() {
        let train: Vec<usize> = (0..40).map(|i| 100 + 3 * i).collect();
        let tenth = subsample(&train, 0.1, 7);
        let quarter = subsample(&train, 0.25, 7);
        assert_eq!((tenth.len(), quarter.len()), (4, 10));
        assert!(tenth.iter().all(|i| quarter.contains(i)), "the 10% sample is inside the 25% one");
        assert!(quarter.windows(2).all(|w| w[0] < w[1]), "kept in the split's order");
        assert!(quarter.iter().all(|i| train.contains(i)));
        assert_ne!(subsample(&train, 0.25, 8), quarter, "another seed draws another sample");
        assert_eq!(subsample(&train, 1.0, 7), train);
        assert_eq!(subsample(&train, 0.001, 7).len(), 1, "never empty");
        let first: Vec<usize> = NumpyRng::new(7).permutation(40).into_iter().take(4).collect();
        let mut want: Vec<usize> = first.iter().map(|&p| train[p]).collect();
        want.sort_unstable();
        assert_eq!(tenth, want);
    }

    #[test]
    fn predefined_splits_are_used_without_a_rule() {
        let predefined = PredefinedSplits::consecutive(3, 1, 2);
        let cfg = SplitConfig { test: None, validation: None, seed: 0, folds: None };
        let manifest = split_corpus(&corpus(6, Some(predefined)), &cfg).unwrap();
        assert_eq!((manifest.train.len(), manifest.validation.len()), (3, 1));
        assert_eq!(manifest.test, [4, 5]);
        assert!(split_corpus(&corpus(6, None), &cfg).is_err());
    }

    #[test]
    fn validation_only_rule_keeps_the_predefined_test_split() {
        let predefined = PredefinedSplits::consecutive(8, 2, 2);
        let cfg = SplitConfig { test: None, validation: Some(SplitSize::Count(3)), seed: 1, folds: None };
        let manifest = split_corpus(&corpus(12, Some(predefined)), &cfg).unwrap();
        assert_eq!(manifest.test, [10, 11]);
        assert_eq!(manifest.validation.len(), 3);
        assert!(manifest.validation.iter().chain(&manifest.train).all(|&i| i < 10));
    }
}
