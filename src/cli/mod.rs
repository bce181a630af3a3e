//! The docker-like command line: one file per command. Each turns flags
//! into a Spec or a lifecycle call; nothing here is needed by another front end.

use clap::{Parser, Subcommand};

pub mod attach;
pub mod create;
pub mod exec;
pub mod image;
pub mod images;
pub mod info;
pub mod inspect;
pub mod kill;
pub mod limits;
pub mod load;
pub mod login;
pub mod logout;
pub mod logs;
pub mod network;
pub mod policy;
pub mod port;
pub mod ps;
pub mod pull;
pub mod restart;
pub mod rm;
pub mod rmi;
pub mod run;
mod run_fast;
pub mod security;
pub mod start;
pub mod stop;
pub mod wait;

/// The top level's and `run`'s about texts, shared by [`Cli`] and the
/// `run`-only parser so the two render the same help.
const ABOUT: &str = "A rootless sandbox for untrusted code";
const RUN_ABOUT: &str = "Run a command in a new sandbox";

#[derive(Debug, Parser)]
#[command(name = "hutch", version, about = ABOUT, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    #[command(about = RUN_ABOUT)]
    Run(Box<run::RunCommand>),
    /// Create a container without starting it
    Create(Box<run::RunArgs>),
    /// Start one or more created or exited containers
    Start(start::StartArgs),
    /// Attach to a running container's output (and stdin)
    Attach(attach::AttachArgs),
    /// Stop one or more running containers (StopSignal, then SIGKILL)
    Stop(stop::StopArgs),
    /// Send a signal to one or more running containers
    Kill(kill::KillArgs),
    /// Stop and start one or more containers
    Restart(restart::RestartArgs),
    /// Remove one or more containers
    Rm(rm::RmArgs),
    /// List containers
    Ps(ps::PsArgs),
    /// List a container's published ports
    Port(port::PortArgs),
    /// Show a container's output
    Logs(logs::LogsArgs),
    /// Run a command in a running container
    Exec(exec::ExecArgs),
    /// Show containers' configuration and state as JSON
    Inspect(inspect::InspectArgs),
    /// Wait for containers to stop, then print their exit codes
    Wait(wait::WaitArgs),
    /// Show what this host offers and what hutch will use
    Info(info::InfoArgs),
    /// Check and show seccomp and Landlock policy profiles
    Policy(policy::PolicyArgs),
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

/// [`Cli`] with `run` as its only subcommand. Building clap's whole tree
/// (every command's every flag) is a large part of a short run's CPU time,
/// and a judge starts `hutch run` thousands of times; this tree is the
/// full one minus the other subcommands, so `run`'s help, errors and exit
/// codes come out the same (a test compares them).
#[derive(Debug, Parser)]
#[command(name = "hutch", version, about = ABOUT, propagate_version = true)]
struct RunOnly {
    #[command(subcommand)]
    command: RunOnlyCommand,
}

#[derive(Debug, Subcommand)]
enum RunOnlyCommand {
    #[command(about = RUN_ABOUT)]
    Run(Box<run::RunCommand>),
}

/// Parse hutch's command line: `hutch run ...` without clap where it can
/// ([`run_fast`]), else with the `run`-only parser; anything else with the
/// full one.
pub fn parse() -> Result<Cli, clap::Error> {
    parse_from(std::env::args_os())
}

pub fn parse_from<I, T>(args: I) -> Result<Cli, clap::Error>
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    let args: Vec<std::ffi::OsString> = args.into_iter().map(Into::into).collect();
    if args.get(1).is_some_and(|a| a == "run") {
        if let Some(cmd) = run_fast::parse(&args) {
            return Ok(Cli {
                command: Command::Run(Box::new(cmd)),
            });
        }
        let RunOnly {
            command: RunOnlyCommand::Run(cmd),
        } = RunOnly::try_parse_from(args)?;
        return Ok(Cli {
            command: Command::Run(cmd),
        });
    }
    Cli::try_parse_from(args)
}

/// Run the parsed command; the result is the process's exit code.
pub fn dispatch(cli: Cli) -> anyhow::Result<i32> {
    match cli.command {
        Command::Run(args) => run::run(*args),
        Command::Create(args) => create::create(*args),
        Command::Start(args) => start::start(args),
        Command::Attach(args) => attach::attach(args),
        Command::Stop(args) => stop::stop(args),
        Command::Kill(args) => kill::kill(args),
        Command::Restart(args) => restart::restart(args),
        Command::Rm(args) => rm::rm(args),
        Command::Ps(args) => ps::ps(args),
        Command::Logs(args) => logs::logs(args),
        Command::Port(args) => port::port(args),
        Command::Exec(args) => exec::exec(args),
        Command::Inspect(args) => inspect::inspect(args),
        Command::Wait(args) => wait::wait(args),
        Command::Info(args) => info::info(args),
        Command::Policy(args) => policy::policy(args),
        Command::Pull(args) => pull::pull(args),
        Command::Images(args) => images::images(args),
        Command::Rmi(args) => rmi::rmi(args),
        Command::Image(args) => image::image(args),
        Command::Load(args) => load::load(args),
        Command::Login(args) => login::login(args),
        Command::Logout(args) => logout::logout(args),
    }
}

/// An error with the exit code Docker gives it (1 for most lifecycle
/// commands, whose failures Docker reports as the daemon's).
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct Failed {
    pub code: i32,
    pub message: String,
}

/// Docker's exit code for a lifecycle command that failed.
pub const EXIT_FAILED: i32 = 1;

/// Apply `f` to each named container, as `docker stop a b c` does: print
/// each name that succeeded, report each failure on stderr, and fail with
/// exit 1 if any did.
pub fn each<E: std::fmt::Display>(
    names: &[String],
    mut f: impl FnMut(&str) -> Result<(), E>,
) -> anyhow::Result<i32> {
    let mut errors = Vec::new();
    for name in names {
        match f(name) {
            Ok(()) => println!("{name}"),
            Err(e) => errors.push(e.to_string()),
        }
    }
    match errors.len() {
        0 => Ok(0),
        _ => {
            let last = errors.pop().unwrap_or_default();
            for e in errors {
                eprintln!("hutch: {e}");
            }
            Err(Failed {
                code: EXIT_FAILED,
                message: last,
            }
            .into())
        }
    }
}

/// A single-container command's error, with Docker's exit code 1.
pub fn failed(e: impl std::fmt::Display) -> anyhow::Error {
    Failed {
        code: EXIT_FAILED,
        message: e.to_string(),
    }
    .into()
}

#[cfg(test)]
mod cli_definition_tests {
    /// clap refuses duplicate flags only in debug builds, and the suite runs
    /// in release: check every command's short and long flags here, so a
    /// merge that gives two options one letter fails a test, not a user.
    #[test]
    fn no_command_has_a_flag_twice() {
        use clap::CommandFactory;
        fn check(cmd: &clap::Command, path: &str) {
            let mut shorts = std::collections::HashSet::new();
            let mut longs = std::collections::HashSet::new();
            for a in cmd.get_arguments() {
                if let Some(s) = a.get_short() {
                    assert!(shorts.insert(s), "{path}: -{s} is defined twice");
                }
                if let Some(l) = a.get_long() {
                    assert!(
                        longs.insert(l.to_string()),
                        "{path}: --{l} is defined twice"
                    );
                }
            }
            for sub in cmd.get_subcommands() {
                check(sub, &format!("{path} {}", sub.get_name()));
            }
        }
        check(&super::Cli::command(), "hutch");
    }
}

#[cfg(test)]
mod run_parser_tests {
    use clap::Parser;

    /// What a parse came to, in a form two parsers' results compare by:
    /// the parsed command, or the error's kind, exit code, stream and text.
    fn outcome(r: Result<super::Cli, clap::Error>) -> String {
        match r {
            Ok(cli) => format!("ok {cli:?}"),
            Err(e) => format!(
                "error {:?} exit {} stderr {}\n{}",
                e.kind(),
                e.exit_code(),
                e.use_stderr(),
                e.render()
            ),
        }
    }

    /// A judge's line, the workload's own arguments after the program.
    const JUDGE: &[&str] = &[
        "run",
        "--rm",
        "--rootfs",
        "/r",
        "--policy",
        "judge",
        "--time-limit",
        "2",
        "-m",
        "256m",
        "--pids-limit",
        "64",
        "/usr/bin/hello",
        "-x",
        "--y",
    ];

    #[test]
    fn the_run_only_parser_says_what_the_full_one_says() {
        let cases: &[&[&str]] = &[
            &["run", "--rm", "--rootfs", "/r", "/usr/bin/hello"],
            JUDGE,
            &[
                "run", "-d", "-e", "A=1", "-v", "/a:/b:ro", "img", "sh", "-c", "true",
            ],
            &["run", "--help"],
            &["run", "-V"],
            &["run", "--version"],
            &["run"],
            &["run", "--bogus", "img"],
            &["run", "--rootfs"],
            &["run", "--stop-timeout", "soon", "img"],
            &["run", "--pids-limit", "many", "img"],
            &["run", "--rm", "--rm", "img"],
            // The forms the parser without clap reads, and those it leaves.
            &[
                "run",
                "--name=x",
                "--net",
                "host",
                "-P",
                "-p",
                "8080:80",
                "--dns",
                "1.1.1.1",
                "--add-host",
                "a:1.2.3.4",
                "img",
            ],
            &[
                "run",
                "-i",
                "-t",
                "-w",
                "/w",
                "-u",
                "1000:1000",
                "-h",
                "box",
                "-q",
                "--pull",
                "never",
                "--platform",
                "linux/arm64",
                "--tls-verify=false",
                "--creds",
                "u:p",
                "img",
            ],
            &[
                "run",
                "--log-opt",
                "max-size=1k",
                "--log-opt",
                "max-file=2",
                "--stop-signal",
                "SIGINT",
                "--stop-timeout",
                "3",
                "--env-file",
                "/e",
                "-e",
                "A",
                "--tmpfs",
                "/t:size=1m",
                "--read-only",
                "--entrypoint",
                "sh",
                "--userns",
                "keep-id",
                "--overlay",
                "fuse",
                "img",
                "-c",
                "x",
            ],
            &[
                "run",
                "--security-opt",
                "seccomp=unconfined",
                "--security-opt",
                "landlock=unconfined",
                "--memory-swap",
                "-1",
                "-m",
                "64m",
                "--cpus",
                "1.5",
                "--ulimit",
                "nofile=64",
                "--ulimit",
                "nproc=8:16",
                "--wall-time-limit",
                "0.5",
                "--output-limit",
                "1000",
                "--limits",
                "best-effort",
                "--report",
                "r.json",
                "--report-fd",
                "3",
                "--stdin",
                "in",
                "--stdout",
                "out",
                "--stderr",
                "err",
                "img",
            ],
            &["run", "-it", "img"],
            &["run", "--", "img"],
            &["run", "-", "x"],
            &["run", "--name", "a", "--name", "b", "img"],
            &["run", "--overlay", "kernel", "--overlay", "fuse", "img"],
            &["run", "--limits", "lax", "img"],
            &["run", "--tls-verify", "yes", "img"],
            &[
                "run",
                "--tls-verify",
                "true",
                "--tls-verify",
                "false",
                "img",
            ],
            &["run", "--time-limit", "-1", "img"],
            &["run", "--time-limit=-1", "img"],
            &["run", "--cpus", "two", "img"],
            &["run", "--report-fd", "99999999999", "img"],
            &["run", "--rm=true", "img"],
            &["run", "--name=", "img"],
            &["run", "--name", "--rm", "img"],
            &["run", "-eA=1", "img"],
            &["run", "--policy"],
            &["run", "--nam", "x", "img"],
            &["run", "-x", "img"],
            &["run", "--rm", "img", "--rm", "--", "-x"],
        ];
        for case in cases {
            let argv = std::iter::once("hutch").chain(case.iter().copied());
            let fast = outcome(super::parse_from(argv.clone()));
            let full = outcome(super::Cli::try_parse_from(argv));
            assert_eq!(fast, full, "hutch {}", case.join(" "));
        }
    }

    /// The judge's command lines never reach clap (they would cost a third
    /// of a millisecond each).
    #[test]
    fn common_run_lines_are_read_without_clap() {
        for case in [
            &["run", "--rm", "--rootfs", "/r", "/usr/bin/hello"][..],
            JUDGE,
            &[
                "run", "--stdin", "t.in", "--report", "r.json", "img", "./a.out",
            ],
            &[
                "run",
                "-d",
                "--name",
                "web",
                "-p",
                "8080:80",
                "--network=private",
                "img",
            ],
        ] {
            let argv: Vec<std::ffi::OsString> = std::iter::once("hutch")
                .chain(case.iter().copied())
                .map(Into::into)
                .collect();
            assert!(
                super::run_fast::parse(&argv).is_some(),
                "hutch {}",
                case.join(" ")
            );
        }
    }

    #[test]
    fn anything_but_run_goes_to_the_full_parser() {
        for case in [&["ps", "-a"][..], &["--help"], &["rm", "run"], &[]] {
            let argv = std::iter::once("hutch").chain(case.iter().copied());
            assert_eq!(
                outcome(super::parse_from(argv.clone())),
                outcome(super::Cli::try_parse_from(argv))
            );
        }
    }
}
