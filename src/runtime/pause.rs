//! `pause ID` and `resume ID`: freeze and thaw every process of a running
//! container through its cgroup's freezer (cgroup v1's `freezer`
//! controller in the delegated subtree, cgroup v2's `cgroup.freeze`).
//! Refused where the container has no cgroup with a freezer.

use super::log::Logger;
use super::state::{Container, Root, Status};
use super::{RuntimeError, R};

/// Freeze (`pause`) or thaw (`resume`) container `id`.
pub fn set_paused(root: &Root, id: &str, paused: bool, logger: &Logger) -> R<i32> {
    let (command, from, to) = if paused {
        ("pause", Status::Running, Status::Paused)
    } else {
        ("resume", Status::Paused, Status::Running)
    };
    let c = Container::open(root, id)?;
    let mut record = c.load()?;
    let status = record.status();
    if status != from {
        return Err(RuntimeError::WrongState {
            id: id.to_string(),
            status: status.name(),
            need: if paused {
                "not running (hint: pause freezes a running container)"
            } else {
                "not paused (hint: resume thaws a paused container)"
            },
        });
    }
    let spec = c.load_spec()?;
    let cgroup = spec
        .limits
        .cgroup
        .as_ref()
        .filter(|cg| cg.has("freezer"))
        .ok_or_else(|| {
            RuntimeError::Refused(format!(
                "{command} {id}: the container has no cgroup with a freezer (hint: pause needs a cgroup subtree delegated to this user with the freezer controller on cgroup v1, or any on cgroup v2; see README: Limits)"
            ))
        })?;
    cgroup
        .freeze(paused)
        .map_err(|e| RuntimeError::Refused(format!("{command} {id}: {e}")))?;
    record.status = to;
    c.save(&record)?;
    logger.debug(&format!("{command}d {id}"));
    Ok(0)
}
