//! A process named by its pid *and* its start time, so that a pid the
//! kernel has handed to someone else is never mistaken for ours; and
//! pidfds opened on it, through which signals cannot reach an impostor.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// A pid with the start time (clock ticks after boot, field 22 of
/// /proc/PID/stat) it had when it was recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcId {
    pub pid: i32,
    pub start_time: u64,
}

use crate::procfs::stat;

impl ProcId {
    /// The process `pid` as it is now.
    pub fn of(pid: i32) -> Option<ProcId> {
        stat(pid).map(|s| ProcId {
            pid,
            start_time: s.start_time,
        })
    }

    /// This process.
    pub fn me() -> Option<ProcId> {
        ProcId::of(std::process::id() as i32)
    }

    /// A pidfd on this very process, or `None` when it is gone (a zombie
    /// counts as gone) or its pid now belongs to another process. The pidfd
    /// is opened first and the start time checked after, so the descriptor
    /// cannot refer to a successor.
    pub fn open(&self) -> Option<PidFd> {
        let fd = PidFd::open(self.pid).ok()?;
        let s = stat(self.pid)?;
        (s.start_time == self.start_time && !matches!(s.state, 'Z' | 'X')).then_some(fd)
    }

    pub fn alive(&self) -> bool {
        self.open().is_some()
    }

    /// The first child of this process (the workload, for the sandbox's
    /// init), as a pidfd checked to be that child.
    pub fn first_child(&self) -> Option<PidFd> {
        let text =
            std::fs::read_to_string(format!("/proc/{0}/task/{0}/children", self.pid)).ok()?;
        let child: i32 = text.split_whitespace().next()?.parse().ok()?;
        let fd = PidFd::open(child).ok()?;
        let s = stat(child)?;
        (s.ppid == self.pid && self.alive()).then_some(fd)
    }
}

/// An owned pidfd, with the pid and start time it was checked against.
#[derive(Debug)]
pub struct PidFd(OwnedFd, i32);

impl PidFd {
    pub fn open(pid: i32) -> std::io::Result<PidFd> {
        // SAFETY: pidfd_open takes integers and returns a new descriptor.
        let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        // SAFETY: a fresh descriptor owned by nobody else.
        Ok(PidFd(unsafe { OwnedFd::from_raw_fd(fd as i32) }, pid))
    }

    /// `fd`'s descriptor labelled with another pid: how a pid reused
    /// after its process ended looks to code holding the old pidfd.
    #[cfg(test)]
    pub fn with_pid(fd: PidFd, pid: i32) -> PidFd {
        PidFd(fd.0, pid)
    }

    pub fn pid(&self) -> i32 {
        self.1
    }

    /// Whether the process is still running (not exited, not a zombie).
    pub fn alive(&self) -> bool {
        !self.wait_exit(Some(Duration::ZERO))
    }

    pub fn signal(&self, sig: i32) -> std::io::Result<()> {
        // SAFETY: the pidfd is open; no siginfo is passed.
        let ret = unsafe {
            libc::syscall(
                libc::SYS_pidfd_send_signal,
                self.0.as_raw_fd(),
                sig,
                std::ptr::null::<libc::siginfo_t>(),
                0,
            )
        };
        if ret < 0 {
            let e = std::io::Error::last_os_error();
            // Already gone is what the caller wanted.
            if e.raw_os_error() == Some(libc::ESRCH) {
                return Ok(());
            }
            return Err(e);
        }
        Ok(())
    }

    /// Wait until the process has exited, at most `timeout` (forever when
    /// `None`). True when it has exited.
    pub fn wait_exit(&self, timeout: Option<Duration>) -> bool {
        let deadline = timeout.map(|t| std::time::Instant::now() + t);
        loop {
            let ms = match deadline {
                None => -1,
                Some(d) => {
                    let left = d.saturating_duration_since(std::time::Instant::now());
                    left.as_millis().min(i32::MAX as u128) as i32
                }
            };
            let mut p = libc::pollfd {
                fd: self.0.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            };
            // SAFETY: one valid pollfd.
            let n = unsafe { libc::poll(&mut p, 1, ms) };
            if n > 0 {
                return true;
            }
            if n == 0 {
                return false;
            }
            if std::io::Error::last_os_error().raw_os_error() != Some(libc::EINTR) {
                return false;
            }
        }
    }

    pub fn raw(&self) -> i32 {
        self.0.as_raw_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reused_pid_is_not_ours() {
        let me = ProcId::me().unwrap();
        assert!(me.alive());
        let impostor = ProcId {
            pid: me.pid,
            start_time: me.start_time + 1,
        };
        assert!(!impostor.alive());
    }

    #[test]
    fn waits_for_a_child() {
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let fd = PidFd::open(child.id() as i32).unwrap();
        assert!(fd.wait_exit(Some(Duration::from_secs(10))));
        child.wait().unwrap();
    }
}
