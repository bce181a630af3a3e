//! `hutch exec`: run another process in a running container. hutch joins
//! the sandbox's user, mount, pid, ipc, uts, net and cgroup namespaces at
//! once through a pidfd on its init (`setns(pidfd, ...)`, so a reused pid
//! can never be joined), forks (a pid namespace takes effect for children
//! only), and the child confines itself with the very steps the workload
//! went through (`child::exec_workload`: the same Landlock and seccomp
//! policy, no capabilities, no_new_privs) before exec.

use std::convert::Infallible;
use std::os::fd::AsRawFd;
use std::path::PathBuf;

use super::process::ProcId;
use super::ContainerError;
use crate::sandbox::error::{SandboxError, SetupError, EXIT_HUTCH};
use crate::sandbox::passwd::{self, RootFiles};
use crate::sandbox::spawn::{Exit, Running, Stdio};
use crate::sandbox::{attach, caps, child, sys, Spec};

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

const NAMESPACES: i32 = libc::CLONE_NEWUSER
    | libc::CLONE_NEWNS
    | libc::CLONE_NEWPID
    | libc::CLONE_NEWIPC
    | libc::CLONE_NEWUTS
    | libc::CLONE_NEWNET
    | libc::CLONE_NEWCGROUP;

/// Run `req` in the container whose init is `init` and whose resolved Spec
/// is `spec`. The caller must be single-threaded and must not hold the
/// container's lock (the exec may run for long).
pub fn exec(spec: &Spec, init: ProcId, req: &Request) -> Result<Exit, ContainerError> {
    let pidfd = init
        .open()
        .ok_or_else(|| ContainerError::NotRunning(spec.id[..12].to_string()))?;
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

    // SAFETY: setns with a pidfd we own and a set of namespace flags; the
    // process is single-threaded, as joining a user namespace requires.
    if unsafe { libc::setns(pidfd.raw(), NAMESPACES) } != 0 {
        return Err(ContainerError::io(
            "cannot join the namespaces of",
            format!("container {}", &spec.id[..12]),
            std::io::Error::last_os_error(),
        ));
    }
    let user = req.user.clone();
    let process = spec.process.clone();
    let exit = attach::run_with(&process, |stdio| start(&spec, user.as_deref(), stdio))?;
    Ok(exit)
}

/// Fork the process that becomes the command, and learn whether it exec'd.
fn start(spec: &Spec, user: Option<&str>, stdio: Stdio) -> Result<Running, SandboxError> {
    let (err_r, err_w) = sys::pipe().map_err(|e| SandboxError::io("cannot create", "error pipe", e))?;
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
        let err = match child_main(spec, user, stdio) {
            Ok(never) => match never {},
            Err(e) => e,
        };
        child::report_and_exit(err_w.as_raw_fd(), &err);
    }
    drop(err_w);
    let pidfd = super::process::PidFd::open(pid)
        .map_err(|e| SandboxError::io("cannot open a pidfd on", "the exec process", e))?;
    // This process stays in the container's namespaces only to relay; it
    // keeps no capability there.
    let _ = caps::clear_all();
    let report = sys::read_to_end(err_r.as_raw_fd(), 64 * 1024)
        .map_err(|e| SandboxError::io("cannot read", "the error pipe", e))?;
    let running = Running::adopt(pid, pidfd.into_owned())?;
    if !report.is_empty() {
        running.wait();
        let err: SetupError = serde_json::from_slice(&report).unwrap_or_else(|_| {
            SetupError::msg("exec failed", String::from_utf8_lossy(&report).into_owned())
        });
        return Err(err.into());
    }
    Ok(running)
}

/// In the child, inside the container: stdio, the user, then the
/// workload's own confinement and exec.
fn child_main(spec: &Spec, user: Option<&str>, stdio: Stdio) -> Result<Infallible, SetupError> {
    for (from, to) in [(stdio.stdin, 0), (stdio.stdout, 1), (stdio.stderr, 2)] {
        if from != to {
            sys::dup2(from, to).map_err(|e| SetupError::io("cannot set up stdio", None, &e))?;
        }
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
    child::exec_workload(&spec)
}

/// Nothing hutch holds (the pidfd, the container's lock) may reach the
/// command.
fn close_inherited() -> Result<(), SetupError> {
    // SAFETY: close_range on integers only marks descriptors close-on-exec.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_close_range,
            3u32,
            u32::MAX,
            libc::CLOSE_RANGE_CLOEXEC,
        )
    };
    sys::check(ret)
        .map(drop)
        .map_err(|e| SetupError::io("cannot mark descriptors close-on-exec", None, &e))
}

/// The exit code of a failed exec's own error.
pub fn error_code(e: &ContainerError) -> i32 {
    match e {
        ContainerError::Sandbox(s) => s.exit_code(),
        _ => EXIT_HUTCH,
    }
}
