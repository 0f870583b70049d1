//! What a crash may leave at the end of the store's write-ahead log: after an unclean
//! shutdown its log files are copied aside before the store opens them, and every
//! non-zero byte its recovery cuts off is kept in a file of its own beside the journal.

use std::path::{Path, PathBuf};

use super::error::JournalError;

/// Bytes at the end of one of the store's write-ahead-log files that its recovery dropped
/// (a torn or corrupt last write), copied to a file of their own beside the journal.
#[derive(Debug, Clone, PartialEq)]
pub struct SetAside {
    /// The log file they were cut from.
    pub file: PathBuf,
    /// Where in it the dropped bytes began.
    pub offset: u64,
    /// How many (trailing zero padding not counted).
    pub bytes: u64,
    /// Where they are kept now.
    pub kept_in: PathBuf,
}

/// Path of a sibling of the journal directory: `<dir name>.<suffix>`.
pub(super) fn beside(dir: &Path, suffix: &str) -> PathBuf {
    let name = dir
        .file_name()
        .map_or_else(|| "journal".into(), |n| n.to_string_lossy().into_owned());
    dir.with_file_name(format!("{name}.{suffix}"))
}

/// Log files copied aside before recovery: the copies' directory, and (log, copy) pairs.
pub(super) struct CopiedLogs {
    dir: PathBuf,
    logs: Vec<(PathBuf, PathBuf)>,
}

/// After an unclean shutdown, copies the store's write-ahead-log files (`*.jnl`) aside
/// (on disk, not in memory), so what its recovery cuts off can be kept. After a clean
/// shutdown (marker present) there is no torn write to find and nothing is copied.
pub(super) fn copy_logs(dir: &Path) -> Result<Option<CopiedLogs>, JournalError> {
    let marker = beside(dir, "clean");
    if marker.exists() {
        std::fs::remove_file(&marker).map_err(io)?;
        return Ok(None);
    }
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Ok(None);
    };
    let copies = beside(dir, "recovering");
    let _ = std::fs::remove_dir_all(&copies);
    std::fs::create_dir_all(&copies).map_err(io)?;
    let mut logs = Vec::new();
    for path in entries.filter_map(|e| e.ok().map(|e| e.path())) {
        if let (Some(true), Some(name)) = (path.extension().map(|x| x == "jnl"), path.file_name()) {
            let copy = copies.join(name);
            std::fs::copy(&path, &copy).map_err(io)?;
            logs.push((path, copy));
        }
    }
    Ok(Some(CopiedLogs { dir: copies, logs }))
}

/// Compares the log files with their copies from before the store opened them, and keeps
/// every non-zero byte its recovery cut off; then removes the copies.
pub(super) fn set_aside_dropped(
    dir: &Path,
    copied: Option<CopiedLogs>,
) -> Result<Vec<SetAside>, JournalError> {
    use std::io::{Read, Seek, SeekFrom};
    let Some(CopiedLogs { dir: copies, logs }) = copied else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis());
    for (file, copy) in logs {
        let now = std::fs::metadata(&file).map_or(0, |m| m.len());
        let before = std::fs::metadata(&copy).map_or(0, |m| m.len());
        if now >= before {
            continue;
        }
        let mut tail = Vec::new();
        let mut f = std::fs::File::open(&copy).map_err(io)?;
        f.seek(SeekFrom::Start(now)).map_err(io)?;
        f.read_to_end(&mut tail).map_err(io)?;
        // Pre-allocated, never-written space is zeros: not data.
        let end = tail.iter().rposition(|b| *b != 0).map_or(0, |p| p + 1);
        if end == 0 {
            continue;
        }
        let name = file
            .file_name()
            .map_or_else(|| "log".into(), |n| n.to_string_lossy().into_owned());
        let kept_in = beside(dir, &format!("damaged-{stamp}-{name}"));
        std::fs::write(&kept_in, &tail[..end]).map_err(io)?;
        out.push(SetAside {
            file,
            offset: now,
            bytes: end as u64,
            kept_in,
        });
    }
    std::fs::remove_dir_all(&copies).map_err(io)?;
    Ok(out)
}

pub(super) fn io(e: std::io::Error) -> JournalError {
    JournalError::Store(e.into())
}
