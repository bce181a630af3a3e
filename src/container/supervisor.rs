//! The supervisor: one small process per running container, as conmon is
//! to Podman. `hutch start` forks twice (so the supervisor belongs to no
//! terminal session and no command waits on it) and execs hutch itself in
//! a hidden mode (`hutch __supervise`, the directory in
//! `$HUTCH_SUPERVISE_DIR`), which starts from a fresh,
//! small address space instead of the CLI's.
//!
//! The supervisor clones the sandbox, so it is the sandbox init's parent:
//! init has a parent-death signal, and if the supervisor is killed the
//! whole sandbox dies with it. It holds the workload's stdout and stderr
//! (and, with `-i`, its stdin), writes the json-file log, serves attached
//! clients (see `attach`), enforces the limits the kernel cannot (wall
//! time, output, the watchdog's; see `sandbox::enforce`) and writes the
//! judge's report, waits on the pidfd, records the exit status and the
//! finish time, and removes `--rm` containers. It is one thread and one
//! poll loop.
//!
//! The command that starts it learns the outcome on a pipe (fd 3 in the
//! supervisor): one JSON [`Report`], then EOF. `start -a` hands it a
//! connected attach socket as fd 4 (`$HUTCH_SUPERVISE_ATTACHED`), attached
//! before the workload starts.

use std::ffi::CString;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::attach::{self, STDERR, STDOUT};
use super::log::{self, Writer};
use super::process::ProcId;
use super::store::{self, Container, Store};
use super::{time, Config, ContainerError};
use crate::sandbox::enforce::Watch;
use crate::sandbox::hot::{self, Shed};
use crate::sandbox::report::{Outcome, Report as JudgeReport};
use crate::sandbox::spawn::{self, Exit, Running, Stdio};
use crate::sandbox::sys;

/// The argument that selects the supervisor mode of the hutch binary.
pub const MODE: &str = "__supervise";
/// The environment variable that names the container's directory.
pub const DIR_ENV: &str = "HUTCH_SUPERVISE_DIR";
/// Set when fd 4 is an attached client's socket.
const ATTACHED_ENV: &str = "HUTCH_SUPERVISE_ATTACHED";
/// The supervisor's end of the report pipe.
const REPORT_FD: RawFd = 3;
/// A client attached from the start (`start -a`).
const ATTACHED_FD: RawFd = 4;
/// The judge's report of the last run, in the container's directory.
pub const REPORT: &str = "report.json";

#[derive(Debug, Serialize, Deserialize)]
enum Report {
    Started { init: ProcId, supervisor: ProcId },
    Failed { reason: String, code: i32 },
}

/// Start the (locked) container `c`: launch its supervisor, wait until the
/// workload runs or could not start, and record the outcome. `attached`,
/// one end of a connected socket, becomes a client of the supervisor
/// before the workload starts.
pub fn launch(c: &mut Container, attached: Option<&OwnedFd>) -> Result<(), ContainerError> {
    let dir = c.dir.clone();
    let report =
        spawn_supervisor(&dir, attached.map(|f| f.as_raw_fd())).and_then(|fd| read_report(&fd));
    match report {
        Ok(Report::Started { init, supervisor }) => {
            c.state.started(Some(init), supervisor, time::now());
            c.save()
        }
        Ok(Report::Failed { reason, code }) => {
            c.state.error = Some(reason.clone());
            c.save()?;
            Err(ContainerError::Start {
                name: c.config.name.clone(),
                reason,
                code,
            })
        }
        Err(e) => Err(e),
    }
}

/// Read the report: one line of JSON. Not up to EOF: the sandbox's init
/// inherits the pipe's write end from the supervisor and keeps it.
fn read_report(fd: &OwnedFd) -> Result<Report, ContainerError> {
    let mut bytes = Vec::new();
    let mut buf = [0u8; 4096];
    while !bytes.contains(&b'\n') && bytes.len() < 64 * 1024 {
        // SAFETY: reading into a valid buffer of the given length.
        let n = unsafe { libc::read(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
        if n < 0 && std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted {
            continue;
        }
        if n <= 0 {
            break;
        }
        bytes.extend_from_slice(&buf[..n as usize]);
    }
    if bytes.is_empty() {
        return Ok(Report::Failed {
            reason: "the supervisor ended without a report".into(),
            code: crate::sandbox::error::EXIT_HUTCH,
        });
    }
    serde_json::from_slice(&bytes).map_err(|e| ContainerError::Corrupt {
        path: "the supervisor's report".into(),
        reason: e.to_string(),
    })
}

/// Fork, setsid, fork again and exec `hutch __supervise` (DIR in its
/// environment) with the report pipe's write end as fd 3, `attached` as fd
/// 4 and /dev/null as stdio. Returns the report pipe's read end. The caller
/// must be single-threaded.
fn spawn_supervisor(dir: &Path, attached: Option<RawFd>) -> Result<OwnedFd, ContainerError> {
    let fail = |what, e| ContainerError::io(what, dir, e);
    // Everything the children need is built before fork. /proc/self/exe
    // is this very binary even if its file was replaced meanwhile.
    let c = |b: &[u8]| {
        CString::new(b).map_err(|_| fail("bad path", std::io::ErrorKind::InvalidInput.into()))
    };
    let exe_c = c(b"/proc/self/exe")?;
    let argv_c = [c(b"hutch")?, c(MODE.as_bytes())?];
    // The directory goes in the environment, not argv: the sandbox's init
    // is a clone of the supervisor, and its command line (world-readable
    // as /proc/1/cmdline inside) must not tell the workload host paths.
    let mut env_c = Vec::new();
    for (k, v) in std::env::vars_os().filter(|(k, _)| k != DIR_ENV && k != ATTACHED_ENV) {
        let mut kv = k.as_bytes().to_vec();
        kv.push(b'=');
        kv.extend_from_slice(v.as_bytes());
        env_c.push(c(&kv)?);
    }
    let mut dir_kv = format!("{DIR_ENV}=").into_bytes();
    dir_kv.extend_from_slice(dir.as_os_str().as_bytes());
    env_c.push(c(&dir_kv)?);
    if attached.is_some() {
        env_c.push(c(format!("{ATTACHED_ENV}=1").as_bytes())?);
    }
    let ptrs = |v: &[CString]| -> Vec<*const libc::c_char> {
        v.iter()
            .map(|a| a.as_ptr())
            .chain(std::iter::once(std::ptr::null()))
            .collect()
    };
    let argv = ptrs(&argv_c);
    let envp = ptrs(&env_c);
    let devnull = c(b"/dev/null")?;
    let (report_r, report_w) = sys::pipe().map_err(|e| fail("cannot create a pipe for", e))?;

    // SAFETY: fork in a single-threaded process.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(fail(
            "cannot fork a supervisor for",
            std::io::Error::last_os_error(),
        ));
    }
    if pid == 0 {
        // SAFETY: only async-signal-safe calls on data prepared before fork,
        // then exec or _exit.
        unsafe {
            libc::setsid();
            if libc::fork() != 0 {
                libc::_exit(0);
            }
            let null = libc::open(devnull.as_ptr(), libc::O_RDWR);
            if null < 0 {
                libc::_exit(125);
            }
            // Out of the way of the fds it goes to.
            let attached = attached.map(|fd| libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 10));
            for fd in 0..3 {
                libc::dup2(null, fd);
            }
            // dup2 clears close-on-exec on the copy.
            libc::dup2(report_w.as_raw_fd(), REPORT_FD);
            if let Some(fd) = attached {
                if fd < 0 || libc::dup2(fd, ATTACHED_FD) < 0 {
                    libc::_exit(125);
                }
            }
            libc::execve(exe_c.as_ptr(), argv.as_ptr(), envp.as_ptr());
            libc::_exit(127);
        }
    }
    drop(report_w);
    let mut status = 0;
    // SAFETY: reaping the intermediate child, which exits at once.
    unsafe { libc::waitpid(pid, &mut status, 0) };
    Ok(report_r)
}

/// The supervisor's main: `hutch __supervise` with the container's
/// directory in `$HUTCH_SUPERVISE_DIR`. Never returns.
pub fn main() -> ! {
    let dir = PathBuf::from(std::env::var_os(DIR_ENV).unwrap_or_default());
    let attached = std::env::var_os(ATTACHED_ENV).is_some();
    // Single-threaded: nothing reads the environment concurrently.
    std::env::remove_var(DIR_ENV);
    std::env::remove_var(ATTACHED_ENV);
    let dir = dir.as_path();
    // SAFETY: fd 3 was set up by spawn_supervisor and is ours alone.
    let report = unsafe { OwnedFd::from_raw_fd(REPORT_FD) };
    // SAFETY: fd 4, when announced, was set up by spawn_supervisor too.
    let attached = attached.then(|| unsafe { OwnedFd::from_raw_fd(ATTACHED_FD) });
    for fd in [REPORT_FD, ATTACHED_FD] {
        // SAFETY: fcntl on our own descriptors (a closed one fails harmlessly).
        unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) };
    }
    let code = match supervise(dir, report, attached) {
        Ok(()) => 0,
        Err(_) => 1,
    };
    std::process::exit(code)
}

fn send(report: &OwnedFd, r: &Report) {
    if let Ok(mut json) = serde_json::to_vec(r) {
        json.push(b'\n');
        let _ = sys::write_all(report.as_raw_fd(), &json);
    }
}

fn supervise(dir: &Path, report: OwnedFd, attached: Option<OwnedFd>) -> Result<(), ContainerError> {
    let failed = |report: &OwnedFd, reason: String, code: i32| {
        send(report, &Report::Failed { reason, code });
    };
    let config: Config = match store::read_json(&dir.join(store::CONFIG)) {
        Ok(c) => c,
        Err(e) => {
            failed(&report, e.to_string(), 125);
            return Err(e);
        }
    };
    let process = &config.spec.process;
    // `-i` without `-t`: the workload's stdin is a pipe this process
    // writes what attached clients send into. With `-t` it is the pty.
    let wants_stdin_pipe = process.stdin && !process.terminal;
    let setup = (|| {
        Ok::<_, std::io::Error>((
            sys::pipe()?,
            sys::pipe()?,
            if wants_stdin_pipe {
                let (r, w) = sys::pipe()?;
                (r, Some(w))
            } else {
                (OwnedFd::from(std::fs::File::open("/dev/null")?), None)
            },
            attach::listen(&config.id)?,
        ))
    })();
    let ((out_r, out_w), (err_r, err_w), (stdin_r, stdin_w), listener) = match setup {
        Ok(p) => p,
        Err(e) => {
            failed(
                &report,
                format!("cannot set up the container's stdio and attach socket: {e}"),
                125,
            );
            return Err(ContainerError::io("cannot set up stdio for", dir, e));
        }
    };
    // The last run's report is no longer true.
    let _ = std::fs::remove_file(dir.join(REPORT));
    let mut writer = Writer::open(dir, config.log);
    let stdio = Stdio {
        stdin: stdin_r.as_raw_fd(),
        stdout: out_w.as_raw_fd(),
        stderr: err_w.as_raw_fd(),
    };
    let started_at = Instant::now();
    let mut running = match spawn::start(&config.spec, stdio) {
        Ok(r) => r,
        Err(e) => {
            attach::unlink(&config.id);
            failed(&report, e.to_string(), e.exit_code());
            return Err(e.into());
        }
    };
    drop((out_w, err_w, stdin_r));
    let init = ProcId::of(running.pid);
    let me = ProcId::me();
    match (init, me) {
        (Some(init), Some(supervisor)) => send(&report, &Report::Started { init, supervisor }),
        _ => {
            let _ = running.signal(libc::SIGKILL);
            failed(
                &report,
                "the sandbox ended before it could be recorded".into(),
                125,
            );
        }
    }
    drop(report);
    // Setting up touched much of hutch and libc once; give it back now and
    // from time to time, so what stays resident is the loop's own.
    // SAFETY: malloc_trim only returns free heap memory to the kernel.
    unsafe { libc::malloc_trim(0) };
    let shed = Shed::find();
    shed.shed();

    // With -t the workload reads and writes its pty: the master is its
    // stdout, and its stdin.
    let console = running.console.take();
    let stdin_w = match &console {
        Some(master) => master.try_clone().ok(),
        None => stdin_w,
    };
    let master = console.as_ref().map(|m| m.as_raw_fd());
    let out_r = console.unwrap_or(out_r);
    let mut session = Session {
        watch: Watch::new(&config.spec.limits, started_at),
        outputs: [Output::new(out_r, STDOUT), Output::new(err_r, STDERR)],
        log: &mut writer,
        stdin: stdin_w,
        stdin_pending: Vec::new(),
        stdin_closing: false,
        master,
        listener,
        clients: attached.map(Client::new).into_iter().collect(),
    };
    session.run(&running, &shed);
    let Session {
        watch, mut clients, ..
    } = session;
    let outcome = watch.finish(running);
    drop(writer);
    attach::unlink(&config.id);
    if let Some(cg) = &config.spec.limits.cgroup {
        cg.remove();
    }
    write_reports(dir, &config, &outcome);
    let recorded = record_exit(dir, outcome.exit);
    // Attached clients learn the exit code once it is recorded: after
    // `start -a` returns, `inspect` says exited.
    let code = outcome.exit.code().to_le_bytes();
    for c in &mut clients {
        attach::push_frame(&mut c.out, attach::EXIT, &code);
        attach::set_blocking(c.fd.as_raw_fd(), true);
        let _ = attach::send_some(c.fd.as_raw_fd(), &mut c.out);
    }
    recorded
}

/// The report of a run with judge limits: `report.json` in the container's
/// directory (`inspect` shows it as State.Report) and the `--report` file.
fn write_reports(dir: &Path, config: &Config, outcome: &Outcome) {
    let limits = &config.spec.limits;
    if limits.limits.is_empty() && config.report.is_none() {
        return;
    }
    let report = JudgeReport::from_outcome(outcome, limits);
    let _ = report.write_file(&dir.join(REPORT));
    if let Some(path) = &config.report {
        // Nobody is there to tell: a failure shows as the missing file.
        let _ = report.write_file(path);
    }
}

/// One stream of the workload's output.
struct Output {
    fd: OwnedFd,
    kind: u8,
    open: bool,
    /// The start of a line not yet ended.
    partial: Vec<u8>,
}

impl Output {
    fn new(fd: OwnedFd, kind: u8) -> Output {
        // SAFETY: fcntl on our own descriptor.
        unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_SETFL, libc::O_NONBLOCK) };
        Output {
            fd,
            kind,
            open: true,
            partial: Vec::new(),
        }
    }

    fn stream(&self) -> &'static str {
        if self.kind == STDERR {
            "stderr"
        } else {
            "stdout"
        }
    }

    /// Log `data`, whole lines at a time (and over-long lines in pieces).
    fn log(&mut self, data: &[u8], log: &mut Writer) {
        let stream = self.stream();
        let p = &mut self.partial;
        p.extend_from_slice(data);
        let mut start = 0;
        while let Some(nl) = p[start..].iter().position(|&b| b == b'\n') {
            log.write(stream, &p[start..start + nl + 1]);
            start += nl + 1;
        }
        p.drain(..start);
        while p.len() >= log::MAX_LINE {
            log.write(stream, &p[..log::MAX_LINE]);
            p.drain(..log::MAX_LINE);
        }
    }

    fn close(&mut self, log: &mut Writer) {
        self.open = false;
        if !self.partial.is_empty() {
            log.write(self.stream(), &self.partial);
            self.partial.clear();
        }
    }
}

/// An attached client: what is still to be sent to it, and what it sent.
struct Client {
    fd: OwnedFd,
    out: Vec<u8>,
    frames: attach::Frames,
}

impl Client {
    fn new(fd: OwnedFd) -> Client {
        attach::set_blocking(fd.as_raw_fd(), false);
        Client {
            fd,
            out: Vec::new(),
            frames: attach::Frames::default(),
        }
    }
}

/// The supervisor's loop: the workload's output to the log and to attached
/// clients, the clients' input to the workload, and the limits.
struct Session<'a> {
    watch: Watch<'a>,
    outputs: [Output; 2],
    log: &'a mut Writer,
    /// The workload's stdin (a pipe, or the pty master), when it has one.
    stdin: Option<OwnedFd>,
    /// Input not yet taken by the workload: clients are not read meanwhile.
    stdin_pending: Vec<u8>,
    /// A client ended its input: close stdin once the pending input is in.
    stdin_closing: bool,
    master: Option<RawFd>,
    listener: OwnedFd,
    clients: Vec<Client>,
}

/// How long the supervisor waits, once the workload has ended, on a client
/// that does not read what is left to send it.
const STALLED_CLIENT_MS: i32 = 10_000;

/// When the supervisor first gives back its text pages after the start,
/// and the longest it waits between two times.
const SHED_FIRST: Duration = Duration::from_secs(1);
const SHED_MAX: Duration = Duration::from_secs(64);

impl Session<'_> {
    /// The loop, in the hot section with what it calls on every tick (see
    /// `sandbox::hot`): an idle or watched container's supervisor runs
    /// nothing else.
    #[link_section = ".hutch.hot"]
    #[inline(never)]
    fn run(&mut self, running: &Running, shed: &Shed) {
        let mut buf = vec![0u8; 16 * 1024];
        let mut ended = false;
        let mut fds: Vec<libc::pollfd> = Vec::with_capacity(8);
        // The first ticks and events touch code once only (first calls,
        // the first log line): shed again after a second, then less and
        // less often, so what stays resident is what the loop uses.
        let mut shed_every = SHED_FIRST;
        let mut next_shed = hot::now() + shed_every;
        while self.outputs.iter().any(|o| o.open) {
            // Back-pressure, as Docker's attach: while a client has not
            // taken the last output, no more is read from the workload.
            let clients_behind = self.clients.iter().any(|c| !c.out.is_empty());
            let stdin_busy = !self.stdin_pending.is_empty();
            fds.clear();
            fds.push(poll_fd(
                if ended { -1 } else { running.pidfd.as_raw_fd() },
                libc::POLLIN,
            ));
            fds.push(poll_fd(self.listener.as_raw_fd(), libc::POLLIN));
            let stdin_fd = self.stdin.as_ref().filter(|_| stdin_busy);
            fds.push(poll_fd(
                stdin_fd.map_or(-1, |f| f.as_raw_fd()),
                libc::POLLOUT,
            ));
            for o in &self.outputs {
                let fd = if o.open && !clients_behind {
                    o.fd.as_raw_fd()
                } else {
                    -1
                };
                fds.push(poll_fd(fd, libc::POLLIN));
            }
            for c in &self.clients {
                let mut events = if stdin_busy { 0 } else { libc::POLLIN };
                if !c.out.is_empty() {
                    events |= libc::POLLOUT;
                }
                fds.push(poll_fd(c.fd.as_raw_fd(), events));
            }
            let timeout = if ended {
                STALLED_CLIENT_MS
            } else {
                let until_shed = next_shed.saturating_sub(hot::now()).as_millis() as i32 + 1;
                match self.watch.timeout_ms() {
                    -1 => until_shed,
                    t => t.min(until_shed),
                }
            };
            let n = hot::poll(&mut fds, timeout);
            if n < 0 {
                continue;
            }
            if !ended && hot::now() >= next_shed {
                shed.shed();
                shed_every = (shed_every * 2).min(SHED_MAX);
                next_shed = hot::now() + shed_every;
            }
            if n == 0 && ended {
                // Once the sandbox has ended its pipes can only be at EOF
                // or readable; what blocks is a client that does not read.
                if !clients_behind {
                    break;
                }
                self.clients.retain(|c| c.out.is_empty());
                continue;
            }
            if fds[0].revents != 0 {
                ended = true;
            }
            if fds[1].revents != 0 {
                if let Some(fd) = attach::accept(&self.listener) {
                    self.clients.push(Client::new(fd));
                }
            }
            if fds[2].revents != 0 {
                self.flush_stdin();
            }
            for i in 0..2 {
                if fds[3 + i].revents != 0 {
                    self.pump(i, running, &mut buf);
                }
            }
            let first_client = 5;
            let mut gone = Vec::new();
            for (i, pfd) in fds[first_client..].iter().enumerate() {
                if i >= self.clients.len() || pfd.revents == 0 {
                    continue;
                }
                if !self.serve(i, pfd.revents, running, &mut buf) {
                    gone.push(i);
                }
            }
            for i in gone.into_iter().rev() {
                self.clients.remove(i);
            }
            if !ended {
                self.watch.check(running);
            }
        }
    }

    /// Read one chunk of output `i`: keep what the output limit allows, log
    /// it and pass it to the clients.
    fn pump(&mut self, i: usize, running: &Running, buf: &mut [u8]) {
        let o = &mut self.outputs[i];
        // SAFETY: reading into a valid buffer of its length.
        let got = unsafe { libc::read(o.fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
        if got < 0 {
            let e = std::io::Error::last_os_error();
            if e.kind() != std::io::ErrorKind::WouldBlock
                && e.kind() != std::io::ErrorKind::Interrupted
            {
                // EIO: every slave of the pty is closed.
                o.close(self.log);
            }
            return;
        }
        if got == 0 {
            o.close(self.log);
            return;
        }
        let read = got as u64;
        let kept = read.min(self.watch.output_budget()) as usize;
        let data = &buf[..kept];
        o.log(data, self.log);
        if !data.is_empty() {
            for c in &mut self.clients {
                attach::push_frame(&mut c.out, o.kind, data);
                // A gone client shows on its next poll.
                let _ = attach::send_some(c.fd.as_raw_fd(), &mut c.out);
            }
        }
        self.watch.count_output(read, kept as u64, running);
    }

    /// Client `i` is ready: send what is pending, take what it sent.
    /// False when it is gone (or misbehaved).
    fn serve(
        &mut self,
        i: usize,
        revents: libc::c_short,
        running: &Running,
        buf: &mut [u8],
    ) -> bool {
        let c = &mut self.clients[i];
        if revents & libc::POLLOUT != 0 && attach::send_some(c.fd.as_raw_fd(), &mut c.out).is_err()
        {
            return false;
        }
        if revents & (libc::POLLIN | libc::POLLHUP | libc::POLLERR) == 0 {
            return true;
        }
        // SAFETY: reading into a valid buffer of its length.
        let got = unsafe { libc::read(c.fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
        if got == 0 {
            return false;
        }
        if got < 0 {
            let e = std::io::Error::last_os_error();
            return matches!(
                e.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::Interrupted
            );
        }
        c.frames.push(&buf[..got as usize]);
        loop {
            let (kind, payload) = match self.clients[i].frames.next_frame() {
                Ok(Some(f)) => f,
                Ok(None) => return true,
                Err(attach::Malformed) => return false,
            };
            match kind {
                attach::STDIN if self.stdin.is_some() && !self.stdin_closing => {
                    self.stdin_pending.extend_from_slice(&payload);
                    self.flush_stdin();
                }
                // The end of a pty's input is the user's to type (Ctrl-D).
                attach::STDIN_EOF if self.master.is_none() => {
                    self.stdin_closing = true;
                    self.flush_stdin();
                }
                attach::SIGNAL => {
                    if let Some(sig) = attach::int(&payload).filter(|s| (1..=64).contains(s)) {
                        let _ = running.signal(sig);
                    }
                }
                attach::RESIZE => {
                    if let Some(m) = self.master {
                        attach::resize(m, &payload);
                    }
                }
                _ => {}
            }
        }
    }

    /// Write pending input to the workload's stdin as far as it takes it;
    /// close it when a client ended its input and all of it is in.
    fn flush_stdin(&mut self) {
        let Some(fd) = &self.stdin else {
            self.stdin_pending.clear();
            return;
        };
        while !self.stdin_pending.is_empty() {
            // SAFETY: writing from a valid buffer of its length.
            let n = unsafe {
                libc::write(
                    fd.as_raw_fd(),
                    self.stdin_pending.as_ptr().cast(),
                    self.stdin_pending.len(),
                )
            };
            if n < 0 {
                let e = std::io::Error::last_os_error();
                match e.kind() {
                    std::io::ErrorKind::Interrupted => continue,
                    std::io::ErrorKind::WouldBlock => return,
                    // The workload closed its stdin: drop what it will not read.
                    _ => {
                        self.stdin_pending.clear();
                        self.stdin = None;
                        return;
                    }
                }
            }
            self.stdin_pending.drain(..n as usize);
        }
        if self.stdin_closing {
            self.stdin = None;
        }
    }
}

fn poll_fd(fd: RawFd, events: libc::c_short) -> libc::pollfd {
    libc::pollfd {
        fd,
        events,
        revents: 0,
    }
}

/// Record how the workload ended, and remove an `--rm` container.
fn record_exit(dir: &Path, exit: Exit) -> Result<(), ContainerError> {
    let store = Store::at(dir.parent().map(PathBuf::from).unwrap_or_default())?;
    let id = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    // Removed meanwhile (`rm -f`): nothing to record.
    let mut c = store.open_locked(&id)?;
    let signal = match exit {
        Exit::Signaled(s) => Some(s),
        Exit::Exited(_) => None,
    };
    c.state.exited(Some(exit.code()), signal, time::now());
    if c.config.auto_remove {
        return store.remove(&c);
    }
    c.save()
}
