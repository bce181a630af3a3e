//! `hutch exec [-i] [-t] [-e] [-w] [-u] CONTAINER COMMAND...`: run a
//! command in a running container, confined as its workload is, and
//! return the command's exit status.

use std::path::PathBuf;

use clap::{ArgAction, Args};

use crate::cli::failed;
use crate::container::exec::{self, Request};
use crate::container::{ContainerError, Status, Store};

#[derive(Debug, Args)]
#[command(disable_help_flag = true)]
pub struct ExecArgs {
    /// Print help
    #[arg(long, action = ArgAction::Help)]
    help: Option<bool>,

    /// Keep stdin open and forward it
    #[arg(short = 'i', long = "interactive")]
    pub interactive: bool,

    /// Allocate a pseudo-terminal
    #[arg(short = 't', long = "tty")]
    pub tty: bool,

    /// Set an environment variable (NAME=VALUE, or NAME to copy it from here)
    #[arg(short = 'e', long = "env", value_name = "NAME[=VALUE]")]
    pub env: Vec<String>,

    /// Working directory inside the container
    #[arg(short = 'w', long = "workdir", value_name = "DIR")]
    pub workdir: Option<String>,

    /// Run as this user: NAME|UID[:GROUP|GID]
    #[arg(short = 'u', long = "user", value_name = "USER")]
    pub user: Option<String>,

    /// The container, then the command and its arguments
    #[arg(trailing_var_arg = true, required = true, num_args = 2.., value_name = "CONTAINER COMMAND [ARG...]")]
    pub args: Vec<String>,
}

pub fn exec(args: ExecArgs) -> anyhow::Result<i32> {
    let store = Store::open()?;
    let name = &args.args[0];
    let mut env = Vec::new();
    for kv in &args.env {
        match kv.split_once('=') {
            Some((k, _)) if !k.is_empty() => env.push(kv.clone()),
            None if !kv.is_empty() => {
                if let Ok(v) = std::env::var(kv) {
                    env.push(format!("{kv}={v}"));
                }
            }
            _ => {
                return Err(failed(format!(
                    "invalid environment variable {kv:?} (hint: -e NAME=VALUE)"
                )))
            }
        }
    }
    let workdir = match &args.workdir {
        Some(w) if !w.starts_with('/') => {
            return Err(failed(format!("workdir {w:?} must be an absolute path")))
        }
        w => w.as_ref().map(PathBuf::from),
    };
    let req = Request {
        args: args.args[1..].to_vec(),
        env,
        workdir,
        user: args.user.clone(),
        tty: args.tty,
        interactive: args.interactive,
    };
    // Take what we need under the lock, then let go: the command may run
    // for long and must not block stop or rm.
    let (spec, init) = {
        let c = store.open_locked(name).map_err(failed)?;
        match (c.state.status, c.state.init) {
            (Status::Running, Some(init)) => (c.config.spec.clone(), init),
            (Status::Running, None) => {
                return Err(failed(format!(
                    "container {} has not started its workload yet (hint: try again in a moment)",
                    c.config.name
                )))
            }
            _ => return Err(failed(ContainerError::NotRunning(c.config.name.clone()))),
        }
    };
    match exec::exec(&spec, init, &req) {
        Ok(exit) => Ok(exit.code()),
        Err(e) => {
            let code = exec::error_code(&e);
            Err(crate::cli::Failed {
                code,
                message: e.to_string(),
            }
            .into())
        }
    }
}
