//! The shared test harness: every sandbox test runs hutch as an
//! unprivileged user, never as root.
//!
//! The suite runs as root (as CI does) after `scripts/setup-host.sh` has
//! made two users: `hutch-sub`, with a subordinate id range, and
//! `hutch-nosub`, without. Each hutch invocation drops to one of them.
//! Fixtures (the busybox rootfs, the release binary) are built once and
//! placed where those users can read them.

#![allow(dead_code)]

use std::ffi::OsStr;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::sync::OnceLock;
use std::time::Duration;

/// Where fixtures shared by all tests live (readable by the test users).
pub const FIXTURES: &str = "/tmp/hutch-test";

/// How long one hutch invocation may take before the test fails.
pub const TIMEOUT: Duration = Duration::from_secs(120);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum User {
    /// Has a subordinate id range and the newuidmap helpers.
    Sub,
    /// Has no subordinate range: one uid only.
    NoSub,
}

#[derive(Debug, Clone)]
pub struct Account {
    pub name: &'static str,
    pub uid: u32,
    pub gid: u32,
    pub home: PathBuf,
}

impl User {
    pub fn account(self) -> &'static Account {
        static SUB: OnceLock<Account> = OnceLock::new();
        static NOSUB: OnceLock<Account> = OnceLock::new();
        let (cell, name) = match self {
            User::Sub => (&SUB, "hutch-sub"),
            User::NoSub => (&NOSUB, "hutch-nosub"),
        };
        cell.get_or_init(|| lookup(name))
    }

    pub fn uid(self) -> u32 {
        self.account().uid
    }
}

fn lookup(name: &'static str) -> Account {
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap();
    let f: Vec<&str> = passwd
        .lines()
        .map(|l| l.split(':').collect::<Vec<_>>())
        .find(|f| f[0] == name)
        .unwrap_or_else(|| {
            panic!("test user {name} is missing: run scripts/setup-host.sh as root first")
        });
    Account {
        name,
        uid: f[2].parse().unwrap(),
        gid: f[3].parse().unwrap(),
        home: PathBuf::from(f[5]),
    }
}

fn assert_root() {
    // SAFETY: getuid cannot fail.
    let uid = unsafe { libc::getuid() };
    assert_eq!(
        uid, 0,
        "run the test suite as root (as CI does): the harness drops every sandbox to the unprivileged users hutch-sub and hutch-nosub"
    );
}

/// The release binary, copied once where the test users can execute it.
pub fn hutch_bin() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        assert_root();
        // fixtures_dir() is this test process's own: no other suite on the
        // machine can swap the binary under this one.
        let dir = fixtures_dir().join("bin");
        std::fs::create_dir_all(&dir).unwrap();
        let dst = dir.join("hutch");
        let tmp = dir.join(format!("hutch.{}", std::process::id()));
        std::fs::copy(env!("CARGO_BIN_EXE_hutch"), &tmp).unwrap();
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::rename(&tmp, &dst).unwrap();
        dst
    })
}

/// The `hutch-runtime` release binary, copied beside [`hutch_bin`].
pub fn runtime_bin() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        assert_root();
        let dir = fixtures_dir().join("bin");
        std::fs::create_dir_all(&dir).unwrap();
        let dst = dir.join("hutch-runtime");
        let tmp = dir.join(format!("hutch-runtime.{}", std::process::id()));
        std::fs::copy(env!("CARGO_BIN_EXE_hutch-runtime"), &tmp).unwrap();
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::rename(&tmp, &dst).unwrap();
        dst
    })
}

/// This test process's own fixtures: `FIXTURES/run-<pid>`. Test runs from
/// other checkouts may share the machine; with a directory each, none runs
/// another's hutch or loses its rootfs to another's rebuild. Directories of
/// runs that ended are removed here.
pub fn fixtures_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let top = PathBuf::from(FIXTURES);
        std::fs::create_dir_all(&top).unwrap();
        std::fs::set_permissions(&top, std::fs::Permissions::from_mode(0o755)).unwrap();
        for entry in std::fs::read_dir(&top).unwrap().flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let Some(pid) = name.strip_prefix("run-") else {
                continue;
            };
            if !Path::new("/proc").join(pid).exists() {
                // Files sandboxes left may belong to subordinate ids: root clears them.
                let _ = std::fs::remove_dir_all(entry.path());
            }
        }
        let d = top.join(format!("run-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o755)).unwrap();
        d
    })
}

pub fn project_dir() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The busybox root filesystem owned by `user` (root inside its sandboxes).
pub fn rootfs(user: User) -> &'static Path {
    static SUB: OnceLock<PathBuf> = OnceLock::new();
    static NOSUB: OnceLock<PathBuf> = OnceLock::new();
    let cell = match user {
        User::Sub => &SUB,
        User::NoSub => &NOSUB,
    };
    cell.get_or_init(|| {
        assert_root();
        let acct = user.account();
        let dir = fixtures_dir().join(format!("rootfs-{}", acct.name));
        let status = Command::new(project_dir().join("scripts/build-rootfs.sh"))
            .arg(&dir)
            .arg(acct.name)
            .stdout(Stdio::null())
            .status()
            .expect("run scripts/build-rootfs.sh");
        assert!(status.success(), "scripts/build-rootfs.sh failed");
        dir
    })
}

/// A fresh, empty directory owned by `user`, for volumes and outputs.
pub fn scratch(user: User, name: &str) -> PathBuf {
    let acct = user.account();
    let dir = fixtures_dir()
        .join("scratch")
        .join(format!("{name}-{}", acct.name));
    if dir.exists() {
        // Files a sandbox left may belong to subordinate ids: root clears them.
        std::fs::remove_dir_all(&dir).unwrap();
    }
    std::fs::create_dir_all(&dir).unwrap();
    let parent = dir.parent().unwrap();
    std::fs::set_permissions(parent, std::fs::Permissions::from_mode(0o755)).unwrap();
    chown(&dir, acct.uid, acct.gid);
    dir
}

pub fn chown(path: &Path, uid: u32, gid: u32) {
    std::os::unix::fs::chown(path, Some(uid), Some(gid)).unwrap();
}

/// The result of one hutch invocation.
#[derive(Debug)]
pub struct Out {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Out {
    /// Assert success and return stdout.
    #[track_caller]
    pub fn ok(&self) -> &str {
        assert_eq!(self.code, 0, "hutch failed: {self:#?}");
        &self.stdout
    }

    #[track_caller]
    pub fn fails_with(&self, code: i32, needle: &str) -> &Self {
        assert_eq!(self.code, code, "unexpected exit code: {self:#?}");
        assert!(
            self.stderr.contains(needle),
            "stderr lacks {needle:?}: {self:#?}"
        );
        self
    }
}

/// A hutch command to run as an unprivileged test user.
pub struct Hutch {
    cmd: Command,
    stdin: Option<Vec<u8>>,
    user: User,
}

pub fn hutch(user: User) -> Hutch {
    let mut cmd = as_user(user, hutch_bin());
    cmd.stdin(Stdio::null());
    Hutch {
        cmd,
        stdin: None,
        user,
    }
}

/// Any program, run as `user` with a clean login-like environment.
pub fn as_user(user: User, program: impl AsRef<OsStr>) -> Command {
    assert_root();
    let acct = user.account();
    let mut cmd = Command::new(program);
    cmd.env_clear()
        .env("HOME", &acct.home)
        .env("USER", acct.name)
        .env("LOGNAME", acct.name)
        .env("PATH", "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin")
        .current_dir(fixtures_dir())
        .uid(acct.uid)
        .gid(acct.gid);
    cmd
}

impl Hutch {
    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.cmd.args(args);
        self
    }

    pub fn env(mut self, k: &str, v: impl AsRef<OsStr>) -> Self {
        self.cmd.env(k, v);
        self
    }

    pub fn stdin(mut self, data: impl Into<Vec<u8>>) -> Self {
        self.stdin = Some(data.into());
        self.cmd.stdin(Stdio::piped());
        self
    }

    /// `run --rm --rootfs <busybox rootfs> ARGS...`
    pub fn run_rootfs<I, S>(self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let root = rootfs(self.user).to_path_buf();
        self.args(["run", "--rm", "--rootfs"])
            .arg_path(&root)
            .args(args)
    }

    pub fn arg_path(mut self, p: &Path) -> Self {
        self.cmd.arg(p);
        self
    }

    pub fn command(&mut self) -> &mut Command {
        &mut self.cmd
    }

    /// Run to completion (or fail the test after [`TIMEOUT`]).
    pub fn run(mut self) -> Out {
        self.cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = self.cmd.spawn().expect("spawn hutch");
        if let Some(data) = self.stdin.take() {
            let mut sin = child.stdin.take().unwrap();
            std::thread::spawn(move || {
                let _ = sin.write_all(&data);
            });
        }
        let pid = child.id();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send(child.wait_with_output());
        });
        let output = match rx.recv_timeout(TIMEOUT) {
            Ok(r) => r.expect("wait for hutch"),
            Err(_) => {
                // SAFETY: killing the child we spawned.
                unsafe { libc::kill(pid as i32, libc::SIGKILL) };
                panic!("hutch did not finish within {TIMEOUT:?}");
            }
        };
        Out {
            code: output.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }
}

/// A hutch started in the background, its stdout read line by line, for
/// tests that act while the sandbox runs (signals, kills, terminals).
pub struct Live {
    pub child: std::process::Child,
    lines: mpsc::Receiver<String>,
    stdout: Vec<String>,
    stderr: std::thread::JoinHandle<String>,
}

impl Hutch {
    /// Start hutch with piped stdout and stderr (and stdin when given).
    pub fn spawn(mut self) -> Live {
        use std::io::{BufRead, Read};
        self.cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = self.cmd.spawn().expect("spawn hutch");
        if let Some(data) = self.stdin.take() {
            let mut sin = child.stdin.take().unwrap();
            std::thread::spawn(move || {
                let _ = sin.write_all(&data);
            });
        }
        let out = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(out).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut err = child.stderr.take().unwrap();
        let stderr = std::thread::spawn(move || {
            let mut s = String::new();
            let _ = err.read_to_string(&mut s);
            s
        });
        Live {
            child,
            lines,
            stdout: Vec::new(),
            stderr,
        }
    }
}

impl Live {
    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// Wait for the next stdout line containing `needle` (the sandbox's own
    /// "ready" or acknowledgement), failing the test after [`TIMEOUT`].
    #[track_caller]
    pub fn wait_line(&mut self, needle: &str) -> String {
        loop {
            match self.lines.recv_timeout(TIMEOUT) {
                Ok(line) => {
                    self.stdout.push(line.clone());
                    if line.contains(needle) {
                        return line;
                    }
                }
                Err(e) => panic!(
                    "no line with {needle:?} from the sandbox ({e}); got {:?}",
                    self.stdout
                ),
            }
        }
    }

    pub fn signal(&self, sig: i32) {
        // SAFETY: signalling the child we spawned and have not reaped.
        let r = unsafe { libc::kill(self.pid(), sig) };
        assert_eq!(r, 0, "kill({}, {sig})", self.pid());
    }

    /// Wait for hutch to end and collect what it wrote.
    pub fn finish(mut self) -> Out {
        let pid = self.pid();
        let (tx, rx) = mpsc::channel();
        let mut child = self.child;
        std::thread::spawn(move || {
            let _ = tx.send(child.wait());
        });
        let status = match rx.recv_timeout(TIMEOUT) {
            Ok(r) => r.expect("wait for hutch"),
            Err(_) => {
                // SAFETY: killing the child we spawned.
                unsafe { libc::kill(pid, libc::SIGKILL) };
                panic!("hutch did not finish within {TIMEOUT:?}");
            }
        };
        while let Ok(line) = self.lines.recv_timeout(TIMEOUT) {
            self.stdout.push(line);
        }
        let stderr = self.stderr.join().unwrap_or_default();
        Out {
            code: status.code().unwrap_or(-1),
            stdout: self.stdout.join("\n"),
            stderr,
        }
    }
}

/// The pids of every descendant of `pid` (children, grandchildren, ...).
pub fn descendants(pid: i32) -> Vec<i32> {
    let mut out = Vec::new();
    let mut todo = vec![pid];
    while let Some(p) = todo.pop() {
        let Ok(tasks) = std::fs::read_dir(format!("/proc/{p}/task")) else {
            continue;
        };
        for t in tasks.flatten() {
            let children = std::fs::read_to_string(t.path().join("children")).unwrap_or_default();
            for c in children.split_whitespace().filter_map(|c| c.parse().ok()) {
                out.push(c);
                todo.push(c);
            }
        }
    }
    out
}

/// A pidfd for `pid`, or None if it is already gone.
pub fn pidfd(pid: i32) -> Option<std::os::fd::OwnedFd> {
    use std::os::fd::FromRawFd;
    // SAFETY: pidfd_open takes integers and returns a new descriptor.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    // SAFETY: a fresh descriptor owned by nobody else.
    (fd >= 0).then(|| unsafe { std::os::fd::OwnedFd::from_raw_fd(fd as i32) })
}

/// Wait until the process behind `fd` has exited (and been reaped by its
/// parent or not: a pidfd turns readable on exit); false after `timeout`.
pub fn wait_exit(fd: &std::os::fd::OwnedFd, timeout: Duration) -> bool {
    use std::os::fd::AsRawFd;
    let mut p = libc::pollfd {
        fd: fd.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd.
    let n = unsafe { libc::poll(&mut p, 1, timeout.as_millis() as i32) };
    n == 1
}

/// tests/programs/*.c built once with `gcc -static` into a directory the
/// test users can read; bind it into a sandbox with [`programs_volume`].
pub fn programs_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dst = fixtures_dir().join("programs");
        std::fs::create_dir_all(&dst).unwrap();
        std::fs::set_permissions(&dst, std::fs::Permissions::from_mode(0o755)).unwrap();
        let src = project_dir().join("tests/programs");
        for entry in std::fs::read_dir(&src).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().and_then(|e| e.to_str()) != Some("c") {
                continue;
            }
            build_static(&path, &dst.join(path.file_stem().unwrap()));
        }
        dst
    })
}

/// Compile one C file with `gcc -static` into `out`, atomically.
fn build_static(src: &Path, out: &Path) {
    let tmp = out.with_extension(format!("tmp{}", std::process::id()));
    let status = Command::new("gcc")
        .args(["-static", "-O2", "-pthread", "-o"])
        .arg(&tmp)
        .arg(src)
        .status()
        .expect("run gcc (scripts/setup-host.sh installs it)");
    assert!(status.success(), "gcc failed on {}", src.display());
    std::fs::rename(&tmp, out).unwrap();
}

/// The policy probe (tests/probe/probe.c), built once into
/// /tmp/hutch-test/probe/; bind it with [`probe_volume`] and run
/// `/probe/probe OP...`.
pub fn probe() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        assert_root();
        let dst = fixtures_dir().join("probe");
        std::fs::create_dir_all(&dst).unwrap();
        std::fs::set_permissions(&dst, std::fs::Permissions::from_mode(0o755)).unwrap();
        build_static(
            &project_dir().join("tests/probe/probe.c"),
            &dst.join("probe"),
        );
        dst
    })
}

/// `-v /tmp/hutch-test/probe:/probe:ro`
pub fn probe_volume() -> String {
    format!("{}:/probe:ro", probe().display())
}

/// `-v <programs>:/p:ro`
pub fn programs_volume() -> String {
    format!("{}:/p:ro", programs_dir().display())
}
