//! The cloned child: the sandbox's setup, in order, as one readable sequence.
//!
//! The child starts in new user, mount, pid, ipc, uts, net and cgroup
//! namespaces and becomes pid 1 of the sandbox. It builds the root
//! filesystem, then forks the workload and stays behind as a small init
//! that reaps zombies and forwards signals. The workload confines itself
//! (Landlock, capabilities, user, no_new_privs, seccomp last) and execs.
//!
//! Every failure is written to the error pipe as a [`SetupError`]; the pipe
//! is close-on-exec, so the parent reading EOF means the workload exec'd.

use std::convert::Infallible;
use std::ffi::CString;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use super::caps;
use super::console;
use super::error::{SetupError, EXIT_CANNOT_INVOKE, EXIT_HUTCH, EXIT_NOT_FOUND};
use super::init;
use super::rootfs;
use super::spec::{Namespace, Spec, DEFAULT_PATH};
use super::sys;

/// The descriptors the child works with (all inherited across clone).
#[derive(Debug, Clone, Copy)]
pub struct ChildFds {
    /// Read end: one byte once the id maps are written, a second once the
    /// child is in the sandbox's cgroup (see [`wait_release`]); EOF if
    /// hutch failed or died.
    pub sync: RawFd,
    /// Write end: a JSON [`SetupError`] on failure; close-on-exec.
    pub error: RawFd,
    /// Write end: the workload's wait status, written by init.
    pub status: RawFd,
    /// With `-t`: the socket the pty's master is sent over; else -1.
    pub console: RawFd,
    pub stdin: RawFd,
    pub stdout: RawFd,
    pub stderr: RawFd,
}

/// Entry point of the cloned child. Never returns.
pub fn main(spec: &Spec, fds: ChildFds) -> ! {
    let err = match setup(spec, fds) {
        Ok(never) => match never {},
        Err(e) => e,
    };
    report_and_exit(fds.error, &err)
}

/// Fork a process that runs `confine` (its last steps in a joined
/// sandbox: confine itself and exec) and learn whether it exec'd: its pid,
/// or the error it reported (then it is reaped). The caller must be
/// single-threaded.
pub fn fork_confined(
    confine: impl FnOnce() -> Result<Infallible, SetupError>,
) -> Result<i32, super::SandboxError> {
    use super::SandboxError;
    let (err_r, err_w) =
        sys::pipe().map_err(|e| SandboxError::io("cannot create", "an error pipe", e))?;
    // SAFETY: fork in a single-threaded process; the child confines itself
    // and execs or reports and _exits.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(SandboxError::io(
            "cannot fork",
            "the exec process",
            std::io::Error::last_os_error(),
        ));
    }
    if pid == 0 {
        drop(err_r);
        let err = match confine() {
            Ok(never) => match never {},
            Err(e) => e,
        };
        report_and_exit(err_w.as_raw_fd(), &err);
    }
    drop(err_w);
    // EOF: the process exec'd (the pipe is close-on-exec).
    let report = sys::read_to_end(err_r.as_raw_fd(), 64 * 1024)
        .map_err(|e| SandboxError::io("cannot read", "the error pipe", e))?;
    if !report.is_empty() {
        let mut status = 0;
        // SAFETY: reaping our own child, which has reported and exits.
        unsafe { libc::waitpid(pid, &mut status, 0) };
        let err: SetupError = serde_json::from_slice(&report).unwrap_or_else(|_| {
            SetupError::msg("exec failed", String::from_utf8_lossy(&report).into_owned())
        });
        return Err(err.into());
    }
    Ok(pid)
}

/// Write `err` to the error pipe and exit with its code.
pub fn report_and_exit(fd: RawFd, err: &SetupError) -> ! {
    if let Ok(json) = serde_json::to_vec(err) {
        let _ = sys::write_all(fd, &json);
    }
    // SAFETY: _exit ends the process without running the parent's atexit
    // handlers or flushing its stdio buffers, which this clone inherited.
    unsafe { libc::_exit(err.exit_code) }
}

fn setup(spec: &Spec, fds: ChildFds) -> Result<Infallible, SetupError> {
    // 0. Die with hutch: if it is killed, the kernel kills pid 1 and with
    //    it the whole pid namespace. (Not when the sandbox is meant to
    //    outlive its starter, as an OCI runtime's `create` does.)
    if !spec.advanced.outlive_caller {
        sys::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong)
            .map_err(|e| SetupError::io("cannot set the parent-death signal", None, &e))?;
    }

    // 1. Wait until the parent has written our uid and gid maps.
    wait_release(fds.sync);

    stdio(fds, spec.advanced.preserve_fds)?;

    // The start gate lives on the host: open it before the root changes.
    let gate = match &spec.advanced.start_gate {
        Some(p) => Some(open_gate(p)?),
        None => None,
    };

    let inet = spec.network.private_namespace()
        && spec.advanced.creates(Namespace::Network)
        && !spec.network.loopback_down;
    if inet {
        // As Docker does: any port may be bound inside the sandbox's own
        // network namespace, even without capabilities. This /proc/sys
        // file belongs to the netns we are in, not the host's.
        std::fs::write("/proc/sys/net/ipv4/ip_unprivileged_port_start", "0").map_err(|e| {
            SetupError::io(
                "cannot write",
                Some("net.ipv4.ip_unprivileged_port_start".into()),
                &e,
            )
        })?;
    }

    // 2-4. The root filesystem: private propagation, overlay or host dirs,
    //      volumes, /proc, /dev, /sys, pivot_root, masked paths.
    //      Nothing of the workload's may run before the parent has moved
    //      us into the sandbox's cgroup: its second byte is awaited just
    //      before the pivot. The parent is idle after it, and detaching the
    //      old root waits for an expedited RCU grace period, which a CPU
    //      busy in the kernel (the parent writing the record) holds up.
    rootfs::build(spec, &mut || wait_release(fds.sync))?;

    // 5. Identity and network of the sandbox. (An empty hostname keeps
    //    the uts namespace's own, which may be shared.)
    if !spec.hostname.is_empty() {
        set_hostname(&spec.hostname)?;
    }
    if inet {
        loopback_up()?;
    }

    // With -t: a pty from the sandbox's own devpts; the master goes to hutch.
    let slave = if spec.process.terminal {
        Some(open_console(fds.console)?)
    } else {
        None
    };

    // SAFETY: closing a descriptor we own and no longer use.
    unsafe { libc::close(fds.sync) };

    if spec.advanced.workload_is_pid1 {
        // No init: this process confines itself and becomes the workload.
        let gate = gate.map(|fd| (fd, fds.error));
        return exec_workload_gated(spec, slave.as_ref(), gate, true);
    }

    // 6. Start the workload; this process stays as its pid 1, in a session
    //    of its own: in hutch's process group it got the user's terminal
    //    signals (Ctrl-C, a resize) straight from the kernel and forwarded
    //    them too, so the workload got each twice, and a SIGWINCH before
    //    hutch had copied the new size onto the sandbox's pty. hutch passes
    //    every one on through init.
    // SAFETY: setsid takes no arguments; this process leads no group yet
    // (it is in hutch's), so it cannot fail.
    unsafe { libc::setsid() };
    // The bounding set goes now, but for what the workload keeps (init
    // drops those once it has started): the workload inherits it emptied,
    // and its own drop then changes nothing and makes no new credentials.
    caps::drop_bounding_except(caps::last_cap(), &spec.advanced.capabilities)
        .map_err(|e| SetupError::io("cannot drop the capability bounding set", None, &e))?;
    let run_workload = |gate: Option<OwnedFd>| -> Infallible {
        let gate = gate.map(|fd| (fd, fds.error));
        // init's session is the workload's: a session of its own only
        // when it must take a terminal (each session is also a scheduler
        // autogroup, made and freed again at every run).
        let new_session = slave.is_some();
        let err = match exec_workload_gated(spec, slave.as_ref(), gate, new_session) {
            Ok(never) => match never {},
            Err(e) => e,
        };
        report_and_exit(fds.error, &err)
    };
    let pid = match gate {
        // With a start gate (an OCI runtime's `create`) the workload waits
        // before exec for as long as the caller likes, and init must stay
        // free to take signals meanwhile: a plain fork.
        Some(gate) => {
            // SAFETY: the child is single-threaded (clone copied only the
            // calling thread), so forking is safe and the new process may
            // allocate.
            let pid = unsafe { libc::fork() };
            if pid == 0 {
                #[allow(unreachable_code)] // run_workload cannot return
                match run_workload(Some(gate)) {}
            }
            pid
        }
        // Otherwise init has nothing to do until the workload execs: it
        // borrows init's memory meanwhile, as posix_spawn does, which
        // spares copying init's page tables and tearing the copy down
        // at exec.
        None => sys::spawn_sharing_memory(&mut || run_workload(None)),
    };
    if pid < 0 {
        return Err(SetupError::io(
            "cannot start the workload",
            None,
            &std::io::Error::last_os_error(),
        ));
    }
    drop(slave);
    // init reads and writes nothing of the user's: its stdio (the user's
    // terminal with -t) goes, so nothing in the sandbox can reach it there.
    let null = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null")
        .map_err(|e| SetupError::io("cannot open", Some("/dev/null".into()), &e))?;
    for fd in 0..3 {
        sys::dup2(null.as_raw_fd(), fd)
            .map_err(|e| SetupError::io("cannot set up init's stdio", None, &e))?;
    }
    drop(null);
    // SAFETY: the workload holds its own copy of the error pipe; init's
    // copy must go so the parent sees EOF once the workload execs.
    unsafe { libc::close(fds.error) };
    init::run(pid, fds.status)
}

/// One byte from the parent on the sync pipe. Anything else means hutch
/// failed (and reports that itself) or died: exit quietly.
fn wait_release(sync: RawFd) {
    let mut byte = [0u8; 1];
    loop {
        // SAFETY: reading one byte into a valid one-byte buffer.
        let n = unsafe { libc::read(sync, byte.as_mut_ptr().cast(), 1) };
        if n == 1 {
            return;
        }
        if n < 0 && std::io::Error::last_os_error().raw_os_error() == Some(libc::EINTR) {
            continue;
        }
        // SAFETY: plain process exit.
        unsafe { libc::_exit(EXIT_HUTCH) }
    }
}

fn stdio(fds: ChildFds, preserve_fds: u32) -> Result<(), SetupError> {
    for (from, to) in [(fds.stdin, 0), (fds.stdout, 1), (fds.stderr, 2)] {
        if from != to {
            sys::dup2(from, to).map_err(|e| SetupError::io("cannot set up stdio", None, &e))?;
        }
    }
    // Nothing else hutch's caller left open may reach the workload: an
    // inherited directory descriptor would be a way out of the new root.
    // Only those it passed on purpose (--preserve-fds) stay.
    sys::keep_passed_fds(preserve_fds)
        .map_err(|e| SetupError::io("cannot mark descriptors close-on-exec", None, &e))?;
    Ok(())
}

fn set_hostname(name: &str) -> Result<(), SetupError> {
    // SAFETY: the pointer and length describe `name`'s bytes.
    let ret = unsafe { libc::sethostname(name.as_ptr().cast(), name.len()) };
    sys::check(ret as libc::c_long)
        .map(drop)
        .map_err(|e| SetupError::io("cannot set hostname", Some(name.to_string()), &e))
}

/// Bring `lo` up in the new network namespace.
fn loopback_up() -> Result<(), SetupError> {
    let fail =
        |e: std::io::Error| SetupError::io("cannot bring up loopback", Some("lo".into()), &e);
    // SAFETY: creating a socket takes no pointers.
    let sock = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if sock < 0 {
        return Err(fail(std::io::Error::last_os_error()));
    }
    // SAFETY: ifreq is plain old data; zeroed is a valid value.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, src) in req.ifr_name.iter_mut().zip(b"lo\0") {
        *dst = *src as libc::c_char;
    }
    req.ifr_ifru.ifru_flags = (libc::IFF_UP | libc::IFF_RUNNING) as libc::c_short;
    // SAFETY: `req` is a valid ifreq for SIOCSIFFLAGS; `sock` is open.
    let ret = unsafe { libc::ioctl(sock, libc::SIOCSIFFLAGS, &req) };
    let err = std::io::Error::last_os_error();
    // SAFETY: closing the socket we opened.
    unsafe { libc::close(sock) };
    if ret < 0 {
        return Err(fail(err));
    }
    Ok(())
}

/// Open the sandbox's pty and hand its master to hutch; keep the slave.
fn open_console(sock: RawFd) -> Result<OwnedFd, SetupError> {
    let pair = console::open_inside()
        .map_err(|e| SetupError::io("cannot open a pseudo-terminal", on_ptmx(), &e))?;
    console::send_fd(sock, pair.master.as_raw_fd())
        .map_err(|e| SetupError::io("cannot pass the pseudo-terminal to hutch", None, &e))?;
    // SAFETY: closing the socket we own and no longer use.
    unsafe { libc::close(sock) };
    Ok(pair.slave)
}

fn on_ptmx() -> Option<String> {
    Some("/dev/ptmx".into())
}

/// Open the start gate FIFO read-write: opening does not block, and a read
/// blocks until the releasing byte arrives (never EOF: we are a writer too).
fn open_gate(path: &Path) -> Result<OwnedFd, SetupError> {
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_CLOEXEC)
        .open(path)
        .map(OwnedFd::from)
        .map_err(|e| {
            SetupError::io(
                "cannot open the start gate",
                Some(path.display().to_string()),
                &e,
            )
        })
}

/// The workload's last steps: confine, then exec. Seccomp goes on last.
/// `hutch exec` runs the same steps in a joined container, so a process it
/// starts is confined exactly as the workload is.
pub fn exec_workload(spec: &Spec, slave: Option<&OwnedFd>) -> Result<Infallible, SetupError> {
    exec_workload_gated(spec, slave, None, true)
}

/// [`exec_workload`], waiting on a start gate before seccomp and exec when
/// one is given with the error pipe: `(gate, error pipe)`, in a new session
/// when `new_session`.
fn exec_workload_gated(
    spec: &Spec,
    slave: Option<&OwnedFd>,
    gate: Option<(OwnedFd, RawFd)>,
    new_session: bool,
) -> Result<Infallible, SetupError> {
    let proc = &spec.process;
    reset_signals();
    // The workload is never in the user's session, so it has no controlling
    // terminal of the user's (no TIOCSTI into it): it leads a session of
    // its own, or (`!new_session`) is in init's, which has no terminal.
    if new_session {
        // SAFETY: setsid takes no arguments.
        unsafe { libc::setsid() };
    }
    if let Some(slave) = slave {
        console::attach_slave(slave)
            .map_err(|e| SetupError::io("cannot set the controlling terminal", None, &e))?;
    }

    // Build exec's arguments before confinement, so nothing below allocates
    // under a filter that might refuse it.
    let argv = cstrings(&proc.args)?;
    let envp = cstrings(&proc.env)?;

    if let Some(adj) = spec.advanced.oom_score_adj {
        // Before Landlock, which may not let /proc be written.
        std::fs::write("/proc/self/oom_score_adj", adj.to_string()).map_err(|e| {
            SetupError::io("cannot set oom_score_adj", Some(adj.to_string()), &e)
                .hint("lowering it needs CAP_SYS_RESOURCE on the host")
        })?;
    }

    // Resource limits of this process and everything it starts; lowering
    // needs no privilege, so they also hold after setuid.
    for r in &spec.limits.rlimits {
        r.apply().map_err(|e| {
            SetupError::io("cannot set rlimit", Some(format!("{}", r.resource)), &e)
        })?;
    }

    // 6. Landlock, while we may still read everything we need.
    spec.policy
        .apply_landlock(&spec.writable_paths())
        .map_err(|e| SetupError::msg("cannot apply the Landlock policy", e.to_string()))?;

    // 7. Capabilities, user, no_new_privs.
    let keep = &spec.advanced.capabilities;
    caps::drop_bounding_except(caps::last_cap(), keep)
        .map_err(|e| SetupError::io("cannot drop the capability bounding set", None, &e))?;
    if !keep.is_empty() {
        // Keep the permitted set across a switch to a non-root uid.
        sys::prctl(libc::PR_SET_KEEPCAPS, 1)
            .map_err(|e| SetupError::io("cannot keep capabilities", None, &e))?;
    }
    switch_user(spec)?;
    caps::set_only(keep).map_err(|e| SetupError::io("cannot set capabilities", None, &e))?;
    sys::prctl(libc::PR_SET_NO_NEW_PRIVS, 1)
        .map_err(|e| SetupError::io("cannot set no_new_privs", None, &e))?;

    std::env::set_current_dir(&proc.cwd).map_err(|e| {
        SetupError::io(
            "cannot change to the working directory",
            Some(proc.cwd.display().to_string()),
            &e,
        )
        .code(EXIT_CANNOT_INVOKE)
    })?;
    if let Some(mask) = spec.advanced.umask {
        // SAFETY: umask takes and returns plain integers.
        unsafe { libc::umask(mask as libc::mode_t) };
    }
    let program = resolve_program(&proc.args[0], &proc.env)?;
    let program = sys::cstr(&program).map_err(|e| SetupError::io("bad command", None, &e))?;
    let argv_ptrs = null_terminated(&argv);
    let envp_ptrs = null_terminated(&envp);

    // Created state: everything is set up; whoever started us returns now
    // (EOF on the error pipe) and the workload waits to be released. A
    // failure from here on is said on the workload's stderr.
    if let Some((gate, error)) = gate {
        // SAFETY: dup3 onto the error pipe's number closes our end of it
        // (the starter sees EOF) and keeps the number valid for reports.
        let ret = unsafe { libc::dup3(2, error, libc::O_CLOEXEC) };
        sys::check(ret as libc::c_long)
            .map_err(|e| SetupError::io("cannot leave the error pipe", None, &e))?;
        let mut byte = [0u8; 1];
        loop {
            // SAFETY: reading one byte into a valid one-byte buffer.
            let n = unsafe { libc::read(gate.as_raw_fd(), byte.as_mut_ptr().cast(), 1) };
            if n == 1 {
                break;
            }
            let e = std::io::Error::last_os_error();
            if n == 0 || e.kind() != std::io::ErrorKind::Interrupted {
                return Err(SetupError::io("cannot wait on the start gate", None, &e));
            }
        }
        drop(gate);
    }

    // 8. Seccomp, the very last step. A second filter goes on first: the
    //    policy's may not allow seccomp(2) itself.
    if let Some(extra) = &spec.advanced.extra_seccomp {
        extra.apply_seccomp().map_err(|e| {
            SetupError::msg("cannot apply the second seccomp filter", e.to_string())
        })?;
    }
    spec.policy
        .apply_seccomp()
        .map_err(|e| SetupError::msg("cannot apply the seccomp policy", e.to_string()))?;

    // SAFETY: program, argv and envp are NUL-terminated strings in
    // NULL-terminated arrays, all alive until execve returns (on failure).
    unsafe { libc::execve(program.as_ptr(), argv_ptrs.as_ptr(), envp_ptrs.as_ptr()) };
    let e = std::io::Error::last_os_error();
    let code = if e.raw_os_error() == Some(libc::ENOENT) {
        EXIT_NOT_FOUND
    } else {
        EXIT_CANNOT_INVOKE
    };
    Err(SetupError::io(format!("exec: {:?}", proc.args[0]), None, &e).code(code))
}

fn reset_signals() {
    // SAFETY: an empty sigset from sigemptyset, applied to this thread; the
    // dispositions reset are plain integers.
    unsafe {
        for sig in 1..libc::SIGRTMIN() {
            if sig != libc::SIGKILL && sig != libc::SIGSTOP {
                libc::signal(sig, libc::SIG_DFL);
            }
        }
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigprocmask(libc::SIG_SETMASK, &set, std::ptr::null_mut());
    }
}

fn switch_user(spec: &Spec) -> Result<(), SetupError> {
    let u = &spec.process.user;
    let unmapped = |e: std::io::Error| {
        SetupError::io(
            "cannot switch to user",
            Some(format!("{}:{}", u.uid, u.gid)),
            &e,
        )
        .hint("the id is not mapped in this user namespace; use --userns=auto with a subuid range")
    };
    // Supplementary groups may be set where newgidmap installed the map or
    // in a user namespace the sandbox did not make (setgroups is allowed
    // there unless its maker denied it, and then this fails closed).
    if spec.idmap.use_helpers || !spec.advanced.creates(super::spec::Namespace::User) {
        // SAFETY: the slice outlives the call and its length is passed.
        let ret = unsafe { libc::setgroups(u.additional_gids.len(), u.additional_gids.as_ptr()) };
        sys::check(ret as libc::c_long).map_err(unmapped)?;
    }
    // SAFETY: integer arguments only.
    let ret = unsafe { libc::setresgid(u.gid, u.gid, u.gid) };
    sys::check(ret as libc::c_long).map_err(unmapped)?;
    // SAFETY: integer arguments only.
    let ret = unsafe { libc::setresuid(u.uid, u.uid, u.uid) };
    sys::check(ret as libc::c_long).map_err(unmapped)?;
    Ok(())
}

/// Find the command as execvp would, in the sandbox's own PATH, so a
/// missing command is told apart (127) from one that cannot run (126).
fn resolve_program(arg0: &str, env: &[String]) -> Result<PathBuf, SetupError> {
    let not_found = || {
        SetupError::msg(
            format!("exec: {arg0:?}"),
            if arg0.contains('/') {
                "no such file or directory".to_string()
            } else {
                "executable file not found in $PATH".to_string()
            },
        )
        .code(EXIT_NOT_FOUND)
    };
    let executable = |p: &Path| -> Option<Result<(), std::io::Error>> {
        let meta = std::fs::metadata(p).ok()?;
        if meta.is_dir() {
            return Some(Err(std::io::Error::from_raw_os_error(libc::EISDIR)));
        }
        let c = sys::cstr(p).ok()?;
        // SAFETY: `c` is a valid C string.
        if unsafe { libc::access(c.as_ptr(), libc::X_OK) } == 0 {
            Some(Ok(()))
        } else {
            Some(Err(std::io::Error::last_os_error()))
        }
    };
    let cannot = |p: &Path, e: std::io::Error| {
        SetupError::io(format!("exec: {:?}", p.display().to_string()), None, &e)
            .code(EXIT_CANNOT_INVOKE)
    };
    if arg0.contains('/') {
        let p = PathBuf::from(arg0);
        return match executable(&p) {
            None => Err(not_found()),
            Some(Ok(())) => Ok(p),
            Some(Err(e)) => Err(cannot(&p, e)),
        };
    }
    let path = env
        .iter()
        .find_map(|kv| kv.strip_prefix("PATH="))
        .unwrap_or(DEFAULT_PATH);
    let mut denied = None;
    for dir in path.split(':').filter(|d| !d.is_empty()) {
        let p = Path::new(dir).join(arg0);
        match executable(&p) {
            None => continue,
            Some(Ok(())) => return Ok(p),
            Some(Err(e)) => denied = denied.or(Some((p, e))),
        }
    }
    match denied {
        Some((p, e)) => Err(cannot(&p, e)),
        None => Err(not_found()),
    }
}

fn cstrings(items: &[String]) -> Result<Vec<CString>, SetupError> {
    items
        .iter()
        .map(|s| {
            CString::new(std::ffi::OsStr::new(s).as_bytes()).map_err(|_| {
                SetupError::msg("invalid argument", format!("{s:?} contains a NUL byte"))
            })
        })
        .collect()
}

fn null_terminated(items: &[CString]) -> Vec<*const libc::c_char> {
    items
        .iter()
        .map(|c| c.as_ptr())
        .chain(std::iter::once(std::ptr::null()))
        .collect()
}
