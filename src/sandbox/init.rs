//! The sandbox's pid 1: reaps every zombie, forwards signals to the
//! workload, and exits with the workload's status (which makes the kernel
//! kill whatever else is left in the pid namespace).

use std::os::fd::RawFd;

use super::caps;
use super::sys;

/// Signals hutch passes on to the workload, as `docker run` does.
pub const FORWARDED: &[libc::c_int] = &[
    libc::SIGINT,
    libc::SIGTERM,
    libc::SIGHUP,
    libc::SIGQUIT,
    libc::SIGWINCH,
    libc::SIGUSR1,
    libc::SIGUSR2,
];

/// The forwarded signals plus SIGCHLD: blocked in hutch before clone so
/// that both hutch and init can take them from a signalfd.
pub fn blocked_set() -> libc::sigset_t {
    // SAFETY: sigset_t is plain data and sigemptyset/sigaddset initialise it.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for &s in FORWARDED.iter().chain(&[libc::SIGCHLD]) {
            libc::sigaddset(&mut set, s);
        }
        set
    }
}

/// The length of init's one message on the status pipe.
pub const STATUS_LEN: usize = 12;

/// Encode what init says on the status pipe: the workload's wait status
/// and the peak resident memory (KiB) of the largest process init reaped.
/// The peak is a floor for the run's: a pooled cgroup's peak less what
/// the slot held before can come out below it (or at zero) when the
/// kernel reclaims the slot's old page cache during the run.
pub fn encode(status: libc::c_int, max_rss_kib: i64) -> [u8; STATUS_LEN] {
    let mut out = [0u8; STATUS_LEN];
    out[..4].copy_from_slice(&status.to_ne_bytes());
    out[4..].copy_from_slice(&max_rss_kib.to_ne_bytes());
    out
}

/// The wait status and peak resident memory (KiB) from [`encode`].
pub fn decode(buf: &[u8; STATUS_LEN]) -> (libc::c_int, u64) {
    let status = libc::c_int::from_ne_bytes([buf[0], buf[1], buf[2], buf[3]]);
    let mut rss = [0u8; 8];
    rss.copy_from_slice(&buf[4..]);
    (status, i64::from_ne_bytes(rss).max(0) as u64)
}

pub fn run(workload: libc::pid_t, status_fd: RawFd) -> ! {
    // init runs no untrusted code, but it lives in the sandbox: it keeps no
    // capability and can gain none.
    let _ = caps::drop_bounding(caps::last_cap());
    let _ = caps::clear_all();
    let _ = sys::prctl(libc::PR_SET_NO_NEW_PRIVS, 1);
    // Not dumpable: the workload runs as the same uid, and must not reach
    // init's descriptors (the status pipe) through /proc/1/fd or ptrace.
    let _ = sys::prctl(libc::PR_SET_DUMPABLE, 0);
    // Keep only stdio (/dev/null by now) and the status pipe.
    // SAFETY: close_range on integer ranges; no memory is touched.
    unsafe {
        if status_fd > 3 {
            libc::syscall(libc::SYS_close_range, 3u32, (status_fd - 1) as u32, 0u32);
        }
        libc::syscall(
            libc::SYS_close_range,
            (status_fd + 1) as u32,
            u32::MAX,
            0u32,
        );
    }

    let set = blocked_set();
    // SAFETY: `set` is an initialised sigset; -1 asks for a new signalfd.
    let sfd = unsafe { libc::signalfd(-1, &set, libc::SFD_CLOEXEC) };
    if sfd < 0 {
        // Without a signalfd we cannot supervise; kill the workload rather
        // than leave it unsupervised.
        // SAFETY: plain kill and exit.
        unsafe {
            libc::kill(workload, libc::SIGKILL);
            libc::_exit(125)
        }
    }
    loop {
        // SAFETY: signalfd_siginfo is plain data; zeroed is valid.
        let mut info: libc::signalfd_siginfo = unsafe { std::mem::zeroed() };
        let size = std::mem::size_of::<libc::signalfd_siginfo>();
        // SAFETY: reading at most `size` bytes into `info`.
        let n = unsafe { libc::read(sfd, (&mut info as *mut libc::signalfd_siginfo).cast(), size) };
        if n != size as isize {
            continue;
        }
        let sig = info.ssi_signo as libc::c_int;
        if sig != libc::SIGCHLD {
            // SAFETY: sending a signal to our own child.
            unsafe { libc::kill(workload, sig) };
            continue;
        }
        loop {
            let mut status = 0;
            // SAFETY: `status` is a valid out-pointer.
            let pid = unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG) };
            if pid <= 0 {
                break;
            }
            if pid == workload {
                // SAFETY: rusage is plain data; zeroed is a valid value.
                let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
                // SAFETY: `usage` is a valid out-pointer.
                unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut usage) };
                // One write under PIPE_BUF: the reader sees all or nothing.
                let _ = sys::write_all(status_fd, &encode(status, usage.ru_maxrss));
                let code = if libc::WIFEXITED(status) {
                    libc::WEXITSTATUS(status)
                } else {
                    128 + libc::WTERMSIG(status)
                };
                // SAFETY: exiting pid 1 ends the sandbox.
                unsafe { libc::_exit(code) }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_status_message_reads_back_and_a_negative_peak_is_zero() {
        assert_eq!(decode(&encode(0x0b00, 1234)), (0x0b00, 1234));
        assert_eq!(decode(&encode(9, -1)), (9, 0));
    }
}
