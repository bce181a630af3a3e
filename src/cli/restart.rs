//! `hutch restart [-t SECONDS] NAME...`: stop, then start on the same
//! writable layer.

use clap::Args;

use crate::cli::each;
use crate::cli::start::start_one;
use crate::container::{ops, ContainerError, Store};

#[derive(Debug, Args)]
pub struct RestartArgs {
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

pub fn restart(args: RestartArgs) -> anyhow::Result<i32> {
    let store = Store::open()?;
    each(&args.containers, |name| -> Result<(), ContainerError> {
        ops::stop(&store, name, args.time)?;
        start_one(&store, name)
    })
}
