//! The end of an `--rm` run after its result is known.
//!
//! When the workload has ended and its cgroup holds nothing but init, the
//! run's figures are final: the workload's CPU time, peak memory and OOM
//! count are in the cgroup, and no untrusted process is left. What remains
//! is init's exit, in which the kernel tears its namespaces down (the mount
//! namespace waits for RCU grace periods: about half a millisecond), and
//! then the removal of the cgroup, which only an empty cgroup allows.
//! Neither changes the result, so hutch need not wait for them: a child it
//! leaves behind waits for init's exit and removes the cgroup, and hutch
//! returns at once, as bwrap returns when its pid 1 reports the workload's
//! status.

use std::ffi::CString;
use std::os::fd::RawFd;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

/// How long the remover waits for init to exit. init has nothing left to
/// do but exit; past this something is badly wrong, and the cgroup is left
/// for the administrator rather than a process left waiting forever.
const WAIT_FOR_INIT_MS: libc::c_int = 60_000;

/// Attempts at each `rmdir` while the kernel still counts an exited task
/// in the cgroup, one millisecond apart.
const RMDIR_ATTEMPTS: u32 = 1000;

/// Leave behind a process that waits until `init_pidfd`'s process has
/// exited and then removes `dirs` (the sandbox's now empty cgroup
/// directories). Returns false if it could not be started: the caller then
/// waits for init and removes them itself.
///
/// The child runs only raw system calls on memory prepared here, so it is
/// safe even if another thread of hutch held a lock at the fork; callers
/// fork only while single-threaded all the same.
pub fn remove_after_exit(init_pidfd: RawFd, dirs: &[PathBuf]) -> bool {
    let Ok(paths) = dirs
        .iter()
        .map(|d| CString::new(d.as_os_str().as_bytes()))
        .collect::<Result<Vec<_>, _>>()
    else {
        return false;
    };
    let ptrs: Vec<*const libc::c_char> = paths.iter().map(|p| p.as_ptr()).collect();
    // SAFETY: fork has no memory-safety preconditions; the child below
    // touches only `ptrs`/`paths` (already built) and makes raw syscalls.
    let pid = unsafe { libc::fork() };
    match pid {
        -1 => false,
        0 => remover(init_pidfd, &ptrs),
        _ => true,
    }
}

/// The child's whole life: no allocation, no locks, no return.
fn remover(init_pidfd: RawFd, dirs: &[*const libc::c_char]) -> ! {
    // SAFETY: raw syscalls on integers, a local pollfd, and the
    // NUL-terminated paths the parent built before the fork.
    unsafe {
        // Hold no descriptor of the caller's: a `$(hutch run ...)` reads to
        // the end of hutch's stdout, and locks live as long as their
        // descriptors.
        if init_pidfd > 0 {
            libc::syscall(libc::SYS_close_range, 0u32, (init_pidfd - 1) as u32, 0u32);
        }
        libc::syscall(
            libc::SYS_close_range,
            (init_pidfd + 1) as u32,
            u32::MAX,
            0u32,
        );
        // Out of the terminal's process group and session: a Ctrl-C or
        // hang-up meant for the caller's next command is not for this.
        libc::setsid();
        let mut pfd = libc::pollfd {
            fd: init_pidfd,
            events: libc::POLLIN,
            revents: 0,
        };
        loop {
            let n = libc::poll(&mut pfd, 1, WAIT_FOR_INIT_MS);
            if n > 0 {
                break;
            }
            if n == 0 || *libc::__errno_location() != libc::EINTR {
                libc::_exit(1);
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
