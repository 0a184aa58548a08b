//! Helpers shared by the integration test files (each test file uses some of them).
#![allow(dead_code)]

use std::fs;
use std::path::{Path, PathBuf};

/// Every file below `dir`, recursively.
pub fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = entry.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

/// Whether the tests run in CI (`CI` set to anything but empty, `0` or `false`, as CI services
/// set it).
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "0" && !v.eq_ignore_ascii_case("false"))
}

/// A test cannot get a resource it needs (`why`). In CI that fails the test, so a test that
/// CI claims to run cannot pass by doing nothing; elsewhere it says so on stderr and the caller
/// returns (the test is skipped). Use as `if let Some(why) = .. { common::skip(&why); return; }`.
pub fn skip(why: &str) {
    assert!(!in_ci(), "{why} (required when CI is set)");
    eprintln!("skipped: {why}");
}

/// A model directory of `tests/fixtures` (`relative` to it) as a loader needs it: weights are
/// committed as hex dumps (`model.safetensors.hex`, so no binary checkpoint is in the
/// repository), decoded here once per test process into a copy under cargo's temporary
/// directory for integration tests. Returns the copy's path.
pub fn fixture_model(relative: &str) -> PathBuf {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _guard = LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(relative);
    let target = Path::new(env!("CARGO_TARGET_TMPDIR")).join("fixture_models").join(relative);
    let ready = target.join(".decoded");
    if ready.is_file() {
        return target;
    }
    let staging = target.with_extension(format!("part-{}", std::process::id()));
    let _ = fs::remove_dir_all(&staging);
    fs::create_dir_all(&staging).unwrap();
    for entry in fs::read_dir(&source).unwrap_or_else(|e| panic!("{}: {e}", source.display())) {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        match name.strip_suffix(".hex") {
            Some(decoded) => fs::write(staging.join(decoded), decode_hex(&fs::read_to_string(&path).unwrap())).unwrap(),
            None if path.is_file() => {
                fs::copy(&path, staging.join(&name)).unwrap();
            }
            None => {}
        }
    }
    fs::write(staging.join(".decoded"), "").unwrap();
    let _ = fs::remove_dir_all(&target);
    fs::create_dir_all(target.parent().unwrap()).unwrap();
    fs::rename(&staging, &target).unwrap();
    target
}

/// Bytes of a hex dump (`xxd -p`: pairs of hex digits, whitespace ignored).
pub fn decode_hex(text: &str) -> Vec<u8> {
    let hex: Vec<u8> = text.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
    assert!(hex.len() & 1 == 0, "a hex dump has an odd number of digits");
    hex.chunks(2).map(|p| u8::from_str_radix(std::str::from_utf8(p).unwrap(), 16).unwrap()).collect()
}

/// Exact two-sided sign-flip p-value over the 2ⁿ sign vectors: the oracle the tests check the
/// report's p-values against (written here independently of `stats`).
pub fn sign_flip(d: &[f64]) -> f64 {
    let observed = d.iter().sum::<f64>().abs();
    let total = 1usize << d.len();
    let hits = (0..total)
        .filter(|mask| {
            let s: f64 = d.iter().enumerate().map(|(i, x)| if mask & (1 << i) != 0 { -x } else { *x }).sum();
            s.abs() >= observed - 1e-12
        })
        .count();
    hits as f64 / total as f64
}

/// The tag lists of a golden case's `y_true` or `y_pred` (seqeval and nervaluate fixtures).
pub fn tag_lists(value: &serde_json::Value) -> Vec<Vec<String>> {
    serde_json::from_value(value.clone()).expect("a list of lists of tags")
}

/// A golden case as the two-column file `nergrid eval` reads: one token per line (`word gold
/// predicted`), a blank line after each sentence. An empty sentence leaves only its blank line
/// (it holds no entity, so the scores are the same).
pub fn conll_text(case: &serde_json::Value) -> String {
    let (gold, predicted) = (tag_lists(&case["y_true"]), tag_lists(&case["y_pred"]));
    let mut text = String::new();
    for (g, p) in gold.iter().zip(&predicted) {
        for (i, (g, p)) in g.iter().zip(p).enumerate() {
            text.push_str(&format!("w{i} {g} {p}\n"));
        }
        text.push('\n');
    }
    text
}
