//! The image store under the data dir:
//!
//! ```text
//! lock                       flock(2): held while the index or layers change
//! images.json                the index: names and digests to image records
//! blobs/sha256/<hex>         manifests and configs, by digest
//! blobs/.partial/<hex>       a layer blob being downloaded, kept to resume
//!                            (flock(2): held by the process downloading it)
//! layers/<16 hex>/fs/        a layer unpacked once, shared by every image
//! layers/<16 hex>/layer.json   its full chain id, diff id and size
//! tmp/<pid>.<start>.<n>/     work in progress; stale ones are swept
//! ```
//!
//! Layer directories carry the first 16 hex digits of their chain id, not
//! all 64, to keep overlay's lowerdir option (one page at most) short; the
//! full chain id in `layer.json` is checked on every lookup. Every write is
//! atomic (temp in the same dir, fsync, rename), so a crash leaves either the
//! old or the new state; a layer appears only once complete, verified and
//! on disk (one syncfs per layer, see [`Store::commit_layer`]).

use std::fs::{self, File};
use std::io::Read;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::reference::{Digest, Reference};
use crate::{durable, paths, procfs};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot {op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the image index {path} is corrupt: {reason} (hint: move it away; `hutch pull` rebuilds entries)")]
    Index { path: PathBuf, reason: String },
    #[error("blob {0} in the store does not match its digest (hint: `hutch image prune` and pull again)")]
    Corrupt(Digest),
    #[error("layer directory {dir} holds chain {found}, not {wanted}")]
    LayerClash {
        dir: PathBuf,
        found: String,
        wanted: Digest,
    },
    #[error(transparent)]
    Paths(#[from] paths::PathsError),
}

type R<T> = Result<T, StoreError>;

fn io<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> StoreError + 'a {
    move |source| StoreError::Io {
        op,
        path: path.to_path_buf(),
        source,
    }
}

/// One image in the index.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ImageRecord {
    /// The config's digest: the IMAGE ID.
    pub id: Digest,
    /// The manifest pulled (for an index, the platform's manifest).
    pub manifest: Digest,
    /// `registry/repo:tag` names pointing here.
    #[serde(default)]
    pub names: Vec<String>,
    /// `registry/repo@sha256:...` for digests it was pulled by or as.
    #[serde(default)]
    pub digests: Vec<String>,
    #[serde(default)]
    pub created: Option<String>,
    /// Unpacked size of all layers, in bytes.
    pub size: u64,
    /// Chain ids, bottom layer first.
    pub layers: Vec<Digest>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Index {
    pub images: Vec<ImageRecord>,
}

impl Index {
    /// The image `query` names: a reference (by tag or digest), or a
    /// prefix of an image id (at least 4 hex digits, as Docker takes).
    pub fn find(&self, query: &str) -> Option<&ImageRecord> {
        let q = query.strip_prefix("sha256:").unwrap_or(query);
        if q.len() >= 4 && q.len() <= 64 && q.bytes().all(|b| b.is_ascii_hexdigit()) {
            let mut hits = self.images.iter().filter(|i| i.id.hex().starts_with(q));
            if let (Some(one), None) = (hits.next(), hits.next()) {
                return Some(one);
            }
        }
        let r = Reference::parse(query).ok()?;
        self.find_ref(&r)
    }

    pub fn find_ref(&self, r: &Reference) -> Option<&ImageRecord> {
        if let Some(d) = &r.digest {
            let want = format!("{}@{d}", r.name());
            return self
                .images
                .iter()
                .find(|i| i.digests.contains(&want) || &i.manifest == d);
        }
        let want = r.to_string();
        self.images.iter().find(|i| i.names.contains(&want))
    }

    /// Add or update `rec`; a tag moves from any image that had it.
    pub fn insert(&mut self, rec: ImageRecord) {
        for other in &mut self.images {
            other.names.retain(|n| !rec.names.contains(n));
        }
        if let Some(existing) = self.images.iter_mut().find(|i| i.id == rec.id) {
            for n in rec.names {
                if !existing.names.contains(&n) {
                    existing.names.push(n);
                }
            }
            for d in rec.digests {
                if !existing.digests.contains(&d) {
                    existing.digests.push(d);
                }
            }
        } else {
            self.images.push(rec);
        }
    }
}

/// Metadata kept beside an unpacked layer.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LayerMeta {
    pub chain_id: Digest,
    pub diff_id: Digest,
    pub size: u64,
}

#[derive(Debug, Clone)]
pub struct Store {
    pub root: PathBuf,
}

/// An exclusive lock on the store; released on drop.
pub struct Lock(#[allow(dead_code)] File);

impl Store {
    pub fn open() -> R<Store> {
        Store::at(paths::data_dir()?)
    }

    pub fn at(root: PathBuf) -> R<Store> {
        use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
        for d in ["blobs", "blobs/sha256", "blobs/.partial", "layers", "tmp"] {
            let p = root.join(d);
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(&p)
                .map_err(io("create", &p))?;
        }
        // Layers hold setuid files owned by subordinate ids: other users
        // must not reach them, whatever the data dir's own mode.
        let layers = root.join("layers");
        fs::set_permissions(&layers, fs::Permissions::from_mode(0o700))
            .map_err(io("chmod", &layers))?;
        Ok(Store { root })
    }

    pub fn lock(&self) -> R<Lock> {
        let p = self.root.join("lock");
        let f = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&p)
            .map_err(io("open", &p))?;
        loop {
            // SAFETY: flock on a descriptor we own.
            let r = unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX) };
            if r == 0 {
                return Ok(Lock(f));
            }
            let e = std::io::Error::last_os_error();
            if e.kind() != std::io::ErrorKind::Interrupted {
                return Err(io("lock", &p)(e));
            }
        }
    }

    fn index_path(&self) -> PathBuf {
        self.root.join("images.json")
    }

    pub fn index(&self) -> R<Index> {
        let p = self.index_path();
        match fs::read(&p) {
            Ok(b) => serde_json::from_slice(&b).map_err(|e| StoreError::Index {
                path: p,
                reason: e.to_string(),
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Index::default()),
            Err(e) => Err(io("read", &p)(e)),
        }
    }

    /// Replace the index; the caller holds the lock.
    pub fn write_index(&self, index: &Index, _lock: &Lock) -> R<()> {
        let bytes = serde_json::to_vec_pretty(index).expect("the index serializes");
        atomic_write(&self.index_path(), &bytes)
    }

    pub fn blob_path(&self, d: &Digest) -> PathBuf {
        self.root.join("blobs/sha256").join(d.hex())
    }

    /// A blob's bytes, checked against its digest again (the disk is not
    /// trusted more than the network).
    pub fn read_blob(&self, d: &Digest, max: u64) -> R<Vec<u8>> {
        let p = self.blob_path(d);
        let f = File::open(&p).map_err(io("read", &p))?;
        let mut buf = Vec::new();
        f.take(max + 1)
            .read_to_end(&mut buf)
            .map_err(io("read", &p))?;
        if buf.len() as u64 > max || &Digest::of(&buf) != d {
            return Err(StoreError::Corrupt(d.clone()));
        }
        Ok(buf)
    }

    /// Store verified bytes under their digest.
    pub fn write_blob(&self, bytes: &[u8]) -> R<Digest> {
        let d = Digest::of(bytes);
        let p = self.blob_path(&d);
        if !p.exists() {
            atomic_write(&p, bytes)?;
        }
        Ok(d)
    }

    /// The partial download of blob `d`, created empty when missing and
    /// locked for this process; `None` while another process downloads the
    /// same blob (the caller then streams it without keeping a partial).
    pub fn partial(&self, d: &Digest) -> R<Option<Partial>> {
        let path = self.root.join("blobs/.partial").join(d.hex());
        // Another process may remove the file between our open and our
        // lock: then ours is unlinked, and we open again.
        for _ in 0..3 {
            let file = fs::OpenOptions::new()
                .read(true)
                .append(true)
                .create(true)
                .open(&path)
                .map_err(io("open", &path))?;
            if !try_flock(&file).map_err(io("lock", &path))? {
                return Ok(None);
            }
            let same = match (file.metadata(), fs::metadata(&path)) {
                (Ok(a), Ok(b)) => {
                    use std::os::unix::fs::MetadataExt;
                    a.ino() == b.ino() && a.dev() == b.dev()
                }
                _ => false,
            };
            if same {
                return Ok(Some(Partial { file, path }));
            }
        }
        Ok(None)
    }

    fn layer_entry(&self, chain: &Digest) -> PathBuf {
        self.root.join("layers").join(&chain.hex()[..16])
    }

    /// The unpacked tree of a layer (an overlay lower dir).
    pub fn layer_dir(&self, chain: &Digest) -> PathBuf {
        self.layer_entry(chain).join("fs")
    }

    /// The layer's metadata if it is in the store, complete.
    pub fn layer(&self, chain: &Digest) -> R<Option<LayerMeta>> {
        let entry = self.layer_entry(chain);
        let meta = entry.join("layer.json");
        let bytes = match fs::read(&meta) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io("read", &meta)(e)),
        };
        let m: LayerMeta = serde_json::from_slice(&bytes).map_err(|e| StoreError::Index {
            path: meta.clone(),
            reason: e.to_string(),
        })?;
        if &m.chain_id != chain {
            return Err(StoreError::LayerClash {
                dir: entry,
                found: m.chain_id.to_string(),
                wanted: chain.clone(),
            });
        }
        Ok(Some(m))
    }

    /// A fresh private work dir under `tmp/`, named after this process and
    /// its start time so a later sweep can tell a live pull from a dead one.
    pub fn new_tmp(&self) -> R<PathBuf> {
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let pid = std::process::id();
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let p = self
            .root
            .join("tmp")
            .join(format!("{pid}.{}.{n}", start_time(pid).unwrap_or(0)));
        let _ = fs::remove_dir_all(&p);
        fs::create_dir(&p).map_err(io("create", &p))?;
        Ok(p)
    }

    /// Move a complete, verified layer from `tmp` (holding `fs/`) into
    /// place. When another process got there first, ours goes.
    ///
    /// Crash safety without an fsync per file: the unpacker writes the
    /// tree and `layer.json` with plain writes, then one `syncfs(2)` on the
    /// store's file system makes all of it (data, inodes, directories)
    /// durable before the rename that publishes it, and an fsync of
    /// `layers/` makes the rename durable before the index can name the
    /// layer (the index is written after, with its own fsync). A crash
    /// before the syncfs returns leaves only a work dir under `tmp/`,
    /// which the next command sweeps; after it, the layer is whole on
    /// disk whether or not the rename reached it. One syncfs costs one
    /// writeback and one cache flush per layer instead of one per file
    /// (tens of thousands for a distribution's image); it also
    /// writes back other dirty data of that file system, which is the
    /// price of not tracking every descriptor.
    pub fn commit_layer(&self, tmp: &Path, meta: &LayerMeta) -> R<()> {
        let json = serde_json::to_vec(meta).expect("layer meta serializes");
        let meta_path = tmp.join("layer.json");
        fs::write(&meta_path, json).map_err(io("write", &meta_path))?;
        syncfs(tmp)?;
        let dst = self.layer_entry(&meta.chain_id);
        match fs::rename(tmp, &dst) {
            Ok(()) => sync_dir(&self.root.join("layers")),
            Err(e) if matches!(e.raw_os_error(), Some(libc::EEXIST) | Some(libc::ENOTEMPTY)) => {
                let _ = fs::remove_dir_all(tmp);
                match self.layer(&meta.chain_id)? {
                    Some(_) => Ok(()),
                    // A half-made entry from a crash before layer.json: ours
                    // replaces it on the next pull after `image prune`.
                    None => Err(io("commit layer to", &dst)(e)),
                }
            }
            Err(e) => Err(io("commit layer to", &dst)(e)),
        }
    }

    /// Keep `chains` from being swept while this pull or load puts its
    /// image together: between finding a layer present (or committing it)
    /// and recording the image in the index, a concurrent `rmi` or `prune`
    /// would otherwise see an unused layer. Released on drop; a dead
    /// process's hold goes with the next sweep.
    pub fn hold_layers(&self, chains: &[Digest]) -> R<Hold> {
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let pid = std::process::id();
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let path = self
            .root
            .join("tmp")
            .join(format!("{pid}.{}.hold{n}", start_time(pid).unwrap_or(0)));
        let body = serde_json::to_vec(chains).expect("digests serialize");
        // Under the lock, so a sweep sees it whole or not at all.
        let _lock = self.lock()?;
        fs::write(&path, body).map_err(io("write", &path))?;
        Ok(Hold(path))
    }

    /// Layers held by live pulls and loads.
    fn held(&self) -> R<std::collections::HashSet<String>> {
        let mut out = std::collections::HashSet::new();
        let tmp = self.root.join("tmp");
        for e in fs::read_dir(&tmp).map_err(io("list", &tmp))? {
            let e = e.map_err(io("list", &tmp))?;
            let name = e.file_name().to_string_lossy().into_owned();
            if !name.contains(".hold") || !owner_alive(&name) {
                continue;
            }
            let chains: Vec<Digest> = fs::read(e.path())
                .ok()
                .and_then(|b| serde_json::from_slice(&b).ok())
                .unwrap_or_default();
            out.extend(chains.iter().map(|c| c.hex()[..16].to_string()));
        }
        Ok(out)
    }

    /// Remove what no image uses: layers, blobs, and stale work dirs.
    /// Returns the number of layers removed. The caller holds the lock.
    pub fn sweep(&self, index: &Index, _lock: &Lock) -> R<usize> {
        let mut used_layers = self.held()?;
        let mut used_blobs = std::collections::HashSet::new();
        for i in &index.images {
            used_blobs.insert(i.id.hex().to_string());
            used_blobs.insert(i.manifest.hex().to_string());
            for l in &i.layers {
                used_layers.insert(l.hex()[..16].to_string());
            }
        }
        let mut removed = 0;
        let layers = self.root.join("layers");
        for e in fs::read_dir(&layers).map_err(io("list", &layers))? {
            let e = e.map_err(io("list", &layers))?;
            let name = e.file_name().to_string_lossy().into_owned();
            if !used_layers.contains(&name) {
                remove_tree(&e.path())?;
                removed += 1;
            }
        }
        // Index manifests (for pulls by a list's digest) are kept only while
        // named: anything else unreferenced goes.
        let blobs = self.root.join("blobs/sha256");
        let index_blobs: std::collections::HashSet<String> = index
            .images
            .iter()
            .flat_map(|i| i.digests.iter())
            .filter_map(|d| d.rsplit_once("@sha256:").map(|(_, h)| h.to_string()))
            .collect();
        for e in fs::read_dir(&blobs).map_err(io("list", &blobs))? {
            let e = e.map_err(io("list", &blobs))?;
            let name = e.file_name().to_string_lossy().into_owned();
            if !used_blobs.contains(&name) && !index_blobs.contains(&name) {
                let _ = fs::remove_file(e.path());
            }
        }
        // Partial downloads nobody is resuming right now.
        let partials = self.root.join("blobs/.partial");
        for e in fs::read_dir(&partials).into_iter().flatten().flatten() {
            if let Ok(f) = File::open(e.path()) {
                if try_flock(&f).unwrap_or(false) {
                    let _ = fs::remove_file(e.path());
                }
            }
        }
        self.sweep_tmp()?;
        Ok(removed)
    }

    /// Remove work dirs whose process is gone.
    pub fn sweep_tmp(&self) -> R<()> {
        let tmp = self.root.join("tmp");
        for e in fs::read_dir(&tmp).map_err(io("list", &tmp))? {
            let e = e.map_err(io("list", &tmp))?;
            let name = e.file_name().to_string_lossy().into_owned();
            if !owner_alive(&name) {
                remove_tree(&e.path())?;
            }
        }
        Ok(())
    }
}

/// A partial blob download (see [`Store::partial`]): opened for reading
/// and appending, locked until dropped.
pub struct Partial {
    pub file: File,
    pub path: PathBuf,
}

impl Partial {
    /// Bytes downloaded so far.
    pub fn downloaded(&self) -> u64 {
        self.file.metadata().map_or(0, |m| m.len())
    }

    /// Keep only the first `n` bytes (0: start over).
    pub fn truncate(&self, n: u64) -> R<()> {
        self.file.set_len(n).map_err(io("truncate", &self.path))
    }

    /// The download is complete (or worthless): the file goes.
    pub fn remove(self) {
        let _ = fs::remove_file(&self.path);
    }
}

/// `flock(LOCK_EX | LOCK_NB)`: false when another holds it.
fn try_flock(f: &File) -> std::io::Result<bool> {
    loop {
        // SAFETY: flock on a descriptor we own.
        if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0 {
            return Ok(true);
        }
        let e = std::io::Error::last_os_error();
        match e.raw_os_error() {
            Some(libc::EWOULDBLOCK) => return Ok(false),
            Some(libc::EINTR) => continue,
            _ => return Err(e),
        }
    }
}

/// A hold on layers (see [`Store::hold_layers`]).
pub struct Hold(PathBuf);

impl Drop for Hold {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.0);
    }
}

/// Whether the process named by `<pid>.<start time>.…` still runs. A
/// zombie does not: a pull killed with its parent may stay one for as long
/// as nobody reaps it (no init that reaps in a container, say).
fn owner_alive(name: &str) -> bool {
    let mut parts = name.split('.');
    let pid: Option<u32> = parts.next().and_then(|p| p.parse().ok());
    let start: Option<u64> = parts.next().and_then(|p| p.parse().ok());
    match (pid, start) {
        (Some(pid), Some(start)) => procfs::stat(pid as i32)
            .is_some_and(|s| s.start_time == start && !matches!(s.state, 'Z' | 'X')),
        _ => false,
    }
}

/// Remove a tree the store made. Files in it may belong to subordinate
/// ids: the caller runs inside the store's user namespace, where it may.
pub fn remove_tree(p: &Path) -> R<()> {
    match fs::symlink_metadata(p) {
        Ok(m) if m.is_dir() => fs::remove_dir_all(p).map_err(io("remove", p)),
        Ok(_) => fs::remove_file(p).map_err(io("remove", p)),
        Err(_) => Ok(()),
    }
}

/// Write `bytes` to `path` atomically (see [`durable::write_atomic`]).
pub fn atomic_write(path: &Path, bytes: &[u8]) -> R<()> {
    durable::write_atomic(path, bytes, 0o644).map_err(io("write", path))
}

/// Write back everything of the file system holding `path` and wait.
fn syncfs(path: &Path) -> R<()> {
    let f = File::open(path).map_err(io("open", path))?;
    // SAFETY: syncfs on a descriptor we own.
    if unsafe { libc::syncfs(f.as_raw_fd()) } != 0 {
        return Err(io("sync the file system of", path)(
            std::io::Error::last_os_error(),
        ));
    }
    Ok(())
}

fn sync_dir(dir: &Path) -> R<()> {
    durable::sync_dir(dir).map_err(io("sync", dir))
}

fn start_time(pid: u32) -> Option<u64> {
    procfs::start_time(pid as i32)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(c: char) -> Digest {
        Digest::parse(&format!("sha256:{}", c.to_string().repeat(64))).unwrap()
    }

    fn rec(id: char, name: &str) -> ImageRecord {
        ImageRecord {
            id: d(id),
            manifest: d('f'),
            names: vec![name.into()],
            digests: vec![format!("127.0.0.1:5000/a@{}", d('f'))],
            created: None,
            size: 1,
            layers: vec![d('1')],
        }
    }

    #[test]
    fn index_finds_by_name_digest_and_id_and_moves_tags() {
        let mut idx = Index::default();
        idx.insert(rec('a', "docker.io/library/busybox:latest"));
        assert!(idx.find("busybox").is_some());
        assert!(idx.find("aaaa").is_some());
        assert!(idx.find(&format!("127.0.0.1:5000/a@{}", d('f'))).is_some());
        assert!(idx.find("debian").is_none());
        idx.insert(rec('b', "docker.io/library/busybox:latest"));
        assert_eq!(idx.find("busybox").unwrap().id, d('b'));
        assert!(idx.images[0].names.is_empty());
    }

    #[test]
    fn blobs_are_verified_and_layers_commit_once() {
        let root = std::env::temp_dir().join(format!("hutch-store-{}", std::process::id()));
        let _ = fs::remove_dir_all(&root);
        let s = Store::at(root.clone()).unwrap();
        let dg = s.write_blob(b"hello").unwrap();
        assert_eq!(s.read_blob(&dg, 100).unwrap(), b"hello");
        fs::write(s.blob_path(&dg), b"jello").unwrap();
        assert!(matches!(s.read_blob(&dg, 100), Err(StoreError::Corrupt(_))));

        let meta = LayerMeta {
            chain_id: d('c'),
            diff_id: d('c'),
            size: 0,
        };
        for _ in 0..2 {
            let t = s.new_tmp().unwrap();
            fs::create_dir(t.join("fs")).unwrap();
            s.commit_layer(&t, &meta).unwrap();
            assert!(!t.exists());
        }
        assert!(s.layer(&d('c')).unwrap().is_some());
        // Held by a live pull: kept; released: swept.
        let hold = s.hold_layers(&[d('c')]).unwrap();
        let lock = s.lock().unwrap();
        assert_eq!(s.sweep(&Index::default(), &lock).unwrap(), 0);
        assert!(s.layer(&d('c')).unwrap().is_some());
        drop(hold);
        assert_eq!(s.sweep(&Index::default(), &lock).unwrap(), 1);
        assert!(s.layer(&d('c')).unwrap().is_none());
        fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn partial_downloads_are_locked_kept_and_swept_when_free() {
        use std::io::Write as _;
        let root = std::env::temp_dir().join(format!("hutch-partial-{}", std::process::id()));
        let _ = fs::remove_dir_all(&root);
        let s = Store::at(root.clone()).unwrap();
        let p = s.partial(&d('a')).unwrap().expect("free");
        (&p.file).write_all(b"half").unwrap();
        assert_eq!(p.downloaded(), 4);
        // Another download of the same blob (its own open file) streams
        // without one while this one holds it; a sweep leaves it.
        assert!(s.partial(&d('a')).unwrap().is_none());
        let lock = s.lock().unwrap();
        s.sweep(&Index::default(), &lock).unwrap();
        assert!(p.path.exists());
        drop(p);
        // Released: resumable by the next download, swept by rmi and prune.
        let again = s.partial(&d('a')).unwrap().expect("free again");
        assert_eq!(again.downloaded(), 4);
        drop(again);
        s.sweep(&Index::default(), &lock).unwrap();
        assert!(fs::read_dir(root.join("blobs/.partial"))
            .unwrap()
            .next()
            .is_none());
        fs::remove_dir_all(&root).unwrap();
    }
}
