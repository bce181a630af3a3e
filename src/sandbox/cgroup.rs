//! A cgroup per sandbox, in a subtree an administrator delegated to the
//! user: cgroup v2 (a writable cgroup with controllers enabled), or cgroup
//! v1 controllers whose directory was chowned to the user (as LXC's pam_cgfs
//! does: `/sys/fs/cgroup/<controller>/user/<name>`). No daemon, no root.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::limits::Limits;

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
/// The v1 controllers hutch uses: limits and accounting.
const V1_CONTROLLERS: &[&str] = &["memory", "pids", "cpu", "cpuacct"];

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
        let own = own_cgroups();
        let env = std::env::var("HUTCH_CGROUP_PARENT").ok();
        if Path::new(ROOT).join("cgroup.controllers").exists() {
            let rel = env.or_else(|| own.get("").cloned())?;
            let parent = Path::new(ROOT).join(rel.trim_start_matches('/'));
            let enabled = std::fs::read_to_string(parent.join("cgroup.subtree_control")).ok()?;
            return (writable(&parent) && enabled.contains("memory"))
                .then_some(Delegation::V2 { parent });
        }
        let name = login_name();
        let mut parents = BTreeMap::new();
        for ctrl in V1_CONTROLLERS {
            let mount = Path::new(ROOT).join(ctrl);
            if !mount.join("cgroup.procs").exists() {
                continue;
            }
            let mut candidates = Vec::new();
            if let Some(e) = &env {
                candidates.push(mount.join(e.trim_start_matches('/')));
            }
            if let Some(o) = own.get(*ctrl) {
                candidates.push(mount.join(o.trim_start_matches('/')));
            }
            if let Some(n) = &name {
                candidates.push(mount.join("user").join(n));
            }
            if let Some(p) = candidates.into_iter().find(|p| p != &mount && writable(p)) {
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
}

/// What the cgroup measured.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CgroupStats {
    pub cpu_ns: Option<u64>,
    pub peak_memory: Option<u64>,
    pub oom_kills: u64,
    pub pids_max_hits: u64,
}

impl Cgroup {
    pub fn create(d: &Delegation, id: &str, limits: &Limits) -> Result<Cgroup, CgroupError> {
        let name = format!("hutch-{}", &id[..id.len().min(16)]);
        let mut cg = Cgroup {
            v2: matches!(d, Delegation::V2 { .. }),
            dirs: BTreeMap::new(),
            settings: Vec::new(),
        };
        let mut settings: Vec<(PathBuf, String)> = Vec::new();
        let mut set = |file: PathBuf, value: String| settings.push((file, value));
        match d {
            Delegation::V2 { parent } => {
                let dir = parent.join(&name);
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
                    set(
                        dir.join("cpu.max"),
                        format!("{} 100000", (c * 100_000.0) as u64),
                    );
                }
            }
            Delegation::V1 { parents } => {
                // Only the controllers this run needs: each is a directory
                // to make and remove.
                let wanted = |c: &str| match c {
                    "memory" => limits.memory.is_some() || limits.memory_swap.is_some(),
                    "pids" => limits.pids.is_some(),
                    "cpu" => limits.cpus.is_some(),
                    "cpuacct" => limits.cpu_time_ms.is_some(),
                    _ => false,
                };
                for (ctrl, parent) in parents.iter().filter(|(c, _)| wanted(c)) {
                    let dir = parent.join(&name);
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
                    set(dir.join("cpu.cfs_period_us"), "100000".into());
                    set(
                        dir.join("cpu.cfs_quota_us"),
                        ((c * 100_000.0) as u64).to_string(),
                    );
                }
            }
        }
        cg.settings = settings;
        cg.make()?;
        Ok(cg)
    }

    /// Make the directories and write the limits: at creation, and again
    /// on each start of a kept container (the last run removed them).
    pub fn make(&self) -> Result<(), CgroupError> {
        for dir in self.dirs.values() {
            mkdir(dir)?;
        }
        for (file, value) in &self.settings {
            write(file, value)?;
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
                c => {
                    dir.join(format!("{c}.max")).exists()
                        || (c == "cpu" && dir.join("cpu.max").exists())
                }
            };
        }
        match what {
            "memory.swap" => self
                .dirs
                .get("memory")
                .is_some_and(|d| d.join("memory.memsw.limit_in_bytes").exists()),
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
        std::fs::read_to_string(dir.join(file)).ok()
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

    pub fn stats(&self) -> CgroupStats {
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

    /// Remove the (now empty) cgroup directories.
    pub fn remove(&self) {
        for dir in self.dirs.values() {
            let _ = std::fs::remove_dir(dir);
        }
    }
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

fn mkdir(dir: &Path) -> Result<(), CgroupError> {
    match std::fs::create_dir(dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(source) => Err(CgroupError::Io {
            what: "create cgroup",
            path: dir.to_path_buf(),
            source,
        }),
    }
}

fn write(file: &Path, value: &str) -> Result<(), CgroupError> {
    std::fs::write(file, value).map_err(|source| CgroupError::Io {
        what: "write",
        path: file.to_path_buf(),
        source,
    })
}

fn writable(dir: &Path) -> bool {
    let Ok(c) = super::sys::cstr(dir) else {
        return false;
    };
    // SAFETY: a valid C string.
    dir.is_dir() && unsafe { libc::access(c.as_ptr(), libc::W_OK | libc::X_OK) } == 0
}

/// controller -> path of this process's cgroup ("" for the v2 hierarchy).
fn own_cgroups() -> BTreeMap<String, String> {
    let text = std::fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
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

fn login_name() -> Option<String> {
    // SAFETY: getuid cannot fail.
    let uid = unsafe { libc::getuid() };
    let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
    passwd.lines().find_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        (f.len() > 2 && f[2].parse() == Ok(uid)).then(|| f[0].to_string())
    })
}
