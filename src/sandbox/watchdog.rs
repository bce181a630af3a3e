//! Measuring a running sandbox from outside, without cgroups: the CPU time
//! and resident memory of its whole process tree, read from /proc.
//!
//! Every process's CPU time ends up in its reaper's `cutime`/`cstime` when
//! it is waited for, and the sandbox's init reaps everything, so the tree's
//! total is the sum over the live processes of their own and their
//! children's times. But for one: a process whose parent ignores SIGCHLD
//! (or sets SA_NOCLDWAIT) is reaped by the kernel, and its time is added
//! to no counter. So the walker remembers what each process had at the
//! last tick, and what the processes that ended since had is counted as
//! lost unless the survivors' children's times grew by as much.

use std::time::Duration;

use super::hot;

/// One reading of the sandbox's process tree.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Sample {
    pub cpu: Duration,
    /// Sum of the resident memory of the live processes.
    pub rss_kib: u64,
    pub processes: u32,
}

/// Read the tree rooted at `init` (a pid in hutch's pid namespace) once.
pub fn sample(init: i32) -> Sample {
    Walker::new().sample(init)
}

/// Whether this kernel lists each thread's children in /proc, which the
/// walk follows (`CONFIG_PROC_CHILDREN`).
pub fn can_walk() -> bool {
    std::path::Path::new("/proc/thread-self/children").exists()
}

/// Walks a process tree in /proc, again and again.
///
/// This runs every tick in the supervisor, whose resident size is capped:
/// it reads with the raw system calls of [`hot`] into stack buffers,
/// parses by hand and reuses its stack of pids, so it calls no libc, no
/// allocator and no formatting, and its code sits in the one hot section.
pub struct Walker {
    pending: Vec<i32>,
    /// The processes this walk saw (sorted by pid once it is done), and
    /// those the last one saw. One walker follows one tree.
    seen: Vec<Seen>,
    before: Vec<Seen>,
    missed: Vec<Seen>,
    /// Ticks of ended processes that no live process's children's time
    /// holds: counted into every sample from then on.
    lost: u64,
    /// The last tick's shortfall, committed to `lost` at this tick unless
    /// the survivors' children's times catch up (a process reaped during
    /// the walk, after its parent was read, ends before its time shows).
    suspect: u64,
    /// Buffers for a file and for directory entries, kept: on the stack
    /// they would be zeroed by a call to libc's memset every tick.
    buf: Box<[u8; 4096]>,
    dents: Box<[u8; 2048]>,
    ticks_per_sec: u64,
    page_kib: u64,
}

impl Default for Walker {
    fn default() -> Self {
        Walker::new()
    }
}

impl Walker {
    pub fn new() -> Walker {
        // SAFETY: sysconf takes no pointers.
        let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
        // SAFETY: as above.
        let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) }.max(4096) as u64;
        Walker {
            pending: Vec::with_capacity(256),
            seen: Vec::with_capacity(64),
            before: Vec::with_capacity(64),
            missed: Vec::new(),
            lost: 0,
            suspect: 0,
            buf: Box::new([0; 4096]),
            dents: Box::new([0; 2048]),
            ticks_per_sec: ticks,
            page_kib: page / 1024,
        }
    }

    /// Read the tree rooted at `init` (a pid in hutch's pid namespace).
    #[link_section = ".hutch.hot"]
    #[inline(never)]
    pub fn sample(&mut self, init: i32) -> Sample {
        let mut s = Sample::default();
        let mut cpu_ticks = 0u64;
        let Walker {
            pending,
            seen,
            before,
            missed,
            buf,
            dents,
            ..
        } = self;
        std::mem::swap(seen, before);
        seen.clear();
        let buf = &mut buf[..];
        let mut path = [0u8; 64];
        pending.clear();
        pending.push(init);
        // A fork bomb cannot make the walk unbounded.
        let mut budget = 100_000u32;
        while let Some(pid) = pending.pop() {
            budget -= 1;
            if budget == 0 {
                break;
            }
            let pid = pid as u64;
            let mut this = proc_path(&mut path, pid, None, &STAT)
                .and_then(|p| hot::read_file(p, buf))
                .and_then(|text| stat_seen(text, pid as i32));
            if let Some(text) =
                proc_path(&mut path, pid, None, &STATM).and_then(|p| hot::read_file(p, buf))
            {
                if let Some(rss) = field(text, b' ', 1).and_then(hot::parse_u64) {
                    s.rss_kib += rss * self.page_kib;
                    if let Some(p) = this.as_mut() {
                        p.rss_kib = rss * self.page_kib;
                    }
                }
            }
            if let Some(p) = this {
                cpu_ticks += p.total;
                s.processes += 1;
                seen.push(p);
            }
            // Children of every thread: a thread may fork too.
            let Some(mut tasks) = proc_path(&mut path, pid, None, &TASK).and_then(hot::Dir::open)
            else {
                continue;
            };
            loop {
                let mut records = tasks.batch(&mut dents[..]);
                if records.is_empty() {
                    break;
                }
                while let Some((name, rest)) = hot::next_name(records) {
                    records = rest;
                    let Some(tid) = hot::parse_u64(name) else {
                        continue;
                    };
                    // Read to the end: one thread's children can be more
                    // than a buffer holds, and a pid cut at the buffer's
                    // end would name another process.
                    let Some(mut file) =
                        proc_path(&mut path, pid, Some(tid), &CHILDREN).and_then(hot::File::open)
                    else {
                        continue;
                    };
                    let mut number = Digits::default();
                    while let Some(text) = file.read(buf) {
                        if text.is_empty() {
                            break;
                        }
                        for &b in text {
                            if let Some(c) = number.push(b) {
                                pending.push(c);
                            }
                        }
                    }
                    if let Some(c) = number.push(b' ') {
                        pending.push(c);
                    }
                }
            }
        }
        // What the processes of the last tick that are gone now had, and
        // how much the children's times of those still here grew.
        sort_by_pid(seen);
        // A process handed during the walk to a reaper read after its
        // parent (another thread of the parent, a subreaper) is listed by
        // both, with its subtree: counted twice, it could pass a limit
        // the sandbox is under.
        let (ticks, kib, repeats) = drop_repeats(seen);
        cpu_ticks = cpu_ticks.saturating_sub(ticks);
        s.rss_kib = s.rss_kib.saturating_sub(kib);
        s.processes = s.processes.saturating_sub(repeats);
        let mut expected = 0u64;
        let mut credit = 0u64;
        for b in before.iter() {
            if let Some(now) = find(seen, b.pid).filter(|n| n.start == b.start) {
                credit += now.kids.saturating_sub(b.kids);
                continue;
            }
            // Still running but missed by this walk (its parent ended
            // during the walk, handing it to an already read reaper): it
            // counts as it is now, and is followed from here.
            let still = proc_path(&mut path, b.pid as u64, None, &STAT)
                .and_then(|p| hot::read_file(p, buf))
                .and_then(|t| stat_seen(t, b.pid))
                .filter(|n| n.start == b.start);
            match still {
                Some(n) => {
                    cpu_ticks += n.total;
                    credit += n.kids.saturating_sub(b.kids);
                    s.processes += 1;
                    missed.push(n);
                }
                None => expected += b.total,
            }
        }
        // Added once the search of `seen` is done; the next walk sorts.
        if !missed.is_empty() {
            seen.append(missed);
        }
        if expected > credit {
            self.lost += self.suspect;
            self.suspect = expected - credit;
        } else {
            self.lost += self.suspect.saturating_sub(credit - expected);
            self.suspect = 0;
        }
        s.cpu = Duration::from_millis((cpu_ticks + self.lost) * 1000 / self.ticks_per_sec);
        s
    }
}

/// One process as a walk saw it, in clock ticks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Seen {
    pid: i32,
    /// Start time (field 22), which tells a reused pid apart.
    start: u64,
    /// Its own and its waited-for children's CPU time.
    total: u64,
    /// Its waited-for children's.
    kids: u64,
    rss_kib: u64,
}

/// Drop the entries of `v` (sorted by pid) that repeat the one before:
/// the CPU ticks, resident KiB and count they added.
#[link_section = ".hutch.hot"]
#[inline(never)]
fn drop_repeats(v: &mut Vec<Seen>) -> (u64, u64, u32) {
    let (mut ticks, mut kib, mut repeats) = (0, 0, 0);
    let mut kept = 0;
    for i in 0..v.len() {
        let e = v[i];
        if kept > 0 && v[kept - 1].pid == e.pid && v[kept - 1].start == e.start {
            ticks += e.total;
            kib += e.rss_kib;
            repeats += 1;
        } else {
            v[kept] = e;
            kept += 1;
        }
    }
    v.truncate(kept);
    (ticks, kib, repeats)
}

/// Heapsort by pid, by hand: the standard sorts are generic code placed
/// outside the hot section.
#[link_section = ".hutch.hot"]
#[inline(never)]
fn sort_by_pid(v: &mut [Seen]) {
    #[link_section = ".hutch.hot"]
    #[inline(never)]
    fn sift(v: &mut [Seen], mut root: usize, end: usize) {
        loop {
            let mut child = 2 * root + 1;
            if child >= end {
                return;
            }
            if child + 1 < end && v[child].pid < v[child + 1].pid {
                child += 1;
            }
            if v[root].pid >= v[child].pid {
                return;
            }
            v.swap(root, child);
            root = child;
        }
    }
    let n = v.len();
    for i in (0..n / 2).rev() {
        sift(v, i, n);
    }
    for end in (1..n).rev() {
        v.swap(0, end);
        sift(v, 0, end);
    }
}

/// The entry for `pid` in `v`, sorted by pid.
#[link_section = ".hutch.hot"]
#[inline(never)]
fn find(v: &[Seen], pid: i32) -> Option<Seen> {
    let (mut lo, mut hi) = (0, v.len());
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        if v[mid].pid < pid {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    v.get(lo).copied().filter(|s| s.pid == pid)
}

// The names the walk builds paths from, beside its code: in `.rodata`
// they would cost fault-around windows of their own.
#[link_section = ".hutch.hot"]
static PROC: [u8; 6] = *b"/proc/";
#[link_section = ".hutch.hot"]
static SLASH: [u8; 1] = *b"/";
#[link_section = ".hutch.hot"]
static TASK: [u8; 4] = *b"task";
#[link_section = ".hutch.hot"]
static STAT: [u8; 4] = *b"stat";
#[link_section = ".hutch.hot"]
static STATM: [u8; 5] = *b"statm";
#[link_section = ".hutch.hot"]
static CHILDREN: [u8; 8] = *b"children";

/// A pid read a byte at a time, across reads.
#[derive(Default)]
struct Digits {
    value: u64,
    len: u32,
}

impl Digits {
    /// Take the next byte; a separator after digits gives their pid (none
    /// past `i32`, which no pid is).
    #[link_section = ".hutch.hot"]
    #[inline(never)]
    fn push(&mut self, b: u8) -> Option<i32> {
        if b.is_ascii_digit() {
            self.value = self
                .value
                .saturating_mul(10)
                .saturating_add(u64::from(b - b'0'));
            self.len += 1;
            return None;
        }
        let done = (self.len > 0).then_some(self.value);
        *self = Digits::default();
        done.and_then(|v| i32::try_from(v).ok())
    }
}

/// `/proc/PID/FILE` (or `/proc/PID/task/TID/FILE`), NUL-terminated, in
/// `out`; `None` if it does not fit.
#[link_section = ".hutch.hot"]
#[inline(never)]
fn proc_path<'a>(
    out: &'a mut [u8; 64],
    pid: u64,
    tid: Option<u64>,
    file: &[u8],
) -> Option<&'a [u8]> {
    #[link_section = ".hutch.hot"]
    #[inline(never)]
    fn put(out: &mut [u8; 64], n: &mut usize, bytes: &[u8]) -> Option<()> {
        for &b in bytes {
            *out.get_mut(*n)? = b;
            *n += 1;
        }
        Some(())
    }
    let mut n = 0;
    let mut digits = [0u8; 20];
    put(out, &mut n, &PROC)?;
    put(out, &mut n, itoa(pid, &mut digits))?;
    if let Some(tid) = tid {
        put(out, &mut n, &SLASH)?;
        put(out, &mut n, &TASK)?;
        put(out, &mut n, &SLASH)?;
        put(out, &mut n, itoa(tid, &mut digits))?;
    }
    put(out, &mut n, &SLASH)?;
    put(out, &mut n, file)?;
    *out.get_mut(n)? = 0;
    Some(&out[..=n])
}

/// Field `index` of `text` split at `sep` (runs of `sep` and a trailing
/// newline count as one separator).
#[link_section = ".hutch.hot"]
#[inline(never)]
fn field(text: &[u8], sep: u8, index: usize) -> Option<&[u8]> {
    let mut seen = 0;
    let mut i = 0;
    while i < text.len() {
        while i < text.len() && (text[i] == sep || text[i] == b'\n') {
            i += 1;
        }
        let start = i;
        while i < text.len() && text[i] != sep && text[i] != b'\n' {
            i += 1;
        }
        if start < i {
            if seen == index {
                return Some(&text[start..i]);
            }
            seen += 1;
        }
    }
    None
}

/// utime + stime + cutime + cstime (fields 14-17) of a stat line.
#[cfg(test)]
fn stat_cpu_ticks(text: &[u8]) -> Option<u64> {
    stat_seen(text, 0).map(|s| s.total)
}

/// Process `pid` from its stat line: CPU times (fields 14-17) and start
/// time (22).
#[link_section = ".hutch.hot"]
#[inline(never)]
fn stat_seen(text: &[u8], pid: i32) -> Option<Seen> {
    // The command name may hold spaces and parentheses: fields start after
    // the last ')'; the first after it is field 3 (state, not a number).
    let mut close = text.len();
    while close > 0 && text[close - 1] != b')' {
        close -= 1;
    }
    if close == 0 {
        return None;
    }
    let rest = &text[close..];
    let n = |i| field(rest, b' ', i).and_then(hot::parse_u64).unwrap_or(0);
    let kids = n(13) + n(14);
    Some(Seen {
        pid,
        start: n(19),
        total: n(11) + n(12) + kids,
        kids,
        rss_kib: 0,
    })
}

/// `n` in decimal into `out`, returning the digits written.
#[link_section = ".hutch.hot"]
#[inline(never)]
fn itoa(mut n: u64, out: &mut [u8; 20]) -> &[u8] {
    let mut i = out.len();
    loop {
        i -= 1;
        out[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 || i == 0 {
            break;
        }
    }
    &out[i..]
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
        let mut path = [0u8; 64];
        let me = std::process::id() as u64;
        let p = proc_path(&mut path, me, None, b"stat").unwrap();
        assert_eq!(p, format!("/proc/{me}/stat\0").as_bytes());
        let text = hot::read_file(p, &mut buf).unwrap();
        assert!(stat_cpu_ticks(text).unwrap() >= parsed.cpu_ticks);
        assert_eq!(stat_cpu_ticks(b"42 no parenthesis 1 2 3"), None);
        let p = proc_path(&mut path, 7, Some(42), b"children").unwrap();
        assert_eq!(p, b"/proc/7/task/42/children\0");
        let fields: Vec<_> = (0..4)
            .map_while(|i| field(b"1  22 333\n", b' ', i))
            .collect();
        assert_eq!(fields, [&b"1"[..], b"22", b"333"]);
        let mut out = [0u8; 20];
        assert_eq!(itoa(4194304, &mut out), b"4194304");
        assert_eq!(itoa(0, &mut out), b"0");
    }

    #[test]
    fn samples_this_process_and_its_children() {
        let s = sample(std::process::id() as i32);
        assert!(s.processes >= 1);
        assert!(s.rss_kib > 0);
        let mut child = std::process::Command::new("sleep")
            .arg("10")
            .spawn()
            .unwrap();
        let mut walker = Walker::new();
        let with_child = walker.sample(std::process::id() as i32);
        // One walker per tree: it remembers the last walk's processes.
        let alone = Walker::new().sample(child.id() as i32);
        child.kill().unwrap();
        child.wait().unwrap();
        assert_eq!(alone.processes, 1);
        assert!(with_child.processes >= 2);
    }

    #[test]
    fn counts_more_children_than_one_read_of_the_list_holds() {
        use std::io::BufRead;
        use std::os::unix::process::CommandExt;
        // 1,200 pids of up to 7 digits and a space are more than the 4 KiB
        // buffer: the list takes several reads.
        let mut shell = std::process::Command::new("sh")
            .args([
                "-c",
                "i=0; while [ $i -lt 1200 ]; do sleep 60 & i=$((i+1)); done; echo ready; wait",
            ])
            .stdout(std::process::Stdio::piped())
            .process_group(0)
            .spawn()
            .unwrap();
        let mut line = String::new();
        std::io::BufReader::new(shell.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let s = sample(shell.id() as i32);
        // SAFETY: signals the process group this test made.
        unsafe { libc::kill(-(shell.id() as i32), libc::SIGKILL) };
        shell.wait().unwrap();
        assert_eq!(line, "ready\n");
        assert_eq!(s.processes, 1201);
    }

    /// Sample a process that runs four children of 250 ms of CPU each, one
    /// after another, waiting for each or (`ignore`) ignoring SIGCHLD, so
    /// that the kernel reaps them and their time is in no /proc counter.
    fn serial_burners(ignore: bool) -> Sample {
        let (r, w) = crate::sandbox::sys::pipe().unwrap();
        use std::os::fd::AsRawFd;
        let (r, w) = (r.as_raw_fd(), w.as_raw_fd());
        // SAFETY: the child calls only async-signal-safe functions (signal,
        // fork, clock_gettime, waitpid, kill, nanosleep, write, pause,
        // _exit).
        let parent = unsafe { libc::fork() };
        if parent == 0 {
            // SAFETY: as above.
            unsafe {
                if ignore {
                    libc::signal(libc::SIGCHLD, libc::SIG_IGN);
                }
                for _ in 0..4 {
                    let burner = libc::fork();
                    if burner == 0 {
                        let mut t = libc::timespec {
                            tv_sec: 0,
                            tv_nsec: 0,
                        };
                        while t.tv_sec == 0 && t.tv_nsec < 250_000_000 {
                            libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut t);
                        }
                        libc::_exit(0);
                    }
                    if !ignore {
                        libc::waitpid(burner, std::ptr::null_mut(), 0);
                    }
                    let pause = libc::timespec {
                        tv_sec: 0,
                        tv_nsec: 5_000_000,
                    };
                    while libc::kill(burner, 0) == 0 {
                        libc::nanosleep(&pause, std::ptr::null_mut());
                    }
                }
                libc::write(w, b"x".as_ptr().cast(), 1);
                loop {
                    libc::pause();
                }
            }
        }
        let mut walker = Walker::new();
        let mut fds = [libc::pollfd {
            fd: r,
            events: libc::POLLIN,
            revents: 0,
        }];
        while hot::poll(&mut fds, 20) == 0 {
            walker.sample(parent);
        }
        // The last ended child is counted a tick later.
        walker.sample(parent);
        let s = walker.sample(parent);
        // SAFETY: our own child.
        unsafe {
            libc::kill(parent, libc::SIGKILL);
            libc::waitpid(parent, std::ptr::null_mut(), 0);
        }
        s
    }

    #[test]
    fn counts_children_the_kernel_reaped_for_a_parent_ignoring_sigchld() {
        let s = serial_burners(true);
        assert!(
            (600..=1300).contains(&s.cpu.as_millis()),
            "1 s of CPU counted as {s:?}"
        );
    }

    #[test]
    fn counts_each_waited_for_child_once() {
        let s = serial_burners(false);
        assert!(
            (900..=1300).contains(&s.cpu.as_millis()),
            "1 s of CPU counted as {s:?}"
        );
    }

    #[test]
    fn this_kernel_lists_children() {
        assert!(can_walk());
    }

    #[test]
    fn a_process_listed_twice_counts_once() {
        let p = |pid, start, total| Seen {
            pid,
            start,
            total,
            kids: 0,
            rss_kib: 100,
        };
        let mut v = vec![
            p(9, 1, 5),
            p(3, 1, 7),
            p(9, 1, 5),
            p(4, 1, 1),
            p(3, 1, 7),
            p(4, 2, 2),
        ];
        sort_by_pid(&mut v);
        assert!(v.windows(2).all(|w| w[0].pid <= w[1].pid));
        assert_eq!(drop_repeats(&mut v), (12, 200, 2));
        let pids: Vec<_> = v.iter().map(|s| (s.pid, s.start)).collect();
        assert_eq!(pids.len(), 4);
        assert!(pids.contains(&(4, 1)) && pids.contains(&(4, 2)), "{pids:?}");
        assert_eq!(find(&v, 9).map(|s| s.total), Some(5));
        assert_eq!(find(&v, 5), None);
    }

    #[test]
    fn pids_are_read_across_chunks() {
        let mut pids = Vec::new();
        let mut d = Digits::default();
        for chunk in [&b"12 3"[..], b"45 ", b"6", b"7 99999999999 8"] {
            for &b in chunk {
                pids.extend(d.push(b));
            }
        }
        pids.extend(d.push(b' '));
        assert_eq!(pids, [12, 345, 67, 8]);
    }
}
