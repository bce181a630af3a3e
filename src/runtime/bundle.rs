//! A bundle's `config.json` (the OCI runtime spec) turned into the engine's
//! [`Spec`].
//!
//! The serde types below list every field hutch honours and deny the rest,
//! so a field hutch cannot honour is an error naming its JSON path
//! (`linux.intelRdt: unknown field`), never silently skipped. Fields that
//! parse but whose value hutch cannot honour are refused the same way
//! (`linux.resources.memory: ...`). Where hutch is stricter than asked it
//! says so in the README (no_new_privs is always set; binds are always
//! nosuid and nodev).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::hooks::Hook;
use super::resources::{self, Resources};
use super::{RuntimeError, POLICY_ANNOTATION, R};
use crate::net::NetworkSpec;
use crate::policy::{Choice, Policy, SeccompChoice};
use crate::sandbox::idmap::{IdMapping, IdRange};
use crate::sandbox::limits::{Enforcement, Rlimit};
use crate::sandbox::spec::{
    Advanced, Mount, Namespace, OverlayDriver, Process as SpecProcess, RootSource, UpperDir,
    User as SpecUser,
};
use crate::sandbox::Spec;

/// config.json files larger than this are refused before parsing.
pub const MAX_CONFIG_BYTES: u64 = 4 << 20;

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Config {
    pub oci_version: String,
    pub process: Option<Process>,
    pub root: Option<Root>,
    #[serde(default)]
    pub hostname: Option<String>,
    #[serde(default)]
    pub domainname: Option<String>,
    #[serde(default)]
    pub mounts: Vec<MountEntry>,
    #[serde(default)]
    pub hooks: Option<Hooks>,
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
    #[serde(default)]
    pub linux: Option<Linux>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Process {
    #[serde(default)]
    pub terminal: bool,
    /// The pty's size; the client (conmon) sets it on the master.
    #[serde(default)]
    pub console_size: Option<serde_json::Value>,
    pub user: User,
    pub args: Vec<String>,
    #[serde(default)]
    pub env: Vec<String>,
    pub cwd: String,
    #[serde(default)]
    pub capabilities: Option<Capabilities>,
    #[serde(default)]
    pub rlimits: Vec<RlimitEntry>,
    /// hutch always sets no_new_privs.
    #[serde(default)]
    pub no_new_privileges: bool,
    #[serde(default)]
    pub apparmor_profile: Option<String>,
    #[serde(default)]
    pub oom_score_adj: Option<i32>,
    #[serde(default)]
    pub selinux_label: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct User {
    pub uid: u32,
    pub gid: u32,
    #[serde(default)]
    pub umask: Option<u32>,
    #[serde(default)]
    pub additional_gids: Vec<u32>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Capabilities {
    #[serde(default)]
    pub bounding: Vec<String>,
    #[serde(default)]
    pub effective: Vec<String>,
    #[serde(default)]
    pub inheritable: Vec<String>,
    #[serde(default)]
    pub permitted: Vec<String>,
    #[serde(default)]
    pub ambient: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RlimitEntry {
    #[serde(rename = "type")]
    pub kind: String,
    pub soft: u64,
    pub hard: u64,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Root {
    pub path: PathBuf,
    #[serde(default)]
    pub readonly: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MountEntry {
    pub destination: PathBuf,
    #[serde(rename = "type", default)]
    pub kind: Option<String>,
    #[serde(default)]
    pub source: Option<PathBuf>,
    #[serde(default)]
    pub options: Vec<String>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Hooks {
    #[serde(default)]
    pub prestart: Vec<Hook>,
    #[serde(default)]
    pub create_runtime: Vec<Hook>,
    #[serde(default)]
    pub create_container: Vec<Hook>,
    #[serde(default)]
    pub start_container: Vec<Hook>,
    #[serde(default)]
    pub poststart: Vec<Hook>,
    #[serde(default)]
    pub poststop: Vec<Hook>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Linux {
    #[serde(default)]
    pub namespaces: Vec<NamespaceEntry>,
    #[serde(default)]
    pub uid_mappings: Vec<IdMap>,
    #[serde(default)]
    pub gid_mappings: Vec<IdMap>,
    #[serde(default)]
    pub sysctl: BTreeMap<String, String>,
    #[serde(default)]
    pub resources: Option<Resources>,
    #[serde(default)]
    pub cgroups_path: Option<String>,
    #[serde(default)]
    pub seccomp: Option<serde_json::Value>,
    #[serde(default)]
    pub masked_paths: Vec<PathBuf>,
    #[serde(default)]
    pub readonly_paths: Vec<PathBuf>,
    #[serde(default)]
    pub mount_label: Option<String>,
    #[serde(default)]
    pub rootfs_propagation: Option<String>,
    #[serde(default)]
    pub devices: Vec<Device>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NamespaceEntry {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub path: Option<PathBuf>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct IdMap {
    #[serde(rename = "containerID")]
    pub container_id: u32,
    #[serde(rename = "hostID")]
    pub host_id: u32,
    pub size: u32,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Device {
    pub path: PathBuf,
}

/// Devices every sandbox has: a config may list them, no others.
const DEFAULT_DEVICES: &[&str] = &[
    "/dev/null",
    "/dev/zero",
    "/dev/full",
    "/dev/random",
    "/dev/urandom",
    "/dev/tty",
];

/// Read and parse `config.json` in `bundle`.
pub fn read(bundle: &Path) -> R<Config> {
    let file = bundle.join("config.json");
    let bad = |reason: String| RuntimeError::Read {
        file: file.clone(),
        reason,
    };
    let meta = std::fs::metadata(&file).map_err(|e| bad(e.to_string()))?;
    if !meta.is_file() || meta.len() > MAX_CONFIG_BYTES {
        return Err(bad(format!(
            "not a regular file of at most {MAX_CONFIG_BYTES} bytes"
        )));
    }
    let text = std::fs::read(&file).map_err(|e| bad(e.to_string()))?;
    parse(&text)
}

/// Parse config.json text; an error names the JSON path of the field.
pub fn parse(text: &[u8]) -> R<Config> {
    let de = &mut serde_json::Deserializer::from_slice(text);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner().to_string();
        let reason = if inner.starts_with("unknown field") {
            format!("{inner} (hutch-runtime cannot honour it, so it refuses the config rather than skip it)")
        } else {
            inner
        };
        RuntimeError::config(if path == "." { "config.json".into() } else { path }, reason)
    })
}

/// Where a converted Spec keeps its host-side files.
pub struct Places {
    /// The bundle directory (config.json's `root.path` is relative to it).
    pub bundle: PathBuf,
    /// The container's private state directory.
    pub state_dir: PathBuf,
}

/// What the conversion decided besides the Spec, for the caller's log.
pub struct Converted {
    pub spec: Spec,
    pub notes: Vec<String>,
}

/// Turn a parsed config into a Spec for container `id`.
pub fn to_spec(cfg: &Config, id: &str, places: &Places) -> R<Converted> {
    let mut notes = Vec::new();
    if !cfg.oci_version.starts_with("1.") {
        return Err(RuntimeError::config(
            "ociVersion",
            format!("{:?} is not a 1.x version", cfg.oci_version),
        ));
    }
    let process = cfg
        .process
        .as_ref()
        .ok_or_else(|| RuntimeError::config("process", "missing"))?;
    let root = cfg
        .root
        .as_ref()
        .ok_or_else(|| RuntimeError::config("root", "missing"))?;
    let empty_linux = Linux::default();
    let linux = cfg.linux.as_ref().unwrap_or(&empty_linux);
    refuse_unsupported(cfg)?;
    refuse_unsupported_linux(linux)?;

    let mut adv = Advanced {
        workload_is_pid1: true,
        outlive_caller: true,
        no_etc_files: true,
        masked_paths: absolute_paths("linux.maskedPaths", &linux.masked_paths)?,
        readonly_paths: absolute_paths("linux.readonlyPaths", &linux.readonly_paths)?,
        ..Advanced::default()
    };
    let network = namespaces(linux, &mut adv)?;
    let idmap = id_mapping(linux, &adv, process)?;
    adv.sysctl = sysctls(linux, &adv)?;

    let hostname = cfg.hostname.clone().unwrap_or_default();
    if !hostname.is_empty() && !adv.creates(Namespace::Uts) {
        return Err(RuntimeError::config(
            "hostname",
            "setting a hostname needs a uts namespace of the container's own (linux.namespaces)",
        ));
    }

    let root_path = if root.path.is_absolute() {
        root.path.clone()
    } else {
        places.bundle.join(&root.path)
    };
    let root_path = std::fs::canonicalize(&root_path)
        .map_err(|e| RuntimeError::config("root.path", format!("{}: {e}", root_path.display())))?;
    if !root_path.is_dir() {
        return Err(RuntimeError::config(
            "root.path",
            format!("{} is not a directory", root_path.display()),
        ));
    }

    let mut mounts = Vec::new();
    for (i, m) in cfg.mounts.iter().enumerate() {
        if let Some(m) = mount(&format!("mounts[{i}]"), m, &places.bundle)? {
            mounts.push(m);
        }
    }

    let (policy, extra) = policy(cfg, linux, places, &mut notes)?;
    adv.extra_seccomp = extra;

    let mut spec = Spec {
        id: spec_id(id),
        root: RootSource::Path(root_path),
        upper: UpperDir::Ephemeral,
        overlay: OverlayDriver::Auto,
        readonly_root: root.readonly,
        hostname,
        mounts,
        idmap,
        process: SpecProcess {
            args: vec![],
            env: vec![],
            cwd: PathBuf::from("/"),
            user: SpecUser {
                uid: 0,
                gid: 0,
                additional_gids: vec![],
            },
            terminal: false,
            stdin: true,
            stop_signal: libc::SIGTERM,
        },
        policy,
        network,
        limits: Enforcement::default(),
        scratch: places.state_dir.join("mnt"),
        advanced: adv,
    };
    apply_process(&mut spec, process)?;
    // Last: this may make the container's cgroup.
    let plan = resources::plan(
        linux.resources.as_ref(),
        linux.cgroups_path.as_deref(),
        &resources::Context {
            id: &spec.id,
            own_user_namespace: spec.advanced.creates(Namespace::User),
            can_change_uid: spec.advanced.capabilities.contains(&CAP_SETUID)
                && spec
                    .idmap
                    .uid_map
                    .iter()
                    .map(|r| u64::from(r.count))
                    .sum::<u64>()
                    > 1,
        },
    )?;
    notes.extend(plan.notes);
    let rlimits = std::mem::take(&mut spec.limits.rlimits);
    spec.limits = plan.enforcement;
    spec.limits.rlimits = resources::merge_rlimits(rlimits, &spec.limits);
    Ok(Converted { spec, notes })
}

/// capability(7) number of CAP_SETUID.
const CAP_SETUID: u32 = 7;

/// Make `p` the Spec's process: config.json's `process`, or `exec`'s
/// `--process` file.
pub fn apply_process(spec: &mut Spec, p: &Process) -> R<()> {
    refuse_unsupported_process(p)?;
    if p.args.is_empty() {
        return Err(RuntimeError::config("process.args", "empty"));
    }
    if !p.cwd.starts_with('/') {
        return Err(RuntimeError::config(
            "process.cwd",
            format!("{:?} is not absolute", p.cwd),
        ));
    }
    let rlimits = p
        .rlimits
        .iter()
        .enumerate()
        .map(|(i, r)| rlimit(&format!("process.rlimits[{i}]"), r))
        .collect::<R<Vec<_>>>()?;
    // The container's own limits (a pids limit held by RLIMIT_NPROC) bind
    // every process of it, exec'd ones too.
    spec.limits.rlimits = resources::merge_rlimits(rlimits, &spec.limits);
    spec.advanced.capabilities = capabilities(p)?;
    spec.advanced.umask = p.user.umask;
    spec.advanced.oom_score_adj = p.oom_score_adj;
    spec.process.args = p.args.clone();
    spec.process.env = p.env.clone();
    spec.process.cwd = PathBuf::from(&p.cwd);
    spec.process.user = SpecUser {
        uid: p.user.uid,
        gid: p.user.gid,
        additional_gids: p.user.additional_gids.clone(),
    };
    spec.process.terminal = p.terminal;
    Ok(())
}

/// The engine's ids are 64 hex digits (Podman's and containerd's are);
/// other ids are hashed into one.
fn spec_id(id: &str) -> String {
    if id.len() == 64 && id.bytes().all(|b| b.is_ascii_hexdigit()) {
        return id.to_ascii_lowercase();
    }
    use sha2::Digest;
    let digest = sha2::Sha256::digest(id.as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

fn refuse_unsupported(cfg: &Config) -> R<()> {
    let nonempty = |s: &Option<String>| s.as_deref().is_some_and(|s| !s.is_empty());
    if nonempty(&cfg.domainname) {
        return Err(RuntimeError::config(
            "domainname",
            "hutch-runtime does not set the NIS domain name",
        ));
    }
    if let Some(h) = &cfg.hooks {
        for (name, list) in [
            ("createContainer", &h.create_container),
            ("startContainer", &h.start_container),
        ] {
            if !list.is_empty() {
                return Err(RuntimeError::config(
                    format!("hooks.{name}"),
                    "hutch-runtime does not run hooks inside the container (createRuntime, prestart, poststart and poststop run)",
                ));
            }
        }
    }
    Ok(())
}

fn refuse_unsupported_process(process: &Process) -> R<()> {
    let nonempty = |s: &Option<String>| s.as_deref().is_some_and(|s| !s.is_empty());
    if nonempty(&process.apparmor_profile) {
        return Err(RuntimeError::config(
            "process.apparmorProfile",
            "hutch-runtime applies no AppArmor profile (hint: hutch's Landlock profiles through the run.hutch.policy annotation)",
        ));
    }
    if nonempty(&process.selinux_label) {
        return Err(RuntimeError::config(
            "process.selinuxLabel",
            "hutch-runtime applies no SELinux label",
        ));
    }
    Ok(())
}

fn refuse_unsupported_linux(linux: &Linux) -> R<()> {
    let nonempty = |s: &Option<String>| s.as_deref().is_some_and(|s| !s.is_empty());
    if nonempty(&linux.mount_label) {
        return Err(RuntimeError::config(
            "linux.mountLabel",
            "hutch-runtime applies no SELinux label",
        ));
    }
    if let Some(p) = linux.rootfs_propagation.as_deref() {
        if !matches!(p, "" | "private" | "rprivate") {
            return Err(RuntimeError::config(
                "linux.rootfsPropagation",
                format!("{p:?}: the sandbox's mounts are always private"),
            ));
        }
    }
    for (i, d) in linux.devices.iter().enumerate() {
        if !DEFAULT_DEVICES.iter().any(|p| Path::new(p) == d.path) {
            return Err(RuntimeError::config(
                format!("linux.devices[{i}]"),
                format!(
                    "{}: a sandbox has only {} (and its own /dev/pts)",
                    d.path.display(),
                    DEFAULT_DEVICES.join(", ")
                ),
            ));
        }
    }
    Ok(())
}

fn absolute_paths(field: &str, paths: &[PathBuf]) -> R<Vec<PathBuf>> {
    for (i, p) in paths.iter().enumerate() {
        if !p.is_absolute() {
            return Err(RuntimeError::config(
                format!("{field}[{i}]"),
                format!("{} is not absolute", p.display()),
            ));
        }
    }
    Ok(paths.to_vec())
}

fn namespace_kind(field: &str, name: &str) -> R<Namespace> {
    Ok(match name {
        "user" => Namespace::User,
        "mount" => Namespace::Mount,
        "pid" => Namespace::Pid,
        "ipc" => Namespace::Ipc,
        "uts" => Namespace::Uts,
        "network" => Namespace::Network,
        "cgroup" => Namespace::Cgroup,
        other => {
            return Err(RuntimeError::config(
                field,
                format!("namespace type {other:?} is not supported"),
            ))
        }
    })
}

/// linux.namespaces into shared, joined and new namespaces; returns the
/// network the sandbox gets.
fn namespaces(linux: &Linux, adv: &mut Advanced) -> R<NetworkSpec> {
    let mut listed = Vec::new();
    for (i, n) in linux.namespaces.iter().enumerate() {
        let field = format!("linux.namespaces[{i}]");
        let kind = namespace_kind(&format!("{field}.type"), &n.kind)?;
        if listed.contains(&kind) {
            return Err(RuntimeError::config(
                field,
                format!("{} listed twice", n.kind),
            ));
        }
        listed.push(kind);
        if let Some(p) = &n.path {
            if kind == Namespace::Mount {
                return Err(RuntimeError::config(
                    format!("{field}.path"),
                    "joining a mount namespace is not supported: the sandbox builds its root in a new one",
                ));
            }
            if !p.is_absolute() {
                return Err(RuntimeError::config(
                    format!("{field}.path"),
                    format!("{} is not absolute", p.display()),
                ));
            }
            adv.join.push((kind, p.clone()));
        }
    }
    if !listed.contains(&Namespace::Mount) {
        return Err(RuntimeError::config(
            "linux.namespaces",
            "a mount namespace is required: the sandbox builds its root in a new one",
        ));
    }
    for ns in Namespace::ALL {
        if !listed.contains(&ns) {
            adv.share.push(ns);
        }
    }
    let mode = if adv.creates(Namespace::Network) {
        "none"
    } else {
        "host"
    };
    NetworkSpec::parse(mode, &[], &[], &[])
        .map_err(|e| RuntimeError::config("linux.namespaces", e.to_string()))
}

fn ranges(field: &str, maps: &[IdMap]) -> R<Vec<IdRange>> {
    if maps.is_empty() {
        return Err(RuntimeError::config(
            field,
            "a new user namespace needs mappings",
        ));
    }
    Ok(maps
        .iter()
        .map(|m| IdRange {
            inside: m.container_id,
            outside: m.host_id,
            count: m.size,
        })
        .collect())
}

fn id_mapping(linux: &Linux, adv: &Advanced, process: &Process) -> R<IdMapping> {
    let user = &process.user;
    if !adv.creates(Namespace::User) {
        if !linux.uid_mappings.is_empty() || !linux.gid_mappings.is_empty() {
            return Err(RuntimeError::config(
                "linux.uidMappings",
                "mappings need a new user namespace (linux.namespaces has none without a path)",
            ));
        }
        return Ok(IdMapping {
            uid_map: vec![],
            gid_map: vec![],
            use_helpers: false,
            default_uid: user.uid,
            default_gid: user.gid,
        });
    }
    let uid_map = ranges("linux.uidMappings", &linux.uid_mappings)?;
    let gid_map = ranges("linux.gidMappings", &linux.gid_mappings)?;
    // One range of exactly our own ids can be written without the setuid
    // helpers; anything else goes through newuidmap/newgidmap, which check
    // it against /etc/subuid and /etc/subgid.
    // SAFETY: getuid/getgid cannot fail.
    let (uid, gid) = unsafe { (libc::getuid(), libc::getgid()) };
    let own = |m: &[IdRange], id: u32| m.len() == 1 && m[0].outside == id && m[0].count == 1;
    let use_helpers = !(own(&uid_map, uid) && own(&gid_map, gid));
    let mapping = IdMapping {
        uid_map,
        gid_map,
        use_helpers,
        default_uid: user.uid,
        default_gid: user.gid,
    };
    if !mapping.maps_uid(user.uid) || !mapping.maps_gid(user.gid) {
        return Err(RuntimeError::config(
            "process.user",
            format!(
                "{}:{} is not mapped by linux.uidMappings/gidMappings",
                user.uid, user.gid
            ),
        ));
    }
    if !use_helpers && !user.additional_gids.is_empty() {
        return Err(RuntimeError::config(
            "process.user.additionalGids",
            "supplementary groups need newgidmap (a mapping of more than the caller's own gid)",
        ));
    }
    Ok(mapping)
}

/// linux.sysctl: only parameters of a namespace the container has of its
/// own (new or joined, not the host's).
fn sysctls(linux: &Linux, adv: &Advanced) -> R<Vec<(String, String)>> {
    let own = |ns| !adv.share.contains(&ns);
    let mut out = Vec::new();
    for (k, v) in &linux.sysctl {
        let field = format!("linux.sysctl.{k}");
        let ns = if k.starts_with("net.") {
            Namespace::Network
        } else if k.starts_with("kernel.shm")
            || k.starts_with("kernel.msg")
            || k == "kernel.sem"
            || k.starts_with("fs.mqueue.")
        {
            Namespace::Ipc
        } else if k == "kernel.hostname" || k == "kernel.domainname" {
            Namespace::Uts
        } else {
            return Err(RuntimeError::config(
                field,
                "not a namespaced kernel parameter: it would change the host",
            ));
        };
        if !own(ns) {
            return Err(RuntimeError::config(
                field,
                format!(
                    "needs a {} namespace of the container's own (linux.namespaces)",
                    ns.name()
                ),
            ));
        }
        out.push((k.clone(), v.clone()));
    }
    Ok(out)
}

pub fn capability_number(field: &str, name: &str) -> R<u32> {
    let bare = name.strip_prefix("CAP_").unwrap_or(name);
    crate::sandbox::caps::NAMES
        .iter()
        .position(|n| *n == bare)
        .map(|p| p as u32)
        .ok_or_else(|| RuntimeError::config(field, format!("unknown capability {name:?}")))
}

/// The capabilities the workload keeps. The engine keeps one set in every
/// set; a config whose sets it cannot express is refused. As under runc, a
/// root workload holds its effective set and a non-root one its ambient
/// set (the rest vanish at exec).
fn capabilities(process: &Process) -> R<Vec<u32>> {
    let Some(c) = &process.capabilities else {
        return Ok(vec![]);
    };
    let nums = |field: &str, names: &[String]| -> R<Vec<u32>> {
        let mut v = names
            .iter()
            .map(|n| capability_number(&format!("process.capabilities.{field}"), n))
            .collect::<R<Vec<u32>>>()?;
        v.sort_unstable();
        v.dedup();
        Ok(v)
    };
    let bounding = nums("bounding", &c.bounding)?;
    let effective = nums("effective", &c.effective)?;
    let permitted = nums("permitted", &c.permitted)?;
    let inheritable = nums("inheritable", &c.inheritable)?;
    let ambient = nums("ambient", &c.ambient)?;
    let keep = if process.user.uid == 0 {
        effective.clone()
    } else {
        ambient.clone()
    };
    let within = |set: &[u32], of: &[u32]| set.iter().all(|c| of.contains(c));
    for (field, set) in [
        ("bounding", &bounding),
        ("permitted", &permitted),
        ("effective", &effective),
    ] {
        if !within(&keep, set) {
            return Err(RuntimeError::config(
                format!("process.capabilities.{field}"),
                "hutch-runtime keeps one capability set; it must include every capability the process keeps",
            ));
        }
    }
    for (field, set) in [("inheritable", &inheritable), ("ambient", &ambient)] {
        if !within(set, &keep) {
            return Err(RuntimeError::config(
                format!("process.capabilities.{field}"),
                "hutch-runtime keeps one capability set; this set must lie within the kept (effective) one",
            ));
        }
    }
    Ok(keep)
}

fn rlimit(field: &str, r: &RlimitEntry) -> R<Rlimit> {
    let resource = match r.kind.as_str() {
        "RLIMIT_CPU" => libc::RLIMIT_CPU,
        "RLIMIT_FSIZE" => libc::RLIMIT_FSIZE,
        "RLIMIT_DATA" => libc::RLIMIT_DATA,
        "RLIMIT_STACK" => libc::RLIMIT_STACK,
        "RLIMIT_CORE" => libc::RLIMIT_CORE,
        "RLIMIT_RSS" => libc::RLIMIT_RSS,
        "RLIMIT_NPROC" => libc::RLIMIT_NPROC,
        "RLIMIT_NOFILE" => libc::RLIMIT_NOFILE,
        "RLIMIT_MEMLOCK" => libc::RLIMIT_MEMLOCK,
        "RLIMIT_AS" => libc::RLIMIT_AS,
        "RLIMIT_LOCKS" => libc::RLIMIT_LOCKS,
        "RLIMIT_SIGPENDING" => libc::RLIMIT_SIGPENDING,
        "RLIMIT_MSGQUEUE" => libc::RLIMIT_MSGQUEUE,
        "RLIMIT_NICE" => libc::RLIMIT_NICE,
        "RLIMIT_RTPRIO" => libc::RLIMIT_RTPRIO,
        "RLIMIT_RTTIME" => libc::RLIMIT_RTTIME,
        other => {
            return Err(RuntimeError::config(
                format!("{field}.type"),
                format!("unknown rlimit {other:?}"),
            ))
        }
    };
    if r.soft > r.hard {
        return Err(RuntimeError::config(field, "soft is above hard"));
    }
    Ok(Rlimit {
        resource: resource as u32,
        soft: r.soft,
        hard: r.hard,
    })
}

/// The kernel filesystems the engine mounts itself: a config may list
/// them (as every config does) at their usual place.
fn engine_provided(kind: &str, dest: &Path) -> bool {
    matches!(
        (kind, dest.to_str().unwrap_or("")),
        ("proc", "/proc")
            | ("sysfs", "/sys")
            | ("tmpfs", "/dev")
            | ("devpts", "/dev/pts")
            | ("tmpfs" | "shm", "/dev/shm")
    )
}

/// One entry of `mounts`; `None` when the engine makes it anyway.
fn mount(field: &str, m: &MountEntry, bundle: &Path) -> R<Option<Mount>> {
    if !m.destination.is_absolute() {
        return Err(RuntimeError::config(
            format!("{field}.destination"),
            format!("{} is not absolute", m.destination.display()),
        ));
    }
    let is_bind =
        m.kind.as_deref() == Some("bind") || m.options.iter().any(|o| o == "bind" || o == "rbind");
    let kind = if is_bind {
        "bind"
    } else {
        m.kind.as_deref().unwrap_or("")
    };
    if kind.is_empty() {
        return Err(RuntimeError::config(
            format!("{field}.type"),
            "missing (and the options name no bind)",
        ));
    }
    if engine_provided(kind, &m.destination) {
        return Ok(None);
    }
    let mut flags: u64 = 0;
    let mut recursive = false;
    let mut data = Vec::new();
    for (j, o) in m.options.iter().enumerate() {
        let ofield = || format!("{field}.options[{j}]");
        match o.as_str() {
            "bind" => {}
            "rbind" => recursive = true,
            "ro" => flags |= libc::MS_RDONLY,
            "rw" => flags &= !libc::MS_RDONLY,
            "noexec" => flags |= libc::MS_NOEXEC,
            "exec" => flags &= !libc::MS_NOEXEC,
            // Always nosuid and nodev: a suid or dev request runs stricter.
            "nosuid" | "suid" | "nodev" | "dev" => {}
            "private" | "rprivate" => {}
            "relatime" | "norelatime" | "strictatime" | "nostrictatime" | "noatime" | "atime"
            | "nodiratime" | "diratime" => {
                if !is_bind {
                    flags |= match o.as_str() {
                        "relatime" => libc::MS_RELATIME,
                        "strictatime" => libc::MS_STRICTATIME,
                        "noatime" => libc::MS_NOATIME,
                        "nodiratime" => libc::MS_NODIRATIME,
                        _ => 0,
                    };
                }
            }
            "shared" | "rshared" | "slave" | "rslave" | "unbindable" | "runbindable" => {
                return Err(RuntimeError::config(
                    ofield(),
                    format!("{o}: the sandbox's mounts are always private"),
                ))
            }
            other if other.contains('=') && !is_bind => data.push(other.to_string()),
            "newinstance" if !is_bind => data.push(o.clone()),
            other => {
                return Err(RuntimeError::config(
                    ofield(),
                    format!("mount option {other:?} is not supported"),
                ))
            }
        }
    }
    let source = m.source.clone().unwrap_or_default();
    if kind == "cgroup" || kind == "cgroup2" {
        // Without a cgroup namespace of its own a container cannot mount a
        // cgroup filesystem; runc binds the host's hierarchy there, read-only
        // if asked, and so does hutch.
        return Ok(Some(Mount::Flagged {
            fstype: "bind".into(),
            source: PathBuf::from("/sys/fs/cgroup"),
            destination: m.destination.clone(),
            flags: flags & (libc::MS_RDONLY | libc::MS_NOEXEC),
            recursive: true,
            data: String::new(),
        }));
    }
    if is_bind {
        let source = if source.is_absolute() {
            source
        } else {
            bundle.join(source)
        };
        if !source.exists() {
            return Err(RuntimeError::config(
                format!("{field}.source"),
                format!("{} does not exist", source.display()),
            ));
        }
        return Ok(Some(Mount::Flagged {
            fstype: "bind".into(),
            source,
            destination: m.destination.clone(),
            flags: flags & (libc::MS_RDONLY | libc::MS_NOEXEC),
            recursive,
            data: String::new(),
        }));
    }
    match kind {
        "tmpfs" | "mqueue" | "proc" | "sysfs" | "devpts" => {}
        other => {
            return Err(RuntimeError::config(
                format!("{field}.type"),
                format!("filesystem type {other:?} is not supported"),
            ))
        }
    }
    Ok(Some(Mount::Flagged {
        fstype: kind.to_string(),
        source: if source.as_os_str().is_empty() {
            PathBuf::from(kind)
        } else {
            source
        },
        destination: m.destination.clone(),
        flags,
        recursive: false,
        data: data.join(","),
    }))
}

/// The seccomp and Landlock of the container: the `run.hutch.policy`
/// profile when the annotation names one, and the config's own
/// `linux.seccomp` (stacked on the profile's, the kernel applies the
/// stricter answer).
fn policy(
    cfg: &Config,
    linux: &Linux,
    places: &Places,
    notes: &mut Vec<String>,
) -> R<(Policy, Option<Policy>)> {
    let config_seccomp = match &linux.seccomp {
        Some(v) => {
            // The policy module reads Docker/OCI seccomp JSON from a file.
            let file = places.state_dir.join("seccomp.json");
            std::fs::write(&file, v.to_string())
                .map_err(|e| RuntimeError::io("cannot write", file.display(), e))?;
            let choice = Choice {
                profile: Some("unconfined".into()),
                seccomp: SeccompChoice::DockerJson(file),
                landlock_unconfined: false,
            };
            let p = Policy::resolve(&choice)
                .map_err(|e| RuntimeError::config("linux.seccomp", e.to_string()))?;
            Some(p)
        }
        None => None,
    };
    let Some(name) = cfg.annotations.get(POLICY_ANNOTATION) else {
        return Ok(match config_seccomp {
            Some(p) => (p, None),
            None => {
                notes.push("no linux.seccomp and no run.hutch.policy annotation: the container has no seccomp filter and no Landlock ruleset".into());
                (
                    Policy::resolve(&Choice {
                        profile: Some("unconfined".into()),
                        ..Choice::default()
                    })?,
                    None,
                )
            }
        });
    };
    let field = format!("annotations.{POLICY_ANNOTATION}");
    if name.contains('/') {
        // A path would let whoever writes annotations (a Kubernetes pod
        // spec) make the runtime read any file as its user.
        return Err(RuntimeError::config(
            field,
            "names a shipped profile (default, judge, unconfined), not a file",
        ));
    }
    let profile = Policy::resolve(&Choice {
        profile: Some(name.clone()),
        ..Choice::default()
    })
    .map_err(|e| RuntimeError::config(field, e.to_string()))?;
    notes.extend(profile.warnings.iter().cloned());
    Ok((profile, config_seccomp))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn minimal() -> serde_json::Value {
        serde_json::json!({
            "ociVersion": "1.0.2",
            "process": {"user": {"uid": 0, "gid": 0}, "args": ["sh"], "cwd": "/"},
            "root": {"path": "/"},
            "linux": {"namespaces": [{"type": "mount"}, {"type": "pid"}]}
        })
    }

    #[test]
    fn unknown_fields_are_named_by_path() {
        let mut c = minimal();
        c["linux"]["intelRdt"] = serde_json::json!({"closID": "x"});
        let e = parse(c.to_string().as_bytes()).unwrap_err().to_string();
        assert!(e.starts_with("linux.intelRdt"), "{e}");
        let mut c = minimal();
        c["process"]["scheduler"] = serde_json::json!({"policy": "SCHED_FIFO"});
        let e = parse(c.to_string().as_bytes()).unwrap_err().to_string();
        assert!(e.starts_with("process.scheduler"), "{e}");
    }

    #[test]
    fn mount_options() {
        let b = Path::new("/");
        let m = |v: serde_json::Value| -> MountEntry { serde_json::from_value(v).unwrap() };
        // The engine's own /proc and /dev need no entry.
        let proc_ =
            m(serde_json::json!({"destination": "/proc", "type": "proc", "source": "proc"}));
        assert!(mount("m", &proc_, b).unwrap().is_none());
        let bind = m(
            serde_json::json!({"destination": "/x", "type": "bind", "source": "/tmp", "options": ["rbind", "ro", "noexec"]}),
        );
        match mount("m", &bind, b).unwrap() {
            Some(Mount::Flagged {
                fstype,
                flags,
                recursive,
                ..
            }) => {
                assert_eq!(fstype, "bind");
                assert_eq!(flags, libc::MS_RDONLY | libc::MS_NOEXEC);
                assert!(recursive);
            }
            other => panic!("{other:?}"),
        }
        let shared = m(
            serde_json::json!({"destination": "/x", "type": "bind", "source": "/tmp", "options": ["rshared"]}),
        );
        let e = mount("mounts[3]", &shared, b).unwrap_err().to_string();
        assert!(e.starts_with("mounts[3].options[0]"), "{e}");
        let nfs = m(serde_json::json!({"destination": "/x", "type": "nfs", "source": "h:/e"}));
        let e = mount("mounts[0]", &nfs, b).unwrap_err().to_string();
        assert!(e.starts_with("mounts[0].type"), "{e}");
    }

    #[test]
    fn capability_sets() {
        let p = |caps: serde_json::Value, uid: u32| -> Process {
            serde_json::from_value(serde_json::json!({
                "user": {"uid": uid, "gid": 0}, "args": ["sh"], "cwd": "/",
                "capabilities": caps
            }))
            .unwrap()
        };
        let podman = serde_json::json!({
            "bounding": ["CAP_CHOWN", "CAP_KILL"],
            "effective": ["CAP_CHOWN", "CAP_KILL"],
            "permitted": ["CAP_CHOWN", "CAP_KILL"]
        });
        assert_eq!(capabilities(&p(podman.clone(), 0)).unwrap(), vec![0, 5]);
        // A non-root process keeps its ambient set only (none here).
        assert!(capabilities(&p(podman, 1000)).unwrap().is_empty());
        let odd = serde_json::json!({"bounding": ["CAP_CHOWN"], "effective": ["CAP_CHOWN", "CAP_KILL"], "permitted": ["CAP_CHOWN", "CAP_KILL"]});
        let e = capabilities(&p(odd, 0)).unwrap_err().to_string();
        assert!(e.starts_with("process.capabilities.bounding"), "{e}");
        let bad = serde_json::json!({"effective": ["CAP_FLY"]});
        assert!(capabilities(&p(bad, 0)).is_err());
    }

    #[test]
    fn ids_become_engine_ids() {
        let hex = "a".repeat(64);
        assert_eq!(spec_id(&hex), hex);
        let other = spec_id("my-container");
        assert_eq!(other.len(), 64);
        assert_ne!(other, spec_id("my-container2"));
    }
}
