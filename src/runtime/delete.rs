//! `delete [--force] ID`: remove a stopped container's state; a created
//! one (still waiting at its gate) is killed first, a running one only
//! with `--force`.

use std::time::Duration;

use super::log::Logger;
use super::state::{Container, Root, Status};
use super::{RuntimeError, R};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Kill a running container first.
    #[arg(long, short = 'f')]
    pub force: bool,
    pub id: String,
}

pub fn delete(root: &Root, args: &Args, logger: &Logger) -> R<i32> {
    let c = match Container::open(root, &args.id) {
        Ok(c) => c,
        // Deleting what is not there is done, for --force (runc's manner).
        Err(RuntimeError::NotFound(_)) if args.force => return Ok(0),
        Err(e) => return Err(e),
    };
    let record = c.load()?;
    let status = record.status();
    // A state directory without its Spec (a create cut short) has no
    // cgroup to thaw or remove, and is still deleted.
    let cgroup = c.load_spec().ok().and_then(|s| s.limits.cgroup);
    if matches!(status, Status::Running | Status::Paused) && !args.force {
        return Err(RuntimeError::WrongState {
            id: args.id.clone(),
            status: status.name(),
            need: "not deleted (hint: kill it first, or delete --force)",
        });
    }
    if let Some(p) = record.pidfd() {
        // SIGKILL to the first process of a pid namespace ends all of it.
        for pid in super::kill::in_pid_namespace_of(p.pid()) {
            if let Ok(q) = crate::container::process::PidFd::open(pid) {
                let _ = q.signal(libc::SIGKILL);
            }
        }
        let _ = p.signal(libc::SIGKILL);
        if status == Status::Paused {
            // Frozen processes die of their SIGKILL only once thawed.
            if let Some(cg) = &cgroup {
                let _ = cg.freeze(false);
            }
        }
        if !p.wait_exit(Some(Duration::from_secs(10))) {
            return Err(RuntimeError::Refused(format!(
                "container {} did not die within 10s of SIGKILL",
                args.id
            )));
        }
    }
    if let Err(e) = super::hooks::run(
        "hooks.poststop",
        &record.hooks.poststop,
        &record.oci_state(),
    ) {
        logger.warn(&e.to_string());
    }
    if let Some(cg) = &cgroup {
        cg.remove();
    }
    std::fs::remove_dir_all(&c.dir)
        .map_err(|e| RuntimeError::io("cannot remove", c.dir.display(), e))?;
    logger.debug(&format!("deleted {}", args.id));
    Ok(0)
}
