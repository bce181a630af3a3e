//! Errors of the sandbox engine.
//!
//! A failure inside the cloned child cannot return through the stack: the
//! child writes a [`SetupError`] to a close-on-exec pipe and exits, and the
//! parent turns it into an error with the same words and exit code.

use serde::{Deserialize, Serialize};

use crate::policy::PolicyError;
use crate::sandbox::idmap::IdmapError;

/// Docker's exit codes for failures that are not the workload's own.
pub const EXIT_HUTCH: i32 = 125;
pub const EXIT_CANNOT_INVOKE: i32 = 126;
pub const EXIT_NOT_FOUND: i32 = 127;

/// One failed step of the child's setup, as it crosses the pipe.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, thiserror::Error)]
#[error("{what}{}: {}{}", on.as_ref().map(|o| format!(" {o}")).unwrap_or_default(), reason, hint.as_ref().map(|h| format!(" (hint: {h})")).unwrap_or_default())]
pub struct SetupError {
    /// What was being done, e.g. "cannot mount overlay".
    pub what: String,
    /// On what, e.g. "on /".
    pub on: Option<String>,
    pub reason: String,
    pub errno: i32,
    pub hint: Option<String>,
    /// 125, 126 or 127.
    pub exit_code: i32,
}

impl SetupError {
    pub fn io(what: impl Into<String>, on: Option<String>, err: &std::io::Error) -> SetupError {
        SetupError {
            what: what.into(),
            on,
            reason: err.to_string(),
            errno: err.raw_os_error().unwrap_or(0),
            hint: None,
            exit_code: EXIT_HUTCH,
        }
    }

    pub fn msg(what: impl Into<String>, reason: impl Into<String>) -> SetupError {
        SetupError {
            what: what.into(),
            on: None,
            reason: reason.into(),
            errno: 0,
            hint: None,
            exit_code: EXIT_HUTCH,
        }
    }

    pub fn hint(mut self, hint: impl Into<String>) -> SetupError {
        self.hint = Some(hint.into());
        self
    }

    pub fn code(mut self, code: i32) -> SetupError {
        self.exit_code = code;
        self
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    #[error("cannot create the sandbox's namespaces: {source} (hint: {hint})")]
    Namespaces {
        source: std::io::Error,
        hint: &'static str,
    },
    #[error(transparent)]
    Idmap(#[from] IdmapError),
    #[error(transparent)]
    Setup(#[from] SetupError),
    #[error(transparent)]
    Policy(#[from] PolicyError),
    #[error("{what} {path}: {source}")]
    Io {
        what: &'static str,
        path: String,
        source: std::io::Error,
    },
    #[error(transparent)]
    Limits(#[from] crate::sandbox::limits::LimitError),
    #[error(transparent)]
    Network(#[from] crate::net::NetError),
    #[error("invalid sandbox spec: {0}")]
    Invalid(String),
    /// The caller's own step before the workload starts failed (see
    /// `spawn::start_with`); its message says what and why.
    #[error("{0}")]
    Caller(String),
}

impl SandboxError {
    pub fn io(what: &'static str, path: impl std::fmt::Display, source: std::io::Error) -> Self {
        SandboxError::Io {
            what,
            path: path.to_string(),
            source,
        }
    }

    pub fn exit_code(&self) -> i32 {
        match self {
            SandboxError::Setup(e) => e.exit_code,
            _ => EXIT_HUTCH,
        }
    }
}
