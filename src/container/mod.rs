//! Containers as records: what a container is (`record`), its state and
//! guarded transitions (`state`), where both live on disk and how they are
//! locked and written (`store`), the supervisor that holds a running
//! container (`supervisor`), its json-file log (`log`), removal of files
//! owned by subordinate ids (`remove`), joining a running container
//! (`exec`) and attaching to a detached one's stdio (`attach`).

pub mod attach;
pub mod exec;
pub mod log;
pub mod ops;
pub mod process;
pub mod record;
pub mod remove;
pub mod state;
pub mod store;
pub mod supervisor;
pub mod time;

pub use record::Config;
pub use state::{State, Status};
pub use store::{Container, Store};

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum ContainerError {
    #[error("No such container: {0}")]
    NoSuch(String),
    #[error("{count} containers match the id prefix {prefix:?} (hint: give more digits of the id, or the name)")]
    Ambiguous { prefix: String, count: usize },
    #[error("the container name {name:?} is already in use by container {id} (hint: remove it with `hutch rm {name}`, or choose another --name)")]
    NameInUse { name: String, id: String },
    #[error("invalid container name {0:?} (hint: names match [a-zA-Z0-9][a-zA-Z0-9_.-]+)")]
    InvalidName(String),
    #[error("container {0} is running: stop it first or use -f")]
    Running(String),
    #[error("container {0} is not running")]
    NotRunning(String),
    #[error("container {0} was made without -i: its stdin is /dev/null (hint: create it with -i to attach stdin, or leave out -i to attach its output only)")]
    NoStdin(String),
    #[error("lost container {name}: {reason}")]
    Lost { name: String, reason: String },
    #[error("{flag} applies to a run in the foreground; a detached or created container has no terminal or caller to give it to (hint: {hint})")]
    ForegroundOnly {
        flag: &'static str,
        hint: &'static str,
    },
    #[error("cannot start container {name}: {reason}")]
    Start {
        name: String,
        reason: String,
        /// 125, or 126/127 when the command itself could not be run.
        code: i32,
    },
    #[error("{what} {path}: {source}")]
    Io {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is damaged: {reason} (hint: remove the container with `hutch rm -f`)")]
    Corrupt { path: PathBuf, reason: String },
    #[error("invalid {what} {value:?}: {hint}")]
    Invalid {
        what: &'static str,
        value: String,
        hint: &'static str,
    },
    #[error(transparent)]
    Paths(#[from] crate::paths::PathsError),
    #[error(transparent)]
    Sandbox(#[from] crate::sandbox::SandboxError),
}

impl ContainerError {
    pub fn io(what: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        ContainerError::Io {
            what,
            path: path.into(),
            source,
        }
    }

    /// The exit code `run` and `create` give this error (Docker's 125,
    /// or the 126/127 of a command that could not be run).
    pub fn exit_code(&self) -> i32 {
        match self {
            ContainerError::Start { code, .. } => *code,
            ContainerError::Sandbox(e) => e.exit_code(),
            _ => crate::sandbox::error::EXIT_HUTCH,
        }
    }
}
