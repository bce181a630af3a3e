//! A container's mutable state and its guarded transitions:
//! created -> running -> exited -> running -> ...

use serde::{Deserialize, Serialize};

use super::process::ProcId;
use super::time::Nanos;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Created,
    Running,
    Exited,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Created => "created",
            Status::Running => "running",
            Status::Exited => "exited",
        }
    }
}

/// What `state.json` holds. Written only under the container's lock,
/// atomically.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct State {
    pub status: Status,
    /// The sandbox's init (pid 1 inside), while running.
    pub init: Option<ProcId>,
    /// The supervisor holding the sandbox, while running.
    pub supervisor: Option<ProcId>,
    pub started_at: Option<Nanos>,
    pub finished_at: Option<Nanos>,
    /// The workload's exit code (128+N for signal N); `None` when unknown
    /// (the supervisor was killed) or never run.
    pub exit_code: Option<i32>,
    /// The signal that ended the workload, if one did.
    pub exit_signal: Option<i32>,
    /// Why the last start failed, or why the exit status is unknown.
    pub error: Option<String>,
    pub restart_count: u32,
}

impl State {
    pub fn new() -> State {
        State {
            status: Status::Created,
            init: None,
            supervisor: None,
            started_at: None,
            finished_at: None,
            exit_code: None,
            exit_signal: None,
            error: None,
            restart_count: 0,
        }
    }

    pub fn can_start(&self) -> bool {
        matches!(self.status, Status::Created | Status::Exited)
    }

    pub fn can_stop(&self) -> bool {
        self.status == Status::Running
    }

    pub fn can_remove(&self, force: bool) -> bool {
        force || self.status != Status::Running
    }

    /// created/exited -> running. `init` is `None` for a container run in
    /// the foreground (`hutch run` without `-d`): the hutch that runs it is
    /// its supervisor, and signals for it go there.
    pub fn started(&mut self, init: Option<ProcId>, supervisor: ProcId, at: Nanos) {
        debug_assert!(self.can_start());
        if self.started_at.is_some() {
            self.restart_count += 1;
        }
        self.status = Status::Running;
        self.init = init;
        self.supervisor = Some(supervisor);
        self.started_at = Some(at);
        self.finished_at = None;
        self.exit_code = None;
        self.exit_signal = None;
        self.error = None;
    }

    /// running -> exited, with the workload's status if it is known.
    pub fn exited(&mut self, code: Option<i32>, signal: Option<i32>, at: Nanos) {
        self.status = Status::Exited;
        self.init = None;
        self.supervisor = None;
        self.finished_at = Some(at);
        self.exit_code = code;
        self.exit_signal = signal;
    }

    /// A state that says "running" but whose supervisor is gone is stale:
    /// the supervisor was killed, and the sandbox died with it (its init has
    /// the supervisor as parent and a parent-death signal). The exit status
    /// is unknown. Returns true when the state changed.
    pub fn reconcile(&mut self, at: Nanos) -> bool {
        if self.status != Status::Running {
            return false;
        }
        let supervisor_alive = self.supervisor.is_some_and(|p| p.alive());
        if supervisor_alive {
            return false;
        }
        // Make sure nothing is left: if init somehow lives on, end it.
        if let Some(fd) = self.init.and_then(|p| p.open()) {
            let _ = fd.signal(libc::SIGKILL);
        }
        self.exited(None, None, at);
        self.error = Some("the supervisor died; the exit status is unknown".into());
        true
    }
}

impl Default for State {
    fn default() -> Self {
        State::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guarded_transitions() {
        let mut s = State::new();
        assert!(s.can_start() && !s.can_stop() && s.can_remove(false));
        let me = ProcId::me().unwrap();
        s.started(Some(me), me, 1);
        assert!(!s.can_start() && s.can_stop());
        assert!(!s.can_remove(false) && s.can_remove(true));
        assert!(!s.reconcile(2), "a live supervisor is not stale");
        s.exited(Some(0), None, 3);
        assert!(s.can_start() && s.can_remove(false));
        s.started(Some(me), me, 4);
        assert_eq!(s.restart_count, 1);
    }

    #[test]
    fn a_dead_supervisor_means_exited_with_unknown_status() {
        let mut s = State::new();
        let me = ProcId::me().unwrap();
        let gone = ProcId {
            pid: me.pid,
            start_time: me.start_time + 1,
        };
        s.started(Some(gone), gone, 1);
        assert!(s.reconcile(2));
        assert_eq!(s.status, Status::Exited);
        assert_eq!(s.exit_code, None);
        assert!(s.error.is_some());
    }
}
