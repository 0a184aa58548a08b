//! The calls to SLURM's tools: `scontrol show config` for MaxArraySize, `sbatch --parsable`
//! with the script on its standard input. Every call has a time limit.

use std::io::Write;
use std::process::{Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use super::options::parse_max_array_size;
use super::SlurmError;

/// How long `scontrol` may take to answer.
const SCONTROL_TIMEOUT: Duration = Duration::from_secs(20);
/// How long `sbatch` may take to accept a job.
const SBATCH_TIMEOUT: Duration = Duration::from_secs(60);

/// The cluster's MaxArraySize, or `None` when `scontrol` is missing or does not answer.
pub fn cluster_max_array_size() -> Option<usize> {
    let out = run_tool("scontrol", &["show".into(), "config".into()], None, SCONTROL_TIMEOUT).ok()?;
    parse_max_array_size(&out)
}

/// The arguments of `sbatch`: parsable output (the job id), and the dependency on other jobs.
pub fn sbatch_args(after_any: &[String]) -> Vec<String> {
    let mut args = vec!["--parsable".to_string()];
    if !after_any.is_empty() {
        args.push(format!("--dependency=afterany:{}", after_any.join(":")));
    }
    args
}

/// Submits `script`, to start after every job in `after_any` has ended; returns the job id.
pub fn sbatch(script: &str, after_any: &[String]) -> Result<String, SlurmError> {
    let out = run_tool("sbatch", &sbatch_args(after_any), Some(script), SBATCH_TIMEOUT)?;
    parse_job_id(&out).ok_or_else(|| SlurmError::Output { program: "sbatch".into(), output: out })
}

/// The job id in `sbatch --parsable` output: `JOBID` or `JOBID;CLUSTER`.
pub fn parse_job_id(output: &str) -> Option<String> {
    let line = output.lines().map(str::trim).rfind(|l| !l.is_empty())?;
    let id = line.split(';').next()?.trim();
    (!id.is_empty() && id.chars().all(|c| c.is_ascii_digit())).then(|| id.to_string())
}

/// Runs `program` with `stdin` as its input; its standard output when it exits with 0.
fn run_tool(program: &str, args: &[String], stdin: Option<&str>, limit: Duration) -> Result<String, SlurmError> {
    let mut child = Command::new(program)
        .args(args)
        .stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|source| SlurmError::Spawn { program: program.into(), source })?;
    if let (Some(mut pipe), Some(text)) = (child.stdin.take(), stdin) {
        let text = text.to_string();
        // A writer thread: a tool that stops reading must not block us past the limit.
        std::thread::spawn(move || pipe.write_all(text.as_bytes()));
    }
    let pid = child.id();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || tx.send(child.wait_with_output()));
    match rx.recv_timeout(limit) {
        Ok(Ok(out)) => finished(program, out),
        Ok(Err(source)) => Err(SlurmError::Spawn { program: program.into(), source }),
        Err(_) => {
            // SAFETY: killing the child we started; a stale pid only fails with ESRCH.
            unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) };
            Err(SlurmError::Timeout { program: program.into(), seconds: limit.as_secs() })
        }
    }
}

fn finished(program: &str, out: Output) -> Result<String, SlurmError> {
    if out.status.success() {
        return Ok(String::from_utf8_lossy(&out.stdout).into_owned());
    }
    Err(SlurmError::Failed {
        program: program.into(),
        status: out.status.to_string(),
        stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn job_ids_from_parsable_output() {
        assert_eq!(parse_job_id("123\n").as_deref(), Some("123"));
        assert_eq!(parse_job_id("4567;cluster-a\n").as_deref(), Some("4567"));
        assert_eq!(parse_job_id("sbatch: warning: x\n89\n").as_deref(), Some("89"));
        assert_eq!(parse_job_id("Submitted batch job 12\n"), None);
        assert_eq!(parse_job_id(""), None);
    }

    #[test]
    fn dependencies_are_afterany_on_every_array() {
        assert_eq!(sbatch_args(&[]), ["--parsable"]);
        assert_eq!(sbatch_args(&["12".into(), "15".into()]), ["--parsable", "--dependency=afterany:12:15"]);
    }

    #[test]
    fn tool_failures_and_hangs_are_errors_that_name_the_tool() {
        let err = run_tool("sh", &["-c".into(), "echo nope >&2; exit 3".into()], None, SCONTROL_TIMEOUT).unwrap_err();
        assert_eq!(err.to_string(), "sh: exit status: 3: nope");
        let out = run_tool("cat", &[], Some("12;c\n"), SCONTROL_TIMEOUT).unwrap();
        assert_eq!(parse_job_id(&out).as_deref(), Some("12"));
        let err = run_tool("sleep", &["30".into()], None, Duration::from_millis(200)).unwrap_err();
        assert!(matches!(err, SlurmError::Timeout { .. }), "{err}");
        let err = run_tool("nergrid-no-such-tool", &[], None, SCONTROL_TIMEOUT).unwrap_err();
        assert!(err.to_string().starts_with("nergrid-no-such-tool: cannot run it"), "{err}");
    }
}
