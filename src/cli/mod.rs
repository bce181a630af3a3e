//! The docker-like command line: one file per command. Each turns flags
//! into a Spec or a lifecycle call; nothing here is needed by another front end.

use clap::{Parser, Subcommand};

pub mod image;
pub mod images;
pub mod info;
pub mod limits;
pub mod load;
pub mod login;
pub mod logout;
pub mod pull;
pub mod rmi;
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
    /// Pull an image from a registry
    Pull(pull::PullArgs),
    /// List images
    Images(images::ImagesArgs),
    /// Remove images
    Rmi(rmi::RmiArgs),
    /// Manage images
    Image(image::ImageArgs),
    /// Load images from an OCI or docker archive
    Load(load::LoadArgs),
    /// Log in to a registry
    Login(login::LoginArgs),
    /// Log out of a registry
    Logout(logout::LogoutArgs),
}

/// Run the parsed command; the result is the process's exit code.
pub fn dispatch(cli: Cli) -> anyhow::Result<i32> {
    match cli.command {
        Command::Run(args) => run::run(*args),
        Command::Info(args) => info::info(args),
        Command::Pull(args) => pull::pull(args),
        Command::Images(args) => images::images(args),
        Command::Rmi(args) => rmi::rmi(args),
        Command::Image(args) => image::image(args),
        Command::Load(args) => load::load(args),
        Command::Login(args) => login::login(args),
        Command::Logout(args) => logout::logout(args),
    }
}
