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
}

impl Mount {
    pub fn destination(&self) -> &PathBuf {
        match self {
            Mount::Bind { destination, .. } | Mount::Tmpfs { destination, .. } => destination,
        }
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
    pub network: crate::net::NetworkSpec,
    /// Resource limits and how each is enforced here.
    #[serde(default)]
    pub limits: Enforcement,
    /// A private directory for this sandbox on the host (mount staging).
    pub scratch: PathBuf,
}

impl Spec {
    /// Paths inside the sandbox that the workload may write to; Landlock
    /// profiles confine writes to these.
    pub fn writable_paths(&self) -> Vec<PathBuf> {
        let mut out: Vec<PathBuf> = self
            .mounts
            .iter()
            .filter(|m| !matches!(m, Mount::Bind { readonly: true, .. }))
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
