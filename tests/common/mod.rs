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
