//! `hutch policy`: check a profile file, show a shipped one.

use clap::{Args, Subcommand};

use crate::policy::{Choice, Policy, SeccompChoice, SHIPPED};

#[derive(Debug, Args)]
pub struct PolicyArgs {
    #[command(subcommand)]
    pub command: PolicyCommand,
}

#[derive(Debug, Subcommand)]
pub enum PolicyCommand {
    /// Validate a profile (hutch TOML, or Docker/OCI seccomp JSON with --json)
    /// and print what it will enforce on this kernel
    Check {
        /// The file is a Docker or OCI seccomp JSON profile
        #[arg(long)]
        json: bool,
        /// A profile file, or the name of a shipped one
        #[arg(value_name = "FILE")]
        file: String,
    },
    /// Print a shipped profile
    Show {
        /// default, judge or unconfined
        #[arg(value_name = "NAME")]
        name: String,
    },
    /// List the shipped profiles
    List,
}

pub fn policy(args: PolicyArgs) -> anyhow::Result<i32> {
    match args.command {
        PolicyCommand::Check { json, file } => {
            let choice = if json {
                Choice {
                    seccomp: SeccompChoice::DockerJson(file.clone().into()),
                    ..Choice::default()
                }
            } else {
                Choice {
                    profile: Some(file.clone()),
                    ..Choice::default()
                }
            };
            let policy = Policy::resolve(&choice)?;
            println!("{file}: ok");
            for line in &policy.report {
                println!("{line}");
            }
            for w in &policy.warnings {
                println!("warning: {w}");
            }
            Ok(0)
        }
        PolicyCommand::Show { name } => {
            let Some((_, text)) = SHIPPED.iter().find(|(n, _)| *n == name) else {
                anyhow::bail!(crate::policy::PolicyError::UnknownName(name));
            };
            print!("{text}");
            Ok(0)
        }
        PolicyCommand::List => {
            for (name, text) in SHIPPED {
                let description = text
                    .lines()
                    .find_map(|l| l.strip_prefix("description = "))
                    .unwrap_or("")
                    .trim_matches('"');
                println!("{name:<12} {description}");
            }
            Ok(0)
        }
    }
}
