//! The docker-like command line: one file per command. Each turns flags
//! into a Spec or a lifecycle call; nothing here is needed by another front end.

use clap::{Parser, Subcommand};

pub mod info;
pub mod limits;
pub mod network;
pub mod run;
pub mod security;

#[derive(Debug, Parser)]
#[command(
    name = "hutch",
    version,
    about = "A rootless sandbox for untrusted code",
    propagate_version = true
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a command in a new sandbox
    Run(Box<run::RunArgs>),
    /// Show what this host offers and what hutch will use
    Info(info::InfoArgs),
}

/// Run the parsed command; the result is the process's exit code.
pub fn dispatch(cli: Cli) -> anyhow::Result<i32> {
    match cli.command {
        Command::Run(args) => run::run(*args),
        Command::Info(args) => info::info(args),
    }
}
