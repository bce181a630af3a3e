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
pub fn sample(init: i32) -> Sample {
    // SAFETY: sysconf takes no pointers.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    // SAFETY: as above.
    let page_kib = (unsafe { libc::sysconf(libc::_SC_PAGESIZE) }.max(4096) as u64) / 1024;
    let mut s = Sample::default();
    let mut cpu_ticks = 0u64;
    let mut stack = vec![init];
    // A fork bomb cannot make the walk unbounded.
    let mut budget = 100_000;
    while let Some(pid) = stack.pop() {
        budget -= 1;
        if budget == 0 {
            break;
        }
        if let Some(t) = crate::procfs::stat(pid).map(|s| s.cpu_ticks) {
            cpu_ticks += t;
            s.processes += 1;
        }
        if let Ok(statm) = std::fs::read_to_string(format!("/proc/{pid}/statm")) {
            if let Some(rss) = statm
                .split_whitespace()
                .nth(1)
                .and_then(|v| v.parse::<u64>().ok())
            {
                s.rss_kib += rss * page_kib;
            }
        }
        let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
            continue;
        };
        for task in tasks.flatten() {
            let path = task.path().join("children");
            if let Ok(children) = std::fs::read_to_string(path) {
                stack.extend(
                    children
                        .split_whitespace()
                        .filter_map(|c| c.parse::<i32>().ok()),
                );
            }
        }
    }
    s.cpu = Duration::from_millis(cpu_ticks * 1000 / ticks);
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_this_process() {
        let s = sample(std::process::id() as i32);
        assert!(s.processes >= 1);
        assert!(s.rss_kib > 0);
    }
}
