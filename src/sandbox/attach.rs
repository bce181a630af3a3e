//! Running a sandbox in the foreground, as `docker run` without `-d`:
//! signals sent to hutch reach the workload, `-t` relays a pseudo-terminal
//! (window size included, the user's terminal restored on every exit path),
//! and the workload's exit status comes back.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use super::error::SandboxError;
use super::init;
use super::spawn::{self, Exit, Running, Stdio};
use super::spec::{Process, Spec};
use super::sys;

/// Run `spec` attached to this process's stdio and wait for it.
pub fn run(spec: &Spec) -> Result<Exit, SandboxError> {
    run_with(&spec.process, |stdio| spawn::start(spec, stdio))
}

/// Start a process with `start`, given the stdio `proc` asks for (a
/// pseudo-terminal, forwarded stdin or /dev/null), and relay until it ends.
pub fn run_with(
    proc: &Process,
    start: impl FnOnce(Stdio) -> Result<Running, SandboxError>,
) -> Result<Exit, SandboxError> {
    let pty = if proc.terminal {
        Some(Pty::open()?)
    } else {
        None
    };
    let devnull = if proc.stdin || pty.is_some() {
        None
    } else {
        Some(
            std::fs::File::open("/dev/null")
                .map_err(|e| SandboxError::io("cannot open", "/dev/null", e))?,
        )
    };
    let stdio = match (&pty, &devnull) {
        (Some(p), _) => Stdio {
            stdin: p.slave.as_raw_fd(),
            stdout: p.slave.as_raw_fd(),
            stderr: p.slave.as_raw_fd(),
        },
        (None, Some(null)) => Stdio {
            stdin: null.as_raw_fd(),
            stdout: 1,
            stderr: 2,
        },
        (None, None) => Stdio {
            stdin: 0,
            stdout: 1,
            stderr: 2,
        },
    };

    let signals = SignalFd::new()?;
    let started = start(stdio);
    drop(devnull);
    let running = match started {
        Ok(r) => r,
        Err(e) => {
            signals.restore();
            return Err(e);
        }
    };
    let exit = match pty {
        Some(mut pty) => {
            drop(std::mem::replace(&mut pty.slave, dup_null()?));
            let raw = RawTerminal::enter();
            pty.copy_size_from_terminal();
            let exit = relay(running, &signals, Some(&pty), proc.stdin);
            drop(raw);
            exit
        }
        None => relay(running, &signals, None, false),
    };
    signals.restore();
    Ok(exit)
}

fn dup_null() -> Result<OwnedFd, SandboxError> {
    std::fs::File::open("/dev/null")
        .map(OwnedFd::from)
        .map_err(|e| SandboxError::io("cannot open", "/dev/null", e))
}

/// Wait for the sandbox while forwarding signals and, with a terminal,
/// copying bytes between the user's terminal and the pty.
fn relay(running: Running, signals: &SignalFd, pty: Option<&Pty>, stdin: bool) -> Exit {
    let mut stdin_open = stdin && pty.is_some();
    loop {
        let mut fds = vec![
            poll_fd(signals.fd.as_raw_fd()),
            poll_fd(running.pidfd.as_raw_fd()),
        ];
        if let Some(p) = pty {
            fds.push(poll_fd(p.master.as_raw_fd()));
            if stdin_open {
                fds.push(poll_fd(0));
            }
        }
        // SAFETY: `fds` is a valid array of pollfd of the given length.
        let n = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, -1) };
        if n < 0 {
            continue;
        }
        if fds[0].revents != 0 {
            if let Some(sig) = signals.read() {
                match (sig, pty) {
                    (libc::SIGWINCH, Some(p)) => p.copy_size_from_terminal(),
                    (libc::SIGCHLD, _) => {}
                    _ => {
                        let _ = running.signal(sig);
                    }
                }
            }
        }
        if let Some(p) = pty {
            if fds[2].revents != 0 {
                // false here is EIO: every slave closed, the pidfd says the rest.
                copy(p.master.as_raw_fd(), 1);
            }
            if stdin_open && fds.len() > 3 && fds[3].revents != 0 && !copy(0, p.master.as_raw_fd())
            {
                stdin_open = false;
            }
        }
        if fds[1].revents != 0 {
            if let Some(p) = pty {
                // Drain what the workload wrote before it ended.
                while copy(p.master.as_raw_fd(), 1) {}
            }
            break;
        }
    }
    running.wait()
}

fn poll_fd(fd: RawFd) -> libc::pollfd {
    libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    }
}

/// Copy one chunk from `from` to `to`; false on EOF or error.
fn copy(from: RawFd, to: RawFd) -> bool {
    let mut buf = [0u8; 8192];
    // SAFETY: reading into a valid buffer of the given length.
    let n = unsafe { libc::read(from, buf.as_mut_ptr().cast(), buf.len()) };
    if n <= 0 {
        return false;
    }
    sys::write_all(to, &buf[..n as usize]).is_ok()
}

/// A signalfd for the forwarded signals, with the old mask kept to restore.
struct SignalFd {
    fd: OwnedFd,
    old: libc::sigset_t,
}

impl SignalFd {
    fn new() -> Result<SignalFd, SandboxError> {
        let set = init::blocked_set();
        // SAFETY: sigset_t is plain data; sigprocmask fills `old`.
        let mut old: libc::sigset_t = unsafe { std::mem::zeroed() };
        // SAFETY: valid set pointers for this thread.
        unsafe { libc::sigprocmask(libc::SIG_BLOCK, &set, &mut old) };
        // SAFETY: an initialised set; -1 asks for a new descriptor.
        let fd = unsafe { libc::signalfd(-1, &set, libc::SFD_CLOEXEC | libc::SFD_NONBLOCK) };
        if fd < 0 {
            return Err(SandboxError::io(
                "cannot create",
                "a signalfd",
                std::io::Error::last_os_error(),
            ));
        }
        // SAFETY: a fresh descriptor owned by nobody else.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        Ok(SignalFd { fd, old })
    }

    fn read(&self) -> Option<i32> {
        // SAFETY: plain data.
        let mut info: libc::signalfd_siginfo = unsafe { std::mem::zeroed() };
        let size = std::mem::size_of::<libc::signalfd_siginfo>();
        // SAFETY: reading at most `size` bytes into `info`.
        let n = unsafe {
            libc::read(
                self.fd.as_raw_fd(),
                (&mut info as *mut libc::signalfd_siginfo).cast(),
                size,
            )
        };
        (n == size as isize).then_some(info.ssi_signo as i32)
    }

    fn restore(&self) {
        // SAFETY: restoring the mask saved in new().
        unsafe { libc::sigprocmask(libc::SIG_SETMASK, &self.old, std::ptr::null_mut()) };
    }
}

struct Pty {
    master: OwnedFd,
    slave: OwnedFd,
}

impl Pty {
    fn open() -> Result<Pty, SandboxError> {
        let (mut m, mut s) = (-1, -1);
        // SAFETY: openpty writes two descriptors; the name, termios and
        // winsize pointers may be NULL.
        let ret = unsafe {
            libc::openpty(
                &mut m,
                &mut s,
                std::ptr::null_mut(),
                std::ptr::null(),
                std::ptr::null(),
            )
        };
        if ret < 0 {
            return Err(SandboxError::io(
                "cannot open",
                "a pseudo-terminal",
                std::io::Error::last_os_error(),
            ));
        }
        // SAFETY: fresh descriptors from openpty, owned by us alone.
        let (master, slave) = unsafe { (OwnedFd::from_raw_fd(m), OwnedFd::from_raw_fd(s)) };
        // SAFETY: fcntl on our own descriptors.
        unsafe {
            libc::fcntl(m, libc::F_SETFD, libc::FD_CLOEXEC);
            libc::fcntl(s, libc::F_SETFD, libc::FD_CLOEXEC);
        }
        Ok(Pty { master, slave })
    }

    fn copy_size_from_terminal(&self) {
        // SAFETY: winsize is plain data; the ioctls read and write it.
        unsafe {
            let mut ws: libc::winsize = std::mem::zeroed();
            if libc::ioctl(0, libc::TIOCGWINSZ, &mut ws) == 0
                || libc::ioctl(1, libc::TIOCGWINSZ, &mut ws) == 0
            {
                libc::ioctl(self.master.as_raw_fd(), libc::TIOCSWINSZ, &ws);
            }
        }
    }
}

/// The user's terminal in raw mode for as long as this lives.
struct RawTerminal {
    saved: Option<libc::termios>,
}

impl RawTerminal {
    fn enter() -> RawTerminal {
        // SAFETY: termios is plain data; tcgetattr fills it, cfmakeraw edits
        // a copy, tcsetattr applies it to fd 0 only if fd 0 is a terminal.
        unsafe {
            let mut t: libc::termios = std::mem::zeroed();
            if libc::isatty(0) == 0 || libc::tcgetattr(0, &mut t) != 0 {
                return RawTerminal { saved: None };
            }
            let mut raw = t;
            libc::cfmakeraw(&mut raw);
            libc::tcsetattr(0, libc::TCSANOW, &raw);
            RawTerminal { saved: Some(t) }
        }
    }
}

impl Drop for RawTerminal {
    fn drop(&mut self) {
        if let Some(t) = &self.saved {
            // SAFETY: restoring the attributes saved in enter().
            unsafe { libc::tcsetattr(0, libc::TCSAFLUSH, t) };
        }
    }
}
