//! `hutch logout REGISTRY`: forget the stored credentials.

use clap::Args;

use crate::image::auth;

#[derive(Debug, Args)]
pub struct LogoutArgs {
    /// The registry: HOST[:PORT]
    pub registry: String,
}

pub fn logout(args: LogoutArgs) -> anyhow::Result<i32> {
    let r = super::login::registry_ref(&args.registry)?;
    if auth::remove(&r.registry)? {
        println!("Removed login credentials for {}", r.registry);
        Ok(0)
    } else {
        eprintln!("hutch: not logged in to {}", r.registry);
        Ok(125)
    }
}
