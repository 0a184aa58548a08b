//! Model configuration: a serde mirror of Hugging Face `config.json` for BERT, DistilBERT and
//! RoBERTa/XLM-R, normalised into one [`Config`] the encoder is built from.
//!
//! The raw JSON is kept beside the normalised values so that an exported model writes back
//! every key of the original file (transformers reads keys nergrid does not know about).

use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Errors reading or interpreting a `config.json`.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{path}: cannot read")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: not a valid model config")]
    Parse {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("{path}: {key}: {what}")]
    Unsupported { path: PathBuf, key: &'static str, what: String },
}

/// Encoder families nergrid can fine-tune; they differ in tensor names and small details.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Architecture {
    /// BERT and its relatives (mBERT, KB-BERT, BioBERT, PubMedBERT, MiniLM).
    Bert,
    /// DistilBERT: no token types, `q_lin`/`sa_layer_norm` names, no attention-output dropout.
    DistilBert,
    /// RoBERTa and XLM-RoBERTa: BERT layers, positions offset by `pad_token_id + 1`.
    Roberta,
}

impl Architecture {
    /// The prefix of the encoder's tensors in a `*ForTokenClassification` checkpoint.
    pub fn prefix(self) -> &'static str {
        match self {
            Architecture::Bert => "bert",
            Architecture::DistilBert => "distilbert",
            Architecture::Roberta => "roberta",
        }
    }
}

/// Feed-forward activation (`hidden_act` / `activation`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Activation {
    /// Exact GELU with erf (`"gelu"`).
    GeluErf,
    /// Tanh approximation (`"gelu_new"`, `"gelu_pytorch_tanh"`, `"gelu_fast"`).
    GeluTanh,
    Relu,
}

/// `config.json` as Hugging Face writes it; BERT and DistilBERT spell some keys differently.
#[derive(Debug, Clone, Deserialize)]
pub struct HfConfig {
    pub model_type: Option<String>,
    #[serde(default)]
    pub architectures: Vec<String>,
    pub vocab_size: usize,
    #[serde(alias = "dim")]
    pub hidden_size: usize,
    #[serde(alias = "n_layers")]
    pub num_hidden_layers: usize,
    #[serde(alias = "n_heads")]
    pub num_attention_heads: usize,
    #[serde(alias = "hidden_dim")]
    pub intermediate_size: usize,
    #[serde(alias = "activation", default = "default_act")]
    pub hidden_act: String,
    #[serde(alias = "dropout", default = "default_dropout")]
    pub hidden_dropout_prob: f64,
    #[serde(alias = "attention_dropout", default = "default_dropout")]
    pub attention_probs_dropout_prob: f64,
    pub classifier_dropout: Option<f64>,
    #[serde(default = "default_positions")]
    pub max_position_embeddings: usize,
    pub type_vocab_size: Option<usize>,
    pub layer_norm_eps: Option<f64>,
    #[serde(default = "default_init_range")]
    pub initializer_range: f64,
    pub pad_token_id: Option<u32>,
    pub position_embedding_type: Option<String>,
    #[serde(default)]
    pub sinusoidal_pos_embds: bool,
    pub id2label: Option<BTreeMap<String, String>>,
}

fn default_act() -> String {
    "gelu".to_string()
}
fn default_dropout() -> f64 {
    0.1
}
fn default_positions() -> usize {
    512
}
fn default_init_range() -> f64 {
    0.02
}

/// The normalised configuration the encoder and head are built from.
#[derive(Debug, Clone)]
pub struct Config {
    pub architecture: Architecture,
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub num_layers: usize,
    pub num_heads: usize,
    pub intermediate_size: usize,
    pub activation: Activation,
    pub hidden_dropout: f64,
    pub attention_dropout: f64,
    /// Dropout before the classifier (`classifier_dropout`, else the hidden dropout).
    pub classifier_dropout: f64,
    pub max_position_embeddings: usize,
    /// 0 when the model has no token-type embeddings (DistilBERT).
    pub type_vocab_size: usize,
    pub layer_norm_eps: f64,
    pub initializer_range: f64,
    pub pad_token_id: u32,
    /// Labels of a fine-tuned checkpoint, by class id (from `id2label`).
    pub id2label: Option<Vec<String>>,
    /// The file as read, written back (updated) on export.
    pub raw: serde_json::Value,
}

impl Config {
    /// Reads and normalises `path` (a `config.json`).
    pub fn from_file(path: &Path) -> Result<Config, ConfigError> {
        let text =
            std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: path.to_path_buf(), source })?;
        Config::from_json(&text, path)
    }

    /// Parses `text`; `path` only names the source in errors.
    pub fn from_json(text: &str, path: &Path) -> Result<Config, ConfigError> {
        let parse = |source| ConfigError::Parse { path: path.to_path_buf(), source };
        let raw: serde_json::Value = serde_json::from_str(text).map_err(parse)?;
        let hf: HfConfig = serde_json::from_value(raw.clone()).map_err(parse)?;
        normalise(hf, raw).map_err(|(key, what)| ConfigError::Unsupported { path: path.to_path_buf(), key, what })
    }

    /// Size of one attention head.
    pub fn head_size(&self) -> usize {
        self.hidden_size / self.num_heads
    }
}

type Unsupported = (&'static str, String);

fn normalise(hf: HfConfig, raw: serde_json::Value) -> Result<Config, Unsupported> {
    let architecture = architecture(&hf)?;
    check_supported(&hf)?;
    let type_vocab_size = match architecture {
        Architecture::DistilBert => 0,
        _ => hf.type_vocab_size.unwrap_or(2),
    };
    let default_pad = if architecture == Architecture::Roberta { 1 } else { 0 };
    Ok(Config {
        architecture,
        vocab_size: hf.vocab_size,
        hidden_size: hf.hidden_size,
        num_layers: hf.num_hidden_layers,
        num_heads: hf.num_attention_heads,
        intermediate_size: hf.intermediate_size,
        activation: activation(&hf.hidden_act)?,
        hidden_dropout: hf.hidden_dropout_prob,
        attention_dropout: hf.attention_probs_dropout_prob,
        classifier_dropout: hf.classifier_dropout.unwrap_or(hf.hidden_dropout_prob),
        max_position_embeddings: hf.max_position_embeddings,
        type_vocab_size,
        layer_norm_eps: hf.layer_norm_eps.unwrap_or(1e-12),
        initializer_range: hf.initializer_range,
        pad_token_id: hf.pad_token_id.unwrap_or(default_pad),
        id2label: hf.id2label.as_ref().and_then(labels_by_id),
        raw,
    })
}

fn architecture(hf: &HfConfig) -> Result<Architecture, Unsupported> {
    let by_arch = |needle: &str| hf.architectures.iter().any(|a| a.contains(needle));
    match hf.model_type.as_deref() {
        Some("bert") => Ok(Architecture::Bert),
        Some("distilbert") => Ok(Architecture::DistilBert),
        Some("roberta" | "xlm-roberta" | "camembert") => Ok(Architecture::Roberta),
        None if by_arch("DistilBert") => Ok(Architecture::DistilBert),
        None if by_arch("Roberta") => Ok(Architecture::Roberta),
        None if by_arch("Bert") => Ok(Architecture::Bert),
        other => Err((
            "model_type",
            format!("expected one of \"bert\", \"distilbert\", \"roberta\", \"xlm-roberta\", got {other:?}"),
        )),
    }
}

fn check_supported(hf: &HfConfig) -> Result<(), Unsupported> {
    if let Some(kind) = hf.position_embedding_type.as_deref() {
        if kind != "absolute" {
            let what = format!("only \"absolute\" positions are supported, got {kind:?}");
            return Err(("position_embedding_type", what));
        }
    }
    if hf.sinusoidal_pos_embds {
        let what = "frozen sinusoidal positions are not supported".to_string();
        return Err(("sinusoidal_pos_embds", what));
    }
    if hf.num_attention_heads == 0 || !hf.hidden_size.is_multiple_of(hf.num_attention_heads) {
        let what = format!("hidden size {} is not a multiple of {} heads", hf.hidden_size, hf.num_attention_heads);
        return Err(("num_attention_heads", what));
    }
    Ok(())
}

fn activation(name: &str) -> Result<Activation, Unsupported> {
    match name {
        "gelu" => Ok(Activation::GeluErf),
        "gelu_new" | "gelu_pytorch_tanh" | "gelu_fast" => Ok(Activation::GeluTanh),
        "relu" => Ok(Activation::Relu),
        other => Err(("hidden_act", format!("expected \"gelu\", \"gelu_new\" or \"relu\", got {other:?}"))),
    }
}

/// `{"0": "O", "1": "B-X"}` as a vector by id; `None` unless the ids are exactly 0..n.
fn labels_by_id(map: &BTreeMap<String, String>) -> Option<Vec<String>> {
    let mut labels = vec![None; map.len()];
    for (id, label) in map {
        let slot = labels.get_mut(id.parse::<usize>().ok()?)?;
        *slot = Some(label.clone());
    }
    labels.into_iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::from_json(text, Path::new("config.json"))
    }

    const MINILM: &str = r#"{"architectures": ["BertModel"], "attention_probs_dropout_prob": 0.1,
        "hidden_act": "gelu", "hidden_dropout_prob": 0.1, "hidden_size": 384,
        "initializer_range": 0.02, "intermediate_size": 1536, "layer_norm_eps": 1e-12,
        "max_position_embeddings": 512, "model_type": "bert", "num_attention_heads": 12,
        "num_hidden_layers": 6, "pad_token_id": 0, "position_embedding_type": "absolute",
        "type_vocab_size": 2, "vocab_size": 30522}"#;

    #[test]
    fn reads_bert_config() {
        let cfg = parse(MINILM).unwrap();
        assert_eq!(cfg.architecture, Architecture::Bert);
        assert_eq!((cfg.hidden_size, cfg.num_layers, cfg.num_heads), (384, 6, 12));
        assert_eq!(cfg.head_size(), 32);
        assert_eq!(cfg.activation, Activation::GeluErf);
        assert_eq!(cfg.classifier_dropout, 0.1);
        assert_eq!(cfg.type_vocab_size, 2);
    }

    #[test]
    fn reads_distilbert_keys() {
        let text = r#"{"model_type": "distilbert", "vocab_size": 100, "dim": 32, "n_layers": 2,
            "n_heads": 4, "hidden_dim": 64, "dropout": 0.2, "attention_dropout": 0.3,
            "activation": "gelu", "max_position_embeddings": 64}"#;
        let cfg = parse(text).unwrap();
        assert_eq!(cfg.architecture, Architecture::DistilBert);
        assert_eq!((cfg.hidden_size, cfg.intermediate_size), (32, 64));
        assert_eq!((cfg.hidden_dropout, cfg.attention_dropout), (0.2, 0.3));
        assert_eq!(cfg.type_vocab_size, 0);
    }

    #[test]
    fn roberta_pads_with_one_by_default() {
        let text = MINILM.replace("\"bert\"", "\"xlm-roberta\"").replace("\"pad_token_id\": 0,", "");
        let cfg = parse(&text).unwrap();
        assert_eq!(cfg.architecture, Architecture::Roberta);
        assert_eq!(cfg.pad_token_id, 1);
    }

    #[test]
    fn id2label_in_id_order() {
        let text = MINILM.replace(
            "\"vocab_size\": 30522",
            "\"vocab_size\": 30522, \"id2label\": {\"1\": \"B-X\", \"0\": \"O\", \"2\": \"I-X\"}",
        );
        let cfg = parse(&text).unwrap();
        assert_eq!(cfg.id2label.unwrap(), vec!["O", "B-X", "I-X"]);
    }

    #[test]
    fn unknown_model_type_names_the_key() {
        let text = MINILM.replace("\"bert\"", "\"gpt2\"");
        let err = parse(&text).unwrap_err().to_string();
        assert!(err.starts_with("config.json: model_type: expected one of"), "{err}");
        assert!(err.contains("\"gpt2\""), "{err}");
    }

    #[test]
    fn relative_positions_are_refused() {
        let text = MINILM.replace("\"absolute\"", "\"relative_key\"");
        let err = parse(&text).unwrap_err().to_string();
        assert!(err.contains("position_embedding_type"), "{err}");
    }
}
