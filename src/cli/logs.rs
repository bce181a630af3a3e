//! `hutch logs [-f] [--tail N] [-t] [--since TIME] NAME`: the json-file
//! log back on stdout and stderr, each line on the stream it came from.

use clap::Args;

use crate::cli::failed;
use crate::container::{log, time, Store};

#[derive(Debug, Args)]
pub struct LogsArgs {
    /// Follow the output until the container stops
    #[arg(short = 'f', long = "follow")]
    pub follow: bool,

    /// Show this many lines from the end (or "all")
    #[arg(short = 'n', long = "tail", value_name = "N", default_value = "all")]
    pub tail: String,

    /// Prefix each line with its timestamp
    #[arg(short = 't', long = "timestamps")]
    pub timestamps: bool,

    /// Only lines since TIME: RFC 3339, Unix seconds, or a duration (10m)
    #[arg(long = "since", value_name = "TIME")]
    pub since: Option<String>,

    /// Only lines until TIME (same forms as --since)
    #[arg(long = "until", value_name = "TIME")]
    pub until: Option<String>,

    #[arg(value_name = "CONTAINER")]
    pub container: String,
}

pub fn logs(args: LogsArgs) -> anyhow::Result<i32> {
    let store = Store::open()?;
    let now = time::now();
    let when = |what: &str, v: &Option<String>| -> anyhow::Result<Option<i128>> {
        v.as_deref()
            .map(|s| {
                time::parse_since(s, now).ok_or_else(|| {
                    failed(format!(
                        "invalid {what} {s:?} (hint: 2024-05-01T12:00:00Z, 1714564800 or 10m)"
                    ))
                })
            })
            .transpose()
    };
    let show = log::Show {
        timestamps: args.timestamps,
        since: when("--since", &args.since)?,
        until: when("--until", &args.until)?,
    };
    let tail: Option<usize> = match args.tail.as_str() {
        "all" | "-1" => None,
        n => Some(
            n.parse()
                .map_err(|_| failed(format!("invalid --tail {n:?} (hint: a number, or all)")))?,
        ),
    };

    let (dir, supervisor) = {
        let c = store.open_locked(&args.container).map_err(failed)?;
        (c.dir.clone(), c.state.supervisor.and_then(|p| p.open()))
    };
    if let Some(t) = log::trouble(&dir) {
        eprintln!(
            "hutch: warning: the log of {} is incomplete: {} line(s) dropped since {}: {}",
            args.container, t.dropped, t.since, t.error
        );
    }
    let mut current = log::open_current(&dir);
    let mut pending = Vec::new();
    let entries: Vec<log::Entry> = log::read_all(&dir, current.as_mut(), &mut pending)
        .into_iter()
        .filter(|e| show.keep(e))
        .collect();
    let skip = tail.map_or(0, |n| entries.len().saturating_sub(n));
    for e in &entries[skip..] {
        if show.print(e).is_err() {
            // The reader went away (a closed pipe): stop quietly.
            return Ok(0);
        }
    }
    if args.follow {
        if let Some(s) = supervisor {
            let _ = log::follow(&dir, current, pending, Some(&s), &show);
        }
    }
    Ok(0)
}
