//! hutch's TCP port forwarder for slirp4netns sandboxes: `-p` without
//! slirp4netns's user-mode TCP stack on the way.
//!
//! slirp4netns publishes a port by accepting on the host and replaying the
//! stream through its own TCP/IP stack onto the sandbox's tap device, two
//! copies and an emulated TCP per byte. Podman avoids that with rootlesskit's
//! port driver; hutch does it in one process: the host listeners are bound
//! by hutch, handed to `hutch __forward-ports`, which joins the sandbox's
//! user and network namespaces (sockets keep the namespace they were made
//! in), connects to the sandbox's own address for each accepted connection,
//! and moves the bytes with splice(2) through a pipe, without copying them
//! through user space.
//!
//! The forwarder is not in the sandbox's pid namespace, so the workload
//! cannot see or signal it; it dies with hutch (parent-death signal) and is
//! killed with the sandbox's other helpers.

use std::net::TcpListener;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};

use super::{as_helper, NetError, PortMapping};
use crate::sandbox::sys;

/// The hidden argv[1] that selects the forwarder's main.
pub const MODE: &str = "__forward-ports";

const NAME: &str = "hutch port forwarder";
/// Bytes one splice call may move, and the pipe's size.
const CHUNK: usize = 1 << 20;

fn fail(reason: impl Into<String>) -> NetError {
    NetError::start(NAME, reason)
}

/// Bind every TCP port of `ports` on the host, then start the forwarder for
/// the sandbox whose init is `pid`, connecting to `target` (the sandbox's
/// address) inside. Returns once the forwarder is in the sandbox's network.
pub fn spawn(pid: i32, target: &str, ports: &[&PortMapping]) -> Result<Child, NetError> {
    let mut listeners = Vec::new();
    for p in ports {
        let l = TcpListener::bind(p.host_addr()).map_err(|source| NetError::PortTaken {
            addr: p.host_addr(),
            proto: p.proto,
            source,
        })?;
        listeners.push((OwnedFd::from(l), p.container_port));
    }
    let open_ns = |ns: &str| {
        let path = format!("/proc/{pid}/ns/{ns}");
        std::fs::File::open(&path)
            .map(OwnedFd::from)
            .map_err(|e| fail(format!("{path}: {e}")))
    };
    let (userns, netns) = (open_ns("user")?, open_ns("net")?);
    let (ready_r, ready_w) = sys::pipe().map_err(|e| fail(format!("pipe: {e}")))?;

    let mut inherited: Vec<RawFd> = vec![userns.as_raw_fd(), netns.as_raw_fd()];
    inherited.push(ready_w.as_raw_fd());
    inherited.extend(listeners.iter().map(|(l, _)| l.as_raw_fd()));
    let mut cmd = Command::new("/proc/self/exe");
    as_helper(&mut cmd)
        .arg0("hutch")
        .arg(MODE)
        .arg(userns.as_raw_fd().to_string())
        .arg(netns.as_raw_fd().to_string())
        .arg(ready_w.as_raw_fd().to_string())
        .arg(target)
        .args(
            listeners
                .iter()
                .map(|(l, port)| format!("{}:{port}", l.as_raw_fd())),
        )
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    // SAFETY: fcntl is async-signal-safe; the descriptors are ours and stay
    // open in the child until exec, which must inherit them.
    unsafe {
        cmd.pre_exec(move || {
            for &fd in &inherited {
                if libc::fcntl(fd, libc::F_SETFD, 0) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            Ok(())
        });
    }
    let mut child = cmd.spawn().map_err(|e| fail(e.to_string()))?;
    drop((ready_w, userns, netns, listeners));
    // "ok", or why the forwarder could not join the sandbox's network.
    let reply = sys::read_to_end(ready_r.as_raw_fd(), 4096).unwrap_or_default();
    if reply != b"ok" {
        let _ = child.kill();
        let _ = child.wait();
        let reason = String::from_utf8_lossy(&reply).into_owned();
        return Err(fail(if reason.is_empty() {
            "it exited before it was ready".to_string()
        } else {
            reason
        }));
    }
    Ok(child)
}

/// The forwarder's main: `hutch __forward-ports USERNS NETNS READY TARGET
/// LISTENER:PORT...`, all numbers descriptors it inherited. Never returns.
pub fn main() -> ! {
    let args: Vec<String> = std::env::args().skip(2).collect();
    let fd = |s: &str| s.parse::<RawFd>().ok().filter(|fd| *fd > 2);
    let ready = args.get(2).and_then(|s| fd(s));
    let Some(ready) = ready else {
        eprintln!("hutch: {MODE} is hutch's own helper, not a command");
        std::process::exit(125);
    };
    // SAFETY: the descriptor was handed to us by `spawn`, ours alone.
    let ready = unsafe { OwnedFd::from_raw_fd(ready) };
    match setup(&args) {
        Ok((target, listeners)) => {
            let _ = sys::write_all(ready.as_raw_fd(), b"ok");
            drop(ready);
            serve(target, listeners)
        }
        Err(reason) => {
            let _ = sys::write_all(ready.as_raw_fd(), reason.as_bytes());
            std::process::exit(1)
        }
    }
}

type Listeners = Vec<(OwnedFd, u16)>;

/// Take the inherited descriptors, join the sandbox's namespaces.
fn setup(args: &[String]) -> Result<(std::net::Ipv4Addr, Listeners), String> {
    let take = |s: &String| -> Result<OwnedFd, String> {
        let fd: RawFd = s.parse().map_err(|_| format!("bad descriptor {s:?}"))?;
        // SAFETY: fcntl on a number; F_GETFD fails on a closed descriptor.
        if fd <= 2 || unsafe { libc::fcntl(fd, libc::F_GETFD) } < 0 {
            return Err(format!("descriptor {fd} is not open"));
        }
        // SAFETY: an open descriptor handed to us by `spawn`, ours alone.
        Ok(unsafe { OwnedFd::from_raw_fd(fd) })
    };
    let [userns, netns, _, target, ports @ ..] = args else {
        return Err("missing arguments".into());
    };
    let (userns, netns) = (take(userns)?, take(netns)?);
    let target = target
        .parse()
        .map_err(|_| format!("bad target address {target:?}"))?;
    let mut listeners = Vec::new();
    for p in ports {
        let (l, port) = p
            .split_once(':')
            .ok_or_else(|| format!("bad listener {p:?}"))?;
        let port = port.parse().map_err(|_| format!("bad port {port:?}"))?;
        listeners.push((take(&l.to_string())?, port));
    }
    for fd in [&userns, &netns]
        .iter()
        .map(|f| f.as_raw_fd())
        .chain(listeners.iter().map(|(l, _)| l.as_raw_fd()))
    {
        // SAFETY: fcntl on our own descriptors: nothing of ours leaks on.
        unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) };
    }
    // SAFETY: a static NUL-terminated name.
    unsafe { libc::prctl(libc::PR_SET_NAME, c"hutch-forward".as_ptr(), 0, 0, 0) };
    // Joining a user namespace needs a single-threaded process: this one
    // was just exec'd and starts no threads.
    for (ns, kind, name) in [
        (&userns, libc::CLONE_NEWUSER, "user"),
        (&netns, libc::CLONE_NEWNET, "network"),
    ] {
        // SAFETY: setns on a namespace descriptor we own.
        if unsafe { libc::setns(ns.as_raw_fd(), kind) } < 0 {
            return Err(format!(
                "cannot join the sandbox's {name} namespace: {}",
                std::io::Error::last_os_error()
            ));
        }
    }
    sys::prctl(libc::PR_SET_NO_NEW_PRIVS, 1).map_err(|e| format!("no_new_privs: {e}"))?;
    // Room for many connections: six descriptors each.
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: get/setrlimit with a valid struct.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 {
            lim.rlim_cur = lim.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
    }
    for (l, _) in &listeners {
        set_nonblocking(l.as_raw_fd()).map_err(|e| format!("listener: {e}"))?;
    }
    Ok((target, listeners))
}

fn set_nonblocking(fd: RawFd) -> std::io::Result<()> {
    // SAFETY: fcntl on a descriptor we own.
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFL) };
    // SAFETY: as above.
    if flags < 0 || unsafe { libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK) } < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// What one direction of a connection waits for.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Want {
    Read,
    Write,
    Done,
}

/// One direction: bytes from one socket to the other through a pipe.
struct Flow {
    pipe_r: OwnedFd,
    pipe_w: OwnedFd,
    /// Bytes in the pipe not yet written out.
    pending: usize,
    want: Want,
}

impl Flow {
    fn new() -> std::io::Result<Flow> {
        let mut fds = [0; 2];
        // SAFETY: `fds` has room for the two descriptors pipe2 writes.
        if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC | libc::O_NONBLOCK) } < 0 {
            return Err(std::io::Error::last_os_error());
        }
        // SAFETY: fresh descriptors owned by us alone.
        let (r, w) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
        // A bigger pipe moves more per call; the default size works too.
        // SAFETY: fcntl on our own pipe.
        unsafe { libc::fcntl(w.as_raw_fd(), libc::F_SETPIPE_SZ, CHUNK as libc::c_int) };
        Ok(Flow {
            pipe_r: r,
            pipe_w: w,
            pending: 0,
            want: Want::Read,
        })
    }

    /// Move what can be moved now from `src` to `dst`; at EOF, pass the
    /// half-close on.
    fn pump(&mut self, src: RawFd, dst: RawFd) -> std::io::Result<()> {
        let flags = libc::SPLICE_F_MOVE | libc::SPLICE_F_NONBLOCK;
        loop {
            if self.pending > 0 {
                // SAFETY: splice between descriptors we own; no user memory.
                let n = unsafe {
                    libc::splice(
                        self.pipe_r.as_raw_fd(),
                        std::ptr::null_mut(),
                        dst,
                        std::ptr::null_mut(),
                        self.pending,
                        flags,
                    )
                };
                if n < 0 {
                    return would_block(Want::Write, &mut self.want);
                }
                self.pending -= n as usize;
                continue;
            }
            if self.want == Want::Done {
                return Ok(());
            }
            // SAFETY: as above.
            let n = unsafe {
                libc::splice(
                    src,
                    std::ptr::null_mut(),
                    self.pipe_w.as_raw_fd(),
                    std::ptr::null_mut(),
                    CHUNK,
                    flags,
                )
            };
            if n < 0 {
                return would_block(Want::Read, &mut self.want);
            }
            if n == 0 {
                self.want = Want::Done;
                // SAFETY: shutdown on a socket we own.
                unsafe { libc::shutdown(dst, libc::SHUT_WR) };
                return Ok(());
            }
            self.pending += n as usize;
        }
    }
}

/// EAGAIN: wait for `want`; any other error ends the connection.
fn would_block(want: Want, slot: &mut Want) -> std::io::Result<()> {
    let e = std::io::Error::last_os_error();
    if e.kind() == std::io::ErrorKind::WouldBlock {
        *slot = want;
        Ok(())
    } else {
        Err(e)
    }
}

struct Conn {
    /// The client's connection, accepted on the host.
    outside: OwnedFd,
    /// Ours to the workload, made in the sandbox's network namespace.
    inside: OwnedFd,
    connecting: bool,
    up: Flow,
    down: Flow,
}

impl Conn {
    fn open(outside: OwnedFd, target: std::net::SocketAddrV4) -> std::io::Result<Conn> {
        // SAFETY: socket(2) with constant arguments.
        let s = unsafe {
            libc::socket(
                libc::AF_INET,
                libc::SOCK_STREAM | libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK,
                0,
            )
        };
        if s < 0 {
            return Err(std::io::Error::last_os_error());
        }
        // SAFETY: a fresh descriptor owned by us alone.
        let inside = unsafe { OwnedFd::from_raw_fd(s) };
        let addr = libc::sockaddr_in {
            sin_family: libc::AF_INET as libc::sa_family_t,
            sin_port: target.port().to_be(),
            sin_addr: libc::in_addr {
                s_addr: u32::from(*target.ip()).to_be(),
            },
            sin_zero: [0; 8],
        };
        // SAFETY: connect with a valid sockaddr_in and its size.
        let r = unsafe {
            libc::connect(
                s,
                (&addr as *const libc::sockaddr_in).cast(),
                std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
            )
        };
        let connecting = if r < 0 {
            let e = std::io::Error::last_os_error();
            if e.raw_os_error() != Some(libc::EINPROGRESS) {
                return Err(e);
            }
            true
        } else {
            false
        };
        for fd in [outside.as_raw_fd(), s] {
            let one: libc::c_int = 1;
            // SAFETY: setsockopt with a valid int. The relay must not add
            // Nagle's delay of its own: the endpoints chose theirs.
            unsafe {
                libc::setsockopt(
                    fd,
                    libc::IPPROTO_TCP,
                    libc::TCP_NODELAY,
                    (&one as *const libc::c_int).cast(),
                    std::mem::size_of::<libc::c_int>() as libc::socklen_t,
                )
            };
        }
        Ok(Conn {
            outside,
            inside,
            connecting,
            up: Flow::new()?,
            down: Flow::new()?,
        })
    }

    /// After an event: finish connecting, then move bytes both ways.
    /// Err or Ok(false): the connection is over.
    fn step(&mut self) -> std::io::Result<bool> {
        if self.connecting {
            let mut err: libc::c_int = 0;
            let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
            // SAFETY: getsockopt into a valid int and its size.
            unsafe {
                libc::getsockopt(
                    self.inside.as_raw_fd(),
                    libc::SOL_SOCKET,
                    libc::SO_ERROR,
                    (&mut err as *mut libc::c_int).cast(),
                    &mut len,
                )
            };
            match err {
                0 => self.connecting = false,
                libc::EINPROGRESS | libc::EALREADY => return Ok(true),
                e => return Err(std::io::Error::from_raw_os_error(e)),
            }
        }
        let (o, i) = (self.outside.as_raw_fd(), self.inside.as_raw_fd());
        self.up.pump(o, i)?;
        self.down.pump(i, o)?;
        Ok(self.up.want != Want::Done || self.down.want != Want::Done)
    }

    /// poll(2) events for the outside and inside sockets.
    fn events(&self) -> (i16, i16) {
        if self.connecting {
            return (0, libc::POLLOUT);
        }
        let (mut outside, mut inside) = (0, 0);
        match self.up.want {
            Want::Read => outside |= libc::POLLIN,
            Want::Write => inside |= libc::POLLOUT,
            Want::Done => {}
        }
        match self.down.want {
            Want::Read => inside |= libc::POLLIN,
            Want::Write => outside |= libc::POLLOUT,
            Want::Done => {}
        }
        (outside, inside)
    }
}

/// A pollfd; none (-1, never reported, not even a hangup) without events,
/// so that a half-closed socket does not wake the loop for nothing.
fn pollfd(fd: RawFd, events: i16) -> libc::pollfd {
    libc::pollfd {
        fd: if events == 0 { -1 } else { fd },
        events,
        revents: 0,
    }
}

/// Accept and relay until killed.
fn serve(target: std::net::Ipv4Addr, listeners: Listeners) -> ! {
    let mut nofile = libc::rlimit {
        rlim_cur: 1024,
        rlim_max: 0,
    };
    // SAFETY: getrlimit with a valid struct.
    unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut nofile) };
    // Six descriptors a connection; keep some for the listeners.
    let max_conns =
        ((nofile.rlim_cur.min(1 << 20) as usize).saturating_sub(listeners.len() + 16)) / 6;
    let mut conns: Vec<Conn> = Vec::new();
    let mut pfds: Vec<libc::pollfd> = Vec::new();
    loop {
        pfds.clear();
        let accepting = conns.len() < max_conns;
        for (l, _) in &listeners {
            pfds.push(pollfd(
                l.as_raw_fd(),
                if accepting { libc::POLLIN } else { 0 },
            ));
        }
        for c in &conns {
            let (o, i) = c.events();
            pfds.push(pollfd(c.outside.as_raw_fd(), o));
            pfds.push(pollfd(c.inside.as_raw_fd(), i));
        }
        // SAFETY: a valid array of pollfds and its length.
        let n = unsafe { libc::poll(pfds.as_mut_ptr(), pfds.len() as libc::nfds_t, -1) };
        if n < 0 {
            continue; // EINTR
        }
        let nl = listeners.len();
        // Connections first (their indices match `pfds`), then new ones.
        let mut keep = Vec::with_capacity(conns.len());
        for (k, mut c) in conns.drain(..).enumerate() {
            let fired = pfds[nl + 2 * k].revents | pfds[nl + 2 * k + 1].revents;
            if fired == 0 || matches!(c.step(), Ok(true)) {
                keep.push(c);
            }
        }
        conns = keep;
        for (k, (l, port)) in listeners.iter().enumerate() {
            if pfds[k].revents == 0 {
                continue;
            }
            while conns.len() < max_conns {
                // SAFETY: accept4 without an address; a fresh descriptor or -1.
                let fd = unsafe {
                    libc::accept4(
                        l.as_raw_fd(),
                        std::ptr::null_mut(),
                        std::ptr::null_mut(),
                        libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
                    )
                };
                if fd < 0 {
                    break;
                }
                // SAFETY: a fresh descriptor owned by us alone.
                let outside = unsafe { OwnedFd::from_raw_fd(fd) };
                // A refused connection closes the client's at once.
                if let Ok(mut c) = Conn::open(outside, std::net::SocketAddrV4::new(target, *port)) {
                    if matches!(c.step(), Ok(true)) {
                        conns.push(c);
                    }
                }
            }
        }
    }
}
