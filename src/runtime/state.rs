//! Container state under `--root`: one private directory per container
//! holding `state.json` (written atomically: temp file, fsync, rename), the
//! resolved Spec (`spec.json`, for `exec`), the start gate FIFO
//! (`exec.fifo`, present while the container is created) and a lock.
//!
//! The pid is kept with its start time, so a container whose process died
//! and whose pid was reused reads as stopped, never as someone else's
//! process; signals go through a pidfd opened and then checked.

use std::collections::BTreeMap;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::{RuntimeError, R};
use crate::container::process::{PidFd, ProcId};
use crate::sandbox::nsjoin::{self, Joiner};
use crate::sandbox::Spec;

/// The version of the runtime spec this runtime implements.
pub const OCI_VERSION: &str = "1.2.0";

/// The directory all containers' state lives in.
pub struct Root {
    pub dir: PathBuf,
}

impl Root {
    /// `--root`, else `$XDG_RUNTIME_DIR/hutch-runtime`, else
    /// `/tmp/hutch-runtime-UID`; created private (0700).
    pub fn open(dir: Option<PathBuf>) -> R<Root> {
        let dir = match dir {
            Some(d) => d,
            None => match std::env::var_os("XDG_RUNTIME_DIR").map(PathBuf::from) {
                Some(d) if d.is_dir() => d.join("hutch-runtime"),
                _ => PathBuf::from(format!("/tmp/hutch-runtime-{}", crate::paths::uid())),
            },
        };
        crate::paths::create_private(&dir).map_err(|e| RuntimeError::Refused(e.to_string()))?;
        Ok(Root { dir })
    }

    /// The state directory of container `id` (which must be valid).
    pub fn container_dir(&self, id: &str) -> R<PathBuf> {
        check_id(id)?;
        Ok(self.dir.join(id))
    }

    /// The ids of every container with a state directory.
    pub fn ids(&self) -> Vec<String> {
        let mut ids: Vec<String> = std::fs::read_dir(&self.dir)
            .into_iter()
            .flatten()
            .flatten()
            .filter(|e| e.path().join(STATE_FILE).is_file())
            .filter_map(|e| e.file_name().into_string().ok())
            .collect();
        ids.sort();
        ids
    }
}

/// Container ids as runc accepts them: no path separators, no `.`/`..`.
pub fn check_id(id: &str) -> R<()> {
    let ok = !id.is_empty()
        && id.len() <= 1024
        && id != "."
        && id != ".."
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_-.+".contains(c));
    if ok {
        Ok(())
    } else {
        Err(RuntimeError::BadId(id.to_string()))
    }
}

const STATE_FILE: &str = "state.json";
const SPEC_FILE: &str = "spec.json";
pub const GATE_FILE: &str = "exec.fifo";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Creating,
    Created,
    Running,
    /// Frozen by `pause` (the cgroup freezer); `resume` thaws it.
    Paused,
    Stopped,
}

impl Status {
    pub fn name(self) -> &'static str {
        match self {
            Status::Creating => "creating",
            Status::Created => "created",
            Status::Running => "running",
            Status::Paused => "paused",
            Status::Stopped => "stopped",
        }
    }
}

/// What `state.json` holds.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Record {
    pub oci_version: String,
    pub id: String,
    /// The status last recorded (created or running); [`Record::status`]
    /// checks the process too.
    pub status: Status,
    /// The container's process, with its start time.
    pub process: ProcId,
    pub bundle: PathBuf,
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
    /// RFC 3339.
    pub created: String,
    /// The uid that created the container.
    pub owner: u32,
    /// The container's namespaces as created, for `exec` to check.
    #[serde(default)]
    pub namespaces: Namespaces,
    /// The hooks `start` and `delete` run.
    #[serde(default)]
    pub hooks: super::hooks::Later,
}

/// (device, inode) of each namespace of the container's process.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Namespaces(pub BTreeMap<String, (u64, u64)>);

impl Namespaces {
    /// The namespaces of `pid` now.
    pub fn of(pid: i32) -> std::io::Result<Namespaces> {
        let mut map = BTreeMap::new();
        for ((name, _), (f, _)) in nsjoin::KINDS.iter().zip(nsjoin::open_all(pid)?) {
            map.insert(name.to_string(), nsjoin::identity(&f)?);
        }
        Ok(Namespaces(map))
    }

    /// Open the namespaces of `target` that differ from ours, refusing any
    /// that is not the one recorded at create.
    pub fn open_checked(&self, target: &PidFd) -> R<Joiner> {
        let pid = target.pid();
        let fds = nsjoin::open_all(pid)
            .map_err(|e| RuntimeError::io("cannot open the namespaces of", pid, e))?;
        // They were opened by pid: only if the process the pidfd names is
        // still running now did that pid name it while they were opened
        // (a pid is not reused before its process is reaped).
        if !target.alive() {
            return Err(RuntimeError::Refused(format!(
                "the container's process {pid} ended while its namespaces were opened"
            )));
        }
        let mut join = Vec::new();
        for ((name, _), (f, flag)) in nsjoin::KINDS.iter().zip(fds) {
            let id = nsjoin::identity(&f).map_err(|e| {
                RuntimeError::io("cannot stat", format!("/proc/{pid}/ns/{name}"), e)
            })?;
            if self.0.get(*name) != Some(&id) {
                return Err(RuntimeError::Refused(format!(
                    "the container's {name} namespace is not the one it was created with (its process made another); refusing to join it"
                )));
            }
            let mine = nsjoin::own(name)
                .map_err(|e| RuntimeError::io("cannot open", format!("/proc/self/ns/{name}"), e))?;
            if mine != id {
                join.push((f, flag));
            }
        }
        Ok(Joiner::new(join))
    }
}

impl Record {
    /// The status now: stopped once the process is gone (or its pid
    /// belongs to another process), else what was recorded.
    pub fn status(&self) -> Status {
        if self.process.alive() {
            self.status
        } else {
            Status::Stopped
        }
    }

    /// A pidfd on the container's process, if it still runs.
    pub fn pidfd(&self) -> Option<PidFd> {
        self.process.open()
    }

    /// The runtime spec's state JSON.
    pub fn oci_state(&self) -> serde_json::Value {
        let status = self.status();
        let mut v = serde_json::json!({
            "ociVersion": self.oci_version,
            "id": self.id,
            "status": status.name(),
            "bundle": self.bundle,
            "annotations": self.annotations,
            "created": self.created,
            "owner": self.owner.to_string(),
        });
        if status != Status::Stopped {
            v["pid"] = serde_json::json!(self.process.pid);
        }
        v
    }
}

/// One container's state directory, locked for the command's duration.
pub struct Container {
    pub dir: PathBuf,
    pub id: String,
    _lock: Option<OwnedFd>,
}

impl Container {
    /// Make the state directory of a new container (fails if it exists).
    /// Not locked: the container's process would inherit the lock (a flock
    /// belongs to the open file, which clone shares) and hold it while it
    /// waits at the start gate. Until `state.json` exists no other command
    /// sees the container, and `create_dir` is atomic.
    pub fn create(root: &Root, id: &str) -> R<Container> {
        let dir = root.container_dir(id)?;
        match std::fs::create_dir(&dir) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                return Err(RuntimeError::Exists(id.to_string()))
            }
            Err(e) => return Err(RuntimeError::io("cannot create", dir.display(), e)),
        }
        Ok(Container {
            dir,
            id: id.to_string(),
            _lock: None,
        })
    }

    /// Open an existing container's state directory.
    pub fn open(root: &Root, id: &str) -> R<Container> {
        let dir = root.container_dir(id)?;
        if !dir.join(STATE_FILE).is_file() {
            return Err(RuntimeError::NotFound(id.to_string()));
        }
        Container::lock(dir, id)
    }

    fn lock(dir: PathBuf, id: &str) -> R<Container> {
        let path = dir.join("lock");
        let f = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| RuntimeError::io("cannot open", path.display(), e))?;
        // SAFETY: flock on a descriptor we own.
        let ret = unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX) };
        if ret < 0 {
            return Err(RuntimeError::io(
                "cannot lock",
                path.display(),
                std::io::Error::last_os_error(),
            ));
        }
        Ok(Container {
            dir,
            id: id.to_string(),
            _lock: Some(f.into()),
        })
    }

    pub fn gate(&self) -> PathBuf {
        self.dir.join(GATE_FILE)
    }

    pub fn load(&self) -> R<Record> {
        read_json(&self.dir.join(STATE_FILE))
    }

    pub fn save(&self, r: &Record) -> R<()> {
        write_json(&self.dir.join(STATE_FILE), r)
    }

    pub fn load_spec(&self) -> R<Spec> {
        read_json(&self.dir.join(SPEC_FILE))
    }

    pub fn save_spec(&self, s: &Spec) -> R<()> {
        write_json(&self.dir.join(SPEC_FILE), s)
    }
}

fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> R<T> {
    let text =
        std::fs::read(path).map_err(|e| RuntimeError::io("cannot read", path.display(), e))?;
    serde_json::from_slice(&text).map_err(|e| RuntimeError::Read {
        file: path.to_path_buf(),
        reason: e.to_string(),
    })
}

fn write_json<T: Serialize>(path: &Path, value: &T) -> R<()> {
    let bytes = serde_json::to_vec_pretty(value).map_err(|e| RuntimeError::Read {
        file: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    crate::durable::write_atomic(path, &bytes, 0o600)
        .map_err(|e| RuntimeError::io("cannot write", path.display(), e))
}

/// `state ID`
pub fn print(root: &Root, id: &str) -> R<i32> {
    let c = Container::open(root, id)?;
    let record = c.load()?;
    super::print_out(&serde_json::to_string_pretty(&record.oci_state()).unwrap_or_default());
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn namespaces_are_not_joined_through_a_reused_pid() {
        let me = std::process::id() as i32;
        let recorded = Namespaces::of(me).unwrap();
        let live = PidFd::open(me).unwrap();
        assert!(recorded.open_checked(&live).is_ok());
        // A pidfd on a process that has ended, whose pid now names another
        // process (this one, with the recorded namespaces).
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let dead = PidFd::open(child.id() as i32).unwrap();
        child.wait().unwrap();
        let reused = PidFd::with_pid(dead, me);
        assert!(matches!(
            recorded.open_checked(&reused),
            Err(RuntimeError::Refused(_))
        ));
    }
}
