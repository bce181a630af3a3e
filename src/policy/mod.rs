//! Security policies: seccomp and Landlock profiles loaded from files.
//!
//! This is the engine's contract with the policy layer: a resolved [`Policy`]
//! is part of the Spec, built and validated before clone, and the child calls
//! [`Policy::apply_landlock`] just before dropping capabilities and
//! [`Policy::apply_seccomp`] as the very last step before execve.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    #[error("cannot apply the {what} policy: {reason}")]
    Apply { what: &'static str, reason: String },
}

/// A policy resolved for one run. `unconfined` applies nothing.
/// Serialisable: a container's record keeps its resolved policy, and the
/// supervisor and `exec` apply it again from there.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct Policy {
    pub name: String,
}

impl Policy {
    pub fn unconfined() -> Policy {
        Policy {
            name: "unconfined".into(),
        }
    }

    /// Restrict the calling process with the profile's Landlock ruleset.
    /// `writable` lists the paths inside the sandbox that are meant to be
    /// written to (volumes, tmpfs mounts, and `/` unless the root is read-only).
    pub fn apply_landlock(&self, _writable: &[PathBuf]) -> Result<(), PolicyError> {
        Ok(())
    }

    /// Install the seccomp filter on the calling thread. Called last before execve.
    pub fn apply_seccomp(&self) -> Result<(), PolicyError> {
        Ok(())
    }
}
