//! Resource limits and how each one is enforced on this host.
//!
//! A requested limit is never silently dropped: [`Enforcement::plan`]
//! assigns every limit a mechanism (a delegated cgroup, an rlimit, or the
//! supervisor's watchdog) or refuses the run, unless the user asked for
//! best effort. The plan is made before clone; the child applies the
//! rlimits, the parent places the sandbox in the cgroup and runs the watchdog.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::cgroup::{Cgroup, CgroupError, Delegation};
use super::watchdog;

/// Without a cgroup the watchdog finds the sandbox's processes through
/// their parents' lists of children; a kernel without them would leave it
/// seeing init alone.
const WALK_WHY: &str = "no delegated cgroup holds it, and the kernel lists no children in /proc/PID/task/TID/children (CONFIG_PROC_CHILDREN), which the watchdog walks";

#[derive(Debug, thiserror::Error)]
pub enum LimitError {
    #[error("{limit} cannot be enforced on this host: {why} (hint: {hint}, or pass --limits=best-effort to run without it)")]
    Unenforceable {
        limit: &'static str,
        why: String,
        hint: &'static str,
    },
    #[error("invalid --ulimit {spec:?}: {reason} (hint: --ulimit nofile=1024:2048)")]
    Ulimit { spec: String, reason: String },
    #[error(transparent)]
    Cgroup(#[from] CgroupError),
}

/// What the user asked for.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Limits {
    /// Bytes of memory for the whole sandbox.
    pub memory: Option<u64>,
    /// Memory plus swap, in bytes (Docker's --memory-swap); -1 is unlimited.
    pub memory_swap: Option<i64>,
    pub pids: Option<u64>,
    pub cpus: Option<f64>,
    /// The CFS period `cpus` is enforced over, in microseconds (default
    /// 100000).
    #[serde(default)]
    pub cpu_period_us: Option<u64>,
    /// Relative CPU weight as cgroup v1's cpu.shares (Docker's
    /// --cpu-shares; 1024 is the default weight).
    #[serde(default)]
    pub cpu_shares: Option<u64>,
    pub ulimits: Vec<Ulimit>,
    /// CPU time of the whole sandbox, in milliseconds.
    pub cpu_time_ms: Option<u64>,
    pub wall_time_ms: Option<u64>,
    /// Bytes of stdout and stderr together.
    pub output: Option<u64>,
    /// Run even when a limit cannot be enforced (the report says which).
    pub best_effort: bool,
}

impl Limits {
    /// Whether a limit needs a cgroup where one can be had. CPU time alone
    /// needs none (rlimits and the watchdog hold it), and making one costs
    /// several milliseconds per run.
    pub fn needs_cgroup(&self) -> bool {
        self.memory.is_some()
            || self.memory_swap.is_some()
            || self.pids.is_some()
            || self.cpus.is_some()
            || self.cpu_shares.is_some()
    }

    pub fn is_empty(&self) -> bool {
        *self
            == Limits {
                best_effort: self.best_effort,
                ..Limits::default()
            }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ulimit {
    pub name: String,
    pub resource: u32,
    pub soft: u64,
    pub hard: u64,
}

/// Docker's --ulimit names.
const ULIMITS: &[(&str, u32)] = &[
    ("core", libc::RLIMIT_CORE),
    ("cpu", libc::RLIMIT_CPU),
    ("data", libc::RLIMIT_DATA),
    ("fsize", libc::RLIMIT_FSIZE),
    ("locks", libc::RLIMIT_LOCKS),
    ("memlock", libc::RLIMIT_MEMLOCK),
    ("msgqueue", libc::RLIMIT_MSGQUEUE),
    ("nice", libc::RLIMIT_NICE),
    ("nofile", libc::RLIMIT_NOFILE),
    ("nproc", libc::RLIMIT_NPROC),
    ("rss", libc::RLIMIT_RSS),
    ("rtprio", libc::RLIMIT_RTPRIO),
    ("rttime", libc::RLIMIT_RTTIME),
    ("sigpending", libc::RLIMIT_SIGPENDING),
    ("stack", libc::RLIMIT_STACK),
    ("as", libc::RLIMIT_AS),
];

impl std::str::FromStr for Ulimit {
    type Err = LimitError;
    /// `NAME=SOFT[:HARD]`, with -1 for unlimited.
    fn from_str(spec: &str) -> Result<Ulimit, LimitError> {
        let err = |reason: &str| LimitError::Ulimit {
            spec: spec.to_string(),
            reason: reason.to_string(),
        };
        let (name, values) = spec
            .split_once('=')
            .ok_or_else(|| err("expected NAME=SOFT[:HARD]"))?;
        let resource = ULIMITS
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, r)| *r)
            .ok_or_else(|| err(&format!("unknown resource {name:?}")))?;
        let value = |s: &str| -> Result<u64, LimitError> {
            if s == "-1" || s == "unlimited" {
                Ok(libc::RLIM_INFINITY)
            } else {
                s.parse().map_err(|_| err(&format!("bad value {s:?}")))
            }
        };
        let (soft, hard) = match values.split_once(':') {
            Some((s, h)) => (value(s)?, value(h)?),
            None => (value(values)?, value(values)?),
        };
        if soft > hard {
            return Err(err("the soft limit is above the hard limit"));
        }
        Ok(Ulimit {
            name: name.to_string(),
            resource,
            soft,
            hard,
        })
    }
}

/// One rlimit for the child to set before exec.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rlimit {
    pub resource: u32,
    pub soft: u64,
    pub hard: u64,
}

impl Rlimit {
    pub fn apply(&self) -> std::io::Result<()> {
        let lim = libc::rlimit {
            rlim_cur: self.soft,
            rlim_max: self.hard,
        };
        // SAFETY: `lim` is a valid rlimit; setrlimit only reads it.
        let ret = unsafe { libc::setrlimit(self.resource as _, &lim) };
        if ret < 0 {
            Err(std::io::Error::last_os_error())
        } else {
            Ok(())
        }
    }
}

/// How every requested limit is enforced for one sandbox.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Enforcement {
    pub limits: Limits,
    /// Set by the workload before exec (per process).
    pub rlimits: Vec<Rlimit>,
    /// The sandbox's own cgroup, created before clone; init joins it
    /// before it is released, so every descendant is inside.
    pub cgroup: Option<Cgroup>,
    /// Limits on the whole sandbox that the supervisor's watchdog samples.
    pub watch_cpu_ms: Option<u64>,
    pub watch_memory: Option<u64>,
    /// limit name -> mechanism, for `hutch info` and the report.
    pub enforced_by: BTreeMap<String, String>,
    /// Limits best effort could not enforce.
    pub not_enforced: Vec<String>,
}

impl Enforcement {
    /// Decide how to enforce `limits` here, creating the sandbox's cgroup
    /// (named `id`) when a delegated subtree exists. With `pooled` (an
    /// `--rm` run in the foreground, whose init gets a keeper), a slot of
    /// the pool where there is one (see [`Cgroup::claim_pooled`]).
    pub fn plan(limits: &Limits, id: &str, pooled: bool) -> Result<Enforcement, LimitError> {
        let find = || Delegation::find_for(|c| super::cgroup::needs_v1(limits, c));
        let cgroup = match limits.needs_cgroup().then(find).flatten() {
            Some(d) => match pooled.then(|| Cgroup::claim_pooled(&d, limits)).flatten() {
                Some(slot) => Some(slot),
                None => Some(Cgroup::create(&d, id, limits)?),
            },
            None => None,
        };
        Enforcement::plan_in(limits, cgroup)
    }

    /// Plan `limits` with `cgroup` (made by the caller, where it chose) as
    /// the sandbox's cgroup, if any.
    pub fn plan_in(limits: &Limits, cgroup: Option<Cgroup>) -> Result<Enforcement, LimitError> {
        let mut e = Enforcement {
            limits: limits.clone(),
            ..Enforcement::default()
        };
        for u in &limits.ulimits {
            e.rlimits.push(Rlimit {
                resource: u.resource,
                soft: u.soft,
                hard: u.hard,
            });
            e.enforced_by
                .insert(format!("ulimit-{}", u.name), "rlimit".into());
        }
        e.assign(cgroup)?;
        Ok(e)
    }

    /// Give every limit its mechanism: `cgroup` where it has the
    /// controller, else an rlimit or the watchdog, else a refusal.
    fn assign(&mut self, cgroup: Option<Cgroup>) -> Result<(), LimitError> {
        let limits = self.limits.clone();
        let e = self;
        let cg = |what: &str| {
            cgroup
                .as_ref()
                .filter(|c| c.has(what))
                .map(|c| c.mechanism())
        };

        if let Some(mem) = limits.memory {
            match cg("memory") {
                Some(m) => {
                    e.enforced_by.insert("memory".into(), m);
                }
                None if !watchdog::can_walk() => e.refuse(
                    "--memory",
                    WALK_WHY,
                    "delegate a cgroup to this user (see README: Limits)",
                )?,
                None => {
                    // Each process is capped by RLIMIT_AS; the watchdog caps
                    // the sum of their resident memory.
                    e.rlimits.push(Rlimit {
                        resource: libc::RLIMIT_AS,
                        soft: mem,
                        hard: mem,
                    });
                    e.watch_memory = Some(mem);
                    e.enforced_by
                        .insert("memory".into(), "rlimit+watchdog".into());
                }
            }
        }
        if let Some(swap) = limits.memory_swap {
            match cg("memory.swap") {
                Some(m) => {
                    e.enforced_by.insert("memory-swap".into(), m);
                }
                // Without a cgroup the memory limits above already bound
                // RAM plus swap together, which is what --memory-swap asks.
                None if swap < 0 || Some(swap as u64) >= limits.memory => {
                    e.enforced_by
                        .insert("memory-swap".into(), "rlimit+watchdog".into());
                }
                None => e.refuse(
                    "--memory-swap",
                    "it is below --memory and no delegated memory cgroup exists",
                    "delegate a cgroup to this user",
                )?,
            }
        }
        if let Some(pids) = limits.pids {
            match cg("pids") {
                Some(m) => {
                    e.enforced_by.insert("pids".into(), m);
                }
                None => {
                    // Counted per user in the sandbox's own user namespace,
                    // so the host's other processes of this user do not count.
                    e.rlimits.push(Rlimit {
                        resource: libc::RLIMIT_NPROC,
                        soft: pids,
                        hard: pids,
                    });
                    e.enforced_by.insert("pids".into(), "rlimit".into());
                }
            }
        }
        if limits.cpus.is_some() {
            match cg("cpu") {
                Some(m) => {
                    e.enforced_by.insert("cpus".into(), m);
                }
                None => e.refuse(
                    "--cpus",
                    "CPU bandwidth needs a delegated cpu cgroup and none is writable by this user",
                    "ask an administrator to delegate a cgroup subtree (see README: Limits)",
                )?,
            }
        }
        if limits.cpu_shares.is_some() {
            match cg("cpu") {
                Some(m) => {
                    e.enforced_by.insert("cpu-shares".into(), m);
                }
                None => e.refuse(
                    "--cpu-shares",
                    "a CPU weight needs a delegated cpu cgroup and none is writable by this user",
                    "ask an administrator to delegate a cgroup subtree (see README: Limits)",
                )?,
            }
        }
        if let Some(ms) = limits.cpu_time_ms {
            if cg("cpuacct").is_none() && !watchdog::can_walk() {
                e.refuse(
                    "--time-limit",
                    WALK_WHY,
                    "delegate a cgroup to this user (see README: Limits)",
                )?;
            }
            // A process that alone exceeds the limit gets SIGXCPU from the
            // kernel at once; the watchdog catches many processes together.
            let secs = ms.div_ceil(1000);
            e.rlimits.push(Rlimit {
                resource: libc::RLIMIT_CPU,
                soft: secs,
                hard: secs + 1,
            });
            e.watch_cpu_ms = Some(ms);
            let by = match cg("cpuacct") {
                Some(m) => format!("rlimit+watchdog({m})"),
                None => "rlimit+watchdog".into(),
            };
            e.enforced_by.insert("time".into(), by);
        }
        if limits.wall_time_ms.is_some() {
            e.enforced_by
                .insert("wall-time".into(), "supervisor".into());
        }
        if limits.output.is_some() {
            e.enforced_by.insert("output".into(), "supervisor".into());
        }
        e.cgroup = cgroup;
        Ok(())
    }

    fn refuse(
        &mut self,
        limit: &'static str,
        why: &str,
        hint: &'static str,
    ) -> Result<(), LimitError> {
        if self.limits.best_effort {
            self.not_enforced
                .push(limit.trim_start_matches('-').to_string());
            Ok(())
        } else {
            Err(LimitError::Unenforceable {
                limit,
                why: why.to_string(),
                hint,
            })
        }
    }
}

/// What would enforce each kind of limit for this user on this host, for
/// `hutch info`.
pub fn mechanisms() -> BTreeMap<String, String> {
    let d = Delegation::find();
    let has = |ctrl: &str| match &d {
        Some(Delegation::V2 { .. }) => Some("cgroup-v2"),
        Some(Delegation::V1 { parents }) if parents.contains_key(ctrl) => Some("cgroup-v1"),
        _ => None,
    };
    let mut m = BTreeMap::new();
    m.insert(
        "memory".into(),
        has("memory").unwrap_or("rlimit+watchdog").to_string(),
    );
    m.insert("pids".into(), has("pids").unwrap_or("rlimit").to_string());
    m.insert(
        "cpus".into(),
        has("cpu")
            .unwrap_or("unavailable (needs a delegated cgroup)")
            .to_string(),
    );
    m.insert("time".into(), "rlimit+watchdog".into());
    m.insert("wall-time".into(), "supervisor".into());
    m.insert("output".into(), "supervisor".into());
    if let Some(d) = &d {
        m.insert("delegated-cgroup".into(), d.describe());
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ulimit_specs() {
        let u: Ulimit = "nofile=1024:2048".parse().unwrap();
        assert_eq!((u.soft, u.hard), (1024, 2048));
        let u: Ulimit = "core=-1".parse().unwrap();
        assert_eq!(u.soft, libc::RLIM_INFINITY);
        for bad in ["nofile", "bogus=1", "nofile=2:1", "nofile=x"] {
            assert!(bad.parse::<Ulimit>().is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn no_limits_need_no_plan() {
        let e = Enforcement::plan(&Limits::default(), "x", false).unwrap();
        assert!(e.rlimits.is_empty() && e.cgroup.is_none() && e.enforced_by.is_empty());
    }
}
