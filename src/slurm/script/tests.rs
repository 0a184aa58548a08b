use std::collections::BTreeSet;
use std::path::Path;

use super::*;
use crate::slurm::arrays::{split_arrays, TaskRun};

fn ctx(root: &Path) -> ScriptContext {
    ScriptContext {
        experiment: "demo".into(),
        exe: root.join("bin/nergrid"),
        spec: root.join("work/experiments/demo.toml"),
        workdir: root.join("work"),
        log_dir: root.join("work/results/demo/slurm"),
        rerun_failed: false,
    }
}

fn runs(n: usize) -> Vec<TaskRun> {
    (0..n).map(|i| TaskRun { index: i, id: format!("minilm-bio-lr1e-4-demo-s{i}-{i:08x}") }).collect()
}

/// The value of `#SBATCH --<key>=`.
fn sbatch_value<'a>(script: &'a str, key: &str) -> Option<&'a str> {
    script.lines().find_map(|l| l.strip_prefix(&format!("#SBATCH --{key}=")))
}

/// The words of the bash array `NAME=( ... )`, quotes removed.
fn bash_array(script: &str, name: &str) -> Vec<String> {
    let start = script.find(&format!("\n{name}=(\n")).expect(name) + name.len() + 4;
    let end = start + script[start..].find("\n)").unwrap();
    script[start..end].split_whitespace().map(|w| w.trim_matches('\'').to_string()).collect()
}

#[test]
fn a_grid_of_2500_runs_becomes_three_arrays_that_cover_every_run_once() {
    let arrays = split_arrays(runs(2500), 1001);
    let offsets: Vec<usize> = arrays.iter().map(|a| a.offset).collect();
    assert_eq!(offsets, [0, 1001, 2002]);
    let mut seen = Vec::new();
    for (k, array) in arrays.iter().enumerate() {
        let script = render_array(&ctx(Path::new("/c")), &SlurmOptions::default(), array, k + 1, 3).unwrap();
        let range = sbatch_value(&script, "array").unwrap();
        let last: usize = range.strip_prefix("0-").unwrap().parse().unwrap();
        assert!(last < 1001, "task ids stay below MaxArraySize: {range}");
        let indices = bash_array(&script, "INDICES");
        let ids = bash_array(&script, "IDS");
        assert_eq!((indices.len(), ids.len()), (last + 1, last + 1), "one run per task of array {}", k + 1);
        assert!(script.contains(&format!(
            "array {} of 3: submitted runs {}-{}",
            k + 1,
            array.offset + 1,
            array.offset + last + 1
        )));
        for (index, id) in indices.iter().zip(&ids) {
            let index: usize = index.parse().unwrap();
            assert_eq!(id, &runs(2500)[index].id, "task maps index {index} to its id");
            seen.push(index);
        }
    }
    assert_eq!(seen.len(), 2500);
    assert_eq!(seen.iter().collect::<BTreeSet<_>>().len(), 2500, "no run twice");
    assert_eq!(seen, (0..2500).collect::<Vec<_>>(), "every run, in plan order");
}

#[test]
fn array_script_snapshot() {
    let opts = SlurmOptions {
        partition: Some("gpu".into()),
        account: Some("proj".into()),
        gpus_per_run: 1,
        cpus_per_run: Some(4),
        mem: Some("32G".into()),
        time: Some("04:00:00".into()),
        max_parallel: Some(8),
        max_array_size: None,
    };
    let pending = vec![runs(30)[3].clone(), runs(30)[7].clone(), runs(30)[29].clone()];
    let array = ArrayPlan { offset: 0, runs: pending };
    let ctx = ScriptContext { rerun_failed: true, ..ctx(Path::new("/c")) };
    let script = render_array(&ctx, &opts, &array, 1, 1).unwrap().replace(env!("CARGO_PKG_VERSION"), "VERSION");
    insta::assert_snapshot!(script);
}

#[test]
fn report_script_snapshot() {
    let opts = SlurmOptions { partition: Some("gpu".into()), mem: Some("32G".into()), ..SlurmOptions::default() };
    let script = render_report(&ctx(Path::new("/c")), &opts).unwrap().replace(env!("CARGO_PKG_VERSION"), "VERSION");
    insta::assert_snapshot!(script);
}

#[test]
fn resources_follow_the_options() {
    let array = ArrayPlan { offset: 0, runs: runs(1) };
    let no_gpu = SlurmOptions { gpus_per_run: 0, ..SlurmOptions::default() };
    let script = render_array(&ctx(Path::new("/c")), &no_gpu, &array, 1, 1).unwrap();
    assert_eq!(sbatch_value(&script, "array"), Some("0-0"));
    for key in ["gres", "partition", "account", "cpus-per-task", "mem", "time"] {
        assert_eq!(sbatch_value(&script, key), None, "{key} is left to the cluster");
    }
    let two = SlurmOptions { gpus_per_run: 2, max_parallel: Some(3), ..SlurmOptions::default() };
    let script = render_array(&ctx(Path::new("/c")), &two, &ArrayPlan { offset: 0, runs: runs(10) }, 1, 1).unwrap();
    assert_eq!(sbatch_value(&script, "gres"), Some("gpu:2"));
    assert_eq!(sbatch_value(&script, "array"), Some("0-9%3"));
    let report = render_report(&ctx(Path::new("/c")), &two).unwrap();
    assert_eq!(sbatch_value(&report, "gres"), None, "the report needs no GPU");
    assert_eq!(sbatch_value(&report, "cpus-per-task"), Some("1"));
}

#[test]
fn awkward_paths_are_quoted_and_relative_ones_refused() {
    let mut c = ctx(Path::new("/data/it's 100%"));
    let array = ArrayPlan { offset: 0, runs: runs(1) };
    let script = render_array(&c, &SlurmOptions::default(), &array, 1, 1).unwrap();
    assert_eq!(sbatch_value(&script, "output"), Some(r#""/data/it's 100%%/work/results/demo/slurm/%A_%a.out""#));
    assert!(script.contains(r"cd '/data/it'\''s 100%/work'"), "{script}");
    c.spec = "experiments/demo.toml".into();
    let err = render_array(&c, &SlurmOptions::default(), &array, 1, 1).unwrap_err();
    assert_eq!(err.to_string(), "experiments/demo.toml: must be absolute in a job script");
}

/// Runs the rendered script with bash, a fake `nergrid` that records its arguments, and the
/// environment SLURM gives an array task.
fn run_task(dir: &Path, script: &str, task: &str, cuda: Option<&str>) -> (std::process::Output, String) {
    let record = dir.join("args.txt");
    let _ = std::fs::remove_file(&record);
    std::fs::write(dir.join("task.sh"), script).unwrap();
    let mut cmd = std::process::Command::new("bash");
    cmd.arg(dir.join("task.sh")).env("SLURM_ARRAY_TASK_ID", task).env("FAKE_RECORD", &record);
    match cuda {
        Some(c) => cmd.env("CUDA_VISIBLE_DEVICES", c),
        None => cmd.env_remove("CUDA_VISIBLE_DEVICES"),
    };
    let out = cmd.output().unwrap();
    (out, std::fs::read_to_string(&record).unwrap_or_default())
}

#[test]
fn a_task_runs_the_run_its_id_maps_to_from_the_submission_directory() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("with space");
    std::fs::create_dir_all(root.join("bin")).unwrap();
    std::fs::create_dir_all(root.join("work")).unwrap();
    let fake = "#!/bin/sh\nprintf '%s|' \"$PWD\" \"$NERGRID_SLURM_CUDA_VISIBLE_DEVICES\" \"$@\" > \"$FAKE_RECORD\"\n";
    std::fs::write(root.join("bin/nergrid"), fake).unwrap();
    std::fs::set_permissions(root.join("bin/nergrid"), std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let c = ScriptContext { rerun_failed: true, ..ctx(&root) };
    let array = ArrayPlan { offset: 4, runs: vec![runs(9)[4].clone(), runs(9)[8].clone()] };
    let script = render_array(&c, &SlurmOptions::default(), &array, 2, 2).unwrap();

    let (out, args) = run_task(tmp.path(), &script, "1", Some("1"));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let expected = format!(
        "{work}|1|run|{spec}|--index|8|--expect-id|{id}|--devices|auto|--rerun-failed|",
        work = root.join("work").display(),
        spec = c.spec.display(),
        id = runs(9)[8].id
    );
    assert_eq!(args, expected);
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(log.contains(&format!("task 1 of array job ? runs plan index 8 ({})", runs(9)[8].id)), "{log}");
    assert!(log.contains("CUDA_VISIBLE_DEVICES=1"), "{log}");

    let (_, args) = run_task(tmp.path(), &script, "0", None);
    assert!(args.starts_with(&format!("{}||run|", root.join("work").display())), "{args}");
    assert!(args.contains("|--index|4|"), "{args}");

    let (out, args) = run_task(tmp.path(), &script, "2", Some("0"));
    assert_eq!(out.status.code(), Some(2), "a task id beyond the array fails");
    assert!(String::from_utf8_lossy(&out.stderr).contains("array task 2 is out of range (this array has 2 tasks)"));
    assert_eq!(args, "", "and runs nothing");
}
