//! Counts SIGINT and SIGTERM while a sweep runs, so the scheduler can stop gracefully: the
//! handler only bumps a counter (async-signal-safe); after the second signal it restores the
//! default action, so a third one ends the scheduler at once.

use std::sync::atomic::{AtomicUsize, Ordering};

static RECEIVED: AtomicUsize = AtomicUsize::new(0);

extern "C" fn on_signal(sig: libc::c_int) {
    if RECEIVED.fetch_add(1, Ordering::SeqCst) + 1 >= 2 {
        // SAFETY: signal() with SIG_DFL is async-signal-safe on Linux (it is sigaction).
        unsafe { libc::signal(sig, libc::SIG_DFL) };
    }
}

/// Installed handlers; dropping it restores the previous ones.
pub struct SignalWatch {
    previous: Vec<(libc::c_int, libc::sigaction)>,
}

impl SignalWatch {
    pub fn install() -> std::io::Result<Self> {
        RECEIVED.store(0, Ordering::SeqCst);
        let mut previous = Vec::new();
        for sig in [libc::SIGINT, libc::SIGTERM] {
            // SAFETY: a zeroed sigaction with a plain handler and an empty mask is valid.
            unsafe {
                let mut action: libc::sigaction = std::mem::zeroed();
                action.sa_sigaction = on_signal as extern "C" fn(libc::c_int) as libc::sighandler_t;
                action.sa_flags = libc::SA_RESTART;
                libc::sigemptyset(&mut action.sa_mask);
                let mut old: libc::sigaction = std::mem::zeroed();
                if libc::sigaction(sig, &action, &mut old) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                previous.push((sig, old));
            }
        }
        Ok(SignalWatch { previous })
    }

    /// Signals received since `install`.
    pub fn count(&self) -> usize {
        RECEIVED.load(Ordering::SeqCst)
    }
}

impl Drop for SignalWatch {
    fn drop(&mut self) {
        for (sig, old) in &self.previous {
            // SAFETY: restoring the action saved by install.
            unsafe { libc::sigaction(*sig, old, std::ptr::null_mut()) };
        }
    }
}
