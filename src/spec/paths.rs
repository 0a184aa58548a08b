//! The local paths a spec names (model directories, dataset files), checked on this machine
//! after `${VAR}` expansion: `validate` (unless told the spec is for another machine) and `run`
//! (before any worker starts) report each missing one once, at its key.

use std::ops::Range;
use std::path::Path;

use toml::de::{DeTable, DeValue};

use super::env::expand_with;
use super::error::{Locator, SpecError};
use super::model::{ModelSource, Spec};

/// Dataset keys that name a local file.
const DATASET_FILES: [&str; 4] = ["path", "train", "validation", "test"];

/// Every missing local path (or unset `${VAR}` in one) of the models and datasets the grid
/// uses, in file order; `lookup` reads the environment.
pub fn missing_paths(spec: &Spec, lookup: &dyn Fn(&str) -> Option<String>) -> Vec<SpecError> {
    missing_paths_of(spec, (&used(spec, "model"), &used(spec, "dataset")), lookup)
}

/// [`missing_paths`] of the given model and dataset aliases only (the runs a command selected).
pub fn missing_paths_of(
    spec: &Spec,
    (models, datasets): (&[String], &[String]),
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Vec<SpecError> {
    let loc = Locator::new(&spec.file, &spec.source);
    let root = DeTable::parse(&spec.source).ok();
    let at = |table: &str, alias: &str, key: &str| {
        root.as_ref().and_then(|r| key_span(r.get_ref(), [table, alias, key])).map_or(0, |s| s.start)
    };
    let mut errors = Vec::new();
    let mut check = |table: &str, alias: &str, key: &str, raw: &str, want_dir: bool| {
        let key_path = format!("{table}.{alias}.{key}");
        let problem = match expand_with(raw, lookup) {
            Err(e) => Some(e),
            Ok(path) if want_dir && !Path::new(&path).is_dir() => Some(format!("no such directory: {path}")),
            Ok(path) if !want_dir && !Path::new(&path).is_file() => Some(format!("no such file: {path}")),
            Ok(_) => None,
        };
        if let Some(problem) = problem {
            errors.push(loc.error(at(table, alias, key), &key_path, problem));
        }
    };
    for alias in models {
        if let Some(ModelSource::Path { path }) = spec.models.get(alias) {
            check("models", alias, "path", path, true);
        }
    }
    for alias in datasets {
        let Some(entry) = spec.datasets.get(alias) else { continue };
        for key in DATASET_FILES {
            if let Some(raw) = entry.table.get(key).and_then(|v| v.as_str()) {
                check("datasets", alias, key, raw, false);
            }
        }
    }
    errors.sort_by_key(|e| (e.line, e.col));
    errors
}

/// The aliases of one grid axis, first appearance first (the axis, then `include`).
fn used(spec: &Spec, axis: &str) -> Vec<String> {
    let on_axis = spec.grid.axes.iter().filter(|(k, _)| k == axis).flat_map(|(_, v)| v.iter());
    let included = spec.grid.include.iter().filter_map(|i| i.get(axis));
    let mut names: Vec<String> = Vec::new();
    for name in on_axis.chain(included).filter_map(|v| v.as_str()) {
        if !names.iter().any(|n| n == name) {
            names.push(name.to_string());
        }
    }
    names
}

/// The span of the value at `keys` (nested tables).
fn key_span(root: &DeTable<'_>, keys: [&str; 3]) -> Option<Range<usize>> {
    let mut table = root;
    for (i, key) in keys.iter().enumerate() {
        let node = table.get(*key)?;
        match node.get_ref() {
            DeValue::Table(t) if i + 1 < keys.len() => table = t,
            _ if i + 1 == keys.len() => return Some(node.span()),
            _ => return None,
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_files_directories_and_unset_variables_are_located() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().display().to_string();
        std::fs::create_dir(dir.path().join("model")).unwrap();
        std::fs::write(dir.path().join("d.jsonl"), "").unwrap();
        let text = format!(
            "[experiment]\nname = \"x\"\n[models.ok]\npath = \"${{ROOT}}/model\"\n[models.gone]\npath = \"{root}/nothing\"\n\
             [datasets.d]\npath = \"${{ROOT}}/d.jsonl\"\nsplit = {{ test = 0.2, seed = 1 }}\n[datasets.e]\npath = \"${{UNSET_X}}/e.jsonl\"\n\
             split = {{ test = 0.2, seed = 1 }}\n[datasets.unused]\npath = \"nowhere.jsonl\"\nsplit = {{ test = 0.2, seed = 1 }}\n\
             [grid]\nmodels = [\"ok\", \"gone\"]\nschemes = [\"BIO\"]\nlearning_rates = [1e-5]\ndatasets = [\"d\", \"e\"]\n"
        );
        let spec = crate::spec::parse(Path::new("s.toml"), &text).unwrap();
        let lookup = |name: &str| (name == "ROOT").then(|| root.clone());
        let errors: Vec<String> = missing_paths(&spec, &lookup).iter().map(|e| e.to_string()).collect();
        assert_eq!(
            errors,
            [
                format!("s.toml:6:8: models.gone.path: no such directory: {root}/nothing"),
                "s.toml:11:8: datasets.e.path: environment variable UNSET_X is not set (used in \"${UNSET_X}/e.jsonl\")"
                    .to_string(),
            ]
        );
    }
}
