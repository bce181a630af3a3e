//! Building the sandbox's root filesystem inside its new mount namespace:
//! overlay (or the host's system directories), volumes, tmpfs, /proc, /dev,
//! /sys, then `pivot_root` and the masked and read-only paths.
//!
//! Every mount target inside the new root is opened with `openat2` and
//! `RESOLVE_IN_ROOT`, so a symlink planted in an image cannot redirect a
//! mount to a host path.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::fs::{symlink, DirBuilderExt};
use std::path::{Component, Path, PathBuf};
use std::process::Command;

use super::error::SetupError;
use super::spec::{Mount, OverlayDriver, RootSource, Spec, UpperDir};
use super::sys;

/// Host directories that make up the `host` root, bound read-only.
const HOST_SYSTEM_DIRS: &[&str] = &[
    "/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/etc",
];

/// Files hidden from the workload (Docker's list): a bind of /dev/null over
/// files, an empty read-only tmpfs over directories. Each with the kind it
/// has on Linux (true: a directory), tried first: no stat is needed.
const MASKED_PATHS: &[(&str, bool)] = &[
    ("/proc/asound", true),
    ("/proc/acpi", true),
    ("/proc/interrupts", false),
    ("/proc/kcore", false),
    ("/proc/keys", false),
    ("/proc/latency_stats", false),
    ("/proc/timer_list", false),
    ("/proc/timer_stats", false),
    ("/proc/sched_debug", false),
    ("/proc/scsi", true),
    ("/sys/firmware", true),
    ("/sys/devices/virtual/powercap", true),
];

/// Kernel knobs the workload may read but never write.
const READONLY_PATHS: &[&str] = &[
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
];

/// Host device nodes bound into the private /dev.
const DEVICES: &[&str] = &["null", "zero", "full", "random", "urandom", "tty"];

type R<T> = Result<T, SetupError>;

fn on(p: impl AsRef<Path>) -> Option<String> {
    Some(format!("on {}", p.as_ref().display()))
}

/// Assemble the new root and pivot into it. On return the process's root
/// and working directory are the sandbox's `/`.
/// `before_pivot` runs once every mount is made, before `pivot_root`.
pub fn build(spec: &Spec, before_pivot: &mut dyn FnMut()) -> R<()> {
    sys::mount(
        None,
        Path::new("/"),
        None,
        libc::MS_REC | libc::MS_PRIVATE,
        None,
    )
    .map_err(|e| SetupError::io("cannot make mount propagation private", on("/"), &e))?;

    // A private tmpfs over the scratch directory holds the root (host mode)
    // or the overlay's upper and work dirs (ephemeral runs); it vanishes
    // with the mount namespace, so nothing is left on the host.
    let scratch = &spec.scratch;
    // Without a memory cgroup nothing else counts what the workload keeps
    // in tmpfs files (an --rm run's writable layer, host mode's /tmp): no
    // process's resident size holds them.
    let bounded;
    let options = match spec.limits.watch_memory {
        Some(bytes) => {
            bounded = format!("mode=0755,size={bytes}");
            bounded.as_str()
        }
        None => "mode=0755",
    };
    sys::mount(
        Some("tmpfs"),
        scratch,
        Some("tmpfs"),
        libc::MS_NOSUID | libc::MS_NODEV,
        Some(options),
    )
    .map_err(|e| SetupError::io("cannot mount scratch tmpfs", on(scratch), &e))?;

    let new_root = match &spec.root {
        RootSource::Host => {
            host_root(scratch)?;
            scratch.clone()
        }
        RootSource::Layers(lowers) if read_only_bind_fits(spec, lowers) => {
            // A read-only root of a single layer needs no overlay: a
            // read-only bind of the layer shows the same tree, without
            // overlay's fresh dentries, copy-ups and teardown at every run
            // (about a millisecond of CPU, most of a judge run's lead).
            let merged = scratch.join("root");
            mkdir(&merged, 0o755)?;
            bind(&lowers[0], &open_dir(&merged)?, true).map_err(|e| {
                SetupError::io("cannot bind the root filesystem", on(&lowers[0]), &e)
            })?;
            merged
        }
        RootSource::Layers(lowers) => {
            let (upper, work) = match &spec.upper {
                UpperDir::Ephemeral => {
                    let (u, w) = (scratch.join("upper"), scratch.join("work"));
                    mkdir(&u, 0o755)?;
                    mkdir(&w, 0o700)?;
                    (u, w)
                }
                UpperDir::Persistent { upper, work } => (upper.clone(), work.clone()),
            };
            let merged = scratch.join("root");
            mkdir(&merged, 0o755)?;
            if overlay(spec.overlay, lowers, &upper, &work, &merged)? == Overlay::Fuse {
                leave_fuse_daemon_behind()?;
            }
            merged
        }
        RootSource::Path(dir) => {
            let merged = scratch.join("root");
            mkdir(&merged, 0o755)?;
            let target = open_dir(&merged)?;
            bind(dir, &target, false)
                .map_err(|e| SetupError::io("cannot bind the root filesystem", on(dir), &e))?;
            merged
        }
    };

    // What masked directories show: an empty directory of the scratch
    // tmpfs, detached read-only here while it can still be named, bound
    // over them after the pivot. In host mode the scratch tmpfs is the root
    // itself, where it would show; masks then get a tmpfs of their own.
    let mut empty_tree = match spec.root {
        RootSource::Host => None,
        _ => Some(empty_dir_tree(scratch)?),
    };

    let root = open_dir(&new_root)?;
    if !spec.advanced.no_etc_files {
        etc_files(&root, spec)?;
    }
    proc_fs(&root)?;
    dev(&root, spec.process.terminal)?;
    sys_fs(&root)?;
    // Volumes last, in their order: one under /dev or /sys (an OCI
    // config's /dev/mqueue, /dev/shm, /sys/fs/cgroup) lands on top of the
    // filesystems above rather than under them.
    for m in &spec.mounts {
        volume(&root, m)?;
    }
    // The workdir must exist, as Docker creates it; created as root so the
    // user needs no write access to its parent.
    ensure_dir(&root, &spec.process.cwd)?;
    drop(root);

    before_pivot();
    std::env::set_current_dir(&new_root)
        .map_err(|e| SetupError::io("cannot enter the new root", on(&new_root), &e))?;
    sys::pivot_root_here().map_err(|e| SetupError::io("cannot pivot_root", on(&new_root), &e))?;
    // The old root is now stacked on top of the new one at "/"; detach it so
    // nothing of the host stays reachable.
    sys::umount_detach(Path::new("."))
        .map_err(|e| SetupError::io("cannot detach the old root", None, &e))?;
    std::env::set_current_dir("/").map_err(|e| SetupError::io("cannot chdir", on("/"), &e))?;

    // Kernel parameters of the sandbox's own namespaces, while /proc/sys
    // is still writable.
    for (key, value) in &spec.advanced.sysctl {
        sysctl(key, value)?;
    }
    let extra_masked = spec.advanced.masked_paths.iter().map(PathBuf::as_path);
    let mut empty_dir = None;
    let known = MASKED_PATHS
        .iter()
        .map(|&(p, dir)| (Path::new(p), Some(dir)));
    for (p, dir) in known.chain(extra_masked.map(|p| (p, None))) {
        mask(p, dir, &mut empty_tree, &mut empty_dir)?;
    }
    let extra_readonly = spec.advanced.readonly_paths.iter().map(PathBuf::as_path);
    for p in READONLY_PATHS.iter().map(Path::new).chain(extra_readonly) {
        readonly_bind(p)?;
    }
    if spec.readonly_root {
        sys::mount(
            None,
            Path::new("/"),
            None,
            libc::MS_REMOUNT | libc::MS_BIND | libc::MS_RDONLY | libc::MS_NOSUID | libc::MS_NODEV,
            None,
        )
        .map_err(|e| SetupError::io("cannot make the root read-only", on("/"), &e))?;
    }
    Ok(())
}

/// Whether the root can be a read-only bind of its only layer: the run
/// wants a read-only root, picked no overlay driver, and every mount point
/// it needs is already in the layer, since none can be made in a read-only
/// bind (an overlay makes them in its upper layer, outside the image).
fn read_only_bind_fits(spec: &Spec, lowers: &[PathBuf]) -> bool {
    if !spec.readonly_root || spec.overlay != OverlayDriver::Auto {
        return false;
    }
    let [layer] = lowers else {
        return false;
    };
    let Ok(root) = open_dir(layer) else {
        return false;
    };
    mount_points(spec)
        .iter()
        .all(|p| sys::open_in_root(root.as_raw_fd(), &in_root(p), libc::O_PATH).is_ok())
}

/// `path` (a path inside the sandbox) relative to its root: `.` for `/`.
fn in_root(path: &Path) -> PathBuf {
    let rel: PathBuf = path
        .components()
        .filter(|c| matches!(c, Component::Normal(_)))
        .collect();
    if rel.as_os_str().is_empty() {
        PathBuf::from(".")
    } else {
        rel
    }
}

/// Every path in the root that [`build`] mounts on or creates.
fn mount_points(spec: &Spec) -> Vec<&Path> {
    let mut points = vec![Path::new("/proc"), Path::new("/dev"), Path::new("/sys")];
    if !spec.advanced.no_etc_files {
        points.push(Path::new("/etc/hosts"));
        if spec.network.resolv_conf.is_some() {
            points.push(Path::new("/etc/resolv.conf"));
        }
    }
    points.extend(spec.mounts.iter().map(|m| m.destination().as_path()));
    points.push(&spec.process.cwd);
    points
}

fn mkdir(p: &Path, mode: u32) -> R<()> {
    std::fs::DirBuilder::new()
        .mode(mode)
        .create(p)
        .map_err(|e| SetupError::io("cannot create directory", Some(p.display().to_string()), &e))
}

fn open_dir(p: &Path) -> R<OwnedFd> {
    std::fs::File::open(p)
        .map(OwnedFd::from)
        .map_err(|e| SetupError::io("cannot open", Some(p.display().to_string()), &e))
}

fn host_root(root: &Path) -> R<()> {
    for dir in HOST_SYSTEM_DIRS {
        let host = Path::new(dir);
        let Ok(meta) = std::fs::symlink_metadata(host) else {
            continue;
        };
        let inside = root.join(&dir[1..]);
        if meta.file_type().is_symlink() {
            // Merged-/usr systems: /bin -> usr/bin stays a symlink.
            let target = std::fs::read_link(host)
                .map_err(|e| SetupError::io("cannot read link", Some(dir.to_string()), &e))?;
            symlink(&target, &inside)
                .map_err(|e| SetupError::io("cannot create symlink", Some(dir.to_string()), &e))?;
        } else if meta.is_dir() {
            mkdir(&inside, 0o755)?;
            let target = open_dir(&inside)?;
            bind(host, &target, true)
                .map_err(|e| SetupError::io("cannot bind host directory", on(dir), &e))?;
        }
    }
    for (dir, mode) in [
        ("tmp", 0o1777),
        ("home", 0o755),
        ("root", 0o700),
        ("var", 0o755),
    ] {
        mkdir(&root.join(dir), 0o755)?;
        std::fs::set_permissions(
            root.join(dir),
            std::os::unix::fs::PermissionsExt::from_mode(mode),
        )
        .map_err(|e| SetupError::io("cannot chmod", Some(dir.to_string()), &e))?;
    }
    mkdir(&root.join("var/tmp"), 0o755)?;
    std::fs::set_permissions(
        root.join("var/tmp"),
        std::os::unix::fs::PermissionsExt::from_mode(0o1777),
    )
    .map_err(|e| SetupError::io("cannot chmod", Some("/var/tmp".into()), &e))?;
    Ok(())
}

/// Which overlay got mounted.
#[derive(Debug, PartialEq, Eq)]
enum Overlay {
    Kernel,
    Fuse,
}

/// `pivot_root` moves the root of every process in the mount namespace
/// that sits on the old root, fuse-overlayfs included: its own paths would
/// then resolve through its own mount and deadlock. So the sandbox moves on
/// to a copy of the namespace (as Podman's containers do from the pause
/// process's) and leaves the daemon in this one with the host's root.
fn leave_fuse_daemon_behind() -> R<()> {
    // SAFETY: unshare takes only flags.
    let ret = unsafe { libc::unshare(libc::CLONE_NEWNS) };
    sys::check(ret as libc::c_long)
        .map_err(|e| SetupError::io("cannot create a mount namespace", None, &e))?;
    sys::mount(
        None,
        Path::new("/"),
        None,
        libc::MS_REC | libc::MS_PRIVATE,
        None,
    )
    .map_err(|e| SetupError::io("cannot make mount propagation private", on("/"), &e))
}

fn overlay(
    driver: OverlayDriver,
    lowers: &[PathBuf],
    upper: &Path,
    work: &Path,
    merged: &Path,
) -> R<Overlay> {
    let lower = lowers
        .iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(":");
    let opts = format!(
        "lowerdir={lower},upperdir={},workdir={}",
        upper.display(),
        work.display()
    );
    let kernel_err = if driver == OverlayDriver::Fuse {
        None
    } else {
        // `userxattr` keeps overlay's metadata in user.* xattrs, which is
        // what an unprivileged overlay mount in a user namespace may use.
        match sys::mount(
            Some("overlay"),
            merged,
            Some("overlay"),
            libc::MS_NOSUID | libc::MS_NODEV,
            Some(&format!("{opts},userxattr")),
        ) {
            Ok(()) => return Ok(Overlay::Kernel),
            Err(e) if driver == OverlayDriver::Kernel => {
                return Err(SetupError::io("cannot mount overlay", on("/"), &e).hint(
                    "kernel overlayfs in user namespaces needs Linux 5.11; use --overlay=fuse with fuse-overlayfs installed",
                ));
            }
            Err(e) => Some(e),
        }
    };
    let kernel_reason = kernel_err
        .map(|e| format!("kernel overlayfs refused ({e}); "))
        .unwrap_or_default();
    let status = Command::new("fuse-overlayfs")
        .arg("-o")
        .arg(&opts)
        .arg(merged)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .status();
    match status {
        Ok(s) if s.success() => Ok(Overlay::Fuse),
        Ok(s) => Err(SetupError::msg(
            "cannot mount overlay on /",
            format!("{kernel_reason}fuse-overlayfs exited with {s}"),
        )
        .hint("fuse-overlayfs needs read-write access to /dev/fuse")),
        Err(e) => Err(SetupError::msg(
            "cannot mount overlay on /",
            format!("{kernel_reason}fuse-overlayfs could not be run: {e}"),
        )
        .hint("kernel overlayfs in user namespaces needs Linux 5.11; install fuse-overlayfs")),
    }
}

/// Open `path` inside `root` (resolved as if `root` were `/`), creating any
/// missing directories, and the last component as a directory or an empty
/// file.
fn ensure_target(root: &OwnedFd, path: &Path, dir: bool) -> R<OwnedFd> {
    let rel = in_root(path);
    let open = |p: &Path| sys::open_in_root(root.as_raw_fd(), p, libc::O_PATH);
    match open(&rel) {
        Ok(fd) => return Ok(fd),
        Err(e) if e.raw_os_error() != Some(libc::ENOENT) => {
            return Err(SetupError::io("cannot open mount point", on(path), &e))
        }
        Err(_) => {}
    }
    let mut prefix = PathBuf::new();
    let comps: Vec<_> = rel.components().collect();
    for (i, c) in comps.iter().enumerate() {
        let parent = open_parent(root, &prefix)?;
        let name = sys::cstr(Path::new(c.as_os_str()))
            .map_err(|e| SetupError::io("bad path", on(path), &e))?;
        let last = i + 1 == comps.len();
        // SAFETY: `parent` is an open directory fd and `name` a valid C string.
        let ret = unsafe {
            if last && !dir {
                let fd = libc::openat(
                    parent.as_raw_fd(),
                    name.as_ptr(),
                    libc::O_CREAT | libc::O_WRONLY | libc::O_CLOEXEC | libc::O_NOFOLLOW,
                    0o644,
                );
                if fd >= 0 {
                    libc::close(fd);
                }
                fd
            } else {
                libc::mkdirat(parent.as_raw_fd(), name.as_ptr(), 0o755)
            }
        };
        if ret < 0 {
            let e = io::Error::last_os_error();
            if e.raw_os_error() != Some(libc::EEXIST) {
                return Err(SetupError::io("cannot create mount point", on(path), &e));
            }
        }
        prefix.push(c);
    }
    open(&rel).map_err(|e| SetupError::io("cannot open mount point", on(path), &e))
}

fn open_parent(root: &OwnedFd, prefix: &Path) -> R<OwnedFd> {
    let p = if prefix.as_os_str().is_empty() {
        Path::new(".")
    } else {
        prefix
    };
    sys::open_in_root(root.as_raw_fd(), p, libc::O_PATH | libc::O_DIRECTORY)
        .map_err(|e| SetupError::io("cannot open", on(prefix), &e))
}

fn ensure_dir(root: &OwnedFd, path: &Path) -> R<()> {
    ensure_target(root, path, true).map(drop)
}

/// A recursive bind of host `source` onto the open directory `target`,
/// never allowing setuid or device nodes through it.
fn bind(source: &Path, target: &OwnedFd, readonly: bool) -> io::Result<()> {
    let mut set = sys::MOUNT_ATTR_NOSUID | sys::MOUNT_ATTR_NODEV;
    if readonly {
        set |= sys::MOUNT_ATTR_RDONLY;
    }
    bind_with(source, target, set)
}

/// A recursive bind of `source` onto `target` with the mount attributes `set`.
fn bind_with(source: &Path, target: &OwnedFd, set: u64) -> io::Result<()> {
    let tree = tree_with(source, set)?;
    sys::move_mount_to_fd(tree.as_raw_fd(), target.as_raw_fd())
}

/// A detached recursive bind of `source` with the mount attributes `set`,
/// ready to be moved onto a mount point.
fn tree_with(source: &Path, set: u64) -> io::Result<OwnedFd> {
    let tree = sys::open_tree_clone(source)?;
    sys::mount_setattr(tree.as_raw_fd(), set, 0)?;
    Ok(tree)
}

/// Write one namespaced kernel parameter (`net.ipv4.ping_group_range`).
fn sysctl(key: &str, value: &str) -> R<()> {
    if key.is_empty() || key.split('.').any(|c| c.is_empty() || c == "..") || key.contains('/') {
        return Err(SetupError::msg("invalid sysctl", format!("{key:?}")));
    }
    let path = Path::new("/proc/sys").join(key.replace('.', "/"));
    std::fs::write(&path, value).map_err(|e| {
        SetupError::io("cannot set sysctl", Some(key.to_string()), &e).hint(
            "only namespaced parameters can be set, and only in a namespace of the sandbox's own",
        )
    })
}

/// `MS_*` flags as `MOUNT_ATTR_*` bits for mount_setattr(2).
fn mount_attrs(flags: u64) -> u64 {
    let mut set = sys::MOUNT_ATTR_NOSUID | sys::MOUNT_ATTR_NODEV;
    if flags & libc::MS_RDONLY != 0 {
        set |= sys::MOUNT_ATTR_RDONLY;
    }
    if flags & libc::MS_NOEXEC != 0 {
        set |= sys::MOUNT_ATTR_NOEXEC;
    }
    set
}

fn volume(root: &OwnedFd, m: &Mount) -> R<()> {
    match m {
        Mount::Flagged {
            fstype,
            source,
            destination,
            flags,
            recursive,
            data,
        } if fstype == "bind" => {
            let target = ensure_target(root, destination, source.is_dir())?;
            let fail = |e: io::Error| {
                SetupError::io(
                    "cannot bind-mount",
                    Some(format!("{} on {}", source.display(), destination.display())),
                    &e,
                )
            };
            if !data.is_empty() {
                return Err(fail(io::Error::from_raw_os_error(libc::EINVAL)));
            }
            let tree = sys::open_tree(source, *recursive).map_err(fail)?;
            sys::mount_setattr(tree.as_raw_fd(), mount_attrs(*flags), 0).map_err(fail)?;
            sys::move_mount_to_fd(tree.as_raw_fd(), target.as_raw_fd()).map_err(fail)
        }
        Mount::Flagged {
            fstype,
            source,
            destination,
            flags,
            data,
            ..
        } => {
            let target = ensure_target(root, destination, true)?;
            let source = source.to_string_lossy();
            sys::mount(
                Some(&source),
                Path::new(&sys::fd_path(&target)),
                Some(fstype),
                *flags | libc::MS_NOSUID | libc::MS_NODEV,
                (!data.is_empty()).then_some(data.as_str()),
            )
            .map_err(|e| SetupError::io(format!("cannot mount {fstype}"), on(destination), &e))
        }
        Mount::Bind {
            source,
            destination,
            readonly,
        } => {
            let target = ensure_target(root, destination, source.is_dir())?;
            bind(source, &target, *readonly).map_err(|e| {
                SetupError::io(
                    "cannot bind-mount volume",
                    Some(format!("{} on {}", source.display(), destination.display())),
                    &e,
                )
            })
        }
        Mount::Tmpfs {
            destination,
            size,
            mode,
        } => {
            let target = ensure_target(root, destination, true)?;
            let mut opts = format!("mode={mode:o}");
            if let Some(s) = size {
                opts.push_str(&format!(",size={s}"));
            }
            sys::mount(
                Some("tmpfs"),
                Path::new(&sys::fd_path(&target)),
                Some("tmpfs"),
                libc::MS_NOSUID | libc::MS_NODEV,
                Some(&opts),
            )
            .map_err(|e| SetupError::io("cannot mount tmpfs", on(destination), &e))
        }
    }
}

/// The sandbox's own /etc/hosts (and /etc/resolv.conf when the network
/// needs one): written to the scratch tmpfs and bound over the rootfs's, so
/// the image is never modified.
fn etc_files(root: &OwnedFd, spec: &Spec) -> R<()> {
    let mut files = vec![("hosts", spec.network.hosts(&spec.hostname))];
    if let Some(r) = &spec.network.resolv_conf {
        files.push(("resolv.conf", r.clone()));
    }
    for (name, content) in files {
        let src = spec.scratch.join(format!("etc-{name}"));
        std::fs::write(&src, content)
            .map_err(|e| SetupError::io("cannot write", Some(src.display().to_string()), &e))?;
        let dst = Path::new("/etc").join(name);
        let target = ensure_target(root, &dst, false)?;
        bind(&src, &target, true).map_err(|e| SetupError::io("cannot bind", on(&dst), &e))?;
        // The mount keeps the file; its name on the scratch tmpfs (which is
        // the root itself for `host`) must not show.
        let _ = std::fs::remove_file(&src);
    }
    Ok(())
}

fn proc_fs(root: &OwnedFd) -> R<()> {
    let target = ensure_target(root, Path::new("/proc"), true)?;
    sys::mount(
        Some("proc"),
        Path::new(&sys::fd_path(&target)),
        Some("proc"),
        libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
        None,
    )
    .map_err(|e| {
        SetupError::io("cannot mount", on("/proc"), &e)
            .hint("a fresh /proc needs a fully visible /proc on the host (no masked /proc, as inside another container)")
    })
}

fn sys_fs(root: &OwnedFd) -> R<()> {
    let target = ensure_target(root, Path::new("/sys"), true)?;
    let flags = libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC | libc::MS_RDONLY;
    let path = sys::fd_path(&target);
    if sys::mount(Some("sysfs"), Path::new(&path), Some("sysfs"), flags, None).is_ok() {
        return Ok(());
    }
    // sysfs may be refused (for example when /sys is partly masked on the
    // host); a read-only bind of the host's shows the same thing.
    bind(Path::new("/sys"), &target, true)
        .map_err(|e| SetupError::io("cannot mount", on("/sys"), &e))
}

fn dev(root: &OwnedFd, _terminal: bool) -> R<()> {
    let target = ensure_target(root, Path::new("/dev"), true)?;
    let path = PathBuf::from(sys::fd_path(&target));
    sys::mount(
        Some("tmpfs"),
        &path,
        Some("tmpfs"),
        // nodev too: the device nodes are binds, mounts of their own.
        libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
        Some("mode=0755,size=65536k"),
    )
    .map_err(|e| SetupError::io("cannot mount", on("/dev"), &e))?;
    // Reopen: the fd above names the directory under the new tmpfs.
    let devfd = ensure_target(root, Path::new("/dev"), true)?;
    for name in DEVICES {
        let host = Path::new("/dev").join(name);
        let fail = |e: io::Error| SetupError::io("cannot bind device", on(&host), &e);
        // The host's node first: one the host lacks is left out. The one
        // bind that must let a device node through: no nodev.
        let tree = match tree_with(&host, sys::MOUNT_ATTR_NOSUID | sys::MOUNT_ATTR_NOEXEC) {
            Ok(tree) => tree,
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => continue,
            Err(e) => return Err(fail(e)),
        };
        let node = make_in_new_dir(&devfd, "/dev", name, false)?;
        sys::move_mount_to_fd(tree.as_raw_fd(), node.as_raw_fd()).map_err(fail)?;
    }
    let pts = make_in_new_dir(&devfd, "/dev", "pts", true)?;
    sys::mount(
        Some("devpts"),
        Path::new(&sys::fd_path(&pts)),
        Some("devpts"),
        libc::MS_NOSUID | libc::MS_NOEXEC,
        Some("newinstance,ptmxmode=0666,mode=0620"),
    )
    .map_err(|e| SetupError::io("cannot mount", on("/dev/pts"), &e))?;
    // /dev/shm is a sticky directory of /dev's tmpfs rather than a tmpfs of
    // its own: the same 64 MiB bound Docker gives it (shared with /dev's few
    // nodes), the same nosuid and noexec (and nodev, which the kernel
    // imposes on every filesystem a user namespace mounts), one superblock
    // less to make and tear down per run. Made relative to /dev's
    // descriptor, as the links below: no walk through /proc/self/fd each.
    // SAFETY: an open directory fd and a NUL-terminated constant name.
    let made = unsafe {
        libc::mkdirat(devfd.as_raw_fd(), c"shm".as_ptr(), 0o1777) == 0
            // The umask took the sticky and write bits off.
            && libc::fchmodat(devfd.as_raw_fd(), c"shm".as_ptr(), 0o1777, 0) == 0
    };
    if !made {
        let e = io::Error::last_os_error();
        return Err(SetupError::io("cannot create", Some("/dev/shm".into()), &e));
    }
    for (link, to) in [
        (c"ptmx", c"pts/ptmx"),
        (c"fd", c"/proc/self/fd"),
        (c"stdin", c"/proc/self/fd/0"),
        (c"stdout", c"/proc/self/fd/1"),
        (c"stderr", c"/proc/self/fd/2"),
    ] {
        // SAFETY: NUL-terminated constants and an open directory fd.
        if unsafe { libc::symlinkat(to.as_ptr(), devfd.as_raw_fd(), link.as_ptr()) } != 0 {
            let e = io::Error::last_os_error();
            let shown = format!("/dev/{}", link.to_string_lossy());
            return Err(SetupError::io("cannot create symlink", Some(shown), &e));
        }
    }
    Ok(())
}

/// Make `name` (a directory, or an empty file to mount a node on) in
/// `dir` (`shown` in messages), a filesystem this sandbox just mounted and
/// nothing else has written: no path to resolve and nothing there yet, so
/// one call (two for a directory) instead of [`ensure_target`]'s walk;
/// `O_EXCL` and `O_NOFOLLOW` all the same.
fn make_in_new_dir(dir: &OwnedFd, shown: &str, name: &str, is_dir: bool) -> R<OwnedFd> {
    let fail = |e: io::Error| {
        SetupError::io(
            "cannot create mount point",
            on(Path::new(shown).join(name)),
            &e,
        )
    };
    let c = sys::cstr(Path::new(name)).map_err(fail)?;
    let flags = libc::O_CLOEXEC | libc::O_NOFOLLOW;
    // SAFETY: `dir` is an open directory fd and `c` a valid C string.
    let fd = unsafe {
        if is_dir {
            if libc::mkdirat(dir.as_raw_fd(), c.as_ptr(), 0o755) < 0 {
                return Err(fail(io::Error::last_os_error()));
            }
            libc::openat(
                dir.as_raw_fd(),
                c.as_ptr(),
                flags | libc::O_PATH | libc::O_DIRECTORY,
            )
        } else {
            let create = flags | libc::O_CREAT | libc::O_EXCL | libc::O_WRONLY;
            libc::openat(dir.as_raw_fd(), c.as_ptr(), create, 0o644)
        }
    };
    if fd < 0 {
        return Err(fail(io::Error::last_os_error()));
    }
    // SAFETY: a fresh descriptor owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// A detached, read-only, nosuid, nodev, noexec bind of a new empty
/// directory on the scratch tmpfs.
fn empty_dir_tree(scratch: &Path) -> R<OwnedFd> {
    let empty = scratch.join("empty");
    mkdir(&empty, 0o555)?;
    let tree = sys::open_tree_clone(&empty)
        .map_err(|e| SetupError::io("cannot bind", Some(empty.display().to_string()), &e))?;
    sys::mount_setattr(
        tree.as_raw_fd(),
        sys::MOUNT_ATTR_RDONLY
            | sys::MOUNT_ATTR_NOSUID
            | sys::MOUNT_ATTR_NODEV
            | sys::MOUNT_ATTR_NOEXEC,
        0,
    )
    .map_err(|e| {
        SetupError::io(
            "cannot make read-only",
            Some(empty.display().to_string()),
            &e,
        )
    })?;
    Ok(tree)
}

/// Hide `p`: a file under /dev/null, a directory under an empty read-only
/// directory ([`mask_dir`]). `dir` is the kind `p` is expected to be
/// (`None`: unknown, looked up); a path that turns out to be the other
/// kind is hidden as that one, and a missing one needs no hiding.
fn mask(
    p: &Path,
    dir: Option<bool>,
    empty_tree: &mut Option<OwnedFd>,
    empty_dir: &mut Option<PathBuf>,
) -> R<()> {
    let fail = |e: &io::Error| SetupError::io("cannot mask", Some(p.display().to_string()), e);
    let dir = match dir {
        Some(dir) => dir,
        None => match std::fs::symlink_metadata(p) {
            Ok(m) => m.is_dir(),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(fail(&e)),
        },
    };
    let res = if dir {
        mask_dir(p, empty_tree, empty_dir)
    } else {
        sys::mount(Some("/dev/null"), p, None, libc::MS_BIND, None)
    };
    match res {
        Ok(()) => Ok(()),
        // Not there on this kernel: nothing to hide.
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(()),
        // The other kind than expected: as the kind it is (a directory
        // moved onto a file is EINVAL to move_mount, ENOTDIR to mount).
        Err(e)
            if matches!(
                e.raw_os_error(),
                Some(libc::ENOTDIR) | Some(libc::EISDIR) | Some(libc::EINVAL)
            ) =>
        {
            match std::fs::symlink_metadata(p) {
                Ok(m) if m.is_dir() != dir => mask(p, Some(!dir), empty_tree, empty_dir),
                _ => Err(fail(&e)),
            }
        }
        Err(e) => Err(fail(&e)),
    }
}

/// Hide directory `p` under an empty read-only directory. The first gets
/// `empty_tree` (or, without one, an empty read-only tmpfs), and
/// `empty_dir` then names it; the others are binds of it, which carry its
/// read-only, nosuid, nodev and noexec flags: no superblock of their own to
/// make and tear down.
fn mask_dir(
    p: &Path,
    empty_tree: &mut Option<OwnedFd>,
    empty_dir: &mut Option<PathBuf>,
) -> io::Result<()> {
    if let Some(empty) = empty_dir.as_deref() {
        return sys::mount(Some(&empty.to_string_lossy()), p, None, libc::MS_BIND, None);
    }
    let made = match empty_tree.take() {
        Some(tree) => sys::move_mount_to_path(tree.as_raw_fd(), p, false)
            .inspect_err(|_| *empty_tree = Some(tree)),
        None => sys::mount(
            Some("tmpfs"),
            p,
            Some("tmpfs"),
            libc::MS_RDONLY | libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
            Some("size=0,mode=0555"),
        ),
    };
    if made.is_ok() {
        *empty_dir = Some(p.to_path_buf());
    }
    made
}

fn readonly_bind(p: &Path) -> R<()> {
    let res = (|| {
        let tree = sys::open_tree_clone(p)?;
        sys::mount_setattr(
            tree.as_raw_fd(),
            sys::MOUNT_ATTR_RDONLY | sys::MOUNT_ATTR_NOSUID | sys::MOUNT_ATTR_NODEV,
            0,
        )?;
        // A symlink is followed, as the source's is by open_tree.
        sys::move_mount_to_path(tree.as_raw_fd(), p, true)
    })();
    match res {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(SetupError::io(
            "cannot make read-only",
            Some(p.display().to_string()),
            &e,
        )),
    }
}
