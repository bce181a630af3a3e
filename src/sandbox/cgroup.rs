//! A cgroup per sandbox, in a subtree an administrator delegated to the
//! user: cgroup v2 (a writable cgroup with controllers enabled), or cgroup
//! v1 controllers whose directory was chowned to the user (as LXC's pam_cgfs
//! does: `/sys/fs/cgroup/<controller>/user/<name>`). No daemon, no root.

use std::collections::BTreeMap;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use serde::{Deserialize, Serialize};

use super::limits::Limits;
use crate::procfs::{read_small, read_small_from};

#[derive(Debug, thiserror::Error)]
pub enum CgroupError {
    #[error("cannot {what} {path}: {source} (hint: check that the delegated cgroup subtree belongs to this user)")]
    Io {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
}

const ROOT: &str = "/sys/fs/cgroup";
/// The v1 controllers hutch uses: limits and accounting, and the freezer
/// (hutch-runtime's pause and resume).
const V1_CONTROLLERS: &[&str] = &["memory", "pids", "cpu", "cpuacct", "freezer"];

/// A subtree this user may create cgroups in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Delegation {
    V2 {
        parent: PathBuf,
    },
    /// controller -> parent directory.
    V1 {
        parents: BTreeMap<String, PathBuf>,
    },
}

impl Delegation {
    /// The delegated subtree, if any: `$HUTCH_CGROUP_PARENT` (a path relative
    /// to each hierarchy's root), the process's own cgroup, or
    /// `user/<login name>` under each v1 controller.
    pub fn find() -> Option<Delegation> {
        Delegation::find_for(|_| true)
    }

    /// [`Delegation::find`], looking on cgroup v1 only for the controllers
    /// `wanted` says a run needs: each one looked for is a few lookups in
    /// /sys/fs/cgroup on every run.
    pub fn find_for(wanted: impl Fn(&str) -> bool) -> Option<Delegation> {
        Delegation::find_in(
            Path::new(ROOT),
            &own_cgroups(),
            std::env::var("HUTCH_CGROUP_PARENT").ok(),
            login_from_env(),
            login_name,
            wanted,
        )
    }

    /// [`Delegation::find`] under `root`, with this process's cgroups `own`,
    /// `$HUTCH_CGROUP_PARENT` as `env`, the login name the environment
    /// gives as `env_login`, and the login name from `login`, which is
    /// called only when the other candidates are not writable: it reads the
    /// passwd database, which most runs never need.
    fn find_in(
        root: &Path,
        own: &BTreeMap<String, String>,
        env: Option<String>,
        env_login: Option<String>,
        login: impl Fn() -> Option<String>,
        wanted: impl Fn(&str) -> bool,
    ) -> Option<Delegation> {
        if root.join("cgroup.controllers").exists() {
            let rel = env.or_else(|| own.get("").cloned())?;
            let parent = root.join(rel.trim_start_matches('/'));
            if !writable(&parent) {
                return None;
            }
            let enabled = std::fs::read_to_string(parent.join("cgroup.subtree_control")).ok()?;
            return enabled
                .contains("memory")
                .then_some(Delegation::V2 { parent });
        }
        let name = std::cell::OnceCell::new();
        let mut parents = BTreeMap::new();
        for ctrl in V1_CONTROLLERS.iter().filter(|c| wanted(c)) {
            // A controller not mounted here has no writable candidate.
            let mount = root.join(ctrl);
            let found = env
                .iter()
                .chain(own.get(*ctrl))
                .map(|rel| mount.join(rel.trim_start_matches('/')))
                .find(|p| p != &mount && writable(p))
                .or_else(|| {
                    let user = |n: &str| {
                        Some(mount.join("user").join(n)).filter(|p| p != &mount && writable(p))
                    };
                    env_login
                        .as_deref()
                        .and_then(user)
                        .or_else(|| user(name.get_or_init(&login).as_deref()?))
                });
            if let Some(p) = found {
                parents.insert(ctrl.to_string(), p);
            }
        }
        (!parents.is_empty()).then_some(Delegation::V1 { parents })
    }

    pub fn describe(&self) -> String {
        match self {
            Delegation::V2 { parent } => format!("cgroup v2 at {}", parent.display()),
            Delegation::V1 { parents } => parents
                .iter()
                .map(|(c, p)| format!("{c}: {}", p.display()))
                .collect::<Vec<_>>()
                .join(", "),
        }
    }
}

/// The sandbox's own cgroup (one directory per v1 controller).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cgroup {
    pub v2: bool,
    /// controller -> directory; v2 has the single key "unified".
    pub dirs: BTreeMap<String, PathBuf>,
    /// The limit files and the values written to them, in order: a kept
    /// container's cgroup is removed when a run ends (so the next run's
    /// peak memory and OOM counts start from zero) and made again from
    /// these by [`Cgroup::make`] on its next start.
    #[serde(default)]
    pub settings: Vec<(PathBuf, String)>,
    /// A slot of the pool (see [`Cgroup::claim_pooled`]): kept, not
    /// removed, when the run ends.
    #[serde(default)]
    pub pooled: bool,
    /// This process's claim of the pooled slot.
    #[serde(skip)]
    pub claim: Option<SlotClaim>,
    /// What a pooled slot had counted before this run (figures reported
    /// are the run's own: the counters that cannot be reset are read
    /// when the slot is claimed, and taken off).
    #[serde(skip)]
    baseline: OnceLock<CgroupStats>,
}

/// The lock that claims a pooled cgroup for one run: a flock of the slot's
/// directory, held until the slot is empty again (by hutch, then by the
/// keeper, which reaps init) so that no other run resets its counters or
/// joins it meanwhile.
#[derive(Debug, Clone)]
pub struct SlotClaim(Arc<OwnedFd>);

impl SlotClaim {
    pub fn fd(&self) -> RawFd {
        self.0.as_raw_fd()
    }
}

impl PartialEq for SlotClaim {
    fn eq(&self, other: &SlotClaim) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl Eq for SlotClaim {}

/// How many pooled slots a delegated parent gets at most: as many `--rm`
/// runs with a cgroup at once; a run finding every slot taken gets a
/// cgroup of its own, made and removed as any other.
const POOL_SLOTS: usize = 16;

/// The memory a pooled slot may still hold (page cache charged by earlier
/// runs) when a run takes it, and so the most its peak may be under-counted.
const POOL_HELD_MAX: u64 = 4 << 20;

/// What the cgroup measured.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CgroupStats {
    pub cpu_ns: Option<u64>,
    pub peak_memory: Option<u64>,
    pub oom_kills: u64,
    pub pids_max_hits: u64,
}

impl Cgroup {
    /// The cgroup of sandbox `id`. On cgroup v1 it is only planned here:
    /// `spawn` makes it (mkdir and limits) while the sandbox builds its
    /// root, then moves init in; on v2 it is made now, since what the
    /// new cgroup offers is read from its own files.
    pub fn create(d: &Delegation, id: &str, limits: &Limits) -> Result<Cgroup, CgroupError> {
        let name = format!("hutch-{}", &id[..id.len().min(16)]);
        let cg = Cgroup::plan_at(d, Path::new(&name), limits, &[]);
        if cg.v2 {
            cg.make()?;
        }
        Ok(cg)
    }

    /// Make the cgroup at `name`, a relative path under the delegated
    /// parent (checked by the caller: no `..`), with the v1 controllers
    /// `limits` needs plus those in `also` (the freezer, say).
    pub fn create_at(
        d: &Delegation,
        name: &Path,
        limits: &Limits,
        also: &[&str],
    ) -> Result<Cgroup, CgroupError> {
        let cg = Cgroup::plan_at(d, name, limits, also);
        cg.make()?;
        Ok(cg)
    }

    /// A cgroup from the pool under a v1 delegated parent, for an `--rm`
    /// run whose init has a keeper: making and removing three v1 cgroups
    /// (memory, pids, cpuacct) costs the kernel about a millisecond of CPU
    /// a run (per-CPU state, offlining and RCU work after each rmdir), as
    /// much as the rest of a judge's run. A slot,
    /// `hutch-pool-<controllers>-N` under each controller's parent, is
    /// claimed by a flock of its first directory and taken only if empty; [`Cgroup::make`] then writes every limit file
    /// of its controllers (those this run leaves unset back to unlimited)
    /// and resets or reads its counters. `None` when the pool is full or
    /// unusable: the caller makes a cgroup of the run's own. Not on cgroup
    /// v2, which this code has no host to be tested on.
    pub fn claim_pooled(d: &Delegation, limits: &Limits) -> Option<Cgroup> {
        let Delegation::V1 { parents } = d else {
            return None;
        };
        // Slots are named by the controllers they join (those `plan_at`
        // gives the run), so that runs with other controllers never share
        // one: each run locks the same directory of a slot (its first
        // controller's), and no setting of a controller a run does not
        // join (cpu's quota in a merged cpu,cpuacct hierarchy, say)
        // outlives the run that made it.
        let set: Vec<&str> = parents
            .keys()
            .map(String::as_str)
            .filter(|c| needs_v1(limits, c))
            .collect();
        let set = set.join("-");
        (0..POOL_SLOTS).find_map(|slot| {
            let name = format!("hutch-pool-{set}-{slot}");
            let mut cg = Cgroup::plan_at(d, Path::new(&name), limits, &[]);
            let first = cg.dirs.values().next()?.clone();
            let lock = open_dir(&first).or_else(|| {
                cg.dirs.values().try_for_each(|d| mkdir_all(d)).ok()?;
                open_dir(&first)
            })?;
            // SAFETY: flock on a descriptor we own.
            if unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
                return None;
            }
            // A slot whose making was cut short is finished now.
            for dir in cg.dirs.values().skip(1) {
                if !dir.is_dir() {
                    mkdir_all(dir).ok()?;
                }
            }
            // Every process of a run is in each of its slot's directories,
            // and init's reaping (after which its keeper lets the lock go)
            // waits for the last of them: one directory tells.
            if !read_control(&first.join("cgroup.procs")).is_some_and(|p| p.trim().is_empty()) {
                return None;
            }
            cg.settings = pooled_settings(&cg);
            cg.pooled = true;
            cg.claim = Some(SlotClaim(Arc::new(lock)));
            Some(cg)
        })
    }

    /// The directories and limit files of the cgroup at `name` under the
    /// delegated parent, without making it.
    fn plan_at(d: &Delegation, name: &Path, limits: &Limits, also: &[&str]) -> Cgroup {
        let mut cg = Cgroup {
            v2: matches!(d, Delegation::V2 { .. }),
            dirs: BTreeMap::new(),
            settings: Vec::new(),
            pooled: false,
            claim: None,
            baseline: OnceLock::new(),
        };
        let mut settings: Vec<(PathBuf, String)> = Vec::new();
        let mut set = |file: PathBuf, value: String| settings.push((file, value));
        match d {
            Delegation::V2 { parent } => {
                let dir = parent.join(name);
                cg.dirs.insert("unified".into(), dir.clone());
                if let Some(m) = limits.memory {
                    set(dir.join("memory.max"), m.to_string());
                }
                if let (Some(s), Some(m)) = (limits.memory_swap, limits.memory) {
                    let swap = if s < 0 {
                        "max".to_string()
                    } else {
                        (s as u64).saturating_sub(m).to_string()
                    };
                    set(dir.join("memory.swap.max"), swap);
                }
                if let Some(p) = limits.pids {
                    set(dir.join("pids.max"), p.to_string());
                }
                if let Some(c) = limits.cpus {
                    let period = limits.cpu_period_us.unwrap_or(100_000);
                    set(
                        dir.join("cpu.max"),
                        format!("{} {period}", (c * period as f64) as u64),
                    );
                }
                if let Some(shares) = limits.cpu_shares {
                    set(dir.join("cpu.weight"), shares_to_weight(shares).to_string());
                }
            }
            Delegation::V1 { parents } => {
                let wanted = |c: &str| needs_v1(limits, c) || also.contains(&c);
                for (ctrl, parent) in parents.iter().filter(|(c, _)| wanted(c)) {
                    let dir = parent.join(name);
                    cg.dirs.insert(ctrl.clone(), dir);
                }
                if let Some(dir) = cg.dirs.get("memory") {
                    if let Some(m) = limits.memory {
                        set(dir.join("memory.limit_in_bytes"), m.to_string());
                    }
                    if let Some(s) = limits.memory_swap.filter(|s| *s > 0) {
                        let f = dir.join("memory.memsw.limit_in_bytes");
                        // Only where swap accounting is on: checked in the
                        // parent, since this cgroup is not made yet.
                        if f.parent()
                            .and_then(Path::parent)
                            .is_some_and(|p| p.join("memory.memsw.limit_in_bytes").exists())
                        {
                            set(f, s.to_string());
                        }
                    }
                }
                if let (Some(dir), Some(p)) = (cg.dirs.get("pids"), limits.pids) {
                    set(dir.join("pids.max"), p.to_string());
                }
                if let (Some(dir), Some(c)) = (cg.dirs.get("cpu"), limits.cpus) {
                    let period = limits.cpu_period_us.unwrap_or(100_000);
                    set(dir.join("cpu.cfs_period_us"), period.to_string());
                    set(
                        dir.join("cpu.cfs_quota_us"),
                        ((c * period as f64) as u64).to_string(),
                    );
                }
                if let (Some(dir), Some(shares)) = (cg.dirs.get("cpu"), limits.cpu_shares) {
                    set(dir.join("cpu.shares"), shares.to_string());
                }
            }
        }
        cg.settings = settings;
        cg
    }

    /// Make the directories and write the limits: at creation, and again
    /// on each start of a kept container (the last run removed them).
    pub fn make(&self) -> Result<(), CgroupError> {
        if !self.pooled {
            for dir in self.dirs.values() {
                mkdir_all(dir)?;
            }
        }
        for (file, value) in &self.settings {
            write(file, value)?;
        }
        if self.pooled {
            // After the limits, whose writes may reclaim memory: the page
            // cache earlier runs left charged to the slot is taken off
            // this run's peak.
            let read = |ctrl: &str, file: &str| self.read(ctrl, file);
            let mut held = num(read("memory", "memory.usage_in_bytes"));
            // The baseline is taken off the peak, which under-counts the
            // run by what of it the kernel reclaims meanwhile: past a few
            // MiB, the slot is emptied first (it holds no process yet).
            if held.is_some_and(|h| h > POOL_HELD_MAX) {
                if let Some(dir) = self.dirs.get("memory") {
                    let _ = write(&dir.join("memory.force_empty"), "0");
                    held = num(read("memory", "memory.usage_in_bytes"));
                }
            }
            let _ = self.baseline.set(CgroupStats {
                cpu_ns: None,
                peak_memory: held,
                oom_kills: field(read("memory", "memory.oom_control"), "oom_kill").unwrap_or(0),
                pids_max_hits: field(read("pids", "pids.events"), "max").unwrap_or(0),
            });
        }
        Ok(())
    }

    /// Whether this cgroup can enforce `what` (a controller name, or
    /// "memory.swap").
    pub fn has(&self, what: &str) -> bool {
        if self.v2 {
            let Some(dir) = self.dirs.get("unified") else {
                return false;
            };
            return match what {
                "memory.swap" => dir.join("memory.swap.max").exists(),
                "cpuacct" => true,
                "freezer" => dir.join("cgroup.freeze").exists(),
                c => {
                    dir.join(format!("{c}.max")).exists()
                        || (c == "cpu" && dir.join("cpu.max").exists())
                }
            };
        }
        match what {
            // Asked of the parent: the cgroup itself may not be made yet,
            // and swap accounting is the same throughout the hierarchy.
            "memory.swap" => self.dirs.get("memory").is_some_and(|d| {
                d.parent()
                    .is_some_and(|p| p.join("memory.memsw.limit_in_bytes").exists())
            }),
            c => self.dirs.contains_key(c),
        }
    }

    pub fn mechanism(&self) -> String {
        if self.v2 { "cgroup-v2" } else { "cgroup-v1" }.to_string()
    }

    /// Move `pid` (the sandbox's init, before it is released) in.
    pub fn add(&self, pid: i32) -> Result<(), CgroupError> {
        for dir in self.dirs.values() {
            write(&dir.join("cgroup.procs"), &pid.to_string())?;
        }
        Ok(())
    }

    fn read(&self, ctrl: &str, file: &str) -> Option<String> {
        let dir = self.dirs.get(if self.v2 { "unified" } else { ctrl })?;
        read_control(&dir.join(file))
    }

    /// CPU time of everything in the cgroup so far, in nanoseconds: the
    /// one reading the watchdog needs on every tick.
    pub fn cpu_ns(&self) -> Option<u64> {
        if self.v2 {
            field(self.read("", "cpu.stat"), "usage_usec").map(|u| u * 1000)
        } else {
            num(self.read("cpuacct", "cpuacct.usage"))
        }
    }

    /// What the cgroup measured for this run.
    pub fn stats(&self) -> CgroupStats {
        let base = self.baseline.get().copied().unwrap_or_default();
        let s = self.raw_stats();
        let less = |v: Option<u64>, b: Option<u64>| v.map(|v| v.saturating_sub(b.unwrap_or(0)));
        CgroupStats {
            cpu_ns: less(s.cpu_ns, base.cpu_ns),
            peak_memory: less(s.peak_memory, base.peak_memory),
            oom_kills: s.oom_kills.saturating_sub(base.oom_kills),
            pids_max_hits: s.pids_max_hits.saturating_sub(base.pids_max_hits),
        }
    }

    fn raw_stats(&self) -> CgroupStats {
        let read = |ctrl: &str, file: &str| self.read(ctrl, file);
        if self.v2 {
            CgroupStats {
                cpu_ns: self.cpu_ns(),
                peak_memory: num(read("", "memory.peak")),
                oom_kills: field(read("", "memory.events"), "oom_kill").unwrap_or(0),
                pids_max_hits: field(read("", "pids.events"), "max").unwrap_or(0),
            }
        } else {
            CgroupStats {
                cpu_ns: self.cpu_ns(),
                peak_memory: num(read("memory", "memory.max_usage_in_bytes")),
                oom_kills: field(read("memory", "memory.oom_control"), "oom_kill").unwrap_or(0),
                pids_max_hits: field(read("pids", "pids.events"), "max").unwrap_or(0),
            }
        }
    }

    /// Whether the cgroup holds no process but `pid` (hutch's pid of
    /// init), and whether it holds that one: with either answer every
    /// process of the workload has ended and been counted. `None` when
    /// other processes are in it, or it cannot be read.
    pub fn holds_at_most(&self, pid: i32) -> Option<bool> {
        let dir = ["unified", "pids", "memory"]
            .iter()
            .find_map(|c| self.dirs.get(*c))
            .or_else(|| self.dirs.values().next())?;
        let procs = read_control(&dir.join("cgroup.procs"))?;
        match procs.trim() {
            "" => Some(false),
            only if only.parse::<i32>() == Ok(pid) => Some(true),
            _ => None,
        }
    }

    /// Remove the (now empty) cgroup directories; a pooled slot stays.
    pub fn remove(&self) {
        if self.pooled {
            return;
        }
        for dir in self.dirs.values() {
            let _ = std::fs::remove_dir(dir);
        }
    }

    /// Freeze (or thaw) every process in the cgroup, and wait until the
    /// kernel says it is done: v1's freezer.state passes through FREEZING,
    /// v2's cgroup.events says `frozen 1`. Neither file offers an event
    /// v1 can wait on, so this polls, briefly, as runc does.
    pub fn freeze(&self, frozen: bool) -> Result<(), CgroupError> {
        let (dir, file, value) = if self.v2 {
            let dir = self.dirs.get("unified");
            (dir, "cgroup.freeze", if frozen { "1" } else { "0" })
        } else {
            let dir = self.dirs.get("freezer");
            (
                dir,
                "freezer.state",
                if frozen { "FROZEN" } else { "THAWED" },
            )
        };
        let Some(dir) = dir else {
            return Err(CgroupError::Io {
                what: "freeze",
                path: self.dirs.values().next().cloned().unwrap_or_default(),
                source: std::io::Error::from_raw_os_error(libc::ENOENT),
            });
        };
        let path = dir.join(file);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            write(&path, value)?;
            if self.frozen() == Some(frozen) {
                return Ok(());
            }
            if std::time::Instant::now() > deadline {
                // A freeze that did not complete is undone (as runc does):
                // left half-frozen, the container would be recorded as
                // running, which resume refuses to thaw.
                if frozen {
                    let _ = write(&path, if self.v2 { "0" } else { "THAWED" });
                }
                return Err(CgroupError::Io {
                    what: if frozen { "freeze" } else { "thaw" },
                    path,
                    source: std::io::Error::from_raw_os_error(libc::ETIMEDOUT),
                });
            }
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
    }

    /// Whether the cgroup is frozen now; `None` without a freezer.
    pub fn frozen(&self) -> Option<bool> {
        if self.v2 {
            let events = self.read("", "cgroup.events");
            field(events, "frozen").map(|f| f == 1)
        } else {
            let state = self.read("freezer", "freezer.state")?;
            match state.trim() {
                "FROZEN" => Some(true),
                "THAWED" => Some(false),
                // FREEZING: neither yet.
                _ => None,
            }
        }
    }
}

/// cgroup v1's cpu.shares (2..262144, default 1024) as cgroup v2's
/// cpu.weight (1..10000, default 100), as runc and crun convert it.
pub fn shares_to_weight(shares: u64) -> u64 {
    let shares = shares.clamp(2, 262_144);
    1 + ((shares - 2) * 9999) / 262_142
}

/// The number after `key ` in a flat-keyed cgroup file.
fn field(text: Option<String>, key: &str) -> Option<u64> {
    text?.lines().find_map(|l| {
        let (k, v) = l.split_once(' ')?;
        (k == key).then(|| v.trim().parse::<u64>().ok()).flatten()
    })
}

fn num(text: Option<String>) -> Option<u64> {
    text?.trim().parse::<u64>().ok()
}

/// Whether `limits` needs v1 controller `ctrl`: only those are made (each
/// is a directory to make and remove on every run).
pub fn needs_v1(limits: &Limits, ctrl: &str) -> bool {
    match ctrl {
        "memory" => limits.memory.is_some() || limits.memory_swap.is_some(),
        "pids" => limits.pids.is_some(),
        "cpu" => limits.cpus.is_some() || limits.cpu_shares.is_some(),
        "cpuacct" => limits.cpu_time_ms.is_some(),
        _ => false,
    }
}

/// Every limit file of a pooled slot's controllers, in an order the
/// kernel accepts from any earlier run's values: memory plus swap to
/// unlimited first (it may not be below memory), then the limits this run
/// asks for or unlimited, then the counters that can be reset (CPU usage,
/// and peak memory, to what the slot holds now).
fn pooled_settings(cg: &Cgroup) -> Vec<(PathBuf, String)> {
    let asked: BTreeMap<&PathBuf, &String> = cg.settings.iter().map(|(f, v)| (f, v)).collect();
    let mut out: Vec<(PathBuf, String)> = Vec::new();
    // This run's value of `file`, else `default`.
    let value = |file: PathBuf, default: &str| {
        let value = asked
            .get(&file)
            .map_or(default.to_string(), |v| v.to_string());
        (file, value)
    };
    if let Some(dir) = cg.dirs.get("memory") {
        let memsw = dir.join("memory.memsw.limit_in_bytes");
        let swap_accounted = dir
            .parent()
            .is_some_and(|p| p.join("memory.memsw.limit_in_bytes").exists());
        if swap_accounted {
            out.push((memsw.clone(), "-1".into()));
        }
        out.push(value(dir.join("memory.limit_in_bytes"), "-1"));
        if swap_accounted {
            out.push(value(memsw, "-1"));
        }
        out.push((dir.join("memory.max_usage_in_bytes"), "0".into()));
    }
    if let Some(dir) = cg.dirs.get("pids") {
        out.push(value(dir.join("pids.max"), "max"));
    }
    if let Some(dir) = cg.dirs.get("cpu") {
        // No quota while the period changes (a quota may not exceed what
        // some periods allow), then this run's.
        out.push((dir.join("cpu.cfs_quota_us"), "-1".into()));
        out.push(value(dir.join("cpu.cfs_period_us"), "100000"));
        out.push(value(dir.join("cpu.cfs_quota_us"), "-1"));
        out.push(value(dir.join("cpu.shares"), "1024"));
    }
    if let Some(dir) = cg.dirs.get("cpuacct") {
        out.push((dir.join("cpuacct.usage"), "0".into()));
    }
    out
}

/// A directory opened for a flock, if it exists.
fn open_dir(dir: &Path) -> Option<OwnedFd> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECTORY)
        .open(dir)
        .ok()
        .map(OwnedFd::from)
}

/// Make `dir` and any missing parent (a nested path under the delegated
/// parent, as an OCI `cgroupsPath` asks): one mkdir when the parent
/// exists, as it usually does (create_dir_all would stat `dir` first).
fn mkdir_all(dir: &Path) -> Result<(), CgroupError> {
    match std::fs::create_dir(dir).or_else(|e| match e.kind() {
        std::io::ErrorKind::AlreadyExists if dir.is_dir() => Ok(()),
        std::io::ErrorKind::NotFound => std::fs::create_dir_all(dir),
        _ => Err(e),
    }) {
        Ok(()) => Ok(()),
        Err(source) => Err(CgroupError::Io {
            what: "create cgroup",
            path: dir.to_path_buf(),
            source,
        }),
    }
}

fn write(file: &Path, value: &str) -> Result<(), CgroupError> {
    use std::io::Write;
    open_control(file, libc::O_WRONLY)
        .and_then(|mut f| f.write_all(value.as_bytes()))
        .map_err(|source| CgroupError::Io {
            what: "write",
            path: file.to_path_buf(),
            source,
        })
}

/// A control file's text, or `None` when it cannot be read.
fn read_control(file: &Path) -> Option<String> {
    read_small_from(open_control(file, libc::O_RDONLY).ok()?)
}

/// Open a control file through a descriptor of its cgroup directory, kept
/// for the process's life: its name alone is then looked up, not the whole
/// `/sys/fs/cgroup/<controller>/user/<user>/<cgroup>/` path (about 3 µs
/// less for each of the twenty-odd files a judge run reads or writes). A
/// directory removed and made again since is opened afresh.
fn open_control(file: &Path, flags: libc::c_int) -> std::io::Result<std::fs::File> {
    use std::os::fd::FromRawFd;
    use std::os::unix::fs::OpenOptionsExt;
    use std::sync::Mutex;
    static DIRS: Mutex<Vec<(PathBuf, OwnedFd)>> = Mutex::new(Vec::new());
    let (Some(dir), Some(name)) = (file.parent(), file.file_name()) else {
        return Err(std::io::Error::from_raw_os_error(libc::EINVAL));
    };
    let name = super::sys::cstr(Path::new(name))?;
    let open_at = |fd: &OwnedFd| {
        // SAFETY: `fd` is an open directory and `name` a valid C string.
        let f = unsafe { libc::openat(fd.as_raw_fd(), name.as_ptr(), flags | libc::O_CLOEXEC) };
        if f < 0 {
            return Err(std::io::Error::last_os_error());
        }
        // SAFETY: a fresh descriptor that nothing else owns.
        Ok(std::fs::File::from(unsafe { OwnedFd::from_raw_fd(f) }))
    };
    let mut dirs = DIRS.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(i) = dirs.iter().position(|(d, _)| d == dir) {
        match open_at(&dirs[i].1) {
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {
                dirs.swap_remove(i);
            }
            other => return other,
        }
    }
    let fd: OwnedFd = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC)
        .open(dir)?
        .into();
    let f = open_at(&fd)?;
    dirs.push((dir.to_path_buf(), fd));
    Ok(f)
}

fn writable(dir: &Path) -> bool {
    // The trailing slash makes access(2) fail (ENOTDIR) for anything but a
    // directory: one call, no stat.
    let mut with_slash = dir.as_os_str().to_os_string();
    with_slash.push("/");
    let Ok(c) = super::sys::cstr(Path::new(&with_slash)) else {
        return false;
    };
    // SAFETY: a valid C string.
    unsafe { libc::access(c.as_ptr(), libc::W_OK | libc::X_OK) == 0 }
}

/// controller -> path of this process's cgroup ("" for the v2 hierarchy).
fn own_cgroups() -> BTreeMap<String, String> {
    let text = read_small(Path::new("/proc/self/cgroup")).unwrap_or_default();
    let mut out = BTreeMap::new();
    for line in text.lines() {
        let mut f = line.splitn(3, ':');
        let (_, ctrls, path) = (f.next(), f.next().unwrap_or(""), f.next().unwrap_or(""));
        for c in ctrls.split(',') {
            out.insert(c.to_string(), path.to_string());
        }
    }
    out
}

/// The login name the environment gives, `$LOGNAME` (or `$USER`) as
/// login(1), su and sudo set it: tried before the passwd file, which most
/// runs then never read. A wrong one costs nothing but that read: a
/// candidate is used only if this user may write to it, and its passwd
/// name is tried next. Not for root, to whom every directory is writable
/// (a `USER` left over from another account must not put root's
/// sandboxes under that user's cgroup).
fn login_from_env() -> Option<String> {
    // SAFETY: getuid cannot fail.
    if unsafe { libc::getuid() } == 0 {
        return None;
    }
    ["LOGNAME", "USER"].iter().find_map(|v| {
        std::env::var(v)
            .ok()
            .filter(|n| !n.is_empty() && n != "." && n != ".." && !n.contains('/'))
    })
}

/// The login name of this uid in the passwd file.
fn login_name() -> Option<String> {
    // SAFETY: getuid cannot fail.
    let uid = unsafe { libc::getuid() };
    let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
    passwd.lines().find_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        (f.len() > 2 && f[2].parse() == Ok(uid)).then(|| f[0].to_string())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    fn scratch(tag: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("hutch-cgroup-test-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn own(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(c, p)| (c.to_string(), p.to_string()))
            .collect()
    }

    #[test]
    fn only_a_writable_directory_is_a_candidate() {
        use std::os::unix::fs::PermissionsExt;
        let root = scratch("writable");
        let dir = root.join("dir");
        std::fs::create_dir_all(&dir).unwrap();
        assert!(writable(&dir));
        // A file anyone may write and execute is still no cgroup.
        let file = root.join("file");
        std::fs::write(&file, "").unwrap();
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o777)).unwrap();
        assert!(!writable(&file));
        assert!(!writable(&root.join("missing")));
    }

    #[test]
    fn v1_looks_up_the_login_name_only_when_nothing_else_is_writable() {
        let root = scratch("v1");
        for ctrl in ["memory", "pids"] {
            std::fs::create_dir_all(root.join(ctrl).join("jobs")).unwrap();
            std::fs::write(root.join(ctrl).join("cgroup.procs"), "").unwrap();
        }
        std::fs::create_dir_all(root.join("memory/user/alice")).unwrap();
        let calls = Cell::new(0);
        let login = || {
            calls.set(calls.get() + 1);
            Some("alice".to_string())
        };

        // $HUTCH_CGROUP_PARENT names writable cgroups of every controller
        // wanted: no passwd lookup.
        let mounted = |c: &str| c == "memory" || c == "pids";
        let d = Delegation::find_in(&root, &own(&[]), Some("/jobs".into()), None, login, mounted);
        let want: BTreeMap<String, PathBuf> = [
            ("memory".to_string(), root.join("memory/jobs")),
            ("pids".to_string(), root.join("pids/jobs")),
        ]
        .into();
        assert_eq!(d, Some(Delegation::V1 { parents: want }));
        assert_eq!(calls.get(), 0);

        // Only the controllers a run wants are looked for.
        let d = Delegation::find_in(&root, &own(&[]), Some("/jobs".into()), None, login, |c| {
            c == "pids"
        });
        let want: BTreeMap<String, PathBuf> = [("pids".to_string(), root.join("pids/jobs"))].into();
        assert_eq!(d, Some(Delegation::V1 { parents: want }));

        // Own cgroups at the hierarchy's root are never candidates; an
        // unwritable one falls through to user/<login>, looked up once.
        let d = Delegation::find_in(
            &root,
            &own(&[("memory", "/"), ("pids", "/elsewhere")]),
            Some("/missing".into()),
            None,
            login,
            |_| true,
        );
        let want: BTreeMap<String, PathBuf> =
            [("memory".to_string(), root.join("memory/user/alice"))].into();
        assert_eq!(d, Some(Delegation::V1 { parents: want }));
        assert_eq!(calls.get(), 1);

        // The environment's login name is tried first, without the passwd
        // lookup; one not writable falls through to the passwd name.
        let d = Delegation::find_in(&root, &own(&[]), None, Some("alice".into()), login, |c| {
            c == "memory"
        });
        let want: BTreeMap<String, PathBuf> =
            [("memory".to_string(), root.join("memory/user/alice"))].into();
        assert_eq!(
            d,
            Some(Delegation::V1 {
                parents: want.clone()
            })
        );
        assert_eq!(calls.get(), 1);
        let d = Delegation::find_in(&root, &own(&[]), None, Some("mallory".into()), login, |c| {
            c == "memory"
        });
        assert_eq!(d, Some(Delegation::V1 { parents: want }));
        assert_eq!(calls.get(), 2);

        // Nothing writable at all.
        assert_eq!(
            Delegation::find_in(&root, &own(&[]), None, None, || None, |_| true),
            None
        );
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn v2_needs_a_writable_parent_with_memory_enabled() {
        let root = scratch("v2");
        std::fs::write(root.join("cgroup.controllers"), "memory pids").unwrap();
        std::fs::create_dir_all(root.join("user.slice/me")).unwrap();
        let control = root.join("user.slice/me/cgroup.subtree_control");
        let no_login = || -> Option<String> { panic!("v2 never needs the login name") };
        let mine = own(&[("", "/user.slice/me")]);

        std::fs::write(&control, "cpu memory pids").unwrap();
        assert_eq!(
            Delegation::find_in(&root, &mine, None, None, no_login, |_| true),
            Some(Delegation::V2 {
                parent: root.join("user.slice/me")
            })
        );
        std::fs::write(&control, "cpu pids").unwrap();
        assert_eq!(
            Delegation::find_in(&root, &mine, None, None, no_login, |_| true),
            None
        );
        assert_eq!(
            Delegation::find_in(
                &root,
                &mine,
                Some("/missing".into()),
                None,
                no_login,
                |_| true
            ),
            None
        );
        std::fs::remove_dir_all(&root).unwrap();
    }
}
