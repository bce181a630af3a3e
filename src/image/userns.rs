//! Running store work inside a user namespace with the sandbox's id
//! mapping, so unpacked files keep their owners (an image's `_apt` files
//! belong to subordinate uid 100+42 on the host) and can later be removed
//! without root.
//!
//! The calling process forks once, while still single-threaded; the child
//! unshares its user namespace and waits while the parent writes the maps,
//! then does the work (it may use threads: it never clones a sandbox) and
//! sends the result back as JSON. The parent stays single-threaded.

use std::os::fd::AsRawFd;

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::sandbox::idmap::{IdMapping, IdmapError, UsernsMode};
use crate::sandbox::sys;

#[derive(Debug, thiserror::Error)]
pub enum UsernsError {
    #[error("cannot start the store helper: {0}")]
    Start(std::io::Error),
    #[error("the store helper could not enter a user namespace: {0} (hint: unprivileged user namespaces must be enabled, as for every hutch sandbox)")]
    Unshare(String),
    #[error(transparent)]
    Map(#[from] IdmapError),
    #[error("the store helper died without a result (status {0})")]
    Died(i32),
}

/// What the helper sends back.
#[derive(serde::Deserialize, Serialize)]
enum Reply<T> {
    Ok(T),
    Err(String),
}

/// The mapping store work uses: the default sandbox mapping, so layers show
/// the image's owners in `--userns=auto` sandboxes.
pub fn store_mapping() -> IdMapping {
    IdMapping::resolve(UsernsMode::Auto)
}

/// Run `work` in a forked child inside a new user namespace with `map`.
/// `Ok(Err(message))` is the work's own failure, rendered by the child.
pub fn run<T, F>(map: &IdMapping, work: F) -> Result<Result<T, String>, UsernsError>
where
    T: Serialize + DeserializeOwned,
    F: FnOnce() -> Result<T, String>,
{
    let (ready_r, ready_w) = sys::pipe().map_err(UsernsError::Start)?;
    let (go_r, go_w) = sys::pipe().map_err(UsernsError::Start)?;
    let (res_r, res_w) = sys::pipe().map_err(UsernsError::Start)?;
    use std::io::Write;
    let _ = std::io::stdout().flush();

    // SAFETY: the caller is single-threaded (hutch forks its store helper
    // before any thread exists), so the child may allocate and run Rust code.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(UsernsError::Start(std::io::Error::last_os_error()));
    }
    if pid == 0 {
        drop((ready_r, go_w, res_r));
        // SAFETY: unshare with a constant flag.
        let r = unsafe { libc::unshare(libc::CLONE_NEWUSER) };
        if r != 0 {
            let e = std::io::Error::last_os_error().to_string();
            let _ = sys::write_all(ready_w.as_raw_fd(), format!("E{e}").as_bytes());
            // SAFETY: leaving the forked child without running destructors.
            unsafe { libc::_exit(1) };
        }
        let _ = sys::write_all(ready_w.as_raw_fd(), b"R");
        drop(ready_w);
        let go = sys::read_to_end(go_r.as_raw_fd(), 1).unwrap_or_default();
        if go != b"G" {
            // SAFETY: as above.
            unsafe { libc::_exit(1) };
        }
        let reply = match std::panic::catch_unwind(std::panic::AssertUnwindSafe(work)) {
            Ok(Ok(v)) => Reply::Ok(v),
            Ok(Err(e)) => Reply::Err(e),
            Err(_) => Reply::Err("the store helper panicked".into()),
        };
        let bytes = serde_json::to_vec(&reply).unwrap_or_default();
        let _ = sys::write_all(res_w.as_raw_fd(), &bytes);
        let _ = std::io::stdout().flush();
        // SAFETY: as above; the result is written.
        unsafe { libc::_exit(0) };
    }
    drop((ready_w, go_r, res_w));
    let ready = sys::read_to_end(ready_r.as_raw_fd(), 4096).unwrap_or_default();
    let fail = |e: UsernsError| {
        reap(pid);
        Err(e)
    };
    match ready.first() {
        Some(b'R') => {}
        Some(b'E') => {
            return fail(UsernsError::Unshare(
                String::from_utf8_lossy(&ready[1..]).into_owned(),
            ))
        }
        _ => return fail(UsernsError::Died(reap(pid))),
    }
    if let Err(e) = map.apply(pid) {
        // SAFETY: killing our own child.
        unsafe { libc::kill(pid, libc::SIGKILL) };
        return fail(e.into());
    }
    let _ = sys::write_all(go_w.as_raw_fd(), b"G");
    drop(go_w);
    let bytes = sys::read_to_end(res_r.as_raw_fd(), 64 << 20).unwrap_or_default();
    let status = reap(pid);
    match serde_json::from_slice::<Reply<T>>(&bytes) {
        Ok(Reply::Ok(v)) => Ok(Ok(v)),
        Ok(Reply::Err(e)) => Ok(Err(e)),
        Err(_) => Err(UsernsError::Died(status)),
    }
}

fn reap(pid: i32) -> i32 {
    let mut status = 0;
    loop {
        // SAFETY: waiting for our own child with a valid out-pointer.
        let r = unsafe { libc::waitpid(pid, &mut status, 0) };
        if r == pid
            || (r < 0 && std::io::Error::last_os_error().raw_os_error() != Some(libc::EINTR))
        {
            return status;
        }
    }
}
