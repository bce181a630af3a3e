//! `hutch wait NAME...`: block until each container stops, print its exit
//! code (-1 when it is unknown because the supervisor died).

use clap::Args;

use crate::cli::Failed;
use crate::container::{ops, Store};

#[derive(Debug, Args)]
pub struct WaitArgs {
    #[arg(value_name = "CONTAINER", required = true)]
    pub containers: Vec<String>,
}

pub fn wait(args: WaitArgs) -> anyhow::Result<i32> {
    let store = Store::open()?;
    let mut last_error = None;
    for name in &args.containers {
        match ops::wait(&store, name) {
            Ok(code) => println!("{code}"),
            Err(e) => {
                if let Some(prev) = last_error.replace(e.to_string()) {
                    eprintln!("hutch: {prev}");
                }
            }
        }
    }
    match last_error {
        None => Ok(0),
        Some(message) => Err(Failed { code: 1, message }.into()),
    }
}
