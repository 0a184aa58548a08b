//! The data audit per dataset, from what the runs recorded in `details`: audit warnings
//! (`details.audit`: a list of `{kind, message}`), entities lost to truncation (runs that cut
//! long sentences into windows with a `stride` listed apart), and how many distinct split
//! manifests (`details.split.sha256`) the runs saw.

use std::collections::BTreeSet;

use super::frames::param_text;
use crate::store::RunResult;

/// One audit warning and how many runs of the dataset recorded it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct AuditWarning {
    pub kind: String,
    pub message: String,
    pub runs: usize,
}

/// What the runs of one dataset recorded about its data.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct DatasetAudit {
    pub dataset: String,
    pub runs: usize,
    /// Runs that carry a `details.audit` list (possibly empty).
    pub audited: usize,
    pub warnings: Vec<AuditWarning>,
    /// Per model (and stride, for runs with windows), the most entities any run lost to
    /// truncation, per split (runs that recorded it).
    pub truncation: Vec<(String, Vec<(String, u64)>)>,
    /// Distinct split manifest hashes, when any run recorded one.
    pub split_manifests: Option<usize>,
}

/// Audits of every dataset, in plan order; failed runs count too (the audit precedes training).
pub(crate) fn audits(results: &[RunResult]) -> Vec<DatasetAudit> {
    let mut datasets: Vec<String> = Vec::new();
    for r in results {
        let d = param_text(r, "dataset");
        if !datasets.contains(&d) {
            datasets.push(d);
        }
    }
    datasets
        .into_iter()
        .map(|d| {
            let runs: Vec<&RunResult> = results.iter().filter(|r| param_text(r, "dataset") == d).collect();
            audit(d, &runs)
        })
        .collect()
}

fn audit(dataset: String, runs: &[&RunResult]) -> DatasetAudit {
    let mut warnings: Vec<AuditWarning> = Vec::new();
    let mut audited = 0;
    for r in runs {
        let Some(list) = r.details.get("audit").and_then(|a| a.as_array()) else { continue };
        audited += 1;
        let distinct: BTreeSet<(String, String)> = list.iter().map(warning_parts).collect();
        for (kind, message) in distinct {
            match warnings.iter_mut().find(|w| w.kind == kind && w.message == message) {
                Some(w) => w.runs += 1,
                None => warnings.push(AuditWarning { kind, message, runs: 1 }),
            }
        }
    }
    let hashes: BTreeSet<String> = runs
        .iter()
        .filter_map(|r| r.details.get("split").and_then(|s| s.get("sha256")).map(|h| h.to_string()))
        .collect();
    DatasetAudit {
        dataset,
        runs: runs.len(),
        audited,
        warnings,
        truncation: truncation(runs),
        split_manifests: (!hashes.is_empty()).then_some(hashes.len()),
    }
}

/// `{kind, message}`, or a bare string as a message without kind.
fn warning_parts(w: &serde_json::Value) -> (String, String) {
    let text = |key: &str| w.get(key).and_then(|v| v.as_str()).unwrap_or_default().to_string();
    match w.as_str() {
        Some(s) => (String::new(), s.to_string()),
        None => (text("kind"), text("message")),
    }
}

/// Per model, the most entities any run lost per split. The trainer records an object
/// (`{train, validation, test, test_words}`); a bare number counts as `total`.
fn truncation(runs: &[&RunResult]) -> Vec<(String, Vec<(String, u64)>)> {
    let mut out: Vec<(String, Vec<(String, u64)>)> = Vec::new();
    for r in runs {
        let Some(lost) = r.details.get("entities_lost_to_truncation").map(loss_parts) else { continue };
        let model = match r.params.get("stride").and_then(|v| v.as_i64()) {
            Some(stride) if stride > 0 => format!("{} (windows, stride {stride})", param_text(r, "model")),
            _ => param_text(r, "model"),
        };
        let most = match out.iter_mut().find(|(m, _)| *m == model) {
            Some((_, most)) => most,
            None => {
                out.push((model, Vec::new()));
                &mut out.last_mut().expect("just pushed").1
            }
        };
        for (key, n) in lost {
            match most.iter_mut().find(|(k, _)| *k == key) {
                Some((_, m)) => *m = (*m).max(n),
                None => most.push((key, n)),
            }
        }
    }
    out
}

/// Named counts of a truncation record, splits first in pipeline order.
fn loss_parts(v: &serde_json::Value) -> Vec<(String, u64)> {
    if let Some(n) = v.as_u64() {
        return vec![("total".into(), n)];
    }
    let Some(map) = v.as_object() else { return Vec::new() };
    let order = ["train", "validation", "test", "test_words"];
    let rank = |k: &String| order.iter().position(|o| o == k).unwrap_or(order.len());
    let mut parts: Vec<(String, u64)> = map.iter().filter_map(|(k, n)| n.as_u64().map(|n| (k.clone(), n))).collect();
    parts.sort_by_key(|(k, _)| rank(k));
    parts
}

/// The audit as Markdown: one subsection per dataset.
pub(crate) fn markdown(audits: &[DatasetAudit]) -> String {
    let mut md = String::new();
    for a in audits {
        md.push_str(&format!("### Dataset `{}` ({} runs)\n\n", a.dataset, a.runs));
        if a.audited == 0 {
            md.push_str("- audit warnings: none recorded (no run stored `details.audit`)\n");
        } else if a.warnings.is_empty() {
            md.push_str(&format!("- audit warnings: none ({} of {} runs audited)\n", a.audited, a.runs));
        }
        for w in &a.warnings {
            let kind = if w.kind.is_empty() { String::new() } else { format!("**{}**: ", w.kind) };
            md.push_str(&format!("- {kind}{} ({} of {} runs)\n", w.message, w.runs, a.runs));
        }
        if !a.truncation.is_empty() {
            md.push_str("- entities lost to truncation (most in one run):");
            for (model, parts) in &a.truncation {
                let parts: Vec<String> = parts.iter().map(|(k, n)| format!("{k} {n}")).collect();
                md.push_str(&format!(" {model}: {};", parts.join(", ")));
            }
            md.pop();
            md.push('\n');
        }
        if let Some(n) = a.split_manifests {
            let note = if n == 1 { "every run saw the same split" } else { "runs saw different splits" };
            md.push_str(&format!("- split manifests: {n} distinct sha256 ({note})\n"));
        }
        md.push('\n');
    }
    md
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{RunStatus, Timings, ToolInfo};

    fn run(dataset: &str, model: &str, details: serde_json::Value) -> RunResult {
        RunResult {
            id: format!("{model}-{dataset}"),
            index: 0,
            experiment: "x".into(),
            status: RunStatus::Done,
            dry_run: false,
            params: [("dataset".to_string(), dataset.into()), ("model".to_string(), model.into())].into(),
            test: None,
            validation: None,
            best_epoch: None,
            report: Default::default(),
            errors: None,
            timings: Timings::default(),
            device: "cpu".into(),
            host: "h".into(),
            attempt: 1,
            tool: ToolInfo::current(),
            error: vec![],
            details: details.as_object().cloned().unwrap_or_default(),
        }
    }

    #[test]
    fn warnings_are_merged_per_dataset_and_counted() {
        let leak = serde_json::json!({"kind": "leakage", "message": "brackets in text"});
        let runs = vec![
            run("hub", "a", serde_json::json!({"audit": [leak], "entities_lost_to_truncation": 2})),
            run("hub", "b", serde_json::json!({"audit": [leak, leak], "entities_lost_to_truncation": 5})),
            run("hub", "a", serde_json::json!({"audit": [], "entities_lost_to_truncation": 4})),
            run(
                "hub",
                "c",
                serde_json::json!({"entities_lost_to_truncation": {"test": 3, "train": 7, "test_words": 9}}),
            ),
            run(
                "hub",
                "c",
                serde_json::json!({"entities_lost_to_truncation": {"test": 1, "train": 8, "test_words": 9}}),
            ),
            run("clean", "a", serde_json::json!({"audit": []})),
            {
                let lost = serde_json::json!({"entities_lost_to_truncation": {"test": 0, "train": 0, "test_words": 0}});
                let mut windowed = run("clean", "a", lost);
                windowed.params.insert("stride".into(), 32.into());
                windowed
            },
            run("other", "a", serde_json::json!({})),
        ];
        let got = audits(&runs);
        assert_eq!(got.iter().map(|a| a.dataset.as_str()).collect::<Vec<_>>(), ["hub", "clean", "other"]);
        assert_eq!(
            got[0].warnings,
            [AuditWarning { kind: "leakage".into(), message: "brackets in text".into(), runs: 2 }]
        );
        let parts = |p: &[(&str, u64)]| p.iter().map(|(k, n)| (k.to_string(), *n)).collect::<Vec<_>>();
        assert_eq!(
            got[0].truncation[..2],
            [("a".to_string(), parts(&[("total", 4)])), ("b".to_string(), parts(&[("total", 5)]))]
        );
        assert_eq!(got[0].truncation[2].1, parts(&[("train", 8), ("test", 3), ("test_words", 9)]));
        let md = markdown(&got);
        assert!(md.contains("- **leakage**: brackets in text (2 of 5 runs)"), "{md}");
        assert!(md.contains("- audit warnings: none (1 of 2 runs audited)"), "{md}");
        assert!(md.contains("(most in one run): a (windows, stride 32): train 0, test 0, test_words 0\n"), "{md}");
        assert!(md.contains("- audit warnings: none recorded"), "{md}");
        assert!(md.contains("(most in one run): a: total 4; b: total 5; c: train 8, test 3, test_words 9\n"), "{md}");
    }
}
