//! `hutch stop [-t SECONDS] NAME...`: the container's stop signal
//! (SIGTERM unless `--stop-signal` said otherwise), SIGKILL after the timeout.

use clap::Args;

use crate::cli::each;
use crate::container::{ops, Store};

#[derive(Debug, Args)]
pub struct StopArgs {
    /// Seconds to wait before killing (default: the container's --stop-timeout, 10)
    #[arg(
        short = 't',
        long = "time",
        visible_alias = "timeout",
        value_name = "SECONDS"
    )]
    pub time: Option<u64>,

    #[arg(value_name = "CONTAINER", required = true)]
    pub containers: Vec<String>,
}

pub fn stop(args: StopArgs) -> anyhow::Result<i32> {
    let store = Store::open()?;
    each(&args.containers, |name| ops::stop(&store, name, args.time))
}
