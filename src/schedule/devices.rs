//! Devices and slots: which devices a sweep uses, how many runs share each, and how many CPU
//! threads each run gets. The decisions are pure functions of a `DeviceEnv`.

use crate::spec::DeviceSelection;

/// One device a run can be placed on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeviceSlot {
    Cpu,
    /// `ordinal`: position among the devices the scheduler sees (`cuda:N` on its command line);
    /// `visible`: the entry of the scheduler's `CUDA_VISIBLE_DEVICES` (or the physical index)
    /// that the worker gets as its only visible device.
    Cuda {
        ordinal: usize,
        visible: String,
    },
}

impl DeviceSlot {
    /// How the scheduler names the device: `cpu` or `cuda:N`.
    pub fn label(&self) -> String {
        match self {
            DeviceSlot::Cpu => "cpu".into(),
            DeviceSlot::Cuda { ordinal, .. } => format!("cuda:{ordinal}"),
        }
    }

    /// `CUDA_VISIBLE_DEVICES` for the worker: its one device, or none on the CPU.
    pub fn cuda_visible_devices(&self) -> &str {
        match self {
            DeviceSlot::Cpu => "",
            DeviceSlot::Cuda { visible, .. } => visible,
        }
    }
}

/// The device a worker's trainer uses, given the scheduler's label: the worker sees only its
/// own GPU, so that is always `cuda:0`.
pub fn trainer_device(label: &str) -> &'static str {
    if label.starts_with("cuda") {
        "cuda:0"
    } else {
        "cpu"
    }
}

/// Why a CPU run is on the CPU, for its log line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CudaAvailability {
    /// Neither this binary nor a `nergrid-cuda` worker beside it can use CUDA.
    NotBuilt,
    /// CUDA code is there, but the NVIDIA driver lists no GPU.
    NoGpu,
    /// GPUs exist; the CPU was chosen.
    Present,
}

impl CudaAvailability {
    /// This process's view: the build (or its CUDA worker) and the driver's GPU list.
    pub fn detect() -> Self {
        if !(cfg!(feature = "cuda") || cuda_worker_exe().is_some()) {
            CudaAvailability::NotBuilt
        } else if nvidia_gpu_count().is_none() {
            CudaAvailability::NoGpu
        } else {
            CudaAvailability::Present
        }
    }
}

/// The log line saying where a worker trains, and why on the CPU when there is no GPU to use.
pub fn device_note(label: &str, cuda_visible_devices: &str, cuda: CudaAvailability) -> String {
    match (label, cuda) {
        ("cpu", CudaAvailability::NotBuilt) => {
            "device: cpu (this build has no CUDA support: build the GPU worker with `make cuda`)".to_string()
        }
        ("cpu", CudaAvailability::NoGpu) => {
            "device: cpu (no NVIDIA GPU found: the driver lists none in /proc/driver/nvidia/gpus)".to_string()
        }
        ("cpu", CudaAvailability::Present) => "device: cpu".to_string(),
        (gpu, _) => format!("device: {gpu} (CUDA_VISIBLE_DEVICES={cuda_visible_devices}, trains on cuda:0)"),
    }
}

/// The binary that runs GPU workers: this one when it was built with CUDA, else
/// `NERGRID_CUDA_WORKER`, else `nergrid-cuda` beside this executable (what `make cuda` builds).
/// `None` when there is no such file.
pub fn cuda_worker_exe() -> Option<std::path::PathBuf> {
    if cfg!(feature = "cuda") {
        return std::env::current_exe().ok();
    }
    let named = std::env::var_os("NERGRID_CUDA_WORKER").filter(|v| !v.is_empty()).map(std::path::PathBuf::from);
    let beside = || std::env::current_exe().ok().map(|exe| exe.with_file_name("nergrid-cuda"));
    named.or_else(beside).filter(|p| p.is_file())
}

/// What the machine offers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceEnv {
    /// The scheduler's `CUDA_VISIBLE_DEVICES`, if set.
    pub cuda_visible_devices: Option<String>,
    /// CUDA devices present; `None` when unknown (the list in `CUDA_VISIBLE_DEVICES` is trusted).
    pub cuda_count: Option<usize>,
    /// Whether this build can use CUDA at all (the `cuda` feature, or fake devices).
    pub cuda_built: bool,
    pub cores: usize,
}

impl DeviceEnv {
    /// Reads the environment. `NERGRID_FAKE_CUDA_DEVICES=N` (a testing aid) pretends N GPUs exist.
    pub fn detect() -> Self {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let cuda_visible_devices = std::env::var("CUDA_VISIBLE_DEVICES").ok();
        let fake = std::env::var("NERGRID_FAKE_CUDA_DEVICES").ok().and_then(|v| v.trim().parse::<usize>().ok());
        let (cuda_built, cuda_count) = match fake {
            Some(n) => (true, Some(n)),
            None if cfg!(feature = "cuda") || cuda_worker_exe().is_some() => {
                (true, Some(nvidia_gpu_count().unwrap_or(0)))
            }
            None => (false, Some(0)),
        };
        DeviceEnv { cuda_visible_devices, cuda_count, cuda_built, cores }
    }
}

/// GPUs the NVIDIA driver lists (`/proc/driver/nvidia/gpus`, else its `/dev/nvidiaN` nodes),
/// without loading CUDA or creating a context in the scheduler; `None` when it lists none.
fn nvidia_gpu_count() -> Option<usize> {
    let proc_gpus = std::fs::read_dir("/proc/driver/nvidia/gpus").map(|d| d.count()).unwrap_or(0);
    let dev_nodes = || {
        let is_gpu = |name: &str| {
            name.strip_prefix("nvidia").is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
        };
        std::fs::read_dir("/dev")
            .map(|d| d.filter_map(Result::ok).filter(|e| e.file_name().to_str().is_some_and(is_gpu)).count())
            .unwrap_or(0)
    };
    Some(if proc_gpus > 0 { proc_gpus } else { dev_nodes() }).filter(|&n| n > 0)
}

/// The CUDA devices a process sees, as the entries a child's `CUDA_VISIBLE_DEVICES` can name.
/// Like CUDA itself, the list stops at the first invalid entry.
pub fn visible_cuda(cvd: Option<&str>, cuda_count: Option<usize>) -> Vec<String> {
    let Some(list) = cvd else {
        return (0..cuda_count.unwrap_or(0)).map(|i| i.to_string()).collect();
    };
    if cuda_count == Some(0) {
        return Vec::new();
    }
    let valid = |e: &str| match e.parse::<usize>() {
        Ok(i) => cuda_count.is_none_or(|n| i < n),
        Err(_) => e.starts_with("GPU-") || e.starts_with("MIG-"),
    };
    list.split(',').map(str::trim).take_while(|e| !e.is_empty() && valid(e)).map(String::from).collect()
}

/// Where runs go: each device `runs_per_device` times, and the threads each run may use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceLayout {
    pub devices: Vec<DeviceSlot>,
    pub runs_per_device: usize,
    pub threads_per_run: usize,
}

impl DeviceLayout {
    /// One entry per concurrent run, devices interleaved so that runs spread over all of them
    /// before any device gets a second one.
    pub fn slots(&self) -> Vec<DeviceSlot> {
        (0..self.runs_per_device).flat_map(|_| self.devices.iter().cloned()).collect()
    }
}

/// Resolves a device selection. CPU: with `threads_per_run` set, `max(1, cores / threads)` runs
/// at once; otherwise `runs_per_device` runs (1 by default) sharing the cores equally. GPU:
/// `runs_per_device` runs per device, each with `threads_per_run` threads (default: the cores
/// shared equally among all concurrent runs).
pub fn layout(
    selection: &DeviceSelection,
    runs_per_device: usize,
    threads_per_run: Option<usize>,
    env: &DeviceEnv,
) -> Result<DeviceLayout, String> {
    let visible = visible_cuda(env.cuda_visible_devices.as_deref(), env.cuda_count);
    let devices = match selection {
        DeviceSelection::Cpu => Vec::new(),
        DeviceSelection::Auto if !env.cuda_built => Vec::new(),
        DeviceSelection::Auto => (0..visible.len()).map(|i| cuda(i, &visible)).collect(),
        DeviceSelection::Cuda(ordinals) => pick_cuda(ordinals, &visible, env.cuda_built)?,
    };
    let runs_per_device = runs_per_device.max(1);
    if devices.is_empty() {
        return Ok(cpu_layout(env.cores, runs_per_device, threads_per_run));
    }
    let concurrent = devices.len() * runs_per_device;
    let threads_per_run = threads_per_run.unwrap_or((env.cores / concurrent).max(1));
    Ok(DeviceLayout { devices, runs_per_device, threads_per_run })
}

fn cuda(ordinal: usize, visible: &[String]) -> DeviceSlot {
    DeviceSlot::Cuda { ordinal, visible: visible[ordinal].clone() }
}

fn pick_cuda(ordinals: &[usize], visible: &[String], cuda_built: bool) -> Result<Vec<DeviceSlot>, String> {
    if !cuda_built {
        return Err(
            "this build has no CUDA support (build the GPU worker with `make cuda`, or use `--devices cpu`)".into()
        );
    }
    if visible.is_empty() {
        return Err(format!(
            "cuda:{}: no CUDA device is visible (no NVIDIA driver or GPU on this machine, or CUDA_VISIBLE_DEVICES \
             is empty); use `--devices auto` to fall back to the CPU",
            ordinals.first().copied().unwrap_or(0)
        ));
    }
    match ordinals.iter().find(|&&o| o >= visible.len()) {
        Some(bad) => Err(format!("cuda:{bad}: only {} CUDA device(s) are visible", visible.len())),
        None => Ok(ordinals.iter().map(|&o| cuda(o, visible)).collect()),
    }
}

fn cpu_layout(cores: usize, runs_per_device: usize, threads_per_run: Option<usize>) -> DeviceLayout {
    let cores = cores.max(1);
    let (concurrent, threads) = match threads_per_run {
        Some(t) => ((cores / t.max(1)).max(1), t.max(1)),
        None => (runs_per_device, (cores / runs_per_device).max(1)),
    };
    DeviceLayout { devices: vec![DeviceSlot::Cpu], runs_per_device: concurrent, threads_per_run: threads }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(cvd: Option<&str>, cuda_count: Option<usize>, cuda_built: bool, cores: usize) -> DeviceEnv {
        DeviceEnv { cuda_visible_devices: cvd.map(String::from), cuda_count, cuda_built, cores }
    }

    fn labels(l: &DeviceLayout) -> Vec<String> {
        l.slots().iter().map(|d| format!("{}={}", d.label(), d.cuda_visible_devices())).collect()
    }

    #[test]
    fn visible_devices_follow_cuda_rules() {
        assert_eq!(visible_cuda(None, Some(3)), ["0", "1", "2"]);
        assert_eq!(visible_cuda(Some("2,0"), Some(3)), ["2", "0"]);
        assert_eq!(visible_cuda(Some("1,7,0"), Some(3)), ["1"], "stops at the first invalid entry");
        assert_eq!(visible_cuda(Some(""), Some(3)), Vec::<String>::new());
        assert_eq!(visible_cuda(Some("-1"), Some(3)), Vec::<String>::new());
        assert_eq!(visible_cuda(Some("GPU-abc,3"), None), ["GPU-abc", "3"]);
        assert_eq!(visible_cuda(Some("0"), Some(0)), Vec::<String>::new());
    }

    #[test]
    fn auto_uses_every_visible_gpu_mapped_through_the_parent_list() {
        let l = layout(&DeviceSelection::Auto, 2, None, &env(Some("7,5,3,1"), Some(8), true, 16)).unwrap();
        assert_eq!(
            labels(&l),
            ["cuda:0=7", "cuda:1=5", "cuda:2=3", "cuda:3=1", "cuda:0=7", "cuda:1=5", "cuda:2=3", "cuda:3=1"]
        );
        assert_eq!(l.threads_per_run, 2);
    }

    #[test]
    fn auto_without_cuda_is_the_cpu() {
        let l = layout(&DeviceSelection::Auto, 1, None, &env(Some("0,1"), Some(0), false, 8)).unwrap();
        assert_eq!(labels(&l), ["cpu="]);
        assert_eq!(l.threads_per_run, 8);
        let none_visible = layout(&DeviceSelection::Auto, 1, None, &env(Some(""), Some(2), true, 8)).unwrap();
        assert_eq!(labels(&none_visible), ["cpu="]);
    }

    #[test]
    fn explicit_cuda_list_is_checked() {
        let e = env(None, Some(4), true, 8);
        let l = layout(&DeviceSelection::Cuda(vec![1, 3]), 1, None, &e).unwrap();
        assert_eq!(labels(&l), ["cuda:1=1", "cuda:3=3"]);
        let err = layout(&DeviceSelection::Cuda(vec![4]), 1, None, &e).unwrap_err();
        assert!(err.contains("cuda:4: only 4"), "{err}");
        let err = layout(&DeviceSelection::Cuda(vec![0]), 1, None, &env(None, Some(0), false, 8)).unwrap_err();
        assert!(err.contains("no CUDA support"), "{err}");
        let err = layout(&DeviceSelection::Cuda(vec![0]), 1, None, &env(None, Some(0), true, 8)).unwrap_err();
        assert!(err.starts_with("cuda:0: no CUDA device is visible"), "{err}");
        assert!(!err.contains('\n'), "one line: {err}");
    }

    #[test]
    fn cpu_threads_rule() {
        let cpu = |rpd, t| {
            let l = layout(&DeviceSelection::Cpu, rpd, t, &env(None, Some(2), true, 16)).unwrap();
            (l.slots().len(), l.threads_per_run)
        };
        assert_eq!(cpu(1, None), (1, 16), "default: one run with every core");
        assert_eq!(cpu(4, None), (4, 4));
        assert_eq!(cpu(1, Some(4)), (4, 4), "threads_per_run sets the concurrency");
        assert_eq!(cpu(1, Some(32)), (1, 32));
        assert_eq!(cpu(32, None), (32, 1));
    }

    #[test]
    fn the_log_says_why_a_run_is_on_the_cpu() {
        assert!(device_note("cpu", "", CudaAvailability::NotBuilt).contains("make cuda"));
        assert!(device_note("cpu", "", CudaAvailability::NoGpu).contains("no NVIDIA GPU found"));
        assert_eq!(device_note("cpu", "", CudaAvailability::Present), "device: cpu");
        assert_eq!(
            device_note("cuda:1", "5", CudaAvailability::Present),
            "device: cuda:1 (CUDA_VISIBLE_DEVICES=5, trains on cuda:0)"
        );
    }

    #[test]
    fn workers_use_their_only_gpu() {
        assert_eq!(trainer_device("cuda:3"), "cuda:0");
        assert_eq!(trainer_device("cpu"), "cpu");
    }
}
