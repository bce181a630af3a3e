//! Landlock: the resolved model of a profile's `[landlock]` section, the
//! plan it becomes on the running kernel (what is enforced, what the kernel
//! cannot enforce), and applying it in the workload process.
//!
//! The ruleset handles every filesystem right the kernel knows (up to the
//! ones hutch knows), so whatever a path rule does not grant is denied.
//! TCP ports are restricted only when the profile lists them, scoping only
//! when it asks. The crate runs with `HardRequirement`: the plan already
//! decided what this kernel enforces, and nothing is dropped silently.

use std::path::{Path, PathBuf};

use landlock::{
    AccessFs, AccessNet, BitFlags, CompatLevel, Compatible, NetPort, PathBeneath, PathFd, Ruleset,
    RulesetAttr, RulesetCreatedAttr, RulesetStatus, Scope,
};
use serde::{Deserialize, Serialize};

/// The filesystem rights a profile may grant, with the ABI that added each.
pub const FS_RIGHTS: &[(&str, AccessFs, u32)] = &[
    ("execute", AccessFs::Execute, 1),
    ("write-file", AccessFs::WriteFile, 1),
    ("read-file", AccessFs::ReadFile, 1),
    ("read-dir", AccessFs::ReadDir, 1),
    ("remove-dir", AccessFs::RemoveDir, 1),
    ("remove-file", AccessFs::RemoveFile, 1),
    ("make-char", AccessFs::MakeChar, 1),
    ("make-dir", AccessFs::MakeDir, 1),
    ("make-file", AccessFs::MakeReg, 1),
    ("make-socket", AccessFs::MakeSock, 1),
    ("make-fifo", AccessFs::MakeFifo, 1),
    ("make-block", AccessFs::MakeBlock, 1),
    ("make-symlink", AccessFs::MakeSym, 1),
    ("refer", AccessFs::Refer, 2),
    ("truncate", AccessFs::Truncate, 3),
    ("ioctl-dev", AccessFs::IoctlDev, 5),
];

/// Shorthands: each expands to several rights.
pub const FS_GROUPS: &[(&str, &[&str])] = &[
    ("read", &["read-file", "read-dir"]),
    ("write", &["write-file", "truncate"]),
    ("remove", &["remove-file", "remove-dir"]),
    (
        "make",
        &[
            "make-dir",
            "make-file",
            "make-socket",
            "make-fifo",
            "make-symlink",
        ],
    ),
    (
        "all",
        &[
            "execute",
            "read-file",
            "read-dir",
            "write-file",
            "truncate",
            "remove-file",
            "remove-dir",
            "make-dir",
            "make-file",
            "make-socket",
            "make-fifo",
            "make-symlink",
            "make-char",
            "make-block",
            "refer",
            "ioctl-dev",
        ],
    ),
];

/// The ABI that added TCP port rules.
pub const ABI_NET: u32 = 4;
/// The ABI that added scoping.
pub const ABI_SCOPE: u32 = 6;

/// The rights a name stands for, or None when the name is unknown.
pub fn rights(name: &str) -> Option<Vec<&'static str>> {
    if let Some((n, _, _)) = FS_RIGHTS.iter().find(|(n, _, _)| *n == name) {
        return Some(vec![n]);
    }
    FS_GROUPS
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, v)| v.to_vec())
}

/// The right of one name from [`FS_RIGHTS`]; an unknown name grants nothing.
fn right(name: &str) -> BitFlags<AccessFs> {
    FS_RIGHTS
        .iter()
        .find(|(n, _, _)| *n == name)
        .map_or(BitFlags::EMPTY, |&(_, a, _)| a.into())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ScopeKind {
    AbstractUnixSocket,
    Signal,
}

impl ScopeKind {
    pub const ALL: [ScopeKind; 2] = [ScopeKind::AbstractUnixSocket, ScopeKind::Signal];

    pub fn name(self) -> &'static str {
        match self {
            ScopeKind::AbstractUnixSocket => "abstract-unix-socket",
            ScopeKind::Signal => "signal",
        }
    }

    fn scope(self) -> Scope {
        match self {
            ScopeKind::AbstractUnixSocket => Scope::AbstractUnixSocket,
            ScopeKind::Signal => Scope::Signal,
        }
    }
}

/// Where a path rule applies inside the sandbox.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Target {
    Path(PathBuf),
    /// `@writable`: every path the sandbox may write (volumes, tmpfs mounts,
    /// and `/` unless the root is read-only).
    Writable,
    /// `@mounts`: the writable volumes and tmpfs mounts only, never `/`.
    Mounts,
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Target::Path(p) => write!(f, "{}", p.display()),
            Target::Writable => write!(f, "@writable"),
            Target::Mounts => write!(f, "@mounts"),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PathRule {
    pub target: Target,
    /// Right names from [`FS_RIGHTS`] (groups already expanded).
    pub access: Vec<&'static str>,
    pub why: String,
}

/// A resolved `[landlock]` section.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LandlockModel {
    pub minimum_abi: u32,
    pub best_effort: bool,
    pub paths: Vec<PathRule>,
    /// `Some`: TCP bind is restricted to these ports.
    pub tcp_bind: Option<Vec<u16>>,
    /// `Some`: TCP connect is restricted to these ports.
    pub tcp_connect: Option<Vec<u16>>,
    pub scope: Vec<ScopeKind>,
}

impl Default for LandlockModel {
    fn default() -> Self {
        LandlockModel {
            minimum_abi: 1,
            best_effort: false,
            paths: Vec::new(),
            tcp_bind: None,
            tcp_connect: None,
            scope: Vec::new(),
        }
    }
}

/// Why a Landlock model cannot be enforced on this kernel.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AbiError {
    #[error("the profile requires Landlock ABI {needed}, but this kernel has {} (hint: a newer kernel, or --security-opt landlock=unconfined to run without Landlock)", found_text(*.found))]
    Minimum { needed: u32, found: u32 },
    #[error("the profile restricts {what}, which needs Landlock ABI {needed}, but this kernel has {} (hint: set `best_effort = true` in [landlock] to run without it, or use a newer kernel)", found_text(*.found))]
    Feature {
        what: String,
        needed: u32,
        found: u32,
    },
}

fn found_text(found: u32) -> String {
    if found == 0 {
        "no Landlock at all (is `landlock` in the kernel's lsm= list?)".into()
    } else {
        format!("ABI {found}")
    }
}

/// What one model enforces on one kernel.
/// Serialisable so a container's record can carry it to its supervisor
/// and to `exec` (rights as the kernel's bit masks).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Plan {
    /// The kernel's ABI.
    pub abi: u32,
    #[serde(with = "fs_bits")]
    pub handled_fs: BitFlags<AccessFs>,
    #[serde(with = "fs_paths")]
    pub paths: Vec<(Target, BitFlags<AccessFs>)>,
    pub tcp_bind: Option<Vec<u16>>,
    pub tcp_connect: Option<Vec<u16>>,
    pub scope: Vec<ScopeKind>,
    /// What the profile asks for that this kernel cannot enforce.
    pub not_enforced: Vec<String>,
    /// The highest ABI whose features this plan uses.
    pub abi_used: u32,
}

impl Plan {
    /// Decide what `model` enforces on a kernel with Landlock ABI `abi`.
    pub fn new(model: &LandlockModel, abi: u32) -> Result<Plan, AbiError> {
        if abi < model.minimum_abi {
            return Err(AbiError::Minimum {
                needed: model.minimum_abi,
                found: abi,
            });
        }
        let mut not_enforced = Vec::new();
        let mut handled_fs = BitFlags::EMPTY;
        let mut unhandled = Vec::new();
        let mut abi_used = 0;
        for &(name, access, needed) in FS_RIGHTS {
            if needed <= abi {
                handled_fs |= access;
                abi_used = abi_used.max(needed);
            } else {
                unhandled.push(format!("{name} (needs ABI {needed})"));
            }
        }
        // Rights above minimum_abi the kernel lacks stay unrestricted: the
        // profile accepted that by its minimum_abi; say so in best-effort mode.
        if model.best_effort {
            not_enforced.extend(unhandled);
        }
        let refuse = |not_enforced: &mut Vec<String>, what: String, needed: u32| {
            if model.best_effort {
                not_enforced.push(format!("{what} (needs ABI {needed})"));
                Ok(())
            } else {
                Err(AbiError::Feature {
                    what,
                    needed,
                    found: abi,
                })
            }
        };
        let mut tcp_bind = model.tcp_bind.clone();
        let mut tcp_connect = model.tcp_connect.clone();
        for (list, what) in [
            (&mut tcp_bind, "TCP bind ports"),
            (&mut tcp_connect, "TCP connect ports"),
        ] {
            if list.is_some() {
                if abi < ABI_NET {
                    refuse(&mut not_enforced, what.into(), ABI_NET)?;
                    *list = None;
                } else {
                    abi_used = abi_used.max(ABI_NET);
                }
            }
        }
        let mut scope = model.scope.clone();
        if !scope.is_empty() {
            if abi < ABI_SCOPE {
                let names: Vec<&str> = scope.iter().map(|s| s.name()).collect();
                refuse(
                    &mut not_enforced,
                    format!("scoping of {}", names.join(" and ")),
                    ABI_SCOPE,
                )?;
                scope.clear();
            } else {
                abi_used = abi_used.max(ABI_SCOPE);
            }
        }
        let paths = model
            .paths
            .iter()
            .map(|p| {
                let access = p
                    .access
                    .iter()
                    .fold(BitFlags::EMPTY, |acc, n| acc | right(n));
                (p.target.clone(), access & handled_fs)
            })
            .collect();
        Ok(Plan {
            abi,
            handled_fs,
            paths,
            tcp_bind,
            tcp_connect,
            scope,
            not_enforced,
            abi_used,
        })
    }

    /// Restrict the calling process. `writable` expands `@writable` and
    /// `@mounts`. Runs in the workload after pivot_root; may allocate.
    pub fn apply(&self, writable: &[PathBuf]) -> Result<(), String> {
        let err = |what: &str, e: &dyn std::fmt::Display| format!("{what}: {e}");
        let mut ruleset = Ruleset::default()
            .set_compatibility(CompatLevel::HardRequirement)
            .handle_access(self.handled_fs)
            .map_err(|e| err("cannot handle filesystem rights", &e))?;
        let mut net: BitFlags<AccessNet> = BitFlags::EMPTY;
        if self.tcp_bind.is_some() {
            net |= AccessNet::BindTcp;
        }
        if self.tcp_connect.is_some() {
            net |= AccessNet::ConnectTcp;
        }
        if !net.is_empty() {
            ruleset = ruleset
                .handle_access(net)
                .map_err(|e| err("cannot handle TCP rights", &e))?;
        }
        let scopes = self
            .scope
            .iter()
            .fold(BitFlags::<Scope>::EMPTY, |acc, s| acc | s.scope());
        if !scopes.is_empty() {
            ruleset = ruleset.scope(scopes).map_err(|e| err("cannot scope", &e))?;
        }
        let mut created = ruleset
            .create()
            .map_err(|e| err("cannot create the ruleset", &e))?;
        for (target, access) in &self.paths {
            if access.is_empty() {
                continue;
            }
            for path in expand(target, writable) {
                // A path missing from this root grants nothing; skipping it
                // only denies more.
                let Ok(meta) = std::fs::metadata(&path) else {
                    continue;
                };
                let access = if meta.is_dir() {
                    *access
                } else {
                    *access & file_rights()
                };
                if access.is_empty() {
                    continue;
                }
                let fd = PathFd::new(&path)
                    .map_err(|e| err(&format!("cannot open {}", path.display()), &e))?;
                created = created
                    .add_rule(PathBeneath::new(fd, access))
                    .map_err(|e| err(&format!("cannot add a rule for {}", path.display()), &e))?;
            }
        }
        for (ports, access) in [
            (&self.tcp_bind, AccessNet::BindTcp),
            (&self.tcp_connect, AccessNet::ConnectTcp),
        ] {
            for &port in ports.iter().flatten() {
                created = created
                    .add_rule(NetPort::new(port, access))
                    .map_err(|e| err(&format!("cannot add a rule for port {port}"), &e))?;
            }
        }
        let status = created
            .restrict_self()
            .map_err(|e| err("cannot restrict the process", &e))?;
        if status.ruleset != RulesetStatus::FullyEnforced {
            return Err(format!(
                "the kernel enforced the ruleset only partly ({:?})",
                status.ruleset
            ));
        }
        Ok(())
    }

    /// Human-readable lines: what is enforced and what is not.
    pub fn describe(&self) -> Vec<String> {
        let mut out = vec![format!(
            "landlock: kernel ABI {}, this profile uses ABI {} features",
            self.abi, self.abi_used
        )];
        for (target, access) in &self.paths {
            let names: Vec<&str> = FS_RIGHTS
                .iter()
                .filter(|(_, a, _)| access.contains(*a))
                .map(|(n, _, _)| *n)
                .collect();
            out.push(format!("  {target}: {}", names.join(", ")));
        }
        let ports = |p: &Option<Vec<u16>>| match p {
            None => "unrestricted".to_string(),
            Some(v) if v.is_empty() => "none".to_string(),
            Some(v) => v.iter().map(u16::to_string).collect::<Vec<_>>().join(", "),
        };
        out.push(format!("  tcp bind: {}", ports(&self.tcp_bind)));
        out.push(format!("  tcp connect: {}", ports(&self.tcp_connect)));
        if !self.scope.is_empty() {
            let s: Vec<&str> = self.scope.iter().map(|s| s.name()).collect();
            out.push(format!("  scoped: {}", s.join(", ")));
        }
        for n in &self.not_enforced {
            out.push(format!("  NOT ENFORCED on this kernel: {n}"));
        }
        out
    }
}

fn file_rights() -> BitFlags<AccessFs> {
    AccessFs::Execute
        | AccessFs::WriteFile
        | AccessFs::ReadFile
        | AccessFs::Truncate
        | AccessFs::IoctlDev
}

fn expand(target: &Target, writable: &[PathBuf]) -> Vec<PathBuf> {
    match target {
        Target::Path(p) => vec![p.clone()],
        Target::Writable => writable.to_vec(),
        Target::Mounts => writable
            .iter()
            .filter(|p| p.as_path() != Path::new("/"))
            .cloned()
            .collect(),
    }
}

/// The Landlock ABI the running kernel offers; 0 when it has none.
pub fn kernel_abi() -> u32 {
    const LANDLOCK_CREATE_RULESET_VERSION: libc::c_uint = 1;
    // SAFETY: with a NULL attr and size 0, this only asks for the version.
    let v = unsafe {
        libc::syscall(
            libc::SYS_landlock_create_ruleset,
            std::ptr::null::<libc::c_void>(),
            0usize,
            LANDLOCK_CREATE_RULESET_VERSION,
        )
    };
    if v > 0 {
        v as u32
    } else {
        0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn model() -> LandlockModel {
        LandlockModel {
            paths: vec![PathRule {
                target: Target::Path("/usr".into()),
                access: rights("read").unwrap(),
                why: String::new(),
            }],
            tcp_connect: Some(vec![80]),
            scope: vec![ScopeKind::Signal],
            ..LandlockModel::default()
        }
    }

    #[test]
    fn minimum_abi_is_refused_with_both_numbers() {
        let m = LandlockModel {
            minimum_abi: 99,
            ..model()
        };
        let e = Plan::new(&m, 7).unwrap_err().to_string();
        assert!(e.contains("ABI 99") && e.contains("ABI 7"), "{e}");
    }

    #[test]
    fn features_above_the_kernel_refuse_unless_best_effort() {
        let e = Plan::new(&model(), 3).unwrap_err().to_string();
        assert!(
            e.contains("TCP connect ports") && e.contains("ABI 4"),
            "{e}"
        );
        let best = LandlockModel {
            best_effort: true,
            ..model()
        };
        let plan = Plan::new(&best, 3).unwrap();
        assert!(plan.tcp_connect.is_none() && plan.scope.is_empty());
        assert!(plan.not_enforced.iter().any(|n| n.contains("ioctl-dev")));
        assert!(plan.not_enforced.iter().any(|n| n.contains("scoping")));
        let full = Plan::new(&model(), 7).unwrap();
        assert!(full.not_enforced.is_empty());
        assert_eq!(full.abi_used, 6);
    }

    #[test]
    fn groups_expand() {
        assert_eq!(rights("read").unwrap(), vec!["read-file", "read-dir"]);
        assert_eq!(rights("truncate").unwrap(), vec!["truncate"]);
        assert!(rights("fly").is_none());
    }
}

/// `BitFlags<AccessFs>` as its bits.
mod fs_bits {
    use landlock::{AccessFs, BitFlags};
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(f: &BitFlags<AccessFs>, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(f.bits())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<BitFlags<AccessFs>, D::Error> {
        Ok(BitFlags::from_bits_truncate(u64::deserialize(d)?))
    }
}

/// Path rules with their rights as bits.
mod fs_paths {
    use landlock::{AccessFs, BitFlags};
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    use super::Target;

    type Rules = Vec<(Target, BitFlags<AccessFs>)>;

    pub fn serialize<S: Serializer>(rules: &Rules, s: S) -> Result<S::Ok, S::Error> {
        let v: Vec<(&Target, u64)> = rules.iter().map(|(t, f)| (t, f.bits())).collect();
        v.serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Rules, D::Error> {
        let v: Vec<(Target, u64)> = Vec::deserialize(d)?;
        Ok(v.into_iter()
            .map(|(t, b)| (t, BitFlags::from_bits_truncate(b)))
            .collect())
    }
}
