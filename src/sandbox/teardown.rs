//! The end of an `--rm` run after its result is known.
//!
//! When the workload has ended and its cgroup holds nothing but init, the
//! run's figures are final: the workload's CPU time, peak memory and OOM
//! count are in the cgroup, and no untrusted process is left. What remains
//! is init's exit, in which the kernel tears its namespaces down (the mount
//! namespace waits for RCU grace periods: about half a millisecond), then
//! the removal of the cgroup, which only an empty cgroup allows, and the
//! removal of what is left of the container's record once hutch has taken
//! its name and config away. None of it changes the result, so hutch need
//! not wait for it: a process it started earlier waits for init's exit and
//! hutch's, and does the rest; hutch returns at once, as bwrap returns when
//! its pid 1 reports the workload's status.

use std::ffi::CString;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

/// Attempts at each cgroup's `rmdir` while the kernel still counts an
/// exited task in it, one millisecond apart.
const RMDIR_ATTEMPTS: u32 = 1000;

/// The remover's stack: it makes a few system calls and nothing else.
const STACK: usize = 64 << 10;

/// One thing the remover does once init and hutch have exited, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Remove a cgroup directory, retried while the kernel still counts an
    /// exited task in it (EBUSY).
    RemoveCgroup(PathBuf),
    /// Do nothing more if this path exists. The steps after it finish what
    /// hutch started (an `--rm` record whose config.json hutch removed
    /// when the workload ended); a hutch that died before that leaves
    /// them to `hutch rm`.
    StopIfExists(PathBuf),
    /// Remove a file.
    Unlink(PathBuf),
    /// Rename a directory to the first of `to` that does not exist yet,
    /// else remove it (which fails, harmlessly, unless it is empty).
    Park { dir: PathBuf, to: Vec<PathBuf> },
}

/// [`Step`] as the remover reads it: NUL-terminated paths only.
enum RawStep {
    RemoveCgroup(CString),
    StopIfExists(CString),
    Unlink(CString),
    Park(CString, Vec<CString>),
}

impl RawStep {
    fn new(step: &Step) -> Option<RawStep> {
        let c = |p: &PathBuf| CString::new(p.as_os_str().as_bytes()).ok();
        Some(match step {
            Step::RemoveCgroup(p) => RawStep::RemoveCgroup(c(p)?),
            Step::StopIfExists(p) => RawStep::StopIfExists(c(p)?),
            Step::Unlink(p) => RawStep::Unlink(c(p)?),
            Step::Park { dir, to } => {
                RawStep::Park(c(dir)?, to.iter().map(c).collect::<Option<_>>()?)
            }
        })
    }
}

/// What the remover is handed: read-only after the clone, never freed.
struct Job {
    /// pidfds of init and of hutch.
    pidfds: [RawFd; 2],
    steps: Vec<RawStep>,
}

/// Start a process that waits until both init (`init_pid`, hutch's own
/// unreaped child, so the pid names it for sure) and hutch have exited,
/// and then carries out `steps`. Started while the workload runs, so that
/// it costs the run nothing. It waits for hutch too because a hutch that
/// did not return early reads the cgroup's figures after init's exit and
/// removes the cgroup itself; the remover then finds it gone. Returns
/// false if it could not be started: hutch then waits for init and
/// removes everything itself.
///
/// The remover shares hutch's memory (`CLONE_VM`, as `posix_spawn` does)
/// rather than a copy of it: a fork copies hutch's page tables, then
/// every page hutch writes afterwards is copied again (copy-on-write
/// faults on the run's critical path), and hutch's own exit would unmap
/// all of it before hutch's parent learns of the exit. Sharing, hutch's
/// exit leaves its memory to the remover, which unmaps it after the run.
/// So the remover touches only what is built here and leaked: it runs raw
/// system calls on its own stack, takes no lock and allocates nothing.
/// It shares hutch's main thread's thread pointer too: libc records a
/// failed call's error in that thread's `errno` (the remover's calls that
/// can fail run only once hutch has exited), and its wait while hutch
/// runs is a bare system call, not a libc cancellation point, which would
/// mark that thread's descriptor. Callers are single-threaded.
pub fn remove_after_exit(init_pid: libc::pid_t, steps: &[Step]) -> bool {
    let Some(raw) = steps.iter().map(RawStep::new).collect::<Option<Vec<_>>>() else {
        return false;
    };
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
    // Never unmapped: the remover runs on it after hutch has exited.
    let Some(stack) = super::sys::ChildStack::map(STACK) else {
        return false;
    };
    // Leaked: the remover reads it after hutch has gone on, and exited.
    let job: &'static Job = Box::leak(Box::new(Job {
        pidfds: [init.as_raw_fd(), hutch.as_raw_fd()],
        steps: raw,
    }));
    extern "C" fn trampoline(arg: *mut libc::c_void) -> libc::c_int {
        // SAFETY: `arg` is the leaked, never-written Job passed below.
        remover(unsafe { &*arg.cast::<Job>() })
    }
    // SAFETY: a fresh stack of the remover's own; the stack and the job
    // are never unmapped or freed. Without CLONE_FILES the child gets its
    // own copy of the descriptor table, pidfds included.
    let pid = unsafe {
        libc::clone(
            trampoline,
            stack.top(),
            libc::CLONE_VM | libc::SIGCHLD,
            (job as *const Job).cast_mut().cast(),
        )
    };
    // hutch's copies of the pidfds go; the remover holds its own.
    drop((init, hutch));
    pid > 0
}

/// The remover's whole life: no allocation, no locks, no return.
fn remover(job: &Job) -> ! {
    // SAFETY: raw syscalls on integers, a local pollfd array, and the
    // NUL-terminated paths built before the clone and never freed.
    unsafe {
        // The two pidfds on 0 and 1 (copied above 2 first, so that neither
        // is overwritten by the other), and no descriptor of the caller's:
        // a `$(hutch run ...)` reads to the end of hutch's stdout, and
        // locks live as long as their descriptors.
        let high = job.pidfds.map(|fd| libc::fcntl(fd, libc::F_DUPFD, 3));
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
        // parent-death signal), nor hutch's exit wait for this. The remover
        // has no signal handler, so the wait is never interrupted. ppoll
        // through syscall(2), not libc's poll: a cancellation point marks
        // the calling thread's descriptor, which is hutch's main thread's
        // here (shared memory and thread pointer), around the wait.
        while pfds.iter().any(|p| p.fd >= 0) {
            let forever = std::ptr::null::<libc::timespec>();
            let no_mask = std::ptr::null::<libc::sigset_t>();
            let (nfds, mask_size) = (pfds.len() as libc::c_ulong, 0 as libc::size_t);
            if libc::syscall(
                libc::SYS_ppoll,
                pfds.as_mut_ptr(),
                nfds,
                forever,
                no_mask,
                mask_size,
            ) < 0
            {
                libc::_exit(1);
            }
            for p in &mut pfds {
                if p.revents != 0 {
                    p.fd = -1;
                }
            }
        }
        // From here on hutch has exited: errno is the remover's alone.
        // init's pidfd is readable once init is a zombie: it left its
        // cgroup before (cgroup_exit precedes exit_notify), and every other
        // process of its pid namespace was gone before it could exit.
        let pause = libc::timespec {
            tv_sec: 0,
            tv_nsec: 1_000_000,
        };
        for step in &job.steps {
            match step {
                RawStep::RemoveCgroup(dir) => {
                    for _ in 0..RMDIR_ATTEMPTS {
                        if libc::rmdir(dir.as_ptr()) == 0
                            || *libc::__errno_location() != libc::EBUSY
                        {
                            break;
                        }
                        libc::nanosleep(&pause, std::ptr::null_mut());
                    }
                }
                RawStep::StopIfExists(path) => {
                    if libc::access(path.as_ptr(), libc::F_OK) == 0 {
                        break;
                    }
                }
                RawStep::Unlink(path) => {
                    libc::unlink(path.as_ptr());
                }
                RawStep::Park(dir, to) => {
                    let parked = to.iter().any(|t| {
                        libc::renameat2(
                            libc::AT_FDCWD,
                            dir.as_ptr(),
                            libc::AT_FDCWD,
                            t.as_ptr(),
                            libc::RENAME_NOREPLACE,
                        ) == 0
                    });
                    if !parked {
                        libc::rmdir(dir.as_ptr());
                    }
                }
            }
        }
        libc::_exit(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Fork a process that runs `f` and exits with its result.
    fn forked(f: impl FnOnce() -> i32) -> libc::pid_t {
        // SAFETY: the child runs `f` (fork, clone, raw calls, allocation,
        // which glibc keeps usable in a forked child) and exits without
        // unwinding into the test harness.
        let pid = unsafe { libc::fork() };
        if pid == 0 {
            let code = f();
            // SAFETY: as above.
            unsafe { libc::_exit(code) };
        }
        pid
    }

    fn exit_code(pid: libc::pid_t) -> i32 {
        let mut status = 0;
        // SAFETY: waiting for our own child into a local.
        unsafe { libc::waitpid(pid, &mut status, 0) };
        libc::WEXITSTATUS(status)
    }

    /// The remover, started for real by a process standing in for hutch:
    /// it waits for that process's exit and for "init" (a child of it),
    /// then carries out its steps in order, and stops at a path that
    /// exists. A subreaper adopts both orphans, so the test waits for
    /// their exits rather than for time to pass.
    #[test]
    fn the_remover_waits_for_both_exits_then_does_its_steps_in_order() {
        let dir = std::env::temp_dir().join(format!("hutch-teardown-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        for d in ["record", "cgroup", "taken"] {
            std::fs::create_dir_all(dir.join(d)).unwrap();
        }
        for f in ["record/state.json", "kept", "never"] {
            std::fs::write(dir.join(f), "").unwrap();
        }
        let steps = vec![
            Step::RemoveCgroup(dir.join("cgroup")),
            Step::Unlink(dir.join("record/state.json")),
            Step::Park {
                dir: dir.join("record"),
                to: vec![dir.join("taken"), dir.join("spare")],
            },
            Step::StopIfExists(dir.join("kept")),
            Step::Unlink(dir.join("never")),
        ];
        let cgroup = dir.join("cgroup");
        let harness = forked(|| {
            // SAFETY: a prctl on integers.
            unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1) };
            let (go_r, go_w) = crate::sandbox::sys::pipe().unwrap();
            let hutch = forked(|| {
                let init = forked(|| {
                    let mut b = [0u8; 1];
                    // SAFETY: reading into a local byte.
                    unsafe { libc::read(go_r.as_raw_fd(), b.as_mut_ptr().cast(), 1) };
                    0
                });
                if remove_after_exit(init, &steps) {
                    0
                } else {
                    1
                }
            });
            if exit_code(hutch) != 0 {
                return 2; // the remover did not start
            }
            if !cgroup.exists() {
                return 3; // it ran before init exited
            }
            crate::sandbox::sys::write_all(go_w.as_raw_fd(), b"x").unwrap();
            // init and the remover, both adopted.
            // SAFETY: reaping our own children into a null status.
            while unsafe { libc::waitpid(-1, std::ptr::null_mut(), 0) } > 0 {}
            0
        });
        assert_eq!(exit_code(harness), 0);
        assert!(!dir.join("cgroup").exists());
        assert!(!dir.join("record").exists());
        assert!(dir.join("spare").is_dir(), "parked in the first free slot");
        assert!(!dir.join("spare/state.json").exists());
        assert!(dir.join("never").exists(), "went past an existing path");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
