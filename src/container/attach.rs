//! Attaching to a detached container: its supervisor listens on a unix
//! socket, `<runtime dir>/attach/<id>.sock` (mode 0600 in a 0700
//! directory, and every peer's uid checked), and `start -a`, `start -i` and
//! `attach` connect to it (or, for `start`, are handed a connected socket
//! before the workload starts, so that no output is missed).
//!
//! On the socket both ways go frames: a kind byte, a little-endian u32
//! length, the payload. The supervisor sends the workload's output (stdout
//! and stderr kept apart) and, once it has recorded the exit, the exit
//! code; the client sends stdin, the end of stdin, signals to forward and
//! its terminal's size. A client that goes away without sending the end of
//! stdin has detached: the container runs on.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::PathBuf;

use crate::paths;
use crate::sandbox::attach::{RawTerminal, SignalFd};
use crate::sandbox::sys;

/// Supervisor to client.
pub const STDOUT: u8 = 1;
pub const STDERR: u8 = 2;
/// The workload's exit code (i32), sent once the exit is recorded.
pub const EXIT: u8 = 3;
/// Client to supervisor.
pub const STDIN: u8 = 10;
pub const STDIN_EOF: u8 = 11;
/// A signal (i32) for the workload.
pub const SIGNAL: u8 = 12;
/// The client's terminal size: rows and columns (u16 each).
pub const RESIZE: u8 = 13;

const HEADER: usize = 5;
/// The largest payload either side accepts.
pub const MAX_PAYLOAD: usize = 64 * 1024;

/// A frame, ready to send.
pub fn frame(kind: u8, payload: &[u8]) -> Vec<u8> {
    let mut f = Vec::with_capacity(HEADER + payload.len());
    push_frame(&mut f, kind, payload);
    f
}

/// Append a frame to `out`.
pub fn push_frame(out: &mut Vec<u8>, kind: u8, payload: &[u8]) {
    out.push(kind);
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    out.extend_from_slice(payload);
}

/// A frame whose payload is over [`MAX_PAYLOAD`]: the stream is not ours.
#[derive(Debug, PartialEq, Eq)]
pub struct Malformed;

/// Frames as they arrive, from a byte stream.
#[derive(Default)]
pub struct Frames {
    buf: Vec<u8>,
}

impl Frames {
    pub fn push(&mut self, data: &[u8]) {
        self.buf.extend_from_slice(data);
    }

    /// The next whole frame; `Err` for a malformed stream (a payload over
    /// [`MAX_PAYLOAD`]).
    pub fn next_frame(&mut self) -> Result<Option<(u8, Vec<u8>)>, Malformed> {
        if self.buf.len() < HEADER {
            return Ok(None);
        }
        let mut len = [0u8; 4];
        len.copy_from_slice(&self.buf[1..HEADER]);
        let len = u32::from_le_bytes(len) as usize;
        if len > MAX_PAYLOAD {
            return Err(Malformed);
        }
        if self.buf.len() < HEADER + len {
            return Ok(None);
        }
        let kind = self.buf[0];
        let payload = self.buf[HEADER..HEADER + len].to_vec();
        self.buf.drain(..HEADER + len);
        Ok(Some((kind, payload)))
    }
}

/// An i32 payload.
pub fn int(payload: &[u8]) -> Option<i32> {
    Some(i32::from_le_bytes(payload.try_into().ok()?))
}

/// The attach socket of container `id`.
pub fn socket_path(id: &str) -> Result<PathBuf, paths::PathsError> {
    let dir = paths::runtime_dir()?.join("attach");
    paths::create_private(&dir)?;
    Ok(dir.join(format!("{id}.sock")))
}

fn sockaddr(path: &std::path::Path) -> std::io::Result<(libc::sockaddr_un, libc::socklen_t)> {
    use std::os::unix::ffi::OsStrExt;
    // SAFETY: sockaddr_un is plain data; zeroed is valid.
    let mut addr: libc::sockaddr_un = unsafe { std::mem::zeroed() };
    addr.sun_family = libc::AF_UNIX as libc::sa_family_t;
    let bytes = path.as_os_str().as_bytes();
    if bytes.len() >= addr.sun_path.len() {
        return Err(std::io::Error::other(format!(
            "the socket path {} is longer than a unix socket allows (hint: set XDG_RUNTIME_DIR to a shorter directory)",
            path.display()
        )));
    }
    for (d, s) in addr.sun_path.iter_mut().zip(bytes) {
        *d = *s as libc::c_char;
    }
    let len = std::mem::size_of::<libc::sa_family_t>() + bytes.len() + 1;
    Ok((addr, len as libc::socklen_t))
}

fn socket() -> std::io::Result<OwnedFd> {
    // SAFETY: socket takes integers and returns a new descriptor.
    let fd = unsafe {
        libc::socket(
            libc::AF_UNIX,
            libc::SOCK_STREAM | libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK,
            0,
        )
    };
    // SAFETY: a fresh descriptor owned by nobody else.
    sys::check(fd as libc::c_long).map(|fd| unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

/// The supervisor's listening socket for container `id` (non-blocking).
/// A socket left by a killed supervisor is replaced.
pub fn listen(id: &str) -> std::io::Result<OwnedFd> {
    let path = socket_path(id).map_err(std::io::Error::other)?;
    let (addr, len) = sockaddr(&path)?;
    let _ = std::fs::remove_file(&path);
    let fd = socket()?;
    // Only this user may connect: the directory is private, and the socket
    // is made 0600 from the start.
    // SAFETY: umask takes and returns a mode.
    let old = unsafe { libc::umask(0o177) };
    // SAFETY: a valid socket and address of the given length.
    let bound = unsafe {
        libc::bind(
            fd.as_raw_fd(),
            (&addr as *const libc::sockaddr_un).cast(),
            len,
        )
    };
    // SAFETY: restoring the umask.
    unsafe { libc::umask(old) };
    sys::check(bound as libc::c_long)?;
    // SAFETY: listen on our own bound socket.
    sys::check(unsafe { libc::listen(fd.as_raw_fd(), 8) } as libc::c_long)?;
    Ok(fd)
}

/// Remove container `id`'s socket.
pub fn unlink(id: &str) {
    // Not socket_path, which makes the directory: nothing to unlink there.
    if let Ok(dir) = paths::runtime_dir() {
        let _ = std::fs::remove_file(dir.join("attach").join(format!("{id}.sock")));
    }
}

/// Connect to container `id`'s supervisor (a blocking socket).
pub fn connect(id: &str) -> std::io::Result<OwnedFd> {
    let path = socket_path(id).map_err(std::io::Error::other)?;
    let (addr, len) = sockaddr(&path)?;
    let fd = socket()?;
    // SAFETY: a valid socket and address of the given length.
    let r = unsafe {
        libc::connect(
            fd.as_raw_fd(),
            (&addr as *const libc::sockaddr_un).cast(),
            len,
        )
    };
    sys::check(r as libc::c_long)?;
    set_blocking(fd.as_raw_fd(), true);
    Ok(fd)
}

/// Accept one client, if its peer is this very user.
pub fn accept(listener: &OwnedFd) -> Option<OwnedFd> {
    // SAFETY: accept4 on our listening socket; no address wanted.
    let fd = unsafe {
        libc::accept4(
            listener.as_raw_fd(),
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK,
        )
    };
    if fd < 0 {
        return None;
    }
    // SAFETY: a fresh descriptor owned by nobody else.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    // SAFETY: ucred is plain data; getsockopt fills at most `len` bytes.
    let mut cred: libc::ucred = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::ucred>() as libc::socklen_t;
    // SAFETY: valid out-pointers of the given length.
    let r = unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_PEERCRED,
            (&mut cred as *mut libc::ucred).cast(),
            &mut len,
        )
    };
    // SAFETY: getuid cannot fail.
    (r == 0 && cred.uid == unsafe { libc::getuid() }).then_some(fd)
}

pub fn set_blocking(fd: RawFd, blocking: bool) {
    // SAFETY: fcntl on a descriptor the caller owns.
    unsafe {
        let flags = libc::fcntl(fd, libc::F_GETFL);
        let flags = if blocking {
            flags & !libc::O_NONBLOCK
        } else {
            flags | libc::O_NONBLOCK
        };
        libc::fcntl(fd, libc::F_SETFL, flags);
    }
}

/// Send as much of `buf` as the socket takes now; what was sent is
/// removed. `Err` when the peer is gone.
pub fn send_some(fd: RawFd, buf: &mut Vec<u8>) -> std::io::Result<()> {
    while !buf.is_empty() {
        // SAFETY: sending from a valid buffer; MSG_NOSIGNAL: a gone peer is
        // an error, not a SIGPIPE.
        let n = unsafe { libc::send(fd, buf.as_ptr().cast(), buf.len(), libc::MSG_NOSIGNAL) };
        if n < 0 {
            let e = std::io::Error::last_os_error();
            return match e.kind() {
                std::io::ErrorKind::WouldBlock => Ok(()),
                std::io::ErrorKind::Interrupted => continue,
                _ => Err(e),
            };
        }
        buf.drain(..n as usize);
    }
    Ok(())
}

/// How an attached client's session ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    /// The container exited with this code.
    Exited(i32),
    /// The user detached (Ctrl-P Ctrl-Q on a terminal).
    Detached,
    /// The supervisor went away without an exit code.
    Lost,
}

/// What the client forwards.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// Forward our stdin (the container was made with `-i`).
    pub stdin: bool,
    /// The container has a terminal: raw mode, window size, detach keys.
    pub tty: bool,
    /// Forward the signals we receive to the workload.
    pub sig_proxy: bool,
    /// The key sequence that detaches, on a terminal ([`DETACH_KEYS`]
    /// unless `--detach-keys` says otherwise).
    pub detach_keys: Vec<u8>,
}

/// Ctrl-P Ctrl-Q, Docker's detach keys.
pub const DETACH_KEYS: &str = "ctrl-p,ctrl-q";

/// Docker's `--detach-keys` syntax: keys separated by commas, each a single
/// character or `ctrl-X` for X one of a-z, @, [, \\, ], ^ and _.
pub fn parse_detach_keys(spec: &str) -> Result<Vec<u8>, String> {
    let bad = |key: &str| {
        format!(
            "invalid detach key {key:?} in {spec:?} (hint: keys separated by commas, each one character or ctrl-X for X in a-z, @, [, \\, ], ^, _; for example ctrl-p,ctrl-q)"
        )
    };
    let mut keys = Vec::new();
    for key in spec.split(',') {
        let byte = match key.strip_prefix("ctrl-") {
            Some(c) if c.len() == 1 => match c.as_bytes()[0] {
                b @ b'a'..=b'z' => b - b'a' + 1,
                b @ (b'@' | b'[' | b'\\' | b']' | b'^' | b'_') => b - b'@',
                _ => return Err(bad(key)),
            },
            Some(_) => return Err(bad(key)),
            None if key.len() == 1 && key.is_ascii() => key.as_bytes()[0],
            None => return Err(bad(key)),
        };
        keys.push(byte);
    }
    Ok(keys)
}

/// `--detach-keys`, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DetachKeys(pub Vec<u8>);

impl Default for DetachKeys {
    fn default() -> Self {
        DetachKeys(vec![0x10, 0x11])
    }
}

impl std::str::FromStr for DetachKeys {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        parse_detach_keys(s).map(DetachKeys)
    }
}

/// Watches typed input for the detach sequence. Keys that start it are
/// held back until it is complete (detach) or broken (they are passed on).
struct Detacher<'a> {
    keys: &'a [u8],
    held: usize,
}

impl Detacher<'_> {
    /// Pass `typed` on into `out`, but for the detach sequence; true when
    /// it is complete.
    fn feed(&mut self, typed: &[u8], out: &mut Vec<u8>) -> bool {
        if self.keys.is_empty() {
            out.extend_from_slice(typed);
            return false;
        }
        for &b in typed {
            if b == self.keys[self.held] {
                self.held += 1;
            } else {
                out.extend_from_slice(&self.keys[..self.held]);
                self.held = usize::from(b == self.keys[0]);
                if self.held == 0 {
                    out.push(b);
                }
            }
            if self.held == self.keys.len() {
                return true;
            }
        }
        false
    }
}

/// Run an attached session on `sock` until the container exits or the user
/// detaches: its output to our stdout and stderr, our stdin and signals to
/// it. The caller must be single-threaded.
pub fn client(sock: OwnedFd, opts: ClientOptions) -> std::io::Result<Ended> {
    let s = sock.as_raw_fd();
    set_blocking(s, false);
    let signals = SignalFd::new().map_err(std::io::Error::other)?;
    let _raw = (opts.tty && opts.stdin).then(RawTerminal::enter);
    let mut out: Vec<u8> = Vec::new();
    if opts.tty {
        if let Some(size) = window_size() {
            push_frame(&mut out, RESIZE, &size);
        }
    }
    let mut frames = Frames::default();
    let mut stdin_open = opts.stdin;
    let mut detacher = Detacher {
        keys: &opts.detach_keys,
        held: 0,
    };
    let mut buf = vec![0u8; 16 * 1024];
    let ended = loop {
        let mut fds = [
            poll_fd(
                s,
                libc::POLLIN | if out.is_empty() { 0 } else { libc::POLLOUT },
            ),
            // Our stdin only while the socket takes what we send.
            poll_fd(
                if stdin_open && out.is_empty() { 0 } else { -1 },
                libc::POLLIN,
            ),
            poll_fd(signals.fd.as_raw_fd(), libc::POLLIN),
        ];
        // SAFETY: three valid pollfds.
        if unsafe { libc::poll(fds.as_mut_ptr(), 3, -1) } < 0 {
            continue;
        }
        if fds[2].revents != 0 {
            match signals.read() {
                Some(libc::SIGWINCH) => {
                    if let Some(size) = window_size().filter(|_| opts.tty) {
                        push_frame(&mut out, RESIZE, &size);
                    }
                }
                Some(libc::SIGCHLD) | None => {}
                Some(sig) if opts.sig_proxy => push_frame(&mut out, SIGNAL, &sig.to_le_bytes()),
                Some(_) => {}
            }
        }
        if fds[1].revents != 0 {
            // SAFETY: reading into a valid buffer of its length.
            let n = unsafe { libc::read(0, buf.as_mut_ptr().cast(), buf.len()) };
            if n <= 0 {
                stdin_open = false;
                push_frame(&mut out, STDIN_EOF, &[]);
            } else {
                let mut data = &buf[..n as usize];
                let mut typed = Vec::new();
                // As Docker: the keys detach a terminal's session.
                if opts.tty && is_tty(0) {
                    if detacher.feed(data, &mut typed) {
                        break Ended::Detached;
                    }
                    data = &typed;
                }
                if !data.is_empty() {
                    push_frame(&mut out, STDIN, data);
                }
            }
        }
        if !out.is_empty() && send_some(s, &mut out).is_err() {
            break Ended::Lost;
        }
        if fds[0].revents & (libc::POLLIN | libc::POLLHUP | libc::POLLERR) != 0 {
            // SAFETY: reading into a valid buffer of its length.
            let n = unsafe { libc::read(s, buf.as_mut_ptr().cast(), buf.len()) };
            if n == 0 {
                break Ended::Lost;
            }
            if n < 0 {
                let e = std::io::Error::last_os_error();
                if e.kind() == std::io::ErrorKind::WouldBlock
                    || e.kind() == std::io::ErrorKind::Interrupted
                {
                    continue;
                }
                break Ended::Lost;
            }
            frames.push(&buf[..n as usize]);
            let mut exited = None;
            while let Ok(Some((kind, payload))) = frames.next_frame() {
                match kind {
                    STDOUT => sys::write_all(1, &payload)?,
                    STDERR => sys::write_all(2, &payload)?,
                    EXIT => exited = int(&payload),
                    _ => {}
                }
            }
            if let Some(code) = exited {
                break Ended::Exited(code);
            }
        }
    };
    signals.restore();
    Ok(ended)
}

fn poll_fd(fd: RawFd, events: libc::c_short) -> libc::pollfd {
    libc::pollfd {
        fd,
        events,
        revents: 0,
    }
}

fn is_tty(fd: RawFd) -> bool {
    // SAFETY: isatty only inspects the descriptor.
    unsafe { libc::isatty(fd) == 1 }
}

/// Our terminal's size as a RESIZE payload.
fn window_size() -> Option<[u8; 4]> {
    for fd in [0, 1] {
        // SAFETY: winsize is plain data; TIOCGWINSZ fills it.
        let mut ws: libc::winsize = unsafe { std::mem::zeroed() };
        // SAFETY: a valid out-pointer for TIOCGWINSZ.
        if unsafe { libc::ioctl(fd, libc::TIOCGWINSZ, &mut ws) } == 0 && ws.ws_row > 0 {
            let mut p = [0u8; 4];
            p[..2].copy_from_slice(&ws.ws_row.to_le_bytes());
            p[2..].copy_from_slice(&ws.ws_col.to_le_bytes());
            return Some(p);
        }
    }
    None
}

/// Apply a RESIZE payload to the pty master `fd`.
pub fn resize(fd: RawFd, payload: &[u8]) {
    if payload.len() != 4 {
        return;
    }
    let ws = libc::winsize {
        ws_row: u16::from_le_bytes([payload[0], payload[1]]),
        ws_col: u16::from_le_bytes([payload[2], payload[3]]),
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCSWINSZ reads a valid winsize.
    unsafe { libc::ioctl(fd, libc::TIOCSWINSZ, &ws) };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detach_keys_parse_as_docker_spells_them() {
        assert_eq!(parse_detach_keys(DETACH_KEYS).unwrap(), [0x10, 0x11]);
        assert_eq!(DETACH_KEYS.parse::<DetachKeys>(), Ok(DetachKeys::default()));
        assert_eq!(parse_detach_keys("ctrl-a,x").unwrap(), [1, b'x']);
        assert_eq!(parse_detach_keys("ctrl-@,ctrl-_").unwrap(), [0, 31]);
        for bad in [
            "",
            "ctrl-",
            "ctrl-1",
            "ctrl-ab",
            "xy",
            "ctrl-p,,ctrl-q",
            "é",
        ] {
            let e = parse_detach_keys(bad).unwrap_err();
            assert!(e.contains("invalid detach key"), "{bad}: {e}");
        }
    }

    #[test]
    fn the_detach_sequence_is_held_back_and_broken_ones_pass() {
        let keys = [0x10, 0x11];
        let mut d = Detacher {
            keys: &keys,
            held: 0,
        };
        let mut out = Vec::new();
        assert!(!d.feed(b"ab\x10", &mut out));
        assert_eq!(out, b"ab", "a first key is held back");
        assert!(!d.feed(b"c\x10\x10", &mut out));
        assert_eq!(
            out, b"ab\x10c\x10",
            "broken: passed on; a key again starts anew"
        );
        assert!(d.feed(b"\x11", &mut out), "completed across reads");
        assert_eq!(out, b"ab\x10c\x10");

        let keys = [1, b'x', b'y'];
        let mut d = Detacher {
            keys: &keys,
            held: 0,
        };
        let mut out = Vec::new();
        assert!(!d.feed(b"\x01x\x01xz", &mut out));
        assert_eq!(out, b"\x01x\x01xz");
        assert!(d.feed(b"\x01xy", &mut out));
    }

    #[test]
    fn frames_round_trip_in_pieces() {
        let mut stream = frame(STDOUT, b"hello");
        push_frame(&mut stream, EXIT, &7i32.to_le_bytes());
        let mut f = Frames::default();
        for b in &stream {
            f.push(&[*b]);
        }
        assert_eq!(f.next_frame().unwrap(), Some((STDOUT, b"hello".to_vec())));
        let (kind, code) = f.next_frame().unwrap().unwrap();
        assert_eq!((kind, int(&code)), (EXIT, Some(7)));
        assert_eq!(f.next_frame().unwrap(), None);
        let mut bad = Frames::default();
        bad.push(&frame(STDIN, &vec![0; MAX_PAYLOAD + 1]));
        assert!(bad.next_frame().is_err());
    }
}
