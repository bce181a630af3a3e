//! `hutch run` read without clap, for the judge's hot path.
//!
//! Building clap's parser for run's sixty options and running it costs a
//! third of a millisecond of every run, most of it in code and data touched
//! for the first time. This reads the plain forms (`--opt VALUE`,
//! `--opt=VALUE`, `-o VALUE`, single short flags) and gives up, returning
//! `None`, on anything else: help and version, an unknown or repeated
//! option, a value clap would refuse, combined short flags (`-it`), `--`,
//! a value that starts with `-`. clap then parses the whole line, so
//! help, errors and the rarer forms are clap's own. The tests in
//! `cli::run_parser_tests` check that both parsers agree.

use std::ffi::OsString;
use std::path::PathBuf;

use super::limits::LimitArgs;
use super::network::NetworkArgs;
use super::pull::RegistryArgs;
use super::run::{RunArgs, RunCommand};
use super::security::SecurityArgs;

/// The options that take no value.
const FLAGS: &[&str] = &[
    "detach",
    "rm",
    "read-only",
    "interactive",
    "tty",
    "quiet",
    "publish-all",
];

/// The options that take a value and may be given once.
const ONCE: &[&str] = &[
    "rootfs",
    "name",
    "stop-signal",
    "stop-timeout",
    "workdir",
    "user",
    "hostname",
    "entrypoint",
    "userns",
    "overlay",
    "policy",
    "memory",
    "memory-swap",
    "pids-limit",
    "cpus",
    "time-limit",
    "wall-time-limit",
    "output-limit",
    "limits",
    "report",
    "report-fd",
    "stdin",
    "stdout",
    "stderr",
    "pull",
    "platform",
    "tls-verify",
    "creds",
    "network",
];

/// The options that take a value and may be repeated.
const MANY: &[&str] = &[
    "log-opt",
    "env",
    "env-file",
    "volume",
    "tmpfs",
    "security-opt",
    "ulimit",
    "publish",
    "dns",
    "add-host",
];

/// `argv` (`hutch run ...`) as clap would parse it, or `None` where clap
/// must decide.
pub fn parse(argv: &[OsString]) -> Option<RunCommand> {
    let argv: Vec<&str> = argv.iter().map(|a| a.to_str()).collect::<Option<_>>()?;
    let mut cmd = RunCommand {
        detach: false,
        args: RunArgs::defaults(),
    };
    let mut seen: Vec<&'static str> = Vec::new();
    let mut i = 2;
    while i < argv.len() {
        let arg = argv[i];
        if !arg.starts_with('-') || arg == "-" {
            // The image (or rootfs) and the command: everything from here
            // on, as it stands.
            cmd.args.args = argv[i..].iter().map(|a| a.to_string()).collect();
            break;
        }
        let (name, inline) = match arg.strip_prefix("--") {
            Some(long) => match long.split_once('=') {
                Some((n, v)) => (long_name(n)?, Some(v)),
                None => (long_name(long)?, None),
            },
            None => (short_name(&arg[1..])?, None),
        };
        if !MANY.contains(&name) {
            if seen.contains(&name) {
                return None;
            }
            seen.push(name);
        }
        if FLAGS.contains(&name) {
            if inline.is_some() {
                return None;
            }
            set_flag(&mut cmd, name);
        } else {
            let value = match inline {
                Some(v) => v,
                None => {
                    i += 1;
                    argv.get(i)?
                }
            };
            let hyphen_ok = name == "memory-swap";
            if value.is_empty() || (value.starts_with('-') && !hyphen_ok) {
                return None;
            }
            set_value(&mut cmd.args, name, value)?;
        }
        i += 1;
    }
    Some(cmd)
}

/// A long option's name as the tables spell it.
fn long_name(name: &str) -> Option<&'static str> {
    if name == "net" {
        return Some("network");
    }
    FLAGS
        .iter()
        .chain(ONCE)
        .chain(MANY)
        .find(|n| **n == name)
        .copied()
}

/// A single short option's long name; `None` for anything longer (a
/// group of flags, or a value attached).
fn short_name(short: &str) -> Option<&'static str> {
    let mut chars = short.chars();
    let (Some(c), None) = (chars.next(), chars.next()) else {
        return None;
    };
    Some(match c {
        'd' => "detach",
        'e' => "env",
        'w' => "workdir",
        'u' => "user",
        'h' => "hostname",
        'v' => "volume",
        'i' => "interactive",
        't' => "tty",
        'm' => "memory",
        'q' => "quiet",
        'p' => "publish",
        'P' => "publish-all",
        _ => return None,
    })
}

fn set_flag(cmd: &mut RunCommand, name: &str) {
    let a = &mut cmd.args;
    match name {
        "detach" => cmd.detach = true,
        "rm" => a.rm = true,
        "read-only" => a.read_only = true,
        "interactive" => a.interactive = true,
        "tty" => a.tty = true,
        "quiet" => a.quiet = true,
        "publish-all" => a.network.publish_all = true,
        _ => unreachable!("{name} is not in FLAGS"),
    }
}

/// Store `value` of option `name`; `None` where clap would refuse it.
fn set_value(a: &mut RunArgs, name: &str, value: &str) -> Option<()> {
    let s = || Some(value.to_string());
    let path = || Some(PathBuf::from(value));
    let l = &mut a.limits;
    match name {
        "rootfs" => a.rootfs = path(),
        "name" => a.name = s(),
        "stop-signal" => a.stop_signal = s(),
        "stop-timeout" => a.stop_timeout = Some(value.parse().ok()?),
        "workdir" => a.workdir = s(),
        "user" => a.user = s(),
        "hostname" => a.hostname = s(),
        "entrypoint" => a.entrypoint = s(),
        "userns" => a.userns = s(),
        "overlay" => a.overlay = value.to_string(),
        "policy" => a.security.policy = s(),
        "memory" => l.memory = s(),
        "memory-swap" => l.memory_swap = s(),
        "pids-limit" => l.pids_limit = Some(value.parse().ok()?),
        "cpus" => l.cpus = Some(value.parse().ok()?),
        "time-limit" => l.time_limit = Some(value.parse().ok()?),
        "wall-time-limit" => l.wall_time_limit = Some(value.parse().ok()?),
        "output-limit" => l.output_limit = s(),
        "limits" if ["strict", "best-effort"].contains(&value) => l.limits_mode = value.to_string(),
        "limits" => return None,
        "report" => l.report = path(),
        "report-fd" => l.report_fd = Some(value.parse().ok()?),
        "stdin" => l.stdin_file = path(),
        "stdout" => l.stdout_file = path(),
        "stderr" => l.stderr_file = path(),
        "pull" => a.pull = value.to_string(),
        "platform" => a.registry.platform = s(),
        "tls-verify" => a.registry.tls_verify = bool_value(value)?,
        "creds" => a.registry.creds = s(),
        "network" => a.network.network = value.to_string(),
        "log-opt" => a.log_opt.push(value.to_string()),
        "env" => a.env.push(value.to_string()),
        "env-file" => a.env_file.push(PathBuf::from(value)),
        "volume" => a.volume.push(value.to_string()),
        "tmpfs" => a.tmpfs.push(value.to_string()),
        "security-opt" => a.security.security_opt.push(value.to_string()),
        "ulimit" => l.ulimit.push(value.to_string()),
        "publish" => a.network.publish.push(value.to_string()),
        "dns" => a.network.dns.push(value.to_string()),
        "add-host" => a.network.add_host.push(value.to_string()),
        _ => unreachable!("{name} is not in ONCE or MANY"),
    }
    Some(())
}

/// clap's `bool` values: exactly `true` or `false`.
fn bool_value(value: &str) -> Option<bool> {
    match value {
        "true" => Some(true),
        "false" => Some(false),
        _ => None,
    }
}

impl RunArgs {
    /// Every option unset, at clap's defaults.
    fn defaults() -> RunArgs {
        RunArgs {
            help: None,
            rootfs: None,
            rm: false,
            pool_cgroup: false,
            name: None,
            log_opt: Vec::new(),
            stop_signal: None,
            stop_timeout: None,
            env: Vec::new(),
            env_file: Vec::new(),
            workdir: None,
            user: None,
            hostname: None,
            volume: Vec::new(),
            tmpfs: Vec::new(),
            read_only: false,
            interactive: false,
            tty: false,
            entrypoint: None,
            userns: None,
            overlay: "auto".into(),
            security: SecurityArgs {
                policy: None,
                security_opt: Vec::new(),
            },
            limits: LimitArgs {
                memory: None,
                memory_swap: None,
                pids_limit: None,
                cpus: None,
                ulimit: Vec::new(),
                time_limit: None,
                wall_time_limit: None,
                output_limit: None,
                limits_mode: "strict".into(),
                report: None,
                report_fd: None,
                stdin_file: None,
                stdout_file: None,
                stderr_file: None,
            },
            pull: "missing".into(),
            registry: RegistryArgs {
                platform: None,
                tls_verify: true,
                creds: None,
            },
            quiet: false,
            network: NetworkArgs {
                network: "none".into(),
                publish: Vec::new(),
                publish_all: false,
                dns: Vec::new(),
                add_host: Vec::new(),
            },
            args: Vec::new(),
        }
    }
}
