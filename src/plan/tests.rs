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
    assert_eq!(first.str_param("model"), "kb");
    assert_eq!(first.params["seed"], crate::spec::ParamValue::Int(42));
    assert_eq!(plan.runs[1].f64_param("learning_rate"), 2e-5);
    assert_eq!(plan.runs[6].str_param("model"), "mbert");
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
    assert!(axis.runs.iter().any(|r| r.id.contains("-bf16-")), "{:?}", ids(&axis));
}

#[test]
fn changing_a_model_source_changes_its_ids_only() {
    let a = plan_of(BASE);
    let b = plan_of(&BASE.replace("KB/bert-base-swedish-cased", "KB/other"));
    for (x, y) in a.runs.iter().zip(&b.runs) {
        assert_eq!(x.id == y.id, x.str_param("model") == "mbert");
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
    assert_eq!(extra.f64_param("learning_rate"), 3e-5);
    assert_eq!(extra.usize_param("epochs"), 2);
    assert_eq!(extra.index, 9);
    assert!(!plan.runs[..9].iter().any(|r| r.str_param("model") == "mbert" && r.str_param("scheme") == "BIOES"));
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
