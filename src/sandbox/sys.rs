//! Thin, checked wrappers over the raw Linux calls the engine needs.
//!
//! Every function returns `io::Result` so callers can attach the step and the
//! path to the error. Only syscalls that `libc` lacks a wrapper for (or whose
//! constants it does not export on every version) are spelled out here; the
//! rest of the engine stays free of `unsafe`.

use std::ffi::{CStr, CString};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// Turn a `-1` return into the thread's errno.
pub fn check(ret: libc::c_long) -> io::Result<libc::c_long> {
    if ret == -1 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

pub fn cstr(path: &Path) -> io::Result<CString> {
    CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path contains a NUL byte"))
}

// Constants of the new mount API and openat2, spelled out because libc does
// not export them on every version we build with.
pub const OPEN_TREE_CLONE: libc::c_uint = 1;
pub const OPEN_TREE_CLOEXEC: libc::c_uint = libc::O_CLOEXEC as libc::c_uint;
pub const AT_RECURSIVE: libc::c_uint = 0x8000;
pub const MOVE_MOUNT_F_EMPTY_PATH: libc::c_uint = 0x4;
pub const MOVE_MOUNT_T_EMPTY_PATH: libc::c_uint = 0x40;
pub const MOVE_MOUNT_T_SYMLINKS: libc::c_uint = 0x10;
pub const MOUNT_ATTR_RDONLY: u64 = 0x1;
pub const MOUNT_ATTR_NOSUID: u64 = 0x2;
pub const MOUNT_ATTR_NODEV: u64 = 0x4;
pub const MOUNT_ATTR_NOEXEC: u64 = 0x8;
pub const RESOLVE_NO_MAGICLINKS: u64 = 0x02;
pub const RESOLVE_IN_ROOT: u64 = 0x10;

#[repr(C)]
struct MountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}

#[repr(C)]
struct OpenHow {
    flags: u64,
    mode: u64,
    resolve: u64,
}

/// `open_tree(2)`: a detached copy of the mount tree at `path` (recursive).
pub fn open_tree_clone(path: &Path) -> io::Result<OwnedFd> {
    open_tree(path, true)
}

/// `open_tree(2)`: a detached copy of the mount at `path`, with the mounts
/// below it when `recursive`.
pub fn open_tree(path: &Path, recursive: bool) -> io::Result<OwnedFd> {
    let c = cstr(path)?;
    let recursive = if recursive { AT_RECURSIVE } else { 0 };
    // SAFETY: `c` is a valid NUL-terminated string that outlives the call; the
    // kernel returns a new fd that we take ownership of.
    let fd = check(unsafe {
        libc::syscall(
            libc::SYS_open_tree,
            libc::AT_FDCWD,
            c.as_ptr(),
            OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | recursive,
        )
    })?;
    // SAFETY: the kernel just handed us this descriptor and nobody else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

/// `mount_setattr(2)` on a detached tree or a mount point fd, recursively.
pub fn mount_setattr(fd: RawFd, set: u64, clear: u64) -> io::Result<()> {
    let attr = MountAttr {
        attr_set: set,
        attr_clr: clear,
        propagation: 0,
        userns_fd: 0,
    };
    let empty = c"";
    // SAFETY: `attr` is a properly laid out `struct mount_attr` living on the
    // stack for the duration of the call, and its size is passed alongside.
    check(unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            fd,
            empty.as_ptr(),
            libc::AT_EMPTY_PATH as libc::c_uint | AT_RECURSIVE,
            &attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    })?;
    Ok(())
}

/// `move_mount(2)` of a detached tree onto the directory `to` refers to.
pub fn move_mount_to_fd(from: RawFd, to: RawFd) -> io::Result<()> {
    move_mount(from, to, c"", MOVE_MOUNT_T_EMPTY_PATH)
}

/// `move_mount(2)` of a detached tree onto `to`, a path of this process's
/// own view, its final symlink followed only if `follow`: for targets in a
/// filesystem the sandbox just mounted, such as its /proc, with no
/// descriptor to open and close for each.
pub fn move_mount_to_path(from: RawFd, to: &Path, follow: bool) -> io::Result<()> {
    let flags = if follow { MOVE_MOUNT_T_SYMLINKS } else { 0 };
    move_mount(from, libc::AT_FDCWD, &cstr(to)?, flags)
}

/// `move_mount(2)` of the detached tree `from` onto `to_path` at `to_dir`.
fn move_mount(from: RawFd, to_dir: RawFd, to_path: &CStr, flags: libc::c_uint) -> io::Result<()> {
    // SAFETY: `from` (and `to_dir` unless AT_FDCWD) are open for the call's
    // duration; both paths are valid C strings that outlive it.
    check(unsafe {
        libc::syscall(
            libc::SYS_move_mount,
            from,
            c"".as_ptr(),
            to_dir,
            to_path.as_ptr(),
            MOVE_MOUNT_F_EMPTY_PATH | flags,
        )
    })?;
    Ok(())
}

/// `openat2(2)` with `RESOLVE_IN_ROOT`: `path` is resolved as if `root` were
/// `/`, so neither `..` nor an absolute symlink planted by an image can lead
/// outside of it.
pub fn open_in_root(root: RawFd, path: &Path, flags: i32) -> io::Result<OwnedFd> {
    let c = cstr(path)?;
    let how = OpenHow {
        flags: (flags | libc::O_CLOEXEC) as u64,
        mode: 0,
        resolve: RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS,
    };
    // SAFETY: `how` is a valid `struct open_how` with its size given, and `c`
    // outlives the call.
    let fd = check(unsafe {
        libc::syscall(
            libc::SYS_openat2,
            root,
            c.as_ptr(),
            &how as *const OpenHow,
            std::mem::size_of::<OpenHow>(),
        )
    })?;
    // SAFETY: a fresh descriptor from the kernel, owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

/// Plain `mount(2)`.
pub fn mount(
    source: Option<&str>,
    target: &Path,
    fstype: Option<&str>,
    flags: libc::c_ulong,
    data: Option<&str>,
) -> io::Result<()> {
    let src = source.map(|s| CString::new(s).unwrap_or_default());
    let tgt = cstr(target)?;
    let fs = fstype.map(|s| CString::new(s).unwrap_or_default());
    let dat = data.map(|s| CString::new(s).unwrap_or_default());
    let p = |c: &Option<CString>| c.as_ref().map_or(std::ptr::null(), |c| c.as_ptr());
    // SAFETY: every pointer is either NULL or a NUL-terminated string that
    // lives until the call returns.
    let ret = unsafe {
        libc::mount(
            p(&src),
            tgt.as_ptr(),
            p(&fs),
            flags,
            p(&dat) as *const libc::c_void,
        )
    };
    check(ret as libc::c_long).map(|_| ())
}

/// A path naming an open descriptor, usable as a mount target.
pub fn fd_path(fd: &impl AsRawFd) -> String {
    format!("/proc/self/fd/{}", fd.as_raw_fd())
}

pub fn umount_detach(target: &Path) -> io::Result<()> {
    let c = cstr(target)?;
    // SAFETY: `c` is a valid C string for the duration of the call.
    check(unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) } as libc::c_long).map(|_| ())
}

pub fn pivot_root_here() -> io::Result<()> {
    let dot = c".";
    // SAFETY: pivot_root with "." twice stacks the old root under the new one
    // (as runc does); both arguments are valid C strings.
    check(unsafe { libc::syscall(libc::SYS_pivot_root, dot.as_ptr(), dot.as_ptr()) })?;
    Ok(())
}

pub fn prctl(option: libc::c_int, arg2: libc::c_ulong) -> io::Result<()> {
    // SAFETY: prctl with integer arguments only; the options we use do not
    // take pointers.
    check(unsafe { libc::prctl(option, arg2, 0, 0, 0) } as libc::c_long).map(|_| ())
}

/// A pipe whose both ends are close-on-exec.
pub fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    // SAFETY: `fds` has room for the two descriptors pipe2 writes.
    check(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } as libc::c_long)?;
    // SAFETY: both descriptors are fresh and owned by us alone.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

pub fn write_all(fd: RawFd, mut buf: &[u8]) -> io::Result<()> {
    while !buf.is_empty() {
        // SAFETY: `buf` is a valid readable slice of the given length.
        let n = unsafe { libc::write(fd, buf.as_ptr().cast(), buf.len()) };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        buf = &buf[n as usize..];
    }
    Ok(())
}

/// Read until EOF (or `max` bytes).
pub fn read_to_end(fd: RawFd, max: usize) -> io::Result<Vec<u8>> {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        // SAFETY: `buf` is a valid writable buffer of the given length.
        let n = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        if n == 0 || out.len() >= max {
            return Ok(out);
        }
        out.extend_from_slice(&buf[..n as usize]);
    }
}

pub fn dup2(from: RawFd, to: RawFd) -> io::Result<()> {
    // SAFETY: dup2 on integers; the kernel validates both.
    check(unsafe { libc::dup2(from, to) } as libc::c_long).map(|_| ())
}

pub fn errno_name(errno: i32) -> String {
    // SAFETY: strerror returns a pointer to a static (or thread-local) string
    // that we copy out immediately.
    unsafe { CStr::from_ptr(libc::strerror(errno)) }
        .to_string_lossy()
        .into_owned()
}

/// Mark every descriptor from 3 up close-on-exec, so nothing the caller
/// held (a directory outside the new root, a pidfd, a lock) reaches an
/// exec'd workload.
pub fn cloexec_from_3() -> io::Result<()> {
    cloexec_from(3)
}

/// Mark every descriptor from `first` up close-on-exec.
pub fn cloexec_from(first: u32) -> io::Result<()> {
    // SAFETY: close_range on integers; marking close-on-exec touches no memory.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_close_range,
            first,
            u32::MAX,
            libc::CLOSE_RANGE_CLOEXEC,
        )
    };
    check(ret).map(drop)
}

/// Keep descriptors 3 to 3+`count`-1 (passed on purpose) open across exec
/// and mark every other one from 3 up close-on-exec.
pub fn keep_passed_fds(count: u32) -> io::Result<()> {
    for fd in 3..3 + count {
        // SAFETY: fcntl on an integer descriptor; no memory is touched.
        check(unsafe { libc::fcntl(fd as RawFd, libc::F_SETFD, 0) } as libc::c_long)?;
    }
    cloexec_from(3 + count)
}

/// A stack for a `CLONE_VM` child, mapped anew with a guard page at its
/// low end: an overflow faults there instead of running into the memory
/// it shares.
pub struct ChildStack {
    base: *mut libc::c_void,
    len: usize,
}

impl ChildStack {
    const GUARD: usize = 4 << 10;

    /// `size` usable bytes, or `None` if the mapping failed.
    pub fn map(size: usize) -> Option<ChildStack> {
        let len = size + Self::GUARD;
        // SAFETY: an anonymous private mapping; no existing memory is touched.
        let base = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_STACK | libc::MAP_NORESERVE,
                -1,
                0,
            )
        };
        if base == libc::MAP_FAILED {
            return None;
        }
        // SAFETY: the lowest page of the mapping just made.
        unsafe { libc::mprotect(base, Self::GUARD, libc::PROT_NONE) };
        Some(ChildStack { base, len })
    }

    /// The initial stack pointer: the end of the mapping (stacks grow down
    /// on every architecture hutch builds for), page-aligned.
    pub fn top(&self) -> *mut libc::c_void {
        // SAFETY: one past the end of the mapping made by `map`.
        unsafe { self.base.cast::<u8>().add(self.len).cast() }
    }

    /// Unmap it, once no child runs on it.
    pub fn unmap(self) {
        // SAFETY: the mapping made by `map`, which the caller says is unused.
        unsafe { libc::munmap(self.base, self.len) };
    }
}

/// Run `f` in a new child process that shares this process's memory until
/// it execs or exits, while this one waits (`CLONE_VM | CLONE_VFORK`, as
/// posix_spawn does): nothing of the address space is copied for a
/// process that is about to exec. `f` must end in `execve` or `_exit`.
/// It runs on a stack of its own; it may allocate (this process is
/// suspended, so the heap is consistent and is left as `f` leaves it), but
/// must not rely on thread identity (the thread-local block, cached
/// thread id included, is this thread's). Returns the child's pid, or -1
/// with errno set.
///
/// The caller must be single-threaded: no lock may be held by a thread
/// that is not there to release it.
pub fn spawn_sharing_memory(f: &mut dyn FnMut() -> std::convert::Infallible) -> libc::pid_t {
    extern "C" fn trampoline(arg: *mut libc::c_void) -> libc::c_int {
        // SAFETY: `arg` is the `&mut &mut dyn FnMut` passed to clone below,
        // alive for the whole call: the parent waits (CLONE_VFORK).
        let f = unsafe { &mut *arg.cast::<&mut dyn FnMut() -> std::convert::Infallible>() };
        #[allow(unreachable_code)] // f() cannot return: Infallible
        match f() {}
    }
    let Some(stack) = ChildStack::map(1 << 20) else {
        return -1;
    };
    let mut f = f;
    // SAFETY: a fresh stack of our own; CLONE_VFORK suspends this process
    // until the child execs or exits, so `f` and the stack outlive its use.
    let pid = unsafe {
        libc::clone(
            trampoline,
            stack.top(),
            libc::CLONE_VM | libc::CLONE_VFORK | libc::SIGCHLD,
            (&mut f as *mut &mut dyn FnMut() -> std::convert::Infallible).cast(),
        )
    };
    let errno = io::Error::last_os_error();
    // The child has exec'd or exited: nothing uses the stack now.
    stack.unmap();
    if pid < 0 {
        // SAFETY: restoring clone's errno for the caller, after munmap.
        unsafe { *libc::__errno_location() = errno.raw_os_error().unwrap_or(libc::EAGAIN) };
    }
    pid
}

/// clone3's argument block (`struct clone_args`, include/uapi/linux/sched.h).
#[repr(C)]
#[derive(Debug, Default)]
pub struct CloneArgs {
    pub flags: u64,
    pub pidfd: u64,
    pub child_tid: u64,
    pub parent_tid: u64,
    pub exit_signal: u64,
    pub stack: u64,
    pub stack_size: u64,
    pub tls: u64,
    pub set_tid: u64,
    pub set_tid_size: u64,
    pub cgroup: u64,
}

/// Whether [`raw_syscall`] exists on this architecture.
pub const RAW_SYSCALLS: bool = cfg!(any(target_arch = "x86_64", target_arch = "aarch64"));

/// A system call that touches no memory of the caller's but what its
/// arguments point to: the result is the kernel's, a negative errno on
/// failure, and errno (in the thread-local block) is left alone. For a
/// process that shares another's memory and thread pointer (the keeper,
/// see `teardown`), where libc's `syscall` would write the other's errno.
///
/// # Safety
///
/// As the system call `n` with these arguments.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
pub unsafe fn raw_syscall(n: libc::c_long, a: [usize; 6]) -> isize {
    let ret: isize;
    // SAFETY: the x86-64 system call convention; the kernel clobbers rcx
    // and r11 and nothing else, and touches only what the caller passed.
    unsafe {
        std::arch::asm!(
            "syscall",
            inlateout("rax") n as isize => ret,
            in("rdi") a[0], in("rsi") a[1], in("rdx") a[2],
            in("r10") a[3], in("r8") a[4], in("r9") a[5],
            lateout("rcx") _, lateout("r11") _,
            options(nostack),
        );
    }
    ret
}

/// See the x86-64 version.
///
/// # Safety
///
/// As the system call `n` with these arguments.
#[cfg(target_arch = "aarch64")]
#[inline(always)]
pub unsafe fn raw_syscall(n: libc::c_long, a: [usize; 6]) -> isize {
    let ret: isize;
    // SAFETY: the AArch64 system call convention: number in x8, arguments
    // in x0-x5, result in x0; nothing else is clobbered.
    unsafe {
        std::arch::asm!(
            "svc 0",
            in("x8") n,
            inlateout("x0") a[0] as isize => ret,
            in("x1") a[1], in("x2") a[2], in("x3") a[3], in("x4") a[4], in("x5") a[5],
            options(nostack),
        );
    }
    ret
}

/// Architectures without [`raw_syscall`] have no keeper ([`RAW_SYSCALLS`]).
///
/// # Safety
///
/// Never called: it returns ENOSYS.
#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
pub unsafe fn raw_syscall(_: libc::c_long, _: [usize; 6]) -> isize {
    -(libc::ENOSYS as isize)
}
