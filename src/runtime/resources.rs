//! `linux.resources` and `linux.cgroupsPath`: the container's limits on
//! the engine's machinery (`sandbox::limits`, `sandbox::cgroup`), as
//! `hutch run --memory/--pids-limit/--cpus` has them.
//!
//! A container gets a cgroup of its own wherever this user has a delegated
//! subtree (cgroup v2, or v1 controllers chowned to the user), at
//! `cgroupsPath` when that lies in the subtree. Its memory, pids and CPU
//! limits go there; without a cgroup only a pids limit can still be held
//! (RLIMIT_NPROC, counted per uid in the container's own user namespace,
//! so only where the workload cannot change uid). There is no supervisor
//! in a runtime's container (create exits), so `hutch run`'s /proc
//! watchdog is no fallback for memory. Anything else asked is an error
//! naming its JSON path; zero values and empty objects, which Podman,
//! containerd and CRI-O send for "no limit", ask nothing.

use std::path::{Component, Path, PathBuf};

use serde::Deserialize;

use super::{RuntimeError, R};
use crate::sandbox::cgroup::{Cgroup, Delegation};
use crate::sandbox::limits::{Enforcement, Limits, Rlimit};

#[derive(Debug, Deserialize, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Resources {
    #[serde(default)]
    pub devices: Vec<DeviceRule>,
    #[serde(default)]
    pub memory: Option<Memory>,
    #[serde(default)]
    pub cpu: Option<Cpu>,
    #[serde(default)]
    pub pids: Option<Pids>,
    #[serde(default, rename = "blockIO")]
    pub block_io: Option<serde_json::Value>,
    #[serde(default)]
    pub hugepage_limits: Option<serde_json::Value>,
    #[serde(default)]
    pub network: Option<serde_json::Value>,
    #[serde(default)]
    pub rdma: Option<serde_json::Value>,
    #[serde(default)]
    pub unified: Option<serde_json::Value>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Memory {
    #[serde(default)]
    pub limit: Option<i64>,
    #[serde(default)]
    pub reservation: Option<i64>,
    /// Memory plus swap (cgroup v1's memsw), as Docker's --memory-swap.
    #[serde(default)]
    pub swap: Option<i64>,
    #[serde(default)]
    pub kernel: Option<i64>,
    #[serde(default, rename = "kernelTCP")]
    pub kernel_tcp: Option<i64>,
    #[serde(default)]
    pub swappiness: Option<u64>,
    #[serde(default, rename = "disableOOMKiller")]
    pub disable_oom_killer: Option<bool>,
    /// Always true on current kernels.
    #[serde(default)]
    pub use_hierarchy: Option<bool>,
    /// About `update`, which hutch-runtime does not offer.
    #[serde(default)]
    pub check_before_update: Option<bool>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Cpu {
    #[serde(default)]
    pub shares: Option<u64>,
    #[serde(default)]
    pub quota: Option<i64>,
    #[serde(default)]
    pub burst: Option<u64>,
    #[serde(default)]
    pub period: Option<u64>,
    #[serde(default)]
    pub realtime_runtime: Option<i64>,
    #[serde(default)]
    pub realtime_period: Option<u64>,
    #[serde(default)]
    pub cpus: Option<String>,
    #[serde(default)]
    pub mems: Option<String>,
    #[serde(default)]
    pub idle: Option<i64>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct Pids {
    #[serde(default)]
    pub limit: Option<i64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeviceRule {
    pub allow: bool,
    #[serde(rename = "type", default)]
    pub kind: Option<String>,
    #[serde(default)]
    pub major: Option<i64>,
    #[serde(default)]
    pub minor: Option<i64>,
    #[serde(default)]
    pub access: Option<String>,
}

/// What the container's process tree may be given, decided at create.
pub struct Plan {
    pub enforcement: Enforcement,
    /// Why a cgroupsPath was not used, for the log.
    pub notes: Vec<String>,
}

/// How the container's namespaces bear on what can be enforced without a
/// cgroup.
pub struct Context<'a> {
    /// hutch's id of the container (64 hex digits).
    pub id: &'a str,
    /// The container has a user namespace of its own.
    pub own_user_namespace: bool,
    /// Its processes could take another uid (more than one uid mapped and
    /// CAP_SETUID kept), escaping a per-uid count.
    pub can_change_uid: bool,
}

/// Plan `resources` and `cgroups_path` for one container: its cgroup made
/// (where it can be), every limit given a mechanism, or an error that
/// names the field.
pub fn plan(resources: Option<&Resources>, cgroups_path: Option<&str>, cx: &Context) -> R<Plan> {
    let empty = Resources::default();
    let r = resources.unwrap_or(&empty);
    check_devices(&r.devices)?;
    let limits = limits(r)?;
    let mut notes = Vec::new();
    let delegation = Delegation::find();
    let cgroup = match &delegation {
        Some(d) => {
            let name = match cgroups_path.filter(|p| !p.is_empty()) {
                None => PathBuf::from(format!("hutch-runtime-{}", &cx.id[..16])),
                Some(p) => match place(d, p)? {
                    Ok(rel) => rel,
                    Err(why) if limits.is_empty() => {
                        notes.push(format!("linux.cgroupsPath: {why}; the container's cgroup is made in the delegated subtree instead"));
                        PathBuf::from(format!("hutch-runtime-{}", &cx.id[..16]))
                    }
                    Err(why) => {
                        return Err(RuntimeError::config(
                            "linux.cgroupsPath",
                            format!(
                                "{why} (hint: a path relative to the delegated subtree {})",
                                d.describe()
                            ),
                        ))
                    }
                },
            };
            // An existing cgroup with processes is another container's (or
            // the caller's): its limits would be overwritten, and pause,
            // exec and delete would act on both.
            if let Some(dir) = occupied(d, &name) {
                return Err(RuntimeError::config(
                    "linux.cgroupsPath",
                    format!(
                        "the cgroup {} already holds processes; a container needs one of its own",
                        dir.display()
                    ),
                ));
            }
            Some(
                Cgroup::create_at(d, &name, &limits, &["freezer"])
                    .map_err(|e| RuntimeError::config("linux.cgroupsPath", e.to_string()))?,
            )
        }
        None => {
            if let Some(p) = cgroups_path.filter(|p| !p.is_empty()) {
                systemd_form("linux.cgroupsPath", p)?;
                notes.push(format!("linux.cgroupsPath {p:?}: no cgroup subtree is delegated to this user, so the container stays in the caller's cgroup (it asks no limit)"));
            }
            None
        }
    };
    let result = check_enforceable(&limits, cgroup.as_ref(), cx).and_then(|()| {
        Enforcement::plan_in(&limits, cgroup.clone())
            .map_err(|e| RuntimeError::config("linux.resources", e.to_string()))
    });
    match result {
        Ok(enforcement) => Ok(Plan { enforcement, notes }),
        Err(e) => {
            if let Some(cg) = &cgroup {
                cg.remove();
            }
            Err(e)
        }
    }
}

/// The OCI fields as the engine's [`Limits`]; zero (and runc's -1 for
/// "unlimited") asks nothing.
fn limits(r: &Resources) -> R<Limits> {
    let mut l = Limits::default();
    let positive = |field: &str, v: Option<i64>| -> R<Option<u64>> {
        match v {
            None | Some(0) | Some(-1) => Ok(None),
            Some(n) if n > 0 => Ok(Some(n as u64)),
            Some(n) => Err(RuntimeError::config(
                field,
                format!("{n} is neither a limit nor -1 (unlimited)"),
            )),
        }
    };
    let refuse_set = |field: &str, set: bool, why: &str| -> R<()> {
        if set {
            Err(RuntimeError::config(field, why.to_string()))
        } else {
            Ok(())
        }
    };
    if let Some(m) = &r.memory {
        l.memory = positive("linux.resources.memory.limit", m.limit)?;
        match m.swap {
            None | Some(0) => {}
            Some(-1) => l.memory_swap = Some(-1),
            Some(s) => {
                let s = positive("linux.resources.memory.swap", Some(s))?.unwrap_or(0);
                match l.memory {
                    Some(mem) if s >= mem => l.memory_swap = Some(s as i64),
                    Some(_) => {
                        return Err(RuntimeError::config(
                            "linux.resources.memory.swap",
                            "is memory plus swap, and is below memory.limit",
                        ))
                    }
                    None => {
                        return Err(RuntimeError::config(
                            "linux.resources.memory.swap",
                            "a memory-plus-swap limit needs memory.limit too",
                        ))
                    }
                }
            }
        }
        let nonzero = |v: Option<i64>| v.is_some_and(|v| v != 0 && v != -1);
        refuse_set(
            "linux.resources.memory.reservation",
            nonzero(m.reservation),
            "hutch-runtime sets no soft memory limit",
        )?;
        refuse_set(
            "linux.resources.memory.kernel",
            nonzero(m.kernel),
            "kernel memory limits are gone from current kernels",
        )?;
        refuse_set(
            "linux.resources.memory.kernelTCP",
            nonzero(m.kernel_tcp),
            "hutch-runtime sets no kernel TCP memory limit",
        )?;
        refuse_set(
            "linux.resources.memory.swappiness",
            m.swappiness.is_some_and(|s| s != 0),
            "hutch-runtime sets no swappiness",
        )?;
        refuse_set(
            "linux.resources.memory.disableOOMKiller",
            m.disable_oom_killer == Some(true),
            "the OOM killer is what holds the memory limit",
        )?;
    }
    if let Some(c) = &r.cpu {
        if c.shares.is_some_and(|s| s != 0) {
            l.cpu_shares = c.shares;
        }
        let period = c.period.filter(|p| *p != 0);
        if let Some(p) = period {
            if !(1000..=1_000_000).contains(&p) {
                return Err(RuntimeError::config(
                    "linux.resources.cpu.period",
                    format!("{p} is not between 1000 and 1000000 microseconds"),
                ));
            }
        }
        if let Some(q) = positive("linux.resources.cpu.quota", c.quota)? {
            let p = period.unwrap_or(100_000);
            l.cpus = Some(q as f64 / p as f64);
            l.cpu_period_us = Some(p);
        }
        let nonempty = |s: &Option<String>| s.as_deref().is_some_and(|s| !s.is_empty());
        for (field, set) in [
            ("burst", c.burst.is_some_and(|b| b != 0)),
            (
                "realtimeRuntime",
                c.realtime_runtime.is_some_and(|b| b != 0),
            ),
            ("realtimePeriod", c.realtime_period.is_some_and(|b| b != 0)),
            ("cpus", nonempty(&c.cpus)),
            ("mems", nonempty(&c.mems)),
            ("idle", c.idle.is_some_and(|b| b != 0)),
        ] {
            refuse_set(
                &format!("linux.resources.cpu.{field}"),
                set,
                "hutch-runtime enforces cpu.quota, cpu.period and cpu.shares only",
            )?;
        }
    }
    if let Some(p) = &r.pids {
        l.pids = positive("linux.resources.pids.limit", p.limit)?;
    }
    for (name, v) in [
        ("blockIO", &r.block_io),
        ("hugepageLimits", &r.hugepage_limits),
        ("network", &r.network),
        ("rdma", &r.rdma),
        ("unified", &r.unified),
    ] {
        if v.as_ref().is_some_and(|v| !asks_nothing(v)) {
            return Err(RuntimeError::config(
                format!("linux.resources.{name}"),
                "hutch-runtime enforces memory, pids and cpu resources only",
            ));
        }
    }
    Ok(l)
}

/// Refuse every limit the container's cgroup (if any) cannot hold, by its
/// JSON path. Only pids has a fallback: RLIMIT_NPROC.
fn check_enforceable(l: &Limits, cgroup: Option<&Cgroup>, cx: &Context) -> R<()> {
    let has = |what: &str| cgroup.is_some_and(|c| c.has(what));
    let hint = "needs a cgroup subtree delegated to this user, and there is none with that controller (hint: README: Limits)";
    if l.memory.is_some() && !has("memory") {
        return Err(RuntimeError::config(
            "linux.resources.memory.limit",
            format!("a container-wide memory limit {hint}"),
        ));
    }
    if l.memory_swap.is_some_and(|s| s > 0) && !has("memory.swap") {
        return Err(RuntimeError::config(
            "linux.resources.memory.swap",
            "needs swap accounting in the delegated memory cgroup, and it is off",
        ));
    }
    if l.cpus.is_some() && !has("cpu") {
        return Err(RuntimeError::config(
            "linux.resources.cpu.quota",
            format!("CPU bandwidth {hint}"),
        ));
    }
    if l.cpu_shares.is_some() && !has("cpu") {
        return Err(RuntimeError::config(
            "linux.resources.cpu.shares",
            format!("a CPU weight {hint}"),
        ));
    }
    if l.pids.is_some() && !has("pids") && (!cx.own_user_namespace || cx.can_change_uid) {
        return Err(RuntimeError::config(
            "linux.resources.pids.limit",
            format!(
                "{hint}; RLIMIT_NPROC would not hold it either: {}",
                if cx.own_user_namespace {
                    "the workload keeps CAP_SETUID over more than one uid"
                } else {
                    "without a user namespace of its own it counts every process of this user"
                }
            ),
        ));
    }
    Ok(())
}

/// The rlimits the plan set for the container (RLIMIT_NPROC for a pids
/// limit without a pids cgroup), which every process of it gets, merged
/// into a process's own by taking the lower.
pub fn merge_rlimits(process: Vec<Rlimit>, enforcement: &Enforcement) -> Vec<Rlimit> {
    let mut out = process;
    let pids_by_rlimit = enforcement
        .enforced_by
        .get("pids")
        .is_some_and(|m| m == "rlimit");
    let Some(pids) = enforcement.limits.pids.filter(|_| pids_by_rlimit) else {
        return out;
    };
    match out.iter_mut().find(|r| r.resource == libc::RLIMIT_NPROC) {
        Some(r) => {
            r.soft = r.soft.min(pids);
            r.hard = r.hard.min(pids);
        }
        None => out.push(Rlimit {
            resource: libc::RLIMIT_NPROC,
            soft: pids,
            hard: pids,
        }),
    }
    out
}

/// `Ok(rel)`: where under the delegated parent `path` puts the cgroup;
/// `Err(why)`: it lies outside the subtree. Malformed paths are errors.
fn place(d: &Delegation, path: &str) -> R<Result<PathBuf, String>> {
    const FIELD: &str = "linux.cgroupsPath";
    systemd_form(FIELD, path)?;
    let p = Path::new(path);
    if p.components()
        .any(|c| matches!(c, Component::ParentDir | Component::CurDir))
    {
        return Err(RuntimeError::config(
            FIELD,
            format!("{path:?} has . or .. in it"),
        ));
    }
    if p.is_relative() {
        return Ok(Ok(p.to_path_buf()));
    }
    // Absolute: from each hierarchy's root, and inside the subtree.
    let parents: Vec<(PathBuf, PathBuf)> = match d {
        Delegation::V2 { parent } => vec![(PathBuf::from("/sys/fs/cgroup"), parent.clone())],
        Delegation::V1 { parents } => parents
            .iter()
            .map(|(c, p)| (Path::new("/sys/fs/cgroup").join(c), p.clone()))
            .collect(),
    };
    let mut rel: Option<PathBuf> = None;
    for (mount, parent) in parents {
        let full = mount.join(p.strip_prefix("/").unwrap_or(p));
        let r = match full.strip_prefix(&parent) {
            Ok(r) if !r.as_os_str().is_empty() => r.to_path_buf(),
            _ => {
                return Ok(Err(format!(
                    "{path} is not inside this user's delegated cgroup subtree"
                )))
            }
        };
        if rel.as_ref().is_some_and(|x| x != &r) {
            return Ok(Err(format!(
                "{path} lies at different places in the delegated v1 controllers"
            )));
        }
        rel = Some(r);
    }
    Ok(rel.ok_or_else(|| "no delegated controller".to_string()))
}

/// A directory of the cgroup at `rel` under the delegated parents that
/// exists and holds a process.
fn occupied(d: &Delegation, rel: &Path) -> Option<PathBuf> {
    let parents: Vec<&PathBuf> = match d {
        Delegation::V2 { parent } => vec![parent],
        Delegation::V1 { parents } => parents.values().collect(),
    };
    parents.into_iter().map(|p| p.join(rel)).find(|dir| {
        std::fs::read_to_string(dir.join("cgroup.procs"))
            .is_ok_and(|procs| !procs.trim().is_empty())
    })
}

/// systemd's `slice:prefix:name` form needs --systemd-cgroup, which is
/// refused before any config is read.
fn systemd_form(field: &str, path: &str) -> R<()> {
    if !path.starts_with('/') && path.split(':').count() == 3 {
        return Err(RuntimeError::config(
            field,
            format!("{path:?} is systemd's slice:prefix:name form, which needs --systemd-cgroup (hint: use the cgroupfs cgroup manager)"),
        ));
    }
    Ok(())
}

/// Zero, false, null, empty arrays and objects of those: "no limit".
fn asks_nothing(v: &serde_json::Value) -> bool {
    match v {
        serde_json::Value::Null => true,
        serde_json::Value::Bool(b) => !b,
        serde_json::Value::Number(n) => n.as_f64() == Some(0.0),
        serde_json::Value::String(s) => s.is_empty(),
        serde_json::Value::Object(m) => m.values().all(asks_nothing),
        serde_json::Value::Array(a) => a.iter().all(asks_nothing),
    }
}

/// The character devices every sandbox's /dev has: (major, minor, name);
/// minor -1 is any (the pts).
const SANDBOX_DEVICES: &[(i64, i64, &str)] = &[
    (1, 3, "/dev/null"),
    (1, 5, "/dev/zero"),
    (1, 7, "/dev/full"),
    (1, 8, "/dev/random"),
    (1, 9, "/dev/urandom"),
    (5, 0, "/dev/tty"),
    (5, 2, "/dev/ptmx"),
    (136, -1, "/dev/pts/*"),
];

/// Device rules: the sandbox has its own /dev with the devices above and
/// no others, and cannot make device nodes, so any rule is held except one
/// that takes read or write access to one of those away (runc applies the
/// rules in order, the last match deciding).
fn check_devices(rules: &[DeviceRule]) -> R<()> {
    for (i, r) in rules.iter().enumerate() {
        let field = format!("linux.resources.devices[{i}]");
        if !matches!(r.kind.as_deref(), None | Some("a" | "c" | "b")) {
            return Err(RuntimeError::config(
                format!("{field}.type"),
                "not a, c or b",
            ));
        }
        if r.access
            .as_deref()
            .is_some_and(|a| !a.chars().all(|c| "rwm".contains(c)))
        {
            return Err(RuntimeError::config(
                format!("{field}.access"),
                "not made of r, w and m",
            ));
        }
    }
    for (major, minor, name) in SANDBOX_DEVICES {
        let mut read = true;
        let mut write = true;
        let mut decided_by = None;
        for (i, r) in rules.iter().enumerate() {
            let matches_kind = matches!(r.kind.as_deref(), None | Some("a" | "c"));
            let any = |v: Option<i64>| v.is_none() || v == Some(-1);
            let matches = matches_kind
                && (any(r.major) || r.major == Some(*major))
                && (any(r.minor) || r.minor == Some(*minor));
            if !matches {
                continue;
            }
            let access = r.access.as_deref().unwrap_or("rwm");
            if access.contains('r') {
                read = r.allow;
            }
            if access.contains('w') {
                write = r.allow;
            }
            decided_by = Some(i);
        }
        if !(read && write) {
            return Err(RuntimeError::config(
                format!("linux.resources.devices[{}]", decided_by.unwrap_or(0)),
                format!("denies {name}, which every sandbox's /dev has (hint: allow it, as runc's default rules do)"),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn res(v: serde_json::Value) -> Resources {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn zero_and_empty_ask_nothing() {
        let r = res(serde_json::json!({
            "memory": {"limit": 0, "swap": 0, "swappiness": 0},
            "cpu": {"shares": 0, "quota": 0, "period": 0, "cpus": "", "mems": ""},
            "pids": {"limit": 0},
            "blockIO": {"weight": 0},
            "devices": [{"allow": false, "access": "rwm"},
                {"allow": true, "type": "c", "major": 1, "minor": 3, "access": "rwm"}]
        }));
        assert!(limits(&r).unwrap().is_empty());
        assert!(limits(&res(serde_json::json!({"pids": {"limit": -1}})))
            .unwrap()
            .is_empty());
    }

    #[test]
    fn oci_fields_become_limits() {
        let r = res(serde_json::json!({
            "memory": {"limit": 1 << 25, "swap": 1 << 25},
            "cpu": {"shares": 512, "quota": 50000, "period": 200000},
            "pids": {"limit": 16}
        }));
        let l = limits(&r).unwrap();
        assert_eq!(l.memory, Some(1 << 25));
        assert_eq!(l.memory_swap, Some(1 << 25));
        assert_eq!(l.pids, Some(16));
        assert_eq!(l.cpus, Some(0.25));
        assert_eq!(l.cpu_period_us, Some(200_000));
        assert_eq!(l.cpu_shares, Some(512));
    }

    #[test]
    fn what_cannot_be_held_is_named() {
        for (v, field) in [
            (
                serde_json::json!({"memory": {"limit": 100, "swap": 50}}),
                "linux.resources.memory.swap",
            ),
            (
                serde_json::json!({"memory": {"disableOOMKiller": true}}),
                "linux.resources.memory.disableOOMKiller",
            ),
            (
                serde_json::json!({"cpu": {"cpus": "0-1"}}),
                "linux.resources.cpu.cpus",
            ),
            (
                serde_json::json!({"blockIO": {"weight": 10}}),
                "linux.resources.blockIO",
            ),
            (
                serde_json::json!({"pids": {"limit": -5}}),
                "linux.resources.pids.limit",
            ),
        ] {
            let e = limits(&res(v)).unwrap_err().to_string();
            assert!(e.starts_with(field), "{e}");
        }
    }

    #[test]
    fn device_rules_that_take_the_sandboxes_devices_away_are_refused() {
        let rule = |v: serde_json::Value| -> DeviceRule { serde_json::from_value(v).unwrap() };
        // containerd's and runc's default: deny all, allow the usual ones.
        let mut rules = vec![rule(serde_json::json!({"allow": false, "access": "rwm"}))];
        for (maj, min) in [
            (1, 3),
            (1, 5),
            (1, 7),
            (1, 8),
            (1, 9),
            (5, 0),
            (5, 2),
            (136, -1),
        ] {
            rules.push(rule(serde_json::json!({"allow": true, "type": "c", "major": maj, "minor": min, "access": "rwm"})));
        }
        rules.push(rule(serde_json::json!({"allow": true, "type": "c", "major": 10, "minor": 200, "access": "rwm"})));
        check_devices(&rules).unwrap();
        // Deny all alone would leave /dev/null in a sandbox that was told
        // it has none.
        let e = check_devices(&rules[..1]).unwrap_err().to_string();
        assert!(e.starts_with("linux.resources.devices[0]"), "{e}");
        // mknod denied only: held (a sandbox can make no device node).
        check_devices(&[rule(serde_json::json!({"allow": false, "access": "m"}))]).unwrap();
    }

    #[test]
    fn cgroups_paths_stay_in_the_subtree() {
        let d = Delegation::V1 {
            parents: [
                (
                    "memory".to_string(),
                    PathBuf::from("/sys/fs/cgroup/memory/user/u"),
                ),
                (
                    "pids".to_string(),
                    PathBuf::from("/sys/fs/cgroup/pids/user/u"),
                ),
            ]
            .into(),
        };
        assert_eq!(place(&d, "a/b").unwrap().unwrap(), PathBuf::from("a/b"));
        assert_eq!(
            place(&d, "/user/u/c1").unwrap().unwrap(),
            PathBuf::from("c1")
        );
        assert!(place(&d, "/k8s.io/c1").unwrap().is_err());
        assert!(place(&d, "/user/u").unwrap().is_err());
        assert!(place(&d, "a/../../b").is_err());
        assert!(place(&d, "system.slice:crio:c1").is_err());
    }

    #[test]
    fn a_cgroup_with_processes_is_not_taken() {
        let root = std::env::temp_dir().join(format!("hutch-occupied-{}", std::process::id()));
        let d = Delegation::V1 {
            parents: [
                ("memory".to_string(), root.join("memory")),
                ("pids".to_string(), root.join("pids")),
            ]
            .into(),
        };
        let rel = Path::new("c1");
        assert_eq!(occupied(&d, rel), None, "not made yet");
        for ctrl in ["memory", "pids"] {
            std::fs::create_dir_all(root.join(ctrl).join(rel)).unwrap();
            std::fs::write(root.join(ctrl).join(rel).join("cgroup.procs"), "").unwrap();
        }
        assert_eq!(occupied(&d, rel), None, "empty");
        std::fs::write(root.join("pids/c1/cgroup.procs"), "4242\n").unwrap();
        assert_eq!(occupied(&d, rel), Some(root.join("pids/c1")));
        std::fs::remove_dir_all(root).unwrap();
    }
}
