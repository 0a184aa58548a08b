//! `nergrid report` on a fixture store with known scores and predictions: every number of the
//! study tables is recomputed here, independently of `nergrid::stats`, from the files written.

mod common;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fs;
use std::path::Path;

use assert_cmd::Command;
use nergrid::metrics::error_analysis;
use nergrid::store::{ClassScores, EpochRow, RunResult, RunStatus, Scores, Store, Timings, ToolInfo};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

const MODELS: [&str; 2] = ["m1", "m2"];
const SCHEMES: [&str; 2] = ["BIO", "BIOES"];
const RATES: [(f64, &str); 2] = [(1e-5, "1e-5"), (3e-5, "3e-5")];
const SEEDS: [i64; 3] = [1, 2, 3];
/// This run fails: its cell and comparisons have 2 seeds.
const FAILED: (&str, &str, &str, i64) = ("m2", "BIOES", "3e-5", 3);
/// This run stores no error analysis: its cell has 2 of 3 analysed and its scheme comparison
/// 2 pairs.
const PREDATES_ERRORS: (&str, &str, &str, i64) = ("m1", "BIOES", "1e-5", 2);
/// t(0.975, 2), from its closed form (2p − 1) / √(2p(1 − p)).
fn t_975_df2() -> f64 {
    0.95 / (2.0 * 0.975 * 0.025_f64).sqrt()
}

/// The test set in BIO: (word, tag) per sentence.
fn gold_bio() -> Vec<Vec<(&'static str, &'static str)>> {
    vec![
        vec![("John", "B-PER"), ("lives", "O"), ("in", "O"), ("Paris", "B-LOC")],
        vec![("Anna", "B-PER"), ("Berg", "I-PER"), ("visited", "O"), ("New", "B-LOC"), ("York", "I-LOC")],
        vec![("nothing", "O"), ("here", "O")],
        vec![("Oslo", "B-LOC"), ("and", "O"), ("Bergen", "B-LOC")],
        vec![("Maria", "B-PER"), ("met", "O"), ("Olof", "B-PER"), ("Palme", "I-PER")],
        vec![("Lund", "B-LOC")],
        vec![("Per", "B-PER"), ("Ek", "I-PER"), ("from", "O"), ("Umeå", "B-LOC")],
        vec![("they", "O"), ("left", "O"), ("Sweden", "B-LOC"), (".", "O")],
    ]
}

/// Well-formed BIO to BIOES.
fn to_bioes(tags: &[String]) -> Vec<String> {
    (0..tags.len())
        .map(|i| {
            let t = &tags[i];
            let continues = tags.get(i + 1).is_some_and(|n| n.starts_with("I-"));
            match (t.split_once('-'), continues) {
                (Some(("B", k)), false) => format!("S-{k}"),
                (Some(("I", k)), false) => format!("E-{k}"),
                _ => t.clone(),
            }
        })
        .collect()
}

/// Entities of well-formed BIO or BIOES tags: (type, start, end).
fn entities(tags: &[String]) -> BTreeSet<(String, usize, usize)> {
    let mut out = BTreeSet::new();
    let mut open: Option<(String, usize)> = None;
    for (i, t) in tags.iter().enumerate() {
        let (prefix, kind) = t.split_once('-').unwrap_or((t.as_str(), ""));
        let ends_here = |out: &mut BTreeSet<_>, open: &mut Option<(String, usize)>, end: usize| {
            if let Some((k, s)) = open.take() {
                out.insert((k, s, end));
            }
        };
        match prefix {
            "B" => {
                ends_here(&mut out, &mut open, i.wrapping_sub(1));
                open = Some((kind.to_string(), i));
            }
            "S" => {
                ends_here(&mut out, &mut open, i.wrapping_sub(1));
                out.insert((kind.to_string(), i, i));
            }
            "E" => ends_here(&mut out, &mut open, i),
            "O" => ends_here(&mut out, &mut open, i.wrapping_sub(1)),
            _ => {}
        }
    }
    if let Some((k, s)) = open {
        out.insert((k, s, tags.len() - 1));
    }
    out
}

/// One run's predictions: the gold tags with a few run-specific mistakes.
fn predict(gold: &[String], run: usize, sentence: usize, scheme: &str) -> Vec<String> {
    let mut pred = gold.to_vec();
    let errors = if scheme == "BIO" { 3 } else { 2 };
    match (run * 7 + sentence * 3) % 8 {
        r if r < errors => {
            // Miss the first entity.
            if let Some(i) = pred.iter().position(|t| t != "O") {
                let n = pred.len();
                let end = (i + 1..n).find(|&j| !pred[j].starts_with('I') && !pred[j].starts_with('E')).unwrap_or(n);
                pred[i..end].iter_mut().for_each(|t| *t = "O".into());
            }
        }
        r if r == errors => {
            // Call the last entity the other type.
            if let Some(i) = pred.iter().rposition(|t| t != "O") {
                let swap = |t: &str| if t.ends_with("PER") { t.replace("PER", "LOC") } else { t.replace("LOC", "PER") };
                pred[i] = swap(&pred[i]);
                let mut j = i;
                while j > 0 && !pred[j].starts_with('B') && !pred[j].starts_with('S') && pred[j - 1] != "O" {
                    j -= 1;
                    pred[j] = swap(&pred[j]);
                }
            }
        }
        r if r == 5 && sentence == 2 => {
            // A spurious entity.
            pred[0] = if scheme == "BIO" { "B-LOC".into() } else { "S-LOC".into() };
        }
        _ => {}
    }
    pred
}

/// (correct, predicted, gold) entity counts of one sentence, optionally of one type.
fn counts(gold: &[String], pred: &[String], kind: Option<&str>) -> (f64, f64, f64) {
    let keep = |e: &(String, usize, usize)| kind.is_none_or(|k| e.0 == k);
    let g: BTreeSet<_> = entities(gold).into_iter().filter(keep).collect();
    let p: BTreeSet<_> = entities(pred).into_iter().filter(keep).collect();
    (g.intersection(&p).count() as f64, p.len() as f64, g.len() as f64)
}

fn prf(c: (f64, f64, f64)) -> (f64, f64, f64) {
    let precision = if c.1 > 0.0 { c.0 / c.1 } else { 0.0 };
    let recall = if c.2 > 0.0 { c.0 / c.2 } else { 0.0 };
    let f1 = if precision + recall > 0.0 { 2.0 * precision * recall / (precision + recall) } else { 0.0 };
    (precision, recall, f1)
}

fn sum3(items: impl Iterator<Item = (f64, f64, f64)>) -> (f64, f64, f64) {
    items.fold((0.0, 0.0, 0.0), |a, c| (a.0 + c.0, a.1 + c.1, a.2 + c.2))
}

/// A fixture run: its grid values and the tags it predicted.
#[derive(Clone)]
struct Fixture {
    model: &'static str,
    scheme: &'static str,
    rate: &'static str,
    seed: i64,
    failed: bool,
    gold: Vec<Vec<String>>,
    pred: Vec<Vec<String>>,
    val_f1: f64,
}

impl Fixture {
    fn test(&self) -> (f64, f64, f64) {
        prf(sum3(self.gold.iter().zip(&self.pred).map(|(g, p)| counts(g, p, None))))
    }
    fn test_on(&self, idx: &[usize]) -> f64 {
        prf(sum3(idx.iter().map(|&i| counts(&self.gold[i], &self.pred[i], None)))).2
    }
    /// This run's `result.json` has no `errors`, like one written before they existed: the report
    /// computes them from its `predictions.conll`, so it counts like every other run.
    fn predates_errors(&self) -> bool {
        (self.model, self.scheme, self.rate, self.seed) == PREDATES_ERRORS
    }
    /// Predicted entities with a gold entity's span but another type (the fixture makes no
    /// boundary errors, so these are all the type errors).
    fn type_errors(&self) -> f64 {
        let mut n = 0;
        for (g, p) in self.gold.iter().zip(&self.pred) {
            let gold = entities(g);
            n += entities(p)
                .iter()
                .filter(|(k, s, e)| gold.iter().any(|(gk, gs, ge)| (gs, ge) == (s, e) && gk != k))
                .count();
        }
        n as f64
    }
    fn type_scores(&self, kind: &str) -> (f64, f64, f64, usize) {
        let c = sum3(self.gold.iter().zip(&self.pred).map(|(g, p)| counts(g, p, Some(kind))));
        let (p, r, f) = prf(c);
        (p, r, f, c.2 as usize)
    }
}

/// Validation F1 chosen so that m1/BIO ties, and m2/BIOES prefers 1e-5 on validation while its
/// test F1 is no part of the choice.
fn val_f1(model: &str, scheme: &str, rate: &str, seed: i64) -> f64 {
    if (model, scheme) == ("m1", "BIO") {
        return 0.8;
    }
    let preferred = if (model, scheme) == ("m1", "BIOES") { "3e-5" } else { "1e-5" };
    0.7 + 0.01 * seed as f64 + if rate == preferred { 0.05 } else { 0.0 }
}

fn fixtures() -> Vec<Fixture> {
    let gold_bio: Vec<Vec<String>> =
        gold_bio().iter().map(|s| s.iter().map(|(_, t)| t.to_string()).collect()).collect();
    let mut out = Vec::new();
    for model in MODELS {
        for scheme in SCHEMES {
            for (_, rate) in RATES {
                for seed in SEEDS {
                    let run = out.len();
                    let gold: Vec<Vec<String>> =
                        gold_bio.iter().map(|g| if scheme == "BIO" { g.clone() } else { to_bioes(g) }).collect();
                    let pred = gold.iter().enumerate().map(|(s, g)| predict(g, run, s, scheme)).collect();
                    let failed = (model, scheme, rate, seed) == FAILED;
                    let val_f1 = val_f1(model, scheme, rate, seed);
                    out.push(Fixture { model, scheme, rate, seed, failed, gold, pred, val_f1 });
                }
            }
        }
    }
    out
}

fn result(f: &Fixture, index: usize) -> RunResult {
    let rate = RATES.iter().find(|(_, t)| *t == f.rate).unwrap().0;
    let params = [
        ("model", serde_json::json!(f.model)),
        ("scheme", serde_json::json!(f.scheme)),
        ("learning_rate", serde_json::json!(rate)),
        ("dataset", serde_json::json!("toy")),
        ("seed", serde_json::json!(f.seed)),
        ("epochs", serde_json::json!(3)),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    let (precision, recall, f1) = f.test();
    let mut report = BTreeMap::new();
    for kind in ["LOC", "PER"] {
        let (precision, recall, f1, support) = f.type_scores(kind);
        report.insert(kind.to_string(), ClassScores { precision, recall, f1, support });
    }
    report.insert("micro avg".into(), ClassScores { precision, recall, f1, support: 14 });
    let details = serde_json::json!({
        "audit": [{"kind": "leakage", "message": "brackets survive in the sentence text"}],
        "entities_lost_to_truncation": {"train": 2, "validation": 0, "test": usize::from(f.model == "m2"), "test_words": if f.model == "m2" { 4 } else { 0 }},
        "split": {"train": 10, "validation": 2, "test": 8, "sha256": {"train": "aa", "validation": "bb", "test": "cc"}},
    });
    RunResult {
        id: format!("{}-{}-lr{}-toy-s{}-{index:08x}", f.model, f.scheme.to_lowercase(), f.rate, f.seed),
        index,
        experiment: "fixture".into(),
        status: if f.failed { RunStatus::Failed } else { RunStatus::Done },
        dry_run: false,
        params,
        test: (!f.failed).then_some(Scores { precision, recall, f1, accuracy: 0.9 }),
        validation: (!f.failed).then_some(Scores {
            precision: f.val_f1,
            recall: f.val_f1,
            f1: f.val_f1,
            accuracy: 0.9,
        }),
        best_epoch: (!f.failed).then_some(3),
        report: if f.failed { BTreeMap::new() } else { report },
        // One done run stands for a result written before the error analysis existed.
        errors: (!f.failed && !f.predates_errors()).then(|| error_analysis(&f.gold, &f.pred).unwrap()),
        timings: Timings { seconds: 1.0, ..Timings::default() },
        device: "cpu".into(),
        host: "test".into(),
        attempt: 1,
        tool: ToolInfo::current(),
        error: if f.failed { vec!["training diverged".into()] } else { vec![] },
        details: details.as_object().unwrap().clone(),
    }
}

fn conll(f: &Fixture) -> String {
    let words = gold_bio();
    let mut out = String::new();
    for (s, sentence) in words.iter().enumerate() {
        for (i, (word, _)) in sentence.iter().enumerate() {
            out.push_str(&format!("{word} {} {}\n", f.gold[s][i], f.pred[s][i]));
        }
        out.push('\n');
    }
    out
}

fn write_store(root: &Path) -> Vec<(Fixture, RunResult)> {
    let store = Store::new(root);
    let mut out = Vec::new();
    for (index, f) in fixtures().into_iter().enumerate() {
        let r = result(&f, index);
        if !f.failed {
            let rows: Vec<EpochRow> = (1..=3)
                .map(|epoch| EpochRow {
                    epoch,
                    train_loss: 1.0 / epoch as f64,
                    val_precision: f.val_f1,
                    val_recall: f.val_f1,
                    val_f1: f.val_f1 * epoch as f64 / 3.0,
                    learning_rate: 1e-5,
                    seconds: 1.0,
                    tokens_per_sec: 100.0,
                })
                .collect();
            store.write_epochs(&r.id, &rows).unwrap();
            std::fs::write(store.predictions_path(&r.id), conll(&f)).unwrap();
        }
        store.write_result(&r).unwrap();
        out.push((f, r));
    }
    out
}

/// A CSV as rows of column → text.
fn read_csv(path: &Path) -> (Vec<String>, Vec<HashMap<String, String>>) {
    let mut reader = csv::Reader::from_path(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let header: Vec<String> = reader.headers().unwrap().iter().map(String::from).collect();
    let rows =
        reader.records().map(|r| header.iter().cloned().zip(r.unwrap().iter().map(String::from)).collect()).collect();
    (header, rows)
}

fn num(row: &HashMap<String, String>, key: &str) -> f64 {
    row[key].parse().unwrap_or_else(|e| panic!("{key} = {:?}: {e}", row[key]))
}

fn close(got: f64, want: f64, what: &str) {
    assert!((got - want).abs() < 2e-6, "{what}: report has {got}, expected {want}");
}

fn mean(xs: &[f64]) -> f64 {
    xs.iter().sum::<f64>() / xs.len() as f64
}

fn std(xs: &[f64]) -> f64 {
    let m = mean(xs);
    (xs.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (xs.len() as f64 - 1.0)).sqrt()
}

/// Runs of one cell (model, scheme, rate) that finished.
fn cell<'a>(runs: &'a [(Fixture, RunResult)], model: &str, scheme: &str, rate: &str) -> Vec<&'a Fixture> {
    runs.iter().map(|(f, _)| f).filter(|f| !f.failed && (f.model, f.scheme, f.rate) == (model, scheme, rate)).collect()
}

fn find<'a>(rows: &'a [HashMap<String, String>], want: &[(&str, &str)]) -> &'a HashMap<String, String> {
    let hits: Vec<_> = rows.iter().filter(|r| want.iter().all(|(k, v)| r[*k] == *v)).collect();
    assert_eq!(hits.len(), 1, "rows matching {want:?}");
    hits[0]
}

#[test]
fn report_recomputes_the_study_statistics_from_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("results");
    let runs = write_store(&root);
    let out = Command::cargo_bin("nergrid").unwrap().arg("report").arg(&root).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));

    check_cells(&root, &runs);
    check_lr_selection(&root, &runs);
    check_comparisons(&root, &runs);
    check_per_type(&root, &runs);
    check_study_csv(&root, &runs);
    check_markdown_and_plots(&root);
    check_errors(&root, &runs);

    // Deterministic: a second report writes the same bytes.
    let before: Vec<Vec<u8>> = ["report.md", "comparisons.csv", "plots/test_f1_vs_lr_toy.svg"]
        .iter()
        .map(|f| fs::read(root.join(f)).unwrap())
        .collect();
    Command::cargo_bin("nergrid").unwrap().arg("report").arg(&root).assert().success();
    for (f, bytes) in ["report.md", "comparisons.csv", "plots/test_f1_vs_lr_toy.svg"].iter().zip(before) {
        assert_eq!(fs::read(root.join(f)).unwrap(), bytes, "{f} changed");
    }
}

fn check_cells(root: &Path, runs: &[(Fixture, RunResult)]) {
    let (header, rows) = read_csv(&root.join("cells.csv"));
    assert_eq!(header[..6], ["model", "scheme", "learning_rate", "dataset", "dry_run", "n"]);
    assert!(header.contains(&"test_f1_ci95_high".to_string()) && header.contains(&"val_f1_std".to_string()));
    assert_eq!(rows.len(), 8);
    for model in MODELS {
        for scheme in SCHEMES {
            for (_, rate) in RATES {
                let fs = cell(runs, model, scheme, rate);
                let row = find(&rows, &[("model", model), ("scheme", scheme), ("learning_rate", rate)]);
                let f1: Vec<f64> = fs.iter().map(|f| f.test().2).collect();
                let what = format!("{model}/{scheme}/{rate}");
                assert_eq!(row["n"], fs.len().to_string(), "{what}");
                close(num(row, "test_f1_mean"), mean(&f1), &format!("{what} mean"));
                close(num(row, "test_f1_std"), std(&f1), &format!("{what} std"));
                close(num(row, "test_precision_mean"), mean(&fs.iter().map(|f| f.test().0).collect::<Vec<_>>()), &what);
                close(num(row, "val_f1_mean"), mean(&fs.iter().map(|f| f.val_f1).collect::<Vec<_>>()), &what);
                let t = match f1.len() {
                    3 => t_975_df2(),
                    2 => (std::f64::consts::PI * 0.475).tan(), // t(0.975, 1), the Cauchy quantile
                    n => panic!("{n} seeds"),
                };
                let half = t * std(&f1) / (f1.len() as f64).sqrt();
                close(num(row, "test_f1_ci95_low"), mean(&f1) - half, &format!("{what} ci low"));
                close(num(row, "test_f1_ci95_high"), mean(&f1) + half, &format!("{what} ci high"));
            }
        }
    }
}

fn check_lr_selection(root: &Path, runs: &[(Fixture, RunResult)]) {
    let (header, rows) = read_csv(&root.join("lr_selection.csv"));
    assert_eq!(header[..5], ["model", "scheme", "dataset", "dry_run", "learning_rate"]);
    assert_eq!(rows.len(), 4);
    for model in MODELS {
        for scheme in SCHEMES {
            let val = |rate: &str| mean(&cell(runs, model, scheme, rate).iter().map(|f| f.val_f1).collect::<Vec<_>>());
            // Highest mean validation F1, the first rate on ties.
            let best = RATES.iter().map(|r| r.1).fold("", |b, r| if b.is_empty() || val(r) > val(b) { r } else { b });
            let row = find(&rows, &[("model", model), ("scheme", scheme)]);
            assert_eq!(row["learning_rate"], best, "{model}/{scheme}");
            let test = mean(&cell(runs, model, scheme, best).iter().map(|f| f.test().2).collect::<Vec<_>>());
            close(num(row, "test_f1_mean"), test, &format!("{model}/{scheme} test F1 of the choice"));
            close(num(row, "val_f1_mean"), val(best), &format!("{model}/{scheme} val F1"));
        }
    }
    let tie = find(&rows, &[("model", "m1"), ("scheme", "BIO")]);
    assert_eq!((tie["learning_rate"].as_str(), tie["tied_with"].as_str()), ("1e-5", "3e-5"));
    assert_eq!(find(&rows, &[("model", "m1"), ("scheme", "BIOES")])["learning_rate"], "3e-5");
}

/// The bootstrap as documented: one ChaCha8 stream seeded 67; each of 1000 replicates draws 8
/// sentence indices (all pairs share the test sentences), the statistic is the mean over pairs
/// of F1(A) − F1(B); the interval is numpy's linear 2.5 and 97.5 percentiles.
fn bootstrap(pairs: &[(&Fixture, &Fixture)]) -> (f64, f64) {
    let mut rng = ChaCha8Rng::seed_from_u64(67);
    let n = gold_bio().len();
    let mut diffs: Vec<f64> = (0..1000)
        .map(|_| {
            let idx: Vec<usize> = (0..n).map(|_| rng.random_range(0..n)).collect();
            mean(&pairs.iter().map(|(a, b)| a.test_on(&idx) - b.test_on(&idx)).collect::<Vec<_>>())
        })
        .collect();
    diffs.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let at =
        |h: f64| diffs[h.floor() as usize] + h.fract() * (diffs[h.floor() as usize + 1] - diffs[h.floor() as usize]);
    (at(999.0 * 0.025), at(999.0 * 0.975))
}

fn check_comparisons(root: &Path, runs: &[(Fixture, RunResult)]) {
    let (header, rows) = read_csv(&root.join("comparisons.csv"));
    assert_eq!(header[..3], ["compared", "a", "b"]);
    assert_eq!(rows.len(), 8, "4 scheme comparisons and 4 model comparisons");
    let mut checked_p = 0;
    for row in &rows {
        let (axis, a, b) = (row["compared"].as_str(), row["a"].as_str(), row["b"].as_str());
        let matched = |f: &Fixture, value: &str| {
            let (model, scheme) =
                if axis == "scheme" { (row["model"].as_str(), value) } else { (value, row["scheme"].as_str()) };
            (f.model, f.scheme, f.rate) == (model, scheme, row["learning_rate"].as_str())
        };
        let side_a = runs.iter().map(|(f, _)| f).filter(|f| !f.failed && matched(f, a));
        let pairs: Vec<(&Fixture, &Fixture)> = side_a
            .filter_map(|fa| {
                runs.iter()
                    .map(|(f, _)| f)
                    .find(|fb| !fb.failed && matched(fb, b) && fb.seed == fa.seed)
                    .map(|fb| (fa, fb))
            })
            .collect();
        let what = format!("{axis} {a} vs {b} at {row:?}");
        assert_eq!(row["n_pairs"], pairs.len().to_string(), "{what}");
        let d: Vec<f64> = pairs.iter().map(|(x, y)| x.test().2 - y.test().2).collect();
        close(num(row, "mean_diff_f1"), mean(&d), &what);
        let (low, high) = bootstrap(&pairs);
        close(num(row, "bootstrap_ci95_low"), low, &format!("{what} bootstrap low"));
        close(num(row, "bootstrap_ci95_high"), high, &format!("{what} bootstrap high"));
        assert!(low < high, "{what}: degenerate interval, the fixture should vary");
        if pairs.len() >= 3 {
            close(num(row, "sign_flip_p"), common::sign_flip(&d), &format!("{what} p"));
            checked_p += 1;
        } else {
            assert_eq!(row["sign_flip_p"], "", "{what}");
            assert!(row["note"].contains(&format!("too few seeds (n={})", pairs.len())), "{what}");
        }
    }
    assert_eq!(checked_p, 6);
}

fn check_per_type(root: &Path, runs: &[(Fixture, RunResult)]) {
    let (_, rows) = read_csv(&root.join("per_type.csv"));
    assert_eq!(rows.len(), 16, "8 cells × 2 types");
    for (model, scheme, rate) in [("m1", "BIO", "1e-5"), ("m2", "BIOES", "3e-5")] {
        for kind in ["LOC", "PER"] {
            let fs = cell(runs, model, scheme, rate);
            let row = find(&rows, &[("model", model), ("scheme", scheme), ("learning_rate", rate), ("type", kind)]);
            let scores: Vec<_> = fs.iter().map(|f| f.type_scores(kind)).collect();
            let what = format!("{model}/{scheme}/{rate} {kind}");
            close(num(row, "precision"), mean(&scores.iter().map(|s| s.0).collect::<Vec<_>>()), &what);
            close(num(row, "recall"), mean(&scores.iter().map(|s| s.1).collect::<Vec<_>>()), &what);
            close(num(row, "f1"), mean(&scores.iter().map(|s| s.2).collect::<Vec<_>>()), &what);
            close(num(row, "support"), scores[0].3 as f64, &what);
        }
    }
}

fn check_study_csv(root: &Path, runs: &[(Fixture, RunResult)]) {
    let (header, rows) = read_csv(&root.join("study.csv"));
    assert_eq!(header, ["Model", "Tagging Scheme", "Learning Rate", "Precision", "Recall", "F1"]);
    assert_eq!(rows.len(), 8);
    for row in &rows {
        let fs = cell(runs, &row["Model"], &row["Tagging Scheme"], &row["Learning Rate"]);
        let what = format!("study.csv {row:?}");
        close(num(row, "Precision"), mean(&fs.iter().map(|f| f.test().0).collect::<Vec<_>>()), &what);
        close(num(row, "Recall"), mean(&fs.iter().map(|f| f.test().1).collect::<Vec<_>>()), &what);
        close(num(row, "F1"), mean(&fs.iter().map(|f| f.test().2).collect::<Vec<_>>()), &what);
    }
}

fn check_errors(root: &Path, runs: &[(Fixture, RunResult)]) {
    let (header, rows) = read_csv(&root.join("errors.csv"));
    assert_eq!(header[..7], ["model", "scheme", "learning_rate", "dataset", "dry_run", "n", "n_analysed"]);
    assert_eq!(rows.len(), 8);
    for model in MODELS {
        for scheme in SCHEMES {
            for (_, rate) in RATES {
                let fs: Vec<&Fixture> = cell(runs, model, scheme, rate);
                let row = find(&rows, &[("model", model), ("scheme", scheme), ("learning_rate", rate)]);
                let what = format!("errors.csv {model}/{scheme}/{rate}");
                assert_eq!(row["n_analysed"], fs.len().to_string(), "{what}");
                // Every mistake of the fixture keeps spans intact, so strict is seqeval's F1.
                close(num(row, "strict_f1"), mean(&fs.iter().map(|f| f.test().2).collect::<Vec<_>>()), &what);
                close(num(row, "type_errors"), mean(&fs.iter().map(|f| f.type_errors()).collect::<Vec<_>>()), &what);
                close(num(row, "boundary_errors"), 0.0, &what);
            }
        }
    }
    let (_, rows) = read_csv(&root.join("error_comparisons.csv"));
    assert_eq!(rows.len(), 8, "the pairs of comparisons.csv");
    let mut varied = 0;
    for row in &rows {
        let (axis, a, b) = (row["compared"].as_str(), row["a"].as_str(), row["b"].as_str());
        let side = |value: &str, seed: i64| {
            let (model, scheme) =
                if axis == "scheme" { (row["model"].as_str(), value) } else { (value, row["scheme"].as_str()) };
            runs.iter().map(|(f, _)| f).find(|f| {
                (f.model, f.scheme, f.rate, f.seed) == (model, scheme, row["learning_rate"].as_str(), seed) && !f.failed
            })
        };
        let d: Vec<f64> = SEEDS
            .iter()
            .filter_map(|&seed| Some(side(a, seed)?.type_errors() - side(b, seed)?.type_errors()))
            .collect();
        let what = format!("error_comparisons.csv {row:?}");
        assert_eq!(row["n_pairs"], d.len().to_string(), "{what}");
        close(num(row, "type_errors_mean_diff"), mean(&d), &what);
        varied += usize::from(d.iter().any(|x| *x != 0.0));
    }
    assert!(varied > 0, "the fixture's type errors should differ between some pairs");
    let md = fs::read_to_string(root.join("report.md")).unwrap();
    for section in
        ["## Error analysis (test set, mean over seeds)", "## Boundary and type errors in paired comparisons"]
    {
        assert!(md.contains(section), "report.md lacks {section:?}");
    }
    assert!(
        md.contains("| m1 | BIOES | 1e-5 | toy | 3/3 |"),
        "the cell with one older result, analysed from its predictions\n{md}"
    );
}

fn check_markdown_and_plots(root: &Path) {
    let md = fs::read_to_string(root.join("report.md")).unwrap();
    for section in [
        "## Learning rate chosen on validation F1",
        "## Every cell over seeds",
        "## Paired comparisons",
        "### scheme: BIO vs BIOES",
        "### model: m1 vs m2",
        "## Per entity type",
        "## Data audit",
        "- **leakage**: brackets survive in the sentence text (24 of 24 runs)",
        "entities lost to truncation (most in one run): m1: train 2, validation 0, test 0, test_words 0; \
         m2: train 2, validation 0, test 1, test_words 4\n",
        "split manifests: 1 distinct sha256 (every run saw the same split)",
        "## Plots",
        "too few seeds (n=2)",
        "23 done, 1 failed, 0 pending",
    ] {
        assert!(md.contains(section), "report.md lacks {section:?}\n{md}");
    }
    assert!(!md.contains("DRY RUN"));
    assert!(!md.contains("dry_run"), "a store without dry runs shows no dry_run column\n{md}");
    let mut svgs: Vec<String> = fs::read_dir(root.join("plots"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    svgs.sort();
    assert_eq!(
        svgs,
        [
            "test_f1_vs_lr_toy.svg",
            "val_f1_m1_BIOES_toy.svg",
            "val_f1_m1_BIO_toy.svg",
            "val_f1_m2_BIOES_toy.svg",
            "val_f1_m2_BIO_toy.svg",
        ]
    );
    for name in &svgs {
        let svg = fs::read_to_string(root.join("plots").join(name)).unwrap();
        assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"), "{name}");
        assert!(svg.contains("<text") && svg.contains("<polyline"), "{name} has no text or lines");
        assert!(md.contains(&format!("(plots/{name})")), "report.md does not link {name}");
    }
    let lr = fs::read_to_string(root.join("plots/test_f1_vs_lr_toy.svg")).unwrap();
    for label in ["1e-5", "3e-5", "m1 / BIO", "m2 / BIOES", "learning rate"] {
        assert!(lr.contains(label), "the learning-rate plot lacks {label:?}");
    }
}
