//! `hutch ps [-a] [-q] [--format json]`: Docker's columns and wording.

use clap::Args;
use serde_json::json;

use crate::container::time::{self, Nanos};
use crate::container::{Config, State, Status, Store};

#[derive(Debug, Args)]
pub struct PsArgs {
    /// Show all containers (default: only running ones)
    #[arg(short = 'a', long = "all")]
    pub all: bool,

    /// Only print container ids
    #[arg(short = 'q', long = "quiet")]
    pub quiet: bool,

    /// Do not truncate ids and commands
    #[arg(long = "no-trunc")]
    pub no_trunc: bool,

    /// Output format: `table` (default) or `json` (one object a line)
    #[arg(long = "format", value_name = "FORMAT")]
    pub format: Option<String>,
}

pub fn ps(args: PsArgs) -> anyhow::Result<i32> {
    let store = Store::open()?;
    let now = time::now();
    let mut rows: Vec<(Config, State)> = Vec::new();
    for id in store.ids()? {
        // A container removed while we list is simply not listed.
        if let Ok((config, state)) = store.peek(&id) {
            if args.all || state.status == Status::Running {
                rows.push((config, state));
            }
        }
    }
    // Newest first, as Docker.
    rows.reverse();
    let short = |id: &str| {
        if args.no_trunc {
            id.to_string()
        } else {
            id[..12].to_string()
        }
    };
    if args.quiet {
        for (c, _) in &rows {
            println!("{}", short(&c.id));
        }
        return Ok(0);
    }
    match args.format.as_deref() {
        Some("json") | Some("{{json .}}") => {
            for (c, s) in &rows {
                println!("{}", json_row(c, s, now, args.no_trunc));
            }
        }
        None | Some("table") => {
            let mut table = vec![[
                "CONTAINER ID".to_string(),
                "IMAGE".into(),
                "COMMAND".into(),
                "CREATED".into(),
                "STATUS".into(),
                "PORTS".into(),
                "NAMES".into(),
            ]];
            for (c, s) in &rows {
                table.push([
                    short(&c.id),
                    c.image_display.clone(),
                    quoted_command(c, !args.no_trunc),
                    format!("{} ago", time::human(time::since(c.created, now))),
                    status_text(s, now),
                    c.spec.network.ports_text(),
                    c.name.clone(),
                ]);
            }
            print_table(&table);
        }
        Some(other) => {
            return Err(crate::cli::failed(format!(
                "unsupported --format {other:?} (hint: table or json)"
            )))
        }
    }
    Ok(0)
}

/// Docker's COMMAND column: the command line, cut to 20 characters, quoted.
pub fn quoted_command(c: &Config, trunc: bool) -> String {
    let cmd = c.spec.process.args.join(" ");
    let cmd = if trunc && cmd.chars().count() > 20 {
        let mut s: String = cmd.chars().take(19).collect();
        s.push('…');
        s
    } else {
        cmd
    };
    format!("{cmd:?}")
}

/// "Created", "Up 3 minutes", "Exited (0) 5 seconds ago".
pub fn status_text(s: &State, now: Nanos) -> String {
    match s.status {
        Status::Created => "Created".into(),
        Status::Running => format!(
            "Up {}",
            time::human(time::since(s.started_at.unwrap_or(now), now))
        ),
        Status::Exited => format!(
            "Exited ({}) {} ago",
            s.exit_code
                .map_or_else(|| "unknown".to_string(), |c| c.to_string()),
            time::human(time::since(s.finished_at.unwrap_or(now), now))
        ),
    }
}

fn json_row(c: &Config, s: &State, now: Nanos, no_trunc: bool) -> serde_json::Value {
    let secs = c.created.div_euclid(1_000_000_000);
    let created = time::rfc3339(secs * 1_000_000_000);
    // Docker's CreatedAt: "2024-05-01 12:00:00 +0000 UTC".
    let created_at = format!("{} {} +0000 UTC", &created[..10], &created[11..19]);
    json!({
        "Command": quoted_command(c, !no_trunc),
        "CreatedAt": created_at,
        "ID": if no_trunc { c.id.clone() } else { c.id[..12].to_string() },
        "Image": c.image_display,
        "Labels": "",
        "LocalVolumes": "0",
        "Mounts": "",
        "Names": c.name,
        "Networks": "",
        "Ports": c.spec.network.ports_text(),
        "RunningFor": format!("{} ago", time::human(time::since(c.created, now))),
        "Size": "",
        "State": s.status.as_str(),
        "Status": status_text(s, now),
    })
}

/// Columns padded to their widest cell plus three spaces, as Docker's
/// tabwriter does.
fn print_table<const N: usize>(rows: &[[String; N]]) {
    let mut widths = [0usize; N];
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    for row in rows {
        let mut line = String::new();
        for (i, cell) in row.iter().enumerate() {
            line.push_str(cell);
            if i + 1 < N {
                let pad = widths[i] - cell.chars().count() + 3;
                line.push_str(&" ".repeat(pad));
            }
        }
        println!("{}", line.trim_end());
    }
}
