//! Exactly-once claims: before a worker runs a run it places `lock.json` in the run directory.
//!
//! - Placing is atomic and exclusive: the lock is written in full to a private temporary file,
//!   then hard-linked to its name (`link` fails if the name exists), so a reader never sees a
//!   half-written lock and two claimers never both succeed.
//! - The holder refreshes `heartbeat_ms` every few seconds (in place, same file).
//! - A lock is stale when its holder is gone: a dead pid on this host, or a heartbeat older than
//!   the stale limit (any host). A stale lock is taken over under a short-lived guard file
//!   (`lock.json.takeover`, created exclusively): the taker re-reads the lock under the guard
//!   and replaces it by rename only if it is still the same stale file. So two processes that
//!   both see the same stale lock cannot both take it over.
//! - The holder checks at each heartbeat that the lock at the path is still its own file; if it
//!   was taken over (its heartbeat looked stale: a process stopped for longer than the limit),
//!   it gives up the run through `on_lost`.
//!
//! Remaining races, both needing a process to stop for longer than the stale limit or to die
//! inside a few microseconds: a holder frozen past the limit may write its result between the
//! takeover and its next heartbeat check; and a guard left by a process killed while holding it
//! is removed once older than the stale limit, and two processes removing it at the same moment
//! could both then take over.

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError, Sender};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::host::{hostname, pid_alive};
use crate::store::now_rfc3339;

/// What `lock.json` holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockInfo {
    pub run: String,
    pub host: String,
    pub pid: u32,
    /// Unique per claim.
    pub token: String,
    pub started_at: String,
    /// Milliseconds since the Unix epoch of the last refresh.
    pub heartbeat_ms: u64,
}

impl LockInfo {
    fn new(run: &str) -> Self {
        let host = hostname();
        let pid = std::process::id();
        LockInfo {
            run: run.to_string(),
            token: new_token(&host, pid),
            host,
            pid,
            started_at: now_rfc3339(),
            heartbeat_ms: unix_ms(SystemTime::now()),
        }
    }

    /// `pid 123 on host since 2025-…`.
    pub fn holder(&self) -> String {
        format!("pid {} on {} since {}", self.pid, self.host, self.started_at)
    }
}

/// Heartbeat period and stale limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LockConfig {
    pub stale_after: Duration,
    pub heartbeat_every: Duration,
}

impl Default for LockConfig {
    fn default() -> Self {
        LockConfig::with_stale_after(Duration::from_secs(60))
    }
}

impl LockConfig {
    /// The heartbeat runs at a quarter of the stale limit, at most every 5 s.
    pub fn with_stale_after(stale_after: Duration) -> Self {
        let heartbeat_every = (stale_after / 4).clamp(Duration::from_millis(10), Duration::from_secs(5));
        LockConfig { stale_after, heartbeat_every }
    }

    /// `NERGRID_LOCK_STALE_MS` overrides the 60 s stale limit (for tests).
    pub fn from_env() -> Self {
        match std::env::var("NERGRID_LOCK_STALE_MS").ok().and_then(|v| v.parse::<u64>().ok()) {
            Some(ms) => LockConfig::with_stale_after(Duration::from_millis(ms.max(1))),
            None => LockConfig::default(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("{path}: lock i/o error", path = path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> LockError + '_ {
    move |source| LockError::Io { path: path.to_path_buf(), source }
}

/// Whether a lock's holder is gone: a dead pid on this host, or a heartbeat older than the limit.
pub fn is_stale(info: &LockInfo, now_ms: u64, this_host: &str, stale_ms: u64, alive: impl Fn(u32) -> bool) -> bool {
    (info.host == this_host && !alive(info.pid)) || now_ms.saturating_sub(info.heartbeat_ms) > stale_ms
}

/// A lock file as a reader found it.
#[derive(Debug, Clone)]
struct Present {
    /// `None` when the content cannot be parsed (a torn read during a heartbeat, or damage).
    info: Option<LockInfo>,
    modified: SystemTime,
    file_id: (u64, u64),
}

impl Present {
    fn stale(&self, cfg: &LockConfig) -> bool {
        let now = SystemTime::now();
        match &self.info {
            Some(info) => is_stale(info, unix_ms(now), &hostname(), cfg.stale_after.as_millis() as u64, pid_alive),
            None => now.duration_since(self.modified).unwrap_or_default() > cfg.stale_after,
        }
    }

    fn holder(&self) -> String {
        self.info.as_ref().map_or_else(|| "an unreadable lock".into(), LockInfo::holder)
    }
}

fn read_lock(path: &Path) -> Result<Option<Present>, LockError> {
    let mut file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io_err(path)(e)),
    };
    let meta = file.metadata().map_err(io_err(path))?;
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes).map_err(io_err(path))?;
    Ok(Some(Present {
        info: serde_json::from_slice(&bytes).ok(),
        modified: meta.modified().unwrap_or(UNIX_EPOCH),
        file_id: (meta.dev(), meta.ino()),
    }))
}

/// What a scheduler sees before starting a run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LockState {
    Free,
    /// Held by a live process (described).
    Live(String),
    /// Held by a process that is gone; the next claim takes it over.
    Stale(String),
}

pub fn lock_state(path: &Path, cfg: &LockConfig) -> Result<LockState, LockError> {
    Ok(match read_lock(path)? {
        None => LockState::Free,
        Some(p) if p.stale(cfg) => LockState::Stale(p.holder()),
        Some(p) => LockState::Live(p.holder()),
    })
}

/// The outcome of a claim.
#[derive(Debug)]
pub enum Claim {
    Claimed(RunLock),
    /// A live process holds the run (described).
    Held(String),
}

/// Claims the run whose lock lives at `path`, taking over a stale lock.
pub fn claim(path: &Path, run: &str, cfg: &LockConfig) -> Result<Claim, LockError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    fs::create_dir_all(dir).map_err(io_err(dir))?;
    let info = LockInfo::new(run);
    let temp = dir.join(format!(".lock.claim-{}", info.token));
    let file = write_new(&temp, &info)?;
    let placed = place(&temp, path, cfg);
    let _ = fs::remove_file(&temp);
    Ok(match placed? {
        Ok(()) => Claim::Claimed(RunLock { path: path.to_path_buf(), file: Arc::new(file), info, heartbeat: None }),
        Err(holder) => Claim::Held(holder),
    })
}

fn write_new(path: &Path, info: &LockInfo) -> Result<File, LockError> {
    let mut file = OpenOptions::new().read(true).write(true).create_new(true).open(path).map_err(io_err(path))?;
    file.write_all(&lock_bytes(info)).map_err(io_err(path))?;
    file.sync_all().map_err(io_err(path))?;
    Ok(file)
}

fn lock_bytes(info: &LockInfo) -> Vec<u8> {
    let mut bytes = serde_json::to_vec(info).unwrap_or_default();
    bytes.push(b'\n');
    bytes
}

/// Links `temp` to `path`; `Ok(Err(holder))` when a live process (or a concurrent takeover)
/// holds it.
fn place(temp: &Path, path: &Path, cfg: &LockConfig) -> Result<Result<(), String>, LockError> {
    for _ in 0..3 {
        match fs::hard_link(temp, path) {
            Ok(()) => return Ok(Ok(())),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(io_err(path)(e)),
        }
        let Some(current) = read_lock(path)? else { continue };
        if !current.stale(cfg) {
            return Ok(Err(current.holder()));
        }
        if take_over(temp, path, &current, cfg)? {
            return Ok(Ok(()));
        }
        return Ok(Err(format!("{} (being taken over by another process)", current.holder())));
    }
    Ok(Err("a lock that changed hands repeatedly".into()))
}

/// Replaces the stale lock `seen` by `temp`, under the takeover guard.
fn take_over(temp: &Path, path: &Path, seen: &Present, cfg: &LockConfig) -> Result<bool, LockError> {
    let guard = guard_path(path);
    match OpenOptions::new().write(true).create_new(true).open(&guard) {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            remove_if_abandoned(&guard, cfg);
            return Ok(false);
        }
        Err(e) => return Err(io_err(&guard)(e)),
    }
    let replaced = match read_lock(path) {
        Ok(Some(now)) if now.file_id == seen.file_id && now.stale(cfg) => {
            fs::rename(temp, path).map(|_| true).map_err(io_err(path))
        }
        Ok(Some(_)) => Ok(false),
        Ok(None) => match fs::hard_link(temp, path) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
            Err(e) => Err(io_err(path)(e)),
        },
        Err(e) => Err(e),
    };
    let _ = fs::remove_file(&guard);
    replaced
}

fn guard_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".takeover");
    path.with_file_name(name)
}

/// A guard lives for microseconds; one older than the stale limit was left by a killed process.
fn remove_if_abandoned(guard: &Path, cfg: &LockConfig) {
    let age = fs::metadata(guard).and_then(|m| m.modified()).ok().and_then(|t| t.elapsed().ok());
    if age.is_some_and(|a| a > cfg.stale_after) {
        let _ = fs::remove_file(guard);
    }
}

/// A claimed run. Dropping it releases the lock if it is still ours.
#[derive(Debug)]
pub struct RunLock {
    path: PathBuf,
    file: Arc<File>,
    info: LockInfo,
    heartbeat: Option<(Sender<()>, JoinHandle<()>)>,
}

impl RunLock {
    #[cfg(test)]
    fn info(&self) -> &LockInfo {
        &self.info
    }

    /// Whether the file at the lock path is still the one this claim placed.
    pub fn is_ours(&self) -> bool {
        same_file(&self.path, &self.file)
    }

    /// Refreshes the heartbeat every `every` on a thread; calls `on_lost` (once, then stops)
    /// if the lock was taken over.
    pub fn start_heartbeat(&mut self, every: Duration, on_lost: Box<dyn Fn() + Send>) {
        let (stop, stopped) = mpsc::channel::<()>();
        let (path, file, mut info) = (self.path.clone(), Arc::clone(&self.file), self.info.clone());
        let handle = std::thread::spawn(move || {
            while let Err(RecvTimeoutError::Timeout) = stopped.recv_timeout(every) {
                if !same_file(&path, &file) {
                    on_lost();
                    return;
                }
                info.heartbeat_ms = unix_ms(SystemTime::now());
                let bytes = lock_bytes(&info);
                // Same length as before (only digits change), so a reader sees old or new JSON.
                let _ = file.write_all_at(&bytes, 0).and_then(|_| file.set_len(bytes.len() as u64));
            }
        });
        self.heartbeat = Some((stop, handle));
    }

    /// Stops the heartbeat and removes the lock if it is still ours.
    pub fn release(mut self) -> Result<(), LockError> {
        self.remove()
    }

    fn remove(&mut self) -> Result<(), LockError> {
        if let Some((stop, handle)) = self.heartbeat.take() {
            drop(stop);
            let _ = handle.join();
        }
        if self.is_ours() {
            match fs::remove_file(&self.path) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(io_err(&self.path)(e)),
                _ => {}
            }
        }
        Ok(())
    }
}

impl Drop for RunLock {
    fn drop(&mut self) {
        let _ = self.remove();
    }
}

fn same_file(path: &Path, file: &File) -> bool {
    match (fs::metadata(path), file.metadata()) {
        (Ok(a), Ok(b)) => (a.dev(), a.ino()) == (b.dev(), b.ino()),
        _ => false,
    }
}

fn unix_ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).unwrap_or_default().as_millis() as u64
}

fn new_token(host: &str, pid: u32) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_nanos();
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let digest = Sha256::digest(format!("{host}/{pid}/{nanos}/{n}").as_bytes());
    digest[..8].iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicBool;

    fn info(host: &str, pid: u32, heartbeat_ms: u64) -> LockInfo {
        LockInfo {
            run: "r".into(),
            host: host.into(),
            pid,
            token: "t".into(),
            started_at: "2025-01-01T00:00:00.000Z".into(),
            heartbeat_ms,
        }
    }

    fn plant(path: &Path, info: &LockInfo) {
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, lock_bytes(info)).unwrap();
    }

    fn dead_pid() -> u32 {
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        child.wait().unwrap();
        pid
    }

    #[test]
    fn staleness_rule() {
        let alive = |pid| pid == 7;
        assert!(!is_stale(&info("here", 7, 1000), 1500, "here", 1000, alive));
        assert!(is_stale(&info("here", 8, 1000), 1500, "here", 1000, alive), "dead pid on this host");
        assert!(!is_stale(&info("there", 8, 1000), 1500, "here", 1000, alive), "another host's pid is not checked");
        assert!(is_stale(&info("there", 8, 1000), 2001, "here", 1000, alive), "old heartbeat");
        assert!(is_stale(&info("here", 7, 1000), 2001, "here", 1000, alive), "alive but silent");
    }

    #[test]
    fn a_claim_excludes_others_until_released() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("run/lock.json");
        let cfg = LockConfig::default();
        let Claim::Claimed(lock) = claim(&path, "r", &cfg).unwrap() else { panic!("first claim") };
        assert!(
            matches!(claim(&path, "r", &cfg).unwrap(), Claim::Held(h) if h.contains(&std::process::id().to_string()))
        );
        assert!(matches!(lock_state(&path, &cfg).unwrap(), LockState::Live(_)));
        let on_disk: LockInfo = serde_json::from_slice(&fs::read(&path).unwrap()).unwrap();
        assert_eq!(&on_disk, lock.info());
        lock.release().unwrap();
        assert_eq!(lock_state(&path, &cfg).unwrap(), LockState::Free);
        let names: Vec<_> = fs::read_dir(path.parent().unwrap()).unwrap().flatten().map(|e| e.file_name()).collect();
        assert!(names.is_empty(), "{names:?}");
        assert!(matches!(claim(&path, "r", &cfg).unwrap(), Claim::Claimed(_)));
    }

    #[test]
    fn stale_locks_are_taken_over() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("lock.json");
        let cfg = LockConfig::with_stale_after(Duration::from_secs(60));
        let now = unix_ms(SystemTime::now());
        plant(&path, &info(&hostname(), dead_pid(), now));
        assert!(matches!(lock_state(&path, &cfg).unwrap(), LockState::Stale(_)));
        let Claim::Claimed(lock) = claim(&path, "r", &cfg).unwrap() else { panic!("dead pid not taken over") };
        assert!(lock.is_ours());
        drop(lock);
        plant(&path, &info("elsewhere", 1, now - 61_000));
        assert!(matches!(claim(&path, "r", &cfg).unwrap(), Claim::Claimed(_)), "old heartbeat not taken over");
        plant(&path, &info("elsewhere", 1, now));
        assert!(matches!(claim(&path, "r", &cfg).unwrap(), Claim::Held(_)), "live remote holder taken over");
        assert!(!guard_path(&path).exists());
    }

    #[test]
    fn concurrent_takeovers_of_one_stale_lock_have_one_winner() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = LockConfig::default();
        let dead = dead_pid();
        for round in 0..20 {
            let path = dir.path().join(format!("r{round}/lock.json"));
            plant(&path, &info(&hostname(), dead, unix_ms(SystemTime::now())));
            let barrier = Arc::new(std::sync::Barrier::new(6));
            let handles: Vec<_> = (0..6)
                .map(|_| {
                    let (path, barrier) = (path.clone(), Arc::clone(&barrier));
                    std::thread::spawn(move || {
                        barrier.wait();
                        match claim(&path, "r", &cfg).unwrap() {
                            Claim::Claimed(lock) => {
                                std::mem::forget(lock); // keep the lock for the others to see
                                1
                            }
                            Claim::Held(_) => 0,
                        }
                    })
                })
                .collect();
            let winners: i32 = handles.into_iter().map(|h| h.join().unwrap()).sum();
            assert_eq!(winners, 1, "round {round}");
        }
    }

    #[test]
    fn heartbeat_refreshes_and_detects_a_takeover() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("lock.json");
        let cfg = LockConfig::default();
        let Claim::Claimed(mut lock) = claim(&path, "r", &cfg).unwrap() else { panic!() };
        let first = lock.info().heartbeat_ms;
        let lost = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&lost);
        lock.start_heartbeat(Duration::from_millis(10), Box::new(move || flag.store(true, Ordering::SeqCst)));
        std::thread::sleep(Duration::from_millis(60));
        let on_disk: LockInfo = serde_json::from_slice(&fs::read(&path).unwrap()).unwrap();
        assert!(on_disk.heartbeat_ms > first);
        assert_eq!(on_disk.token, lock.info().token);
        fs::remove_file(&path).unwrap();
        plant(&path, &info("thief", 1, unix_ms(SystemTime::now())));
        std::thread::sleep(Duration::from_millis(60));
        assert!(lost.load(Ordering::SeqCst));
        lock.release().unwrap();
        assert!(path.exists(), "release removed a lock that was not ours");
    }
}
