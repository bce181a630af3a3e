//! `list`: the containers under `--root`.

use super::state::{Container, Root};
use super::R;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// table or json
    #[arg(long, short = 'f', default_value = "table")]
    pub format: String,
    /// Print only the ids.
    #[arg(long, short = 'q')]
    pub quiet: bool,
}

pub fn list(root: &Root, args: &Args) -> R<i32> {
    let mut states = Vec::new();
    for id in root.ids() {
        let Ok(c) = Container::open(root, &id) else {
            continue;
        };
        if let Ok(r) = c.load() {
            states.push(r.oci_state());
        }
    }
    let mut text = Vec::new();
    if args.quiet {
        for s in &states {
            text.push(s["id"].as_str().unwrap_or_default().to_string());
        }
    } else if args.format == "json" {
        text.push(serde_json::Value::Array(states).to_string());
    } else {
        text.push(format!(
            "{:<20} {:<8} {:<10} {:<30} CREATED",
            "ID", "PID", "STATUS", "BUNDLE"
        ));
        for s in &states {
            text.push(format!(
                "{:<20} {:<8} {:<10} {:<30} {}",
                s["id"].as_str().unwrap_or_default(),
                s["pid"].as_i64().unwrap_or(0),
                s["status"].as_str().unwrap_or_default(),
                s["bundle"].as_str().unwrap_or_default(),
                s["created"].as_str().unwrap_or_default(),
            ));
        }
    }
    super::print_out(&text.join("\n"));
    Ok(0)
}
