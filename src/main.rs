//! The `hutch` binary: parse, dispatch, and map errors to Docker's exit codes.

use clap::Parser;

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
    let cli = match hutch::cli::Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            // Help and version go to stdout with 0; a usage error is
            // hutch's own error, 125, as Docker's CLI does.
            let _ = e.print();
            std::process::exit(if e.use_stderr() { 125 } else { 0 });
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
    out
}
