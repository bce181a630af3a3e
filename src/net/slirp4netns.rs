//! slirp4netns: a user-mode TCP/IP stack on a tap device in the sandbox's
//! network namespace. Published TCP ports go through hutch's own forwarder
//! (`forward.rs`, several times faster than slirp4netns's); UDP ports
//! through slirp4netns's API socket.

use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::process::Command;

use super::{forward, runtime_files, Backend, NetError, NetHelper, PortMapping, Proto};
use crate::sandbox::sys;

/// slirp4netns's built-in DNS forwarder and the sandbox's own address.
pub const DNS: &str = "10.0.2.3";
pub const ADDRESS: &str = "10.0.2.100";

const NAME: &str = "slirp4netns";

/// A pipe whose `child_end` is inherited by the helper (no close-on-exec).
fn inheritable_pipe(child_end_is_read: bool) -> Result<(OwnedFd, OwnedFd), NetError> {
    let mut fds = [0; 2];
    // SAFETY: `fds` has room for the two descriptors pipe2 writes.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), 0) } < 0 {
        let e = std::io::Error::last_os_error();
        return Err(NetError::start(NAME, format!("pipe: {e}")));
    }
    // SAFETY: fresh descriptors owned by us alone.
    let (r, w) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    // hutch's own end must not leak into the helper.
    let ours = if child_end_is_read { &w } else { &r };
    // SAFETY: fcntl on our own descriptor.
    unsafe { libc::fcntl(ours.as_raw_fd(), libc::F_SETFD, libc::FD_CLOEXEC) };
    Ok((r, w))
}

pub fn start(
    pid: i32,
    id: &str,
    allow_host_loopback: bool,
    ports: &[PortMapping],
) -> Result<NetHelper, NetError> {
    let [api, log] = runtime_files(NAME, id, ["sock", "log"])?;
    let _ = std::fs::remove_file(&api);
    let (ready_r, ready_w) = inheritable_pipe(false)?;
    let (exit_r, exit_w) = inheritable_pipe(true)?;

    let mut cmd = Command::new(NAME);
    // As Podman runs it: the largest MTU (fewer, bigger segments through
    // the user-mode stack), and slirp4netns confined in an empty mount
    // namespace and a seccomp filter of its own, since it parses every
    // packet the untrusted workload sends.
    cmd.args([
        "--configure",
        "--mtu=65520",
        "--enable-sandbox",
        "--enable-seccomp",
    ]);
    if !allow_host_loopback {
        // Untrusted code must not reach the user's local services by accident.
        cmd.arg("--disable-host-loopback");
    }
    cmd.arg(format!("--ready-fd={}", ready_w.as_raw_fd()))
        .arg(format!("--exit-fd={}", exit_r.as_raw_fd()))
        .arg(format!("--userns-path=/proc/{pid}/ns/user"));
    let (tcp, udp): (Vec<&PortMapping>, Vec<&PortMapping>) =
        ports.iter().partition(|p| p.proto == Proto::Tcp);
    if !udp.is_empty() {
        cmd.arg("--api-socket").arg(&api);
    }
    cmd.arg(pid.to_string()).arg("tap0");
    let mut helper = NetHelper::spawn(Backend::Slirp4netns, cmd, log, vec![api.clone()])?;
    drop((ready_w, exit_r));
    helper.exit_fd = Some(exit_w);

    // slirp4netns writes "1" once the tap device is configured.
    let ready = sys::read_to_end(ready_r.as_raw_fd(), 16).unwrap_or_default();
    if ready.first() != Some(&b'1') {
        return Err(helper.not_up());
    }
    for p in udp {
        add_hostfwd(&api, p).map_err(|e| NetError::PortTaken {
            addr: p.host_addr(),
            proto: p.proto,
            source: e,
        })?;
    }
    if !tcp.is_empty() {
        helper.forwarder = Some(forward::spawn(pid, ADDRESS, &tcp)?);
    }
    Ok(helper)
}

/// One `add_hostfwd` request on the API socket.
fn add_hostfwd(api: &std::path::Path, p: &PortMapping) -> std::io::Result<()> {
    let request = serde_json::json!({
        "execute": "add_hostfwd",
        "arguments": {
            "proto": match p.proto { Proto::Tcp => "tcp", Proto::Udp => "udp" },
            "host_addr": p.host_addr().ip().to_string(),
            "host_port": p.host_port,
            "guest_addr": ADDRESS,
            "guest_port": p.container_port,
        }
    });
    let mut s = UnixStream::connect(api)?;
    s.write_all(request.to_string().as_bytes())?;
    s.shutdown(std::net::Shutdown::Write)?;
    let mut reply = String::new();
    s.take(64 * 1024).read_to_string(&mut reply)?;
    let v: serde_json::Value = serde_json::from_str(&reply)
        .map_err(|e| std::io::Error::other(format!("bad reply {reply:?}: {e}")))?;
    match v.get("error") {
        None => Ok(()),
        Some(e) => Err(std::io::Error::other(
            e.get("desc")
                .and_then(|d| d.as_str())
                .unwrap_or("refused")
                .to_string(),
        )),
    }
}
