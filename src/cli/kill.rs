//! `hutch kill [-s SIGNAL] NAME...`: send a signal (SIGKILL by default).

use clap::Args;

use crate::cli::{each, failed};
use crate::container::{ops, record, Store};

#[derive(Debug, Args)]
pub struct KillArgs {
    /// Signal to send: a name (TERM, SIGHUP) or a number
    #[arg(
        short = 's',
        long = "signal",
        value_name = "SIGNAL",
        default_value = "KILL"
    )]
    pub signal: String,

    #[arg(value_name = "CONTAINER", required = true)]
    pub containers: Vec<String>,
}

pub fn kill(args: KillArgs) -> anyhow::Result<i32> {
    let store = Store::open()?;
    let sig = record::parse_signal(&args.signal).ok_or_else(|| {
        failed(format!(
            "invalid signal {:?} (hint: a name such as TERM or SIGHUP, or a number 1-64)",
            args.signal
        ))
    })?;
    each(&args.containers, |name| ops::kill(&store, name, sig))
}
