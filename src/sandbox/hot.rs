//! The few system calls a supervisor makes on every tick of its loop (the
//! clock, poll, reading /proc), made directly rather than through libc.
//!
//! Why: a supervisor's resident size is capped (2 MiB per container), and
//! most of it is the text of hutch and libc that its loop touches. Every
//! fault on file-backed text maps the kernel's whole fault-around window
//! (64 KiB) around the page, so each libc function called per tick, each in
//! its own corner of libc, costs a window. The functions here, and the
//! per-tick code that calls them, are placed in one link section of their
//! own, `.hutch.hot` (not a `.text.*` name: lld, rustc's default linker,
//! merges those into `.text` in input order; a section of another name
//! becomes an output section of its own beside `.text`, with any linker),
//! so the steady loop's text is a window or two; see [`Shed`] for giving
//! back the rest.

use std::time::Duration;

/// A system call's raw result: the value, or minus the errno.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn syscall4(nr: libc::c_long, a: usize, b: usize, c: usize, d: usize) -> isize {
    let ret: isize;
    // SAFETY: the caller passes a system call and arguments valid for it;
    // the kernel clobbers rcx and r11 and nothing else.
    unsafe {
        std::arch::asm!(
            "syscall",
            inlateout("rax") nr as isize => ret,
            in("rdi") a,
            in("rsi") b,
            in("rdx") c,
            in("r10") d,
            lateout("rcx") _,
            lateout("r11") _,
            options(nostack),
        );
    }
    ret
}

/// A system call's raw result: the value, or minus the errno.
#[cfg(target_arch = "aarch64")]
#[inline(always)]
unsafe fn syscall4(nr: libc::c_long, a: usize, b: usize, c: usize, d: usize) -> isize {
    let ret: isize;
    // SAFETY: the caller passes a system call and arguments valid for it.
    unsafe {
        std::arch::asm!(
            "svc 0",
            in("x8") nr,
            inlateout("x0") a as isize => ret,
            in("x1") b,
            in("x2") c,
            in("x3") d,
            options(nostack),
        );
    }
    ret
}

/// A system call's raw result: the value, or minus the errno (through libc
/// where hutch has no inline assembly for the architecture).
#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
unsafe fn syscall4(nr: libc::c_long, a: usize, b: usize, c: usize, d: usize) -> isize {
    // SAFETY: the caller passes a system call and arguments valid for it.
    let ret = unsafe { libc::syscall(nr, a, b, c, d) };
    if ret == -1 {
        -(std::io::Error::last_os_error()
            .raw_os_error()
            .unwrap_or(libc::EIO) as isize)
    } else {
        ret as isize
    }
}

/// The monotonic clock (CLOCK_MONOTONIC), as time since an arbitrary start.
#[link_section = ".hutch.hot"]
#[inline(never)]
pub fn now() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec into `ts`.
    unsafe {
        syscall4(
            libc::SYS_clock_gettime,
            libc::CLOCK_MONOTONIC as usize,
            &mut ts as *mut libc::timespec as usize,
            0,
            0,
        )
    };
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// poll(2), by ppoll: the number of ready descriptors, or minus the errno.
/// `timeout_ms` below 0 waits for ever.
#[link_section = ".hutch.hot"]
#[inline(never)]
pub fn poll(fds: &mut [libc::pollfd], timeout_ms: i32) -> isize {
    let ts = libc::timespec {
        tv_sec: (timeout_ms / 1000) as libc::time_t,
        tv_nsec: ((timeout_ms % 1000) * 1_000_000) as libc::c_long,
    };
    let tsp = if timeout_ms < 0 {
        0
    } else {
        &ts as *const libc::timespec as usize
    };
    // SAFETY: a valid array of pollfds of the given length, and a valid
    // timespec or none; no signal mask is passed.
    unsafe {
        syscall4(
            libc::SYS_ppoll,
            fds.as_mut_ptr() as usize,
            fds.len(),
            tsp,
            0,
        )
    }
}

/// Read what one `read` gives of the file at `path` (NUL-terminated) into
/// `buf`; `None` when it cannot be opened or read (a process gone). Only
/// for files whose whole text one read of `buf` returns (a /proc record
/// shorter than `buf`); [`File`] reads the others to their end.
#[link_section = ".hutch.hot"]
#[inline(never)]
pub fn read_file<'a>(path: &[u8], buf: &'a mut [u8]) -> Option<&'a [u8]> {
    File::open(path)?.read(buf)
}

/// A file read a chunk at a time. `path` is NUL-terminated.
pub struct File {
    fd: i32,
}

impl File {
    #[link_section = ".hutch.hot"]
    #[inline(never)]
    pub fn open(path: &[u8]) -> Option<File> {
        if path.last() != Some(&0) {
            return None;
        }
        open(path, libc::O_RDONLY).map(|fd| File { fd })
    }

    /// The next chunk (empty at the end), or `None` on an error.
    #[link_section = ".hutch.hot"]
    #[inline(never)]
    pub fn read<'a>(&mut self, buf: &'a mut [u8]) -> Option<&'a [u8]> {
        // SAFETY: reading into a valid buffer of its length from our own fd.
        let got = unsafe {
            syscall4(
                libc::SYS_read,
                self.fd as usize,
                buf.as_mut_ptr() as usize,
                buf.len(),
                0,
            )
        };
        (got >= 0).then(|| &buf[..got as usize])
    }
}

impl Drop for File {
    #[link_section = ".hutch.hot"]
    fn drop(&mut self) {
        close(self.fd);
    }
}

/// A directory's entries, a batch at a time. `path` is NUL-terminated.
pub struct Dir {
    fd: i32,
}

impl Dir {
    #[link_section = ".hutch.hot"]
    #[inline(never)]
    pub fn open(path: &[u8]) -> Option<Dir> {
        if path.last() != Some(&0) {
            return None;
        }
        open(path, libc::O_RDONLY | libc::O_DIRECTORY).map(|fd| Dir { fd })
    }

    /// The next batch of entries, as raw `linux_dirent64` records in
    /// `buf` (walk them with [`next_name`]); empty at the end.
    #[link_section = ".hutch.hot"]
    #[inline(never)]
    pub fn batch<'a>(&mut self, buf: &'a mut [u8]) -> &'a [u8] {
        // SAFETY: getdents64 writes at most buf.len() bytes into buf.
        let got = unsafe {
            syscall4(
                libc::SYS_getdents64,
                self.fd as usize,
                buf.as_mut_ptr() as usize,
                buf.len(),
                0,
            )
        };
        if got <= 0 {
            return &[];
        }
        &buf[..got as usize]
    }
}

impl Drop for Dir {
    #[link_section = ".hutch.hot"]
    fn drop(&mut self) {
        close(self.fd);
    }
}

/// The first entry name of a batch of `linux_dirent64` records, and the
/// records after it.
#[link_section = ".hutch.hot"]
#[inline(never)]
pub fn next_name(records: &[u8]) -> Option<(&[u8], &[u8])> {
    // struct linux_dirent64 { u64 ino; i64 off; u16 reclen; u8 type; char name[]; }
    const NAME: usize = 19;
    let reclen = u16::from_ne_bytes([*records.get(16)?, *records.get(17)?]) as usize;
    if reclen <= NAME || reclen > records.len() {
        return None;
    }
    let name = &records[NAME..reclen];
    let mut len = 0;
    while len < name.len() && name[len] != 0 {
        len += 1;
    }
    Some((&name[..len], &records[reclen..]))
}

/// The decimal number `digits` holds (no sign), if it is all digits.
#[link_section = ".hutch.hot"]
#[inline(never)]
pub fn parse_u64(digits: &[u8]) -> Option<u64> {
    if digits.is_empty() {
        return None;
    }
    let mut n = 0u64;
    for &d in digits {
        if !d.is_ascii_digit() {
            return None;
        }
        n = n.checked_mul(10)?.checked_add(u64::from(d - b'0'))?;
    }
    Some(n)
}

#[link_section = ".hutch.hot"]
#[inline(never)]
fn open(path: &[u8], flags: i32) -> Option<i32> {
    // SAFETY: path is NUL-terminated (checked by the callers).
    let fd = unsafe {
        syscall4(
            libc::SYS_openat,
            libc::AT_FDCWD as usize,
            path.as_ptr() as usize,
            (flags | libc::O_CLOEXEC) as usize,
            0,
        )
    };
    (fd >= 0).then_some(fd as i32)
}

#[link_section = ".hutch.hot"]
#[inline(never)]
fn close(fd: i32) {
    // SAFETY: closing a descriptor this module opened, once.
    unsafe { syscall4(libc::SYS_close, fd as usize, 0, 0, 0) };
}

/// The clean, file-backed mappings of this process (its text and read-only
/// data, hutch's and its libraries'), to give back their pages from time to
/// time: the supervisor touches much of them once (setting up, the first
/// calls) and a few pages for ever after. Dropped pages stay in the page
/// cache and fault back in, unchanged, when they are used again.
pub struct Shed {
    ranges: [(usize, usize); 32],
    len: usize,
}

impl Shed {
    /// Find the mappings that can be dropped: file-backed, not writable,
    /// and with no anonymous (copied) page, such as relocated read-only
    /// data, whose contents exist nowhere else.
    pub fn find() -> Shed {
        let mut shed = Shed {
            ranges: [(0, 0); 32],
            len: 0,
        };
        let Ok(smaps) = std::fs::read_to_string("/proc/self/smaps") else {
            return shed;
        };
        // Each mapping: a header line "start-end perms offset dev inode
        // path", then "Key: value" lines, among them "Anonymous:".
        let mut candidate: Option<(usize, usize)> = None;
        for line in smaps.lines() {
            let mut f = line.split_whitespace();
            let first = f.next().unwrap_or_default();
            if let Some((a, b)) = first.split_once('-') {
                let (Ok(a), Ok(b)) = (usize::from_str_radix(a, 16), usize::from_str_radix(b, 16))
                else {
                    candidate = None;
                    continue;
                };
                let perms = f.next().unwrap_or_default();
                let inode = f.nth(2).unwrap_or("0");
                candidate = (inode != "0" && perms.starts_with('r') && !perms.contains('w'))
                    .then_some((a, b));
            } else if first == "Anonymous:" {
                if let (Some(range), Some("0")) = (candidate.take(), f.next()) {
                    if shed.len < shed.ranges.len() {
                        shed.ranges[shed.len] = range;
                        shed.len += 1;
                    }
                }
            }
        }
        shed
    }

    /// Drop this process's pages of the mappings found by [`Shed::find`].
    #[link_section = ".hutch.hot"]
    #[inline(never)]
    pub fn shed(&self) {
        for &(a, b) in &self.ranges[..self.len] {
            // SAFETY: the range is a whole mapping of this process that is
            // file-backed, not writable and held no anonymous page when it
            // was found (a read-only private mapping cannot gain one), so
            // MADV_DONTNEED only drops page-table entries.
            unsafe { syscall4(libc::SYS_madvise, a, b - a, libc::MADV_DONTNEED as usize, 0) };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_files_and_directories_without_libc() {
        let mut buf = [0u8; 4096];
        let text = read_file(b"/proc/self/stat\0", &mut buf).unwrap();
        let pid = std::process::id().to_string();
        assert!(text.starts_with(pid.as_bytes()));
        assert!(read_file(b"/proc/self/no-such-file\0", &mut buf).is_none());
        assert!(
            read_file(b"/proc/self/stat", &mut buf).is_none(),
            "not NUL-terminated"
        );

        let mut dir = Dir::open(b"/proc/self/task\0").unwrap();
        let mut tids = Vec::new();
        loop {
            let mut rest = dir.batch(&mut buf);
            if rest.is_empty() {
                break;
            }
            while let Some((name, after)) = next_name(rest) {
                tids.extend(parse_u64(name));
                rest = after;
            }
        }
        let expected: Vec<u64> = std::fs::read_dir("/proc/self/task")
            .unwrap()
            .map(|e| e.unwrap().file_name().to_str().unwrap().parse().unwrap())
            .collect();
        tids.sort();
        let mut expected = expected;
        expected.sort();
        assert_eq!(tids, expected);
        assert_eq!(parse_u64(b"4194304"), Some(4194304));
        assert_eq!(parse_u64(b"."), None);
        assert_eq!(parse_u64(b""), None);
    }

    #[test]
    fn the_clock_and_poll_work() {
        let a = now();
        let mut fds = [libc::pollfd {
            fd: -1,
            events: 0,
            revents: 0,
        }];
        assert_eq!(poll(&mut fds, 30), 0);
        let waited = now() - a;
        assert!(waited >= Duration::from_millis(30), "{waited:?}");
        let (r, w) = crate::sandbox::sys::pipe().unwrap();
        use std::os::fd::AsRawFd;
        crate::sandbox::sys::write_all(w.as_raw_fd(), b"x").unwrap();
        let mut fds = [libc::pollfd {
            fd: r.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        }];
        assert_eq!(poll(&mut fds, -1), 1);
        assert_eq!(fds[0].revents, libc::POLLIN);
    }

    #[test]
    fn shedding_keeps_the_process_working() {
        let shed = Shed::find();
        assert!(shed.len > 0, "the test binary has clean text mappings");
        shed.shed();
        // The code and read-only data fault back in.
        assert_eq!(format!("{}", 42), "42");
    }
}
