//! The one reader of `/proc/PID/stat`, shared by everything that must tell
//! a process from a later one with the same pid (start time) or sum its
//! CPU time (the judge's watchdog), and of small kernel files.

use std::path::Path;

/// The fields of `/proc/PID/stat` hutch uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stat {
    /// R, S, D, Z, X...
    pub state: char,
    pub ppid: i32,
    /// utime + stime + cutime + cstime, in clock ticks.
    pub cpu_ticks: u64,
    /// Clock ticks after boot; with the pid, names one process for good.
    pub start_time: u64,
}

/// A small kernel file (cgroup, /proc): its size says 0, and std's
/// `read_to_string` asks for it anyway (a statx per file); a run reads
/// several, some when it has ended and hutch is about to return. Read
/// into room for 4 KiB at once, then until end of file.
pub fn read_small(path: &Path) -> Option<String> {
    read_small_from(std::fs::File::open(path).ok()?)
}

/// [`read_small`] of a file already open (a cgroup control file opened
/// through its directory, say).
pub fn read_small_from(mut file: std::fs::File) -> Option<String> {
    use std::io::Read;
    let mut bytes = vec![0u8; 4096];
    let mut len = 0;
    loop {
        if len == bytes.len() {
            bytes.resize(len * 2, 0);
        }
        match file.read(&mut bytes[len..]) {
            Ok(0) => break,
            Ok(n) => len += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => return None,
        }
    }
    bytes.truncate(len);
    String::from_utf8(bytes).ok()
}

/// `/proc/PID/stat`, or `None` when the process is gone.
pub fn stat(pid: i32) -> Option<Stat> {
    parse(&read_small(Path::new(&format!("/proc/{pid}/stat")))?)
}

/// The start time of `pid`, or `None` when it is gone.
pub fn start_time(pid: i32) -> Option<u64> {
    stat(pid).map(|s| s.start_time)
}

fn parse(text: &str) -> Option<Stat> {
    // The command name (field 2) may hold spaces and parentheses: the
    // fields after it start past the last ')'. rest[0] is field 3.
    let rest = text.get(text.rfind(')')? + 2..)?;
    let f: Vec<&str> = rest.split_whitespace().collect();
    let field = |n: usize| f.get(n - 3).copied();
    let ticks = |n: usize| {
        field(n)
            .and_then(|v| v.parse::<i64>().ok())
            .unwrap_or(0)
            .max(0) as u64
    };
    Some(Stat {
        state: field(3)?.chars().next()?,
        ppid: field(4)?.parse().ok()?,
        cpu_ticks: ticks(14) + ticks(15) + ticks(16) + ticks(17),
        start_time: field(22)?.parse().ok()?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Past its first 4 KiB too, and the same as std reads it.
    #[test]
    fn read_small_reads_to_the_end() {
        let path = std::env::temp_dir().join(format!("hutch-read-small-{}", std::process::id()));
        let text: String = (0..3000).map(|i| format!("{i}\n")).collect();
        std::fs::write(&path, &text).unwrap();
        assert!(text.len() > 8192);
        assert_eq!(read_small(&path).as_deref(), Some(text.as_str()));
        std::fs::remove_file(&path).unwrap();
        let cgroups = read_small(Path::new("/proc/self/cgroup")).unwrap();
        assert!(cgroups.contains(':'), "{cgroups}");
        assert_eq!(read_small(&path), None, "a missing file");
    }

    #[test]
    fn a_name_with_spaces_and_parentheses_does_not_shift_fields() {
        let line = "42 (a) b (c) S 7 42 42 0 -1 4194560 100 0 0 0 3 4 5 6 20 0 1 0 987654 1000 100";
        let s = parse(line).unwrap();
        assert_eq!(s.state, 'S');
        assert_eq!(s.ppid, 7);
        assert_eq!(s.cpu_ticks, 3 + 4 + 5 + 6);
        assert_eq!(s.start_time, 987654);
    }

    #[test]
    fn this_process_is_alive_and_a_truncated_line_is_none() {
        let me = stat(std::process::id() as i32).unwrap();
        assert!(matches!(me.state, 'R' | 'S'), "{me:?}");
        assert!(me.start_time > 0);
        assert_eq!(parse("1 (x) S 0"), None);
    }
}
