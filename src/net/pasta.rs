//! pasta (from passt): a user-mode network that copies the host's addresses
//! and routes into the sandbox and splices TCP for speed.

use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::process::Command;

use super::{runtime_files, Backend, NetError, NetHelper, PortMapping, Proto};
use crate::sandbox::sys;

/// The address in the sandbox whose DNS queries pasta forwards to the host's
/// resolver.
pub const DNS: &str = "169.254.1.1";

const NAME: &str = "pasta";

pub fn start(
    pid: i32,
    id: &str,
    allow_host_loopback: bool,
    ports: &[PortMapping],
) -> Result<NetHelper, NetError> {
    let [fifo, log] = runtime_files(NAME, id, ["ready", "log"])?;
    let _ = std::fs::remove_file(&fifo);
    // pasta writes its pid file once the namespace is configured, in the
    // foreground too. A FIFO as the pid file turns that into a ready signal,
    // and keeps pasta in the foreground, our child, dying with us: a
    // daemonised pasta outlives the namespace it serves.
    let c = sys::cstr(&fifo).map_err(|e| NetError::start(NAME, e.to_string()))?;
    // SAFETY: a valid C string.
    if unsafe { libc::mkfifo(c.as_ptr(), 0o600) } < 0 {
        let e = std::io::Error::last_os_error();
        return Err(NetError::start(
            NAME,
            format!("mkfifo {}: {e}", fifo.display()),
        ));
    }
    let ready = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(&fifo)
        .map_err(|e| NetError::start(NAME, format!("{}: {e}", fifo.display())))?;

    let mut cmd = Command::new(NAME);
    cmd.args([
        "--foreground",
        "--config-net",
        "--quiet",
        "--dns-forward",
        DNS,
    ]);
    if !allow_host_loopback {
        // Without these, pasta maps the gateway address to the host and
        // forwards the sandbox's loopback ports to the host's: untrusted
        // code must not reach the user's local services by accident.
        cmd.args(["--no-map-gw", "-T", "none", "-U", "none"]);
    }
    // pasta forwards every port by default; publish only what was asked.
    for (flag, proto) in [("-t", Proto::Tcp), ("-u", Proto::Udp)] {
        let specs: Vec<String> = ports
            .iter()
            .filter(|p| p.proto == proto)
            .map(|p| match p.host_ip {
                Some(ip) => format!("{ip}/{}:{}", p.host_port, p.container_port),
                None => format!("{}:{}", p.host_port, p.container_port),
            })
            .collect();
        if specs.is_empty() {
            cmd.args([flag, "none"]);
        }
        for s in specs {
            cmd.args([flag, &s]);
        }
    }
    cmd.arg("--pid")
        .arg(&fifo)
        .arg("--userns")
        .arg(format!("/proc/{pid}/ns/user"))
        .arg("--netns")
        .arg(format!("/proc/{pid}/ns/net"));
    let helper = NetHelper::spawn(Backend::Pasta, cmd, log, vec![fifo])?;

    // Wait for the pid line; EOF (pasta exited) or a minute of silence is a failure.
    let mut pfd = libc::pollfd {
        fd: ready.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd.
    let n = unsafe { libc::poll(&mut pfd, 1, 60_000) };
    let mut buf = [0u8; 64];
    let got = if n > 0 {
        // SAFETY: reading into a valid buffer of its length.
        unsafe { libc::read(ready.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) }
    } else {
        0
    };
    if got <= 0 {
        return Err(helper.not_up());
    }
    Ok(helper)
}
