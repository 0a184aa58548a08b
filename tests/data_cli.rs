//! `nergrid data …` driven through the binary on real data and on malformed files.

use std::path::{Path, PathBuf};

use assert_cmd::Command;
use serde_json::Value;

fn shared() -> PathBuf {
    std::env::var_os("NERGRID_SHARED")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared"))
}

fn swedish(name: &str) -> String {
    shared().join("data/swedish-medical-ner").join(name).display().to_string()
}

struct Outcome {
    code: i32,
    stdout: String,
    stderr: String,
}

fn nergrid(args: &[&str], env: &[(&str, &str)]) -> Outcome {
    let mut command = Command::cargo_bin("nergrid").unwrap();
    command.args(args);
    for (key, value) in env {
        command.env(key, value);
    }
    let output = command.output().unwrap();
    Outcome {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

fn json_of(outcome: &Outcome) -> Value {
    assert_eq!(outcome.code, 0, "stderr: {}", outcome.stderr);
    serde_json::from_str(&outcome.stdout).unwrap()
}

fn indices(value: &Value) -> Vec<u64> {
    value.as_array().unwrap().iter().map(|v| v.as_u64().unwrap()).collect()
}

fn split_fixture(id: &str) -> Value {
    let text = std::fs::read_to_string(shared().join("fixtures/hf_split_cases.jsonl")).unwrap();
    let line = text.lines().find(|l| l.contains(&format!("\"id\": \"{id}\""))).unwrap();
    serde_json::from_str(line).unwrap()
}

const STUDY_SPLIT: [&str; 6] = ["--test-size", "0.2", "--validation-size", "0.1", "--seed", "67"];

#[test]
fn split_of_the_hub_table_equals_the_python_pipeline() {
    let hub = swedish("1177-hub.parquet");
    let mut args = vec!["data", "split", hub.as_str()];
    args.extend(STUDY_SPLIT);
    args.extend(["--format", "json"]);
    let split = json_of(&nergrid(&args, &[]));
    let (train, validation, test) = (indices(&split["train"]), indices(&split["validation"]), indices(&split["test"]));
    assert_eq!((train.len(), validation.len(), test.len()), (666, 75, 186));
    let first = split_fixture("split-n927-s67-t0.2");
    let second = split_fixture("split-n741-s67-t0.1");
    assert_eq!(test, indices(&first["test"]));
    let first_train = indices(&first["train"]);
    let mapped: Vec<u64> = indices(&second["test"]).iter().map(|&i| first_train[i as usize]).collect();
    assert_eq!(validation, mapped);
}

#[test]
fn split_without_a_rule_or_own_splits_is_a_usage_error() {
    let hub = swedish("1177-hub.parquet");
    let outcome = nergrid(&["data", "split", &hub], &[]);
    assert_eq!(outcome.code, 2);
    assert!(outcome.stderr.contains("no splits of its own"), "{}", outcome.stderr);
    let outcome = nergrid(&["data", "split", &hub, "--test-size", "0.2"], &[]);
    assert_eq!(outcome.code, 2);
    assert!(outcome.stderr.contains("--seed is required"), "{}", outcome.stderr);
}

fn boundary_tokens(inspection: &Value) -> Vec<String> {
    let cues = inspection["audit"]["boundary_cues"].as_array().unwrap();
    cues.iter().map(|c| c["token"].as_str().unwrap().to_string()).collect()
}

fn warning_kinds(inspection: &Value) -> Vec<String> {
    let warnings = inspection["audit"]["warnings"].as_array().unwrap();
    warnings.iter().map(|w| w["kind"].as_str().unwrap().to_string()).collect()
}

#[test]
fn leakage_audit_flags_the_hub_table_and_not_the_original_file() {
    let hub = swedish("1177-hub.parquet");
    let mut args = vec!["data", "inspect", hub.as_str(), "--format", "json"];
    args.extend(STUDY_SPLIT);
    let inspection = json_of(&nergrid(&args, &[]));
    assert_eq!(inspection["sentences"], 927);
    let tokens = boundary_tokens(&inspection);
    for bracket in ["(", "[", "{"] {
        assert!(tokens.contains(&bracket.to_string()), "{bracket} not flagged: {tokens:?}");
    }
    assert!(warning_kinds(&inspection).contains(&"boundary_token".to_string()));

    let original = swedish("1177_annotated_sentences.txt");
    let mut args = vec!["data", "inspect", original.as_str(), "--input-format", "brackets", "--format", "json"];
    args.extend(STUDY_SPLIT);
    let inspection = json_of(&nergrid(&args, &[]));
    assert_eq!((inspection["sentences"].as_u64(), inspection["entities"].as_u64()), (Some(927), Some(1138)));
    assert_eq!(boundary_tokens(&inspection), Vec::<String>::new());
    assert!(!warning_kinds(&inspection).contains(&"boundary_token".to_string()));
}

#[test]
fn inspect_text_names_the_leaking_brackets() {
    let hub = swedish("1177-hub.parquet");
    let outcome = nergrid(&["data", "inspect", &hub], &[]);
    assert_eq!(outcome.code, 0, "{}", outcome.stderr);
    assert!(
        outcome.stdout.contains("[boundary_token] token \"[\" is the first word of 425 of 425"),
        "{}",
        outcome.stdout
    );
}

fn write(dir: &Path, name: &str, content: &[u8]) -> String {
    let path = dir.join(name);
    std::fs::write(&path, content).unwrap();
    path.display().to_string()
}

#[test]
fn labels_of_a_span_jsonl_file_follow_the_notebook() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(
        dir.path(),
        "s.jsonl",
        "{\"text\": \"Smärta i vänster knä.\", \"entities\": [{\"start\": 9, \"end\": 20, \"type\": \"BODY\"}]}\n\
         {\"text\": \"abc def\", \"entities\": [{\"start\": 0, \"end\": 2, \"type\": \"PER\"}, {\"start\": 2, \"end\": 5, \"type\": \"LOC\"}]}\n"
            .as_bytes(),
    );
    let outcome = nergrid(&["data", "labels", &file, "--scheme", "bilou", "--format", "jsonl"], &[]);
    assert_eq!(outcome.code, 0, "{}", outcome.stderr);
    let expected = concat!(
        r#"{"index":0,"words":["Smärta","i","vänster","knä."],"labels":["O","O","B-BODY","E-BODY"]}"#,
        "\n",
        r#"{"index":1,"words":["abc","def"],"labels":["B-LOC","E-LOC"]}"#,
        "\n"
    );
    assert_eq!(outcome.stdout, expected);
}

#[test]
fn hub_dataset_is_read_offline_from_hf_home() {
    let home = tempfile::tempdir().unwrap();
    let repo = home.path().join("hub/datasets--community-datasets--swedish_medical_ner");
    let commit = "637834ee9f899513f6d1382b8057c03a724f2fc8";
    std::fs::create_dir_all(repo.join("refs")).unwrap();
    std::fs::write(repo.join("refs/main"), commit).unwrap();
    let config_dir = repo.join("snapshots").join(commit).join("1177");
    std::fs::create_dir_all(&config_dir).unwrap();
    std::fs::copy(swedish("1177-hub.parquet"), config_dir.join("train-00000-of-00001.parquet")).unwrap();
    let home_str = home.path().display().to_string();
    let env = [("HF_HOME", home_str.as_str()), ("HF_HUB_OFFLINE", "1"), ("HF_ENDPOINT", "http://127.0.0.1:9")];
    let mut args = vec!["data", "split", "hf://datasets/community-datasets/swedish_medical_ner/1177"];
    args.extend(STUDY_SPLIT);
    let from_hub = json_of(&nergrid(&args, &env));
    let file = swedish("1177-hub.parquet");
    args[2] = &file;
    assert_eq!(from_hub, json_of(&nergrid(&args, &[])));
    args[2] = "hf://datasets/community-datasets/swedish_medical_ner/1177@v2";
    let missing = nergrid(&args, &env);
    assert_eq!(missing.code, 2);
    assert!(missing.stderr.contains("revision v2 is not in the cache"), "{}", missing.stderr);
}

#[test]
fn fertility_is_reported_for_a_tokenizer() {
    // The second tokenizer pads to 16 and truncates to 4 (as MiniLM's file pads to 128):
    // fertility counts the words' sub-words, not the padded or truncated encoding.
    let padded = r#""truncation": {"direction": "Right", "max_length": 4, "strategy": "LongestFirst", "stride": 0},
        "padding": {"strategy": {"Fixed": 16}, "direction": "Right", "pad_to_multiple_of": null,
                    "pad_id": 0, "pad_type_id": 0, "pad_token": "[UNK]"}"#;
    for settings in [r#""truncation": null, "padding": null"#, padded] {
        let dir = tempfile::tempdir().unwrap();
        let json = format!(
            r###"{{"version": "1.0", {settings}, "added_tokens": [],
            "normalizer": null, "pre_tokenizer": {{"type": "Whitespace"}}, "post_processor": null,
            "decoder": null, "model": {{"type": "WordPiece", "unk_token": "[UNK]",
            "continuing_subword_prefix": "##", "max_input_chars_per_word": 100,
            "vocab": {{"[UNK]": 0, "a": 1, "##b": 2, "##c": 3}}}}}}"###
        );
        let tokenizer = write(dir.path(), "tokenizer.json", json.as_bytes());
        let data = write(dir.path(), "d.jsonl", br#"{"text": "abc a ab", "entities": []}"#);
        let outcome = nergrid(&["data", "inspect", &data, "--tokenizer", &tokenizer, "--format", "json"], &[]);
        let fertility = &json_of(&outcome)["fertility"];
        assert_eq!(fertility["words"], 3, "{settings}");
        assert_eq!(fertility["subwords"], 6, "{settings}");
        assert_eq!(fertility["mean"], 2.0, "{settings}");
        assert_eq!(fertility["max_sentence_subwords"], 6, "{settings}");
    }
}

/// A malformed file: the error names `path:line: field:` and exits 2; skip mode keeps the rest.
fn check_malformed(name: &str, content: &[u8], extra: &[&str], kept: usize) -> String {
    let dir = tempfile::tempdir().unwrap();
    let file = write(dir.path(), name, content);
    let mut args = vec!["data", "labels", file.as_str()];
    args.extend(extra);
    let failed = nergrid(&args, &[]);
    assert_eq!(failed.code, 2, "{}", failed.stderr);
    args.extend(["--on-error", "skip"]);
    let skipped = nergrid(&args, &[]);
    assert_eq!(skipped.code, 0, "{}", skipped.stderr);
    assert_eq!(skipped.stdout.lines().count(), kept);
    assert!(skipped.stderr.starts_with("warning: skipped 1 malformed records"), "{}", skipped.stderr);
    failed.stderr.replace(&dir.path().display().to_string(), "[DIR]")
}

#[test]
fn too_few_columns() {
    let message = check_malformed("c.tsv", b"a\tO\n\nb\tB-X\nc\n\nd\tO\n", &[], 2);
    insta::assert_snapshot!(message, @"error: [DIR]/c.tsv:4: columns: too few columns: needs 2, found 1");
}

#[test]
fn span_past_the_end_of_the_text() {
    let content = b"{\"text\": \"ab\", \"entities\": []}\n{\"text\": \"\xc3\xa5b\", \"entities\": [{\"start\": 0, \"end\": 3, \"type\": \"X\"}]}\n";
    let message = check_malformed("s.jsonl", content, &[], 1);
    insta::assert_snapshot!(message, @"error: [DIR]/s.jsonl:2: entities[0].end: span past the end of the text: offset 3, text has 2 code points");
}

#[test]
fn unknown_entity_type_id() {
    let content = b"{\"text\": \"ab\", \"entities\": [{\"start\": 0, \"end\": 2, \"type\": 0}]}\n{\"text\": \"cd\", \"entities\": []}\n";
    let message = check_malformed("s.jsonl", content, &[], 1);
    insta::assert_snapshot!(message, @"error: [DIR]/s.jsonl:1: entities[0].type: unknown entity type id 0: no type_names are given");
}

#[test]
fn unclosed_bracket() {
    let content = "( Förstoppning ) är vanligt\n[ Alvedon mot { huvud }\n".as_bytes();
    let message = check_malformed("b.txt", content, &["--input-format", "brackets"], 1);
    insta::assert_snapshot!(message, @r#"error: [DIR]/b.txt:2: brackets: bracket "{" at word 4 opens inside another entity (nesting is not supported)"#);
    let content = "( Förstoppning ) är vanligt\n[ Alvedon mot huvud\n".as_bytes();
    let message = check_malformed("b.txt", content, &["--input-format", "brackets"], 1);
    insta::assert_snapshot!(message, @r#"error: [DIR]/b.txt:2: brackets: unclosed bracket "[" opened at word 1"#);
}

#[test]
fn invalid_utf8() {
    let message = check_malformed("c.conll", b"a\tO\n\nb\xff\tO\n", &[], 1);
    insta::assert_snapshot!(message, @"error: [DIR]/c.conll:3: encoding: invalid UTF-8 at byte 2 of the line");
}
