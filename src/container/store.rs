//! Where containers live: `<data dir>/containers/<id>/` holds `config.json`
//! (fixed at create), `state.json` (rewritten atomically under the lock,
//! a flock of the directory itself), the log files and the overlay's
//! `upper` and `work`.
//! `<data dir>/containers/names/<name>` is a symlink to the id: creating it
//! is the atomic test-and-set that keeps names unique without a global lock.

use std::fs::File;
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use super::record::{self, Config};
use super::state::State;
use super::time;
use super::ContainerError;
use crate::paths;
use crate::sandbox::teardown::Step;

type R<T> = Result<T, ContainerError>;

pub const CONFIG: &str = "config.json";
pub const STATE: &str = "state.json";
/// How many emptied container directories are kept for reuse
/// (`.spare0`...): one per concurrent `--rm` run is enough.
const SPARES: usize = 4;
/// An `--rm` record's config.json once the container is gone, under a name
/// no reader looks at. A parked directory keeps it and its state.json, and
/// the next `--rm` record is written into both: no file is made on creation
/// nor freed on removal (on ext4 an inode each way, per file, per run).
const PARKED_CONFIG: &str = ".config.parked";

/// rename(2) that fails rather than replace `to`.
fn rename_noreplace(from: &Path, to: &Path) -> bool {
    use std::os::unix::ffi::OsStrExt;
    let c = |p: &Path| std::ffi::CString::new(p.as_os_str().as_bytes()).ok();
    let (Some(f), Some(t)) = (c(from), c(to)) else {
        return false;
    };
    // SAFETY: two NUL-terminated paths that outlive the call.
    unsafe {
        libc::renameat2(
            libc::AT_FDCWD,
            f.as_ptr(),
            libc::AT_FDCWD,
            t.as_ptr(),
            libc::RENAME_NOREPLACE,
        ) == 0
    }
}

#[derive(Debug, Clone)]
pub struct Store {
    dir: PathBuf,
}

/// A container loaded under its lock. The lock is released on drop.
#[derive(Debug)]
pub struct Container {
    pub config: Config,
    pub state: State,
    pub dir: PathBuf,
    _lock: Lock,
}

/// An exclusive flock on a container's directory.
#[derive(Debug)]
pub struct Lock {
    _file: File,
}

impl Store {
    /// The store under hutch's data dir (`$HUTCH_DATA_DIR` and friends).
    pub fn open() -> R<Store> {
        Store::at(paths::data_dir()?.join("containers"))
    }

    pub fn at(dir: PathBuf) -> R<Store> {
        paths::create_private(&dir)?;
        paths::create_private(&dir.join("names"))?;
        Ok(Store { dir })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn container_dir(&self, id: &str) -> PathBuf {
        self.dir.join(id)
    }

    fn name_link(&self, name: &str) -> PathBuf {
        self.dir.join("names").join(name)
    }

    /// Whether the name symlink `link` points to container `id`.
    fn links_to(link: &Path, id: &str) -> bool {
        std::fs::read_link(link)
            .ok()
            .and_then(|t| record::id_of_name_link(&t))
            .is_some_and(|t| t == id)
    }

    /// Ids of every container, oldest first.
    pub fn ids(&self) -> R<Vec<String>> {
        let rd = std::fs::read_dir(&self.dir)
            .map_err(|e| ContainerError::io("cannot list", &self.dir, e))?;
        let mut out: Vec<(i128, String)> = rd
            .flatten()
            .filter_map(|e| e.file_name().into_string().ok())
            .filter(|n| record::valid_id(n))
            .filter_map(|id| {
                let c = self.read_config(&id).ok()?;
                Some((c.created, id))
            })
            .collect();
        out.sort();
        Ok(out.into_iter().map(|(_, id)| id).collect())
    }

    /// Find a container by full id, name, or unique id prefix (Docker's
    /// order).
    pub fn resolve(&self, key: &str) -> R<String> {
        if record::valid_id(key) && self.container_dir(key).join(CONFIG).exists() {
            return Ok(key.to_string());
        }
        if record::valid_name(key) {
            let target = std::fs::read_link(self.name_link(key)).ok();
            if let Some(id) = target.as_deref().and_then(record::id_of_name_link) {
                if self.container_dir(&id).join(CONFIG).exists() {
                    return Ok(id);
                }
            }
        }
        let hex = !key.is_empty() && key.bytes().all(|b| b.is_ascii_hexdigit());
        if hex {
            let key = key.to_ascii_lowercase();
            let rd = std::fs::read_dir(&self.dir)
                .map_err(|e| ContainerError::io("cannot list", &self.dir, e))?;
            let matches: Vec<String> = rd
                .flatten()
                .filter_map(|e| e.file_name().into_string().ok())
                .filter(|n| record::valid_id(n) && n.starts_with(&key))
                .filter(|n| self.container_dir(n).join(CONFIG).exists())
                .collect();
            match matches.len() {
                0 => {}
                1 => return Ok(matches.into_iter().next().unwrap_or_default()),
                count => {
                    return Err(ContainerError::Ambiguous {
                        prefix: key.to_string(),
                        count,
                    })
                }
            }
        }
        Err(ContainerError::NoSuch(key.to_string()))
    }

    /// The id `link` names, if it names one.
    fn holder(link: &Path) -> Option<String> {
        std::fs::read_link(link)
            .ok()
            .and_then(|t| record::id_of_name_link(&t))
    }

    /// Claim `name` for `id`, holding `names` (see [`Store::create`]).
    /// Fails if a container holds it; a link left by a container that no
    /// longer exists is taken over.
    fn claim_name(&self, name: &str, id: &str, names: &NamesLock) -> R<()> {
        let link = self.name_link(name);
        let held = |holder: &Option<String>| {
            holder
                .as_ref()
                .is_some_and(|h| self.container_dir(h).join(CONFIG).exists())
        };
        for _ in 0..3 {
            match std::os::unix::fs::symlink(record::name_link_target(id), &link) {
                Ok(()) => return Ok(()),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    let mut holder = Self::holder(&link);
                    if !held(&holder) {
                        // A holder without a config is being created (its
                        // link comes before its directory) or died doing
                        // so: once no creation is under way, look again.
                        names.set(libc::LOCK_EX)?;
                        let now = Self::holder(&link);
                        if now == holder && !held(&now) {
                            let _ = std::fs::remove_file(&link);
                        }
                        holder = now;
                        names.set(libc::LOCK_SH)?;
                    }
                    if held(&holder) {
                        return Err(ContainerError::NameInUse {
                            name: name.to_string(),
                            id: holder.unwrap_or_default(),
                        });
                    }
                }
                Err(e) => return Err(ContainerError::io("cannot claim name", &link, e)),
            }
        }
        Err(ContainerError::NameInUse {
            name: name.to_string(),
            id: String::new(),
        })
    }

    /// Record a new container: claim its name (or generate one), then write
    /// its config and a `created` state. `config.name` empty means
    /// "generate". On failure nothing of it is left but what the caller
    /// made (its upper dir), which the caller removes.
    ///
    /// From claiming the name until the config is written, this holds the
    /// names directory's flock shared: a name whose link names a container
    /// without a config is taken over only under the lock held exclusive,
    /// so never from a creation still under way, and by one taker.
    pub fn create(&self, config: &mut Config) -> R<()> {
        self.create_as(config, &State::new())
    }

    /// [`Store::create`] with `state` as the first state: a foreground run
    /// records itself already running.
    pub fn create_as(&self, config: &mut Config, state: &State) -> R<()> {
        let names = NamesLock::shared(&self.dir.join("names"))?;
        if config.name.is_empty() {
            let mut attempt = 0;
            loop {
                let name = record::generated_name(&config.id, attempt);
                match self.claim_name(&name, &config.id, &names) {
                    Ok(()) => {
                        config.name = name;
                        break;
                    }
                    Err(ContainerError::NameInUse { .. }) if attempt < 1000 => attempt += 1,
                    Err(e) => return Err(e),
                }
            }
        } else {
            if !record::valid_name(&config.name) {
                return Err(ContainerError::InvalidName(config.name.clone()));
            }
            self.claim_name(&config.name, &config.id, &names)?;
        }
        let dir = self.container_dir(&config.id);
        let result = (|| {
            self.make_dir(&dir)?;
            if !config.auto_remove {
                let _ = std::fs::remove_file(dir.join(PARKED_CONFIG));
                write_json(&dir.join(CONFIG), config, true)?;
                return write_json(&dir.join(STATE), state, true);
            }
            // Nothing reads a directory without config.json (the container
            // does not exist yet): state.json is written in place first,
            // then the config into the parked file, which a rename makes
            // config.json, whole.
            write_in_place(&dir.join(STATE), &to_json(&dir.join(STATE), state)?)?;
            let parked = dir.join(PARKED_CONFIG);
            write_in_place(&parked, &to_json(&dir.join(CONFIG), config)?)?;
            std::fs::rename(&parked, dir.join(CONFIG))
                .map_err(|e| ContainerError::io("cannot rename", &parked, e))
        })();
        if result.is_err() {
            let _ = std::fs::remove_file(self.name_link(&config.name));
        }
        result
    }

    pub fn read_config(&self, id: &str) -> R<Config> {
        read_json(&self.container_dir(id).join(CONFIG))
    }

    pub fn read_state(&self, id: &str) -> R<State> {
        read_json(&self.container_dir(id).join(STATE))
    }

    /// Resolve `key`, take the container's lock, load it, and bring a stale
    /// "running" state up to date (see [`State::reconcile`]). A `--rm`
    /// container found exited is removed, as Docker does, and is then no
    /// such container: its run ended without removing it (its supervisor,
    /// or the foreground hutch that ran it, was killed).
    pub fn open_locked(&self, key: &str) -> R<Container> {
        let id = self.resolve(key)?;
        let dir = self.container_dir(&id);
        let lock = Lock::take(&dir)?;
        // It may have been removed while we waited for the lock.
        if !dir.join(CONFIG).exists() {
            return Err(ContainerError::NoSuch(key.to_string()));
        }
        let config = self.read_config(&id)?;
        let mut state = self.read_state(&id)?;
        let init = state.init;
        if state.reconcile(time::now()) {
            write_json(&dir.join(STATE), &state, !config.auto_remove)?;
        }
        let c = Container {
            config,
            state,
            dir,
            _lock: lock,
        };
        // Exited is final for an --rm container: whoever ends its run
        // removes it under this lock, so one found exited was left behind.
        if c.config.auto_remove && c.state.status == super::Status::Exited {
            // Nothing of it may run on: its init was killed by reconcile
            // (or died with its foreground hutch); wait until it is gone.
            if let Some(init) = init.and_then(|p| p.open()) {
                let _ = init.signal(libc::SIGKILL);
                init.wait_exit(Some(std::time::Duration::from_secs(30)));
            }
            self.remove(&c)?;
            return Err(ContainerError::NoSuch(key.to_string()));
        }
        Ok(c)
    }

    /// Load without the lock, for listing. A stale state is reconciled
    /// under the lock.
    pub fn peek(&self, id: &str) -> R<(Config, State)> {
        let config = self.read_config(id)?;
        let state = self.read_state(id)?;
        if state.status == super::Status::Running && !state.supervisor.is_some_and(|p| p.alive()) {
            let c = self.open_locked(id)?;
            return Ok((c.config, c.state));
        }
        Ok((config, state))
    }

    /// Remove the container's files and its name. The caller holds the lock
    /// and has checked that nothing runs.
    pub fn remove(&self, c: &Container) -> R<()> {
        self.remove_parts(&c.config, &c.dir)
    }

    fn remove_parts(&self, config: &Config, dir: &Path) -> R<()> {
        let link = self.name_link(&config.name);
        if Self::links_to(&link, &config.id) {
            let _ = std::fs::remove_file(&link);
        }
        super::attach::unlink(&config.id);
        // config.json goes first: from then on the container does not exist,
        // even if removing the rest fails half-way.
        let _ = std::fs::remove_file(dir.join(CONFIG));
        if self.park(dir) {
            return Ok(());
        }
        super::remove::remove_tree(dir, &config.spec.idmap)
    }

    /// A container's directory: a parked one renamed into place, else a
    /// new one. On ext4 a new directory takes a data block at once, and
    /// freeing it when an `--rm` run ends costs a synchronous discard where
    /// the filesystem is mounted with `discard` (milliseconds on a busy
    /// disk, on every judge run); renaming allocates and frees nothing.
    fn make_dir(&self, dir: &Path) -> R<()> {
        for slot in 0..SPARES {
            let spare = self.dir.join(format!(".spare{slot}"));
            if std::fs::rename(&spare, dir).is_err() {
                continue;
            }
            // Parked by this user in this private directory, empty but for
            // an `--rm` record's two files; anything else (a crash, a
            // hand) is not reused.
            if std::fs::read_dir(dir).is_ok_and(|d| d.into_iter().all(parked_file)) {
                paths::create_private(dir)?;
                return Ok(());
            }
            let _ = std::fs::remove_dir_all(dir);
        }
        paths::create_private(dir)?;
        Ok(())
    }

    /// Empty a removed container's directory and park it for the next
    /// container to take, if it holds only files (an `--rm` run's record:
    /// anything else, such as an upper dir with subordinate uids' files,
    /// goes through [`super::remove::remove_tree`]) and a parking slot is
    /// free. The caller holds the lock, whose file goes too: a waiter then
    /// finds no config.json at the old path.
    fn park(&self, dir: &Path) -> bool {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return false;
        };
        let mut files = Vec::new();
        for e in entries {
            match e {
                Ok(e) if e.file_type().is_ok_and(|t| t.is_file()) => files.push(e.path()),
                _ => return false,
            }
        }
        if files.iter().any(|f| std::fs::remove_file(f).is_err()) {
            return false;
        }
        (0..SPARES).any(|slot| rename_noreplace(dir, &self.dir.join(format!(".spare{slot}"))))
    }

    /// Remove container `config` from view at once, under its lock: its
    /// name, its attach socket and its config.json, after which it does
    /// not exist. What is left of its directory is [`Store::leftovers`],
    /// for the keeper of an `--rm` run to remove after hutch's exit.
    pub fn retire_own(&self, config: &Config) -> R<()> {
        let dir = self.container_dir(&config.id);
        let _lock = Lock::take(&dir)?;
        let link = self.name_link(&config.name);
        if Self::links_to(&link, &config.id) {
            let _ = std::fs::remove_file(&link);
        }
        super::attach::unlink(&config.id);
        let file = dir.join(CONFIG);
        std::fs::rename(&file, dir.join(PARKED_CONFIG)).map_err(|e| match e.kind() {
            // Removed meanwhile (`hutch rm -f`), as update_own says.
            std::io::ErrorKind::NotFound => ContainerError::NoSuch(config.name.clone()),
            _ => ContainerError::io("cannot remove", &file, e),
        })
    }

    /// What [`Store::retire_own`] leaves of container `id`, as steps of a
    /// keeper: only if its config.json is gone, its directory, parked for
    /// the next container with its state.json and parked config in it.
    pub fn leftovers(&self, id: &str) -> Vec<Step> {
        let dir = self.container_dir(id);
        vec![
            Step::StopIfExists(dir.join(CONFIG)),
            Step::Park {
                to: (0..SPARES)
                    .map(|slot| self.dir.join(format!(".spare{slot}")))
                    .collect(),
                files: vec![dir.join(STATE), dir.join(PARKED_CONFIG)],
                dir,
            },
        ]
    }

    /// Take container `config`'s lock and update its state with `f`,
    /// without reading `config.json` again (it holds the compiled policy
    /// and is large): for the foreground run that made the container and
    /// holds its config. `f` returning false removes the container.
    pub fn update_own(&self, config: &Config, f: impl FnOnce(&mut State) -> bool) -> R<()> {
        let dir = self.container_dir(&config.id);
        let _lock = Lock::take(&dir)?;
        if !dir.join(CONFIG).exists() {
            return Err(ContainerError::NoSuch(config.name.clone()));
        }
        let mut state = self.read_state(&config.id)?;
        if f(&mut state) {
            write_json(&dir.join(STATE), &state, !config.auto_remove)
        } else {
            self.remove_parts(config, &dir)
        }
    }
}

impl Store {
    /// Remove a container whose config cannot be read (written by an
    /// incompatible hutch, or damaged): end its supervisor if the state
    /// still names a live one, drop its name, remove its files with the
    /// id mapping hutch would use now.
    pub fn remove_damaged(&self, key: &str) -> R<()> {
        let id = self.resolve(key)?;
        let dir = self.container_dir(&id);
        let _lock = Lock::take(&dir)?;
        if let Ok(state) = self.read_state(&id) {
            if let Some(fd) = state.supervisor.and_then(|p| p.open()) {
                let _ = fd.signal(libc::SIGKILL);
                fd.wait_exit(Some(std::time::Duration::from_secs(30)));
            }
        }
        if let Ok(names) = std::fs::read_dir(self.dir.join("names")) {
            for link in names.flatten() {
                if Self::links_to(&link.path(), &id) {
                    let _ = std::fs::remove_file(link.path());
                }
            }
        }
        let _ = std::fs::remove_file(dir.join(CONFIG));
        let idmap =
            crate::sandbox::idmap::IdMapping::resolve(crate::sandbox::idmap::UsernsMode::Auto);
        super::remove::remove_tree(&dir, &idmap)
    }
}

impl Container {
    pub fn save(&self) -> R<()> {
        write_json(&self.dir.join(STATE), &self.state, !self.config.auto_remove)
    }

    /// `name` as Docker prints it in messages.
    pub fn name(&self) -> &str {
        &self.config.name
    }
}

/// An flock on the names directory (see [`Store::create`]).
struct NamesLock {
    dir: File,
}

impl NamesLock {
    fn shared(dir: &Path) -> R<NamesLock> {
        let lock = NamesLock {
            dir: File::open(dir).map_err(|e| ContainerError::io("cannot open", dir, e))?,
        };
        lock.set(libc::LOCK_SH)?;
        Ok(lock)
    }

    /// Take the lock shared or exclusive (converting, not atomically).
    fn set(&self, op: libc::c_int) -> R<()> {
        loop {
            // SAFETY: flock on a descriptor we own.
            if unsafe { libc::flock(self.dir.as_raw_fd(), op) } == 0 {
                return Ok(());
            }
            let e = std::io::Error::last_os_error();
            if e.kind() != std::io::ErrorKind::Interrupted {
                return Err(ContainerError::io("cannot lock", "names", e));
            }
        }
    }
}

impl Lock {
    /// Block until we hold the container's lock. The directory itself is
    /// locked, not a file in it: a lock file would be one more file to
    /// create and remove on every `--rm` run.
    pub fn take(dir: &Path) -> R<Lock> {
        let file = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_CLOEXEC | libc::O_DIRECTORY)
            .open(dir)
            .map_err(|e| match e.kind() {
                std::io::ErrorKind::NotFound => ContainerError::NoSuch(
                    dir.file_name()
                        .map(|n| n.to_string_lossy().into_owned())
                        .unwrap_or_default(),
                ),
                _ => ContainerError::io("cannot open lock", dir, e),
            })?;
        loop {
            // SAFETY: flock on a descriptor we own.
            let r = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) };
            if r == 0 {
                return Ok(Lock { _file: file });
            }
            let e = std::io::Error::last_os_error();
            if e.kind() != std::io::ErrorKind::Interrupted {
                return Err(ContainerError::io("cannot lock", dir, e));
            }
        }
    }
}

pub fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> R<T> {
    let bytes = std::fs::read(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => ContainerError::NoSuch(
            path.parent()
                .and_then(|p| p.file_name())
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
        ),
        _ => ContainerError::io("cannot read", path, e),
    })?;
    serde_json::from_slice(&bytes).map_err(|e| ContainerError::Corrupt {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })
}

/// Write JSON atomically: a temporary file in the same directory, fsync,
/// rename over the old one, fsync the directory. A crash leaves the old
/// file or the new one, never a torn one. Without `durable` the syncs are
/// left out (readers still never see a torn file): for the records of
/// `--rm` containers, which a crash makes moot and which a judge's every
/// run writes (the syncs cost tens of milliseconds a run).
pub fn write_json<T: serde::Serialize>(path: &Path, value: &T, durable: bool) -> R<()> {
    write_atomic(path, &to_json(path, value)?, durable)
}

fn to_json<T: serde::Serialize>(path: &Path, value: &T) -> R<Vec<u8>> {
    serde_json::to_vec(value).map_err(|e| ContainerError::Corrupt {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })
}

/// Write `bytes` over `path` (made if missing), for a file no reader looks
/// at yet: see [`Store::create_as`].
///
/// Not truncated: on ext4 a truncation frees the file's blocks, the write
/// allocates them again and the close forces them out to disk (the
/// replace-by-truncate heuristic), most of a parked file's saving. A longer
/// old content is blanked with spaces instead, which JSON reads as
/// trailing whitespace.
fn write_in_place(path: &Path, bytes: &[u8]) -> R<()> {
    use std::io::{Seek, Write};
    use std::os::unix::fs::FileExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
        .map_err(|e| ContainerError::io("cannot write", path, e))?;
    (|| {
        f.write_all(bytes)?;
        let end = f.seek(std::io::SeekFrom::End(0))?;
        let len = bytes.len() as u64;
        if end > len {
            f.write_all_at(&vec![b' '; (end - len) as usize], len)?;
        }
        Ok(())
    })()
    .map_err(|e: std::io::Error| ContainerError::io("cannot write", path, e))
}

/// Whether a parked directory's entry may stay for the next record: the
/// regular files an `--rm` record parks.
fn parked_file(entry: std::io::Result<std::fs::DirEntry>) -> bool {
    entry.is_ok_and(|e| {
        (e.file_name() == STATE || e.file_name() == PARKED_CONFIG)
            && e.file_type().is_ok_and(|t| t.is_file())
    })
}

pub fn write_atomic(path: &Path, bytes: &[u8], durable: bool) -> R<()> {
    crate::durable::replace(path, bytes, 0o600, durable)
        .map_err(|e| ContainerError::io("cannot write", path, e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::container::record::LogConfig;

    fn scratch(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("hutch-store-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        d
    }

    fn config(id: &str, name: &str) -> Config {
        let mut json = serde_json::json!({
            "id": id, "root": "Host", "upper": "Ephemeral", "overlay": "Auto",
            "readonly_root": false, "hostname": "h", "mounts": [],
            "idmap": {"uid_map": [], "gid_map": [], "use_helpers": false, "default_uid": 0, "default_gid": 0},
            "process": {"args": ["sh"], "env": [], "cwd": "/", "user": {"uid": 0, "gid": 0, "additional_gids": []}, "terminal": false, "stdin": false, "stop_signal": 15},
            "policy": {"name": "unconfined"}, "scratch": "/tmp"
        });
        json["network"] = serde_json::to_value(crate::net::NetworkSpec::default()).unwrap();
        let spec: crate::sandbox::Spec = serde_json::from_value(json).unwrap();
        Config {
            id: id.into(),
            name: name.into(),
            created: time::now(),
            image: None,
            image_display: "host".into(),
            auto_remove: false,
            stop_signal: libc::SIGTERM,
            stop_timeout: 10,
            log: LogConfig::default(),
            report: None,
            spec,
        }
    }

    #[test]
    fn names_are_unique_and_prefixes_resolve() {
        let dir = scratch("names");
        let store = Store::at(dir.clone()).unwrap();
        let a = format!("aaaa{}", "0".repeat(60));
        let b = format!("aabb{}", "0".repeat(60));
        store.create(&mut config(&a, "web")).unwrap();
        let err = store.create(&mut config(&b, "web")).unwrap_err();
        assert!(matches!(err, ContainerError::NameInUse { .. }), "{err}");
        let mut gen = config(&b, "");
        store.create(&mut gen).unwrap();
        assert!(!gen.name.is_empty());
        assert_eq!(store.resolve("web").unwrap(), a);
        assert_eq!(store.resolve("aaa").unwrap(), a);
        assert_eq!(store.resolve(&gen.name).unwrap(), b);
        assert!(matches!(
            store.resolve("aa"),
            Err(ContainerError::Ambiguous { count: 2, .. })
        ));
        assert!(matches!(
            store.resolve("ff"),
            Err(ContainerError::NoSuch(_))
        ));
        assert_eq!(store.ids().unwrap(), vec![a.clone(), b.clone()]);

        use std::os::unix::fs::MetadataExt;
        let inode = |id: &str| std::fs::metadata(store.container_dir(id)).unwrap().ino();
        let parked = inode(&a);
        let c = store.open_locked("web").unwrap();
        store.remove(&c).unwrap();
        drop(c);
        assert!(matches!(
            store.resolve("web"),
            Err(ContainerError::NoSuch(_))
        ));
        // Its emptied directory is parked, not listed, and taken by the
        // next container (with the name free again).
        assert!(!store.container_dir(&a).exists());
        assert_eq!(store.ids().unwrap(), vec![b.clone()]);
        let d = format!("dd{}", "0".repeat(62));
        store.create(&mut config(&d, "web")).unwrap();
        assert_eq!(inode(&d), parked);
        assert_eq!(store.resolve("web").unwrap(), d);
        // A parking place with anything in it is not reused.
        std::fs::create_dir(dir.join(".spare0")).unwrap();
        std::fs::write(dir.join(".spare0/planted"), "x").unwrap();
        store.create(&mut config(&a, "again")).unwrap();
        assert!(!store.container_dir(&a).join("planted").exists());
        let mut files: Vec<_> = std::fs::read_dir(store.container_dir(&a))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        files.sort();
        assert_eq!(files, [CONFIG, STATE]);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn an_rm_records_files_are_parked_with_its_directory_and_written_into_again() {
        use std::os::unix::fs::MetadataExt;
        let dir = scratch("park-files");
        let store = Store::at(dir.clone()).unwrap();
        let ino = |p: PathBuf| std::fs::metadata(p).unwrap().ino();
        let a = format!("aa{}", "0".repeat(62));
        // A longer record first: the next one is written over it, shorter.
        let mut first = config(&a, "the-first-and-longer-one");
        first.auto_remove = true;
        store.create(&mut first).unwrap();
        let files = |id: &str| {
            let mut f: Vec<_> = std::fs::read_dir(store.container_dir(id))
                .unwrap()
                .map(|e| e.unwrap().file_name().into_string().unwrap())
                .collect();
            f.sort();
            f
        };
        assert_eq!(files(&a), [CONFIG, STATE]);
        let inodes = (
            ino(store.container_dir(&a).join(CONFIG)),
            ino(store.container_dir(&a).join(STATE)),
        );
        // Retired: gone from view at once, its config parked beside its state.
        store.retire_own(&first).unwrap();
        assert!(matches!(
            store.resolve("the-first-and-longer-one"),
            Err(ContainerError::NoSuch(_))
        ));
        assert_eq!(files(&a), [PARKED_CONFIG, STATE]);
        // The keeper's steps, as it does them: the directory is parked whole.
        for step in store.leftovers(&a) {
            if let Step::Park { dir: from, to, .. } = step {
                assert!(to.iter().any(|t| rename_noreplace(&from, t)));
            }
        }
        // The next --rm record is written into the same files, whole.
        let b = format!("bb{}", "0".repeat(62));
        let mut second = config(&b, "two");
        second.auto_remove = true;
        store.create(&mut second).unwrap();
        assert_eq!(files(&b), [CONFIG, STATE]);
        assert_eq!(
            (
                ino(store.container_dir(&b).join(CONFIG)),
                ino(store.container_dir(&b).join(STATE)),
            ),
            inodes
        );
        let (cfg, state) = store.peek(&b).unwrap();
        assert_eq!(cfg.id, b);
        assert_eq!(cfg.name, "two");
        assert_eq!(state.status, State::new().status);
        // A kept container takes the parked directory without its files.
        store.retire_own(&second).unwrap();
        for step in store.leftovers(&b) {
            if let Step::Park { dir: from, to, .. } = step {
                assert!(to.iter().any(|t| rename_noreplace(&from, t)));
            }
        }
        let c = format!("cc{}", "0".repeat(62));
        store.create(&mut config(&c, "three")).unwrap();
        assert_eq!(files(&c), [CONFIG, STATE]);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_name_being_claimed_is_not_taken_over() {
        let dir = scratch("claim");
        let store = Store::at(dir.clone()).unwrap();
        let a = format!("aa{}", "0".repeat(62));
        let b = format!("bb{}", "0".repeat(62));
        // `a` is being created: its name is linked, its directory and
        // config not yet made.
        let creating = NamesLock::shared(&dir.join("names")).unwrap();
        std::os::unix::fs::symlink(record::name_link_target(&a), store.name_link("web")).unwrap();
        let other = store.clone();
        let b2 = b.clone();
        let taker = std::thread::spawn(move || other.create(&mut config(&b2, "web")));
        std::thread::sleep(std::time::Duration::from_millis(200));
        store.make_dir(&store.container_dir(&a)).unwrap();
        write_json(
            &store.container_dir(&a).join(CONFIG),
            &config(&a, "web"),
            false,
        )
        .unwrap();
        drop(creating);
        let err = taker.join().unwrap().unwrap_err();
        assert!(matches!(err, ContainerError::NameInUse { .. }), "{err}");
        assert_eq!(store.resolve("web").unwrap(), a);
        // A link whose container never got a config (its creator died) is
        // taken over.
        std::fs::remove_file(store.name_link("web")).unwrap();
        let c = format!("cc{}", "0".repeat(62));
        std::os::unix::fs::symlink(record::name_link_target(&c), store.name_link("web")).unwrap();
        store.create(&mut config(&b, "web")).unwrap();
        assert_eq!(store.resolve("web").unwrap(), b);
        std::fs::remove_dir_all(dir).unwrap();
    }
}
