//! `hutch restart [-t SECONDS] NAME...`: stop, then start on the same
//! writable layer.

use crate::cli::each;
use crate::cli::start::start_one;
use crate::cli::stop::StopArgs;
use crate::container::{ops, ContainerError, Store};

/// The same flags as `stop`.
pub type RestartArgs = StopArgs;

pub fn restart(args: RestartArgs) -> anyhow::Result<i32> {
    let store = Store::open()?;
    each(&args.containers, |name| -> Result<(), ContainerError> {
        ops::stop(&store, name, args.time)?;
        start_one(&store, name)
    })
}
