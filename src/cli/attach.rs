//! `hutch attach [--no-stdin] [--sig-proxy=false] [--detach-keys KEYS]
//! CONTAINER`: attach to a running detached container's output (and stdin,
//! when it was made with `-i`) until it exits, or until the user detaches
//! (Ctrl-P Ctrl-Q, or `--detach-keys`, on a terminal; or by ending this
//! command): detaching leaves it running.

use clap::{ArgAction, Args};

use crate::cli::failed;
use crate::cli::start::{connect, options, session};
use crate::container::attach::{DetachKeys, DETACH_KEYS};
use crate::container::{ContainerError, Status, Store};

#[derive(Debug, Args)]
pub struct AttachArgs {
    /// Do not attach stdin
    #[arg(long = "no-stdin")]
    pub no_stdin: bool,

    /// Forward the signals hutch receives to the container
    #[arg(long = "sig-proxy", value_name = "BOOL", default_value_t = true, action = ArgAction::Set)]
    pub sig_proxy: bool,

    /// The keys that detach from a container with a terminal
    #[arg(long = "detach-keys", value_name = "KEYS", default_value = DETACH_KEYS)]
    pub detach_keys: DetachKeys,

    #[arg(value_name = "CONTAINER")]
    pub container: String,
}

pub fn attach(args: AttachArgs) -> anyhow::Result<i32> {
    let store = Store::open()?;
    let name = &args.container;
    let attached = (|| {
        let c = store.open_locked(name)?;
        if c.state.status != Status::Running {
            return Err(ContainerError::NotRunning(c.config.name.clone()));
        }
        let stdin = !args.no_stdin && c.config.spec.process.stdin;
        let mut opts = options(&c.config, stdin)?;
        opts.sig_proxy = args.sig_proxy;
        opts.detach_keys = args.detach_keys.0.clone();
        let id = c.config.id.clone();
        drop(c);
        let sock = connect(&id, name)?;
        session(&store, name, sock, opts)
    })();
    attached.map_err(failed)
}
