//! The resources each array task asks for: the spec's `[slurm]` table, overridden by flags,
//! checked so that every value fits on one `#SBATCH` line; and the array size limit.

use super::SlurmError;
use crate::spec::SlurmSpec;

/// The array size limit when neither the cluster nor the user names one (SLURM's default).
pub const DEFAULT_MAX_ARRAY_SIZE: usize = 1001;

/// Resources and limits of the submitted jobs. `None` leaves a value to the cluster's default.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlurmOptions {
    pub partition: Option<String>,
    pub account: Option<String>,
    /// GPUs per array task (`--gres=gpu:G`); 0 asks for none.
    pub gpus_per_run: u32,
    pub cpus_per_run: Option<u32>,
    pub mem: Option<String>,
    pub time: Option<String>,
    /// Array tasks running at once (`--array=...%K`).
    pub max_parallel: Option<usize>,
    /// The largest array the user allows (the cluster's MaxArraySize may lower it).
    pub max_array_size: Option<usize>,
}

impl Default for SlurmOptions {
    /// One GPU per run, everything else left to the cluster.
    fn default() -> Self {
        SlurmOptions {
            partition: None,
            account: None,
            gpus_per_run: 1,
            cpus_per_run: None,
            mem: None,
            time: None,
            max_parallel: None,
            max_array_size: None,
        }
    }
}

impl SlurmOptions {
    /// The `[slurm]` table over the defaults (the spec parser has checked types and minimums).
    pub fn from_spec(spec: &SlurmSpec) -> Self {
        let text = |k: &str| spec.values.get(k).and_then(|v| v.as_str()).map(String::from);
        let int = |k: &str| spec.values.get(k).and_then(|v| v.as_i64()).and_then(|i| u64::try_from(i).ok());
        let defaults = SlurmOptions::default();
        SlurmOptions {
            partition: text("partition"),
            account: text("account"),
            gpus_per_run: int("gpus_per_run").map_or(defaults.gpus_per_run, |g| g as u32),
            cpus_per_run: int("cpus_per_run").map(|c| c as u32),
            mem: text("mem"),
            time: text("time"),
            max_parallel: int("max_parallel").map(|k| k as usize),
            max_array_size: int("max_array_size").map(|n| n as usize),
        }
    }

    /// `self` with every value `flags` sets replaced (flags win over the spec).
    pub fn overridden_by(self, flags: SlurmOptionFlags) -> Self {
        SlurmOptions {
            partition: flags.partition.or(self.partition),
            account: flags.account.or(self.account),
            gpus_per_run: flags.gpus_per_run.unwrap_or(self.gpus_per_run),
            cpus_per_run: flags.cpus_per_run.or(self.cpus_per_run),
            mem: flags.mem.or(self.mem),
            time: flags.time.or(self.time),
            max_parallel: flags.max_parallel.or(self.max_parallel),
            max_array_size: flags.max_array_size.or(self.max_array_size),
        }
    }

    /// Checks that the text values fit on an `#SBATCH` line: no whitespace, quotes or
    /// control characters (none of SLURM's partition, account, memory or time syntaxes use them).
    pub fn check(&self) -> Result<(), SlurmError> {
        let texts =
            [("partition", &self.partition), ("account", &self.account), ("mem", &self.mem), ("time", &self.time)];
        for (key, value) in texts {
            if let Some(v) = value {
                check_word(key, v)?;
            }
        }
        Ok(())
    }
}

/// The command-line flags of `nergrid slurm` that override `[slurm]`; `None`: not given.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SlurmOptionFlags {
    pub partition: Option<String>,
    pub account: Option<String>,
    pub gpus_per_run: Option<u32>,
    pub cpus_per_run: Option<u32>,
    pub mem: Option<String>,
    pub time: Option<String>,
    pub max_parallel: Option<usize>,
    pub max_array_size: Option<usize>,
}

fn check_word(key: &str, value: &str) -> Result<(), SlurmError> {
    let why = if value.is_empty() {
        Some("must not be empty")
    } else if value.chars().any(|c| c.is_whitespace() || c.is_control() || c == '"' || c == '\'') {
        Some("must not contain whitespace, quotes or control characters")
    } else {
        None
    };
    match why {
        Some(why) => Err(SlurmError::Value { key: key.into(), value: value.into(), why }),
        None => Ok(()),
    }
}

/// `MaxArraySize` from the text of `scontrol show config` (`MaxArraySize = 1001`).
pub fn parse_max_array_size(config: &str) -> Option<usize> {
    config.lines().find_map(|line| {
        let (key, value) = line.split_once('=')?;
        (key.trim() == "MaxArraySize").then(|| value.trim().parse().ok()).flatten()
    })
}

/// The most tasks one array may have: the cluster's MaxArraySize (task ids are below it) when
/// known, lowered to the user's limit when that is smaller; the user's limit alone; else 1001.
pub fn effective_max_array_size(cluster: Option<usize>, user: Option<usize>) -> Result<usize, SlurmError> {
    match (cluster, user) {
        (Some(0), _) => Err(SlurmError::ArraysDisabled),
        (Some(c), Some(u)) => Ok(c.min(u.max(1))),
        (Some(c), None) => Ok(c),
        (None, Some(u)) => Ok(u.max(1)),
        (None, None) => Ok(DEFAULT_MAX_ARRAY_SIZE),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::ParamValue;

    fn spec(pairs: &[(&str, ParamValue)]) -> SlurmSpec {
        SlurmSpec { values: pairs.iter().map(|(k, v)| (k.to_string(), v.clone())).collect() }
    }

    #[test]
    fn flags_win_over_the_spec_which_wins_over_defaults() {
        let from_spec = SlurmOptions::from_spec(&spec(&[
            ("partition", ParamValue::Str("gpu".into())),
            ("gpus_per_run", ParamValue::Int(2)),
            ("mem", ParamValue::Str("32G".into())),
            ("max_parallel", ParamValue::Int(8)),
        ]));
        assert_eq!(from_spec.partition.as_deref(), Some("gpu"));
        assert_eq!((from_spec.gpus_per_run, from_spec.max_parallel), (2, Some(8)));
        assert_eq!(from_spec.time, None);
        let flags = SlurmOptionFlags {
            partition: Some("debug".into()),
            gpus_per_run: Some(0),
            time: Some("01:00:00".into()),
            ..Default::default()
        };
        let merged = from_spec.overridden_by(flags);
        assert_eq!(merged.partition.as_deref(), Some("debug"));
        assert_eq!(merged.gpus_per_run, 0);
        assert_eq!(merged.mem.as_deref(), Some("32G"), "kept from the spec");
        assert_eq!(merged.time.as_deref(), Some("01:00:00"));
        assert_eq!(SlurmOptions::from_spec(&SlurmSpec::default()), SlurmOptions::default());
        assert_eq!(SlurmOptions::default().gpus_per_run, 1);
    }

    #[test]
    fn values_that_would_break_an_sbatch_line_are_refused() {
        let ok = SlurmOptions { mem: Some("32G".into()), time: Some("1-00:00:00".into()), ..Default::default() };
        assert!(ok.check().is_ok());
        let bad = SlurmOptions { partition: Some("gpu\n#SBATCH --x".into()), ..Default::default() };
        let err = bad.check().unwrap_err().to_string();
        assert_eq!(err, r#"partition: "gpu\n#SBATCH --x": must not contain whitespace, quotes or control characters"#);
        let empty = SlurmOptions { account: Some(String::new()), ..Default::default() };
        assert_eq!(empty.check().unwrap_err().to_string(), r#"account: "": must not be empty"#);
    }

    #[test]
    fn max_array_size_comes_from_the_cluster_then_the_user_then_1001() {
        let config =
            "Configuration data as of 2025-01-01T00:00:00\nMaxArraySize            = 4001\nMaxJobCount = 10000\n";
        assert_eq!(parse_max_array_size(config), Some(4001));
        assert_eq!(parse_max_array_size("MaxJobCount = 10\n"), None);
        assert_eq!(parse_max_array_size("MaxArraySize = lots\n"), None);
        assert_eq!(effective_max_array_size(Some(4001), None).unwrap(), 4001);
        assert_eq!(effective_max_array_size(Some(4001), Some(100)).unwrap(), 100, "a smaller user limit is kept");
        assert_eq!(effective_max_array_size(Some(1001), Some(5000)).unwrap(), 1001, "the cluster caps it");
        assert_eq!(effective_max_array_size(None, Some(300)).unwrap(), 300);
        assert_eq!(effective_max_array_size(None, None).unwrap(), DEFAULT_MAX_ARRAY_SIZE);
        assert!(matches!(effective_max_array_size(Some(0), Some(10)), Err(SlurmError::ArraysDisabled)));
    }
}
