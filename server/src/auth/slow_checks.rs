//! The bounded pool that runs Argon2 checks: at most `workers` at once (each holds 19 MiB
//! while it runs) and at most `queue` waiting; an attempt beyond that is refused at once,
//! so a flood of logins costs neither memory nor the other devices' latency.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use tokio::sync::Semaphore;

/// Default checks running at once.
pub const DEFAULT_WORKERS: usize = 2;
/// Default checks waiting for a worker.
pub const DEFAULT_QUEUE: usize = 32;

/// The pool was full: the attempt was not checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Busy;

pub struct SlowChecks {
    workers: Arc<Semaphore>,
    /// Checks admitted (running or waiting), bounded by `capacity`.
    admitted: AtomicUsize,
    capacity: usize,
}

impl SlowChecks {
    pub fn new(workers: usize, queue: usize) -> SlowChecks {
        let workers = workers.max(1);
        SlowChecks {
            workers: Arc::new(Semaphore::new(workers)),
            admitted: AtomicUsize::new(0),
            capacity: workers + queue,
        }
    }

    /// Runs `check` on a blocking thread once a worker is free, or refuses at once when
    /// `workers + queue` checks are already admitted.
    pub async fn run<T, F>(&self, check: F) -> Result<T, Busy>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        self.admitted
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < self.capacity).then_some(n + 1)
            })
            .map_err(|_| Busy)?;
        /// Gives the admission back however the check ends (a dropped connection included).
        struct Admission<'a>(&'a AtomicUsize);
        impl Drop for Admission<'_> {
            fn drop(&mut self) {
                self.0.fetch_sub(1, Ordering::AcqRel);
            }
        }
        let _admission = Admission(&self.admitted);
        let permit = self
            .workers
            .clone()
            .acquire_owned()
            .await
            .expect("the semaphore is never closed");
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            check()
        })
        .await
        .map_err(|_| Busy)
    }

    /// Checks running or waiting.
    pub fn admitted(&self) -> usize {
        self.admitted.load(Ordering::Acquire)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn beyond_workers_and_queue_an_attempt_is_refused_at_once() {
        let pool = Arc::new(SlowChecks::new(2, 3));
        let (release, gate) = std::sync::mpsc::channel::<()>();
        let gate = Arc::new(std::sync::Mutex::new(gate));
        let running = Arc::new(AtomicUsize::new(0));
        let peak = Arc::new(AtomicUsize::new(0));
        let mut tasks = Vec::new();
        for _ in 0..5 {
            let (pool, gate, running, peak) =
                (pool.clone(), gate.clone(), running.clone(), peak.clone());
            tasks.push(tokio::spawn(async move {
                pool.run(move || {
                    let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                    peak.fetch_max(now, Ordering::SeqCst);
                    let _ = gate.lock().unwrap().recv();
                    running.fetch_sub(1, Ordering::SeqCst);
                })
                .await
            }));
        }
        while pool.admitted() < 5 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert_eq!(
            pool.run(|| ()).await,
            Err(Busy),
            "workers and queue are full"
        );
        for _ in 0..5 {
            release.send(()).unwrap();
        }
        for task in tasks {
            assert_eq!(task.await.unwrap(), Ok(()));
        }
        assert_eq!(
            peak.load(Ordering::SeqCst),
            2,
            "never more than the workers at once"
        );
        assert_eq!(pool.admitted(), 0);
        assert_eq!(pool.run(|| 7).await, Ok(7), "room again");
    }
}
