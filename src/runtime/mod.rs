//! `hutch-runtime`: the OCI runtime command line (as runc and crun have it)
//! over hutch's engine, so Podman, containerd, CRI-O and Kubernetes can run
//! hutch sandboxes.
//!
//! One file per command; `bundle` turns a bundle's config.json into the
//! engine's [`Spec`](crate::sandbox::Spec) (refusing, by its JSON path,
//! anything hutch cannot honour), `state` keeps each container's state
//! under `--root`, `log` writes errors where the caller reads them.

pub mod bundle;
pub mod create;
pub mod delete;
pub mod exec;
pub mod features;
pub mod hooks;
pub mod kill;
pub mod list;
pub mod log;
pub mod pause;
pub mod ps;
pub mod resources;
pub mod start;
pub mod state;

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

use crate::container::ContainerError;
use crate::sandbox::SandboxError;

/// The annotation that names a hutch policy profile for a container.
pub const POLICY_ANNOTATION: &str = "run.hutch.policy";

#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error("{path}: {reason}")]
    Config { path: String, reason: String },
    #[error("cannot read {file}: {reason}")]
    Read { file: PathBuf, reason: String },
    #[error("container {0} does not exist")]
    NotFound(String),
    #[error("container {0} already exists")]
    Exists(String),
    #[error(
        "invalid container id {0:?} (hint: letters, digits, '_', '-', '.' and '+', at most 1024)"
    )]
    BadId(String),
    #[error("container {id} is {status}, {need}")]
    WrongState {
        id: String,
        status: &'static str,
        need: &'static str,
    },
    #[error("{what} {on}: {source}")]
    Io {
        what: &'static str,
        on: String,
        source: std::io::Error,
    },
    #[error("{0}")]
    Refused(String),
    #[error(transparent)]
    Sandbox(#[from] SandboxError),
    #[error(transparent)]
    Container(#[from] ContainerError),
    #[error(transparent)]
    Policy(#[from] crate::policy::PolicyError),
}

impl RuntimeError {
    pub fn io(what: &'static str, on: impl std::fmt::Display, source: std::io::Error) -> Self {
        RuntimeError::Io {
            what,
            on: on.to_string(),
            source,
        }
    }

    pub fn config(path: impl Into<String>, reason: impl Into<String>) -> Self {
        RuntimeError::Config {
            path: path.into(),
            reason: reason.into(),
        }
    }

    /// Docker's codes: the workload's own 126 and 127 pass through, every
    /// other failure of the runtime is 125.
    pub fn exit_code(&self) -> i32 {
        match self {
            RuntimeError::Sandbox(e) => e.exit_code(),
            _ => crate::sandbox::error::EXIT_HUTCH,
        }
    }
}

pub type R<T> = Result<T, RuntimeError>;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// Global flags, as runc's and crun's.
#[derive(Debug, Parser)]
#[command(
    name = "hutch-runtime",
    version,
    about = "hutch's OCI runtime: run OCI bundles in hutch sandboxes (for Podman, containerd, CRI-O)"
)]
pub struct Cli {
    /// Where container state lives (default $XDG_RUNTIME_DIR/hutch-runtime).
    #[arg(long, global = true, value_name = "DIR")]
    pub root: Option<PathBuf>,
    /// Append the runtime's messages to FILE (the caller reads errors there).
    #[arg(long, global = true, value_name = "FILE")]
    pub log: Option<PathBuf>,
    #[arg(long, global = true, value_enum, default_value = "text")]
    pub log_format: LogFormat,
    /// Also log what the runtime does, not only errors.
    #[arg(long, global = true)]
    pub debug: bool,
    /// Accepted for compatibility; the level is error unless --debug.
    #[arg(long, global = true, hide = true)]
    pub log_level: Option<String>,
    /// Place containers in cgroups through systemd (refused where the host
    /// has no systemd delegation).
    #[arg(long, global = true)]
    pub systemd_cgroup: bool,
    /// Accepted as runc does; hutch-runtime is always rootless.
    #[arg(long, global = true, hide = true)]
    pub rootless: Option<String>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create a container from a bundle, stopped before its process runs.
    Create(create::Args),
    /// Let a created container's process run.
    Start(IdArg),
    /// Print a container's state (the OCI runtime spec's JSON).
    State(IdArg),
    /// Send a signal to a container's process (default SIGTERM).
    Kill(kill::Args),
    /// Remove a stopped (or, with --force, any) container.
    Delete(delete::Args),
    /// Run another process in a running container.
    Exec(exec::Args),
    /// List the processes of a container.
    Ps(ps::Args),
    /// List containers.
    List(list::Args),
    /// Print what this runtime supports (the OCI features JSON).
    Features,
    /// Freeze every process of a container (needs a delegated cgroup with a freezer).
    Pause(IdArg),
    /// Thaw a paused container.
    Resume(IdArg),
}

#[derive(Debug, clap::Args)]
pub struct IdArg {
    pub id: String,
}

/// Run the command line; returns the exit code.
pub fn main() -> i32 {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            if !e.use_stderr() {
                let _ = e.print();
                return 0;
            }
            let _ = e.print();
            return crate::sandbox::error::EXIT_HUTCH;
        }
    };
    let logger = log::Logger::new(cli.log.clone(), cli.log_format, cli.debug);
    logger.debug(&format!("{:?}", std::env::args().collect::<Vec<_>>()));
    match dispatch(&cli, &logger) {
        Ok(code) => code,
        Err(e) => {
            logger.error(&e.to_string());
            e.exit_code()
        }
    }
}

fn dispatch(cli: &Cli, logger: &log::Logger) -> R<i32> {
    if cli.systemd_cgroup {
        let why = if systemd_delegation() {
            "hutch-runtime does not place containers in systemd scopes yet"
        } else {
            "this host has no systemd to delegate cgroups through"
        };
        return Err(RuntimeError::Refused(format!(
            "--systemd-cgroup: {why} (hint: use the cgroupfs cgroup manager, or run Podman with --cgroups=disabled)"
        )));
    }
    // Before the runtime opens anything of its own, which could take the
    // number of a descriptor the caller meant to pass and did not.
    let preserve = match &cli.command {
        Command::Create(a) => a.preserve_fds,
        Command::Exec(a) => a.preserve_fds,
        _ => 0,
    };
    check_passed_fds(preserve)?;
    let root = state::Root::open(cli.root.clone())?;
    match &cli.command {
        Command::Create(a) => create::create(&root, a, logger),
        Command::Start(a) => start::start(&root, &a.id, logger),
        Command::State(a) => state::print(&root, &a.id),
        Command::Kill(a) => kill::kill(&root, a),
        Command::Delete(a) => delete::delete(&root, a, logger),
        Command::Exec(a) => exec::exec(&root, a, logger),
        Command::Ps(a) => ps::ps(&root, a),
        Command::List(a) => list::list(&root, a),
        Command::Features => features::print(),
        Command::Pause(a) => pause::set_paused(&root, &a.id, true, logger),
        Command::Resume(a) => pause::set_paused(&root, &a.id, false, logger),
    }
}

/// Print `text` and a newline to stdout; a reader that went away (a closed
/// pipe) is not the runtime's failure.
pub fn print_out(text: &str) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let _ = out
        .write_all(text.as_bytes())
        .and_then(|()| out.write_all(b"\n"));
}

/// `--preserve-fds N`: descriptors 3 to 3+N-1 must be open.
fn check_passed_fds(count: u32) -> R<()> {
    if count > 1024 {
        return Err(RuntimeError::Refused(format!(
            "--preserve-fds {count}: at most 1024"
        )));
    }
    for fd in 3..3 + count as i32 {
        // SAFETY: F_GETFD on an integer descriptor reads no memory.
        if unsafe { libc::fcntl(fd, libc::F_GETFD) } < 0 {
            return Err(RuntimeError::Refused(format!(
                "--preserve-fds {count}: descriptor {fd} is not open (hint: pass descriptors 3 to {} open)",
                2 + count
            )));
        }
    }
    Ok(())
}

/// Whether systemd runs this host (and could delegate a user's cgroups).
fn systemd_delegation() -> bool {
    std::path::Path::new("/run/systemd/system").is_dir()
}
