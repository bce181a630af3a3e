//! The lifecycle operations on a recorded container, each under its lock:
//! stop, kill, remove, wait. Signals go through pidfds opened on processes
//! whose start time was checked, never to a bare pid.

use std::time::Duration;

use super::process::PidFd;
use super::state::Status;
use super::store::Store;
use super::ContainerError;

type R<T> = Result<T, ContainerError>;

/// The live processes of a running container, taken under its lock.
struct Live {
    init: PidFd,
    supervisor: Option<PidFd>,
    /// The workload (init's child), if it is still there.
    workload: Option<PidFd>,
}

fn live(store: &Store, key: &str) -> R<Option<(Live, String, i32, u64)>> {
    let c = store.open_locked(key)?;
    if c.state.status != Status::Running {
        return Ok(None);
    }
    let live = match (c.state.init, c.state.supervisor.and_then(|p| p.open())) {
        (Some(init_id), supervisor) => {
            let Some(init) = init_id.open() else {
                return Ok(None);
            };
            Live {
                init,
                supervisor,
                workload: init_id.first_child(),
            }
        }
        // Run in the foreground: that hutch forwards signals to the
        // workload, and its death (SIGKILL) ends the sandbox.
        (None, Some(attached)) => Live {
            init: attached,
            supervisor: None,
            workload: None,
        },
        (None, None) => return Ok(None),
    };
    Ok(Some((
        live,
        c.config.name.clone(),
        c.config.stop_signal,
        c.config.stop_timeout,
    )))
}

impl Live {
    /// Send `sig` to the workload (SIGKILL ends the whole sandbox through
    /// its init). Signals go to the workload itself, not to init, so that
    /// signals init does not forward still arrive.
    fn signal(&self, sig: i32) -> std::io::Result<()> {
        match (&self.workload, sig) {
            (Some(w), s) if s != libc::SIGKILL => w.signal(s),
            _ => self.init.signal(sig),
        }
    }

    /// Wait until the supervisor has recorded the exit (or, without one,
    /// until init is gone).
    fn wait_recorded(&self) {
        match &self.supervisor {
            Some(s) => s.wait_exit(Some(Duration::from_secs(30))),
            None => self.init.wait_exit(Some(Duration::from_secs(30))),
        };
    }
}

/// `stop`: the container's stop signal, then SIGKILL after `timeout`.
/// Stopping a container that is not running succeeds, as in Docker.
pub fn stop(store: &Store, key: &str, timeout: Option<u64>) -> R<()> {
    // The lock is not held while waiting: the supervisor needs it to record
    // the exit.
    let Some((live, _, stop_signal, default_timeout)) = live(store, key)? else {
        return Ok(());
    };
    let timeout = Duration::from_secs(timeout.unwrap_or(default_timeout));
    let sent = live.signal(stop_signal);
    if sent.is_err() || !live.init.wait_exit(Some(timeout)) {
        live.init
            .signal(libc::SIGKILL)
            .map_err(|e| ContainerError::io("cannot kill", key, e))?;
    }
    live.wait_recorded();
    Ok(())
}

/// `kill -s SIGNAL`.
pub fn kill(store: &Store, key: &str, sig: i32) -> R<()> {
    let Some((live, name, _, _)) = live(store, key)? else {
        let c = store.open_locked(key)?;
        return Err(ContainerError::NotRunning(c.config.name));
    };
    live.signal(sig)
        .map_err(|e| ContainerError::io("cannot signal", name, e))?;
    if sig == libc::SIGKILL {
        live.wait_recorded();
    }
    Ok(())
}

/// `rm [-f]`: refuse a running container unless forced; forced, kill its
/// supervisor (the sandbox dies with it) and wait until nothing is left.
pub fn remove(store: &Store, key: &str, force: bool) -> R<()> {
    let id = store.resolve(key)?;
    let c = match store.open_locked(&id) {
        Err(ContainerError::Corrupt { .. }) if force => return store.remove_damaged(&id),
        // It was there a moment ago: removed meanwhile, as an exited
        // `--rm` container is on sight, or by another `rm`. Gone, as asked.
        Err(ContainerError::NoSuch(_)) => return Ok(()),
        other => other?,
    };
    if c.state.status == Status::Running {
        if !force {
            return Err(ContainerError::Running(c.config.name.clone()));
        }
        let init = c.state.init.and_then(|p| p.open());
        let supervisor = c.state.supervisor.and_then(|p| p.open());
        // Killing the supervisor first keeps it from taking the lock we
        // hold; init has it as parent and a parent-death SIGKILL.
        for p in [&supervisor, &init].into_iter().flatten() {
            p.signal(libc::SIGKILL)
                .map_err(|e| ContainerError::io("cannot kill", key, e))?;
        }
        for p in [&supervisor, &init].into_iter().flatten() {
            if !p.wait_exit(Some(Duration::from_secs(30))) {
                return Err(ContainerError::io(
                    "cannot stop",
                    key,
                    std::io::Error::from(std::io::ErrorKind::TimedOut),
                ));
            }
        }
    }
    store.remove(&c)
}

/// `wait`: block until the container is not running; its exit code
/// (-1 when unknown).
pub fn wait(store: &Store, key: &str) -> R<i32> {
    let id = store.resolve(key)?;
    loop {
        let supervisor = {
            let c = store.open_locked(&id)?;
            if c.state.status != Status::Running {
                return Ok(c.state.exit_code.unwrap_or(-1));
            }
            c.state.supervisor.and_then(|p| p.open())
        };
        if let Some(s) = supervisor {
            s.wait_exit(None);
        }
    }
}
