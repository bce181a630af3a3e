//! pasta (from passt): a user-mode network that copies the host's addresses
//! and routes into the sandbox and splices TCP for speed.

use std::process::Stdio;

use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;

use super::{helper_command, runtime_files, NetError, NetHelper, PortMapping, Proto};
use crate::sandbox::sys;

/// The address in the sandbox whose DNS queries pasta forwards to the host's
/// resolver.
pub const DNS: &str = "169.254.1.1";

const NAME: &str = "pasta";

fn fail(reason: impl Into<String>) -> NetError {
    NetError::Start {
        helper: NAME,
        reason: reason.into(),
    }
}

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
    let c = sys::cstr(&fifo).map_err(|e| fail(e.to_string()))?;
    // SAFETY: a valid C string.
    if unsafe { libc::mkfifo(c.as_ptr(), 0o600) } < 0 {
        return Err(fail(format!(
            "mkfifo {}: {}",
            fifo.display(),
            std::io::Error::last_os_error()
        )));
    }
    let ready = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(&fifo)
        .map_err(|e| fail(format!("{}: {e}", fifo.display())))?;
    let log_file =
        std::fs::File::create(&log).map_err(|e| fail(format!("{}: {e}", log.display())))?;

    let mut cmd = helper_command(NAME);
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
    let spec = |p: &PortMapping| match p.host_ip {
        Some(ip) => format!("{ip}/{}:{}", p.host_port, p.container_port),
        None => format!("{}:{}", p.host_port, p.container_port),
    };
    let tcp: Vec<String> = ports
        .iter()
        .filter(|p| p.proto == Proto::Tcp)
        .map(spec)
        .collect();
    let udp: Vec<String> = ports
        .iter()
        .filter(|p| p.proto == Proto::Udp)
        .map(spec)
        .collect();
    // pasta forwards every port by default; publish only what was asked.
    for (flag, list) in [("-t", tcp), ("-u", udp)] {
        if list.is_empty() {
            cmd.args([flag, "none"]);
        }
        for s in list {
            cmd.args([flag, &s]);
        }
    }
    cmd.arg("--pid")
        .arg(&fifo)
        .arg("--userns")
        .arg(format!("/proc/{pid}/ns/user"))
        .arg("--netns")
        .arg(format!("/proc/{pid}/ns/net"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log_file);
    let child = cmd.spawn().map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => NetError::Missing {
            helper: NAME,
            package: "passt",
        },
        _ => fail(e.to_string()),
    })?;
    let mut helper = NetHelper {
        name: NAME,
        child: Some(child),
        forwarder: None,
        _exit_fd: None,
        cleanup: vec![fifo, log.clone()],
    };
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
        if let Some(c) = &mut helper.child {
            let _ = c.kill();
            let _ = c.wait();
        }
        let msg = std::fs::read_to_string(&log).unwrap_or_default();
        return Err(fail(format!(
            "it exited before the network was up: {}",
            msg.trim()
        )));
    }
    Ok(helper)
}
