//! `ps ID [--format json]`: the pids of a container's processes.

use super::state::{Container, Root};
use super::R;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// table or json (a JSON array of pids, as runc prints)
    #[arg(long, short = 'f', default_value = "table")]
    pub format: String,
    pub id: String,
}

pub fn ps(root: &Root, args: &Args) -> R<i32> {
    let c = Container::open(root, &args.id)?;
    let record = c.load()?;
    let pids = match record.pidfd() {
        Some(p) => super::kill::in_pid_namespace_of(p.pid()),
        None => vec![],
    };
    let text = if args.format == "json" {
        serde_json::json!(pids).to_string()
    } else {
        std::iter::once("PID".to_string())
            .chain(pids.iter().map(|p| p.to_string()))
            .collect::<Vec<_>>()
            .join("\n")
    };
    super::print_out(&text);
    Ok(0)
}
