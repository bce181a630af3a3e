//! The Spec: everything a sandbox needs, resolved and validated before any
//! process is cloned. Front ends (the docker-like CLI, later the OCI runtime
//! CLI) build one; nothing below it knows which front end called.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::policy::Policy;
use crate::sandbox::idmap::IdMapping;
use crate::sandbox::limits::Enforcement;

/// Where the root filesystem comes from.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum RootSource {
    /// The host's system directories, read-only, on an empty private root.
    Host,
    /// Read-only lower layers, topmost first, stacked under a private upper.
    Layers(Vec<PathBuf>),
    /// An existing directory used as it is (an OCI bundle's rootfs): bound,
    /// not copied; writes go to it unless the root is read-only.
    Path(PathBuf),
}

/// Where the writable layer of the overlay lives.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum UpperDir {
    /// A tmpfs private to the sandbox's mount namespace: nothing to clean up
    /// on the host, gone with the sandbox (`run --rm`).
    Ephemeral,
    /// A directory on disk that survives the sandbox (`upper` and `work`
    /// must be on the same filesystem).
    Persistent { upper: PathBuf, work: PathBuf },
}

/// Which overlay implementation to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum OverlayDriver {
    /// Kernel overlayfs, falling back to fuse-overlayfs when the kernel refuses.
    Auto,
    Kernel,
    Fuse,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Mount {
    /// A recursive bind of a host path.
    Bind {
        source: PathBuf,
        destination: PathBuf,
        readonly: bool,
    },
    Tmpfs {
        destination: PathBuf,
        /// Size in bytes; `None` is the kernel's default (half of RAM).
        size: Option<u64>,
        mode: u32,
    },
    /// A mount with explicit flags, as the OCI runtime spec lists them: a
    /// bind (`fstype` "bind") or a filesystem of type `fstype`. `flags` are
    /// `MS_*` bits (`MS_RDONLY`, `MS_NOEXEC`, ...); nosuid and nodev are
    /// always added. `data` is the filesystem's option string.
    Flagged {
        fstype: String,
        source: PathBuf,
        destination: PathBuf,
        flags: u64,
        /// For binds: the mounts below `source` too (rbind).
        recursive: bool,
        data: String,
    },
}

impl Mount {
    pub fn destination(&self) -> &PathBuf {
        match self {
            Mount::Bind { destination, .. }
            | Mount::Tmpfs { destination, .. }
            | Mount::Flagged { destination, .. } => destination,
        }
    }

    /// Whether the workload may write below the mount point.
    pub fn writable(&self) -> bool {
        match self {
            Mount::Bind { readonly, .. } => !readonly,
            Mount::Tmpfs { .. } => true,
            Mount::Flagged { flags, .. } => flags & libc::MS_RDONLY == 0,
        }
    }
}

/// A kind of namespace, named as the OCI runtime spec names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Namespace {
    User,
    Mount,
    Pid,
    Ipc,
    Uts,
    Network,
    Cgroup,
}

impl Namespace {
    pub const ALL: [Namespace; 7] = [
        Namespace::User,
        Namespace::Mount,
        Namespace::Pid,
        Namespace::Ipc,
        Namespace::Uts,
        Namespace::Network,
        Namespace::Cgroup,
    ];

    /// The `CLONE_NEW*` flag for clone(2), unshare(2) and setns(2).
    pub fn clone_flag(self) -> libc::c_int {
        match self {
            Namespace::User => libc::CLONE_NEWUSER,
            Namespace::Mount => libc::CLONE_NEWNS,
            Namespace::Pid => libc::CLONE_NEWPID,
            Namespace::Ipc => libc::CLONE_NEWIPC,
            Namespace::Uts => libc::CLONE_NEWUTS,
            Namespace::Network => libc::CLONE_NEWNET,
            Namespace::Cgroup => libc::CLONE_NEWCGROUP,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Namespace::User => "user",
            Namespace::Mount => "mount",
            Namespace::Pid => "pid",
            Namespace::Ipc => "ipc",
            Namespace::Uts => "uts",
            Namespace::Network => "network",
            Namespace::Cgroup => "cgroup",
        }
    }
}

/// Options the docker-like CLI leaves at their defaults (everything new,
/// hutch's init as pid 1, the sandbox dies with hutch) and another front
/// end, such as the OCI runtime, may set.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Advanced {
    /// Namespaces the sandbox shares with the process that starts it
    /// instead of getting new ones. Never the mount namespace.
    pub share: Vec<Namespace>,
    /// Existing namespaces (nsfs paths such as /proc/PID/ns/net or a bind
    /// of one) the sandbox joins instead of getting new ones; joined by the
    /// starting process before the clone, the user namespace first.
    pub join: Vec<(Namespace, PathBuf)>,
    /// The workload itself is pid 1 (as runc and crun run it), without
    /// hutch's init; whoever reaps it learns its status.
    pub workload_is_pid1: bool,
    /// The sandbox keeps running after the process that started it exits
    /// (no parent-death signal).
    pub outlive_caller: bool,
    /// A FIFO the workload, fully set up but for seccomp, waits on before
    /// exec: one byte written to it releases the workload (the OCI
    /// runtime's "created" state). The starting process returns as soon as
    /// the workload waits there; later errors go to the workload's stderr.
    pub start_gate: Option<PathBuf>,
    /// Namespaced kernel parameters written in the sandbox (`net.*` needs
    /// a network namespace of its own, `kernel.shm*`, `kernel.msg*`,
    /// `kernel.sem` and `fs.mqueue.*` an ipc namespace).
    pub sysctl: Vec<(String, String)>,
    /// Paths masked and made read-only in addition to the engine's lists.
    pub masked_paths: Vec<PathBuf>,
    pub readonly_paths: Vec<PathBuf>,
    /// Do not write /etc/hosts and /etc/resolv.conf: the caller binds its own.
    pub no_etc_files: bool,
    /// The workload's umask (else the starting process's).
    pub umask: Option<u32>,
    /// The workload's /proc/self/oom_score_adj.
    pub oom_score_adj: Option<i32>,
    /// Capabilities kept in every set (bounding, permitted, effective,
    /// inheritable and ambient); empty drops them all, as hutch always does.
    pub capabilities: Vec<u32>,
    /// A second seccomp filter stacked on the policy's (the kernel applies
    /// the stricter answer of the two), e.g. an OCI config's own.
    pub extra_seccomp: Option<Policy>,
    /// Descriptors 3 to 3+N-1 of the starting process reach the workload
    /// open (an OCI runtime's `--preserve-fds N`); every other one above
    /// stdio is closed on exec.
    pub preserve_fds: u32,
}

impl Advanced {
    /// Whether the sandbox gets a new namespace of this kind.
    pub fn creates(&self, ns: Namespace) -> bool {
        !self.share.contains(&ns) && !self.join.iter().any(|(k, _)| *k == ns)
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct User {
    pub uid: u32,
    pub gid: u32,
    pub additional_gids: Vec<u32>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Process {
    /// argv; `args[0]` is looked up in the sandbox's `PATH` when it has no `/`.
    pub args: Vec<String>,
    /// `KEY=VALUE` pairs.
    pub env: Vec<String>,
    pub cwd: PathBuf,
    pub user: User,
    /// Give the workload a pseudo-terminal (`-t`).
    pub terminal: bool,
    /// Forward stdin (`-i`); otherwise the workload reads /dev/null.
    pub stdin: bool,
    /// The signal that asks the workload to stop (the image's StopSignal,
    /// else SIGTERM).
    #[serde(default = "default_stop_signal")]
    pub stop_signal: i32,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Spec {
    /// A unique id (64 hex digits); names runtime directories and logs.
    pub id: String,
    pub root: RootSource,
    pub upper: UpperDir,
    pub overlay: OverlayDriver,
    pub readonly_root: bool,
    pub hostname: String,
    pub mounts: Vec<Mount>,
    pub idmap: IdMapping,
    pub process: Process,
    pub policy: Policy,
    /// The network: none, private (slirp4netns or pasta) or host.
    /// (Defaulted so records written before networking existed still read.)
    #[serde(default)]
    pub network: crate::net::NetworkSpec,
    /// Resource limits and how each is enforced here.
    #[serde(default)]
    pub limits: Enforcement,
    /// A private directory for this sandbox on the host (mount staging).
    pub scratch: PathBuf,
    /// Namespaces to share or join, pid 1, the start gate and other
    /// options another front end than `hutch run` may need.
    #[serde(default)]
    pub advanced: Advanced,
}

impl Spec {
    /// Paths inside the sandbox that the workload may write to; Landlock
    /// profiles confine writes to these.
    pub fn writable_paths(&self) -> Vec<PathBuf> {
        let mut out: Vec<PathBuf> = self
            .mounts
            .iter()
            .filter(|m| m.writable())
            .map(|m| m.destination().clone())
            .collect();
        if !self.readonly_root {
            out.push(PathBuf::from("/"));
        }
        out
    }
}

/// Environment every workload starts from, as Docker's.
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

fn default_stop_signal() -> i32 {
    libc::SIGTERM
}
