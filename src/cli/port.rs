//! `hutch port CONTAINER [PRIVATE_PORT[/PROTO]]`: the container's published
//! ports, as `docker port` prints them.

use clap::Args;

use crate::cli::failed;
use crate::container::Store;

#[derive(Debug, Args)]
pub struct PortArgs {
    #[arg(value_name = "CONTAINER")]
    pub container: String,
    /// Only this container port (e.g. 80 or 80/tcp)
    #[arg(value_name = "PRIVATE_PORT[/PROTO]")]
    pub port: Option<String>,
}

pub fn port(args: PortArgs) -> anyhow::Result<i32> {
    let store = Store::open()?;
    let id = store.resolve(&args.container).map_err(failed)?;
    let (config, _) = store.peek(&id).map_err(failed)?;
    let (want_port, want_proto) = match args.port.as_deref() {
        None => (None, None),
        Some(p) => {
            let (n, proto) = p.split_once('/').unwrap_or((p, "tcp"));
            let n: u16 = n
                .parse()
                .map_err(|_| failed(format!("invalid port {p:?} (hint: 80 or 80/tcp)")))?;
            (Some(n), Some(proto.to_string()))
        }
    };
    let mut found = false;
    for m in &config.spec.network.ports {
        if want_port.is_some_and(|p| p != m.container_port)
            || want_proto
                .as_deref()
                .is_some_and(|p| p != m.proto.to_string())
        {
            continue;
        }
        found = true;
        if want_port.is_some() {
            println!("{}", m.host_addr());
        } else {
            println!("{}/{} -> {}", m.container_port, m.proto, m.host_addr());
        }
    }
    if !found && want_port.is_some() {
        return Err(failed(format!(
            "no public port '{}' published for {}",
            args.port.unwrap_or_default(),
            config.name
        )));
    }
    Ok(0)
}
