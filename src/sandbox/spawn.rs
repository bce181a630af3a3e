//! The parent's side of starting a sandbox: clone into new namespaces,
//! write the id maps, release the child, and learn whether its workload
//! exec'd or why it could not.

use std::convert::Infallible;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use super::child::{self, ChildFds};
use super::console;
use super::error::{SandboxError, SetupError};
use super::init;
use super::spec::{Namespace, Spec};
use super::sys::{self, CloneArgs};
use super::teardown::{Keeper, Step};

/// The descriptors that become the workload's fd 0, 1 and 2.
#[derive(Debug, Clone, Copy)]
pub struct Stdio {
    pub stdin: RawFd,
    pub stdout: RawFd,
    pub stderr: RawFd,
}

/// How the workload ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    Exited(i32),
    Signaled(i32),
}

impl Exit {
    pub fn from_wait_status(status: i32) -> Exit {
        if libc::WIFSIGNALED(status) {
            Exit::Signaled(libc::WTERMSIG(status))
        } else {
            Exit::Exited(libc::WEXITSTATUS(status))
        }
    }

    /// The exit code as a shell (and Docker) reports it.
    pub fn code(self) -> i32 {
        match self {
            Exit::Exited(c) => c,
            Exit::Signaled(s) => 128 + s,
        }
    }
}

/// A sandbox whose workload is running.
#[derive(Debug)]
pub struct Running {
    /// pid of the sandbox's init, in hutch's pid namespace.
    pub pid: i32,
    /// Held for the sandbox's whole life: signals through it can never reach
    /// a process that reused the pid.
    pub pidfd: OwnedFd,
    /// With `-t`: the master of the pty the workload's stdio is on.
    pub console: Option<OwnedFd>,
    status: OwnedFd,
    /// How the workload ended, once init said so on the status pipe
    /// (before init itself exits and its namespaces are torn down).
    ended: Option<Exit>,
    /// The peak resident memory (KiB) of the largest process init reaped,
    /// said with how the workload ended; 0 until then.
    workload_max_rss_kib: u64,
    /// The user-mode network helper, if any; killed when this is dropped.
    pub net: Option<crate::net::NetHelper>,
    /// init's parent, if not hutch (see [`super::teardown`]).
    keeper: Option<Keeper>,
}

/// The clone flags of the namespaces the sandbox gets new: all of them,
/// but for those the Spec shares or joins, and the network namespace when
/// the network is the host's.
fn new_namespaces(spec: &Spec) -> u64 {
    let mut flags = 0u64;
    for ns in Namespace::ALL {
        if spec.advanced.creates(ns) {
            flags |= ns.clone_flag() as u64;
        }
    }
    if !spec.network.private_namespace() {
        flags &= !(libc::CLONE_NEWNET as u64);
    }
    flags
}

/// Join the namespaces the Spec names by path, the user namespace first
/// (it grants the right to join the others). Done in the starting process
/// before the clone, so the child is born in them.
fn join_namespaces(spec: &Spec) -> Result<(), SandboxError> {
    let adv = &spec.advanced;
    if !adv.creates(Namespace::Mount) {
        return Err(SandboxError::Invalid(
            "the mount namespace cannot be shared or joined: the sandbox builds its root in a new one".into(),
        ));
    }
    let mut joins: Vec<&(Namespace, std::path::PathBuf)> = adv.join.iter().collect();
    joins.sort_by_key(|(ns, _)| *ns != Namespace::User);
    for (ns, path) in joins {
        let f = std::fs::File::open(path)
            .map_err(|e| SandboxError::io("cannot open namespace", path.display(), e))?;
        // SAFETY: setns with an open descriptor and the namespace type it
        // must be; the caller is single-threaded.
        let ret = unsafe { libc::setns(f.as_raw_fd(), ns.clone_flag()) };
        sys::check(ret as libc::c_long).map_err(|e| {
            SandboxError::io(
                "cannot join namespace",
                format!("{} {}", ns.name(), path.display()),
                e,
            )
        })?;
    }
    Ok(())
}

/// Start the sandbox described by `spec`. The calling process must be
/// single-threaded. The forwarded signals are left blocked in the caller,
/// which should take them from a signalfd (see [`init::blocked_set`]).
pub fn start(spec: &Spec, stdio: Stdio) -> Result<Running, SandboxError> {
    start_with(spec, stdio, &mut |_| Ok(()), None)
}

/// [`start`], running `before_release` with init's pid once init is in
/// its namespaces and cgroup and before its workload may start, while the
/// child builds its root: work the caller must finish before the workload
/// runs (a foreground run's container record) costs no time there. An
/// error from it stops the sandbox before anything of the workload runs.
///
/// With `keeper`, init is cloned by a keeper (see [`super::teardown`]),
/// which is its parent, reaps it, and carries out these steps once init
/// and hutch have both exited; without one, or if none can be started,
/// init is hutch's child.
pub fn start_with(
    spec: &Spec,
    stdio: Stdio,
    before_release: &mut dyn FnMut(i32) -> Result<(), String>,
    keeper: Option<&[Step]>,
) -> Result<Running, SandboxError> {
    let pipe = |what| sys::pipe().map_err(|e| SandboxError::io("cannot create", what, e));
    let (sync_r, sync_w) = pipe("sync pipe")?;
    let (err_r, err_w) = pipe("error pipe")?;
    let (status_r, status_w) = pipe("status pipe")?;
    let console_pair = if spec.process.terminal {
        Some(
            console::socket_pair()
                .map_err(|e| SandboxError::io("cannot create", "console socket", e))?,
        )
    } else {
        None
    };

    join_namespaces(spec)?;

    let set = init::blocked_set();
    // SAFETY: blocking signals in this (single) thread with an initialised set.
    unsafe { libc::sigprocmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) };

    let namespaces = new_namespaces(spec);
    let mut pidfd: RawFd = -1;
    let args = CloneArgs {
        flags: namespaces | libc::CLONE_PIDFD as u64,
        pidfd: &mut pidfd as *mut RawFd as u64,
        exit_signal: libc::SIGCHLD as u64,
        ..Default::default()
    };
    let fds = ChildFds {
        sync: sync_r.as_raw_fd(),
        error: err_w.as_raw_fd(),
        status: status_w.as_raw_fd(),
        console: console_pair.as_ref().map_or(-1, |(_, c)| c.as_raw_fd()),
        stdin: stdio.stdin,
        stdout: stdio.stdout,
        stderr: stdio.stderr,
    };
    let mut init_main = || -> Infallible { child::main(spec, fds) };
    let namespace_error = |source| SandboxError::Namespaces {
        hint: userns_hint(),
        source,
    };
    // A pooled cgroup's claim, which the keeper holds until init is reaped.
    let cgroup = spec.limits.cgroup.as_ref();
    let hold = cgroup.and_then(|c| c.claim.as_ref()).map(|c| c.fd());
    let kept = match keeper {
        Some(steps) => Keeper::clone_init(&args, &mut init_main, steps, hold).map_err(|e| {
            if pidfd >= 0 {
                // SAFETY: clone3 wrote this pidfd, which nothing else owns.
                drop(unsafe { OwnedFd::from_raw_fd(pidfd) });
            }
            namespace_error(e)
        })?,
        None => None,
    };
    let (pid, keeper) = match kept {
        Some((keeper, pid)) => (pid, Some(keeper)),
        None => {
            // SAFETY: clone3 without a stack behaves like fork: the child
            // continues on a copy of this stack. The caller is
            // single-threaded, so the child holds no lock another thread
            // could have taken and may allocate.
            let pid = unsafe {
                libc::syscall(
                    libc::SYS_clone3,
                    &args as *const CloneArgs,
                    std::mem::size_of::<CloneArgs>(),
                )
            };
            if pid < 0 {
                return Err(namespace_error(std::io::Error::last_os_error()));
            }
            if pid == 0 {
                #[allow(unreachable_code)] // init_main cannot return: Infallible
                match init_main() {}
            }
            (pid as i32, None)
        }
    };
    // SAFETY: clone3 wrote a fresh pidfd that only we own.
    let pidfd = unsafe { OwnedFd::from_raw_fd(pidfd) };
    drop((sync_r, err_w, status_w));
    let console_sock = console_pair.map(|(ours, _theirs)| ours);
    let mut running = Running {
        pid,
        pidfd,
        console: None,
        status: status_r,
        ended: None,
        workload_max_rss_kib: 0,
        net: None,
        keeper,
    };

    // The id maps, only for a user namespace of the sandbox's own.
    let maps = if spec.advanced.creates(Namespace::User) {
        match spec.idmap.start(pid) {
            Ok(m) => Some(m),
            Err(e) => {
                running.kill_and_reap();
                return Err(e.into());
            }
        }
    } else {
        None
    };
    if let Some(Err(e)) = maps.map(|m| m.finish()) {
        running.kill_and_reap();
        return Err(e.into());
    }
    // The network comes up before the sandbox builds its root.
    running.net = match crate::net::start(&spec.network, pid, &spec.id) {
        Ok(n) => n,
        Err(e) => {
            running.kill_and_reap();
            return Err(SandboxError::Network(e));
        }
    };
    // First byte: mapped; the child builds its root meanwhile.
    sys::write_all(sync_w.as_raw_fd(), b"1")
        .map_err(|e| SandboxError::io("cannot release", "the sandbox", e))?;
    // Into the sandbox's cgroup before the workload exists, so every
    // process it ever makes is counted and limited. On cgroup v1 the first
    // move into a cgroup waits for an RCU grace period (no CPU, often half
    // a millisecond): done while the child mounts, it costs nothing.
    // Made here rather than before the clone, for the same reason (and
    // again for a kept container, whose last run removed it).
    let joined = spec
        .limits
        .cgroup
        .as_ref()
        .map(|cg| cg.make().and_then(|()| cg.add(pid)));
    if let Some(Err(e)) = joined {
        running.kill_and_reap();
        // A child that failed first (and so could not be moved) says why.
        return Err(child_report(&err_r)?.map_or(SandboxError::Limits(e.into()), Into::into));
    }
    if let Err(e) = before_release(pid) {
        running.kill_and_reap();
        return Err(SandboxError::Caller(e));
    }
    // Second byte: in the cgroup; the child may fork the workload. A
    // child that already failed has closed its end: its report below
    // says why, so a broken pipe here is not the error to show.
    if let Err(e) = sys::write_all(sync_w.as_raw_fd(), b"2") {
        if e.raw_os_error() != Some(libc::EPIPE) {
            running.kill_and_reap();
            return Err(SandboxError::io("cannot release", "the sandbox", e));
        }
    }
    drop(sync_w);

    if let Some(sock) = &console_sock {
        // None: the child failed before opening the pty; the error pipe says why.
        match console::recv_fd(sock.as_raw_fd()) {
            Ok(master) => running.console = master,
            Err(e) => {
                running.kill_and_reap();
                return Err(SandboxError::io(
                    "cannot receive",
                    "the sandbox's terminal",
                    e,
                ));
            }
        }
    }

    // EOF on the error pipe: the workload exec'd (the pipe is close-on-exec).
    if let Some(err) = child_report(&err_r)? {
        running.kill_and_reap();
        return Err(err.into());
    }
    Ok(running)
}

/// What the child wrote on the error pipe before it closed: `None` when it
/// wrote nothing (its workload exec'd).
fn child_report(err_r: &OwnedFd) -> Result<Option<SetupError>, SandboxError> {
    let report = sys::read_to_end(err_r.as_raw_fd(), 64 * 1024)
        .map_err(|e| SandboxError::io("cannot read", "the error pipe", e))?;
    if report.is_empty() {
        return Ok(None);
    }
    Ok(Some(serde_json::from_slice(&report).unwrap_or_else(|_| {
        SetupError::msg(
            "sandbox setup failed",
            String::from_utf8_lossy(&report).into_owned(),
        )
    })))
}

impl Running {
    /// Send `sig` to the sandbox's init, which forwards it to the workload.
    pub fn signal(&self, sig: i32) -> std::io::Result<()> {
        // SAFETY: the pidfd is open; no siginfo is passed.
        let ret = unsafe {
            libc::syscall(
                libc::SYS_pidfd_send_signal,
                self.pidfd.as_raw_fd(),
                sig,
                std::ptr::null::<libc::siginfo_t>(),
                0,
            )
        };
        sys::check(ret).map(drop)
    }

    /// Reap init and return how the workload ended.
    pub fn wait(self) -> Exit {
        self.wait_with_usage().0
    }

    /// The status pipe: readable once init has reaped the workload (it
    /// then writes the workload's status and exits), or at init's death.
    pub fn status_fd(&self) -> RawFd {
        self.status.as_raw_fd()
    }

    /// How the workload ended, read from the status pipe once it is
    /// readable: known while init is still exiting, which takes a while
    /// (its namespaces are torn down), so a caller can finish its own
    /// work meanwhile. `None` when init died without saying (killed from
    /// outside); [`Running::wait_with_usage`] then reports init's end.
    pub fn workload_ended(&mut self) -> Option<Exit> {
        if self.ended.is_none() {
            let mut buf = [0u8; init::STATUS_LEN];
            // SAFETY: reading at most `buf.len()` bytes into `buf`.
            let n =
                unsafe { libc::read(self.status.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
            if n == buf.len() as isize {
                let (status, max_rss_kib) = init::decode(&buf);
                self.ended = Some(Exit::from_wait_status(status));
                self.workload_max_rss_kib = max_rss_kib;
            }
        }
        self.ended
    }

    /// The peak resident memory (KiB) of the largest process of the
    /// sandbox that init reaped, once [`Running::workload_ended`] is known.
    pub fn workload_max_rss_kib(&self) -> u64 {
        self.workload_max_rss_kib
    }

    /// Reap init and return how the workload ended, with the resources
    /// used by the whole sandbox: init reaps every process in it, so its
    /// children's usage covers them all.
    pub fn wait_with_usage(mut self) -> (Exit, libc::rusage) {
        // SAFETY: rusage is plain data; zeroed is a valid value.
        let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
        let init_status = self.reap(&mut usage);
        // init itself died (killed from outside) when it said nothing.
        let exit = self
            .workload_ended()
            .unwrap_or_else(|| Exit::from_wait_status(init_status));
        (exit, usage)
    }

    fn kill_and_reap(&self) {
        let _ = self.signal(libc::SIGKILL);
        // SAFETY: plain data.
        let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
        self.reap(&mut usage);
    }

    /// Whether init's parent is a keeper, which reaps it and removes what
    /// the run left once hutch has exited.
    pub fn kept(&self) -> bool {
        self.keeper.is_some()
    }

    /// Wait until init has been reaped, by hutch or by the keeper: its
    /// wait status, and its usage in `usage`.
    fn reap(&self, usage: &mut libc::rusage) -> i32 {
        match &self.keeper {
            Some(k) => k.reaped(self.pidfd.as_raw_fd(), usage),
            None => reap(self.pid, usage),
        }
    }
}

fn reap(pid: i32, usage: &mut libc::rusage) -> i32 {
    let mut status = 0;
    loop {
        // SAFETY: `status` and `usage` are valid out-pointers.
        let r = unsafe { libc::wait4(pid, &mut status, 0, usage) };
        if r == pid
            || (r < 0 && std::io::Error::last_os_error().raw_os_error() != Some(libc::EINTR))
        {
            return status;
        }
    }
}

/// Why a user namespace could not be made, as far as the host tells.
fn userns_hint() -> &'static str {
    let read = |p: &str| {
        std::fs::read_to_string(p)
            .ok()
            .map(|s| s.trim().to_string())
    };
    if read("/proc/sys/kernel/apparmor_restrict_unprivileged_userns").as_deref() == Some("1") {
        "AppArmor restricts unprivileged user namespaces (kernel.apparmor_restrict_unprivileged_userns=1); an administrator must allow them or add an AppArmor profile for hutch"
    } else if read("/proc/sys/kernel/unprivileged_userns_clone").as_deref() == Some("0") {
        "unprivileged user namespaces are disabled; an administrator must set kernel.unprivileged_userns_clone=1"
    } else if read("/proc/sys/user/max_user_namespaces").as_deref() == Some("0") {
        "user namespaces are disabled or exhausted (user.max_user_namespaces=0); an administrator must raise it"
    } else {
        "unprivileged user namespaces are unavailable or exhausted here; check user.max_user_namespaces and any LSM or seccomp policy around hutch"
    }
}
