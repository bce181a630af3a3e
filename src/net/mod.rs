//! User-mode networking for sandboxes: none (loopback only, the default),
//! a private network through slirp4netns or pasta with published ports,
//! or the host's network.
//!
//! The helper is started by whoever starts the sandbox, after clone and the
//! id maps and before the workload is released, so the workload starts with
//! its network up; it is killed when the sandbox is reaped, and it dies with
//! hutch (parent-death signal, and slirp4netns's exit fd).

use std::fmt;
use std::net::{IpAddr, SocketAddr, TcpListener, UdpSocket};
use std::os::fd::OwnedFd;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use serde::{Deserialize, Serialize};

pub mod forward;
pub mod pasta;
pub mod slirp4netns;

#[derive(Debug, thiserror::Error)]
pub enum NetError {
    #[error("invalid --network {0:?} (hint: none, private, slirp4netns[:OPTIONS], pasta[:OPTIONS] or host)")]
    Mode(String),
    #[error("unknown --network option {option:?} for {backend} (hint: {hint})")]
    Option {
        backend: Backend,
        option: String,
        hint: &'static str,
    },
    #[error(
        "invalid port mapping {spec:?}: {reason} (hint: -p [IP:]HOSTPORT:CONTAINERPORT[/tcp|/udp])"
    )]
    Port { spec: String, reason: String },
    #[error("invalid {flag} {value:?} (hint: {hint})")]
    Flag {
        flag: &'static str,
        value: String,
        hint: &'static str,
    },
    #[error(
        "cannot publish {addr}/{proto}: {source} (hint: the host port is taken; choose another)"
    )]
    PortTaken {
        addr: SocketAddr,
        proto: Proto,
        source: std::io::Error,
    },
    #[error("-p needs a private network, but --network is {0} (hint: --network private)")]
    PublishNeedsNetwork(String),
    #[error("{helper} is not installed (hint: apt-get install {package}, or use --network none)")]
    Missing {
        helper: &'static str,
        package: &'static str,
    },
    #[error("cannot start {helper}: {reason}")]
    Start {
        helper: &'static str,
        reason: String,
    },
}

impl NetError {
    fn start(helper: &'static str, reason: impl Into<String>) -> NetError {
        NetError::Start {
            helper,
            reason: reason.into(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    Slirp4netns,
    Pasta,
}

impl Backend {
    /// The helper's program, and the backend's name in `--network`.
    pub fn program(self) -> &'static str {
        match self {
            Backend::Slirp4netns => "slirp4netns",
            Backend::Pasta => "pasta",
        }
    }

    /// The Debian package that installs the helper.
    pub fn package(self) -> &'static str {
        match self {
            Backend::Slirp4netns => "slirp4netns",
            Backend::Pasta => "passt",
        }
    }

    fn installed(self) -> bool {
        crate::sandbox::idmap::which(self.program()).is_some()
    }
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.program())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Proto {
    Tcp,
    Udp,
}

impl fmt::Display for Proto {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortMapping {
    pub host_ip: Option<IpAddr>,
    pub host_port: u16,
    pub container_port: u16,
    pub proto: Proto,
}

impl PortMapping {
    /// `[IP:]HOSTPORT:CONTAINERPORT[/tcp|/udp]`, as Docker's -p.
    pub fn parse(spec: &str) -> Result<PortMapping, NetError> {
        let err = |reason: &str| NetError::Port {
            spec: spec.to_string(),
            reason: reason.to_string(),
        };
        let (addr, proto) = match spec.rsplit_once('/') {
            Some((a, "tcp")) => (a, Proto::Tcp),
            Some((a, "udp")) => (a, Proto::Udp),
            Some((_, p)) => return Err(err(&format!("unknown protocol {p:?}"))),
            None => (spec, Proto::Tcp),
        };
        let port = |s: &str| -> Result<u16, NetError> {
            s.parse::<u16>()
                .ok()
                .filter(|p| *p > 0)
                .ok_or_else(|| err(&format!("{s:?} is not a port number")))
        };
        // An IPv6 host address comes in brackets: [::1]:8080:80
        let (ip, rest) = if let Some(v6) = addr.strip_prefix('[') {
            let (ip, rest) = v6.split_once("]:").ok_or_else(|| err("unclosed '['"))?;
            (Some(ip), rest)
        } else {
            match addr.matches(':').count() {
                1 => (None, addr),
                2 => {
                    let (ip, rest) = addr.split_once(':').unwrap_or_default();
                    (Some(ip), rest)
                }
                _ => return Err(err("expected HOSTPORT:CONTAINERPORT")),
            }
        };
        let host_ip = ip
            .map(|ip| {
                ip.parse::<IpAddr>()
                    .map_err(|_| err(&format!("{ip:?} is not an IP address")))
            })
            .transpose()?;
        let (h, c) = rest
            .split_once(':')
            .ok_or_else(|| err("expected HOSTPORT:CONTAINERPORT"))?;
        Ok(PortMapping {
            host_ip,
            host_port: port(h)?,
            container_port: port(c)?,
            proto,
        })
    }

    pub fn host_addr(&self) -> SocketAddr {
        SocketAddr::new(
            self.host_ip.unwrap_or(IpAddr::from([0, 0, 0, 0])),
            self.host_port,
        )
    }

    /// Fail early, with the port named, when the host port is taken.
    pub fn check_free(&self) -> Result<(), NetError> {
        let addr = self.host_addr();
        let res = match self.proto {
            Proto::Tcp => TcpListener::bind(addr).map(drop),
            Proto::Udp => UdpSocket::bind(addr).map(drop),
        };
        res.map_err(|source| NetError::PortTaken {
            addr,
            proto: self.proto,
            source,
        })
    }
}

impl fmt::Display for PortMapping {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} -> {}/{}",
            self.host_addr(),
            self.container_port,
            self.proto
        )
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase", tag = "mode")]
pub enum Mode {
    /// A new network namespace with loopback only.
    #[default]
    None,
    /// The host's network namespace: not network-isolated.
    Host,
    /// A new network namespace connected through a user-mode helper.
    Private {
        backend: Backend,
        /// Let the sandbox reach the host's loopback (off by default).
        allow_host_loopback: bool,
    },
}

/// Everything about a sandbox's network, resolved before clone.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkSpec {
    pub mode: Mode,
    pub ports: Vec<PortMapping>,
    /// Content of the sandbox's /etc/resolv.conf (None: the rootfs's own).
    pub resolv_conf: Option<String>,
    /// Extra /etc/hosts lines (--add-host).
    pub extra_hosts: Vec<(String, String)>,
    /// -P: `ports` include the image's ExposedPorts on free host ports.
    #[serde(default)]
    pub publish_all: bool,
    /// Leave the sandbox's network namespace as the kernel made it: `lo`
    /// down, the unprivileged-port sysctl unset. For runs whose policy lets
    /// no IPv4 or IPv6 socket through (`Policy::inet_sockets`), where
    /// nothing could use them and setting them up costs every run. Never
    /// for the OCI runtime: other containers (a pod's) may join its
    /// namespace under policies of their own, and runc and crun bring `lo`
    /// up.
    #[serde(default)]
    pub loopback_down: bool,
}

impl NetworkSpec {
    /// Resolve `--network`, `-p`, `--dns` and `--add-host`.
    pub fn parse(
        network: &str,
        publish: &[String],
        dns: &[String],
        add_host: &[String],
    ) -> Result<NetworkSpec, NetError> {
        let (name, options) = network.split_once(':').unwrap_or((network, ""));
        let private = |backend: Backend| -> Result<Mode, NetError> {
            let mut allow_host_loopback = false;
            for o in options.split(',').filter(|o| !o.is_empty()) {
                match (backend, o) {
                    (Backend::Slirp4netns, "allow_host_loopback=true")
                    | (Backend::Pasta, "allow_host_loopback=true" | "map-gw" | "--map-gw") => {
                        allow_host_loopback = true
                    }
                    (_, "allow_host_loopback=false") => allow_host_loopback = false,
                    _ => {
                        return Err(NetError::Option {
                            backend,
                            option: o.to_string(),
                            hint: "the only option is allow_host_loopback=true|false",
                        })
                    }
                }
            }
            Ok(Mode::Private {
                backend,
                allow_host_loopback,
            })
        };
        let mode = match name {
            "none" | "" => Mode::None,
            "host" => Mode::Host,
            "slirp4netns" => private(Backend::Slirp4netns)?,
            "pasta" => private(Backend::Pasta)?,
            "private" => private(preferred_backend())?,
            _ => return Err(NetError::Mode(network.to_string())),
        };
        if matches!(mode, Mode::None) && !options.is_empty() {
            return Err(NetError::Mode(network.to_string()));
        }
        let ports = publish
            .iter()
            .map(|p| PortMapping::parse(p))
            .collect::<Result<Vec<_>, _>>()?;
        if !ports.is_empty() && !matches!(mode, Mode::Private { .. }) {
            return Err(NetError::PublishNeedsNetwork(name.to_string()));
        }
        for d in dns {
            d.parse::<IpAddr>().map_err(|_| NetError::Flag {
                flag: "--dns",
                value: d.clone(),
                hint: "an IP address",
            })?;
        }
        let mut extra_hosts = Vec::new();
        for h in add_host {
            let (name, ip) = h
                .split_once(':')
                .filter(|(n, ip)| !n.is_empty() && ip.parse::<IpAddr>().is_ok())
                .ok_or_else(|| NetError::Flag {
                    flag: "--add-host",
                    value: h.clone(),
                    hint: "HOST:IP",
                })?;
            extra_hosts.push((name.to_string(), ip.to_string()));
        }
        let resolv_conf = if !dns.is_empty() {
            Some(dns.iter().map(|d| format!("nameserver {d}\n")).collect())
        } else {
            match &mode {
                Mode::None => None,
                Mode::Host => std::fs::read_to_string("/etc/resolv.conf").ok(),
                Mode::Private { backend, .. } => Some(format!(
                    "nameserver {}\n",
                    match backend {
                        Backend::Slirp4netns => slirp4netns::DNS,
                        Backend::Pasta => pasta::DNS,
                    }
                )),
            }
        };
        Ok(NetworkSpec {
            mode,
            ports,
            resolv_conf,
            extra_hosts,
            publish_all: false,
            loopback_down: false,
        })
    }

    /// Whether the sandbox gets its own network namespace.
    pub fn private_namespace(&self) -> bool {
        !matches!(self.mode, Mode::Host)
    }

    /// The name `info` and `inspect` report.
    pub fn describe(&self) -> String {
        match &self.mode {
            Mode::None => "none".into(),
            Mode::Host => "host".into(),
            Mode::Private { backend, .. } => backend.to_string(),
        }
    }

    /// Docker's PORTS column: `0.0.0.0:8080->80/tcp, ...`.
    pub fn ports_text(&self) -> String {
        let cells: Vec<String> = self
            .ports
            .iter()
            .map(|p| format!("{}->{}/{}", p.host_addr(), p.container_port, p.proto))
            .collect();
        cells.join(", ")
    }

    /// Docker's `NetworkSettings.Ports`: `{"80/tcp": [{"HostIp", "HostPort"}]}`.
    pub fn ports_json(&self) -> serde_json::Value {
        let mut map = serde_json::Map::new();
        for p in &self.ports {
            let binding = serde_json::json!({
                "HostIp": p.host_addr().ip().to_string(),
                "HostPort": p.host_port.to_string(),
            });
            let key = format!("{}/{}", p.container_port, p.proto);
            match map.get_mut(&key).and_then(|v| v.as_array_mut()) {
                Some(list) => list.push(binding),
                None => {
                    map.insert(key, serde_json::Value::Array(vec![binding]));
                }
            }
        }
        serde_json::Value::Object(map)
    }

    /// The sandbox's /etc/hosts.
    pub fn hosts(&self, hostname: &str) -> String {
        let own = match &self.mode {
            Mode::Private {
                backend: Backend::Slirp4netns,
                ..
            } => slirp4netns::ADDRESS,
            _ => "127.0.1.1",
        };
        let mut s = format!(
            "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n{own}\t{hostname}\n"
        );
        for (name, ip) in &self.extra_hosts {
            s.push_str(&format!("{ip}\t{name}\n"));
        }
        s
    }

    /// Before clone: every host port to publish must be free.
    pub fn check(&self) -> Result<(), NetError> {
        if let Mode::Private { backend, .. } = self.mode {
            if !backend.installed() {
                return Err(NetError::Missing {
                    helper: backend.program(),
                    package: backend.package(),
                });
            }
        }
        self.ports.iter().try_for_each(PortMapping::check_free)
    }
}

/// slirp4netns when installed, else pasta. With hutch's own forwarder for
/// published ports, slirp4netns measured faster here (bench/net.sh, README:
/// Networking): the same on published ports, and several times pasta's
/// throughput (Debian 12's passt) from the sandbox to the host, which pasta
/// moves at a rate that swings between 0.1 and 7 Gbit/s.
pub fn preferred_backend() -> Backend {
    prefer(Backend::Slirp4netns.installed(), Backend::Pasta.installed())
}

fn prefer(slirp4netns: bool, pasta: bool) -> Backend {
    match (slirp4netns, pasta) {
        (false, true) => Backend::Pasta,
        // Neither installed: check() then names the one `private` wanted.
        _ => Backend::Slirp4netns,
    }
}

/// A running network helper; killed and reaped when dropped.
///
/// `child` is hutch's own child and nothing in hutch waits for any child
/// but a named one, so its pid stays reserved (a zombie at worst) until
/// `drop` reaps it: the kill can never reach a process that reused the pid.
#[derive(Debug)]
pub struct NetHelper {
    pub name: &'static str,
    child: Child,
    /// hutch's TCP port forwarder (slirp4netns's published TCP ports).
    forwarder: Option<Child>,
    /// Closing this tells slirp4netns to exit.
    exit_fd: Option<OwnedFd>,
    /// Its stderr, read when it fails to start.
    log: PathBuf,
    /// Removed on drop: the log, and slirp4netns's API socket or pasta's FIFO.
    cleanup: Vec<PathBuf>,
}

impl NetHelper {
    /// Start `cmd`, `backend`'s helper, its stderr into `log`: in a session
    /// of its own with no signal blocked, killed when hutch dies, and (as
    /// this value) when the sandbox is reaped. `files` are removed with it.
    fn spawn(
        backend: Backend,
        mut cmd: Command,
        log: PathBuf,
        files: Vec<PathBuf>,
    ) -> Result<NetHelper, NetError> {
        let name = backend.program();
        let stderr = std::fs::File::create(&log)
            .map_err(|e| NetError::start(name, format!("{}: {e}", log.display())))?;
        let child = as_helper(&mut cmd)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .map_err(|e| match e.kind() {
                std::io::ErrorKind::NotFound => NetError::Missing {
                    helper: name,
                    package: backend.package(),
                },
                _ => NetError::start(name, e.to_string()),
            })?;
        let mut cleanup = files;
        cleanup.push(log.clone());
        Ok(NetHelper {
            name,
            child,
            forwarder: None,
            exit_fd: None,
            log,
            cleanup,
        })
    }

    /// The helper ended (or said something else than ready) before the
    /// sandbox's network was up: kill and reap it, and say why from its log.
    fn not_up(self) -> NetError {
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        let name = self.name;
        drop(self);
        NetError::start(
            name,
            format!("it exited before the network was up: {}", log.trim()),
        )
    }
}

impl Drop for NetHelper {
    fn drop(&mut self) {
        for child in self.forwarder.iter_mut().chain([&mut self.child]) {
            let _ = child.kill();
            let _ = child.wait();
        }
        for p in &self.cleanup {
            let _ = std::fs::remove_file(p);
        }
    }
}

/// Start the helper for the sandbox whose init is `pid` (still waiting to
/// be released), and return once its network is configured.
pub fn start(spec: &NetworkSpec, pid: i32, id: &str) -> Result<Option<NetHelper>, NetError> {
    match spec.mode {
        Mode::None | Mode::Host => Ok(None),
        Mode::Private {
            backend: Backend::Slirp4netns,
            allow_host_loopback,
        } => slirp4netns::start(pid, id, allow_host_loopback, &spec.ports).map(Some),
        Mode::Private {
            backend: Backend::Pasta,
            allow_host_loopback,
        } => pasta::start(pid, id, allow_host_loopback, &spec.ports).map(Some),
    }
}

/// `<runtime dir>/<helper>-<id prefix>.<ext>` for each of `exts`: the
/// helper's socket, FIFO and log, removed when the helper is dropped.
fn runtime_files<const N: usize>(
    helper: &'static str,
    id: &str,
    exts: [&str; N],
) -> Result<[PathBuf; N], NetError> {
    let runtime =
        crate::paths::runtime_dir().map_err(|e| NetError::start(helper, e.to_string()))?;
    let short = &id[..id.len().min(16)];
    Ok(exts.map(|ext| runtime.join(format!("{helper}-{short}.{ext}"))))
}

/// Make `cmd` a helper's: SIGKILL when hutch (its parent) dies, a session
/// of its own, and no signal blocked.
///
/// Its own session keeps it out of the terminal's foreground process group
/// (a Ctrl-C or Ctrl-Z meant for the workload must not take its network
/// down) and gives it its own scheduler autogroup, as Podman's helpers
/// have: in the caller's, a busy machine gives the helper, the caller's
/// shell and whatever else it runs one share of CPU between them, and
/// user-mode networking is CPU-bound.
fn as_helper(cmd: &mut Command) -> &mut Command {
    // SAFETY: prctl, setsid, sigemptyset and sigprocmask are
    // async-signal-safe and touch no memory of the parent; `none` is a
    // local sigset_t, plain data.
    unsafe {
        cmd.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            if libc::setsid() < 0 {
                return Err(std::io::Error::last_os_error());
            }
            // hutch blocks the signals it relays to the workload; a helper
            // starts with none blocked, as any program expects.
            let mut none: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut none);
            libc::sigprocmask(libc::SIG_SETMASK, &none, std::ptr::null_mut());
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_specs() {
        let p = PortMapping::parse("8080:80").unwrap();
        assert_eq!(
            (p.host_ip, p.host_port, p.container_port, p.proto),
            (None, 8080, 80, Proto::Tcp)
        );
        let p = PortMapping::parse("127.0.0.1:5353:53/udp").unwrap();
        assert_eq!(p.host_ip, Some(IpAddr::from([127, 0, 0, 1])));
        assert_eq!(p.proto, Proto::Udp);
        let p = PortMapping::parse("[::1]:8080:80").unwrap();
        assert_eq!(p.host_ip, Some("::1".parse().unwrap()));
        for bad in [
            "80",
            "a:80",
            "8080:0",
            "8080:80/sctp",
            "1.2.3:8080:80",
            "70000:80",
        ] {
            assert!(PortMapping::parse(bad).is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn private_prefers_slirp4netns_and_falls_back_to_pasta() {
        assert_eq!(prefer(true, true), Backend::Slirp4netns);
        assert_eq!(prefer(true, false), Backend::Slirp4netns);
        assert_eq!(prefer(false, true), Backend::Pasta);
        assert_eq!(prefer(false, false), Backend::Slirp4netns);
    }

    #[test]
    fn modes() {
        let n = NetworkSpec::parse("slirp4netns:allow_host_loopback=true", &[], &[], &[]).unwrap();
        assert_eq!(
            n.mode,
            Mode::Private {
                backend: Backend::Slirp4netns,
                allow_host_loopback: true
            }
        );
        assert!(NetworkSpec::parse("bridge", &[], &[], &[]).is_err());
        assert!(NetworkSpec::parse("slirp4netns:bogus", &[], &[], &[]).is_err());
        assert!(matches!(
            NetworkSpec::parse("none", &["8080:80".into()], &[], &[]),
            Err(NetError::PublishNeedsNetwork(_))
        ));
        let n =
            NetworkSpec::parse("none", &[], &["1.1.1.1".into()], &["db:10.0.0.5".into()]).unwrap();
        assert_eq!(n.resolv_conf.as_deref(), Some("nameserver 1.1.1.1\n"));
        assert!(n.hosts("box").contains("10.0.0.5\tdb\n"));
        assert!(NetworkSpec::parse("none", &[], &[], &["db".into()]).is_err());
    }
}
