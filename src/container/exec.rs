//! `hutch exec`: run another process in a running container. hutch joins
//! the sandbox's user, mount, pid, ipc, uts, net and cgroup namespaces,
//! forks (a pid namespace takes effect for children only), and the child
//! confines itself with the very steps the workload went through
//! (`child::exec_workload`: the same Landlock and seccomp policy, no
//! capabilities, no_new_privs) before exec.
//!
//! The sandbox's init is deliberately not dumpable, so its namespaces
//! cannot be opened by the user; they are taken from the workload (init's
//! child, checked through pidfds and start times). The workload is
//! untrusted and could have moved into namespaces of its own, so each one
//! is checked before it is joined: the user namespace must be a direct
//! child of ours, the pid namespace a direct child of ours, and every other
//! namespace owned by that user namespace. A workload without capabilities
//! can only make namespaces under a nested user namespace, which fails the
//! check.

use std::convert::Infallible;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::path::PathBuf;

use super::process::{PidFd, ProcId};
use super::ContainerError;
use crate::sandbox::attach::{RawTerminal, SignalFd};
use crate::sandbox::error::{SetupError, EXIT_HUTCH};
use crate::sandbox::nsjoin::{self, Joiner, NS_GET_PARENT, NS_GET_USERNS};
use crate::sandbox::passwd::{self, RootFiles};
use crate::sandbox::spawn::Exit;
use crate::sandbox::{caps, child, console, sys, Spec};

/// What to run, from `exec`'s flags.
#[derive(Debug, Clone, Default)]
pub struct Request {
    pub args: Vec<String>,
    /// `NAME=VALUE` pairs added to (or replacing in) the container's env.
    pub env: Vec<String>,
    pub workdir: Option<PathBuf>,
    pub user: Option<String>,
    pub tty: bool,
    pub interactive: bool,
}

/// Open the namespaces of a running container, checked (see the module's
/// comment), ready to join.
fn container_namespaces(init: ProcId) -> std::io::Result<Joiner> {
    let gone = || {
        std::io::Error::new(
            std::io::ErrorKind::NotFound,
            "the container's workload is gone",
        )
    };
    let workload = init.first_child().ok_or_else(gone)?;
    let pid = workload.pid();
    let fds = nsjoin::open_all(pid)?;
    // The pid could have been reused while we opened: check that the
    // process we opened them from is still init's child.
    if !init.first_child().is_some_and(|w| w.pid() == pid) || !workload.alive() {
        return Err(gone());
    }
    let not_sandbox = |what: &str| {
        std::io::Error::new(
                std::io::ErrorKind::PermissionDenied,
                format!("the workload's {what} namespace is not the sandbox's own (it made a nested one); refusing to join it"),
            )
    };
    let user = &fds[0].0;
    let user_id = nsjoin::identity(user)?;
    if nsjoin::related(user, NS_GET_PARENT)? != nsjoin::own("user")? {
        return Err(not_sandbox("user"));
    }
    for (f, flag) in &fds[1..] {
        if nsjoin::related(f, NS_GET_USERNS)? != user_id {
            return Err(not_sandbox("other"));
        }
        if *flag == libc::CLONE_NEWPID && nsjoin::related(f, NS_GET_PARENT)? != nsjoin::own("pid")?
        {
            return Err(not_sandbox("pid"));
        }
    }
    Ok(Joiner::new(fds))
}

/// Run `req` in the container whose init is `init` and whose resolved Spec
/// is `spec`. The caller must be single-threaded and must not hold the
/// container's lock (the exec may run for long).
pub fn exec(spec: &Spec, init: ProcId, req: &Request) -> Result<Exit, ContainerError> {
    let namespaces = container_namespaces(init).map_err(|e| {
        ContainerError::io(
            "cannot join the namespaces of",
            format!("container {}", &spec.id[..12]),
            e,
        )
    })?;
    let mut spec = spec.clone();
    spec.process.args = req.args.clone();
    for kv in &req.env {
        let key = kv.split('=').next().unwrap_or_default();
        spec.process
            .env
            .retain(|e| e.split('=').next() != Some(key));
        spec.process.env.push(kv.clone());
    }
    if let Some(w) = &req.workdir {
        spec.process.cwd = w.clone();
    }
    spec.process.terminal = req.tty;
    spec.process.stdin = req.interactive;

    // The host's /dev/null, opened before we enter the container.
    let null = if req.interactive || req.tty {
        None
    } else {
        Some(
            std::fs::File::open("/dev/null")
                .map_err(|e| ContainerError::io("cannot open", "/dev/null", e))?,
        )
    };
    namespaces.join().map_err(|e| {
        ContainerError::io(
            "cannot join the namespaces of",
            format!("container {}", &spec.id[..12]),
            e,
        )
    })?;
    // With -t, a pty from the container's own devpts, as its workload's.
    let pair = if req.tty {
        Some(
            console::open_inside()
                .map_err(|e| ContainerError::io("cannot open", "/dev/ptmx in the container", e))?,
        )
    } else {
        None
    };
    let signals = SignalFd::new()?;
    let result = start(
        &spec,
        req.user.as_deref(),
        null.as_ref().map(|f| f.as_raw_fd()),
        pair.as_ref().map(|p| &p.slave),
    );
    drop(null);
    let child = match result {
        Ok(c) => c,
        Err(e) => {
            signals.restore();
            return Err(e);
        }
    };
    let master = pair.map(|p| p.master);
    let exit = relay(&child, &signals, master.as_ref(), req.interactive);
    signals.restore();
    Ok(exit)
}

/// The forked command: its pid and a pidfd on it.
struct Child {
    pid: i32,
    pidfd: PidFd,
}

/// Fork the process that becomes the command, and learn whether it exec'd.
fn start(
    spec: &Spec,
    user: Option<&str>,
    stdin: Option<RawFd>,
    slave: Option<&OwnedFd>,
) -> Result<Child, ContainerError> {
    let pid = child::fork_confined(|| child_main(spec, user, stdin, slave))?;
    // A process that exec'd and ended since is a zombie until reaped:
    // the pidfd still opens on it.
    let pidfd = PidFd::open(pid)
        .map_err(|e| ContainerError::io("cannot open a pidfd on", "the exec process", e))?;
    // This process stays in the container's namespaces only to relay; it
    // keeps no capability there.
    let _ = caps::clear_all();
    Ok(Child { pid, pidfd })
}

fn reap(pid: i32) -> i32 {
    let mut status = 0;
    loop {
        // SAFETY: `status` is a valid out-pointer; `pid` is our child.
        let r = unsafe { libc::waitpid(pid, &mut status, 0) };
        if r == pid
            || (r < 0 && std::io::Error::last_os_error().kind() != std::io::ErrorKind::Interrupted)
        {
            return status;
        }
    }
}

/// Forward signals, relay the terminal, and return how the command ended.
fn relay(child: &Child, signals: &SignalFd, master: Option<&OwnedFd>, stdin: bool) -> Exit {
    let _raw = master.map(|_| RawTerminal::enter());
    let mut master_open = master.is_some();
    let mut stdin_open = stdin && master.is_some();
    let mut buf = [0u8; 8192];
    let copy = |from: RawFd, to: RawFd, buf: &mut [u8]| -> bool {
        // SAFETY: reading into a valid buffer of the given length.
        let n = unsafe { libc::read(from, buf.as_mut_ptr().cast(), buf.len()) };
        n > 0 && sys::write_all(to, &buf[..n as usize]).is_ok()
    };
    let m = master.map_or(-1, |m| m.as_raw_fd());
    loop {
        let mut fds = [
            poll_in(signals.fd.as_raw_fd()),
            poll_in(child.pidfd.raw()),
            poll_in(if master_open { m } else { -1 }),
            poll_in(if stdin_open { 0 } else { -1 }),
        ];
        // SAFETY: four valid pollfds (negative fds are ignored).
        if unsafe { libc::poll(fds.as_mut_ptr(), 4, -1) } < 0 {
            continue;
        }
        if fds[0].revents != 0 {
            match signals.read() {
                Some(libc::SIGCHLD) | None => {}
                Some(libc::SIGWINCH) if m >= 0 => {
                    console::copy_window_size(0, m);
                }
                Some(sig) => {
                    let _ = child.pidfd.signal(sig);
                }
            }
        }
        if fds[2].revents != 0 && !copy(m, 1, &mut buf) {
            master_open = false;
        }
        if fds[3].revents != 0 && !copy(0, m, &mut buf) {
            stdin_open = false;
        }
        if fds[1].revents != 0 {
            // Drain what the command wrote before it ended.
            while master_open && copy(m, 1, &mut buf) {}
            break;
        }
    }
    Exit::from_wait_status(reap(child.pid))
}

fn poll_in(fd: RawFd) -> libc::pollfd {
    libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    }
}

/// In the child, inside the container: stdio, the user, then the
/// workload's own confinement and exec.
fn child_main(
    spec: &Spec,
    user: Option<&str>,
    stdin: Option<RawFd>,
    slave: Option<&OwnedFd>,
) -> Result<Infallible, SetupError> {
    if let Some(fd) = stdin {
        sys::dup2(fd, 0).map_err(|e| SetupError::io("cannot set up stdio", None, &e))?;
    }
    close_inherited()?;
    let mut spec = spec.clone();
    if let Some(u) = user {
        // The container's own /etc/passwd: we are in its mount namespace.
        let files = RootFiles::new(vec![PathBuf::from("/")]);
        let resolved = passwd::resolve(u, &files, spec.idmap.default_uid, spec.idmap.default_gid)
            .map_err(|e| SetupError::msg("cannot resolve user", e.to_string()))?;
        if !spec.idmap.maps_uid(resolved.user.uid) || !spec.idmap.maps_gid(resolved.user.gid) {
            return Err(SetupError::msg(
                "cannot switch to user",
                format!(
                    "{}:{} is not mapped in the container's user namespace",
                    resolved.user.uid, resolved.user.gid
                ),
            ));
        }
        spec.process.user = resolved.user;
    }
    child::exec_workload(&spec, slave)
}

/// Nothing hutch holds (the pidfd, the container's lock) may reach the
/// command.
fn close_inherited() -> Result<(), SetupError> {
    sys::cloexec_from_3()
        .map_err(|e| SetupError::io("cannot mark descriptors close-on-exec", None, &e))
}

/// The exit code of a failed exec's own error.
pub fn error_code(e: &ContainerError) -> i32 {
    match e {
        ContainerError::Sandbox(s) => s.exit_code(),
        _ => EXIT_HUTCH,
    }
}
