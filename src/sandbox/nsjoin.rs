//! Joining a running sandbox's namespaces from outside (`hutch exec`,
//! `hutch-runtime exec`): their /proc names, their identities, how they
//! relate, and setns(2) into them in order.

use std::fs::File;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use super::sys;

/// The namespaces a sandbox has, by their `/proc/PID/ns` names, user first
/// (joining it grants the right to join the others).
pub const KINDS: [(&str, libc::c_int); 7] = [
    ("user", libc::CLONE_NEWUSER),
    ("mnt", libc::CLONE_NEWNS),
    ("pid", libc::CLONE_NEWPID),
    ("ipc", libc::CLONE_NEWIPC),
    ("uts", libc::CLONE_NEWUTS),
    ("net", libc::CLONE_NEWNET),
    ("cgroup", libc::CLONE_NEWCGROUP),
];

/// ioctl(2) requests of nsfs: `_IO(0xb7, 1)` and `_IO(0xb7, 2)`.
pub const NS_GET_USERNS: libc::c_ulong = 0xb701;
pub const NS_GET_PARENT: libc::c_ulong = 0xb702;

/// (device, inode): a namespace's identity.
pub fn identity(f: &impl AsRawFd) -> std::io::Result<(u64, u64)> {
    // SAFETY: stat is plain data; fstat fills it.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: an open descriptor and a valid out-pointer.
    sys::check(unsafe { libc::fstat(f.as_raw_fd(), &mut st) } as libc::c_long)?;
    Ok((st.st_dev, st.st_ino))
}

/// The identity of this process's own namespace `name`.
pub fn own(name: &str) -> std::io::Result<(u64, u64)> {
    File::open(format!("/proc/self/ns/{name}")).and_then(|f| identity(&f))
}

/// The namespace an nsfs ioctl returns (a new descriptor), as its identity.
pub fn related(f: &impl AsRawFd, request: libc::c_ulong) -> std::io::Result<(u64, u64)> {
    // SAFETY: an nsfs ioctl without argument that returns a new descriptor.
    let fd = sys::check(unsafe { libc::ioctl(f.as_raw_fd(), request) } as libc::c_long)?;
    // SAFETY: the fresh descriptor is ours to own and close.
    let owned = unsafe { OwnedFd::from_raw_fd(fd as RawFd) };
    identity(&owned)
}

/// Open every namespace of `pid`, in [`KINDS`] order.
pub fn open_all(pid: i32) -> std::io::Result<Vec<(File, libc::c_int)>> {
    KINDS
        .iter()
        .map(|(name, flag)| Ok((File::open(format!("/proc/{pid}/ns/{name}"))?, *flag)))
        .collect()
}

/// Namespace descriptors to join, user first.
pub struct Joiner {
    fds: Vec<(File, libc::c_int)>,
}

impl Joiner {
    /// `fds` in [`KINDS`] order (checked by the caller).
    pub fn new(fds: Vec<(File, libc::c_int)>) -> Joiner {
        Joiner { fds }
    }

    /// setns(2) into each; the process must be single-threaded.
    pub fn join(&self) -> std::io::Result<()> {
        for (f, flag) in &self.fds {
            // SAFETY: setns with an open nsfs descriptor and its type.
            sys::check(unsafe { libc::setns(f.as_raw_fd(), *flag) } as libc::c_long)?;
        }
        Ok(())
    }
}
