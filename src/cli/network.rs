//! Network flags shared by `run` and `create`, with Docker's names.

use clap::Args;

use crate::net::{NetError, NetworkSpec};

#[derive(Debug, Clone, Args)]
pub struct NetworkArgs {
    /// none (loopback only), private (pasta, else slirp4netns), slirp4netns[:OPTS], pasta[:OPTS], host
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

    /// DNS server for the sandbox's /etc/resolv.conf
    #[arg(long = "dns", value_name = "IP")]
    pub dns: Vec<String>,

    /// Add a line to /etc/hosts: HOST:IP
    #[arg(long = "add-host", value_name = "HOST:IP")]
    pub add_host: Vec<String>,
}

impl NetworkArgs {
    /// Resolve and check (host ports free, helper installed) before clone.
    pub fn resolve(&self) -> Result<NetworkSpec, NetError> {
        let spec = NetworkSpec::parse(&self.network, &self.publish, &self.dns, &self.add_host)?;
        spec.check()?;
        if !spec.private_namespace() {
            eprintln!("hutch: warning: --network host: the sandbox shares the host's network and is not network-isolated");
        }
        Ok(spec)
    }
}
