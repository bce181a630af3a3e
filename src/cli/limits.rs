//! Resource-limit and judge flags shared by `run` and `create`: Docker's
//! names where Docker has them, plus CPU/wall time, output and the report.

use std::os::fd::{FromRawFd, OwnedFd};
use std::path::PathBuf;

use clap::Args;

use crate::cli::run::parse_size;
use crate::sandbox::attach::Io;
use crate::sandbox::limits::{LimitError, Limits, Ulimit};
use crate::sandbox::report::Report;

#[derive(Debug, thiserror::Error)]
pub enum JudgeArgsError {
    #[error("invalid {flag} {value:?}: {reason}")]
    Value {
        flag: &'static str,
        value: String,
        reason: &'static str,
    },
    #[error("cannot open {flag} file {path}: {source}")]
    Open {
        flag: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot write the report to {to}: {source}")]
    Report { to: String, source: std::io::Error },
    #[error(transparent)]
    Limit(#[from] LimitError),
}

#[derive(Debug, Clone, Args)]
pub struct LimitArgs {
    /// Memory limit of the whole sandbox (e.g. 64m, 1g)
    #[arg(short = 'm', long = "memory", value_name = "SIZE")]
    pub memory: Option<String>,

    /// Memory plus swap (-1: unlimited)
    #[arg(long = "memory-swap", value_name = "SIZE", allow_hyphen_values = true)]
    pub memory_swap: Option<String>,

    /// Maximum number of processes (and threads)
    #[arg(long = "pids-limit", value_name = "N")]
    pub pids_limit: Option<u64>,

    /// CPU bandwidth, in CPUs (needs a delegated cgroup)
    #[arg(long = "cpus", value_name = "N")]
    pub cpus: Option<f64>,

    /// A resource limit of every process: NAME=SOFT[:HARD]
    #[arg(long = "ulimit", value_name = "NAME=SOFT[:HARD]")]
    pub ulimit: Vec<String>,

    /// CPU time of the whole sandbox, in seconds
    #[arg(long = "time-limit", value_name = "SECONDS")]
    pub time_limit: Option<f64>,

    /// Wall-clock time, in seconds
    #[arg(long = "wall-time-limit", value_name = "SECONDS")]
    pub wall_time_limit: Option<f64>,

    /// Bytes of stdout and stderr together; the rest is dropped and the run ends
    #[arg(long = "output-limit", value_name = "BYTES")]
    pub output_limit: Option<String>,

    /// strict (refuse limits this host cannot enforce) or best-effort
    #[arg(long = "limits", value_name = "MODE", default_value = "strict", value_parser = ["strict", "best-effort"])]
    pub limits_mode: String,

    /// Write a JSON report of the run to FILE
    #[arg(long = "report", value_name = "FILE")]
    pub report: Option<PathBuf>,

    /// Write the JSON report to this open file descriptor
    #[arg(long = "report-fd", value_name = "N")]
    pub report_fd: Option<i32>,

    /// Read the workload's stdin from FILE
    #[arg(long = "stdin", value_name = "FILE")]
    pub stdin_file: Option<PathBuf>,

    /// Write the workload's stdout to FILE
    #[arg(long = "stdout", value_name = "FILE")]
    pub stdout_file: Option<PathBuf>,

    /// Write the workload's stderr to FILE
    #[arg(long = "stderr", value_name = "FILE")]
    pub stderr_file: Option<PathBuf>,
}

impl LimitArgs {
    pub fn limits(&self) -> Result<Limits, JudgeArgsError> {
        let size =
            |flag: &'static str, v: &Option<String>| -> Result<Option<u64>, JudgeArgsError> {
                v.as_ref()
                    .map(|s| {
                        parse_size(s)
                            .filter(|n| *n > 0)
                            .ok_or(JudgeArgsError::Value {
                                flag,
                                value: s.clone(),
                                reason: "expected a size such as 64m",
                            })
                    })
                    .transpose()
            };
        let secs = |flag: &'static str, v: Option<f64>| -> Result<Option<u64>, JudgeArgsError> {
            v.map(|s| {
                if s.is_finite() && s > 0.0 {
                    Ok((s * 1000.0).round() as u64)
                } else {
                    Err(JudgeArgsError::Value {
                        flag,
                        value: s.to_string(),
                        reason: "expected a positive number of seconds",
                    })
                }
            })
            .transpose()
        };
        let memory_swap = match self.memory_swap.as_deref() {
            Some("-1") => Some(-1),
            other => size("--memory-swap", &other.map(str::to_string))?.map(|n| n as i64),
        };
        if let Some(c) = self.cpus.filter(|c| !(c.is_finite() && *c > 0.0)) {
            return Err(JudgeArgsError::Value {
                flag: "--cpus",
                value: c.to_string(),
                reason: "expected a positive number",
            });
        }
        if self.pids_limit == Some(0) {
            return Err(JudgeArgsError::Value {
                flag: "--pids-limit",
                value: "0".into(),
                reason: "expected at least 1",
            });
        }
        Ok(Limits {
            memory: size("--memory", &self.memory)?,
            memory_swap,
            pids: self.pids_limit,
            cpus: self.cpus,
            cpu_period_us: None,
            cpu_shares: None,
            ulimits: self
                .ulimit
                .iter()
                .map(|u| u.parse::<Ulimit>())
                .collect::<Result<_, _>>()?,
            cpu_time_ms: secs("--time-limit", self.time_limit)?,
            wall_time_ms: secs("--wall-time-limit", self.wall_time_limit)?,
            output: size("--output-limit", &self.output_limit)?,
            best_effort: self.limits_mode == "best-effort",
        })
    }

    /// Open the --stdin, --stdout and --stderr files (as the user, before clone).
    pub fn open_io(&self) -> Result<Io, JudgeArgsError> {
        let open = |flag: &'static str, p: &Option<PathBuf>, write: bool| {
            p.as_ref()
                .map(|path| {
                    let mut o = std::fs::OpenOptions::new();
                    if write {
                        o.write(true).create(true).truncate(true);
                    } else {
                        o.read(true);
                    }
                    o.open(path)
                        .map(OwnedFd::from)
                        .map_err(|source| JudgeArgsError::Open {
                            flag,
                            path: path.clone(),
                            source,
                        })
                })
                .transpose()
        };
        Ok(Io {
            stdin: open("--stdin", &self.stdin_file, false)?,
            stdout: open("--stdout", &self.stdout_file, true)?,
            stderr: open("--stderr", &self.stderr_file, true)?,
        })
    }

    pub fn wants_report(&self) -> bool {
        self.report.is_some() || self.report_fd.is_some()
    }

    /// Write `report` where the flags say (atomically for a file).
    pub fn write_report(&self, report: &Report) -> Result<(), JudgeArgsError> {
        let json = report.to_json();
        if let Some(path) = &self.report {
            report
                .write_file(path)
                .map_err(|source| JudgeArgsError::Report {
                    to: path.display().to_string(),
                    source,
                })?;
        }
        if let Some(fd) = self.report_fd {
            // SAFETY: the caller handed us this descriptor for the report;
            // it is closed after one write, as the flag promises.
            let f = std::fs::File::from(unsafe { OwnedFd::from_raw_fd(fd) });
            std::io::Write::write_all(&mut &f, &json).map_err(|source| JudgeArgsError::Report {
                to: format!("fd {fd}"),
                source,
            })?;
        }
        Ok(())
    }
}
