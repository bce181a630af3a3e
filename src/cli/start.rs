//! `hutch start [-a] [-i] NAME...`: start created or exited containers in
//! the background. An exited container starts again on the same writable
//! layer, so what it wrote survives stop and start, as in Docker. With `-a`
//! (or `-i`, which also forwards stdin) hutch stays attached to the one
//! container it starts and returns its exit status.

use std::os::fd::{FromRawFd, OwnedFd};

use clap::Args;

use crate::cli::{each, failed};
use crate::container::attach::{self, ClientOptions, DetachKeys, Ended};
use crate::container::{supervisor, ContainerError, Status, Store};

#[derive(Debug, Args)]
pub struct StartArgs {
    /// Attach to the container's output and return its exit status
    #[arg(short = 'a', long = "attach")]
    pub attach: bool,

    /// Attach the container's stdin too (it must have been created with -i)
    #[arg(short = 'i', long = "interactive")]
    pub interactive: bool,

    /// The keys that detach from a container with a terminal
    #[arg(long = "detach-keys", value_name = "KEYS", default_value = attach::DETACH_KEYS)]
    pub detach_keys: DetachKeys,

    #[arg(value_name = "CONTAINER", required = true)]
    pub containers: Vec<String>,
}

pub fn start(args: StartArgs) -> anyhow::Result<i32> {
    let store = Store::open()?;
    if args.attach || args.interactive {
        if args.containers.len() != 1 {
            return Err(failed("start -a and start -i take exactly one container"));
        }
        let name = &args.containers[0];
        return start_attached(&store, name, args.interactive, args.detach_keys).map_err(failed);
    }
    each(&args.containers, |name| start_one(&store, name))
}

/// Start `name` unless it runs already.
pub fn start_one(store: &Store, name: &str) -> Result<(), ContainerError> {
    let mut c = store.open_locked(name)?;
    if c.state.status == Status::Running {
        return Ok(());
    }
    supervisor::launch(&mut c, None)
}

/// Start `name` with this process attached from the first byte of output
/// (a running container is attached to as it is), until it exits: its exit
/// code becomes ours.
fn start_attached(
    store: &Store,
    name: &str,
    stdin: bool,
    detach_keys: DetachKeys,
) -> Result<i32, ContainerError> {
    let mut c = store.open_locked(name)?;
    let mut opts = options(&c.config, stdin)?;
    opts.detach_keys = detach_keys.0;
    let sock = if c.state.status == Status::Running {
        connect(&c.config.id, name)?
    } else {
        let (ours, theirs) = socket_pair()
            .map_err(|e| ContainerError::io("cannot create an attach socket for", name, e))?;
        supervisor::launch(&mut c, Some(&theirs))?;
        ours
    };
    drop(c);
    // Not held while attached: the supervisor takes the lock to record the exit.
    session(store, name, sock, opts)
}

/// What an attached client forwards to container `config`.
pub fn options(
    config: &crate::container::Config,
    stdin: bool,
) -> Result<ClientOptions, ContainerError> {
    let process = &config.spec.process;
    if stdin && !process.stdin {
        return Err(ContainerError::NoStdin(config.name.clone()));
    }
    Ok(ClientOptions {
        stdin,
        tty: process.terminal,
        sig_proxy: true,
        detach_keys: DetachKeys::default().0,
    })
}

/// Connect to a running container's attach socket.
pub fn connect(id: &str, name: &str) -> Result<OwnedFd, ContainerError> {
    attach::connect(id).map_err(|e| {
        ContainerError::io(
            "cannot attach to",
            format!(
                "container {name} (only containers started with `run -d` or `start` have an attach socket)"
            ),
            e,
        )
    })
}

/// Run the attached session; the container's exit code, 0 when the user
/// detached.
pub fn session(
    store: &Store,
    name: &str,
    sock: OwnedFd,
    opts: ClientOptions,
) -> Result<i32, ContainerError> {
    let ended = attach::client(sock, opts)
        .map_err(|e| ContainerError::io("cannot relay the stdio of", name, e))?;
    match ended {
        Ended::Exited(code) => Ok(code),
        Ended::Detached => Ok(0),
        Ended::Lost => {
            // The supervisor died: the record says so once reconciled.
            let state = store.open_locked(name).map(|c| c.state).ok();
            Err(ContainerError::Lost {
                name: name.to_string(),
                reason: state
                    .and_then(|s| s.error)
                    .unwrap_or_else(|| "its supervisor closed the connection".into()),
            })
        }
    }
}

fn socket_pair() -> std::io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    // SAFETY: socketpair fills two descriptors into a valid array.
    let r = unsafe {
        libc::socketpair(
            libc::AF_UNIX,
            libc::SOCK_STREAM | libc::SOCK_CLOEXEC,
            0,
            fds.as_mut_ptr(),
        )
    };
    crate::sandbox::sys::check(r as libc::c_long)?;
    // SAFETY: two fresh descriptors owned by nobody else.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}
