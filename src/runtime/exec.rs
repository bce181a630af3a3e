//! `exec [--process FILE | ARGS...] [--detach] [--pid-file FILE]
//! [--console-socket SOCK] ID`: run another process in a running
//! container, confined exactly as its first process
//! (`child::exec_workload`: the same Landlock and seccomp, capabilities,
//! no_new_privs).
//!
//! The container's namespaces are joined only if they are still the ones
//! recorded at create (the first process is untrusted and could have moved
//! into namespaces of its own making).

use std::convert::Infallible;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use super::bundle;
use super::log::Logger;
use super::state::{Container, Root, Status};
use super::{RuntimeError, R};
use crate::sandbox::error::SetupError;
use crate::sandbox::spawn::Exit;
use crate::sandbox::{child, console, sys};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The process to run, as config.json's `process` object.
    #[arg(long, short = 'p', value_name = "FILE")]
    pub process: Option<PathBuf>,
    /// Return once the process runs; its parent becomes the caller's subreaper.
    #[arg(long, short = 'd')]
    pub detach: bool,
    #[arg(long, value_name = "FILE")]
    pub pid_file: Option<PathBuf>,
    #[arg(long, value_name = "SOCK")]
    pub console_socket: Option<PathBuf>,
    /// Without --process: allocate a terminal.
    #[arg(long, short = 't')]
    pub tty: bool,
    /// Without --process: the working directory.
    #[arg(long)]
    pub cwd: Option<PathBuf>,
    /// Without --process: KEY=VALUE added to the container's environment.
    #[arg(long, short = 'e')]
    pub env: Vec<String>,
    /// Without --process: run as UID[:GID] (numbers, in the container).
    #[arg(long, short = 'u', value_name = "UID[:GID]")]
    pub user: Option<String>,
    /// Without --process: a supplementary group (repeatable).
    #[arg(
        long = "additional-gids",
        short = 'g',
        value_name = "GID",
        value_delimiter = ','
    )]
    pub additional_gids: Vec<u32>,
    /// Without --process: a capability to keep (repeatable); only those
    /// the container was given, and none unless asked.
    #[arg(long = "cap", short = 'c', value_name = "CAP")]
    pub caps: Vec<String>,
    /// Pass descriptors 3 to 3+N-1 to the process, open.
    #[arg(long, default_value_t = 0, value_name = "N")]
    pub preserve_fds: u32,
    pub id: String,
    /// Without --process: the command.
    #[arg(trailing_var_arg = true)]
    pub command: Vec<String>,
}

pub fn exec(root: &Root, args: &Args, logger: &Logger) -> R<i32> {
    let c = Container::open(root, &args.id)?;
    let record = c.load()?;
    let mut spec = c.load_spec()?;
    let status = record.status();
    if status != Status::Running {
        return Err(RuntimeError::WrongState {
            id: args.id.clone(),
            status: status.name(),
            need: "not running (hint: exec needs a started container)",
        });
    }
    let target = record.pidfd().ok_or(RuntimeError::WrongState {
        id: args.id.clone(),
        status: Status::Stopped.name(),
        need: "not running",
    })?;
    // What the container was given bounds what any exec'd process gets.
    let container_caps = std::mem::take(&mut spec.advanced.capabilities);
    match &args.process {
        Some(file) => {
            if args.user.is_some() || !args.additional_gids.is_empty() || !args.caps.is_empty() {
                return Err(RuntimeError::Refused(
                    "--user, --additional-gids and --cap apply without --process (the process file names its user and capabilities)".into(),
                ));
            }
            let text = std::fs::read(file)
                .map_err(|e| RuntimeError::io("cannot read", file.display(), e))?;
            let de = &mut serde_json::Deserializer::from_slice(&text);
            let p: bundle::Process = serde_path_to_error::deserialize(de).map_err(|e| {
                RuntimeError::config(format!("process.{}", e.path()), e.into_inner().to_string())
            })?;
            bundle::apply_process(&mut spec, &p)?;
            check_user(&spec, "process.user")?;
        }
        None => {
            if args.command.is_empty() {
                return Err(RuntimeError::Refused(
                    "exec needs --process FILE or a command".into(),
                ));
            }
            spec.process.args = args.command.clone();
            spec.process.env.extend(args.env.iter().cloned());
            if let Some(d) = &args.cwd {
                spec.process.cwd = d.clone();
            }
            spec.process.terminal = args.tty;
            if let Some(u) = &args.user {
                let (uid, gid) = parse_user(u)?;
                spec.process.user.uid = uid;
                spec.process.user.gid = gid;
                spec.process.user.additional_gids.clear();
            }
            if !args.additional_gids.is_empty() {
                spec.process.user.additional_gids = args.additional_gids.clone();
            }
            check_user(&spec, "--user")?;
            spec.advanced.capabilities = args
                .caps
                .iter()
                .map(|c| bundle::capability_number("--cap", c))
                .collect::<R<Vec<u32>>>()?;
        }
    }
    if let Some(c) = spec
        .advanced
        .capabilities
        .iter()
        .find(|c| !container_caps.contains(c))
    {
        let name = crate::sandbox::caps::NAMES.get(*c as usize).unwrap_or(&"?");
        return Err(RuntimeError::Refused(format!(
            "CAP_{name}: the container was not given it, so no process exec'd in it gets it"
        )));
    }
    spec.advanced.preserve_fds = args.preserve_fds;
    if spec.process.terminal && args.console_socket.is_none() {
        return Err(RuntimeError::config(
            "process.terminal",
            "a terminal needs --console-socket to hand its master to",
        ));
    }
    spec.advanced.start_gate = None;

    // Host paths are reached before the container's mount namespace hides
    // them: the pid file's directory and the console socket.
    let pid_file = args.pid_file.as_deref().map(PidFile::open).transpose()?;
    let console_stream = match &args.console_socket {
        Some(sock) => Some(super::create::connect_console(sock)?),
        None => None,
    };
    // Into the container's cgroup first (its path is the host's): the
    // process forked below is counted and limited with the container's.
    if let Some(cg) = &spec.limits.cgroup {
        cg.add(std::process::id() as i32).map_err(|e| {
            RuntimeError::Refused(format!(
                "cannot join the cgroup of container {}: {e}",
                args.id
            ))
        })?;
    }
    let namespaces = record.namespaces.open_checked(&target)?;
    namespaces.join().map_err(|e| {
        RuntimeError::io(
            "cannot join the namespaces of",
            format!("container {}", args.id),
            e,
        )
    })?;
    let pair = if spec.process.terminal {
        Some(
            console::open_inside()
                .map_err(|e| RuntimeError::io("cannot open", "/dev/ptmx in the container", e))?,
        )
    } else {
        None
    };
    if let (Some(p), Some((stream, sock))) = (&pair, &console_stream) {
        console::send_fd(stream.as_raw_fd(), p.master.as_raw_fd())
            .map_err(|e| RuntimeError::io("cannot send the terminal to", sock.display(), e))?;
    }
    let pid = fork_confined(&spec, pair.as_ref().map(|p| &p.slave))?;
    drop(pair);
    if let Some(f) = &pid_file {
        f.write(pid)?;
    }
    logger.debug(&format!("exec in {}: pid {pid}", args.id));
    if args.detach {
        return Ok(0);
    }
    let mut status = 0;
    loop {
        // SAFETY: `status` is a valid out-pointer; `pid` is our child.
        let r = unsafe { libc::waitpid(pid, &mut status, 0) };
        if r == pid {
            return Ok(Exit::from_wait_status(status).code());
        }
        if std::io::Error::last_os_error().raw_os_error() != Some(libc::EINTR) {
            return Err(RuntimeError::io(
                "cannot wait for",
                format!("process {pid}"),
                std::io::Error::last_os_error(),
            ));
        }
    }
}

/// A pid file whose directory was opened on the host, written atomically
/// (temp file and rename within that directory) from anywhere.
struct PidFile {
    dir: std::fs::File,
    name: std::ffi::CString,
    shown: PathBuf,
}

impl PidFile {
    fn open(path: &Path) -> R<PidFile> {
        let bad = |e| RuntimeError::io("cannot open the directory of", path.display(), e);
        let parent = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        let dir = std::fs::File::open(parent).map_err(bad)?;
        let name = path
            .file_name()
            .ok_or_else(|| bad(std::io::Error::from_raw_os_error(libc::EINVAL)))?;
        let name = sys::cstr(Path::new(name)).map_err(bad)?;
        Ok(PidFile {
            dir,
            name,
            shown: path.to_path_buf(),
        })
    }

    fn write(&self, pid: i32) -> R<()> {
        let fail = |e| RuntimeError::io("cannot write", self.shown.display(), e);
        let mut tmp = self.name.as_bytes().to_vec();
        tmp.splice(0..0, b".".iter().copied());
        tmp.extend_from_slice(format!(".tmp.{}", std::process::id()).as_bytes());
        let tmp = std::ffi::CString::new(tmp)
            .map_err(|_| fail(std::io::Error::from_raw_os_error(libc::EINVAL)))?;
        // SAFETY: an open directory fd and a valid C string.
        let fd = unsafe {
            libc::openat(
                self.dir.as_raw_fd(),
                tmp.as_ptr(),
                libc::O_CREAT | libc::O_TRUNC | libc::O_WRONLY | libc::O_CLOEXEC | libc::O_NOFOLLOW,
                0o644,
            )
        };
        let fd = sys::check(fd as libc::c_long).map_err(fail)?;
        // SAFETY: a fresh descriptor owned by nobody else.
        let f = unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd as i32) };
        sys::write_all(f.as_raw_fd(), pid.to_string().as_bytes()).map_err(fail)?;
        drop(f);
        // SAFETY: both names are valid C strings relative to an open directory.
        let ret = unsafe {
            libc::renameat(
                self.dir.as_raw_fd(),
                tmp.as_ptr(),
                self.dir.as_raw_fd(),
                self.name.as_ptr(),
            )
        };
        sys::check(ret as libc::c_long).map(drop).map_err(fail)
    }
}

/// Fork the process; it confines itself and execs, or says why not.
fn fork_confined(spec: &crate::sandbox::Spec, slave: Option<&OwnedFd>) -> R<i32> {
    Ok(child::fork_confined(|| child_main(spec, slave))?)
}

fn child_main(
    spec: &crate::sandbox::Spec,
    slave: Option<&OwnedFd>,
) -> Result<Infallible, SetupError> {
    sys::keep_passed_fds(spec.advanced.preserve_fds)
        .map_err(|e| SetupError::io("cannot mark descriptors close-on-exec", None, &e))?;
    child::exec_workload(spec, slave)
}

/// `--user UID[:GID]` (the gid defaults to 0, as runc's).
fn parse_user(text: &str) -> R<(u32, u32)> {
    let bad = || {
        RuntimeError::Refused(format!(
            "--user {text:?}: expected UID or UID:GID, in numbers"
        ))
    };
    let (uid, gid) = text.split_once(':').unwrap_or((text, "0"));
    Ok((
        uid.parse().map_err(|_| bad())?,
        gid.parse().map_err(|_| bad())?,
    ))
}

/// The user, group and supplementary groups must be mapped in the
/// container's user namespace, and supplementary groups need a map
/// newgidmap wrote (setgroups is denied otherwise): refused here rather
/// than dropped.
fn check_user(spec: &crate::sandbox::Spec, field: &str) -> R<()> {
    let u = &spec.process.user;
    if !spec.advanced.creates(crate::sandbox::spec::Namespace::User) {
        return Ok(());
    }
    let idmap = &spec.idmap;
    if !idmap.maps_uid(u.uid) || !idmap.maps_gid(u.gid) {
        return Err(RuntimeError::config(
            field,
            format!(
                "{}:{} is not mapped in the container's user namespace",
                u.uid, u.gid
            ),
        ));
    }
    if let Some(g) = u.additional_gids.iter().find(|g| !idmap.maps_gid(**g)) {
        return Err(RuntimeError::config(
            field,
            format!("supplementary group {g} is not mapped in the container's user namespace"),
        ));
    }
    if !u.additional_gids.is_empty() && !idmap.use_helpers {
        return Err(RuntimeError::config(
            field,
            "supplementary groups need newgidmap (a mapping of more than the caller's own gid)",
        ));
    }
    Ok(())
}
