//! Measuring a running sandbox from outside, without cgroups: the CPU time
//! and resident memory of its whole process tree, read from /proc.
//!
//! Every process's CPU time ends up in its reaper's `cutime`/`cstime` when
//! it is waited for, and the sandbox's init reaps everything, so the tree's
//! total is the sum over the live processes of their own and their
//! children's times.

use std::time::Duration;

/// One reading of the sandbox's process tree.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Sample {
    pub cpu: Duration,
    /// Sum of the resident memory of the live processes.
    pub rss_kib: u64,
    pub processes: u32,
}

/// Read the tree rooted at `init` (a pid in hutch's pid namespace).
///
/// This runs every tick in the supervisor, whose resident size is capped:
/// it reads with plain `open`/`read` into stack buffers and parses by
/// hand, so the few code pages it touches stay few (each text page fault
/// maps a whole fault-around window of the binary).
pub fn sample(init: i32) -> Sample {
    // SAFETY: sysconf takes no pointers.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    // SAFETY: as above.
    let page_kib = (unsafe { libc::sysconf(libc::_SC_PAGESIZE) }.max(4096) as u64) / 1024;
    let mut s = Sample::default();
    let mut cpu_ticks = 0u64;
    let mut stack = vec![init];
    let mut buf = [0u8; 4096];
    // A fork bomb cannot make the walk unbounded.
    let mut budget = 100_000;
    while let Some(pid) = stack.pop() {
        budget -= 1;
        if budget == 0 {
            break;
        }
        if let Some(text) = read_proc(&mut buf, pid, b"stat") {
            if let Some(t) = stat_cpu_ticks(text) {
                cpu_ticks += t;
                s.processes += 1;
            }
        }
        if let Some(text) = read_proc(&mut buf, pid, b"statm") {
            if let Some(rss) = numbers(text).nth(1) {
                s.rss_kib += rss * page_kib;
            }
        }
        // Children of every thread: a thread may fork too.
        let mut threads = Vec::new();
        if let Some(text) = read_proc(&mut buf, pid, b"task") {
            threads.extend(numbers(text));
        }
        for tid in threads {
            let mut digits = [0u8; 20];
            let mut file = [0u8; 40];
            let mut n = 0;
            for &b in b"task/"
                .iter()
                .chain(itoa(tid, &mut digits).iter())
                .chain(b"/children")
            {
                file[n] = b;
                n += 1;
            }
            if let Some(text) = read_proc(&mut buf, pid, &file[..n]) {
                stack.extend(numbers(text).map(|c| c as i32));
            }
        }
    }
    s.cpu = Duration::from_millis(cpu_ticks * 1000 / ticks);
    s
}

/// `/proc/PID/FILE` into `buf` (a directory: its entry names, one per
/// line), or `None` when it is gone.
fn read_proc<'a>(buf: &'a mut [u8; 4096], pid: i32, file: &[u8]) -> Option<&'a [u8]> {
    let mut path = [0u8; 64];
    let mut n = 0;
    let mut digits = [0u8; 10];
    for &b in b"/proc/"
        .iter()
        .chain(itoa(pid as u64, &mut digits).iter())
        .chain(b"/")
        .chain(file)
    {
        *path.get_mut(n)? = b;
        n += 1;
    }
    if n >= path.len() {
        return None;
    }
    if file == b"task" {
        return list_dir(buf, &path[..=n]);
    }
    // SAFETY: path is NUL-terminated: zeroed past n, and n < its length.
    let fd = unsafe { libc::open(path.as_ptr().cast(), libc::O_RDONLY | libc::O_CLOEXEC) };
    if fd < 0 {
        return None;
    }
    // SAFETY: buf is a valid writable buffer of its length; fd is ours.
    let got = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
    // SAFETY: fd was opened above and is closed once.
    unsafe { libc::close(fd) };
    (got >= 0).then(|| &buf[..got as usize])
}

/// The numeric entry names of a directory, space separated, into `buf`.
fn list_dir<'a>(buf: &'a mut [u8; 4096], path: &[u8]) -> Option<&'a [u8]> {
    // SAFETY: path is NUL-terminated (the caller passes the terminator).
    let dir = unsafe { libc::opendir(path.as_ptr().cast()) };
    if dir.is_null() {
        return None;
    }
    let mut n = 0;
    loop {
        // SAFETY: dir is an open directory stream, used by this thread only.
        let ent = unsafe { libc::readdir(dir) };
        if ent.is_null() {
            break;
        }
        // SAFETY: readdir returned a valid entry whose d_name is NUL-terminated.
        let name = unsafe { std::ffi::CStr::from_ptr((*ent).d_name.as_ptr()) }.to_bytes();
        if n + name.len() + 1 > buf.len() {
            break;
        }
        buf[n..n + name.len()].copy_from_slice(name);
        buf[n + name.len()] = b' ';
        n += name.len() + 1;
    }
    // SAFETY: dir was opened above and is closed once.
    unsafe { libc::closedir(dir) };
    Some(&buf[..n])
}

/// The unsigned decimal numbers in `text`, in order.
fn numbers(text: &[u8]) -> impl Iterator<Item = u64> + '_ {
    text.split(|b| !b.is_ascii_digit())
        .filter(|w| !w.is_empty())
        .filter_map(|w| {
            w.iter().try_fold(0u64, |acc, &d| {
                acc.checked_mul(10)?.checked_add(u64::from(d - b'0'))
            })
        })
}

/// utime + stime + cutime + cstime (fields 14-17) of a stat line.
fn stat_cpu_ticks(text: &[u8]) -> Option<u64> {
    // The command name may hold spaces and parentheses: fields start after
    // the last ')'; the first after it is field 3 (state, not a number).
    let close = text.iter().rposition(|&b| b == b')')?;
    let rest = text.get(close + 2..)?;
    let mut fields = rest.split(|&b| b == b' ');
    let total = fields
        .by_ref()
        .skip(11)
        .take(4)
        .map(|f| numbers(f).next().unwrap_or(0))
        .sum();
    Some(total)
}

/// `n` in decimal into `out`, returning the digits written.
fn itoa(mut n: u64, out: &mut [u8]) -> &[u8] {
    let mut tmp = [0u8; 20];
    let mut i = tmp.len();
    loop {
        i -= 1;
        tmp[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    let digits = &tmp[i..];
    let len = digits.len().min(out.len());
    out[..len].copy_from_slice(&digits[..len]);
    &out[..len]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_stat_lines_by_hand_as_procfs_does() {
        let line =
            b"42 (a) b (c) S 7 42 42 0 -1 4194560 100 0 0 0 3 4 5 6 20 0 1 0 987654 1000 100";
        assert_eq!(stat_cpu_ticks(line), Some(3 + 4 + 5 + 6));
        let parsed = crate::procfs::stat(std::process::id() as i32).unwrap();
        let mut buf = [0u8; 4096];
        let text = read_proc(&mut buf, std::process::id() as i32, b"stat").unwrap();
        assert!(stat_cpu_ticks(text).unwrap() >= parsed.cpu_ticks);
        assert_eq!(
            numbers(b"1 22\n333 x4").collect::<Vec<_>>(),
            [1, 22, 333, 4]
        );
        let mut out = [0u8; 20];
        assert_eq!(itoa(4194304, &mut out), b"4194304");
        assert_eq!(itoa(0, &mut out), b"0");
    }

    #[test]
    fn samples_this_process() {
        let s = sample(std::process::id() as i32);
        assert!(s.processes >= 1);
        assert!(s.rss_kib > 0);
    }
}
