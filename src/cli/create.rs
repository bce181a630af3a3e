//! `hutch create` (and `hutch run -d`): record a container from `run`'s
//! options, then (for `run -d`) start it in the background.

use std::path::{Path, PathBuf};

use crate::cli::run::{build_spec, parse_size, RunArgs};
use crate::container::process::ProcId;
use crate::container::record::{self, LogConfig};
use crate::container::{supervisor, time, Config, ContainerError, Store};
use crate::sandbox::{spawn::Exit, Spec};

pub fn create(args: RunArgs) -> anyhow::Result<i32> {
    let report = detached_report(&args)?;
    let (_, config) = create_container(&args, report)?;
    println!("{}", config.id);
    Ok(0)
}

/// `run -d`: create, start, print the id once the workload runs.
pub fn run_detached(args: RunArgs) -> anyhow::Result<i32> {
    let report = detached_report(&args)?;
    let (store, config) = create_container(&args, report)?;
    let mut c = store.open_locked(&config.id)?;
    if let Err(e) = supervisor::launch(&mut c, None) {
        if c.config.auto_remove {
            let _ = store.remove(&c);
        }
        return Err(e.into());
    }
    println!("{}", config.id);
    Ok(0)
}

/// A container `hutch run` (without `-d`) runs in the foreground. Its
/// state is updated from the config made here, never read back: a record
/// is kept for every foreground run, and judges make many.
pub struct Attached {
    store: Store,
    config: Config,
}

/// A foreground container not recorded yet: [`Pending::record`] records it
/// once its init exists, while the sandbox builds its root.
pub struct Pending {
    store: Store,
    config: Config,
}

/// The Spec for a foreground `run`. The container is recorded, as Docker
/// does (with `--rm` only while it runs), and shown running with this
/// process as its supervisor: `stop` and `kill` signal it, `exec` joins it,
/// and `ps` lists it. Runs on the host's root (`run host`) are not
/// containers and are not recorded.
pub fn foreground_spec(args: &RunArgs) -> anyhow::Result<(Spec, Option<Pending>)> {
    let host = args.rootfs.is_none() && args.args.first().is_some_and(|a| a == "host");
    if host {
        return Ok((build_spec(args)?, None));
    }
    let (store, config) = prepare_container(args, None)?;
    Ok((config.spec.clone(), Some(Pending { store, config })))
}

impl Pending {
    /// Record the container as running, with `init_pid` (checked by its
    /// start time) as its init and this process as its supervisor: from
    /// then on it is like a supervised one.
    pub fn record(mut self, init_pid: i32) -> Result<Attached, ContainerError> {
        let gone =
            |what| ContainerError::io("cannot read", what, std::io::ErrorKind::NotFound.into());
        let me = ProcId::me().ok_or_else(|| gone("/proc/self/stat".to_string()))?;
        let init = ProcId::of(init_pid).ok_or_else(|| gone(format!("/proc/{init_pid}/stat")))?;
        let mut state = crate::container::State::new();
        state.started(Some(init), me, time::now());
        if let Err(e) = self.store.create_as(&mut self.config, &state) {
            self.discard();
            return Err(e);
        }
        Ok(Attached {
            store: self.store,
            config: self.config,
        })
    }

    /// Removed when its run ends (`--rm`).
    pub fn auto_remove(&self) -> bool {
        self.config.auto_remove
    }

    /// What [`Attached::retire`] will leave of this container, for the
    /// keeper: known before the run starts.
    pub fn leftovers(&self) -> Vec<crate::sandbox::teardown::Step> {
        self.store.leftovers(&self.config.id)
    }

    /// The run never started: take back what preparing it made on disk
    /// (the writable layer's directories of a kept container).
    pub fn discard(&self) {
        let _ = std::fs::remove_dir_all(self.store.container_dir(&self.config.id));
    }
}

impl Attached {
    /// Removed when its run ends (`--rm`).
    pub fn auto_remove(&self) -> bool {
        self.config.auto_remove
    }

    /// Remove an `--rm` container as far as anyone can see (its name and
    /// config.json), leaving [`Pending::leftovers`] to the keeper.
    pub fn retire(self) -> Result<(), ContainerError> {
        self.store.retire_own(&self.config)
    }

    /// Record how the foreground run ended, or remove an `--rm` container.
    pub fn finish(self, exit: Result<Exit, String>) -> Result<(), ContainerError> {
        let keep = !self.config.auto_remove;
        self.store.update_own(&self.config, |s| {
            match exit {
                Ok(e) => {
                    let signal = match e {
                        Exit::Signaled(sig) => Some(sig),
                        Exit::Exited(_) => None,
                    };
                    s.exited(Some(e.code()), signal, time::now());
                }
                Err(reason) => {
                    s.exited(None, None, time::now());
                    s.error = Some(reason);
                }
            }
            keep
        })
    }
}

/// The judge's options of a container that runs detached: its supervisor
/// enforces the limits and writes `--report FILE` (returned, absolute)
/// when the workload exits. The options that need the caller's own
/// descriptors are refused, never ignored.
fn detached_report(args: &RunArgs) -> Result<Option<PathBuf>, ContainerError> {
    let l = &args.limits;
    let refuse = |flag, hint| Err(ContainerError::ForegroundOnly { flag, hint });
    if l.report_fd.is_some() {
        return refuse(
            "--report-fd",
            "use --report FILE, which the supervisor writes when the container exits",
        );
    }
    if l.stdin_file.is_some() {
        return refuse(
            "--stdin",
            "run it in the foreground, or create it with -i and feed it with `hutch start -ai` or `hutch attach`",
        );
    }
    if l.stdout_file.is_some() || l.stderr_file.is_some() {
        return refuse(
            "--stdout/--stderr",
            "a detached container's output is in its log: `hutch logs`",
        );
    }
    let Some(path) = &l.report else {
        return Ok(None);
    };
    let abs =
        std::path::absolute(path).map_err(|e| ContainerError::io("cannot resolve", path, e))?;
    if !abs.parent().is_some_and(Path::is_dir) {
        return Err(ContainerError::io(
            "cannot write the report to",
            abs,
            std::io::ErrorKind::NotFound.into(),
        ));
    }
    Ok(Some(abs))
}

/// Build the Spec and record the container (state `created`); `report` is
/// where its supervisor writes the judge's report.
pub fn create_container(
    args: &RunArgs,
    report: Option<PathBuf>,
) -> anyhow::Result<(Store, Config)> {
    let (store, mut config) = prepare_container(args, report)?;
    if let Err(e) = store.create(&mut config) {
        // build_spec made the writable layer's directories: take them back.
        let _ = std::fs::remove_dir_all(store.container_dir(&config.id));
        return Err(e.into());
    }
    Ok((store, config))
}

/// Build the Spec and the container's config, refusing a taken name;
/// nothing is recorded yet.
fn prepare_container(args: &RunArgs, report: Option<PathBuf>) -> anyhow::Result<(Store, Config)> {
    let store = Store::open()?;
    let log = log_config(&args.log_opt)?;
    let stop_signal = match &args.stop_signal {
        None => None,
        Some(s) => Some(
            record::parse_signal(s).ok_or_else(|| ContainerError::Invalid {
                what: "stop signal",
                value: s.clone(),
                hint: "give a name such as SIGTERM or a number",
            })?,
        ),
    };
    if let Some(name) = &args.name {
        if !record::valid_name(name) {
            return Err(ContainerError::InvalidName(name.clone()).into());
        }
        // Refuse a taken name before anything is made on disk.
        if let Ok(id) = store.resolve(name) {
            if store.read_config(&id).is_ok_and(|c| &c.name == name) {
                return Err(ContainerError::NameInUse {
                    name: name.clone(),
                    id,
                }
                .into());
            }
        }
    }
    let mut spec = build_spec(args)?;
    // --stop-signal, else the image's StopSignal, else SIGTERM.
    let stop_signal = stop_signal.unwrap_or(spec.process.stop_signal);
    spec.process.stop_signal = stop_signal;
    // Record the image by its id rather than the name, which may be
    // retagged: `rmi` refuses to remove an image a container uses.
    let image_id = |name: &str| {
        crate::image::store::Store::open()
            .ok()
            .and_then(|s| s.index().ok())
            .and_then(|index| index.find(name).map(|r| r.id.to_string()))
    };
    let (image, image_display) = match (&args.rootfs, args.args.first()) {
        (Some(dir), _) => (None, dir.display().to_string()),
        (None, Some(host)) if host == "host" => (None, "host".to_string()),
        (None, Some(image)) => (image_id(image).or(Some(image.clone())), image.clone()),
        (None, None) => (None, String::new()),
    };
    let config = Config {
        id: spec.id.clone(),
        name: args.name.clone().unwrap_or_default(),
        created: time::now(),
        image,
        image_display,
        auto_remove: args.rm,
        stop_signal,
        stop_timeout: args.stop_timeout.unwrap_or(10),
        log,
        report,
        spec,
    };
    Ok((store, config))
}

fn log_config(opts: &[String]) -> Result<LogConfig, ContainerError> {
    let mut cfg = LogConfig::default();
    for opt in opts {
        let bad = |hint| ContainerError::Invalid {
            what: "log option",
            value: opt.clone(),
            hint,
        };
        match opt.split_once('=') {
            Some(("max-size", v)) => {
                cfg.max_size = parse_size(v)
                    .filter(|&n| n > 0)
                    .ok_or_else(|| bad("max-size takes a size such as 10m or 512k"))?
            }
            Some(("max-file", v)) => {
                cfg.max_file = v
                    .parse()
                    .ok()
                    .filter(|&n| n > 0)
                    .ok_or_else(|| bad("max-file takes a positive number"))?
            }
            _ => {
                return Err(bad(
                    "the json-file driver takes max-size=SIZE and max-file=N",
                ))
            }
        }
    }
    Ok(cfg)
}
