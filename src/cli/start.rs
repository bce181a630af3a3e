//! `hutch start [-a] NAME...`: start created or exited containers in the
//! background. An exited container starts again on the same writable
//! layer, so what it wrote survives stop and start, as in Docker.

use std::io::{Seek, SeekFrom};

use clap::Args;

use crate::cli::{each, failed};
use crate::container::{log, supervisor, ContainerError, Status, Store};

#[derive(Debug, Args)]
pub struct StartArgs {
    /// Attach to the container's output and return its exit status
    #[arg(short = 'a', long = "attach")]
    pub attach: bool,

    /// Attach the container's stdin (not supported for background containers yet)
    #[arg(short = 'i', long = "interactive")]
    pub interactive: bool,

    #[arg(value_name = "CONTAINER", required = true)]
    pub containers: Vec<String>,
}

pub fn start(args: StartArgs) -> anyhow::Result<i32> {
    let store = Store::open()?;
    if args.interactive {
        return Err(failed(
            "start -i: attaching stdin to a background container is not supported yet (hint: `hutch exec -i CONTAINER CMD`, or `hutch run -i` in the foreground)",
        ));
    }
    if args.attach {
        if args.containers.len() != 1 {
            return Err(failed("start -a takes exactly one container"));
        }
        return start_attached(&store, &args.containers[0]).map_err(failed);
    }
    each(&args.containers, |name| start_one(&store, name))
}

/// Start `name` unless it runs already.
pub fn start_one(store: &Store, name: &str) -> Result<(), ContainerError> {
    let mut c = store.open_locked(name)?;
    if c.state.status == Status::Running {
        return Ok(());
    }
    supervisor::launch(&mut c)
}

/// Start and follow the output until the container ends; its exit code
/// becomes ours.
fn start_attached(store: &Store, name: &str) -> Result<i32, ContainerError> {
    let id = store.resolve(name)?;
    let dir = store.container_dir(&id);
    // Everything already in the log is from earlier runs: skip it.
    let mut current = log::open_current(&dir);
    if let Some(f) = &mut current {
        let _ = f.seek(SeekFrom::End(0));
    }
    start_one(store, &id)?;
    let pidfd = store.read_state(&id)?.supervisor.and_then(|p| p.open());
    log::follow(
        &dir,
        current,
        Vec::new(),
        pidfd.as_ref(),
        &log::Show::default(),
    )
    .map_err(|e| ContainerError::io("cannot follow the log of", &dir, e))?;
    let state = store.open_locked(&id)?.state;
    Ok(state.exit_code.unwrap_or(crate::sandbox::error::EXIT_HUTCH))
}
