//! What happened to a run, for judges: one JSON object with a verdict,
//! the times, the peak memory and which mechanism enforced each limit.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Serialize;

use super::cgroup::CgroupStats;
use super::limits::Enforcement;
use super::spawn::Exit;

/// The limit the supervisor killed the sandbox for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Breach {
    CpuTime,
    WallTime,
    Memory,
    Output,
}

/// Everything the supervisor observed about one run.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub exit: Exit,
    pub wall: Duration,
    /// User + system time of every process of the sandbox.
    pub cpu: Duration,
    /// Peak resident memory (the cgroup's when there is one, else the
    /// largest process's, or the watchdog's largest sum).
    pub max_rss_kib: u64,
    pub output_bytes: u64,
    pub breach: Option<Breach>,
    pub cgroup: Option<CgroupStats>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Status {
    Ok,
    RuntimeError,
    Signaled,
    TimeLimit,
    WallTimeLimit,
    MemoryLimit,
    OutputLimit,
    SandboxError,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub status: Status,
    pub exit_code: Option<i32>,
    pub signal: Option<i32>,
    pub cpu_time_ms: u64,
    pub wall_time_ms: u64,
    pub max_rss_kib: u64,
    pub output_bytes: u64,
    /// limit -> mechanism ("cgroup-v1", "cgroup-v2", "rlimit", "rlimit+watchdog", "supervisor").
    pub enforced_by: BTreeMap<String, String>,
    /// Limits that --limits=best-effort let the run go without.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub not_enforced: Vec<String>,
    /// Limits the workload ran into without being killed (e.g. "pids").
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub limits_reached: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

impl Report {
    pub fn from_outcome(o: &Outcome, e: &Enforcement) -> Report {
        let (exit_code, signal) = match o.exit {
            Exit::Exited(c) => (Some(c), None),
            Exit::Signaled(s) => (None, Some(s)),
        };
        let cg = o.cgroup.unwrap_or_default();
        let cpu_over = e
            .limits
            .cpu_time_ms
            .is_some_and(|ms| o.cpu.as_millis() as u64 >= ms);
        let status = match o.breach {
            Some(Breach::Output) => Status::OutputLimit,
            Some(Breach::WallTime) => Status::WallTimeLimit,
            Some(Breach::CpuTime) => Status::TimeLimit,
            Some(Breach::Memory) => Status::MemoryLimit,
            // The kernel's own enforcement: SIGXCPU (or SIGKILL at the hard
            // rlimit) past the CPU limit, the OOM killer in the cgroup.
            None if signal == Some(libc::SIGXCPU)
                || (signal == Some(libc::SIGKILL) && cpu_over) =>
            {
                Status::TimeLimit
            }
            None if cg.oom_kills > 0 => Status::MemoryLimit,
            None if o.exit != Exit::Exited(0) && memory_exhausted(o, e) => Status::MemoryLimit,
            None if signal.is_some() => Status::Signaled,
            None if exit_code != Some(0) => Status::RuntimeError,
            None => Status::Ok,
        };
        // SIGXCPU is the kernel saying the process reached RLIMIT_CPU. Its
        // rusage can read lower than that on a loaded virtual machine (time
        // the scheduler counted but the tick sampling split as steal), so
        // the limit is the truer lower bound.
        let mut cpu_time_ms = o.cpu.as_millis() as u64;
        if signal == Some(libc::SIGXCPU) {
            let rlimit_ms = e
                .rlimits
                .iter()
                .find(|r| r.resource == libc::RLIMIT_CPU)
                .map(|r| r.soft.saturating_mul(1000));
            cpu_time_ms = cpu_time_ms.max(rlimit_ms.unwrap_or(0));
        }
        let mut limits_reached = Vec::new();
        if cg.pids_max_hits > 0 {
            limits_reached.push("pids".to_string());
        }
        Report {
            status,
            exit_code,
            signal,
            cpu_time_ms,
            wall_time_ms: o.wall.as_millis() as u64,
            max_rss_kib: o.max_rss_kib,
            output_bytes: o.output_bytes,
            enforced_by: e.enforced_by.clone(),
            not_enforced: e.not_enforced.clone(),
            limits_reached,
            message: None,
        }
    }

    /// The report as pretty JSON, with a final newline.
    pub fn to_json(&self) -> Vec<u8> {
        let mut json = serde_json::to_vec_pretty(self).unwrap_or_default();
        json.push(b'\n');
        json
    }

    /// Write the report to `path`, atomically (a temporary file beside it,
    /// then rename), so a judge never reads half a report.
    pub fn write_file(&self, path: &std::path::Path) -> std::io::Result<()> {
        let tmp = path.with_extension(format!("tmp.{}", std::process::id()));
        std::fs::write(&tmp, self.to_json())?;
        std::fs::rename(&tmp, path).inspect_err(|_| {
            let _ = std::fs::remove_file(&tmp);
        })
    }

    /// The report of a run that never started.
    pub fn sandbox_error(message: String, e: Option<&Enforcement>) -> Report {
        Report {
            status: Status::SandboxError,
            exit_code: None,
            signal: None,
            cpu_time_ms: 0,
            wall_time_ms: 0,
            max_rss_kib: 0,
            output_bytes: 0,
            enforced_by: e.map(|e| e.enforced_by.clone()).unwrap_or_default(),
            not_enforced: e.map(|e| e.not_enforced.clone()).unwrap_or_default(),
            limits_reached: vec![],
            message: Some(message),
        }
    }
}

/// Without a memory cgroup, a failed allocation under RLIMIT_AS shows only
/// as the program failing. Count it as the memory limit when the program
/// failed after using at least half of the limit: an allocation that fails
/// usually asked for as much again as what was already resident (a
/// doubling buffer), so the resident peak can be well below the limit.
fn memory_exhausted(o: &Outcome, e: &Enforcement) -> bool {
    match (e.limits.memory, e.watch_memory) {
        (Some(limit), Some(_)) => o.max_rss_kib * 1024 >= limit / 2,
        _ => false,
    }
}
