//! Security flags shared by `run` and `create`: which policy profile applies.

use std::path::PathBuf;

use clap::Args;

use crate::policy::{Choice, Policy, PolicyError, SeccompChoice};

#[derive(Debug, Clone, Args)]
pub struct SecurityArgs {
    /// Security policy profile: default, judge, unconfined, or a .toml file
    #[arg(long = "policy", value_name = "NAME|PATH")]
    pub policy: Option<String>,

    /// Docker's security options: seccomp=FILE.json|unconfined, landlock=unconfined
    #[arg(long = "security-opt", value_name = "OPT")]
    pub security_opt: Vec<String>,
}

impl SecurityArgs {
    /// What the flags chose, before anything is read.
    pub fn choice(&self) -> Result<Choice, PolicyError> {
        let mut choice = Choice {
            profile: self.policy.clone(),
            ..Choice::default()
        };
        for opt in &self.security_opt {
            // Docker accepts both `seccomp=X` and the older `seccomp:X`.
            let (key, value) = opt
                .split_once('=')
                .or_else(|| opt.split_once(':'))
                .unwrap_or((opt.as_str(), ""));
            match (key, value) {
                ("seccomp", "unconfined") => choice.seccomp = SeccompChoice::Unconfined,
                ("seccomp", "") => return Err(PolicyError::SecurityOpt(opt.clone())),
                ("seccomp", file) => {
                    choice.seccomp = SeccompChoice::DockerJson(PathBuf::from(file))
                }
                ("landlock", "unconfined") => choice.landlock_unconfined = true,
                // hutch always sets no_new_privs.
                ("no-new-privileges", "" | "true") => {}
                _ => return Err(PolicyError::SecurityOpt(opt.clone())),
            }
        }
        Ok(choice)
    }

    /// Load, validate and compile the chosen policy (or find it resolved
    /// in the cache), before any clone, and say on stderr what it does not
    /// enforce.
    pub fn resolve(&self) -> Result<Policy, PolicyError> {
        let policy = Policy::resolve_cached(&self.choice()?)?;
        for w in &policy.warnings {
            eprintln!("hutch: warning: {w}");
        }
        Ok(policy)
    }
}
