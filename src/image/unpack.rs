//! Safe layer unpacking: a layer tar (gzip, zstd or plain) into a directory
//! of its own, every entry confined to that directory.
//!
//! A layer is untrusted input. Paths with `..` or a leading `/` refuse the
//! whole layer; every parent directory is opened with `openat2` and
//! `RESOLVE_BENEATH`, so a symlink planted by an earlier entry cannot lead a
//! later one (or a hardlink's target) outside; the final component is made
//! with the `*at` calls relative to that parent, never following a link.
//! Whiteouts become overlay whiteouts (0/0 character devices) and opaque
//! directories get `user.overlay.opaque`, which the kernel's overlayfs reads
//! when mounted with `userxattr` in a user namespace. Ownership is kept as far
//! as the caller's user namespace maps ids; device nodes are skipped.
//!
//! Extended attributes from PAX `SCHILY.xattr.*` records: `user.*` (except
//! `user.overlay.*`, which would steer the overlay) and `security.capability`
//! on regular files are applied; `trusted.*` and every other `security.*`
//! are skipped (they are not the image's to set). A file capability is
//! written as a v3 (namespaced) capability whose root id is the store's
//! user namespace root, so it means something only in sandboxes whose root
//! is that same uid, and nothing on the host. Where the kernel refuses one,
//! the layer still unpacks; the first such file is reported.

use std::ffi::{CString, OsStr};
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use sha2::Digest as _;

use super::reference::Digest;

/// A layer that unpacks to more than this is a bomb, not an image.
pub const MAX_UNPACKED: u64 = 64 << 30;
/// Entries per layer.
pub const MAX_ENTRIES: u64 = 2_000_000;

const RESOLVE_NO_MAGICLINKS: u64 = 0x02;
const RESOLVE_BENEATH: u64 = 0x08;

#[derive(Debug, thiserror::Error)]
pub enum UnpackError {
    #[error("refusing layer: entry {path:?} {reason}")]
    Hostile { path: String, reason: &'static str },
    #[error("cannot {op} {path:?} in the layer: {source}")]
    Io {
        op: &'static str,
        path: String,
        source: io::Error,
    },
    #[error("cannot read the layer's tar stream: {0}")]
    Stream(#[source] io::Error),
    #[error(
        "refusing layer: it unpacks to more than {MAX_UNPACKED} bytes or {MAX_ENTRIES} entries"
    )]
    TooBig,
}

impl UnpackError {
    /// A hostile or malformed layer: retrying the download cannot help.
    pub fn is_permanent(&self) -> bool {
        !matches!(self, UnpackError::Stream(_))
    }
}

/// What unpacking a layer found.
#[derive(Debug, Default, Clone)]
pub struct UnpackStats {
    pub entries: u64,
    pub bytes: u64,
    pub skipped_devices: Vec<String>,
    /// Some owner could not be kept (only one id is mapped).
    pub ownership_collapsed: bool,
    /// The first extended attribute that could not be kept: (file, name,
    /// why); and how many failed in all.
    pub xattr_failed: Option<(String, String, String)>,
    pub xattr_failures: u64,
}

/// A reader that hashes what passes through it.
pub struct HashReader<R> {
    inner: R,
    hasher: sha2::Sha256,
    pub count: u64,
}

impl<R: Read> HashReader<R> {
    pub fn new(inner: R) -> Self {
        HashReader {
            inner,
            hasher: sha2::Sha256::new(),
            count: 0,
        }
    }

    pub fn digest(&self) -> Digest {
        Digest::from_sha256(&self.hasher.clone().finalize())
    }

    pub fn into_inner(self) -> R {
        self.inner
    }
}

impl<R: Read> Read for HashReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.count += n as u64;
        Ok(n)
    }
}

/// Multi-frame zstd (skippable frames included) on top of ruzstd's frame
/// decoder, which reads one frame at a time.
struct ZstdReader<R> {
    src: BufReader<R>,
    dec: ruzstd::decoding::FrameDecoder,
    in_frame: bool,
}

impl<R: Read> Read for ZstdReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        use ruzstd::decoding::BlockDecodingStrategy;
        if buf.is_empty() {
            return Ok(0);
        }
        loop {
            if self.in_frame {
                while self.dec.can_collect() < buf.len() && !self.dec.is_finished() {
                    let want = buf.len() - self.dec.can_collect();
                    self.dec
                        .decode_blocks(&mut self.src, BlockDecodingStrategy::UptoBytes(want))
                        .map_err(io::Error::other)?;
                }
                let n = self.dec.read(buf)?;
                if n > 0 {
                    return Ok(n);
                }
                if self.dec.is_finished() {
                    self.in_frame = false;
                }
                continue;
            }
            let head = self.src.fill_buf()?;
            if head.is_empty() {
                return Ok(0);
            }
            let mut magic = [0u8; 4];
            self.src.read_exact(&mut magic)?;
            let m = u32::from_le_bytes(magic);
            if m & 0xFFFF_FFF0 == 0x184D_2A50 {
                let mut len = [0u8; 4];
                self.src.read_exact(&mut len)?;
                let len = u32::from_le_bytes(len) as u64;
                let skipped = io::copy(&mut (&mut self.src).take(len), &mut io::sink())?;
                if skipped != len {
                    return Err(io::ErrorKind::UnexpectedEof.into());
                }
                continue;
            }
            self.dec
                .reset(&mut (&magic[..]).chain(&mut self.src))
                .map_err(io::Error::other)?;
            self.in_frame = true;
        }
    }
}

/// Wrap `r` in the decompressor its first bytes call for: gzip, zstd, or
/// none (a plain tar). Sniffing, not the media type, decides: the bytes are
/// what will be parsed.
pub fn decompress<'a, R: Read + 'a>(r: R) -> io::Result<Box<dyn Read + 'a>> {
    let mut br = BufReader::with_capacity(256 * 1024, r);
    let head = br.fill_buf()?;
    Ok(if head.starts_with(&[0x1f, 0x8b]) {
        Box::new(flate2::bufread::MultiGzDecoder::new(br))
    } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Box::new(ZstdReader {
            src: br,
            dec: ruzstd::decoding::FrameDecoder::new(),
            in_frame: false,
        })
    } else {
        Box::new(br)
    })
}

/// Decompress and unpack `compressed` into the empty directory `dir`;
/// returns the diff id (digest of the uncompressed tar) and what was seen.
/// All of the stream is consumed, so a caller hashing it sees every byte.
pub fn unpack_layer(
    compressed: impl Read,
    dir: &Path,
) -> Result<(Digest, UnpackStats), UnpackError> {
    let plain = decompress(compressed).map_err(UnpackError::Stream)?;
    let mut hashed = HashReader::new(plain);
    let stats = unpack_tar(&mut hashed, dir)?;
    // Trailing bytes after the end-of-archive blocks count in the diff id.
    io::copy(&mut hashed, &mut io::sink()).map_err(UnpackError::Stream)?;
    Ok((hashed.digest(), stats))
}

/// Unpack an uncompressed tar stream into `dir`.
pub fn unpack_tar(tar_stream: impl Read, dir: &Path) -> Result<UnpackStats, UnpackError> {
    let root = File::open(dir).map_err(|source| UnpackError::Io {
        op: "open",
        path: dir.display().to_string(),
        source,
    })?;
    let mut u = Unpacker {
        root: root.as_raw_fd(),
        stats: UnpackStats::default(),
        dir_times: Vec::new(),
        buf: vec![0u8; 256 * 1024],
    };
    let mut archive = tar::Archive::new(tar_stream);
    let entries = archive.entries().map_err(UnpackError::Stream)?;
    for entry in entries {
        let mut entry = entry.map_err(UnpackError::Stream)?;
        u.stats.entries += 1;
        if u.stats.entries > MAX_ENTRIES {
            return Err(UnpackError::TooBig);
        }
        u.entry(&mut entry)?;
    }
    // Directory mtimes last: creating their children changed them.
    for (path, mtime) in std::mem::take(&mut u.dir_times).into_iter().rev() {
        if let Ok(fd) = u.open_beneath(&path, libc::O_RDONLY | libc::O_DIRECTORY) {
            let _ = set_times(fd.as_raw_fd(), None, mtime, 0);
        }
    }
    Ok(u.stats)
}

struct Unpacker {
    root: RawFd,
    stats: UnpackStats,
    dir_times: Vec<(PathBuf, u64)>,
    /// One copy buffer for every file of the layer.
    buf: Vec<u8>,
}

/// A path from a tar header, checked and made relative: `./a/b` is `a/b`;
/// `..` or a leading `/` anywhere refuses the layer.
fn confine(raw: &Path) -> Result<PathBuf, UnpackError> {
    let hostile = |reason| UnpackError::Hostile {
        path: raw.display().to_string(),
        reason,
    };
    let mut out = PathBuf::new();
    for c in raw.components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::CurDir => {}
            Component::ParentDir => return Err(hostile("climbs out with '..'")),
            Component::RootDir | Component::Prefix(_) => {
                return Err(hostile("is an absolute path"))
            }
        }
    }
    Ok(out)
}

impl Unpacker {
    fn io<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> UnpackError + 'a {
        move |source| {
            // openat2 says EXDEV when resolution would leave the layer.
            if source.raw_os_error() == Some(libc::EXDEV)
                || source.raw_os_error() == Some(libc::ELOOP)
            {
                UnpackError::Hostile {
                    path: path.display().to_string(),
                    reason: "resolves outside the layer through a symlink",
                }
            } else {
                UnpackError::Io {
                    op,
                    path: path.display().to_string(),
                    source,
                }
            }
        }
    }

    /// Open `rel` (relative to the layer's root) without ever leaving it.
    fn open_beneath(&self, rel: &Path, flags: i32) -> io::Result<OwnedFd> {
        let rel = if rel.as_os_str().is_empty() {
            Path::new(".")
        } else {
            rel
        };
        openat2(
            self.root,
            rel,
            flags,
            RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS,
        )
    }

    /// The parent directory of an entry, created (0755) where missing.
    fn parent(&self, rel: &Path, whole: &Path) -> Result<OwnedFd, UnpackError> {
        let flags = libc::O_RDONLY | libc::O_DIRECTORY;
        match self.open_beneath(rel, flags) {
            Ok(fd) => return Ok(fd),
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {}
            Err(e) => return Err(Self::io("open the parent of", whole)(e)),
        }
        let mut so_far = PathBuf::new();
        let mut fd = self
            .open_beneath(&so_far, flags)
            .map_err(Self::io("open", whole))?;
        for c in rel.components() {
            so_far.push(c);
            let name = cstring(c.as_os_str());
            // SAFETY: `fd` is an open directory and `name` a valid C string.
            let r = unsafe { libc::mkdirat(fd.as_raw_fd(), name.as_ptr(), 0o755) };
            if r != 0 {
                let e = io::Error::last_os_error();
                if e.raw_os_error() != Some(libc::EEXIST) {
                    return Err(Self::io("create directory", &so_far)(e));
                }
            }
            fd = self
                .open_beneath(&so_far, flags)
                .map_err(Self::io("open", &so_far))?;
        }
        Ok(fd)
    }

    fn entry<R: Read>(&mut self, entry: &mut tar::Entry<R>) -> Result<(), UnpackError> {
        let raw = entry.path().map_err(UnpackError::Stream)?.into_owned();
        let path = confine(&raw)?;
        let Some(name) = path.file_name().map(OsStr::to_os_string) else {
            // The layer's root itself: its metadata is the image's `/`,
            // which the overlay takes from the lowest layer; nothing to do.
            return Ok(());
        };
        let parent_rel = path.parent().unwrap_or(Path::new("")).to_path_buf();
        let xattrs = pax_xattrs(entry)?;
        let header = entry.header().clone();
        let kind = header.entry_type();
        let name_bytes = name.as_bytes();

        if name_bytes == b".wh..wh..opq" {
            let dir = self.parent(&parent_rel, &path)?;
            return fsetxattr(dir.as_raw_fd(), c"user.overlay.opaque", b"y")
                .map_err(Self::io("mark opaque", &parent_rel));
        }
        if let Some(hidden) = name_bytes.strip_prefix(b".wh.") {
            if hidden.is_empty() || hidden == b"." || hidden == b".." || hidden.contains(&b'/') {
                return Err(UnpackError::Hostile {
                    path: raw.display().to_string(),
                    reason: "is a whiteout of nothing",
                });
            }
            let dir = self.parent(&parent_rel, &path)?;
            let target = parent_rel.join(OsStr::from_bytes(hidden));
            let c = cstring(OsStr::from_bytes(hidden));
            self.clear(dir.as_raw_fd(), &c, &target, false)?;
            // SAFETY: `dir` is open and `c` a valid C string; a 0/0 character
            // device is overlayfs's whiteout, which needs no CAP_MKNOD.
            let r = unsafe { libc::mknodat(dir.as_raw_fd(), c.as_ptr(), libc::S_IFCHR, 0) };
            return check(r).map_err(Self::io("create whiteout", &target));
        }

        let dir = self.parent(&parent_rel, &path)?;
        let dirfd = dir.as_raw_fd();
        let c = cstring(&name);
        let mode = header.mode().unwrap_or(0o644) & 0o7777;
        let uid = header.uid().unwrap_or(0);
        let gid = header.gid().unwrap_or(0);
        let mtime = header.mtime().unwrap_or(0);

        use tar::EntryType as T;
        match kind {
            T::Directory => {
                self.clear(dirfd, &c, &path, true)?;
                // SAFETY: `dirfd` is open and `c` a valid C string.
                let r = unsafe { libc::mkdirat(dirfd, c.as_ptr(), 0o700) };
                if r != 0 && io::Error::last_os_error().raw_os_error() != Some(libc::EEXIST) {
                    return Err(Self::io("create directory", &path)(
                        io::Error::last_os_error(),
                    ));
                }
                let fd = openat(
                    dirfd,
                    &c,
                    libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW,
                )
                .map_err(Self::io("open", &path))?;
                self.own(fd.as_raw_fd(), None, uid, gid, &path)?;
                fchmod(fd.as_raw_fd(), mode).map_err(Self::io("chmod", &path))?;
                self.xattrs(fd.as_raw_fd(), &xattrs, false, &path);
                self.dir_times.push((path, mtime));
            }
            T::Regular | T::Continuous | T::GNUSparse => {
                self.clear(dirfd, &c, &path, false)?;
                let fd = openat(
                    dirfd,
                    &c,
                    libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL | libc::O_NOFOLLOW,
                )
                .map_err(Self::io("create", &path))?;
                let mut file = File::from(fd);
                let cap = MAX_UNPACKED - self.stats.bytes.min(MAX_UNPACKED);
                let n = copy_capped(entry, &mut file, cap, &mut self.buf)?;
                self.stats.bytes += n;
                self.own(file.as_raw_fd(), None, uid, gid, &path)?;
                fchmod(file.as_raw_fd(), mode).map_err(Self::io("chmod", &path))?;
                // After the data, chown and chmod: each of them would drop
                // a file capability set before.
                self.xattrs(file.as_raw_fd(), &xattrs, true, &path);
                set_times(file.as_raw_fd(), None, mtime, 0)
                    .map_err(Self::io("set times of", &path))?;
            }
            T::Symlink => {
                let target = header
                    .link_name_bytes()
                    .ok_or_else(|| UnpackError::Hostile {
                        path: raw.display().to_string(),
                        reason: "is a symlink without a target",
                    })?
                    .into_owned();
                // Long link names come from GNU/PAX headers.
                let target = match entry.link_name_bytes() {
                    Some(t) => t.into_owned(),
                    None => target,
                };
                self.clear(dirfd, &c, &path, false)?;
                let t = CString::new(target).map_err(|_| UnpackError::Hostile {
                    path: raw.display().to_string(),
                    reason: "has a NUL in its link target",
                })?;
                // SAFETY: both strings are valid and `dirfd` is open. The
                // target is stored, never followed here.
                let r = unsafe { libc::symlinkat(t.as_ptr(), dirfd, c.as_ptr()) };
                check(r).map_err(Self::io("create symlink", &path))?;
                self.own(dirfd, Some(&c), uid, gid, &path)?;
                set_times(dirfd, Some(&c), mtime, libc::AT_SYMLINK_NOFOLLOW)
                    .map_err(Self::io("set times of", &path))?;
            }
            T::Link => {
                let target = entry
                    .link_name()
                    .map_err(UnpackError::Stream)?
                    .ok_or_else(|| UnpackError::Hostile {
                        path: raw.display().to_string(),
                        reason: "is a hardlink without a target",
                    })?
                    .into_owned();
                let target = confine(&target)?;
                if target.as_os_str().is_empty() {
                    return Err(UnpackError::Hostile {
                        path: raw.display().to_string(),
                        reason: "is a hardlink to the layer's root",
                    });
                }
                let src = self
                    .open_beneath(&target, libc::O_PATH | libc::O_NOFOLLOW)
                    .map_err(Self::io("find the hardlink target", &target))?;
                self.clear(dirfd, &c, &path, false)?;
                let proc_path = CString::new(format!("/proc/self/fd/{}", src.as_raw_fd()))
                    .expect("no NUL in a number");
                // SAFETY: valid C strings and open descriptors. Linking the
                // already-confined O_PATH descriptor through /proc means the
                // target cannot be swapped between the check and the link.
                let r = unsafe {
                    libc::linkat(
                        libc::AT_FDCWD,
                        proc_path.as_ptr(),
                        dirfd,
                        c.as_ptr(),
                        libc::AT_SYMLINK_FOLLOW,
                    )
                };
                check(r).map_err(Self::io("create hardlink", &path))?;
            }
            T::Fifo => {
                self.clear(dirfd, &c, &path, false)?;
                // SAFETY: valid descriptor and C string; a fifo needs no privilege.
                let r = unsafe { libc::mknodat(dirfd, c.as_ptr(), libc::S_IFIFO | 0o600, 0) };
                check(r).map_err(Self::io("create fifo", &path))?;
                self.own(dirfd, Some(&c), uid, gid, &path)?;
                let fd = openat(dirfd, &c, libc::O_PATH | libc::O_NOFOLLOW)
                    .map_err(Self::io("open", &path))?;
                let _ = fchmod_path(fd.as_raw_fd(), mode);
            }
            T::Char | T::Block => {
                self.stats.skipped_devices.push(path.display().to_string());
            }
            // PAX global headers and the like carry nothing to write.
            _ => {}
        }
        Ok(())
    }

    /// Make room for a new entry `c` in `dirfd`: an existing file or link
    /// goes; an existing directory stays when a directory comes.
    fn clear(
        &self,
        dirfd: RawFd,
        c: &CString,
        path: &Path,
        keep_dir: bool,
    ) -> Result<(), UnpackError> {
        // SAFETY: a zeroed stat is a valid out-buffer.
        let mut st: libc::stat = unsafe { std::mem::zeroed() };
        // SAFETY: valid descriptor, C string and out-pointer.
        let r = unsafe { libc::fstatat(dirfd, c.as_ptr(), &mut st, libc::AT_SYMLINK_NOFOLLOW) };
        if r != 0 {
            return Ok(());
        }
        let is_dir = st.st_mode & libc::S_IFMT == libc::S_IFDIR;
        if is_dir && keep_dir {
            return Ok(());
        }
        if is_dir {
            // A directory replaced by a file: its tree goes, found through
            // the descriptor (not a path that could be swapped).
            let p = PathBuf::from(format!("/proc/self/fd/{dirfd}"))
                .join(OsStr::from_bytes(c.as_bytes()));
            return std::fs::remove_dir_all(p).map_err(Self::io("replace directory", path));
        }
        // SAFETY: valid descriptor and C string.
        let r = unsafe { libc::unlinkat(dirfd, c.as_ptr(), 0) };
        check(r).map_err(Self::io("replace", path))
    }

    /// Apply the extended attributes an entry carries (see the module
    /// doc); failures are counted, never fatal.
    fn xattrs(&mut self, fd: RawFd, xattrs: &[(String, Vec<u8>)], regular: bool, path: &Path) {
        for (name, value) in xattrs {
            let result = if name == "security.capability" {
                match namespaced_capability(value) {
                    Some(v3) if regular => {
                        fsetxattr(fd, c"security.capability", &v3).map_err(|e| e.to_string())
                    }
                    Some(_) => Err("not a regular file".to_string()),
                    None => Err("not a file capability for the container's root".to_string()),
                }
            } else {
                match CString::new(name.as_bytes()) {
                    Ok(c) => fsetxattr(fd, &c, value).map_err(|e| e.to_string()),
                    Err(_) => Err("a NUL in its name".to_string()),
                }
            };
            if let Err(why) = result {
                self.stats.xattr_failures += 1;
                if self.stats.xattr_failed.is_none() {
                    self.stats.xattr_failed = Some((path.display().to_string(), name.clone(), why));
                }
            }
        }
    }

    /// chown, tolerating ids the user namespace does not map (one uid only):
    /// the file then keeps the unpacker's own id.
    fn own(
        &mut self,
        fd: RawFd,
        name: Option<&CString>,
        uid: u64,
        gid: u64,
        path: &Path,
    ) -> Result<(), UnpackError> {
        let (uid, gid) = match (u32::try_from(uid), u32::try_from(gid)) {
            (Ok(u), Ok(g)) if u != u32::MAX && g != u32::MAX => (u, g),
            _ => {
                self.stats.ownership_collapsed = true;
                return Ok(());
            }
        };
        let r = match name {
            // SAFETY: valid descriptor and C string.
            Some(c) => unsafe {
                libc::fchownat(fd, c.as_ptr(), uid, gid, libc::AT_SYMLINK_NOFOLLOW)
            },
            // SAFETY: valid descriptor.
            None => unsafe { libc::fchown(fd, uid, gid) },
        };
        if r == 0 {
            return Ok(());
        }
        let e = io::Error::last_os_error();
        match e.raw_os_error() {
            Some(libc::EINVAL) | Some(libc::EPERM) => {
                if uid != 0 || gid != 0 {
                    self.stats.ownership_collapsed = true;
                }
                Ok(())
            }
            _ => Err(Self::io("chown", path)(e)),
        }
    }
}

/// Extended attributes per entry, at most.
const MAX_XATTRS: usize = 64;

/// The extended attributes of an entry that hutch keeps, from its PAX
/// `SCHILY.xattr.NAME=VALUE` records: `user.*` but not `user.overlay.*`,
/// and `security.capability`.
fn pax_xattrs<R: Read>(entry: &mut tar::Entry<R>) -> Result<Vec<(String, Vec<u8>)>, UnpackError> {
    let mut out = Vec::new();
    let Some(exts) = entry.pax_extensions().map_err(UnpackError::Stream)? else {
        return Ok(out);
    };
    for ext in exts {
        let ext = ext.map_err(UnpackError::Stream)?;
        let Some(name) = ext.key().ok().and_then(|k| k.strip_prefix("SCHILY.xattr.")) else {
            continue;
        };
        let keep = name == "security.capability"
            || (name.starts_with("user.") && !name.starts_with("user.overlay."));
        if keep && out.len() < MAX_XATTRS {
            out.push((name.to_string(), ext.value_bytes().to_vec()));
        }
    }
    Ok(out)
}

/// A `security.capability` value from a layer (v1, v2, or v3 with root id
/// 0) as a v3 capability with root id 0. Written from inside the store's
/// user namespace, the kernel records that root id as the namespace root's
/// uid, so the capability applies only where that uid is root. `None` for
/// anything else, including a v3 capability bound to another root.
fn namespaced_capability(v: &[u8]) -> Option<Vec<u8>> {
    const REVISION_MASK: u32 = 0xFF00_0000;
    const EFFECTIVE: u32 = 0x0000_0001;
    let word =
        |i: usize| -> Option<u32> { Some(u32::from_le_bytes(v.get(i..i + 4)?.try_into().ok()?)) };
    let magic = word(0)?;
    let mut data = [0u8; 16];
    match (magic & REVISION_MASK, v.len()) {
        (0x0100_0000, 12) => data[..8].copy_from_slice(&v[4..12]),
        (0x0200_0000, 20) => data.copy_from_slice(&v[4..20]),
        (0x0300_0000, 24) if word(20)? == 0 => data.copy_from_slice(&v[4..20]),
        _ => return None,
    }
    let mut out = (0x0300_0000 | (magic & EFFECTIVE)).to_le_bytes().to_vec();
    out.extend_from_slice(&data);
    out.extend_from_slice(&0u32.to_le_bytes());
    Some(out)
}

fn copy_capped(
    src: &mut impl Read,
    dst: &mut File,
    cap: u64,
    buf: &mut [u8],
) -> Result<u64, UnpackError> {
    let mut limited = src.take(cap + 1);
    let mut total = 0u64;
    loop {
        let n = match limited.read(buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(UnpackError::Stream(e)),
        };
        total += n as u64;
        if total > cap {
            return Err(UnpackError::TooBig);
        }
        dst.write_all(&buf[..n]).map_err(|source| UnpackError::Io {
            op: "write",
            path: String::new(),
            source,
        })?;
    }
    Ok(total)
}

fn cstring(s: &OsStr) -> CString {
    // Tar names come from NUL-terminated fields: a NUL cannot be inside.
    CString::new(s.as_bytes()).unwrap_or_default()
}

fn check(r: libc::c_int) -> io::Result<()> {
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

#[repr(C)]
struct OpenHow {
    flags: u64,
    mode: u64,
    resolve: u64,
}

/// `openat2(2)` with the given resolve flags.
pub fn openat2(dirfd: RawFd, path: &Path, flags: i32, resolve: u64) -> io::Result<OwnedFd> {
    let c = CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    let how = OpenHow {
        flags: (flags | libc::O_CLOEXEC) as u64,
        mode: 0,
        resolve,
    };
    // SAFETY: `how` is a valid `struct open_how` with its size given; `c`
    // outlives the call.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_openat2,
            dirfd,
            c.as_ptr(),
            &how as *const OpenHow,
            std::mem::size_of::<OpenHow>(),
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a fresh descriptor from the kernel, owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

fn openat(dirfd: RawFd, name: &CString, flags: i32) -> io::Result<OwnedFd> {
    // SAFETY: valid descriptor and C string; the mode is used only with O_CREAT.
    let fd = unsafe { libc::openat(dirfd, name.as_ptr(), flags | libc::O_CLOEXEC, 0o600) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a fresh descriptor owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn fchmod(fd: RawFd, mode: u32) -> io::Result<()> {
    // SAFETY: plain integers.
    check(unsafe { libc::fchmod(fd, mode) })
}

/// chmod through an O_PATH descriptor (fchmod refuses those).
fn fchmod_path(fd: RawFd, mode: u32) -> io::Result<()> {
    let p = CString::new(format!("/proc/self/fd/{fd}")).expect("no NUL");
    // SAFETY: a valid C string.
    check(unsafe { libc::chmod(p.as_ptr(), mode) })
}

fn set_times(fd: RawFd, name: Option<&CString>, mtime: u64, flags: i32) -> io::Result<()> {
    let t = libc::timespec {
        tv_sec: mtime.min(i64::MAX as u64) as libc::time_t,
        tv_nsec: 0,
    };
    let times = [t, t];
    match name {
        // SAFETY: valid descriptor, C string and a two-element array.
        Some(c) => check(unsafe { libc::utimensat(fd, c.as_ptr(), times.as_ptr(), flags) }),
        // SAFETY: valid descriptor and a two-element array.
        None => check(unsafe { libc::futimens(fd, times.as_ptr()) }),
    }
}

fn fsetxattr(fd: RawFd, name: &std::ffi::CStr, value: &[u8]) -> io::Result<()> {
    // SAFETY: valid descriptor, C string and value slice with its length.
    check(unsafe { libc::fsetxattr(fd, name.as_ptr(), value.as_ptr().cast(), value.len(), 0) })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{MetadataExt, PermissionsExt};

    /// A tar built by hand: `(path, kind, data-or-link-target)`.
    fn tar_of(entries: &[(&str, tar::EntryType, &[u8])]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for (path, kind, data) in entries {
            let mut h = tar::Header::new_gnu();
            h.set_entry_type(*kind);
            h.set_mode(if *kind == tar::EntryType::Directory {
                0o755
            } else {
                0o4755
            });
            h.set_mtime(1_000_000);
            // Write the name bytes raw: set_path refuses the hostile ones.
            let name = &mut h.as_old_mut().name;
            name[..path.len()].copy_from_slice(path.as_bytes());
            match kind {
                tar::EntryType::Symlink | tar::EntryType::Link => {
                    h.as_old_mut().linkname[..data.len()].copy_from_slice(data);
                    h.set_size(0);
                    h.set_cksum();
                    b.append(&h, &[][..]).unwrap();
                }
                _ => {
                    h.set_size(data.len() as u64);
                    h.set_cksum();
                    b.append(&h, *data).unwrap();
                }
            }
        }
        b.into_inner().unwrap()
    }

    fn tmp(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("hutch-unpack-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(d.join("layer")).unwrap();
        d
    }

    use tar::EntryType as T;

    #[test]
    fn files_dirs_links_modes_and_times() {
        let d = tmp("ok");
        let t = tar_of(&[
            ("./etc/", T::Directory, b""),
            ("etc/hosts", T::Regular, b"127.0.0.1 localhost\n"),
            ("etc/link", T::Symlink, b"/etc/hosts"),
            ("etc/hard", T::Link, b"etc/hosts"),
            ("usr/lib/deep/file", T::Regular, b"x"),
            ("dev/null", T::Char, b""),
        ]);
        let stats = unpack_tar(&t[..], &d.join("layer")).unwrap();
        let l = d.join("layer");
        assert_eq!(
            std::fs::read_to_string(l.join("etc/hosts")).unwrap(),
            "127.0.0.1 localhost\n"
        );
        assert_eq!(
            std::fs::read_link(l.join("etc/link")).unwrap(),
            Path::new("/etc/hosts")
        );
        let m = std::fs::metadata(l.join("etc/hosts")).unwrap();
        assert_eq!(m.permissions().mode() & 0o7777, 0o4755);
        assert_eq!(m.mtime(), 1_000_000);
        assert_eq!(m.nlink(), 2);
        assert_eq!(std::fs::metadata(l.join("etc")).unwrap().mtime(), 1_000_000);
        assert!(l.join("usr/lib/deep/file").is_file());
        assert_eq!(stats.skipped_devices, vec!["dev/null".to_string()]);
        assert!(!l.join("dev/null").exists());
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn whiteouts_and_opaque_dirs() {
        let d = tmp("wh");
        let t = tar_of(&[
            ("etc/.wh.motd", T::Regular, b""),
            ("opt/", T::Directory, b""),
            ("opt/.wh..wh..opq", T::Regular, b""),
        ]);
        unpack_tar(&t[..], &d.join("layer")).unwrap();
        let m = std::fs::symlink_metadata(d.join("layer/etc/motd")).unwrap();
        use std::os::unix::fs::FileTypeExt;
        assert!(m.file_type().is_char_device());
        assert_eq!(m.rdev(), 0);
        let mut buf = [0u8; 4];
        let p = CString::new(d.join("layer/opt").as_os_str().as_bytes()).unwrap();
        // SAFETY: valid C strings and buffer.
        let n = unsafe {
            libc::getxattr(
                p.as_ptr(),
                c"user.overlay.opaque".as_ptr(),
                buf.as_mut_ptr().cast(),
                4,
            )
        };
        assert_eq!(n, 1);
        assert_eq!(buf[0], b'y');
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn hostile_layers_are_refused_and_write_nothing_outside() {
        let cases: Vec<Vec<u8>> = vec![
            tar_of(&[("../escape", T::Regular, b"x")]),
            tar_of(&[("a/../../escape", T::Regular, b"x")]),
            tar_of(&[("/escape", T::Regular, b"x")]),
            tar_of(&[
                ("evil", T::Symlink, b".."),
                ("evil/escape", T::Regular, b"x"),
            ]),
            tar_of(&[
                ("evil", T::Symlink, b"/tmp"),
                ("evil/escape", T::Regular, b"x"),
            ]),
            tar_of(&[("hard", T::Link, b"../outside")]),
            tar_of(&[("ln", T::Symlink, b".."), ("hard", T::Link, b"ln/outside")]),
            tar_of(&[
                ("evil", T::Symlink, b".."),
                ("evil/.wh.outside", T::Regular, b""),
            ]),
        ];
        for (i, t) in cases.iter().enumerate() {
            let d = tmp(&format!("hostile{i}"));
            std::fs::write(d.join("outside"), b"keep").unwrap();
            let e = unpack_tar(&t[..], &d.join("layer")).unwrap_err();
            assert!(e.to_string().contains("refusing layer"), "case {i}: {e}");
            let names: Vec<_> = std::fs::read_dir(&d)
                .unwrap()
                .map(|e| e.unwrap().file_name())
                .collect();
            assert_eq!(names.len(), 2, "case {i} wrote outside: {names:?}");
            assert_eq!(
                std::fs::read(d.join("outside")).unwrap(),
                b"keep",
                "case {i}"
            );
            assert!(!Path::new("/tmp/escape").exists());
            std::fs::remove_dir_all(&d).unwrap();
        }
    }

    fn getxattr(p: &Path, name: &str) -> Option<Vec<u8>> {
        let p = CString::new(p.as_os_str().as_bytes()).unwrap();
        let n = CString::new(name).unwrap();
        let mut buf = vec![0u8; 256];
        // SAFETY: valid C strings and a buffer of the length given.
        let r =
            unsafe { libc::lgetxattr(p.as_ptr(), n.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
        (r >= 0).then(|| {
            buf.truncate(r as usize);
            buf
        })
    }

    fn words(w: &[u32]) -> Vec<u8> {
        w.iter().flat_map(|x| x.to_le_bytes()).collect()
    }

    #[test]
    fn capabilities_become_namespaced_v3() {
        let v3 = |m: u32, p: u32| words(&[m, p, 0, 0, 0, 0]);
        let raw = 1 << 13;
        assert_eq!(
            namespaced_capability(&words(&[0x0200_0001, raw, 0, 0, 0])),
            Some(v3(0x0300_0001, raw))
        );
        assert_eq!(
            namespaced_capability(&words(&[0x0100_0000, raw, 0])),
            Some(v3(0x0300_0000, raw))
        );
        assert_eq!(
            namespaced_capability(&words(&[0x0300_0001, raw, 0, 0, 0, 0])),
            Some(v3(0x0300_0001, raw))
        );
        // Bound to another namespace's root, truncated, or junk: refused.
        assert_eq!(
            namespaced_capability(&words(&[0x0300_0001, raw, 0, 0, 0, 1000])),
            None
        );
        assert_eq!(namespaced_capability(&words(&[0x0200_0001, raw])), None);
        assert_eq!(namespaced_capability(b"junk"), None);
    }

    #[test]
    fn xattrs_user_and_file_capability_kept_others_skipped() {
        let d = tmp("xattr");
        let mut b = tar::Builder::new(Vec::new());
        let cap = words(&[0x0200_0001, 1 << 13, 0, 0, 0]);
        b.append_pax_extensions([
            ("SCHILY.xattr.security.capability", &cap[..]),
            ("SCHILY.xattr.user.note", &b"hello"[..]),
            ("SCHILY.xattr.user.overlay.redirect", &b"/etc"[..]),
            ("SCHILY.xattr.trusted.evil", &b"x"[..]),
            (
                "SCHILY.xattr.security.selinux",
                &b"system_u:object_r:bin_t:s0"[..],
            ),
        ])
        .unwrap();
        let file = |name: &str| {
            let mut h = tar::Header::new_ustar();
            h.set_path(name).unwrap();
            h.set_mode(0o755);
            h.set_size(4);
            h.set_entry_type(T::Regular);
            h.set_cksum();
            h
        };
        b.append(&file("capped"), &b"\x7fELF"[..]).unwrap();
        b.append_pax_extensions([("SCHILY.xattr.security.capability", &b"junk"[..])])
            .unwrap();
        b.append(&file("bogus"), &b"\x7fELF"[..]).unwrap();
        let t = b.into_inner().unwrap();
        let stats = unpack_tar(&t[..], &d.join("layer")).unwrap();
        let capped = d.join("layer/capped");
        assert_eq!(
            getxattr(&capped, "user.note").as_deref(),
            Some(&b"hello"[..])
        );
        for skipped in ["user.overlay.redirect", "trusted.evil", "security.selinux"] {
            assert_eq!(getxattr(&capped, skipped), None, "{skipped}");
        }
        // SAFETY: no arguments.
        if unsafe { libc::geteuid() } == 0 {
            // Root of the initial namespace sees a root-id-0 capability as v2.
            let got = getxattr(&capped, "security.capability").expect("capability kept");
            assert_eq!(got[..8], words(&[0x0200_0001, 1 << 13])[..]);
            // The junk one is the one failure, reported by name.
            assert_eq!(stats.xattr_failures, 1);
            assert_eq!(stats.xattr_failed.unwrap().0, "bogus");
        }
        assert_eq!(
            getxattr(&d.join("layer/bogus"), "security.capability"),
            None
        );
        assert_eq!(std::fs::read(&capped).unwrap(), b"\x7fELF");
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn gzip_zstd_and_plain_give_the_same_diff_id() {
        let t = tar_of(&[("a", T::Regular, b"hello")]);
        let want = Digest::of(&t);
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&t).unwrap();
        let gz = gz.finish().unwrap();
        let zst =
            ruzstd::encoding::compress_to_vec(&t[..], ruzstd::encoding::CompressionLevel::Fastest);
        for (i, data) in [t.clone(), gz, zst].iter().enumerate() {
            let d = tmp(&format!("comp{i}"));
            let (diff, _) = unpack_layer(&data[..], &d.join("layer")).unwrap();
            assert_eq!(diff, want, "format {i}");
            assert_eq!(std::fs::read(d.join("layer/a")).unwrap(), b"hello");
            std::fs::remove_dir_all(&d).unwrap();
        }
    }
}
