//! Saving a fine-tuned model in Hugging Face layout, loadable as it is by transformers'
//! `AutoModelForTokenClassification`: `config.json` (the original keys, `architectures`,
//! `id2label`, `label2id`), `model.safetensors` with HF names (`bert.…`, `classifier.…`, with
//! the `{"format": "pt"}` metadata transformers checks) and `tokenizer.json`, plus the
//! tokenizer side files of the source model when it had them.

use super::config::{Architecture, Config};
use super::head::TokenClassifier;
use super::load::ModelFiles;
use candle_core::Tensor;
use serde_json::{json, Map, Value};
use std::path::{Path, PathBuf};

/// Errors writing a model directory.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("{path}: cannot write")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: cannot write tokenizer")]
    Tokenizer {
        path: PathBuf,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("reading tensor {name}")]
    Tensor {
        name: String,
        #[source]
        source: candle_core::Error,
    },
}

/// Tokenizer files copied from the source model when present.
const SIDE_FILES: [&str; 3] = ["tokenizer_config.json", "special_tokens_map.json", "vocab.txt"];

/// Writes `model` and `tokenizer` into `dir` (created if needed). `source` names the model
/// it was fine-tuned from, whose tokenizer side files are copied.
pub fn save_model(
    model: &TokenClassifier,
    tokenizer: &tokenizers::Tokenizer,
    dir: &Path,
    source: Option<&ModelFiles>,
) -> Result<(), ExportError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| ExportError::Io { path, source }
    };
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let config =
        serde_json::to_vec_pretty(&export_config(model.config(), model.labels())).expect("a JSON value serialises");
    write_atomic(&dir.join("config.json"), &config)?;
    write_atomic(&dir.join("model.safetensors"), &safetensors_bytes(model)?)?;
    write_tokenizer(tokenizer, &dir.join("tokenizer.json"))?;
    for name in SIDE_FILES {
        let from = source.and_then(|s| s.config.parent().map(|d| d.join(name)));
        if let Some(from) = from.filter(|p| p.is_file()) {
            let bytes = std::fs::read(&from).map_err(io(&from))?;
            write_atomic(&dir.join(name), &bytes)?;
        }
    }
    Ok(())
}

/// The transformers class of a token-classification model of this configuration.
pub fn architecture_name(cfg: &Config) -> &'static str {
    let model_type = cfg.raw["model_type"].as_str().unwrap_or("");
    match (cfg.architecture, model_type) {
        (Architecture::Bert, _) => "BertForTokenClassification",
        (Architecture::DistilBert, _) => "DistilBertForTokenClassification",
        (Architecture::Roberta, "xlm-roberta") => "XLMRobertaForTokenClassification",
        (Architecture::Roberta, "camembert") => "CamembertForTokenClassification",
        (Architecture::Roberta, _) => "RobertaForTokenClassification",
    }
}

/// The source `config.json` with the head's labels and class.
pub fn export_config(cfg: &Config, labels: &[String]) -> Value {
    let mut out = match &cfg.raw {
        Value::Object(map) => map.clone(),
        _ => Map::new(),
    };
    let id2label: Map<String, Value> = labels.iter().enumerate().map(|(i, l)| (i.to_string(), json!(l))).collect();
    let label2id: Map<String, Value> = labels.iter().enumerate().map(|(i, l)| (l.clone(), json!(i))).collect();
    out.insert("architectures".into(), json!([architecture_name(cfg)]));
    out.insert("id2label".into(), Value::Object(id2label));
    out.insert("label2id".into(), Value::Object(label2id));
    if !out.contains_key("model_type") {
        out.insert("model_type".into(), json!(cfg.architecture.prefix()));
    }
    Value::Object(out)
}

/// The checkpoint name of parameter `name`: the encoder under its family prefix.
pub fn checkpoint_name(cfg: &Config, name: &str) -> String {
    if name.starts_with("classifier.") {
        name.to_string()
    } else {
        format!("{}.{name}", cfg.architecture.prefix())
    }
}

/// The safetensors file of `model` (F32, names sorted, `{"format": "pt"}` metadata).
pub fn safetensors_bytes(model: &TokenClassifier) -> Result<Vec<u8>, ExportError> {
    let mut tensors: Vec<(String, &Tensor)> =
        model.params().iter().map(|(name, var)| (checkpoint_name(model.config(), name), var.as_tensor())).collect();
    tensors.sort_by(|a, b| a.0.cmp(&b.0));
    let mut header = Map::new();
    header.insert("__metadata__".into(), json!({"format": "pt"}));
    let mut data = Vec::new();
    for (name, tensor) in &tensors {
        let values = tensor
            .flatten_all()
            .and_then(|t| t.to_vec1::<f32>())
            .map_err(|source| ExportError::Tensor { name: name.clone(), source })?;
        let start = data.len();
        data.extend(values.iter().flat_map(|v| v.to_le_bytes()));
        header
            .insert(name.clone(), json!({"dtype": "F32", "shape": tensor.dims(), "data_offsets": [start, data.len()]}));
    }
    let mut header = serde_json::to_vec(&Value::Object(header)).expect("a JSON value serialises");
    // The data section starts 8-byte aligned.
    header.resize(header.len().div_ceil(8) * 8, b' ');
    let mut out = Vec::with_capacity(8 + header.len() + data.len());
    out.extend((header.len() as u64).to_le_bytes());
    out.extend(header);
    out.extend(data);
    Ok(out)
}

fn write_tokenizer(tokenizer: &tokenizers::Tokenizer, path: &Path) -> Result<(), ExportError> {
    let mut plain = tokenizer.clone();
    // The run's truncation is not part of the model: transformers callers set their own.
    plain.with_padding(None);
    let text = plain
        .with_truncation(None)
        .and_then(|t| t.to_string(false))
        .map_err(|source| ExportError::Tokenizer { path: path.to_path_buf(), source })?;
    write_atomic(path, text.as_bytes())
}

/// [`crate::atomic::write_atomic`] with the path in an [`ExportError`].
fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), ExportError> {
    crate::atomic::write_atomic(path, bytes).map_err(|source| ExportError::Io { path: path.to_path_buf(), source })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(model_type: &str) -> Config {
        let text = format!(
            r#"{{"model_type": "{model_type}", "vocab_size": 10, "hidden_size": 4,
            "num_hidden_layers": 1, "num_attention_heads": 2, "intermediate_size": 8,
            "custom_key": 7}}"#
        );
        Config::from_json(&text, Path::new("c.json")).unwrap()
    }

    #[test]
    fn config_keeps_keys_and_adds_labels() {
        let labels = ["O", "B-X"].map(String::from);
        let out = export_config(&cfg("bert"), &labels);
        assert_eq!(out["custom_key"], 7);
        assert_eq!(out["architectures"], json!(["BertForTokenClassification"]));
        assert_eq!(out["id2label"], json!({"0": "O", "1": "B-X"}));
        assert_eq!(out["label2id"], json!({"O": 0, "B-X": 1}));
    }

    #[test]
    fn class_and_prefix_follow_the_family() {
        assert_eq!(architecture_name(&cfg("xlm-roberta")), "XLMRobertaForTokenClassification");
        assert_eq!(architecture_name(&cfg("distilbert")), "DistilBertForTokenClassification");
        let c = cfg("roberta");
        assert_eq!(
            checkpoint_name(&c, "embeddings.word_embeddings.weight"),
            "roberta.embeddings.word_embeddings.weight"
        );
        assert_eq!(checkpoint_name(&c, "classifier.bias"), "classifier.bias");
    }
}
