//! Finding and loading a pretrained model: a local directory or a Hugging Face hub id (hf-hub's
//! standard cache, `HF_HOME`, `HF_TOKEN`; `HF_HUB_OFFLINE=1` reads the cache only), weights
//! from `model.safetensors` or a zip-format `pytorch_model.bin`, tensor names normalised
//! (`bert.`/`roberta.`/`distilbert.` prefixes, old `gamma`/`beta`), missing and unexpected
//! tensors listed.

use super::config::{Config, ConfigError};
use super::head::TokenClassifier;
use super::params::{init_rng, initial_value, model_specs, new_var, Params};
use candle_core::{DType, Device, Tensor};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Errors finding or reading a model.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("{model}: not found on the hub")]
    Hub {
        model: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("{dir}: no such model directory", dir = dir.display())]
    NoDirectory { dir: PathBuf },
    #[error("{model}: not in the local hub cache ({file} missing) and HF_HUB_OFFLINE is set")]
    Offline { model: String, file: String },
    #[error("{dir}: no model.safetensors or pytorch_model.bin")]
    NoWeights { dir: String },
    #[error(
        "{path}: legacy (non-zip) PyTorch format; re-save it with torch >= 1.6 or convert it to model.safetensors"
    )]
    LegacyPytorch { path: PathBuf },
    #[error("{path}: cannot read weights")]
    Weights {
        path: PathBuf,
        #[source]
        source: candle_core::Error,
    },
    #[error("{path}: {name}: shape {found:?}, expected {expected:?}")]
    Shape { path: PathBuf, name: String, found: Vec<usize>, expected: Vec<usize> },
    #[error("{path}: cannot read")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("building parameters")]
    Tensor(#[from] candle_core::Error),
}

/// Where a model's files are.
#[derive(Debug, Clone)]
pub struct ModelFiles {
    /// What the user named (a path or a hub id), for messages.
    pub source: String,
    pub config: PathBuf,
    pub weights: PathBuf,
    /// `tokenizer.json` when present.
    pub tokenizer_json: Option<PathBuf>,
    /// `vocab.txt` (WordPiece) when present.
    pub vocab: Option<PathBuf>,
    pub tokenizer_config: Option<PathBuf>,
}

const WEIGHT_FILES: [&str; 2] = ["model.safetensors", "pytorch_model.bin"];

/// Where a pretrained model is: a local directory or a Hugging Face hub repository. A spec
/// says which (`path` or `hub`); only a command-line argument has to be guessed
/// ([`ModelLocation::from_arg`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModelLocation {
    Dir(PathBuf),
    Hub { id: String, revision: Option<String> },
}

impl ModelLocation {
    /// A command-line `--model` value: an existing directory; else `owner/name` or
    /// `owner/name@revision` (one `/`, not starting with `.` or `/`) is a hub id; anything else
    /// is a directory (which then does not exist).
    pub fn from_arg(arg: &str) -> ModelLocation {
        let path = Path::new(arg);
        let hub_like = arg.matches('/').count() == 1 && !arg.starts_with(['.', '/', '~']) && !arg.ends_with('/');
        match (path.is_dir(), hub_like) {
            (false, true) => match arg.split_once('@') {
                Some((id, revision)) => ModelLocation::Hub { id: id.into(), revision: Some(revision.into()) },
                None => ModelLocation::Hub { id: arg.into(), revision: None },
            },
            _ => ModelLocation::Dir(path.to_path_buf()),
        }
    }

    /// What the user named, for messages and exported metadata: the path, or `id[@revision]`.
    pub fn source(&self) -> String {
        match self {
            ModelLocation::Dir(dir) => dir.display().to_string(),
            ModelLocation::Hub { id, revision: None } => id.clone(),
            ModelLocation::Hub { id, revision: Some(r) } => format!("{id}@{r}"),
        }
    }
}

/// The files of the model at `location` (downloaded into the hub cache when needed).
pub fn resolve_location(location: &ModelLocation) -> Result<ModelFiles, LoadError> {
    let source = location.source();
    match location {
        ModelLocation::Dir(dir) if dir.is_dir() => local_files(&source, dir),
        ModelLocation::Dir(dir) => Err(LoadError::NoDirectory { dir: dir.clone() }),
        ModelLocation::Hub { .. } => hub_files(&source),
    }
}

/// Resolves a command-line model argument (see [`ModelLocation::from_arg`]).
pub fn resolve(model: &str) -> Result<ModelFiles, LoadError> {
    resolve_location(&ModelLocation::from_arg(model))
}

fn local_files(source: &str, dir: &Path) -> Result<ModelFiles, LoadError> {
    let present = |f: &str| Some(dir.join(f)).filter(|p| p.is_file());
    let weights = WEIGHT_FILES
        .iter()
        .find_map(|f| present(f))
        .ok_or_else(|| LoadError::NoWeights { dir: dir.display().to_string() })?;
    Ok(ModelFiles {
        source: source.to_string(),
        config: dir.join("config.json"),
        weights,
        tokenizer_json: present("tokenizer.json"),
        vocab: present("vocab.txt"),
        tokenizer_config: present("tokenizer_config.json"),
    })
}

fn offline() -> bool {
    std::env::var("HF_HUB_OFFLINE").is_ok_and(|v| !v.is_empty() && v != "0")
}

/// Fetches a file of a hub repository: the cache only when offline.
type Fetch<'a> = Box<dyn Fn(&str) -> Option<PathBuf> + 'a>;

/// A hub repository from `id` or `id@revision`.
pub fn hub_repo(model: &str) -> hf_hub::Repo {
    match model.split_once('@') {
        Some((id, revision)) => {
            hf_hub::Repo::with_revision(id.to_string(), hf_hub::RepoType::Model, revision.to_string())
        }
        None => hf_hub::Repo::model(model.to_string()),
    }
}

fn hub_files(model: &str) -> Result<ModelFiles, LoadError> {
    let repo = hub_repo(model);
    let cache = hf_hub::Cache::from_env();
    let fetch: Fetch = if offline() {
        let cached = cache.repo(repo);
        Box::new(move |f| cached.get(f))
    } else {
        let token = std::env::var("HF_TOKEN").ok().or_else(|| cache.token());
        let api = hf_hub::api::sync::ApiBuilder::from_cache(cache)
            .with_token(token)
            .with_progress(false)
            .build()
            .map_err(|e| hub_error(model, e))?;
        let remote = api.repo(repo);
        Box::new(move |f| remote.get(f).ok())
    };
    let required = |f: &str| {
        fetch(f).ok_or_else(|| match offline() {
            true => LoadError::Offline { model: model.to_string(), file: f.to_string() },
            false => hub_error(model, format!("{f} not found")),
        })
    };
    let config = required("config.json")?;
    let weights = WEIGHT_FILES.iter().find_map(|f| fetch(f)).ok_or_else(|| required(WEIGHT_FILES[0]).unwrap_err())?;
    Ok(ModelFiles {
        source: model.to_string(),
        config,
        weights,
        tokenizer_json: fetch("tokenizer.json"),
        vocab: fetch("vocab.txt"),
        tokenizer_config: fetch("tokenizer_config.json"),
    })
}

fn hub_error(model: &str, e: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> LoadError {
    LoadError::Hub { model: model.to_string(), source: e.into() }
}

/// Tensors read from a checkpoint, on the CPU in f32, under their file names.
pub fn read_weights(path: &Path) -> Result<Vec<(String, Tensor)>, LoadError> {
    let wrap = |source| LoadError::Weights { path: path.to_path_buf(), source };
    let tensors = if path.extension().is_some_and(|e| e == "safetensors") {
        candle_core::safetensors::load(path, &Device::Cpu).map_err(wrap)?.into_iter().collect()
    } else {
        read_pytorch(path)?
    };
    tensors
        .into_iter()
        .filter(|(_, t)| t.dtype().is_float())
        .map(|(n, t)| Ok((n, t.to_dtype(DType::F32).map_err(wrap)?)))
        .collect()
}

fn read_pytorch(path: &Path) -> Result<Vec<(String, Tensor)>, LoadError> {
    let mut magic = [0u8; 4];
    let read_magic = std::fs::File::open(path).and_then(|mut f| {
        use std::io::Read;
        f.read_exact(&mut magic)
    });
    read_magic.map_err(|source| LoadError::Io { path: path.to_path_buf(), source })?;
    if &magic != b"PK\x03\x04" {
        return Err(LoadError::LegacyPytorch { path: path.to_path_buf() });
    }
    let wrap = |source| LoadError::Weights { path: path.to_path_buf(), source };
    let tensors = candle_core::pickle::read_all(path).map_err(wrap)?;
    if !tensors.is_empty() {
        return Ok(tensors);
    }
    // Training checkpoints nest the weights under "state_dict".
    candle_core::pickle::read_all_with_key(path, Some("state_dict")).map_err(wrap)
}

/// Checkpoint names mapped onto nergrid's (unprefixed, `weight`/`bias`) names.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NameMapping {
    /// The stripped prefix (`"bert."`), if any.
    pub prefix: Option<String>,
    /// Whether `gamma`/`beta` names were renamed.
    pub renamed_gamma_beta: bool,
}

const PREFIXES: [&str; 4] = ["bert.", "roberta.", "distilbert.", "model."];

/// Detects the encoder prefix (the one in front of `embeddings.`) and old LayerNorm names.
pub fn detect_names<'a>(names: impl Iterator<Item = &'a str> + Clone) -> NameMapping {
    let prefix = PREFIXES
        .iter()
        .find(|p| names.clone().any(|n| n.starts_with(&format!("{p}embeddings."))))
        .map(|p| p.to_string());
    let renamed_gamma_beta = names.clone().any(|n| n.ends_with(".gamma") || n.ends_with(".beta"));
    NameMapping { prefix, renamed_gamma_beta }
}

/// `name` under nergrid's naming.
pub fn normalise_name(name: &str, mapping: &NameMapping) -> String {
    let name = match &mapping.prefix {
        Some(p) => name.strip_prefix(p.as_str()).unwrap_or(name),
        None => name,
    };
    if let Some(stem) = name.strip_suffix(".gamma") {
        return format!("{stem}.weight");
    }
    if let Some(stem) = name.strip_suffix(".beta") {
        return format!("{stem}.bias");
    }
    name.to_string()
}

/// A model ready to train, with what loading found.
#[derive(Debug, Clone)]
pub struct LoadedModel {
    pub model: TokenClassifier,
    pub mapping: NameMapping,
    /// Model tensors the checkpoint lacked (initialised from the seed).
    pub missing: Vec<String>,
    /// Checkpoint tensors the model does not use.
    pub unexpected: Vec<String>,
}

/// Buffers in checkpoints that are not parameters.
fn is_buffer(name: &str) -> bool {
    name.ends_with("position_ids")
}

/// Builds a token classifier for `labels` from checkpoint `tensors`; everything the
/// checkpoint lacks (the new head, at least) is drawn from `seed`.
pub fn build_model(
    cfg: &Config,
    labels: &[String],
    tensors: Vec<(String, Tensor)>,
    seed: u64,
    device: &Device,
    path: &Path,
) -> Result<LoadedModel, LoadError> {
    let mapping = detect_names(tensors.iter().map(|(n, _)| n.as_str()));
    let mut by_name: BTreeMap<String, Tensor> =
        tensors.into_iter().map(|(n, t)| (normalise_name(&n, &mapping), t)).filter(|(n, _)| !is_buffer(n)).collect();
    let mut rng = init_rng(seed);
    let (mut vars, mut missing) = (Vec::new(), Vec::new());
    for spec in model_specs(cfg, labels.len()) {
        let found = by_name.remove(&spec.name);
        let value = match found {
            Some(t) if t.dims() == spec.shape.as_slice() => t.to_device(device)?,
            Some(t) if !spec.name.starts_with("classifier.") => {
                return Err(shape_error(path, &spec.name, t.dims(), &spec.shape));
            }
            _ => {
                // A head for another label set is replaced, as transformers does with
                // ignore_mismatched_sizes.
                missing.push(spec.name.clone());
                let pad = cfg.pad_token_id as usize;
                let v = initial_value(&spec, cfg.initializer_range, pad, &mut rng);
                Tensor::from_vec(v, spec.shape.as_slice(), &Device::Cpu)?.to_device(device)?
            }
        };
        vars.push((spec.name, candle_core::Var::from_tensor(&value)?));
    }
    let params = Params::new(vars);
    Ok(LoadedModel {
        model: TokenClassifier::new(cfg.clone(), labels.to_vec(), params),
        mapping,
        missing,
        unexpected: by_name.into_keys().collect(),
    })
}

fn shape_error(path: &Path, name: &str, found: &[usize], expected: &[usize]) -> LoadError {
    LoadError::Shape {
        path: path.to_path_buf(),
        name: name.to_string(),
        found: found.to_vec(),
        expected: expected.to_vec(),
    }
}

/// Loads `files` as a token classifier for `labels` (head drawn from `seed` unless the
/// checkpoint has one of the right size).
pub fn load_model(files: &ModelFiles, labels: &[String], seed: u64, device: &Device) -> Result<LoadedModel, LoadError> {
    let cfg = Config::from_file(&files.config)?;
    let tensors = read_weights(&files.weights)?;
    build_model(&cfg, labels, tensors, seed, device, &files.weights)
}

/// A randomly initialised model (every tensor from `seed`), for tests and smoke runs.
pub fn random_model(cfg: &Config, labels: &[String], seed: u64, device: &Device) -> Result<TokenClassifier, LoadError> {
    let mut rng = init_rng(seed);
    let pad = cfg.pad_token_id as usize;
    let vars = model_specs(cfg, labels.len())
        .into_iter()
        .map(|spec| {
            let v = initial_value(&spec, cfg.initializer_range, pad, &mut rng);
            Ok((spec.name, new_var(v, &spec.shape, device)?))
        })
        .collect::<Result<Vec<_>, candle_core::Error>>()?;
    Ok(TokenClassifier::new(cfg.clone(), labels.to_vec(), Params::new(vars)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detects_prefix_and_gamma_beta() {
        let names =
            ["bert.embeddings.word_embeddings.weight", "bert.embeddings.LayerNorm.gamma", "cls.predictions.bias"];
        let m = detect_names(names.iter().copied());
        assert_eq!(m.prefix.as_deref(), Some("bert."));
        assert!(m.renamed_gamma_beta);
        assert_eq!(normalise_name("bert.embeddings.LayerNorm.gamma", &m), "embeddings.LayerNorm.weight");
        assert_eq!(
            normalise_name("bert.encoder.layer.0.output.LayerNorm.beta", &m),
            "encoder.layer.0.output.LayerNorm.bias"
        );
        assert_eq!(normalise_name("cls.predictions.bias", &m), "cls.predictions.bias");
    }

    #[test]
    fn no_prefix_is_detected_as_none() {
        let names = ["embeddings.word_embeddings.weight", "classifier.weight"];
        let m = detect_names(names.iter().copied());
        assert_eq!(m, NameMapping::default());
    }

    #[test]
    fn revision_follows_the_at_sign() {
        assert_eq!(hub_repo("owner/name@v1").revision(), "v1");
        assert_eq!(hub_repo("owner/name").revision(), "main");
        assert_eq!(hub_repo("owner/name@v1").folder_name(), "models--owner--name");
    }

    #[test]
    fn missing_directory_without_network_is_an_error() {
        std::env::set_var("HF_HUB_OFFLINE", "1");
        let err = resolve("no-such-owner/no-such-model-xyz").unwrap_err();
        assert!(matches!(err, LoadError::Offline { .. }), "{err}");
        assert!(err.to_string().contains("HF_HUB_OFFLINE"));
    }
}
