//! The sandbox's terminal (`-t`): a pseudo-terminal opened inside the
//! sandbox's own devpts, so that `tty` and `ttyname(3)` name a device that
//! exists inside (`/dev/pts/0`) and no host pty is visible or needed.
//!
//! The child opens the pair after `pivot_root`, sizes it like the user's
//! terminal, keeps the slave for the workload and passes the master to hutch
//! over a socket (SCM_RIGHTS), as runc's and crun's console socket do.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use super::sys;

/// A socket pair for passing the master: `(hutch's end, the child's end)`.
pub fn socket_pair() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    // SAFETY: `fds` has room for the two descriptors socketpair writes.
    let ret = unsafe {
        libc::socketpair(
            libc::AF_UNIX,
            libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC,
            0,
            fds.as_mut_ptr(),
        )
    };
    sys::check(ret as libc::c_long)?;
    // SAFETY: two fresh descriptors owned by nobody else.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// A pty pair from the devpts mounted on the (new) `/dev/pts`.
pub struct Pair {
    pub master: OwnedFd,
    pub slave: OwnedFd,
}

/// Open a pty in the current root's `/dev/ptmx`, with the window size of
/// whichever of fds 0, 1, 2 is the user's terminal.
pub fn open_inside() -> io::Result<Pair> {
    // SAFETY: a constant C string; the flags take no pointers.
    let m = unsafe {
        libc::open(
            c"/dev/ptmx".as_ptr(),
            libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC,
        )
    };
    sys::check(m as libc::c_long)?;
    // SAFETY: a fresh descriptor owned by nobody else.
    let master = unsafe { OwnedFd::from_raw_fd(m) };
    let mut unlock: libc::c_int = 0;
    let mut number: libc::c_uint = 0;
    // SAFETY: TIOCSPTLCK reads an int, TIOCGPTN writes an unsigned int; both
    // point to live locals.
    unsafe {
        sys::check(libc::ioctl(m, libc::TIOCSPTLCK, &mut unlock) as libc::c_long)?;
        sys::check(libc::ioctl(m, libc::TIOCGPTN, &mut number) as libc::c_long)?;
    }
    let path = sys::cstr(std::path::Path::new(&format!("/dev/pts/{number}")))?;
    // SAFETY: `path` is a valid C string.
    let s = unsafe {
        libc::open(
            path.as_ptr(),
            libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC,
        )
    };
    sys::check(s as libc::c_long)?;
    // SAFETY: a fresh descriptor owned by nobody else.
    let slave = unsafe { OwnedFd::from_raw_fd(s) };
    for fd in 0..3 {
        if copy_window_size(fd, m) {
            break;
        }
    }
    Ok(Pair { master, slave })
}

/// Copy the window size of terminal `from` to `to`; false if `from` has none.
pub fn copy_window_size(from: RawFd, to: RawFd) -> bool {
    // SAFETY: winsize is plain data; TIOCGWINSZ fills it and TIOCSWINSZ
    // reads it.
    unsafe {
        let mut ws: libc::winsize = std::mem::zeroed();
        if libc::ioctl(from, libc::TIOCGWINSZ, &mut ws) != 0 {
            return false;
        }
        libc::ioctl(to, libc::TIOCSWINSZ, &ws);
    }
    true
}

/// Send `fd` over the socket `sock`.
pub fn send_fd(sock: RawFd, fd: RawFd) -> io::Result<()> {
    let mut byte = [b'm'];
    let mut iov = libc::iovec {
        iov_base: byte.as_mut_ptr().cast(),
        iov_len: 1,
    };
    // SAFETY: CMSG_SPACE is a pure size computation.
    let space = unsafe { libc::CMSG_SPACE(std::mem::size_of::<RawFd>() as u32) } as usize;
    let mut control = vec![0u8; space];
    // SAFETY: msghdr is plain data; zeroed is a valid value.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = space;
    // SAFETY: the control buffer holds exactly one cmsg with room for one
    // fd (CMSG_SPACE above); CMSG_FIRSTHDR and CMSG_DATA point into it.
    let ret = unsafe {
        let cmsg = libc::CMSG_FIRSTHDR(&msg);
        (*cmsg).cmsg_level = libc::SOL_SOCKET;
        (*cmsg).cmsg_type = libc::SCM_RIGHTS;
        (*cmsg).cmsg_len = libc::CMSG_LEN(std::mem::size_of::<RawFd>() as u32) as usize;
        std::ptr::write_unaligned(libc::CMSG_DATA(cmsg).cast::<RawFd>(), fd);
        libc::sendmsg(sock, &msg, libc::MSG_NOSIGNAL)
    };
    sys::check(ret as libc::c_long).map(drop)
}

/// Receive one descriptor from `sock`; `Ok(None)` when the peer closed
/// without sending (it failed, and says why on the error pipe).
pub fn recv_fd(sock: RawFd) -> io::Result<Option<OwnedFd>> {
    let mut byte = [0u8; 1];
    let mut iov = libc::iovec {
        iov_base: byte.as_mut_ptr().cast(),
        iov_len: 1,
    };
    // SAFETY: CMSG_SPACE is a pure size computation.
    let space = unsafe { libc::CMSG_SPACE(std::mem::size_of::<RawFd>() as u32) } as usize;
    let mut control = vec![0u8; space];
    // SAFETY: msghdr is plain data; zeroed is a valid value.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = space;
    let n = loop {
        // SAFETY: `msg` points to live buffers of the sizes it states.
        let n = unsafe { libc::recvmsg(sock, &mut msg, libc::MSG_CMSG_CLOEXEC) };
        if n >= 0 || io::Error::last_os_error().kind() != io::ErrorKind::Interrupted {
            break n;
        }
    };
    sys::check(n as libc::c_long)?;
    if n == 0 {
        return Ok(None);
    }
    // SAFETY: the kernel filled `control` up to msg_controllen; CMSG_FIRSTHDR
    // returns NULL when no header fits, and CMSG_DATA of an SCM_RIGHTS
    // header holds at least one fd.
    unsafe {
        let cmsg = libc::CMSG_FIRSTHDR(&msg);
        if cmsg.is_null()
            || (*cmsg).cmsg_level != libc::SOL_SOCKET
            || (*cmsg).cmsg_type != libc::SCM_RIGHTS
        {
            return Ok(None);
        }
        let fd = std::ptr::read_unaligned(libc::CMSG_DATA(cmsg).cast::<RawFd>());
        Ok(Some(OwnedFd::from_raw_fd(fd)))
    }
}

/// Make the slave the workload's stdio and controlling terminal.
pub fn attach_slave(slave: &OwnedFd) -> io::Result<()> {
    for to in 0..3 {
        sys::dup2(slave.as_raw_fd(), to)?;
    }
    // SAFETY: fd 0 is the pty's slave; the caller leads a new session.
    sys::check(unsafe { libc::ioctl(0, libc::TIOCSCTTY, 0) } as libc::c_long).map(drop)
}
