//! Transparent huge pages off for the server process.
//!
//! mimalloc asks Linux for transparent huge pages (`MADV_HUGEPAGE`) on its arenas. The
//! first touch of such a 2 MiB page faults it in whole: the kernel zeroes 2 MiB while the
//! thread waits (tens of microseconds, milliseconds at worst on a virtual machine whose host
//! backs memory only on first touch). Windows grow by doubling their rings, and
//! patients whose devices started together cross the same size together, so those faults
//! come in bursts, on the ingest threads, under a patient's shard lock: every reading of
//! that shard then waits too: the reading → alert latency's tail. With 4 KiB pages a fault
//! zeroes 4 KiB, and huge pages save the server no CPU (docs/benchmarks.md).
//!
//! `MIMALLOC_ALLOW_THP`, mimalloc's own setting, overrides this: set to 1, the process
//! keeps huge pages; set to 0, mimalloc turns them off itself.

use std::sync::OnceLock;

use tracing::info;

/// What `disable` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Huge pages are off for this process from now on.
    Disabled,
    /// They were already off (inherited from the parent, or mimalloc did it).
    AlreadyDisabled,
    /// `MIMALLOC_ALLOW_THP` is set: the operator chose.
    LeftToAllocator,
    /// Not Linux, or the kernel refused (the error).
    Unavailable(String),
}

static OUTCOME: OnceLock<Outcome> = OnceLock::new();

/// Turns transparent huge pages off for the whole process (`PR_SET_THP_DISABLE`), unless
/// the operator set `MIMALLOC_ALLOW_THP`. Pages already faulted in stay as they are, so
/// the binary calls it first, before logging is set up; `outcome` tells it later.
pub fn disable() -> Outcome {
    let outcome = if std::env::var_os("MIMALLOC_ALLOW_THP").is_some() {
        Outcome::LeftToAllocator
    } else {
        sys::disable()
    };
    let _ = OUTCOME.set(outcome.clone());
    outcome
}

/// What the first `disable` did; `None` if it was not called.
pub fn outcome() -> Option<&'static Outcome> {
    OUTCOME.get()
}

/// Whether transparent huge pages are off for this process.
pub fn disabled() -> Option<bool> {
    sys::disabled()
}

#[cfg(target_os = "linux")]
mod sys {
    use super::Outcome;

    pub fn disabled() -> Option<bool> {
        // SAFETY: prctl(2) with PR_GET_THP_DISABLE reads a flag of the calling process;
        // the unused arguments must be zero.
        match unsafe { libc::prctl(libc::PR_GET_THP_DISABLE, 0, 0, 0, 0) } {
            -1 => None,
            flag => Some(flag != 0),
        }
    }

    pub fn disable() -> Outcome {
        if disabled() == Some(true) {
            return Outcome::AlreadyDisabled;
        }
        // SAFETY: prctl(2) with PR_SET_THP_DISABLE sets a flag of the calling process;
        // the unused arguments must be zero.
        match unsafe { libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0) } {
            0 => Outcome::Disabled,
            _ => Outcome::Unavailable(std::io::Error::last_os_error().to_string()),
        }
    }
}

#[cfg(not(target_os = "linux"))]
mod sys {
    use super::Outcome;

    pub fn disabled() -> Option<bool> {
        None
    }

    pub fn disable() -> Outcome {
        Outcome::Unavailable("transparent huge pages are a Linux feature".into())
    }
}

/// Says at startup whether the process runs without transparent huge pages.
pub fn log_outcome() {
    let Some(outcome) = outcome() else {
        return;
    };
    match outcome {
        Outcome::Disabled | Outcome::AlreadyDisabled => {
            info!("transparent huge pages off for this process (MIMALLOC_ALLOW_THP=1 keeps them)")
        }
        Outcome::LeftToAllocator if disabled() == Some(true) => {
            info!("transparent huge pages off for this process, as MIMALLOC_ALLOW_THP says")
        }
        Outcome::LeftToAllocator => info!(
            "transparent huge pages on, as MIMALLOC_ALLOW_THP says: their faults can stall \
             ingest for milliseconds"
        ),
        Outcome::Unavailable(why) => {
            info!(reason = %why, "transparent huge pages left as they are")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(target_os = "linux")]
    #[test]
    fn disabling_sets_the_process_flag_and_is_idempotent() {
        if std::env::var_os("MIMALLOC_ALLOW_THP").is_some() {
            return; // the operator's choice is tested by the integration test
        }
        let first = disable();
        assert!(
            matches!(first, Outcome::Disabled | Outcome::AlreadyDisabled),
            "{first:?}"
        );
        assert_eq!(disabled(), Some(true));
        assert_eq!(disable(), Outcome::AlreadyDisabled);
    }
}
