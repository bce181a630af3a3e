//! Where hutch keeps things: data (images, containers) under
//! `$XDG_DATA_HOME/hutch`, runtime state (mount staging, locks) under
//! `$XDG_RUNTIME_DIR/hutch` or a private directory in /tmp.

use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum PathsError {
    #[error("cannot create {path}: {source}")]
    Create {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is not a private directory of uid {uid} (hint: remove it, or set XDG_RUNTIME_DIR to a directory only you can write)")]
    NotPrivate { path: PathBuf, uid: u32 },
    #[error("neither XDG_DATA_HOME nor HOME is set (hint: set HUTCH_DATA_DIR)")]
    NoHome,
}

pub fn uid() -> u32 {
    // SAFETY: getuid cannot fail.
    unsafe { libc::getuid() }
}

/// `$HUTCH_DATA_DIR`, else `$XDG_DATA_HOME/hutch`, else `~/.local/share/hutch`.
pub fn data_dir() -> Result<PathBuf, PathsError> {
    let dir = if let Some(d) = std::env::var_os("HUTCH_DATA_DIR") {
        PathBuf::from(d)
    } else if let Some(d) = std::env::var_os("XDG_DATA_HOME").filter(|d| !d.is_empty()) {
        PathBuf::from(d).join("hutch")
    } else if let Some(h) = std::env::var_os("HOME").filter(|d| !d.is_empty()) {
        PathBuf::from(h).join(".local/share/hutch")
    } else {
        return Err(PathsError::NoHome);
    };
    create_private(&dir)?;
    Ok(dir)
}

/// `$XDG_RUNTIME_DIR/hutch` when that exists, else `/tmp/hutch-$UID`, made
/// private and checked to be ours (a shared /tmp invites symlink games).
pub fn runtime_dir() -> Result<PathBuf, PathsError> {
    let dir = match std::env::var_os("XDG_RUNTIME_DIR").map(PathBuf::from) {
        Some(d) if d.is_dir() => d.join("hutch"),
        _ => PathBuf::from(format!("/tmp/hutch-{}", uid())),
    };
    create_private(&dir)?;
    Ok(dir)
}

/// Create `dir` (and parents) with mode 0700 and check that it is a real
/// directory owned by us that nobody else may write.
pub fn create_private(dir: &Path) -> Result<(), PathsError> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|source| PathsError::Create {
            path: dir.to_path_buf(),
            source,
        })?;
    let meta = std::fs::symlink_metadata(dir).map_err(|source| PathsError::Create {
        path: dir.to_path_buf(),
        source,
    })?;
    if !meta.is_dir() || meta.uid() != uid() || meta.permissions().mode() & 0o022 != 0 {
        return Err(PathsError::NotPrivate {
            path: dir.to_path_buf(),
            uid: uid(),
        });
    }
    Ok(())
}

/// The directory the sandbox's scratch tmpfs is mounted on, inside the
/// sandbox's own mount namespace only. It is shared by every sandbox and
/// never holds anything on the host, so there is nothing to clean up.
pub fn scratch_dir() -> Result<PathBuf, PathsError> {
    let dir = runtime_dir()?.join("mnt");
    create_private(&dir)?;
    Ok(dir)
}
