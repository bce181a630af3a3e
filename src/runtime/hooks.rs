//! OCI hooks that run in the runtime's namespaces: `createRuntime` and
//! `prestart` (once the container's process is set up and waiting at its
//! start gate, before `create` returns), `poststart` (after `start`) and
//! `poststop` (in `delete`, after the process is gone). Each gets the
//! container's state JSON on stdin. `createContainer` and `startContainer`,
//! which run inside the container, are refused by `bundle`.

use std::io::Write;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{RuntimeError, R};
use crate::container::process::PidFd;

/// A hook with no timeout of its own may run this long.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(120);

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Hook {
    pub path: PathBuf,
    #[serde(default)]
    pub args: Vec<String>,
    #[serde(default)]
    pub env: Vec<String>,
    /// Seconds.
    #[serde(default)]
    pub timeout: Option<u64>,
}

/// The hooks `start` and `delete` run later, kept in the state record.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Later {
    pub poststart: Vec<Hook>,
    pub poststop: Vec<Hook>,
}

/// Run `hooks` in order with `state` on stdin; the first failure stops
/// them and is the error, named by `field` and index.
pub fn run(field: &str, hooks: &[Hook], state: &serde_json::Value) -> R<()> {
    for (i, h) in hooks.iter().enumerate() {
        run_one(h, state)
            .map_err(|reason| RuntimeError::config(format!("{field}[{i}]"), reason))?;
    }
    Ok(())
}

fn run_one(h: &Hook, state: &serde_json::Value) -> Result<(), String> {
    let mut cmd = Command::new(&h.path);
    if let Some((arg0, rest)) = h.args.split_first() {
        cmd.arg0(arg0).args(rest);
    }
    cmd.env_clear()
        .envs(h.env.iter().filter_map(|kv| kv.split_once('=')))
        .stdin(Stdio::piped())
        .stdout(Stdio::null());
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("cannot run {}: {e}", h.path.display()))?;
    let pidfd = PidFd::open(child.id() as i32).map_err(|e| e.to_string())?;
    if let Some(mut stdin) = child.stdin.take() {
        // A hook that does not read its stdin is not an error.
        let _ = stdin.write_all(state.to_string().as_bytes());
    }
    let timeout = h.timeout.map_or(DEFAULT_TIMEOUT, Duration::from_secs);
    if !pidfd.wait_exit(Some(timeout)) {
        let _ = child.kill();
        let _ = child.wait();
        return Err(format!(
            "{} did not finish within {}s",
            h.path.display(),
            timeout.as_secs()
        ));
    }
    let status = child.wait().map_err(|e| e.to_string())?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("{} failed: {status}", h.path.display()))
    }
}
