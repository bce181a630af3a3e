//! `hutch run`: flags with Docker's names and meanings, turned into a Spec.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use clap::{ArgAction, Args};

use crate::cli::limits::{JudgeArgsError, LimitArgs};
use crate::cli::network::NetworkArgs;
use crate::cli::pull::RegistryArgs;
use crate::cli::security::SecurityArgs;
use crate::container::record::parse_signal;
use crate::image::manifest::RunConfig;
use crate::image::{self, PullPolicy};
use crate::net::NetworkSpec;
use crate::paths;
use crate::sandbox::attach;
use crate::sandbox::idmap::{IdMapping, UsernsMode};
use crate::sandbox::limits::Enforcement;
use crate::sandbox::passwd::{self, RootFiles};
use crate::sandbox::report::Report;
use crate::sandbox::spawn::Exit;
use crate::sandbox::spec::{
    Mount, OverlayDriver, Process, RootSource, Spec, UpperDir, DEFAULT_PATH,
};

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(
        "rootfs {path}: {reason} (hint: give a directory holding a root filesystem, or `host`)"
    )]
    Rootfs { path: PathBuf, reason: String },
    #[error(
        "no root filesystem given (hint: `hutch run --rootfs DIR CMD` or `hutch run host CMD`)"
    )]
    NoRoot,
    #[error(transparent)]
    Image(#[from] crate::image::ImageError),
    #[error(
        "no command specified: the image has no Entrypoint or Cmd (hint: hutch run IMAGE COMMAND)"
    )]
    NoCommand,
    #[error("{0}")]
    Flag(String),
    #[error("cannot write {path}: {reason}")]
    Record { path: PathBuf, reason: String },
    #[error("invalid volume spec {spec:?}: {reason} (hint: -v /host/path:/container/path[:ro])")]
    Volume { spec: String, reason: String },
    #[error("invalid tmpfs spec {spec:?}: {reason} (hint: --tmpfs /path[:size=64m,mode=1777])")]
    Tmpfs { spec: String, reason: String },
    #[error("invalid environment variable {0:?} (hint: -e NAME=VALUE)")]
    Env(String),
    #[error("cannot read env file {path}: {source}")]
    EnvFile {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("workdir {0:?} must be an absolute path")]
    Workdir(String),
    #[error("invalid --overlay {0:?} (hint: auto, kernel or fuse)")]
    Overlay(String),
    #[error(transparent)]
    User(#[from] passwd::UserError),
    #[error("user {uid}:{gid} is not mapped in the sandbox's user namespace (hint: --userns=auto with a subuid range in /etc/subuid maps 65536 ids; --userns=single maps only root)")]
    Unmapped { uid: u32, gid: u32 },
    #[error(transparent)]
    Paths(#[from] paths::PathsError),
    #[error(transparent)]
    Policy(#[from] crate::policy::PolicyError),
    #[error(transparent)]
    Limits(#[from] JudgeArgsError),
    #[error(transparent)]
    LimitPlan(#[from] crate::sandbox::limits::LimitError),
    #[error(transparent)]
    Network(#[from] crate::net::NetError),
    #[error(transparent)]
    Idmap(#[from] crate::sandbox::idmap::IdmapError),
}

#[derive(Debug, Args)]
#[command(disable_help_flag = true)]
pub struct RunArgs {
    /// Print help
    #[arg(long, action = ArgAction::Help)]
    pub(crate) help: Option<bool>,

    /// Use DIR as the root filesystem (never modified: writes go to an overlay)
    #[arg(long, value_name = "DIR")]
    pub rootfs: Option<PathBuf>,

    /// Remove the sandbox's writable layer when it exits
    #[arg(long)]
    pub rm: bool,

    /// Not an option: set for a foreground `--rm` run, whose cgroup may
    /// come from the pool (its init gets a keeper, which holds the slot
    /// until init is reaped).
    #[arg(skip)]
    pub pool_cgroup: bool,

    /// Name the container (default: a generated name)
    #[arg(long = "name", value_name = "NAME")]
    pub name: Option<String>,

    /// Log options of the json-file driver: max-size=SIZE, max-file=N
    #[arg(long = "log-opt", value_name = "OPT=VALUE")]
    pub log_opt: Vec<String>,

    /// Signal that `stop` sends first (default SIGTERM)
    #[arg(long = "stop-signal", value_name = "SIGNAL")]
    pub stop_signal: Option<String>,

    /// Seconds `stop` waits before SIGKILL (default 10)
    #[arg(long = "stop-timeout", value_name = "SECONDS")]
    pub stop_timeout: Option<u64>,

    /// Set an environment variable (NAME=VALUE, or NAME to copy it from here)
    #[arg(short = 'e', long = "env", value_name = "NAME[=VALUE]")]
    pub env: Vec<String>,

    /// Read environment variables from a file of NAME=VALUE lines
    #[arg(long = "env-file", value_name = "FILE")]
    pub env_file: Vec<PathBuf>,

    /// Working directory inside the sandbox
    #[arg(short = 'w', long = "workdir", value_name = "DIR")]
    pub workdir: Option<String>,

    /// Run as this user: NAME|UID[:GROUP|GID]
    #[arg(short = 'u', long = "user", value_name = "USER")]
    pub user: Option<String>,

    /// The sandbox's hostname (default: the first 12 digits of its id)
    #[arg(short = 'h', long = "hostname", value_name = "NAME")]
    pub hostname: Option<String>,

    /// Bind a host path: SRC:DST[:ro|rw]
    #[arg(short = 'v', long = "volume", value_name = "SRC:DST[:ro]")]
    pub volume: Vec<String>,

    /// Mount a tmpfs: DST[:size=N,mode=OCTAL]
    #[arg(long = "tmpfs", value_name = "DST[:OPTS]")]
    pub tmpfs: Vec<String>,

    /// Make the root filesystem read-only
    #[arg(long = "read-only")]
    pub read_only: bool,

    /// Keep stdin open and forward it
    #[arg(short = 'i', long = "interactive")]
    pub interactive: bool,

    /// Allocate a pseudo-terminal
    #[arg(short = 't', long = "tty")]
    pub tty: bool,

    /// Override the command's executable
    #[arg(long = "entrypoint", value_name = "CMD")]
    pub entrypoint: Option<String>,

    /// User namespace: auto (subuid range if any, else one uid), keep-id,
    /// single [default: auto; single under --policy judge when the run's
    /// user is root]
    #[arg(long = "userns", value_name = "MODE")]
    pub userns: Option<String>,

    /// Overlay implementation: auto (kernel, else fuse-overlayfs), kernel, fuse
    #[arg(long = "overlay", value_name = "DRIVER", default_value = "auto")]
    pub overlay: String,

    #[command(flatten)]
    pub security: SecurityArgs,

    #[command(flatten)]
    pub limits: LimitArgs,
    /// Pull the image: missing (when not in the store), always, never
    #[arg(long = "pull", value_name = "POLICY", default_value = "missing")]
    pub pull: String,

    #[command(flatten)]
    pub registry: RegistryArgs,

    /// No pull progress
    #[arg(short = 'q', long = "quiet")]
    pub quiet: bool,

    #[command(flatten)]
    pub network: NetworkArgs,

    /// ROOTFS (`host`) or IMAGE, then the command and its arguments
    #[arg(
        trailing_var_arg = true,
        value_name = "ROOTFS|IMAGE [COMMAND [ARG...]]"
    )]
    pub args: Vec<String>,
}

/// `run`: the options of `create`, plus `-d`.
#[derive(Debug, Args)]
pub struct RunCommand {
    /// Run in the background and print the container's id
    #[arg(short = 'd', long = "detach")]
    pub detach: bool,

    #[command(flatten)]
    pub args: RunArgs,
}

pub fn run(cmd: RunCommand) -> anyhow::Result<i32> {
    if cmd.detach {
        return crate::cli::create::run_detached(cmd.args);
    }
    let mut args = cmd.args;
    args.pool_cgroup = args.rm;
    let judged = args.limits.wants_report();
    let mut foreground = Foreground {
        rm: args.rm,
        ..Foreground::default()
    };
    let started = crate::cli::create::foreground_spec(&args).and_then(|(spec, pending)| {
        let io = match args.limits.open_io() {
            Ok(io) => io,
            Err(e) => {
                if let Some(p) = &pending {
                    p.discard();
                }
                return Err(e.into());
            }
        };
        foreground.pending = pending;
        let outcome = attach::run_observed(&spec, io, &mut foreground);
        if let Some(p) = foreground.pending.take() {
            // The sandbox failed before it was recorded.
            p.discard();
        }
        Ok((outcome, spec))
    });
    if let Some(r) = foreground.recorded.take() {
        let exit = match &started {
            Ok((Ok(outcome), _)) => Ok(outcome.exit),
            Ok((Err(e), _)) => Err(e.to_string()),
            Err(e) => Err(format!("{e:#}")),
        };
        r.finish(exit)?;
    }
    if let Some(e) = foreground.finish_error.take() {
        return Err(e.into());
    }
    match started {
        Ok((Ok(outcome), spec)) => {
            if judged {
                args.limits
                    .write_report(&Report::from_outcome(&outcome, &spec.limits))?;
            }
            Ok(outcome.exit.code())
        }
        Ok((Err(e), spec)) => {
            if judged {
                args.limits
                    .write_report(&Report::sandbox_error(e.to_string(), Some(&spec.limits)))?;
            }
            if let Some(cg) = &spec.limits.cgroup {
                cg.remove();
            }
            Err(e.into())
        }
        Err(e) => {
            if judged {
                args.limits
                    .write_report(&Report::sandbox_error(format!("{e:#}"), None))?;
            }
            Err(e)
        }
    }
}

/// A foreground run's container record, kept in step with its sandbox.
#[derive(Default)]
struct Foreground {
    /// Prepared, written once init exists (while the root is being built).
    pending: Option<crate::cli::create::Pending>,
    recorded: Option<crate::cli::create::Attached>,
    /// Removing an `--rm` record when the workload ended failed.
    finish_error: Option<crate::container::ContainerError>,
    /// `--rm`: nothing waits to start this sandbox again, so hutch may
    /// return before init has exited.
    rm: bool,
}

impl attach::Observer for Foreground {
    fn released(&mut self, init_pid: i32) -> Result<(), String> {
        if let Some(p) = self.pending.take() {
            self.recorded = Some(p.record(init_pid).map_err(|e| e.to_string())?);
        }
        Ok(())
    }

    /// An `--rm` record goes while init's namespaces are torn down (with
    /// a keeper, only its name and config.json: the container is gone,
    /// and the keeper removes the rest after hutch's exit). A kept one is
    /// marked exited only once init is gone: until then its mounts still
    /// hold the writable layer a `start` would mount again.
    fn ended(&mut self, exit: Exit, kept: bool) {
        if self.recorded.as_ref().is_some_and(|r| r.auto_remove()) {
            if let Some(r) = self.recorded.take() {
                let done = if kept { r.retire() } else { r.finish(Ok(exit)) };
                self.finish_error = done.err();
            }
        }
    }

    fn detach_teardown(&self) -> bool {
        self.rm
    }

    /// Asked before the sandbox starts: of the record about to be made.
    fn leftovers(&self) -> Vec<crate::sandbox::teardown::Step> {
        self.pending
            .as_ref()
            .filter(|p| p.auto_remove())
            .map_or_else(Vec::new, |p| p.leftovers())
    }
}

/// Build and validate everything the sandbox needs, before any clone.
pub fn build_spec(args: &RunArgs) -> Result<Spec, RunError> {
    let mut positional = args.args.iter();
    let mut image_config = RunConfig::default();
    let mut image_id = None;
    let (root, root_files) = match &args.rootfs {
        Some(dir) => {
            let dir = check_rootfs(dir)?;
            (
                RootSource::Layers(vec![dir.clone()]),
                RootFiles::new(vec![dir]),
            )
        }
        None => match positional.next().map(String::as_str) {
            Some("host") => (RootSource::Host, RootFiles::new(vec![PathBuf::from("/")])),
            Some(name) => {
                let policy: PullPolicy = args.pull.parse().map_err(RunError::Flag)?;
                let opts = args
                    .registry
                    .options(args.quiet)
                    .map_err(|e| RunError::Flag(e.to_string()))?;
                // Pulling forks the store helper; this process stays
                // single-threaded for the sandbox's clone.
                let img = image::prepare(name, policy, &opts)?;
                image_config = img.config.config.clone();
                image_id = Some(img.record.id.to_string());
                (
                    RootSource::Layers(img.layers.clone()),
                    RootFiles::new(img.layers),
                )
            }
            None => return Err(RunError::NoRoot),
        },
    };
    let given: Vec<String> = positional.cloned().collect();
    let mut command = image_command(&image_config, args.entrypoint.as_deref(), given);
    if command.is_empty() {
        if image_id.is_some() {
            return Err(RunError::NoCommand);
        }
        command.push("/bin/sh".into());
    }

    let explicit: Option<UsernsMode> = args.userns.as_deref().map(str::parse).transpose()?;
    let judge_default = explicit.is_none() && single_suits_judge(args);
    let mut idmap = IdMapping::resolve(explicit.unwrap_or(if judge_default {
        UsernsMode::Single
    } else {
        UsernsMode::Auto
    }));
    let user_spec = args
        .user
        .clone()
        .or_else(|| image_config.user.clone())
        .unwrap_or_default();
    let mut resolved = passwd::resolve(
        &user_spec,
        &root_files,
        idmap.default_uid,
        idmap.default_gid,
    )?;
    if judge_default && !(idmap.maps_uid(resolved.user.uid) && idmap.maps_gid(resolved.user.gid)) {
        // A judge run as a user other than root needs the subuid range.
        idmap = IdMapping::resolve(UsernsMode::Auto);
        resolved = passwd::resolve(
            &user_spec,
            &root_files,
            idmap.default_uid,
            idmap.default_gid,
        )?;
    }
    let user = resolved.user;
    if !idmap.maps_uid(user.uid) || !idmap.maps_gid(user.gid) {
        return Err(RunError::Unmapped {
            uid: user.uid,
            gid: user.gid,
        });
    }

    let id = new_id();
    let hostname = args
        .hostname
        .clone()
        .unwrap_or_else(|| id[..12].to_string());
    let env = environment(
        args,
        &hostname,
        &resolved.home,
        image_config.env.as_deref().unwrap_or_default(),
    )?;
    let cwd = match (&args.workdir, &image_config.working_dir) {
        (Some(w), _) if !w.starts_with('/') => return Err(RunError::Workdir(w.clone())),
        (Some(w), _) => PathBuf::from(w),
        // An image's relative WorkingDir is taken from `/`, as Docker does.
        (None, Some(w)) if !w.is_empty() => Path::new("/").join(w),
        (None, _) => PathBuf::from("/"),
    };
    let stop_signal = image_config
        .stop_signal
        .as_deref()
        .and_then(parse_signal)
        .unwrap_or(libc::SIGTERM);

    let mut mounts = Vec::new();
    for v in &args.volume {
        mounts.push(parse_volume(v)?);
    }
    for t in &args.tmpfs {
        mounts.push(parse_tmpfs(t)?);
    }

    let overlay = match args.overlay.as_str() {
        "auto" => OverlayDriver::Auto,
        "kernel" => OverlayDriver::Kernel,
        "fuse" => OverlayDriver::Fuse,
        other => return Err(RunError::Overlay(other.to_string())),
    };
    let upper = if args.rm || matches!(root, RootSource::Host) {
        UpperDir::Ephemeral
    } else {
        let dir = paths::data_dir()?.join("containers").join(&id);
        let (upper, work) = (dir.join("upper"), dir.join("work"));
        for d in [&upper, &work] {
            paths::create_private(d)?;
        }
        // The overlay's root takes the upper dir's mode: 0755 as an image's
        // `/`, or users other than root cannot enter it. The container's
        // directory above stays private.
        std::fs::set_permissions(&upper, std::fs::Permissions::from_mode(0o755)).map_err(
            |source| paths::PathsError::Create {
                path: upper.clone(),
                source,
            },
        )?;
        UpperDir::Persistent { upper, work }
    };

    let policy = args.security.resolve()?;
    Ok(Spec {
        id: id.clone(),
        root,
        upper,
        overlay,
        readonly_root: args.read_only,
        hostname,
        mounts,
        idmap,
        process: Process {
            args: command,
            env,
            cwd,
            user,
            terminal: args.tty,
            stdin: args.interactive,
            stop_signal,
        },
        network: NetworkSpec {
            loopback_down: !policy.inet_sockets,
            ..args.network.resolve(&exposed_ports(&image_config))?
        },
        policy,
        // Last: this may create the sandbox's cgroup.
        limits: Enforcement::plan(&args.limits.limits()?, &id, args.pool_cgroup)?,
        scratch: paths::scratch_dir()?,
        advanced: Default::default(),
    })
}

/// Whether a judge run without `--userns` gets the one-uid map: it writes
/// its own uid_map instead of exec'ing the setuid newuidmap and newgidmap
/// (milliseconds on every run), and a contestant's program runs as root of
/// the sandbox either way. Not when the invoking user has supplementary
/// groups: a one-uid namespace must deny setgroups(2), so the workload
/// could not drop them, where `auto` does.
fn single_suits_judge(args: &RunArgs) -> bool {
    if args.security.policy.as_deref() != Some("judge") {
        return false;
    }
    // SAFETY: getgroups with a zero size only counts; getgid cannot fail.
    let (count, gid) = unsafe { (libc::getgroups(0, std::ptr::null_mut()), libc::getgid()) };
    match count {
        0 => true,
        1 => {
            let mut g: libc::gid_t = 0;
            // SAFETY: room for exactly the one group counted above.
            let n = unsafe { libc::getgroups(1, &mut g) };
            n == 1 && g == gid
        }
        _ => false,
    }
}

fn check_rootfs(dir: &Path) -> Result<PathBuf, RunError> {
    let err = |reason: String| RunError::Rootfs {
        path: dir.to_path_buf(),
        reason,
    };
    let abs = std::fs::canonicalize(dir).map_err(|e| err(e.to_string()))?;
    if !abs.is_dir() {
        return Err(err("not a directory".into()));
    }
    // Overlay's option syntax cannot carry these characters in a lowerdir.
    if abs.to_string_lossy().contains([':', ',']) {
        return Err(err("the path may not contain ':' or ','".into()));
    }
    Ok(abs)
}

/// The command as Docker builds it: the image's Entrypoint (or
/// `--entrypoint`, which also drops the image's Cmd) followed by the given
/// arguments, or else the image's Cmd.
pub fn image_command(
    config: &RunConfig,
    entrypoint: Option<&str>,
    given: Vec<String>,
) -> Vec<String> {
    let (ep, default_cmd) = match entrypoint {
        Some("") => (vec![], vec![]),
        Some(e) => (vec![e.to_string()], vec![]),
        None => (
            config.entrypoint.clone().unwrap_or_default(),
            config.cmd.clone().unwrap_or_default(),
        ),
    };
    let cmd = if given.is_empty() { default_cmd } else { given };
    ep.into_iter().chain(cmd).collect()
}

fn environment(
    args: &RunArgs,
    hostname: &str,
    home: &str,
    image_env: &[String],
) -> Result<Vec<String>, RunError> {
    let mut env: Vec<String> = vec![
        format!("PATH={DEFAULT_PATH}"),
        format!("HOSTNAME={hostname}"),
        format!("HOME={home}"),
    ];
    // The image's variables replace the defaults of the same name.
    for kv in image_env {
        if let Some((k, _)) = kv.split_once('=').filter(|(k, _)| !k.is_empty()) {
            env.retain(|e| e.split('=').next() != Some(k));
            env.push(kv.clone());
        }
    }
    if args.tty {
        env.push("TERM=xterm".into());
    }
    let mut set = |kv: &str| -> Result<(), RunError> {
        let entry = match kv.split_once('=') {
            Some(("", _)) => return Err(RunError::Env(kv.to_string())),
            Some(_) => kv.to_string(),
            None if kv.is_empty() => return Err(RunError::Env(kv.to_string())),
            // `-e NAME` copies NAME from hutch's environment, if it is set.
            None => match std::env::var(kv) {
                Ok(v) => format!("{kv}={v}"),
                Err(_) => return Ok(()),
            },
        };
        let key = entry.split('=').next().unwrap_or_default().to_string();
        env.retain(|e| e.split('=').next() != Some(key.as_str()));
        env.push(entry);
        Ok(())
    };
    for file in &args.env_file {
        let text = std::fs::read_to_string(file).map_err(|source| RunError::EnvFile {
            path: file.clone(),
            source,
        })?;
        for line in text.lines().map(str::trim) {
            if !line.is_empty() && !line.starts_with('#') {
                set(line)?;
            }
        }
    }
    for kv in &args.env {
        set(kv)?;
    }
    Ok(env)
}

pub fn parse_volume(spec: &str) -> Result<Mount, RunError> {
    let err = |reason: &str| RunError::Volume {
        spec: spec.to_string(),
        reason: reason.to_string(),
    };
    let parts: Vec<&str> = spec.split(':').collect();
    let (src, dst, opts) = match parts.as_slice() {
        [s, d] => (*s, *d, ""),
        [s, d, o] => (*s, *d, *o),
        _ => return Err(err("expected SRC:DST or SRC:DST:OPTIONS")),
    };
    if src.is_empty() || dst.is_empty() {
        return Err(err("source and destination must not be empty"));
    }
    if !(src.starts_with('/') || src.starts_with("./") || src.starts_with("../") || src == ".") {
        return Err(err("named volumes are not supported; give a host path"));
    }
    if !dst.starts_with('/') {
        return Err(err("the destination must be an absolute path"));
    }
    let mut readonly = false;
    for o in opts.split(',').filter(|o| !o.is_empty()) {
        match o {
            "ro" => readonly = true,
            "rw" => readonly = false,
            // Recursive binds are the only kind hutch makes.
            "rbind" | "bind" => {}
            _ => return Err(err(&format!("unknown option {o:?}"))),
        }
    }
    let source = std::fs::canonicalize(src).map_err(|e| err(&format!("source: {e}")))?;
    Ok(Mount::Bind {
        source,
        destination: PathBuf::from(dst),
        readonly,
    })
}

pub fn parse_tmpfs(spec: &str) -> Result<Mount, RunError> {
    let err = |reason: String| RunError::Tmpfs {
        spec: spec.to_string(),
        reason,
    };
    let (dst, opts) = spec.split_once(':').unwrap_or((spec, ""));
    if !dst.starts_with('/') {
        return Err(err("the destination must be an absolute path".into()));
    }
    let (mut size, mut mode) = (None, 0o1777);
    for o in opts.split(',').filter(|o| !o.is_empty()) {
        match o.split_once('=') {
            Some(("size", v)) => {
                size = Some(parse_size(v).ok_or_else(|| err(format!("bad size {v:?}")))?)
            }
            Some(("mode", v)) => {
                mode = u32::from_str_radix(v, 8).map_err(|_| err(format!("bad mode {v:?}")))?
            }
            _ => return Err(err(format!("unknown option {o:?}"))),
        }
    }
    Ok(Mount::Tmpfs {
        destination: PathBuf::from(dst),
        size,
        mode,
    })
}

/// "64m", "1g", "4096", "10k" as bytes.
pub fn parse_size(s: &str) -> Option<u64> {
    let s = s.trim().to_ascii_lowercase();
    let s = s.strip_suffix('b').unwrap_or(&s);
    let (num, mult) = match s.chars().last()? {
        'k' => (&s[..s.len() - 1], 1u64 << 10),
        'm' => (&s[..s.len() - 1], 1 << 20),
        'g' => (&s[..s.len() - 1], 1 << 30),
        _ => (s, 1),
    };
    num.parse::<u64>().ok()?.checked_mul(mult)
}

/// 64 random hex digits.
pub fn new_id() -> String {
    let mut bytes = [0u8; 32];
    // SAFETY: getrandom writes at most `bytes.len()` bytes into the buffer.
    let n = unsafe { libc::getrandom(bytes.as_mut_ptr().cast(), bytes.len(), 0) };
    if n != bytes.len() as isize {
        // Fall back to time and pid: unique enough for a local id.
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default();
        bytes[..16].copy_from_slice(&t.to_ne_bytes());
        bytes[16..20].copy_from_slice(&std::process::id().to_ne_bytes());
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The image's ExposedPorts as `80/tcp` strings, for `-P`.
fn exposed_ports(config: &RunConfig) -> Vec<String> {
    config
        .exposed_ports
        .iter()
        .flat_map(|m| m.keys().cloned())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_entrypoint_and_cmd_as_docker_combines_them() {
        let v = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let config = RunConfig {
            entrypoint: Some(v(&["/bin/echo", "ep"])),
            cmd: Some(v(&["default"])),
            ..Default::default()
        };
        assert_eq!(
            image_command(&config, None, vec![]),
            v(&["/bin/echo", "ep", "default"])
        );
        assert_eq!(
            image_command(&config, None, v(&["x"])),
            v(&["/bin/echo", "ep", "x"])
        );
        // --entrypoint drops the image's Cmd; "" drops the entrypoint too.
        assert_eq!(image_command(&config, Some("sh"), vec![]), v(&["sh"]));
        assert_eq!(
            image_command(&config, Some("sh"), v(&["-c", "id"])),
            v(&["sh", "-c", "id"])
        );
        assert_eq!(image_command(&config, Some(""), v(&["ls"])), v(&["ls"]));
        let cmd_only = RunConfig {
            cmd: Some(v(&["sh"])),
            ..Default::default()
        };
        assert_eq!(image_command(&cmd_only, None, vec![]), v(&["sh"]));
        assert_eq!(image_command(&cmd_only, None, v(&["true"])), v(&["true"]));
        assert!(image_command(&RunConfig::default(), None, vec![]).is_empty());
    }

    #[test]
    fn volumes() {
        assert_eq!(
            parse_volume("/tmp:/data:ro").unwrap(),
            Mount::Bind {
                source: std::fs::canonicalize("/tmp").unwrap(),
                destination: "/data".into(),
                readonly: true
            }
        );
        for bad in [
            "/tmp",
            "/tmp:data",
            "name:/data",
            "/tmp:/d:zz",
            "/nonexistent-hutch:/d",
            "a:b:c:d",
        ] {
            assert!(parse_volume(bad).is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn tmpfs_and_sizes() {
        assert_eq!(
            parse_tmpfs("/scratch:size=64m,mode=700").unwrap(),
            Mount::Tmpfs {
                destination: "/scratch".into(),
                size: Some(64 << 20),
                mode: 0o700
            }
        );
        assert!(parse_tmpfs("scratch").is_err());
        assert!(parse_tmpfs("/s:size=lots").is_err());
        assert_eq!(parse_size("1g"), Some(1 << 30));
        assert_eq!(parse_size("100"), Some(100));
    }
}
