//! Stable run ids: a readable slug plus 8 hex digits of a hash of the canonical parameters.

use std::collections::BTreeMap;

use sha2::{Digest, Sha256};

use crate::spec::ParamValue;

/// Hash of canonical `key=value` lines in sorted key order, as 8 lowercase hex digits.
pub fn params_hash(canonical: &BTreeMap<String, String>) -> String {
    let mut hasher = Sha256::new();
    for (k, v) in canonical {
        hasher.update(k.as_bytes());
        hasher.update(b"=");
        hasher.update(v.as_bytes());
        hasher.update(b"\n");
    }
    let digest = hasher.finalize();
    digest[..4].iter().map(|b| format!("{b:02x}")).collect()
}

/// A short readable name from the values of the axes that vary, e.g. `kb-bio-lr2e-5-1177-s67`.
pub fn slug(params: &BTreeMap<String, ParamValue>, axes: &[String]) -> String {
    let parts: Vec<String> = axes.iter().filter_map(|axis| params.get(axis).map(|v| slug_part(axis, v))).collect();
    let joined = parts.join("-");
    let clean: String = joined
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || c == '.' || c == '-' { c.to_ascii_lowercase() } else { '_' })
        .collect();
    clean.chars().take(80).collect()
}

fn slug_part(axis: &str, value: &ParamValue) -> String {
    let v = value.canonical();
    match axis {
        "model" | "dataset" | "scheme" => v,
        "learning_rate" => format!("lr{v}"),
        "seed" => format!("s{v}"),
        "fold" => format!("f{v}"),
        other => format!("{}{v}", abbreviation(other)),
    }
}

fn abbreviation(key: &str) -> &str {
    match key {
        "epochs" => "ep",
        "batch_size" => "bs",
        "max_length" => "len",
        "weight_decay" => "wd",
        "warmup_ratio" => "wr",
        "warmup_steps" => "ws",
        "max_grad_norm" => "gn",
        "label_alignment" => "al",
        "select_best_by" => "sel",
        "save_model" => "save",
        "early_stopping_patience" => "pat",
        "early_stopping_threshold" => "thr",
        "train_fraction" => "tf",
        "engine" => "eng",
        "precision" => "prec",
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_depends_on_values_not_insertion_order() {
        let mut a = BTreeMap::new();
        a.insert("b".to_string(), "2".to_string());
        a.insert("a".to_string(), "1".to_string());
        let mut b = BTreeMap::new();
        b.insert("a".to_string(), "1".to_string());
        b.insert("b".to_string(), "2".to_string());
        assert_eq!(params_hash(&a), params_hash(&b));
        b.insert("b".to_string(), "3".to_string());
        assert_ne!(params_hash(&a), params_hash(&b));
        assert_eq!(params_hash(&a).len(), 8);
    }

    #[test]
    fn slug_is_readable() {
        let mut p = BTreeMap::new();
        p.insert("model".into(), ParamValue::Str("KB".into()));
        p.insert("learning_rate".into(), ParamValue::Float(2e-5));
        p.insert("seed".into(), ParamValue::Int(67));
        p.insert("batch_size".into(), ParamValue::Int(16));
        let axes: Vec<String> =
            ["model", "learning_rate", "batch_size", "seed"].iter().map(|s| s.to_string()).collect();
        assert_eq!(slug(&p, &axes), "kb-lr2e-5-bs16-s67");
    }
}
