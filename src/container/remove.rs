//! Removing a container's files without root. A writable layer holds files
//! owned by subordinate uids (and overlay's `work/work`, mode 000), which
//! the user cannot remove directly; inside a user namespace with the same
//! mapping the user is root over them, so the removal happens there.

use std::os::fd::AsRawFd;
use std::path::Path;

use super::ContainerError;
use crate::sandbox::idmap::IdMapping;
use crate::sandbox::sys;

/// Remove `dir` and everything under it.
pub fn remove_tree(dir: &Path, idmap: &IdMapping) -> Result<(), ContainerError> {
    match std::fs::remove_dir_all(dir) {
        Ok(()) => return Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(_) => {}
    }
    remove_in_userns(dir, idmap)
}

/// Fork a child into a new user namespace mapped as the container was, and
/// remove the tree from there. The caller must be single-threaded.
fn remove_in_userns(dir: &Path, idmap: &IdMapping) -> Result<(), ContainerError> {
    let fail = |e| ContainerError::io("cannot remove", dir, e);
    let (sync_r, sync_w) = sys::pipe().map_err(fail)?;
    let (ready_r, ready_w) = sys::pipe().map_err(fail)?;
    // SAFETY: fork in a single-threaded process; the child only unshares,
    // reads a pipe, removes files and _exits.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(fail(std::io::Error::last_os_error()));
    }
    if pid == 0 {
        drop((sync_w, ready_r));
        // SAFETY: unshare takes an integer; the child is single-threaded.
        if unsafe { libc::unshare(libc::CLONE_NEWUSER) } != 0 {
            // SAFETY: plain exit of the forked child.
            unsafe { libc::_exit(2) }
        }
        // Tell the parent we are in the namespace, then wait for the maps.
        let _ = sys::write_all(ready_w.as_raw_fd(), b"1");
        drop(ready_w);
        let mut b = [0u8; 1];
        // SAFETY: reading one byte into a one-byte buffer.
        let n = unsafe { libc::read(sync_r.as_raw_fd(), b.as_mut_ptr().cast(), 1) };
        if n != 1 {
            // SAFETY: plain exit of the forked child.
            unsafe { libc::_exit(3) }
        }
        let code = match std::fs::remove_dir_all(dir) {
            Ok(()) => 0,
            Err(e) => e.raw_os_error().unwrap_or(1).clamp(1, 120),
        };
        // SAFETY: plain exit of the forked child.
        unsafe { libc::_exit(code) }
    }
    drop((sync_r, ready_w));
    // One byte once the child has its namespace; EOF if it could not.
    let ready = sys::read_to_end(ready_r.as_raw_fd(), 1).unwrap_or_default();
    let mapped = if ready.is_empty() {
        Err(crate::sandbox::idmap::IdmapError::Write {
            file: "uid_map",
            pid,
            source: std::io::Error::other("the helper could not create a user namespace"),
        })
    } else {
        idmap.apply(pid)
    };
    if mapped.is_ok() {
        let _ = sys::write_all(sync_w.as_raw_fd(), b"1");
    }
    drop(sync_w);
    let mut status = 0;
    // SAFETY: reaping our own child.
    unsafe { libc::waitpid(pid, &mut status, 0) };
    if let Err(e) = mapped {
        return Err(ContainerError::Io {
            what: "cannot map ids to remove",
            path: dir.to_path_buf(),
            source: std::io::Error::other(e.to_string()),
        });
    }
    match libc::WEXITSTATUS(status) {
        0 => Ok(()),
        errno => Err(fail(std::io::Error::from_raw_os_error(errno))),
    }
}
