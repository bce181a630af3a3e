//! `hutch login REGISTRY`: check credentials against the registry and store
//! them in `$XDG_RUNTIME_DIR/containers/auth.json` (as Podman does).

use std::io::{BufRead, IsTerminal, Write};

use clap::Args;

use crate::image::auth::{self, Credentials};
use crate::image::reference::Reference;
use crate::image::registry::Client;

#[derive(Debug, Args)]
pub struct LoginArgs {
    /// The registry: HOST[:PORT]
    pub registry: String,

    #[arg(short, long)]
    pub username: Option<String>,

    /// The password (prefer --password-stdin: arguments are visible to other users)
    #[arg(short, long)]
    pub password: Option<String>,

    /// Read the password from stdin
    #[arg(long)]
    pub password_stdin: bool,

    /// Require HTTPS with a verified certificate
    #[arg(long = "tls-verify", value_name = "BOOL", default_value_t = true, action = clap::ArgAction::Set)]
    pub tls_verify: bool,
}

/// A reference on `registry` for talking to it (any repository will do).
pub fn registry_ref(registry: &str) -> anyhow::Result<Reference> {
    let host = registry
        .trim_start_matches("https://")
        .trim_start_matches("http://")
        .trim_end_matches('/');
    let host = if host == "index.docker.io" {
        "docker.io"
    } else {
        host
    };
    let r = Reference::parse(&format!("{host}/library/hutch-login"))?;
    if r.registry != host {
        anyhow::bail!("{registry:?} is not a registry host (hint: HOST[:PORT])");
    }
    Ok(r)
}

pub fn login(args: LoginArgs) -> anyhow::Result<i32> {
    let r = registry_ref(&args.registry)?;
    let stdin = std::io::stdin();
    let username = match args.username {
        Some(u) => u,
        None => {
            eprint!("Username: ");
            let _ = std::io::stderr().flush();
            let mut line = String::new();
            stdin.lock().read_line(&mut line)?;
            line.trim().to_string()
        }
    };
    let password = match (args.password, args.password_stdin) {
        (Some(p), false) => p,
        (None, true) => {
            let mut line = String::new();
            stdin.lock().read_line(&mut line)?;
            line.trim_end_matches(['\n', '\r']).to_string()
        }
        (None, false) if !stdin.is_terminal() => {
            anyhow::bail!("no password given (hint: --password-stdin)")
        }
        (None, false) => {
            eprint!("Password: ");
            let _ = std::io::stderr().flush();
            let mut line = String::new();
            stdin.lock().read_line(&mut line)?;
            line.trim_end_matches(['\n', '\r']).to_string()
        }
        (Some(_), true) => anyhow::bail!("--password and --password-stdin are exclusive"),
    };
    let creds = Credentials { username, password };
    let client = Client::connect_with(&r, args.tls_verify, Some(creds.clone()))?;
    client.check_credentials()?;
    let file = auth::save(&r.registry, &creds)?;
    eprintln!("Credentials saved in {}", file.display());
    println!("Login Succeeded!");
    Ok(0)
}
