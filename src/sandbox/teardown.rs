//! The end of an `--rm` run after its result is known.
//!
//! When the workload has ended and its cgroup holds nothing but init, the
//! run's figures are final: the workload's CPU time, peak memory and OOM
//! count are in the cgroup, and no untrusted process is left. What remains
//! is init's exit, in which the kernel tears its namespaces down (the mount
//! namespace waits for RCU grace periods: about half a millisecond), and
//! then the removal of the cgroup, which only an empty cgroup allows.
//! Neither changes the result, so hutch need not wait for them: a child it
//! started earlier waits for init's exit and removes the cgroup, and hutch
//! returns at once, as bwrap returns when its pid 1 reports the workload's
//! status.

use std::ffi::CString;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

/// Attempts at each `rmdir` while the kernel still counts an exited task
/// in the cgroup, one millisecond apart.
const RMDIR_ATTEMPTS: u32 = 1000;

/// Start a process that waits until both init (`init_pid`, hutch's own
/// unreaped child, so the pid names it for sure) and hutch have exited,
/// and then removes `dirs` (the sandbox's cgroup directories). Started
/// while the workload runs, so that it costs the run nothing. It waits for hutch too because a hutch that did not
/// return early reads the cgroup's figures after init's exit, and removes
/// the cgroup itself; the remover then finds it gone. Returns false if it
/// could not be started: hutch then waits for init and removes the cgroup.
///
/// The child runs only raw system calls on memory prepared here; callers
/// fork only while single-threaded all the same.
pub fn remove_after_exit(init_pid: libc::pid_t, dirs: &[PathBuf]) -> bool {
    let Ok(paths) = dirs
        .iter()
        .map(|d| CString::new(d.as_os_str().as_bytes()))
        .collect::<Result<Vec<_>, _>>()
    else {
        return false;
    };
    let ptrs: Vec<*const libc::c_char> = paths.iter().map(|p| p.as_ptr()).collect();
    let pidfd = |pid: libc::pid_t| {
        // SAFETY: pidfd_open takes integers and returns a new descriptor.
        let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) } as RawFd;
        // SAFETY: a fresh descriptor owned by nobody else.
        (fd >= 0).then(|| unsafe { OwnedFd::from_raw_fd(fd) })
    };
    // SAFETY: getpid cannot fail.
    let (Some(init), Some(hutch)) = (pidfd(init_pid), pidfd(unsafe { libc::getpid() })) else {
        return false;
    };
    // SAFETY: fork has no memory-safety preconditions; the child below
    // touches only `ptrs`/`paths` (already built) and makes raw syscalls.
    let pid = unsafe { libc::fork() };
    if pid == 0 {
        remover([init.as_raw_fd(), hutch.as_raw_fd()], &ptrs);
    }
    pid > 0
}

/// The child's whole life: no allocation, no locks, no return.
fn remover(pidfds: [RawFd; 2], dirs: &[*const libc::c_char]) -> ! {
    // SAFETY: raw syscalls on integers, a local pollfd array, and the
    // NUL-terminated paths the parent built before the fork.
    unsafe {
        // The two pidfds on 0 and 1 (copied above 2 first, so that neither
        // is overwritten by the other), and no descriptor of the caller's:
        // a `$(hutch run ...)` reads to the end of hutch's stdout, and
        // locks live as long as their descriptors.
        let high = pidfds.map(|fd| libc::fcntl(fd, libc::F_DUPFD, 3));
        if high.contains(&-1) {
            libc::_exit(1);
        }
        libc::dup2(high[0], 0);
        libc::dup2(high[1], 1);
        libc::syscall(libc::SYS_close_range, 2u32, u32::MAX, 0u32);
        // A process group of its own: job control (a Ctrl-Z or a `kill %1`
        // of hutch's job) must not stop or kill it; hutch's blocked signals
        // (SIGINT, SIGTERM, SIGHUP, ...) stay blocked here. Not a session of
        // its own: setsid makes a scheduler autogroup, which costs more.
        libc::setpgid(0, 0);
        let mut pfds = [0, 1].map(|fd| libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        });
        // As long as the run lasts: init cannot outlive hutch (its
        // parent-death signal), nor hutch's exit wait for this.
        while pfds.iter().any(|p| p.fd >= 0) {
            let n = libc::poll(pfds.as_mut_ptr(), 2, -1);
            if n < 0 && *libc::__errno_location() != libc::EINTR {
                libc::_exit(1);
            }
            for p in &mut pfds {
                if p.revents != 0 {
                    p.fd = -1;
                }
            }
        }
        // The pidfd is readable once init is a zombie: it left its cgroup
        // before (cgroup_exit precedes exit_notify), and every other
        // process of its pid namespace was gone before it could exit.
        let pause = libc::timespec {
            tv_sec: 0,
            tv_nsec: 1_000_000,
        };
        for &dir in dirs {
            for _ in 0..RMDIR_ATTEMPTS {
                if libc::rmdir(dir) == 0 || *libc::__errno_location() != libc::EBUSY {
                    break;
                }
                libc::nanosleep(&pause, std::ptr::null_mut());
            }
        }
        libc::_exit(0)
    }
}
