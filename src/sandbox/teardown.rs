//! The keeper: init's parent, which reaps it and tidies up after the run.
//!
//! When the workload of an `--rm` run has ended and its cgroup holds
//! nothing but init, the run's figures are final: the workload's CPU time,
//! peak memory and OOM count are in the cgroup, and no untrusted process
//! is left. What remains is init's exit, in which the kernel tears its
//! namespaces down (the mount namespace waits for RCU grace periods: about
//! half a millisecond), then the removal of the cgroup, which only an
//! empty cgroup allows, and the removal of what is left of the container's
//! record once hutch has taken its name and config away. None of it
//! changes the result, so hutch need not wait for it: it returns at once,
//! as bwrap returns when its pid 1 reports the workload's status.
//!
//! Someone must still reap init, promptly: a zombie keeps its charge in
//! the cgroup's and the user's process counts, and pid 1 of a container
//! or a minimal system may reap late or never. So init is not hutch's
//! child but the keeper's: a process hutch starts just before, which
//! clones init for it, reports init's pid, and stays as its parent. It
//! reaps init when init exits (and tells hutch how init ended, for the
//! runs where hutch waits), kills init if hutch dies before the workload
//! ended (init's parent-death signal now follows the keeper), and once
//! both have exited removes what the run left. One process per run is
//! left for the system to reap, the keeper itself, as with bwrap.

use std::convert::Infallible;
use std::ffi::CString;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

use super::sys::{self, raw_syscall, CloneArgs};

/// Attempts at each cgroup's `rmdir` while the kernel still counts an
/// exited task in it, one millisecond apart.
const RMDIR_ATTEMPTS: u32 = 1000;

/// The keeper's stack, which init's setup runs on too (init is a copy of
/// the keeper): as much as a main thread gets. Mapped lazily; init touches
/// what it uses, the keeper a few pages.
const STACK: usize = 8 << 20;

/// One thing the keeper does once init and hutch have exited, in order.
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
    /// Rename a directory to the first of `to` that does not exist yet,
    /// else remove its `files` and it (which fails, harmlessly, unless it
    /// is then empty).
    Park {
        dir: PathBuf,
        to: Vec<PathBuf>,
        files: Vec<PathBuf>,
    },
}

/// [`Step`] as the keeper reads it: NUL-terminated paths only.
enum RawStep {
    RemoveCgroup(CString),
    StopIfExists(CString),
    Park(CString, Vec<CString>, Vec<CString>),
}

impl RawStep {
    fn new(step: &Step) -> Option<RawStep> {
        let c = |p: &PathBuf| CString::new(p.as_os_str().as_bytes()).ok();
        Some(match step {
            Step::RemoveCgroup(p) => RawStep::RemoveCgroup(c(p)?),
            Step::StopIfExists(p) => RawStep::StopIfExists(c(p)?),
            Step::Park { dir, to, files } => RawStep::Park(
                c(dir)?,
                to.iter().map(c).collect::<Option<_>>()?,
                files.iter().map(c).collect::<Option<_>>()?,
            ),
        })
    }
}

/// What the keeper is handed: read-only once it runs, and leaked, since
/// the keeper reads its steps after hutch has exited.
struct Job {
    /// clone3's arguments for init, in hutch's memory: read while hutch
    /// waits for the keeper's report.
    clone_args: *const CloneArgs,
    /// The `&mut dyn FnMut` init runs, on hutch's stack: called only in
    /// init, which has a copy of that stack.
    init_main: *mut libc::c_void,
    /// hutch's pidfd.
    hutch: RawFd,
    /// The write end of the report pipe.
    report: RawFd,
    /// A descriptor to hold until init is reaped and hutch has exited (a
    /// pooled cgroup's claim), or -1.
    hold: RawFd,
    steps: Vec<RawStep>,
}

/// What the keeper reports once it has reaped init.
#[repr(C)]
struct Reaped {
    status: libc::c_int,
    usage: libc::rusage,
}

/// hutch's end of the keeper, which is init's parent.
#[derive(Debug)]
pub struct Keeper {
    /// Read end: init's pid once cloned, then a [`Reaped`] once reaped.
    report: OwnedFd,
}

impl Keeper {
    /// Start the keeper and have it clone init with `args` (clone3's,
    /// without a stack: init goes on as a copy of the keeper, on the
    /// keeper's stack) running `init_main`; once hutch and init have both
    /// exited it carries out `steps`. Returns the keeper and init's pid;
    /// clone3 writes init's pidfd where `args` says, in hutch's descriptor
    /// table. `Ok(None)` when no keeper could be started: the caller then
    /// clones init itself. The clone's error if the keeper's clone of
    /// init failed. `hold`, if any, is a descriptor the keeper keeps open
    /// until init is reaped and hutch has exited (a lock, say).
    ///
    /// The keeper shares hutch's memory and descriptor table until it has
    /// cloned init (`CLONE_VM | CLONE_FILES`, so the pidfd lands in
    /// hutch's table), while hutch waits for its report: init's copy of
    /// memory is of a process at rest, as a fork's would be. It then takes a
    /// table of its own with only its own descriptors in it (a
    /// `$(hutch run ...)` reads to the end of hutch's stdout, and locks
    /// live as long as their descriptors). From then on it runs raw system
    /// calls on its own stack: no allocation, no lock, and no errno (it
    /// has hutch's main thread's thread pointer, and hutch runs on).
    /// Callers are single-threaded.
    pub fn clone_init(
        args: &CloneArgs,
        init_main: &mut dyn FnMut() -> Infallible,
        steps: &[Step],
        hold: Option<RawFd>,
    ) -> std::io::Result<Option<(Keeper, libc::pid_t)>> {
        if !sys::RAW_SYSCALLS {
            return Ok(None);
        }
        let Some(raw) = steps.iter().map(RawStep::new).collect::<Option<Vec<_>>>() else {
            return Ok(None);
        };
        // SAFETY: getpid cannot fail; pidfd_open takes integers and returns
        // a new descriptor.
        let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, libc::getpid(), 0) } as RawFd;
        if fd < 0 {
            return Ok(None);
        }
        // SAFETY: a fresh descriptor owned by nobody else.
        let hutch = unsafe { OwnedFd::from_raw_fd(fd) };
        let (Some(stack), Ok((report_r, report_w))) = (sys::ChildStack::map(STACK), sys::pipe())
        else {
            return Ok(None);
        };
        let mut init_main = init_main;
        let job: &'static Job = Box::leak(Box::new(Job {
            clone_args: args,
            init_main: (&mut init_main as *mut &mut dyn FnMut() -> Infallible).cast(),
            hutch: hutch.as_raw_fd(),
            report: report_w.as_raw_fd(),
            hold: hold.unwrap_or(-1),
            steps: raw,
        }));
        extern "C" fn trampoline(arg: *mut libc::c_void) -> libc::c_int {
            // SAFETY: `arg` is the leaked, never-written Job passed below.
            keeper(unsafe { &*arg.cast::<Job>() })
        }
        let mut keeper_fd: RawFd = -1;
        // SAFETY: a fresh stack of the keeper's own, never unmapped (the
        // keeper and init run on it); the job is never freed; `args` and
        // `init_main` outlive the keeper's use of them, since this waits
        // below until the keeper has cloned init. With CLONE_PIDFD the
        // keeper's pidfd is written to `keeper_fd` (the parent-tid slot).
        let keeper_pid = unsafe {
            libc::clone(
                trampoline,
                stack.top(),
                libc::CLONE_VM | libc::CLONE_FILES | libc::CLONE_PIDFD | libc::SIGCHLD,
                (job as *const Job).cast_mut().cast(),
                &mut keeper_fd as *mut RawFd,
            )
        };
        if keeper_pid < 0 {
            stack.unmap();
            return Ok(None);
        }
        // SAFETY: clone wrote a fresh pidfd that only we own.
        let keeper_fd = unsafe { OwnedFd::from_raw_fd(keeper_fd) };
        // Until the keeper reports, or dies without (killed from outside:
        // hutch holds the pipe's write end too, so no end of file).
        let mut fds = [&report_r, &keeper_fd].map(|fd| libc::pollfd {
            fd: fd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        });
        // SAFETY: two valid pollfds.
        while unsafe { libc::poll(fds.as_mut_ptr(), 2, -1) } < 0 {}
        let mut pid = [0u8; 4];
        let got = fds[0].revents & libc::POLLIN != 0 && read_full(report_r.as_raw_fd(), &mut pid);
        // The keeper has a table of its own now: hutch's copies go.
        drop((hutch, report_w, keeper_fd));
        let pid = i32::from_ne_bytes(pid);
        if got && pid > 0 {
            return Ok(Some((Keeper { report: report_r }, pid)));
        }
        // The keeper could not clone init, and has exited.
        // SAFETY: reaping our own child into a null status.
        unsafe { libc::waitpid(keeper_pid, std::ptr::null_mut(), 0) };
        Err(if got {
            std::io::Error::from_raw_os_error(-pid)
        } else {
            std::io::Error::other("the keeper process died before it cloned the sandbox")
        })
    }

    /// Wait until the keeper has reaped init (whose pidfd is `init`), and
    /// return init's wait status and usage. A keeper that died (killed
    /// from outside) took init with it (init's parent-death signal): that
    /// is reported as a SIGKILL once init has exited.
    pub fn reaped(&self, init: RawFd, usage: &mut libc::rusage) -> libc::c_int {
        // SAFETY: Reaped is plain data; zeroed is a valid value.
        let mut r: Reaped = unsafe { std::mem::zeroed() };
        // SAFETY: viewing the local as bytes, to be filled by read.
        let bytes = unsafe {
            std::slice::from_raw_parts_mut(
                (&mut r as *mut Reaped).cast::<u8>(),
                std::mem::size_of::<Reaped>(),
            )
        };
        if read_full(self.report.as_raw_fd(), bytes) {
            *usage = r.usage;
            return r.status;
        }
        let mut p = libc::pollfd {
            fd: init,
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd; -1 waits for init's exit.
        while unsafe { libc::poll(&mut p, 1, -1) } < 0 {}
        libc::SIGKILL
    }
}

/// Read exactly `buf.len()` bytes; false on EOF or error first.
fn read_full(fd: RawFd, buf: &mut [u8]) -> bool {
    let mut at = 0;
    while at < buf.len() {
        // SAFETY: reading into the unfilled rest of `buf`.
        let n = unsafe { libc::read(fd, buf[at..].as_mut_ptr().cast(), buf.len() - at) };
        match n {
            0 => return false,
            n if n < 0 => {
                if std::io::Error::last_os_error().kind() != std::io::ErrorKind::Interrupted {
                    return false;
                }
            }
            n => at += n as usize,
        }
    }
    true
}

/// A raw system call of the keeper's with up to four arguments.
///
/// # Safety
///
/// As the system call.
unsafe fn call(n: libc::c_long, a: usize, b: usize, c: usize, d: usize) -> isize {
    // SAFETY: as the caller's.
    unsafe { raw_syscall(n, [a, b, c, d, 0, 0]) }
}

/// End the keeper, a process of one thread.
fn exit(code: usize) -> ! {
    loop {
        // SAFETY: exit takes an integer and does not return.
        unsafe { call(libc::SYS_exit, code, 0, 0, 0) };
    }
}

/// The keeper's whole life: no allocation, no locks, no libc, no return.
fn keeper(job: &Job) -> ! {
    let size = std::mem::size_of::<CloneArgs>();
    // SAFETY: clone3 with the caller's arguments; hutch waits meanwhile.
    let pid = unsafe { call(libc::SYS_clone3, job.clone_args as usize, size, 0, 0) };
    if pid == 0 {
        // init: a copy of the keeper, and of hutch at rest. What it runs
        // is the `&mut dyn FnMut` on hutch's stack, copied with the rest.
        // SAFETY: `init_main` points at that live `&mut dyn FnMut`.
        let f = unsafe { &mut *job.init_main.cast::<&mut dyn FnMut() -> Infallible>() };
        match f() {}
    }
    // SAFETY: the rest are raw system calls on integers and on locals,
    // and reads of the job and of `args` (while hutch waits).
    unsafe {
        let report = |fd: usize, bytes: *const u8, len: usize| {
            call(libc::SYS_write, fd, bytes as usize, len, 0);
        };
        if pid < 0 {
            let errno = pid as i32;
            report(job.report as usize, (&errno as *const i32).cast(), 4);
            exit(1);
        }
        let init_pidfd = *((*job.clone_args).pidfd as *const RawFd);
        // A descriptor table of its own, with init's pidfd, hutch's, the
        // report pipe and what it holds on 0, 1, 2 and 3 (copied above 3
        // first, so that none is overwritten by another) and nothing else.
        let own = call(libc::SYS_unshare, libc::CLONE_FILES as usize, 0, 0, 0) == 0;
        let high = [init_pidfd, job.hutch, job.report, job.hold].map(|fd| {
            if fd < 0 {
                return -1;
            }
            call(libc::SYS_fcntl, fd as usize, libc::F_DUPFD as usize, 4, 0)
        });
        if !own || high[..3].iter().any(|&fd| fd < 0) || (job.hold >= 0 && high[3] < 0) {
            // Perhaps still sharing hutch's table: tell hutch, and take
            // init down.
            let errno = -libc::ENOMEM;
            call(
                libc::SYS_pidfd_send_signal,
                init_pidfd as usize,
                libc::SIGKILL as usize,
                0,
                0,
            );
            call(libc::SYS_wait4, pid as usize, 0, 0, 0);
            report(job.report as usize, (&errno as *const i32).cast(), 4);
            exit(1);
        }
        for (to, &from) in high.iter().enumerate() {
            if from >= 0 {
                call(libc::SYS_dup3, from as usize, to, 0, 0);
            }
        }
        // Nothing else of hutch's: 3 too when the keeper holds nothing (a
        // caller's `--report-fd 3` would not see its end of file).
        let first_unused = if job.hold >= 0 { 4 } else { 3 };
        if call(libc::SYS_close_range, first_unused, u32::MAX as usize, 0, 0) < 0 {
            // Kernels before 5.9 have no close_range.
            for fd in first_unused..4096 {
                call(libc::SYS_close, fd, 0, 0, 0);
            }
        }
        // A write to hutch's report pipe once hutch is gone fails (EPIPE)
        // rather than killing the keeper.
        let pipe_signal: u64 = 1 << (libc::SIGPIPE - 1);
        let mask_size = std::mem::size_of::<u64>();
        call(
            libc::SYS_rt_sigprocmask,
            libc::SIG_BLOCK as usize,
            (&pipe_signal as *const u64) as usize,
            0,
            mask_size,
        );
        // A process group of its own: job control (a Ctrl-Z or a `kill %1`
        // of hutch's job) must not stop or kill it; hutch's blocked signals
        // (SIGINT, SIGTERM, SIGHUP, ...) stay blocked here. Not a session of
        // its own: setsid makes a scheduler autogroup, which costs more.
        call(libc::SYS_setpgid, 0, 0, 0, 0);
        let init_pid = pid as i32;
        report(2, (&init_pid as *const i32).cast(), 4);

        // Until init has been reaped and hutch has exited: init's exit is
        // reaped at once, and how it ended reported; hutch's exit first
        // means either the workload has ended and init is exiting (hutch
        // returned early), or hutch died, and init goes too.
        let mut pfds = [0, 1].map(|fd| libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        });
        while pfds.iter().any(|p| p.fd >= 0) {
            let polled = call(
                libc::SYS_ppoll,
                pfds.as_mut_ptr() as usize,
                pfds.len(),
                0,
                0,
            );
            if polled == -(libc::EINTR as isize) {
                continue;
            }
            if polled < 0 {
                exit(1);
            }
            if pfds[0].fd >= 0 && pfds[0].revents != 0 {
                let mut reaped: Reaped = std::mem::zeroed();
                let status = &mut reaped.status as *mut libc::c_int;
                let usage = &mut reaped.usage as *mut libc::rusage;
                call(
                    libc::SYS_wait4,
                    pid as usize,
                    status as usize,
                    0,
                    usage as usize,
                );
                let size = std::mem::size_of::<Reaped>();
                report(2, (&reaped as *const Reaped).cast(), size);
                call(libc::SYS_close, 2, 0, 0, 0);
                pfds[0].fd = -1;
            }
            if pfds[1].fd >= 0 && pfds[1].revents != 0 {
                pfds[1].fd = -1;
                if pfds[0].fd >= 0 {
                    call(libc::SYS_pidfd_send_signal, 0, libc::SIGKILL as usize, 0, 0);
                }
            }
        }
        // The cgroup is empty, and hutch is done with it: a pooled one is
        // free for the next run.
        call(libc::SYS_close, 3, 0, 0, 0);
        // init left its cgroup before it became a zombie (cgroup_exit
        // precedes exit_notify), and every other process of its pid
        // namespace had gone before it could exit.
        let pause = libc::timespec {
            tv_sec: 0,
            tv_nsec: 1_000_000,
        };
        let at = libc::AT_FDCWD as usize;
        for step in &job.steps {
            match step {
                RawStep::RemoveCgroup(dir) => {
                    for _ in 0..RMDIR_ATTEMPTS {
                        let r = call(
                            libc::SYS_unlinkat,
                            at,
                            dir.as_ptr() as usize,
                            libc::AT_REMOVEDIR as usize,
                            0,
                        );
                        if r != -(libc::EBUSY as isize) {
                            break;
                        }
                        call(
                            libc::SYS_nanosleep,
                            (&pause as *const libc::timespec) as usize,
                            0,
                            0,
                            0,
                        );
                    }
                }
                RawStep::StopIfExists(path) => {
                    if call(
                        libc::SYS_faccessat,
                        at,
                        path.as_ptr() as usize,
                        libc::F_OK as usize,
                        0,
                    ) == 0
                    {
                        break;
                    }
                }
                RawStep::Park(dir, to, files) => {
                    let parked = to.iter().any(|t| {
                        raw_syscall(
                            libc::SYS_renameat2,
                            [
                                at,
                                dir.as_ptr() as usize,
                                at,
                                t.as_ptr() as usize,
                                libc::RENAME_NOREPLACE as usize,
                                0,
                            ],
                        ) == 0
                    });
                    if !parked {
                        for f in files {
                            call(libc::SYS_unlinkat, at, f.as_ptr() as usize, 0, 0);
                        }
                        call(
                            libc::SYS_unlinkat,
                            at,
                            dir.as_ptr() as usize,
                            libc::AT_REMOVEDIR as usize,
                            0,
                        );
                    }
                }
            }
        }
        exit(0)
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

    /// Run a keeper in a process standing in for hutch, under a subreaper
    /// standing in for the system: hutch starts a keeper whose init waits
    /// for a byte on a pipe and exits 7, passes init's pid back, then does
    /// `hutch_then` (with the pipe's write end and init's pidfd) and exits
    /// with its result. Returns hutch's exit code, init's pid and the pids
    /// of the orphans the subreaper adopted. An alarm ends a harness that
    /// waits for ever (a keeper that never reaps).
    fn under_subreaper(
        steps: &[Step],
        hutch_then: impl Fn(&Keeper, RawFd, RawFd) -> i32,
    ) -> (i32, libc::pid_t, Vec<libc::pid_t>) {
        let (out_r, out_w) = crate::sandbox::sys::pipe().unwrap();
        let harness = forked(|| {
            // SAFETY: a prctl and an alarm, on integers.
            unsafe {
                libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1);
                libc::alarm(20);
            }
            let (go_r, go_w) = crate::sandbox::sys::pipe().unwrap();
            let (pid_r, pid_w) = crate::sandbox::sys::pipe().unwrap();
            let hutch = forked(|| {
                // A descriptor of hutch's caller on 3 (a `--report-fd 3`,
                // say), which the keeper must not keep open: the read end
                // sees EOF once hutch and init have closed theirs.
                let (probe_r, probe_w) = crate::sandbox::sys::pipe().unwrap();
                // SAFETY: fcntl, dup2 and close on descriptors we own; the
                // read end is moved above 3 first, so dup2 cannot close it.
                let probe_r = unsafe {
                    let high = libc::fcntl(probe_r.as_raw_fd(), libc::F_DUPFD_CLOEXEC, 100);
                    libc::dup2(probe_w.as_raw_fd(), 3);
                    drop((probe_r, probe_w));
                    OwnedFd::from_raw_fd(high)
                };
                let mut pidfd: RawFd = -1;
                let args = CloneArgs {
                    flags: libc::CLONE_PIDFD as u64,
                    pidfd: &mut pidfd as *mut RawFd as u64,
                    exit_signal: libc::SIGCHLD as u64,
                    ..Default::default()
                };
                let mut init = || -> Infallible {
                    let mut b = [0u8; 1];
                    // SAFETY: closing init's copy of 3 (as init's own
                    // close_range does), reading into a local byte, then
                    // exiting.
                    unsafe {
                        libc::close(3);
                        libc::read(go_r.as_raw_fd(), b.as_mut_ptr().cast(), 1);
                        libc::_exit(7)
                    }
                };
                let Ok(Some((keeper, pid))) = Keeper::clone_init(&args, &mut init, steps, None)
                else {
                    return 100;
                };
                sys::write_all(pid_w.as_raw_fd(), &pid.to_ne_bytes()).unwrap();
                let mut probe = libc::pollfd {
                    fd: probe_r.as_raw_fd(),
                    events: libc::POLLIN,
                    revents: 0,
                };
                // SAFETY: closing our 3; polling one valid pollfd.
                let polled = unsafe {
                    libc::close(3);
                    libc::poll(&mut probe, 1, 5000)
                };
                if polled != 1 || probe.revents & libc::POLLHUP == 0 {
                    return 101; // the keeper kept the caller's descriptor
                }
                hutch_then(&keeper, go_w.as_raw_fd(), pidfd)
            });
            drop((go_r, pid_w));
            let mut init = [0u8; 4];
            read_full(pid_r.as_raw_fd(), &mut init);
            let mut report = init.to_vec();
            let code = exit_code(hutch);
            report.extend(code.to_ne_bytes());
            // Every orphan adopted, until none is left.
            loop {
                // SAFETY: reaping our own children into a null status.
                let pid = unsafe { libc::waitpid(-1, std::ptr::null_mut(), 0) };
                if pid <= 0 {
                    break;
                }
                report.extend(pid.to_ne_bytes());
            }
            drop(go_w);
            sys::write_all(out_w.as_raw_fd(), &report).unwrap();
            0
        });
        drop(out_w);
        assert_eq!(exit_code(harness), 0, "the harness ended (by its alarm?)");
        let report = sys::read_to_end(out_r.as_raw_fd(), 4096).unwrap();
        let ints: Vec<i32> = report
            .chunks(4)
            .map(|c| i32::from_ne_bytes(c.try_into().unwrap()))
            .collect();
        (ints[1], ints[0], ints[2..].to_vec())
    }

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("hutch-keeper-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    /// The keeper clones init and is its parent: it reaps init and tells
    /// hutch how init ended (hutch waits here), and the system adopts the
    /// keeper alone. Its steps wait for hutch's exit too.
    #[test]
    fn the_keeper_reaps_init_and_reports_its_status_and_is_the_only_orphan() {
        let dir = scratch("reaps");
        let cgroup = dir.join("cgroup");
        std::fs::create_dir(&cgroup).unwrap();
        let (code, init, orphans) =
            under_subreaper(&[Step::RemoveCgroup(cgroup.clone())], |k, go, pidfd| {
                sys::write_all(go, b"x").unwrap();
                // SAFETY: plain data.
                let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
                let status = k.reaped(pidfd, &mut usage);
                if !libc::WIFEXITED(status) || libc::WEXITSTATUS(status) != 7 {
                    return 1;
                }
                // The keeper waits for hutch's exit before its steps.
                if !cgroup.exists() {
                    return 2;
                }
                0
            });
        assert_eq!(code, 0, "hutch saw init exit 7 before any step ran");
        assert!(init > 0);
        assert!(
            !orphans.contains(&init),
            "init was left to the system: {orphans:?}"
        );
        assert_eq!(orphans.len(), 1, "one orphan, the keeper: {orphans:?}");
        assert!(!cgroup.exists(), "the keeper removed the cgroup");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// hutch gone first (it returned early, or died): the keeper kills
    /// init, reaps it, then carries out its steps in order and stops at
    /// a path that exists.
    #[test]
    fn the_keeper_kills_init_when_hutch_is_gone_then_does_its_steps_in_order() {
        let dir = scratch("steps");
        for d in ["record", "cgroup", "taken", "never"] {
            std::fs::create_dir_all(dir.join(d)).unwrap();
        }
        std::fs::write(dir.join("kept"), "").unwrap();
        for d in ["full", "full-taken"] {
            std::fs::create_dir_all(dir.join(d)).unwrap();
        }
        std::fs::write(dir.join("full/state.json"), "").unwrap();
        let steps = vec![
            Step::RemoveCgroup(dir.join("cgroup")),
            Step::Park {
                dir: dir.join("record"),
                to: vec![dir.join("taken"), dir.join("spare")],
                files: vec![],
            },
            // No parking place free: its files go, then it.
            Step::Park {
                dir: dir.join("full"),
                to: vec![dir.join("full-taken")],
                files: vec![dir.join("full/state.json")],
            },
            Step::StopIfExists(dir.join("kept")),
            Step::RemoveCgroup(dir.join("never")),
        ];
        // hutch exits at once; init waits for a byte that never comes.
        let (code, init, orphans) = under_subreaper(&steps, |_, _, _| 0);
        assert_eq!(code, 0);
        assert!(
            !orphans.contains(&init),
            "init was left to the system: {orphans:?}"
        );
        assert_eq!(orphans.len(), 1, "one orphan, the keeper: {orphans:?}");
        assert!(!dir.join("cgroup").exists());
        assert!(!dir.join("record").exists());
        assert!(dir.join("spare").is_dir(), "parked in the first free slot");
        assert!(!dir.join("full").exists(), "emptied and removed");
        assert!(dir.join("never").is_dir(), "went past an existing path");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
