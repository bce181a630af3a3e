//! Network flags shared by `run` and `create`, with Docker's names.

use clap::Args;

use crate::net::{NetError, NetworkSpec};

#[derive(Debug, Clone, Args)]
pub struct NetworkArgs {
    /// none (loopback only), private (slirp4netns, else pasta), slirp4netns[:OPTS], pasta[:OPTS], host
    #[arg(
        long = "network",
        alias = "net",
        value_name = "MODE",
        default_value = "none"
    )]
    pub network: String,

    /// Publish a port: [IP:]HOSTPORT:CONTAINERPORT[/tcp|/udp]
    #[arg(short = 'p', long = "publish", value_name = "PORTS")]
    pub publish: Vec<String>,

    /// Publish every port the image exposes on a free host port
    #[arg(short = 'P', long = "publish-all")]
    pub publish_all: bool,

    /// DNS server for the sandbox's /etc/resolv.conf
    #[arg(long = "dns", value_name = "IP")]
    pub dns: Vec<String>,

    /// Add a line to /etc/hosts: HOST:IP
    #[arg(long = "add-host", value_name = "HOST:IP")]
    pub add_host: Vec<String>,
}

impl NetworkArgs {
    /// Resolve and check (host ports free, helper installed) before clone.
    /// `exposed` are the image's ExposedPorts (`80/tcp`), published by -P.
    pub fn resolve(&self, exposed: &[String]) -> Result<NetworkSpec, NetError> {
        let mut publish = self.publish.clone();
        if self.publish_all {
            for port in exposed {
                let (n, proto) = port.split_once('/').unwrap_or((port, "tcp"));
                publish.push(format!("{}:{n}/{proto}", free_host_port(proto)?));
            }
        }
        let mut spec = NetworkSpec::parse(&self.network, &publish, &self.dns, &self.add_host)?;
        spec.publish_all = self.publish_all;
        spec.check()?;
        if !spec.private_namespace() {
            eprintln!("hutch: warning: --network host: the sandbox shares the host's network and is not network-isolated");
        }
        Ok(spec)
    }
}

/// A host port free right now (the kernel's choice), for -P.
fn free_host_port(proto: &str) -> Result<u16, NetError> {
    let any = std::net::SocketAddr::from(([0, 0, 0, 0], 0));
    let port = match proto {
        "udp" => std::net::UdpSocket::bind(any).and_then(|s| s.local_addr()),
        _ => std::net::TcpListener::bind(any).and_then(|s| s.local_addr()),
    };
    port.map(|a| a.port()).map_err(|e| NetError::Start {
        helper: "-P",
        reason: format!("no free host port: {e}"),
    })
}
