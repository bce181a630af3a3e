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

/// Encode a wait status for the status pipe: exited or signaled, and the number.
pub fn encode(status: libc::c_int) -> [u8; 4] {
    status.to_ne_bytes()
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
                let _ = sys::write_all(status_fd, &encode(status));
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
