//! CPU priority of the alert journal's writer: the thread that fsyncs raised alerts and
//! hands them to subscribers asks Linux for a short slice and a nice level of -10, so that
//! when its fsync completes it gets a core at once rather than waiting behind device
//! ingest. It sleeps in fsync most of the time, so it cannot take much from anyone.
//!
//! - The slice: Linux 6.12 and later honour a custom slice for ordinary (`SCHED_OTHER`)
//!   threads; a waking thread whose slice is shorter than the running one's preempts it
//!   (`PREEMPT_SHORT`). No privilege needed; older kernels accept it and ignore it.
//! - The nice level needs `CAP_SYS_NICE` or a nice limit (`RLIMIT_NICE`, systemd's
//!   `LimitNICE=-10`); without either the thread keeps nice 0 and only the slice applies.
//!
//! Threads inherit their creator's slice and nice level, so the writer gets them from the
//! thread that spawns it (`spawning`).

use std::time::Duration;

/// A thread's scheduling under `SCHED_OTHER`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Priority {
    /// The slice the kernel gives the thread.
    pub slice: Duration,
    pub nice: i32,
}

/// What the alert journal's writer asks for: the kernel's shortest slice (its default is
/// 0.7 ms × (1 + log2 of the core count), 1.4 ms on 2 cores), and nice -10.
pub const ALERT_WRITER: Priority = Priority {
    slice: Duration::from_micros(100),
    nice: -10,
};

/// The nice level of background work that must not slow device ingest (the periodic
/// window snapshots): under a saturating load it gets about a tenth of a core, so it still
/// finishes, and at any other time all it needs.
pub const BACKGROUND_NICE: i32 = 10;

/// Lowers the calling thread to nice `nice` if it runs above it (lowering needs no
/// privilege); whether it now runs at `nice` or below.
pub fn lower_current(nice: i32) -> bool {
    match current() {
        Some(p) if p.nice >= nice => true,
        Some(p) => sys::set(0, Some(p.slice).filter(|s| !s.is_zero()), nice).is_ok(),
        None => false,
    }
}

/// What `spawning` obtained.
#[derive(Debug, PartialEq, Eq)]
pub enum Granted {
    /// The slice and the nice level.
    All,
    /// The slice only: raising the priority was refused (no `CAP_SYS_NICE`, nice limit
    /// too low).
    SliceOnly,
    /// Nothing: not Linux, the thread is not under `SCHED_OTHER` (an operator chose its
    /// policy), or the kernel refused.
    Nothing,
}

/// Runs `spawn` with the calling thread at `priority`, so that the threads it starts
/// inherit it, then puts the calling thread back as it was.
pub fn spawning<T>(priority: Priority, spawn: impl FnOnce() -> T) -> (T, Granted) {
    let before = current();
    let granted = match before {
        Some(before) => raise(before, priority),
        None => Granted::Nothing,
    };
    let spawned = spawn();
    if let (Some(before), Granted::All | Granted::SliceOnly) = (before, &granted) {
        // Going back to a lower priority (a higher nice level) is always allowed.
        if let Err(e) = sys::set(0, Some(before.slice), before.nice) {
            tracing::debug!(error = %e, "cannot restore the thread's priority");
        }
    }
    (spawned, granted)
}

fn raise(before: Priority, priority: Priority) -> Granted {
    match sys::set(0, Some(priority.slice), priority.nice) {
        Ok(()) => Granted::All,
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
            match sys::set(0, Some(priority.slice), before.nice) {
                Ok(()) => Granted::SliceOnly,
                Err(_) => Granted::Nothing,
            }
        }
        Err(e) => {
            tracing::debug!(error = %e, "cannot change the thread's priority");
            Granted::Nothing
        }
    }
}

/// The calling thread's priority; `None` unless it is under `SCHED_OTHER` on Linux.
pub fn current() -> Option<Priority> {
    of_thread(0).ok().flatten()
}

/// Thread `tid`'s priority (0: the calling thread); `Ok(None)` unless it is under
/// `SCHED_OTHER` on Linux. Before Linux 6.12 the slice reads as zero.
pub fn of_thread(tid: i32) -> std::io::Result<Option<Priority>> {
    sys::get(tid)
}

/// Whether the running kernel honours custom slices (6.12 or later).
pub fn slices_supported() -> bool {
    let Ok(release) = std::fs::read_to_string("/proc/sys/kernel/osrelease") else {
        return false;
    };
    let mut parts = release.trim().split(['.', '-']);
    let mut number = || {
        parts
            .next()
            .and_then(|p| p.parse::<u32>().ok())
            .unwrap_or(0)
    };
    (number(), number()) >= (6, 12)
}

#[cfg(target_os = "linux")]
mod sys {
    use super::Priority;
    use std::time::Duration;

    /// `struct sched_attr` (include/uapi/linux/sched/types.h) with the utilisation clamps.
    #[repr(C)]
    #[derive(Default)]
    struct SchedAttr {
        size: u32,
        policy: u32,
        flags: u64,
        nice: i32,
        priority: u32,
        runtime_ns: u64,
        deadline_ns: u64,
        period_ns: u64,
        util_min: u32,
        util_max: u32,
    }

    fn attr(tid: i32) -> std::io::Result<SchedAttr> {
        let mut attr = SchedAttr::default();
        // SAFETY: sched_getattr(2) writes at most `size` bytes into `attr`, its own size.
        let rc = unsafe {
            libc::syscall(
                libc::SYS_sched_getattr,
                tid,
                &mut attr as *mut SchedAttr,
                std::mem::size_of::<SchedAttr>() as u32,
                0,
            )
        };
        if rc == 0 {
            Ok(attr)
        } else {
            Err(std::io::Error::last_os_error())
        }
    }

    pub fn get(tid: i32) -> std::io::Result<Option<Priority>> {
        let attr = attr(tid)?;
        Ok((attr.policy == libc::SCHED_OTHER as u32).then(|| Priority {
            slice: Duration::from_nanos(attr.runtime_ns),
            nice: attr.nice,
        }))
    }

    /// Thread `tid` under `SCHED_OTHER` with `slice` (`None` or zero: the kernel's
    /// default) and `nice`.
    pub fn set(tid: i32, slice: Option<Duration>, nice: i32) -> std::io::Result<()> {
        let attr = SchedAttr {
            size: std::mem::size_of::<SchedAttr>() as u32,
            policy: libc::SCHED_OTHER as u32,
            nice,
            runtime_ns: slice.map_or(0, |s| s.as_nanos() as u64),
            ..SchedAttr::default()
        };
        // SAFETY: sched_setattr(2) with a fully initialised `sched_attr` whose `size` is
        // its own size.
        let rc =
            unsafe { libc::syscall(libc::SYS_sched_setattr, tid, &attr as *const SchedAttr, 0) };
        if rc == 0 {
            Ok(())
        } else {
            Err(std::io::Error::last_os_error())
        }
    }
}

#[cfg(not(target_os = "linux"))]
mod sys {
    use super::Priority;
    use std::time::Duration;

    pub fn get(_tid: i32) -> std::io::Result<Option<Priority>> {
        Ok(None)
    }

    pub fn set(_tid: i32, _slice: Option<Duration>, _nice: i32) -> std::io::Result<()> {
        Err(std::io::ErrorKind::Unsupported.into())
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    /// Whether this process may lower a nice level (root or `CAP_SYS_NICE`, or a nice
    /// limit of at least -10).
    fn may_raise_priority() -> bool {
        std::thread::spawn(|| sys::set(0, None, -10).is_ok())
            .join()
            .unwrap()
    }

    #[test]
    fn background_work_runs_below_everything_else() {
        std::thread::spawn(|| {
            let before = current().expect("tests run under SCHED_OTHER");
            assert!(lower_current(BACKGROUND_NICE));
            assert_eq!(current().unwrap().nice, BACKGROUND_NICE.max(before.nice));
            // Never raised back.
            assert!(lower_current(0));
            assert_eq!(current().unwrap().nice, BACKGROUND_NICE.max(before.nice));
        })
        .join()
        .unwrap();
    }

    #[test]
    fn spawned_threads_inherit_the_priority_and_the_spawner_gets_its_own_back() {
        std::thread::spawn(|| {
            let before = current().expect("tests run under SCHED_OTHER");
            let (child, granted) = spawning(ALERT_WRITER, || {
                std::thread::spawn(|| current().unwrap()).join().unwrap()
            });
            assert_eq!(current(), Some(before), "the spawner is back as it was");
            let expected_nice = if may_raise_priority() {
                assert_eq!(granted, Granted::All);
                ALERT_WRITER.nice
            } else {
                assert_eq!(granted, Granted::SliceOnly);
                before.nice
            };
            assert_eq!(child.nice, expected_nice);
            if slices_supported() {
                assert_eq!(child.slice, ALERT_WRITER.slice);
                assert_ne!(before.slice, ALERT_WRITER.slice, "the default is longer");
            }
        })
        .join()
        .unwrap();
    }
}
