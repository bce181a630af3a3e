//! `kill ID [SIGNAL] [--all]`: signal the container's process through a
//! pidfd checked against its recorded start time; with `--all`, every
//! process in the container's pid namespace.

use super::state::{Container, Root, Status};
use super::{RuntimeError, R};
use crate::container::process::PidFd;
use crate::container::record::parse_signal;

#[derive(Debug, clap::Args)]
pub struct Args {
    pub id: String,
    /// A name (TERM, SIGKILL) or number.
    #[arg(default_value = "SIGTERM")]
    pub signal: String,
    /// Every process of the container, not only its first.
    #[arg(long, short = 'a')]
    pub all: bool,
}

pub fn kill(root: &Root, args: &Args) -> R<i32> {
    let sig = parse_signal(&args.signal).ok_or_else(|| {
        RuntimeError::Refused(format!(
            "unknown signal {:?} (hint: a name such as TERM or a number)",
            args.signal
        ))
    })?;
    let c = Container::open(root, &args.id)?;
    let record = c.load()?;
    let pidfd = record.pidfd().ok_or(RuntimeError::WrongState {
        id: args.id.clone(),
        status: Status::Stopped.name(),
        need: "nothing to signal",
    })?;
    if args.all {
        for pid in in_pid_namespace_of(pidfd.pid()) {
            if let Ok(p) = PidFd::open(pid) {
                let _ = p.signal(sig);
            }
        }
    }
    pidfd
        .signal(sig)
        .map_err(|e| RuntimeError::io("cannot signal", format!("container {}", args.id), e))?;
    Ok(0)
}

/// The pids (in our view) of every process in the pid namespace of `pid`,
/// when that is a namespace other than ours.
pub fn in_pid_namespace_of(pid: i32) -> Vec<i32> {
    let ns = |p: &str| std::fs::read_link(format!("/proc/{p}/ns/pid")).ok();
    let target = ns(&pid.to_string());
    if target.is_none() || target == ns("self") {
        return vec![pid];
    }
    let mut out: Vec<i32> = std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|p| ns(&p.to_string()) == target)
        .collect();
    out.sort_unstable();
    out
}
