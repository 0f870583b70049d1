//! The data directory holds health data (alerts, patients, window samples, the audit log):
//! it is created owner-only, and one that other local users can read is refused at start.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use tracing::warn;

/// The process's file-creation mask: every file and directory Vigil creates is owner-only,
/// whatever the library that creates it asks for (fjall, the audit log, `ports.json`).
pub fn restrict_umask() {
    #[cfg(unix)]
    // SAFETY: umask(2) only swaps the process's mask; it cannot fail.
    unsafe {
        libc::umask(0o077);
    }
}

/// Replaces `path` with `bytes` atomically and durably, readable by the service alone:
/// written to `path` + `.tmp` (mode 0600), fsynced, renamed over `path`, and the directory
/// fsynced so that the rename survives a crash.
pub fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut tmp = PathBuf::from(path).into_os_string();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    let mut options = std::fs::OpenOptions::new();
    options.create(true).write(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(&tmp)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    std::fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent() {
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}

/// Creates `dir` (and missing parents) with mode 0700, then refuses it if group or others
/// have any access, unless `allow_shared` (then it warns).
pub fn prepare(dir: &Path, allow_shared: bool) -> anyhow::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder
        .create(dir)
        .with_context(|| format!("cannot create data directory {}", dir.display()))?;
    let Some(mode) = shared_bits(dir)? else {
        return Ok(());
    };
    if allow_shared {
        warn!(
            data_dir = %dir.display(),
            mode = format!("{mode:o}"),
            "the data directory is readable by other local users (--allow-shared-data-dir)"
        );
        return Ok(());
    }
    bail!(
        "data directory {} has mode {mode:o}: other local users could read its health data. \
         Fix it with `chmod -R go= {}` (or start with --allow-shared-data-dir in a lab)",
        dir.display(),
        dir.display()
    )
}

/// The directory's permission bits if group or others have any access to it.
fn shared_bits(dir: &Path) -> anyhow::Result<Option<u32>> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir)
            .with_context(|| format!("cannot read data directory {}", dir.display()))?
            .permissions()
            .mode()
            & 0o777;
        Ok((mode & 0o077 != 0).then_some(mode))
    }
    #[cfg(not(unix))]
    {
        let _ = dir;
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn a_new_directory_is_owner_only_and_a_shared_one_is_refused() {
        let root = tempfile::tempdir().unwrap();
        let fresh = root.path().join("a/b");
        prepare(&fresh, false).unwrap();
        let mode = std::fs::metadata(&fresh).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700);

        let shared = root.path().join("shared");
        std::fs::create_dir(&shared).unwrap();
        std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o750)).unwrap();
        let err = prepare(&shared, false).unwrap_err().to_string();
        assert!(
            err.contains("mode 750") && err.contains("chmod -R go="),
            "{err}"
        );
        prepare(&shared, true).unwrap();
    }
}
