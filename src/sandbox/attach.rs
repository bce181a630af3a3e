//! Running a sandbox in the foreground, as `docker run` without `-d`:
//! signals sent to hutch reach the workload, `-t` relays a pseudo-terminal
//! (window size included, the user's terminal restored on every exit path),
//! limits the kernel cannot enforce alone are watched (wall clock, output,
//! and CPU and memory without a cgroup), and the outcome comes back.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::time::Instant;

use super::console;
use super::enforce::Watch;
use super::error::SandboxError;
use super::init;
use super::report::Outcome;
use super::spawn::{self, Exit, Running, Stdio};
use super::spec::Spec;
use super::sys;
use super::teardown;

/// Where the workload's stdio goes, when not hutch's own (`--stdin FILE`,
/// `--stdout FILE`, `--stderr FILE`).
#[derive(Debug, Default)]
pub struct Io {
    pub stdin: Option<OwnedFd>,
    pub stdout: Option<OwnedFd>,
    pub stderr: Option<OwnedFd>,
}

/// Run `spec` attached to this process's stdio and wait for it.
pub fn run(spec: &Spec) -> Result<Exit, SandboxError> {
    run_with(spec, Io::default()).map(|o| o.exit)
}

/// Run `spec` with `io` and report what happened.
pub fn run_with(spec: &Spec, io: Io) -> Result<Outcome, SandboxError> {
    run_observed(spec, io, &mut Unobserved)
}

/// What the caller of a foreground run does at two points of the
/// sandbox's life, each while the sandbox is busy with something else.
pub trait Observer {
    /// init is in its namespaces and cgroup, and the workload may not start
    /// before this returns (see [`spawn::start_with`]): a container run in
    /// the foreground records itself here, init included, for `exec`, while
    /// the sandbox builds its root. An error stops the sandbox.
    fn released(&mut self, init_pid: i32) -> Result<(), String>;

    /// The workload ended with `exit` and init is exiting, which takes a
    /// while (its namespaces are torn down), so work that needs neither
    /// init gone nor the run's figures is done here: an `--rm` container's
    /// record is removed. With `kept`, init's keeper, given
    /// [`Observer::leftovers`], finishes after hutch's exit, and only what
    /// must be gone before hutch returns is removed here.
    fn ended(&mut self, exit: Exit, kept: bool);

    /// Whether hutch may return before init has exited and the cgroup is
    /// removed, once every other process of the sandbox is gone: init then
    /// gets a keeper as its parent (see [`super::teardown`]). True for an
    /// `--rm` run, whose cgroup no later start makes again.
    fn detach_teardown(&self) -> bool {
        false
    }

    /// What the keeper removes after the cgroup, once hutch has exited:
    /// asked before the sandbox starts.
    fn leftovers(&self) -> Vec<teardown::Step> {
        Vec::new()
    }
}

struct Unobserved;

impl Observer for Unobserved {
    fn released(&mut self, _: i32) -> Result<(), String> {
        Ok(())
    }

    fn ended(&mut self, _: Exit, _: bool) {}
}

/// As [`run_with`], telling `observer` when the workload is released and
/// when it has ended.
pub fn run_observed(
    spec: &Spec,
    io: Io,
    observer: &mut dyn Observer,
) -> Result<Outcome, SandboxError> {
    let proc = &spec.process;
    let limited_output = spec.limits.limits.output.is_some();
    let devnull = if proc.stdin || proc.terminal || io.stdin.is_some() {
        None
    } else {
        Some(dup_null()?)
    };
    let out_dest = io.stdout.as_ref().map_or(1, |f| f.as_raw_fd());
    let err_dest = io.stderr.as_ref().map_or(2, |f| f.as_raw_fd());
    // With an output limit, stdout and stderr pass through hutch, which
    // counts them. So they do when they are the user's terminal or a file
    // (see `must_not_be_handed_over`). Otherwise (pipes, sockets, /dev/null)
    // the workload writes to them directly.
    let pipes = if (limited_output
        || must_not_be_handed_over(out_dest)
        || must_not_be_handed_over(err_dest))
        && !proc.terminal
    {
        let p = |what| sys::pipe().map_err(|e| SandboxError::io("cannot create", what, e));
        Some((p("stdout pipe")?, p("stderr pipe")?))
    } else {
        None
    };
    // `-i` from the user's terminal or a file: through a pipe, for the same
    // reason. The terminal is relayed by the loop below, a file by a thread.
    let stdin_relayed = proc.stdin && !proc.terminal && io.stdin.is_none();
    let stdin_pipe = if stdin_relayed && must_not_be_handed_over(0) {
        Some(sys::pipe().map_err(|e| SandboxError::io("cannot create", "stdin pipe", e))?)
    } else {
        None
    };
    let stdio = match (proc.terminal, &pipes) {
        // With -t the child only reads the user's window size from these;
        // the workload's stdio is a pty the child opens inside the sandbox.
        (true, _) => Stdio {
            stdin: 0,
            stdout: 1,
            stderr: 2,
        },
        (false, pipes) => Stdio {
            stdin: io
                .stdin
                .as_ref()
                .or(devnull.as_ref())
                .map(|f| f.as_raw_fd())
                .or(stdin_pipe.as_ref().map(|(r, _)| r.as_raw_fd()))
                .unwrap_or(0),
            stdout: pipes.as_ref().map_or(out_dest, |((_, w), _)| w.as_raw_fd()),
            stderr: pipes.as_ref().map_or(err_dest, |(_, (_, w))| w.as_raw_fd()),
        },
    };

    // An `--rm` run with a cgroup gets a keeper (see `teardown`) as init's
    // parent, so that hutch can return before init has exited.
    let keeper_steps: Option<Vec<teardown::Step>> = spec
        .limits
        .cgroup
        .as_ref()
        .filter(|_| observer.detach_teardown())
        .map(|cg| {
            // A pooled cgroup stays, for the next run.
            let dirs = cg.dirs.values().filter(|_| !cg.pooled);
            let cgroups = dirs.cloned().map(teardown::Step::RemoveCgroup);
            cgroups.chain(observer.leftovers()).collect()
        });
    let signals = SignalFd::new()?;
    let started_at = Instant::now();
    let started = spawn::start_with(
        spec,
        stdio,
        &mut |pid| observer.released(pid),
        keeper_steps.as_deref(),
    );
    drop(devnull);
    let mut running = match started {
        Ok(r) => r,
        Err(e) => {
            signals.restore();
            return Err(e);
        }
    };
    let kept = running.kept();
    let mut stdin_to = stdin_pipe.map(|(_, w)| w);
    if !is_tty(0) {
        if let Some(pipe) = stdin_to.take() {
            // hutch's own threads start only now, after the clone.
            copy_stdin_in_background(pipe);
        }
    }
    let mut sources = Vec::new();
    if let Some(((r_out, w_out), (r_err, w_err))) = pipes {
        drop((w_out, w_err));
        sources.push(Source::new(r_out, out_dest));
        sources.push(Source::new(r_err, err_dest));
    }
    let mut relay = Relay {
        spec,
        signals: &signals,
        sources,
        stdin_open: stdin_to.is_some(),
        stdin_to,
        watch: Watch::new(&spec.limits, started_at),
        observer,
        kept,
    };
    let raw;
    if let Some(master) = running.console.take() {
        raw = RawTerminal::enter();
        copy_window_size(master.as_raw_fd());
        relay.stdin_open = proc.stdin && io.stdin.is_none();
        relay.sources.push(Source::new(master, out_dest));
    } else {
        raw = RawTerminal { saved: None };
    }
    let (outcome, teardown_left) = relay.run(running);
    drop(raw);
    signals.restore();
    if !teardown_left {
        if let Some(cg) = &spec.limits.cgroup {
            cg.remove();
        }
    }
    Ok(outcome)
}

/// Whether `fd` must reach the workload through a pipe rather than as
/// itself: a terminal (read-write: the workload could read keystrokes or
/// change its modes), or a file or directory, which the workload could
/// reopen through the /proc/self/fd magic link with more access than it
/// was given (stdin from a file, reopened for writing, modifies the file).
fn must_not_be_handed_over(fd: RawFd) -> bool {
    if is_tty(fd) {
        return true;
    }
    // SAFETY: stat is plain data, filled by fstat.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: fstat writes into a live local.
    if unsafe { libc::fstat(fd, &mut st) } != 0 {
        return false;
    }
    matches!(
        st.st_mode & libc::S_IFMT,
        libc::S_IFREG | libc::S_IFDIR | libc::S_IFBLK
    )
}

/// Copy hutch's stdin (a file) into the workload's stdin pipe until EOF,
/// or until the workload closes its end (EPIPE: Rust ignores SIGPIPE).
fn copy_stdin_in_background(pipe: OwnedFd) {
    std::thread::spawn(move || {
        // SAFETY: fd 0 stays open for hutch's whole life; ManuallyDrop keeps
        // this File from closing it.
        let stdin = std::mem::ManuallyDrop::new(unsafe { std::fs::File::from_raw_fd(0) });
        let mut pipe = std::fs::File::from(pipe);
        let _ = std::io::copy(&mut &*stdin, &mut pipe);
    });
}

fn is_tty(fd: RawFd) -> bool {
    // SAFETY: isatty only inspects the descriptor.
    unsafe { libc::isatty(fd) == 1 }
}

fn dup_null() -> Result<OwnedFd, SandboxError> {
    std::fs::File::open("/dev/null")
        .map(OwnedFd::from)
        .map_err(|e| SandboxError::io("cannot open", "/dev/null", e))
}

/// A stream from the sandbox to one of hutch's outputs.
struct Source {
    from: OwnedFd,
    to: RawFd,
    open: bool,
}

impl Source {
    fn new(from: OwnedFd, to: RawFd) -> Source {
        Source {
            from,
            to,
            open: true,
        }
    }
}

struct Relay<'a> {
    spec: &'a Spec,
    signals: &'a SignalFd,
    /// The output streams: the pty master, or the stdout and stderr pipes.
    sources: Vec<Source>,
    /// Copy hutch's stdin to the pty master (`-it`) or to `stdin_to`.
    stdin_open: bool,
    /// `-i` without `-t` from the user's terminal: the workload's stdin
    /// pipe, closed on the terminal's end of file.
    stdin_to: Option<OwnedFd>,
    watch: Watch<'a>,
    observer: &'a mut dyn Observer,
    /// init's parent is a keeper, which removes the cgroup and what is
    /// left of the record once init and hutch have exited.
    kept: bool,
}

impl Relay<'_> {
    /// Relay until init has exited, or until the workload has ended and
    /// the rest may be left to the keeper (then the second value is true:
    /// init is still in the cgroup, which is the keeper's to remove).
    fn run(mut self, mut running: Running) -> (Outcome, bool) {
        let mut exited = false;
        let mut ended = false;
        let mut detach = false;
        while !exited && !detach {
            let mut fds = vec![
                poll_fd(self.signals.fd.as_raw_fd()),
                poll_fd(running.pidfd.as_raw_fd()),
                poll_fd(if ended { -1 } else { running.status_fd() }),
            ];
            let first_source = fds.len();
            for s in &self.sources {
                fds.push(poll_fd(if s.open { s.from.as_raw_fd() } else { -1 }));
            }
            let stdin_at = fds.len();
            fds.push(poll_fd(if self.stdin_open { 0 } else { -1 }));

            let ms = self.watch.timeout_ms();
            // SAFETY: `fds` is a valid array of pollfd of the given length.
            let n = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, ms) };
            if n < 0 {
                continue;
            }
            if fds[0].revents != 0 {
                if let Some(sig) = self.signals.read() {
                    self.on_signal(sig, &running);
                }
            }
            for i in 0..self.sources.len() {
                if fds[first_source + i].revents != 0 {
                    self.pump(i, &running);
                }
            }
            if fds[stdin_at].revents != 0 {
                let to = match &self.stdin_to {
                    Some(pipe) => pipe.as_raw_fd(),
                    None => self.sources.last().map_or(-1, |s| s.from.as_raw_fd()),
                };
                if !copy_chunk(0, to, u64::MAX).is_some_and(|(n, _)| n > 0) {
                    self.stdin_open = false;
                    self.stdin_to = None;
                }
            }
            if fds[2].revents != 0 {
                ended = true;
                if let Some(exit) = running.workload_ended() {
                    self.observer.ended(exit, self.kept);
                    detach = self.kept;
                }
            }
            exited = fds[1].revents != 0;
            // Limits are for the workload's life: once it has ended, the
            // wall clock or a late sample cannot breach them.
            if !exited && !ended {
                self.watch.check(&running);
            }
        }
        // Drain what the workload wrote before it ended.
        for i in 0..self.sources.len() {
            while self.sources[i].open {
                self.pump(i, &running);
            }
        }
        if detach {
            if let Some(done) = self.watch.finish_before_init_exits(&mut running) {
                return done;
            }
        }
        (self.watch.finish(running), false)
    }

    fn on_signal(&self, sig: i32, running: &Running) {
        let pty = self.spec.process.terminal;
        match sig {
            libc::SIGWINCH if pty => {
                if let Some(s) = self.sources.last() {
                    copy_window_size(s.from.as_raw_fd());
                }
            }
            libc::SIGCHLD => {}
            _ => {
                let _ = running.signal(sig);
            }
        }
    }

    /// Copy one chunk from source `i`, within the output limit.
    fn pump(&mut self, i: usize, running: &Running) {
        let budget = self.watch.output_budget();
        let s = &mut self.sources[i];
        match copy_chunk(s.from.as_raw_fd(), s.to, budget) {
            Some((read, kept)) if read > 0 => self.watch.count_output(read, kept, running),
            // EOF, or EIO once every pty slave is closed.
            _ => s.open = false,
        }
    }
}

fn poll_fd(fd: RawFd) -> libc::pollfd {
    libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    }
}

/// Read one chunk from `from` and write at most `max` bytes of it to `to`.
/// Returns (bytes read, bytes written); `None` on error, a zero read on EOF.
fn copy_chunk(from: RawFd, to: RawFd, max: u64) -> Option<(u64, u64)> {
    // On the heap and not zeroed: 64 KiB in the caller's stack frame were
    // sixteen stack pages probed and touched (copied, once the sandbox's
    // clone had shared them) at every run, for the few bytes a judged
    // program prints; read(2) touches what it writes.
    const CHUNK: usize = 65536;
    let mut buf: Vec<u8> = Vec::with_capacity(CHUNK);
    // SAFETY: reading into the vector's spare capacity, of exactly CHUNK bytes.
    let n = unsafe { libc::read(from, buf.as_mut_ptr().cast(), CHUNK) };
    if n < 0 {
        return None;
    }
    // SAFETY: read(2) initialised the first `n` <= CHUNK bytes.
    unsafe { buf.set_len(n as usize) };
    let keep = (n as u64).min(max) as usize;
    if keep > 0 {
        sys::write_all(to, &buf[..keep]).ok()?;
    }
    Some((n as u64, keep as u64))
}

fn copy_window_size(master: RawFd) {
    let _ = console::copy_window_size(0, master) || console::copy_window_size(1, master);
}

/// A signalfd for the forwarded signals, with the old mask kept to restore.
pub(crate) struct SignalFd {
    pub(crate) fd: OwnedFd,
    old: libc::sigset_t,
}

impl SignalFd {
    pub(crate) fn new() -> Result<SignalFd, SandboxError> {
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

    pub(crate) fn read(&self) -> Option<i32> {
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

    pub(crate) fn restore(&self) {
        // SAFETY: restoring the mask saved in new().
        unsafe { libc::sigprocmask(libc::SIG_SETMASK, &self.old, std::ptr::null_mut()) };
    }
}

/// The user's terminal in raw mode for as long as this lives.
pub(crate) struct RawTerminal {
    saved: Option<libc::termios>,
}

impl RawTerminal {
    pub(crate) fn enter() -> RawTerminal {
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
