//! The disk's fsync floor: how long a small append plus `fdatasync` takes on the filesystem
//! that holds the server's journal. Vigil hands an alert to subscribers only once its
//! journal write is on disk, so these percentiles bound the server's alert latency from
//! below, whatever the server does.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::Context;
use hdrhistogram::Histogram;
use serde::Serialize;

/// About the size of one journaled alert event.
const RECORD: [u8; 200] = [b'x'; 200];

/// Percentiles of the fsyncs measured, in microseconds.
#[derive(Debug, Clone, Serialize, Default)]
pub struct FsyncSummary {
    pub count: u64,
    pub p50_us: u64,
    pub p90_us: u64,
    pub p99_us: u64,
    pub max_us: u64,
}

impl FsyncSummary {
    fn of(h: &Histogram<u64>) -> FsyncSummary {
        FsyncSummary {
            count: h.len(),
            p50_us: h.value_at_quantile(0.50),
            p90_us: h.value_at_quantile(0.90),
            p99_us: h.value_at_quantile(0.99),
            max_us: h.max(),
        }
    }
}

/// Appends and fsyncs in a thread of its own, every `every`, until [`FsyncProbe::finish`].
pub struct FsyncProbe {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<anyhow::Result<Histogram<u64>>>,
    path: PathBuf,
}

impl FsyncProbe {
    /// Starts appending to a scratch file in `dir` (removed by `finish`).
    pub fn start(dir: &Path, every: Duration) -> anyhow::Result<FsyncProbe> {
        FsyncProbe::start_with(dir, every, u64::MAX)
    }

    /// Stops by itself after `count` fsyncs.
    fn start_with(dir: &Path, every: Duration, count: u64) -> anyhow::Result<FsyncProbe> {
        let path = dir.join("vigil-bench-fsync-probe");
        let file = OpenOptions::new()
            .create(true)
            .truncate(true)
            .write(true)
            .open(&path)
            .with_context(|| format!("creating {}", path.display()))?;
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let stop = stop.clone();
            std::thread::Builder::new()
                .name("fsync-probe".into())
                .spawn(move || append_until(file, &stop, every, count))?
        };
        Ok(FsyncProbe { stop, thread, path })
    }

    /// Stops, removes the scratch file and summarises.
    pub fn finish(self) -> anyhow::Result<FsyncSummary> {
        self.finish_with(true)
    }

    fn finish_with(self, stop: bool) -> anyhow::Result<FsyncSummary> {
        self.stop.store(stop, Ordering::Relaxed);
        let h = self
            .thread
            .join()
            .map_err(|_| anyhow::anyhow!("the fsync probe panicked"))??;
        let _ = std::fs::remove_file(&self.path);
        Ok(FsyncSummary::of(&h))
    }
}

/// `count` fsyncs `every` apart, on an otherwise idle machine.
pub fn measure(dir: &Path, count: u64, every: Duration) -> anyhow::Result<FsyncSummary> {
    FsyncProbe::start_with(dir, every, count)?.finish_with(false)
}

fn append_until(
    mut file: File,
    stop: &AtomicBool,
    every: Duration,
    count: u64,
) -> anyhow::Result<Histogram<u64>> {
    let mut h = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)?;
    while h.len() < count && !stop.load(Ordering::Relaxed) {
        let start = Instant::now();
        file.write_all(&RECORD)?;
        file.sync_data()?;
        h.record((start.elapsed().as_micros() as u64).max(1))?;
        std::thread::sleep(every);
    }
    Ok(h)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn measures_every_fsync_and_cleans_up() {
        let dir = tempfile::tempdir().unwrap();
        let probe = FsyncProbe::start(dir.path(), Duration::from_millis(1)).unwrap();
        std::thread::sleep(Duration::from_millis(50));
        let s = probe.finish().unwrap();
        assert!(s.count >= 5, "{s:?}");
        assert!(
            s.p50_us >= 1 && s.p50_us <= s.p99_us && s.p99_us <= s.max_us,
            "{s:?}"
        );
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
        let s = measure(dir.path(), 20, Duration::from_millis(1)).unwrap();
        assert_eq!(s.count, 20);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }
}
