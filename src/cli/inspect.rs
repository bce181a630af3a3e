//! `hutch inspect [-f TEMPLATE] NAME...`: a container as Docker's JSON
//! (State.Status, State.Pid, State.ExitCode, Config, Mounts, ...), or the
//! fields a `{{.State.Status}}` template names.

use clap::Args;
use serde_json::{json, Value};

use crate::cli::Failed;
use crate::container::store::Container;
use crate::container::{log, supervisor, time, Status, Store};
use crate::sandbox::spec::{Mount, UpperDir};

#[derive(Debug, Args)]
pub struct InspectArgs {
    /// A template such as '{{.State.Status}}' or '{{json .Config}}'
    #[arg(short = 'f', long = "format", value_name = "TEMPLATE")]
    pub format: Option<String>,

    #[arg(value_name = "CONTAINER", required = true)]
    pub containers: Vec<String>,
}

pub fn inspect(args: InspectArgs) -> anyhow::Result<i32> {
    let store = Store::open()?;
    let mut docs = Vec::new();
    let mut errors = Vec::new();
    for name in &args.containers {
        match store.open_locked(name) {
            Ok(c) => docs.push(document(&c)),
            Err(e) => errors.push(e.to_string()),
        }
    }
    match &args.format {
        Some(t) => {
            for d in &docs {
                println!("{}", render(t, d));
            }
        }
        None => println!("{}", serde_json::to_string_pretty(&Value::Array(docs))?),
    }
    match errors.pop() {
        None => Ok(0),
        Some(message) => {
            for e in errors {
                eprintln!("hutch: {e}");
            }
            Err(Failed { code: 1, message }.into())
        }
    }
}

fn stamp(t: Option<i128>) -> String {
    // Docker's zero time for "never".
    t.map_or_else(|| "0001-01-01T00:00:00Z".to_string(), time::rfc3339)
}

/// The container as Docker's `inspect` shows it.
pub fn document(c: &Container) -> Value {
    let (cfg, st) = (&c.config, &c.state);
    let spec = &cfg.spec;
    let mounts: Vec<Value> = spec
        .mounts
        .iter()
        .map(|m| match m {
            Mount::Bind {
                source,
                destination,
                readonly,
            } => json!({
                "Type": "bind", "Source": source, "Destination": destination,
                "Mode": if *readonly { "ro" } else { "" }, "RW": !readonly,
                "Propagation": "rprivate",
            }),
            Mount::Tmpfs {
                destination, size, ..
            } => json!({
                "Type": "tmpfs", "Source": "", "Destination": destination,
                "Mode": size.map(|s| format!("size={s}")).unwrap_or_default(), "RW": true,
                "Propagation": "",
            }),
            Mount::Flagged {
                fstype,
                source,
                destination,
                flags,
                ..
            } => json!({
                "Type": fstype, "Source": source, "Destination": destination,
                "RW": flags & libc::MS_RDONLY == 0, "Propagation": "rprivate",
            }),
        })
        .collect();
    let upper = match &spec.upper {
        UpperDir::Persistent { upper, work } => json!({"UpperDir": upper, "WorkDir": work}),
        UpperDir::Ephemeral => json!({}),
    };
    let args = &spec.process.args;
    json!({
        "Id": cfg.id,
        "Created": time::rfc3339(cfg.created),
        "Path": args.first().cloned().unwrap_or_default(),
        "Args": args.iter().skip(1).collect::<Vec<_>>(),
        "State": {
            "Status": st.status.as_str(),
            "Running": st.status == Status::Running,
            "Paused": false,
            "Restarting": false,
            "OOMKilled": false,
            "Dead": false,
            "Pid": st.init.map_or(0, |p| p.pid),
            "ExitCode": st.exit_code.unwrap_or(if st.status == Status::Exited { -1 } else { 0 }),
            "Error": st.error.clone().unwrap_or_default(),
            "StartedAt": stamp(st.started_at),
            "FinishedAt": stamp(st.finished_at),
            "SupervisorPid": st.supervisor.map_or(0, |p| p.pid),
            "LogError": log::trouble(&c.dir).map(|t| format!("{} line(s) dropped since {}: {}", t.dropped, t.since, t.error)).unwrap_or_default(),
            // The judge's report of the last run, with limits (`--report`).
            "Report": std::fs::read(c.dir.join(supervisor::REPORT)).ok().and_then(|b| serde_json::from_slice::<Value>(&b).ok()),
        },
        "Image": cfg.image.clone().unwrap_or_else(|| cfg.image_display.clone()),
        "LogPath": c.dir.join(log::LOG),
        "Name": format!("/{}", cfg.name),
        "RestartCount": st.restart_count,
        "Driver": "overlay",
        "HostConfig": {
            "AutoRemove": cfg.auto_remove,
            "ReadonlyRootfs": spec.readonly_root,
            "LogConfig": {"Type": "json-file", "Config": {
                "max-size": cfg.log.max_size.to_string(),
                "max-file": cfg.log.max_file.to_string(),
            }},
            "UsernsMode": if spec.idmap.use_helpers { "auto" } else { "single" },
            "NetworkMode": spec.network.describe(),
            // The host ports are chosen at create time (-P too) and kept
            // across restarts, so the bindings are the published ports.
            "PortBindings": spec.network.ports_json(),
            "PublishAllPorts": spec.network.publish_all,
        },
        "NetworkSettings": {"Ports": spec.network.ports_json()},
        "GraphDriver": {"Name": "overlay", "Data": upper},
        "Mounts": mounts,
        "Config": {
            "Hostname": spec.hostname,
            "User": format!("{}:{}", spec.process.user.uid, spec.process.user.gid),
            "Tty": spec.process.terminal,
            "OpenStdin": spec.process.stdin,
            "Env": spec.process.env,
            "Cmd": args,
            "Image": cfg.image_display,
            "WorkingDir": spec.process.cwd,
            "StopSignal": crate::container::record::signal_name(cfg.stop_signal),
            "StopTimeout": cfg.stop_timeout,
            "Policy": spec.policy.name,
        },
    })
}

/// Go-template fields, the common subset: `{{.A.B}}` and `{{json .A}}`.
pub fn render(template: &str, doc: &Value) -> String {
    let mut out = String::new();
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let Some(end) = rest[start..].find("}}") else {
            out.push_str(&rest[start..]);
            return out;
        };
        let expr = rest[start + 2..start + end].trim();
        let (as_json, path) = match expr.strip_prefix("json ") {
            Some(p) => (true, p.trim()),
            None => (false, expr),
        };
        let mut v = doc;
        for key in path.split('.').filter(|k| !k.is_empty()) {
            v = v.get(key).unwrap_or(&Value::Null);
        }
        match (as_json, v) {
            (false, Value::String(s)) => out.push_str(s),
            (false, Value::Null) => out.push_str("<no value>"),
            _ => out.push_str(&v.to_string()),
        }
        rest = &rest[start + end + 2..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates() {
        let doc = json!({"State": {"Status": "running", "Pid": 42}, "Config": {"Cmd": ["sh"]}});
        assert_eq!(render("{{.State.Status}}", &doc), "running");
        assert_eq!(render("{{ .State.Pid }}/x", &doc), "42/x");
        assert_eq!(render("{{json .Config}}", &doc), r#"{"Cmd":["sh"]}"#);
        assert_eq!(render("{{.Nope}}", &doc), "<no value>");
    }
}
