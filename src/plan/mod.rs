//! Plan: expands a `Spec` into runs with stable ids. Pure: no I/O.

mod expand;
mod id;

pub use expand::{expand, parse_shard, select, Plan, RunSpec};
pub use id::{params_hash, slug};

#[cfg(test)]
mod tests;

/// Runs for unit tests elsewhere in the crate.
#[cfg(test)]
pub(crate) mod tests_support {
    use super::RunSpec;
    use crate::spec::ParamValue;

    /// A run with every `[train]` default, model `m`, scheme BIO, dataset `d`, learning rate
    /// 2e-5 and seed 67, overridden by `pairs`; its id is `x`.
    pub(crate) fn run_spec(pairs: &[(&str, ParamValue)]) -> RunSpec {
        let mut params: std::collections::BTreeMap<String, ParamValue> =
            crate::spec::TRAIN_KEYS.iter().map(|k| (k.name.to_string(), (k.default)())).collect();
        for (k, v) in [("model", "m"), ("scheme", "BIO"), ("dataset", "d")] {
            params.insert(k.into(), ParamValue::Str(v.into()));
        }
        params.insert("learning_rate".into(), ParamValue::Float(2e-5));
        params.insert("seed".into(), ParamValue::Int(67));
        params.extend(pairs.iter().map(|(k, v)| (k.to_string(), v.clone())));
        RunSpec::new(0, "x".into(), params).unwrap()
    }
}
