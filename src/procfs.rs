//! The one reader of `/proc/PID/stat`, shared by everything that must tell
//! a process from a later one with the same pid (start time) or sum its
//! CPU time (the judge's watchdog).

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

/// `/proc/PID/stat`, or `None` when the process is gone.
pub fn stat(pid: i32) -> Option<Stat> {
    parse(&std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
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
