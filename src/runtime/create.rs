//! `create [--bundle DIR] [--pid-file FILE] [--console-socket SOCK] ID`:
//! build the container and leave its process set up but stopped before
//! the user's program (the start gate), then exit. The process keeps the
//! caller's stdio (conmon's pipes) and is reparented to the caller's
//! subreaper, which reaps it.

use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};

use super::bundle::{self, Places};
use super::log::Logger;
use super::state::{Container, Record, Root, Status, OCI_VERSION};
use super::{RuntimeError, R};
use crate::container::process::ProcId;
use crate::sandbox::{console, spawn};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The bundle: a directory with config.json (default: the current one).
    #[arg(long, short = 'b', default_value = ".")]
    pub bundle: PathBuf,
    /// Write the container process's pid here.
    #[arg(long, value_name = "FILE")]
    pub pid_file: Option<PathBuf>,
    /// With process.terminal: send the pty's master to this unix socket.
    #[arg(long, value_name = "SOCK")]
    pub console_socket: Option<PathBuf>,
    /// Accepted as runc does; the sandbox always uses pivot_root.
    #[arg(long)]
    pub no_pivot: bool,
    /// Accepted as runc does; no session keyring is made.
    #[arg(long)]
    pub no_new_keyring: bool,
    /// Pass descriptors 3 to 3+N-1 to the container's process, open.
    #[arg(long, default_value_t = 0, value_name = "N")]
    pub preserve_fds: u32,
    pub id: String,
}

pub fn create(root: &Root, args: &Args, logger: &Logger) -> R<i32> {
    let bundle = std::fs::canonicalize(&args.bundle)
        .map_err(|e| RuntimeError::io("cannot open the bundle", args.bundle.display(), e))?;
    let cfg = bundle::read(&bundle)?;
    let terminal = cfg.process.as_ref().is_some_and(|p| p.terminal);
    if terminal && args.console_socket.is_none() {
        return Err(RuntimeError::config(
            "process.terminal",
            "a terminal needs --console-socket to hand its master to",
        ));
    }
    let c = Container::create(root, &args.id)?;
    match build(&c, &cfg, &bundle, args, logger) {
        Ok(()) => Ok(0),
        Err(e) => {
            // Leave nothing behind: the id stays free for another try.
            let _ = std::fs::remove_dir_all(&c.dir);
            Err(e)
        }
    }
}

fn build(
    c: &Container,
    cfg: &bundle::Config,
    bundle: &Path,
    args: &Args,
    logger: &Logger,
) -> R<()> {
    let places = Places {
        bundle: bundle.to_path_buf(),
        state_dir: c.dir.clone(),
    };
    let converted = bundle::to_spec(cfg, &args.id, &places)?;
    for note in &converted.notes {
        logger.warn(note);
    }
    let cgroup = converted.spec.limits.cgroup.clone();
    let result = start(c, converted.spec, cfg, bundle, args, logger);
    if let (Err(_), Some(cg)) = (&result, cgroup) {
        cg.remove();
    }
    result
}

/// Start the container's process, stopped at its gate, and record it.
fn start(
    c: &Container,
    mut spec: crate::sandbox::Spec,
    cfg: &bundle::Config,
    bundle: &Path,
    args: &Args,
    logger: &Logger,
) -> R<()> {
    std::fs::create_dir(&spec.scratch)
        .map_err(|e| RuntimeError::io("cannot create", spec.scratch.display(), e))?;
    let gate = c.gate();
    make_fifo(&gate)?;
    spec.advanced.start_gate = Some(gate);
    spec.advanced.preserve_fds = args.preserve_fds;
    c.save_spec(&spec)?;

    let stdio = spawn::Stdio {
        stdin: 0,
        stdout: 1,
        stderr: 2,
    };
    let running = spawn::start(&spec, stdio)?;
    let pid = running.pid;
    let fail = |e: RuntimeError| {
        let _ = running.signal(libc::SIGKILL);
        e
    };
    if let (Some(master), Some(sock)) = (&running.console, &args.console_socket) {
        send_console(sock, master.as_raw_fd()).map_err(fail)?;
    }
    let process = ProcId::of(pid).ok_or_else(|| {
        fail(RuntimeError::Refused(
            "the container's process died during create".into(),
        ))
    })?;
    let namespaces = super::state::Namespaces::of(pid)
        .map_err(|e| fail(RuntimeError::io("cannot read the namespaces of", pid, e)))?;
    let hooks = cfg.hooks.as_ref();
    let record = Record {
        hooks: super::hooks::Later {
            poststart: hooks.map(|h| h.poststart.clone()).unwrap_or_default(),
            poststop: hooks.map(|h| h.poststop.clone()).unwrap_or_default(),
        },
        namespaces,
        oci_version: OCI_VERSION.into(),
        id: args.id.clone(),
        status: Status::Created,
        process,
        bundle: bundle.to_path_buf(),
        annotations: cfg.annotations.clone(),
        created: crate::container::time::rfc3339(crate::container::time::now()),
        owner: crate::paths::uid(),
    };
    c.save(&record).map_err(fail)?;
    if let Some(h) = hooks {
        // The container exists and waits at its gate: the hooks that set
        // up around it (networking, say) run now, and a failure undoes it.
        let state = record.oci_state();
        super::hooks::run("hooks.createRuntime", &h.create_runtime, &state).map_err(fail)?;
        super::hooks::run("hooks.prestart", &h.prestart, &state).map_err(fail)?;
    }
    if let Some(p) = &args.pid_file {
        crate::durable::write_atomic(p, pid.to_string().as_bytes(), 0o644)
            .map_err(|e| fail(RuntimeError::io("cannot write", p.display(), e)))?;
    }
    logger.debug(&format!("created {} with pid {pid}", args.id));
    Ok(())
}

fn make_fifo(path: &Path) -> R<()> {
    let c = crate::sandbox::sys::cstr(path)
        .map_err(|e| RuntimeError::io("cannot create", path.display(), e))?;
    // SAFETY: `c` is a valid C string.
    let ret = unsafe { libc::mkfifo(c.as_ptr(), 0o600) };
    if ret < 0 {
        return Err(RuntimeError::io(
            "cannot create",
            path.display(),
            std::io::Error::last_os_error(),
        ));
    }
    Ok(())
}

/// Hand the pty master to the caller's console socket, as runc does.
pub fn send_console(sock: &Path, master: i32) -> R<()> {
    let (stream, sock) = connect_console(sock)?;
    console::send_fd(stream.as_raw_fd(), master)
        .map_err(|e| RuntimeError::io("cannot send the terminal to", sock.display(), e))
}

/// Connect to the caller's console socket (before any namespace hides it).
pub fn connect_console(sock: &Path) -> R<(UnixStream, PathBuf)> {
    let stream = UnixStream::connect(sock)
        .map_err(|e| RuntimeError::io("cannot connect to the console socket", sock.display(), e))?;
    Ok((stream, sock.to_path_buf()))
}
