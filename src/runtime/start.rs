//! `start ID`: release a created container's process through its start
//! gate; it then applies its seccomp filter and execs the user's program.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;

use super::log::Logger;
use super::state::{Container, Root, Status};
use super::{RuntimeError, R};

pub fn start(root: &Root, id: &str, logger: &Logger) -> R<i32> {
    let c = Container::open(root, id)?;
    let mut record = c.load()?;
    let status = record.status();
    if status != Status::Created {
        return Err(RuntimeError::WrongState {
            id: id.to_string(),
            status: status.name(),
            need: "not created (hint: start runs a created container once)",
        });
    }
    let gate = c.gate();
    // Non-blocking: with nobody waiting on the gate (the process died just
    // now) the open fails with ENXIO instead of hanging.
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(&gate)
        .map_err(|e| RuntimeError::io("cannot open the start gate", gate.display(), e))?;
    f.write_all(b"1")
        .map_err(|e| RuntimeError::io("cannot release", format!("container {id}"), e))?;
    drop(f);
    let _ = std::fs::remove_file(&gate);
    record.status = Status::Running;
    c.save(&record)?;
    // A failed poststart hook is reported; the container runs on (as the
    // runtime spec asks).
    if let Err(e) = super::hooks::run(
        "hooks.poststart",
        &record.hooks.poststart,
        &record.oci_state(),
    ) {
        logger.warn(&e.to_string());
    }
    logger.debug(&format!("started {id}"));
    Ok(0)
}
