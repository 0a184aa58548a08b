//! The `devices` setting: `auto`, `cpu`, or `cuda:0,1,3`.

/// Which devices a sweep may use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeviceSelection {
    /// Every CUDA device the process can see, else the CPU.
    Auto,
    Cpu,
    Cuda(Vec<usize>),
}

/// Parses a devices string.
pub fn parse_devices(s: &str) -> Result<DeviceSelection, String> {
    let allowed = "\"auto\", \"cpu\" or \"cuda:0,1,...\"";
    match s.trim() {
        "auto" => Ok(DeviceSelection::Auto),
        "cpu" => Ok(DeviceSelection::Cpu),
        other => {
            let Some(list) = other.strip_prefix("cuda:") else {
                return Err(format!("unknown devices \"{other}\" ({allowed})"));
            };
            let mut ids = Vec::new();
            for part in list.split(',') {
                let id: usize =
                    part.trim().parse().map_err(|_| format!("invalid device index \"{part}\" ({allowed})"))?;
                if ids.contains(&id) {
                    return Err(format!("device {id} listed twice ({allowed})"));
                }
                ids.push(id);
            }
            Ok(DeviceSelection::Cuda(ids))
        }
    }
}

pub(crate) fn check_devices(s: &str) -> Result<(), String> {
    parse_devices(s).map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_device_lists() {
        assert_eq!(parse_devices("auto"), Ok(DeviceSelection::Auto));
        assert_eq!(parse_devices("cuda:0,1,3"), Ok(DeviceSelection::Cuda(vec![0, 1, 3])));
        assert!(parse_devices("cuda:0,0").is_err());
        assert!(parse_devices("gpu").is_err());
        assert!(parse_devices("cuda:x").is_err());
    }
}
