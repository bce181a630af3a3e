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
/// Worked out once per process: a run asks for it several times, and
/// once made and checked it stays ours (only we, or root, may rename or
/// remove it, even in a sticky /tmp).
pub fn runtime_dir() -> Result<PathBuf, PathsError> {
    static DIR: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    if let Some(dir) = DIR.get() {
        return Ok(dir.clone());
    }
    let dir = match std::env::var_os("XDG_RUNTIME_DIR").map(PathBuf::from) {
        Some(d) if d.is_dir() => d.join("hutch"),
        _ => PathBuf::from(format!("/tmp/hutch-{}", uid())),
    };
    create_private(&dir)?;
    Ok(DIR.get_or_init(|| dir).clone())
}

/// Create `dir` (and parents) with mode 0700 and check that it is a real
/// directory owned by us that nobody else may write.
///
/// Usually the parent exists: one mkdir (EEXIST is fine, the check below
/// decides) and one lstat, the parents made only when mkdir finds none.
pub fn create_private(dir: &Path) -> Result<(), PathsError> {
    let create_err = |source| PathsError::Create {
        path: dir.to_path_buf(),
        source,
    };
    let mut builder = std::fs::DirBuilder::new();
    builder.mode(0o700);
    match builder.create(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            builder.recursive(true).create(dir).map_err(create_err)?;
        }
        Err(e) => return Err(create_err(e)),
    }
    let meta = std::fs::symlink_metadata(dir).map_err(create_err)?;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn create_private_makes_nested_dirs_and_refuses_shared_ones() {
        let base = std::env::temp_dir().join(format!("hutch-paths-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&base);
        let nested = base.join("a/b/c");
        create_private(&nested).unwrap();
        for d in [&base.join("a"), &base.join("a/b"), &nested] {
            let meta = std::fs::symlink_metadata(d).unwrap();
            assert!(meta.is_dir(), "{}", d.display());
            assert_eq!(meta.permissions().mode() & 0o022, 0, "{}", d.display());
        }
        // An existing private directory is fine, again and again.
        create_private(&nested).unwrap();
        create_private(&base.join("a")).unwrap();

        let link = base.join("link");
        std::os::unix::fs::symlink(&nested, &link).unwrap();
        assert!(matches!(
            create_private(&link),
            Err(PathsError::NotPrivate { .. })
        ));
        let shared = base.join("shared");
        std::fs::create_dir(&shared).unwrap();
        std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o777)).unwrap();
        assert!(matches!(
            create_private(&shared),
            Err(PathsError::NotPrivate { .. })
        ));
        let file = base.join("file");
        std::fs::write(&file, "").unwrap();
        assert!(create_private(&file).is_err());
        // Not made under a path that is not a directory.
        assert!(matches!(
            create_private(&file.join("sub")),
            Err(PathsError::Create { .. })
        ));
        std::fs::remove_dir_all(&base).unwrap();
    }

    #[test]
    fn runtime_dir_is_the_same_private_dir_each_time() {
        let first = runtime_dir().unwrap();
        assert_eq!(runtime_dir().unwrap(), first);
        let meta = std::fs::symlink_metadata(&first).unwrap();
        assert!(meta.is_dir() && meta.uid() == uid());
    }
}
