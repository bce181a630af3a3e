//! `hutch rm [-f] [-v] NAME...`: remove containers; a running one only
//! with `-f`, which kills it first.

use clap::Args;

use crate::cli::each;
use crate::container::{ops, Store};

#[derive(Debug, Args)]
pub struct RmArgs {
    /// Kill and remove a running container
    #[arg(short = 'f', long = "force")]
    pub force: bool,

    /// Remove anonymous volumes too (hutch makes none: accepted for Docker's sake)
    #[arg(short = 'v', long = "volumes")]
    pub volumes: bool,

    #[arg(value_name = "CONTAINER", required = true)]
    pub containers: Vec<String>,
}

pub fn rm(args: RmArgs) -> anyhow::Result<i32> {
    let store = Store::open()?;
    each(&args.containers, |name| {
        ops::remove(&store, name, args.force)
    })
}
