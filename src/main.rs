//! The `hutch` binary: parse, dispatch, and map errors to Docker's exit codes.
// hutch's own entry point, not std's: see `main` below.
#![cfg_attr(not(test), no_main)]

use clap::CommandFactory;

use hutch::container::ContainerError;
use hutch::sandbox::SandboxError;

/// The C entry point, in place of std's start-up. std's reads
/// /proc/self/maps to place a guard below the main thread's stack and maps
/// an alternate signal stack to report an overflow of it: about 80 µs of
/// every start on a VM, and a judge starts hutch for every run. What of it
/// hutch relies on is done here: descriptors 0 to 2 open (a file hutch
/// opens must never become its stdout) and SIGPIPE ignored (a closed pipe
/// is an EPIPE error, not a silent death). The arguments still reach
/// `std::env::args`, which glibc hands to std before `main`. A stack
/// overflow on the main thread is a plain SIGSEGV, without std's message.
#[cfg(not(test))]
#[no_mangle]
pub extern "C" fn main(_argc: libc::c_int, _argv: *const *const libc::c_char) -> libc::c_int {
    start_up();
    // std's start-up turns a panic into exit status 101; here it is
    // hutch's own error, as any other.
    match std::panic::catch_unwind(run) {
        Ok(never) => match never {},
        Err(_) => std::process::exit(hutch::sandbox::error::EXIT_HUTCH),
    }
}

/// Open /dev/null on any of descriptors 0 to 2 that is closed, and ignore
/// SIGPIPE: what std's start-up does and hutch needs.
#[cfg_attr(test, allow(dead_code))]
fn start_up() {
    let mut fds = [0, 1, 2].map(|fd| libc::pollfd {
        fd,
        events: 0,
        revents: 0,
    });
    // SAFETY: three pollfd structures that outlive the call; no wait.
    let polled = unsafe { libc::poll(fds.as_mut_ptr(), 3, 0) } >= 0;
    for p in &fds {
        let closed = if polled {
            p.revents & libc::POLLNVAL != 0
        } else {
            // SAFETY: F_GETFD only reads a descriptor's flags.
            unsafe { libc::fcntl(p.fd, libc::F_GETFD) < 0 }
        };
        if !closed {
            continue;
        }
        // SAFETY: a NUL-terminated constant path; the lowest free
        // descriptor is the closed one, or the start cannot go on.
        if unsafe { libc::open(c"/dev/null".as_ptr(), libc::O_RDWR) } != p.fd {
            std::process::abort();
        }
    }
    // SAFETY: setting a standard signal's disposition to ignore.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_IGN) };
}

#[cfg_attr(test, allow(dead_code))]
fn run() -> std::convert::Infallible {
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
