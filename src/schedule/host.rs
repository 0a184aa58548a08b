//! Facts about the machine a run executes on.

/// The host name, or "unknown".
pub fn hostname() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: buf is valid for writes of its length; gethostname NUL-terminates on success.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc != 0 {
        return "unknown".into();
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..end]).into_owned()
}

/// `CUDA_VISIBLE_DEVICES` as SLURM set it for a job, kept by the `nergrid slurm` job script
/// (the scheduler gives each worker its own value, empty on the CPU).
pub const SLURM_CUDA_ENV: &str = "NERGRID_SLURM_CUDA_VISIBLE_DEVICES";

/// The SLURM job a process runs in, from its environment (`env` looks a variable up): job id,
/// array job and task ids, node, and the GPUs SLURM gave the job. `None` outside SLURM.
pub fn slurm_facts(env: impl Fn(&str) -> Option<String>) -> Option<serde_json::Map<String, serde_json::Value>> {
    env("SLURM_JOB_ID")?;
    let keys = [
        ("job_id", "SLURM_JOB_ID"),
        ("array_job_id", "SLURM_ARRAY_JOB_ID"),
        ("array_task_id", "SLURM_ARRAY_TASK_ID"),
        ("node", "SLURMD_NODENAME"),
        ("cuda_visible_devices", SLURM_CUDA_ENV),
    ];
    Some(keys.iter().filter_map(|(key, var)| env(var).map(|v| (key.to_string(), v.into()))).collect())
}

/// Whether a process with this pid exists on this host (it may belong to another user).
pub fn pid_alive(pid: u32) -> bool {
    let Ok(pid) = i32::try_from(pid) else { return false };
    if pid <= 0 {
        return false;
    }
    // SAFETY: signal 0 only checks that the process exists and may be signalled.
    let rc = unsafe { libc::kill(pid, 0) };
    let exists = rc == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM);
    // A killed process whose parent died stays a zombie until init reaps it, which some inits
    // do late: it holds nothing, so it counts as dead.
    exists && !is_zombie(std::fs::read_to_string(format!("/proc/{pid}/stat")).ok().as_deref())
}

/// Whether a `/proc/<pid>/stat` line shows a zombie or dead process (state after the `)`).
fn is_zombie(stat: Option<&str>) -> bool {
    let state = stat.and_then(|s| s.rsplit_once(')')).and_then(|(_, rest)| rest.trim_start().chars().next());
    matches!(state, Some('Z' | 'X'))
}

/// Peak resident set size of this process in bytes.
pub fn peak_rss_bytes() -> u64 {
    // SAFETY: getrusage writes into a zeroed struct we own.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let rc = unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) };
    if rc != 0 {
        return 0;
    }
    // Linux reports kilobytes.
    (usage.ru_maxrss.max(0) as u64) * 1024
}

#[cfg(test)]
mod tests {
    #[test]
    fn host_facts_are_plausible() {
        assert!(!super::hostname().is_empty());
        assert!(super::peak_rss_bytes() > 1024 * 1024);
        assert!(super::pid_alive(std::process::id()));
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        child.wait().unwrap();
        assert!(!super::pid_alive(pid));
        assert!(!super::pid_alive(0));
        assert!(super::is_zombie(Some("42 (a (b) c) Z 1 42")));
        assert!(!super::is_zombie(Some("42 (nergrid) S 1 42")));
        assert!(!super::is_zombie(None));
    }

    #[test]
    fn slurm_facts_come_from_the_job_environment() {
        let env = |vars: &'static [(&'static str, &'static str)]| {
            move |k: &str| vars.iter().find(|(n, _)| *n == k).map(|(_, v)| v.to_string())
        };
        assert_eq!(super::slurm_facts(env(&[("CUDA_VISIBLE_DEVICES", "0")])), None);
        let facts = super::slurm_facts(env(&[
            ("SLURM_JOB_ID", "13"),
            ("SLURM_ARRAY_JOB_ID", "12"),
            ("SLURM_ARRAY_TASK_ID", "1"),
            ("NERGRID_SLURM_CUDA_VISIBLE_DEVICES", "1"),
        ]))
        .unwrap();
        let json = serde_json::Value::Object(facts).to_string();
        assert_eq!(json, r#"{"array_job_id":"12","array_task_id":"1","cuda_visible_devices":"1","job_id":"13"}"#);
    }
}
