//! The `hutch` binary: parse, dispatch, and map errors to Docker's exit codes.

use clap::CommandFactory;

use hutch::container::ContainerError;
use hutch::sandbox::SandboxError;

fn main() {
    // The supervisor mode is picked before any argument parsing: it should
    // touch as little of the binary as it can, to stay small in memory.
    if std::env::args_os().nth(1).as_deref()
        == Some(std::ffi::OsStr::new(hutch::container::supervisor::MODE))
    {
        hutch::container::supervisor::main();
    }
    if std::env::args_os().nth(1).as_deref()
        == Some(std::ffi::OsStr::new(hutch::net::forward::MODE))
    {
        hutch::net::forward::main();
    }
    let cli = match hutch::cli::parse() {
        Ok(cli) => cli,
        Err(e) => {
            // Help and version go to stdout with 0; a usage error is
            // hutch's own error, 125, as Docker's CLI does, on one line.
            if !e.use_stderr() {
                let _ = e.print();
                std::process::exit(0);
            }
            if e.kind() == clap::error::ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand {
                let _ = e.print();
                std::process::exit(125);
            }
            eprintln!("hutch: {}", usage_error_line(&e));
            std::process::exit(125);
        }
    };
    let code = match hutch::cli::dispatch(cli) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("hutch: {}", chain(&err));
            if let Some(e) = err.downcast_ref::<hutch::cli::Failed>() {
                e.code
            } else if let Some(e) = err.downcast_ref::<ContainerError>() {
                e.exit_code()
            } else {
                err.downcast_ref::<SandboxError>()
                    .map(SandboxError::exit_code)
                    .unwrap_or(hutch::sandbox::error::EXIT_HUTCH)
            }
        }
    };
    std::process::exit(code);
}

/// clap's first line ("error: unexpected argument '--bogus' found") with a
/// pointer to the help of the command at hand.
fn usage_error_line(e: &clap::Error) -> String {
    let text = e.render().to_string();
    let first = text.lines().next().unwrap_or("invalid usage");
    let first = first.strip_prefix("error: ").unwrap_or(first);
    let command: Vec<String> = std::env::args()
        .skip(1)
        .take_while(|a| !a.starts_with('-'))
        .take(1)
        .collect();
    let help = match command.first() {
        Some(c)
            if hutch::cli::Cli::command()
                .get_subcommands()
                .any(|s| s.get_name() == c) =>
        {
            format!("hutch {c} --help")
        }
        _ => "hutch --help".to_string(),
    };
    format!("{first} (hint: see {help})")
}

/// The error and its causes on one line, as "outer: inner: innermost".
fn chain(err: &anyhow::Error) -> String {
    let mut out = err.to_string();
    for cause in err.chain().skip(1) {
        let c = cause.to_string();
        if !out.contains(&c) {
            out.push_str(": ");
            out.push_str(&c);
        }
    }
    // A helper's stderr inside an error may span lines; the message stays one.
    out.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join("; ")
}
