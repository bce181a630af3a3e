//! The supervisor: one small process per running container, as conmon is
//! to Podman. `hutch start` forks twice (so the supervisor belongs to no
//! terminal session and no command waits on it) and execs hutch itself in
//! a hidden mode (`hutch __supervise`, the directory in
//! `$HUTCH_SUPERVISE_DIR`), which starts from a fresh,
//! small address space instead of the CLI's.
//!
//! The supervisor clones the sandbox, so it is the sandbox init's parent:
//! init has a parent-death signal, and if the supervisor is killed the
//! whole sandbox dies with it. It holds the workload's stdout and stderr,
//! writes the json-file log, waits on the pidfd, records the exit status
//! and the finish time, and removes `--rm` containers.
//!
//! The command that starts it learns the outcome on a pipe (fd 3 in the
//! supervisor): one JSON [`Report`], then EOF.

use std::ffi::CString;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::log::{self, Writer};
use super::process::ProcId;
use super::store::{self, Container, Store};
use super::{time, Config, ContainerError};
use crate::sandbox::spawn::{self, Exit, Stdio};
use crate::sandbox::sys;

/// The argument that selects the supervisor mode of the hutch binary.
pub const MODE: &str = "__supervise";
/// The environment variable that names the container's directory.
pub const DIR_ENV: &str = "HUTCH_SUPERVISE_DIR";
/// The supervisor's end of the report pipe.
const REPORT_FD: RawFd = 3;

#[derive(Debug, Serialize, Deserialize)]
enum Report {
    Started { init: ProcId, supervisor: ProcId },
    Failed { reason: String, code: i32 },
}

/// Start the (locked) container `c`: launch its supervisor, wait until the
/// workload runs or could not start, and record the outcome.
pub fn launch(c: &mut Container) -> Result<(), ContainerError> {
    let dir = c.dir.clone();
    let report = spawn_supervisor(&dir).and_then(|fd| read_report(&fd));
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

/// Fork, setsid, fork again and exec `hutch __supervise` (DIR in its environment) with the
/// report pipe's write end as fd 3 and /dev/null as stdio. Returns the
/// report pipe's read end. The caller must be single-threaded.
fn spawn_supervisor(dir: &Path) -> Result<OwnedFd, ContainerError> {
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
    for (k, v) in std::env::vars_os().filter(|(k, _)| k != DIR_ENV) {
        let mut kv = k.as_bytes().to_vec();
        kv.push(b'=');
        kv.extend_from_slice(v.as_bytes());
        env_c.push(c(&kv)?);
    }
    let mut dir_kv = format!("{DIR_ENV}=").into_bytes();
    dir_kv.extend_from_slice(dir.as_os_str().as_bytes());
    env_c.push(c(&dir_kv)?);
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
            for fd in 0..3 {
                libc::dup2(null, fd);
            }
            // dup2 clears close-on-exec on the copy.
            libc::dup2(report_w.as_raw_fd(), REPORT_FD);
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
    // Single-threaded: nothing reads the environment concurrently.
    std::env::remove_var(DIR_ENV);
    let dir = dir.as_path();
    // SAFETY: fd 3 was set up by spawn_supervisor and is ours alone.
    let report = unsafe { OwnedFd::from_raw_fd(REPORT_FD) };
    // SAFETY: fcntl on our own descriptor.
    unsafe { libc::fcntl(REPORT_FD, libc::F_SETFD, libc::FD_CLOEXEC) };
    let code = match supervise(dir, report) {
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

fn supervise(dir: &Path, report: OwnedFd) -> Result<(), ContainerError> {
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
    let pipes = (|| {
        Ok::<_, std::io::Error>((
            sys::pipe()?,
            sys::pipe()?,
            std::fs::File::open("/dev/null")?,
        ))
    })();
    let ((out_r, out_w), (err_r, err_w), null) = match pipes {
        Ok(p) => p,
        Err(e) => {
            failed(&report, format!("cannot create the output pipes: {e}"), 125);
            return Err(ContainerError::io("cannot create pipes for", dir, e));
        }
    };
    let mut writer = Writer::open(dir, config.log);
    let stdio = Stdio {
        stdin: null.as_raw_fd(),
        stdout: out_w.as_raw_fd(),
        stderr: err_w.as_raw_fd(),
    };
    let mut running = match spawn::start(&config.spec, stdio) {
        Ok(r) => r,
        Err(e) => {
            failed(&report, e.to_string(), e.exit_code());
            return Err(e.into());
        }
    };
    drop((out_w, err_w, null));
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
    shed_memory();

    // With -t the workload writes to its pty: the master is its stdout.
    let out_r = running.console.take().unwrap_or(out_r);
    pump(&running.pidfd, [out_r, err_r], &mut writer);
    let exit = running.wait();
    drop(writer);
    if let Some(cg) = &config.spec.limits.cgroup {
        cg.remove();
    }
    record_exit(dir, exit)
}

/// Give back the pages that setting up touched and the supervisor's loop
/// will not need: the CLI-sized heap, and the file-backed pages of hutch and
/// its libraries (the kernel maps them 64 KiB at a time around every fault,
/// so after setup most of the binary is resident). Dropped text pages are
/// read back from the page cache if they are ever needed; the loop needs
/// a few dozen. This keeps the supervisor's RSS to its working set.
fn shed_memory() {
    // SAFETY: malloc_trim only returns free heap memory to the kernel.
    unsafe { libc::malloc_trim(0) };
    let Ok(smaps) = std::fs::read_to_string("/proc/self/smaps") else {
        return;
    };
    // Each mapping: a header line "start-end perms offset dev inode path",
    // then "Key: value" lines, among them "Anonymous:".
    let mut candidate: Option<(usize, usize)> = None;
    let drop_range = |r: Option<(usize, usize)>| {
        if let Some((a, b)) = r {
            // SAFETY: the range is a whole mapping of this process that is
            // file-backed, not writable and holds no anonymous (copied)
            // page, so MADV_DONTNEED only drops page-table entries; the
            // pages fault back in, unchanged, from their file.
            unsafe { libc::madvise(a as *mut libc::c_void, b - a, libc::MADV_DONTNEED) };
        }
    };
    for line in smaps.lines() {
        let mut f = line.split_whitespace();
        let first = f.next().unwrap_or_default();
        if let Some((a, b)) = first.split_once('-') {
            let (Ok(a), Ok(b)) = (usize::from_str_radix(a, 16), usize::from_str_radix(b, 16))
            else {
                candidate = None;
                continue;
            };
            let perms = f.next().unwrap_or_default();
            let inode = f.nth(2).unwrap_or("0");
            // Only clean, file-backed mappings: never anything writable,
            // whose contents exist nowhere else.
            candidate =
                (inode != "0" && perms.starts_with('r') && !perms.contains('w')).then_some((a, b));
        } else if first == "Anonymous:" {
            // Relocated read-only data (RELRO) is a private copy: keep it.
            if f.next() == Some("0") {
                drop_range(candidate.take());
            }
            candidate = None;
        }
    }
}

/// Copy the workload's output into the log until the sandbox ends and
/// both pipes are drained.
fn pump(pidfd: &OwnedFd, pipes: [OwnedFd; 2], log: &mut Writer) {
    const STREAMS: [&str; 2] = ["stdout", "stderr"];
    let mut open = [true, true];
    let mut partial: [Vec<u8>; 2] = [Vec::new(), Vec::new()];
    for p in &pipes {
        // SAFETY: fcntl on our own descriptor.
        unsafe { libc::fcntl(p.as_raw_fd(), libc::F_SETFL, libc::O_NONBLOCK) };
    }
    let mut ended = false;
    let mut buf = vec![0u8; 16 * 1024];
    while open[0] || open[1] {
        let mut fds = [
            poll_in(if open[0] { pipes[0].as_raw_fd() } else { -1 }),
            poll_in(if open[1] { pipes[1].as_raw_fd() } else { -1 }),
            poll_in(if ended { -1 } else { pidfd.as_raw_fd() }),
        ];
        // Once the sandbox has ended its pipes can only be at EOF; the
        // timeout guards against a writer we do not know of.
        let timeout = if ended { 1000 } else { -1 };
        // SAFETY: three valid pollfds (negative fds are ignored).
        let n = unsafe { libc::poll(fds.as_mut_ptr(), 3, timeout) };
        if n == 0 {
            break;
        }
        if n < 0 {
            continue;
        }
        if fds[2].revents != 0 {
            ended = true;
        }
        for i in 0..2 {
            if !open[i] || fds[i].revents == 0 {
                continue;
            }
            // SAFETY: reading into a valid buffer.
            let got =
                unsafe { libc::read(pipes[i].as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
            if got == 0 {
                open[i] = false;
                if !partial[i].is_empty() {
                    log.write(STREAMS[i], &partial[i]);
                    partial[i].clear();
                }
                continue;
            }
            if got < 0 {
                let e = std::io::Error::last_os_error();
                if e.kind() != std::io::ErrorKind::WouldBlock
                    && e.kind() != std::io::ErrorKind::Interrupted
                {
                    open[i] = false;
                }
                continue;
            }
            let p = &mut partial[i];
            p.extend_from_slice(&buf[..got as usize]);
            let mut start = 0;
            while let Some(nl) = p[start..].iter().position(|&b| b == b'\n') {
                log.write(STREAMS[i], &p[start..start + nl + 1]);
                start += nl + 1;
            }
            p.drain(..start);
            while p.len() >= log::MAX_LINE {
                log.write(STREAMS[i], &p[..log::MAX_LINE]);
                p.drain(..log::MAX_LINE);
            }
        }
    }
    for (i, p) in partial.iter().enumerate() {
        if !p.is_empty() {
            log.write(STREAMS[i], p);
        }
    }
}

fn poll_in(fd: RawFd) -> libc::pollfd {
    libc::pollfd {
        fd,
        events: libc::POLLIN,
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
