//! Corpora, tagging schemes and seeded splits: everything nergrid reads about a dataset.
//!
//! Loaders (`conll`, `spans`, `brackets`, `hub`) turn files into a [`Corpus`] of sentences with
//! word-level entity spans; `words` is the reference notebook's span-to-word rule; `scheme`
//! tags and decodes; `split` reproduces 🤗 datasets' `train_test_split` through `numpy_rng`
//! and scikit-learn's shuffled `KFold` through `kfold`;
//! `audit` and `stats` describe a corpus for `nergrid data inspect`; `tag_columns` reads the
//! gold/predicted columns `nergrid eval` scores; `config` is the
//! `[datasets.<alias>]` table that ties them together.

pub(crate) mod audit;
pub(crate) mod brackets;
pub(crate) mod config;
pub(crate) mod conll;
pub(crate) mod corpus;
pub(crate) mod error;
pub(crate) mod hub;
pub(crate) mod kfold;
pub(crate) mod numpy_rng;
pub(crate) mod records;
pub(crate) mod scheme;
pub(crate) mod spans;
pub(crate) mod split;
pub(crate) mod stats;
pub(crate) mod tag_columns;
pub(crate) mod words;

#[cfg(test)]
mod golden;

pub use audit::{audit, AuditKind, AuditWarning};
pub use config::{infer_format, DatasetConfig, InputFormat, LoadedCorpus};
pub use corpus::{Corpus, PredefinedSplits, Sentence, TaggedSentence, WordSpan};
pub use error::{DataError, Problem};
pub use hub::HubEnv;
pub use kfold::{kfold, Fold};
pub use numpy_rng::{NumpyRng, SeedSequence};
pub use records::OnError;
pub use scheme::{convert, decode, encode, Scheme};
pub use split::{
    fold_manifests, split_corpus, split_fold, subsample, train_test_split, SplitConfig, SplitManifest, SplitSize,
};
