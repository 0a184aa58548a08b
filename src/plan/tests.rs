//! Plan tests on specs written inline: no files, no devices.

use std::collections::BTreeMap;
use std::path::Path;

use super::*;
use crate::spec::parse;

const BASE: &str = r#"
[experiment]
name = "t"

[models.kb]
hub = "KB/bert-base-swedish-cased"
[models.mbert]
hub = "google-bert/bert-base-multilingual-cased"

[datasets.d]
format = "jsonl"
path = "d.jsonl"

[grid]
models = ["kb", "mbert"]
schemes = ["BIO", "BIOES"]
learning_rates = [1e-5, 2e-5, 5e-5]
datasets = ["d"]
"#;

fn plan_of(text: &str) -> Plan {
    expand(&parse(Path::new("t.toml"), text).unwrap_or_else(|e| panic!("{e}")))
}

fn ids(plan: &Plan) -> Vec<String> {
    plan.runs.iter().map(|r| r.id.clone()).collect()
}

#[test]
fn product_in_axis_order_with_default_seed() {
    let plan = plan_of(BASE);
    assert_eq!(plan.runs.len(), 12);
    assert_eq!(plan.axes, ["model", "scheme", "learning_rate", "dataset", "seed"]);
    let first = &plan.runs[0];
    assert_eq!(first.typed.model, "kb");
    assert_eq!(first.params["seed"], crate::spec::ParamValue::Int(42));
    assert_eq!(plan.runs[1].typed.learning_rate, 2e-5);
    assert_eq!(plan.runs[6].typed.model, "mbert");
    assert!(first.id.starts_with("kb-bio-lr1e-5-d-s42-"), "{}", first.id);
    let unique: std::collections::BTreeSet<_> = ids(&plan).into_iter().collect();
    assert_eq!(unique.len(), 12);
}

#[test]
fn equal_floats_written_differently_give_equal_ids() {
    let a = plan_of(&BASE.replace("2e-5", "0.00002"));
    let b = plan_of(&BASE.replace("2e-5", "2.0e-5"));
    assert_eq!(ids(&a), ids(&plan_of(BASE)));
    assert_eq!(ids(&a), ids(&b));
}

#[test]
fn reordering_keys_or_values_changes_no_id() {
    let reordered = BASE.replace("schemes = [\"BIO\", \"BIOES\"]", "schemes = [\"BIOES\", \"BIO\"]").replace(
        "learning_rates = [1e-5, 2e-5, 5e-5]\ndatasets = [\"d\"]",
        "datasets = [\"d\"]\nlearning_rates = [5e-5, 1e-5, 2e-5]",
    );
    let mut a = ids(&plan_of(BASE));
    let mut b = ids(&plan_of(&reordered));
    assert_ne!(a, b, "order of runs follows the TOML");
    a.sort();
    b.sort();
    assert_eq!(a, b);
}

#[test]
fn adding_a_value_keeps_existing_ids() {
    let before = ids(&plan_of(BASE));
    let after = ids(&plan_of(&BASE.replace("5e-5]", "5e-5, 1e-4]")));
    assert_eq!(after.len(), 16);
    assert!(before.iter().all(|id| after.contains(id)));
}

#[test]
fn scheme_aliases_are_the_same_run() {
    assert_eq!(ids(&plan_of(BASE)), ids(&plan_of(&BASE.replace("\"BIOES\"]", "\"IOBES\"]"))));
}

#[test]
fn save_model_does_not_change_ids_but_epochs_do() {
    let base = ids(&plan_of(BASE));
    assert_eq!(base, ids(&plan_of(&format!("{BASE}\n[train]\nsave_model = true\n"))));
    assert_ne!(base, ids(&plan_of(&format!("{BASE}\n[train]\nepochs = 3\n"))));
}

#[test]
fn precision_at_its_default_keeps_earlier_ids_and_bf16_gets_its_own() {
    let base = ids(&plan_of(BASE));
    assert_eq!(base, ids(&plan_of(&format!("{BASE}\n[train]\nprecision = \"fp32\"\n"))));
    let bf16 = ids(&plan_of(&format!("{BASE}\n[train]\nprecision = \"bf16\"\n")));
    assert!(bf16.iter().all(|id| !base.contains(id)), "{bf16:?}");
    // As an axis, each precision is a run of its own; the slug names it.
    let axis = plan_of(&BASE.replace("datasets = [\"d\"]", "datasets = [\"d\"]\nprecision = [\"fp32\", \"bf16\"]"));
    assert_eq!(axis.runs.len(), 2 * base.len());
    assert!(axis.runs.iter().any(|r| r.id.contains("-precbf16-")), "{:?}", ids(&axis));
}

#[test]
fn changing_a_model_source_changes_its_ids_only() {
    let a = plan_of(BASE);
    let b = plan_of(&BASE.replace("KB/bert-base-swedish-cased", "KB/other"));
    for (x, y) in a.runs.iter().zip(&b.runs) {
        assert_eq!(x.id == y.id, x.typed.model == "mbert");
    }
}

#[test]
fn exclude_and_include() {
    let text = BASE.replace(
        "datasets = [\"d\"]\n",
        "datasets = [\"d\"]\nexclude = [{ model = \"mbert\", scheme = \"BIOES\" }]\ninclude = [{ model = \"mbert\", scheme = \"BIOES\", learning_rate = 3e-5, epochs = 2 }]\n",
    );
    let plan = plan_of(&text);
    assert_eq!(plan.runs.len(), 12 - 3 + 1);
    let extra = plan.runs.last().unwrap();
    assert_eq!(extra.typed.learning_rate, 3e-5);
    assert_eq!(extra.typed.train.epochs, 2);
    assert_eq!(extra.index, 9);
    assert!(!plan.runs[..9].iter().any(|r| r.typed.model == "mbert" && r.typed.scheme == "BIOES"));
}

#[test]
fn include_duplicating_a_product_run_adds_nothing() {
    let text = BASE.replace("datasets = [\"d\"]\n", "datasets = [\"d\"]\ninclude = [{ model = \"kb\" }]\n");
    assert_eq!(ids(&plan_of(&text)), ids(&plan_of(BASE)));
}

#[test]
fn training_parameter_axes() {
    let text = BASE.replace("datasets = [\"d\"]\n", "datasets = [\"d\"]\nepochs = [3, 5]\nseeds = [1, 2]\n");
    let plan = plan_of(&text);
    assert_eq!(plan.runs.len(), 48);
    assert_eq!(plan.axes, ["model", "scheme", "learning_rate", "dataset", "epochs", "seed"]);
    assert!(plan.runs[0].id.starts_with("kb-bio-lr1e-5-d-ep3-s1-"));
}

#[test]
fn shard_and_index_selection() {
    let plan = plan_of(BASE);
    let shard: Vec<usize> = select(&plan, &[], Some((2, 4))).unwrap().iter().map(|r| r.index).collect();
    assert_eq!(shard, [1, 5, 9]);
    let all: usize = (1..=4).map(|k| select(&plan, &[], Some((k, 4))).unwrap().len()).sum();
    assert_eq!(all, 12);
    let picked: Vec<usize> = select(&plan, &[3, 0], None).unwrap().iter().map(|r| r.index).collect();
    assert_eq!(picked, [0, 3]);
    assert!(select(&plan, &[12], None).is_err());
    assert_eq!(parse_shard("2/4"), Ok((2, 4)));
    assert!(parse_shard("0/4").is_err());
    assert!(parse_shard("5/4").is_err());
}

#[test]
fn hashing_is_stable_across_machines() {
    // Pinned: a change here changes every stored run id.
    let mut canonical = BTreeMap::new();
    canonical.insert("learning_rate".to_string(), "2e-5".to_string());
    assert_eq!(params_hash(&canonical), {
        use sha2::{Digest, Sha256};
        let d = Sha256::digest(b"learning_rate=2e-5\n");
        d[..4].iter().map(|b| format!("{b:02x}")).collect::<String>()
    });
}

#[test]
fn a_folded_dataset_adds_a_fold_axis_before_seed() {
    let folded =
        BASE.replace("path = \"d.jsonl\"", "path = \"d.jsonl\"\nsplit = { folds = 3, validation = 0.1, seed = 1 }");
    let plan = plan_of(&folded);
    assert_eq!(plan.axes, ["model", "scheme", "learning_rate", "dataset", "fold", "seed"]);
    assert_eq!(plan.runs.len(), 36);
    let folds: Vec<i64> = plan.runs[..3].iter().map(|r| r.params["fold"].as_i64().unwrap()).collect();
    assert_eq!(folds, [0, 1, 2]);
    assert!(plan.runs[2].id.starts_with("kb-bio-lr1e-5-d-f2-s42-"), "{}", plan.runs[2].id);
}

#[test]
fn folds_apply_only_to_the_datasets_that_have_them() {
    let two = BASE.replace("datasets = [\"d\"]", "datasets = [\"d\", \"k\"]").replace(
        "[grid]",
        "[datasets.k]\nformat = \"jsonl\"\npath = \"k.jsonl\"\nsplit = { folds = 2, seed = 1 }\n\n[grid]",
    );
    let plan = plan_of(&two);
    assert_eq!(plan.runs.len(), 12 + 24);
    let plain: Vec<&RunSpec> = plan.runs.iter().filter(|r| r.typed.dataset == "d").collect();
    assert!(plain.iter().all(|r| !r.params.contains_key("fold")));
    // The plain dataset's runs keep the ids they have in a grid without folds.
    let before = ids(&plan_of(BASE));
    assert!(plain.iter().all(|r| before.contains(&r.id)));
}

#[test]
fn added_train_keys_change_ids_only_away_from_their_defaults() {
    let base = ids(&plan_of(BASE));
    let defaults = "\n[train]\nearly_stopping_patience = 0\nearly_stopping_threshold = 0.0\ntrain_fraction = 1.0\n";
    assert_eq!(ids(&plan_of(&format!("{BASE}{defaults}"))), base);
    let patient = ids(&plan_of(&format!("{BASE}\n[train]\nearly_stopping_patience = 2\n")));
    assert!(patient.iter().all(|id| !base.contains(id)));
    let curve = plan_of(&BASE.replace("datasets = [\"d\"]", "datasets = [\"d\"]\ntrain_fraction = [0.5, 1.0]"));
    assert_eq!(curve.runs.len(), 24);
    let whole: Vec<&RunSpec> = curve.runs.iter().filter(|r| r.typed.train.train_fraction == 1.0).collect();
    // The hash of a whole-split run is the plain run's; only the slug names the fraction.
    let hash = |id: &str| id.rsplit('-').next().unwrap().to_string();
    let base_hashes: Vec<String> = base.iter().map(|id| hash(id)).collect();
    assert!(whole.iter().all(|r| base_hashes.contains(&hash(&r.id)) && r.id.contains("-tf1.0-")));
}
