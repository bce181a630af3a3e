//! Registry credentials, in the files Podman and Docker use:
//! `$XDG_RUNTIME_DIR/containers/auth.json`, `~/.config/containers/auth.json`
//! and `~/.docker/config.json` (read in that order); `hutch login` and
//! `logout` write the first.

use std::path::PathBuf;

use serde_json::{Map, Value};

/// Credential files larger than this are not credential files.
const MAX_AUTH_FILE: u64 = 1 << 20;

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("cannot {op} {path}: {reason}")]
    File {
        op: &'static str,
        path: PathBuf,
        reason: String,
    },
    #[error("no place for credentials: neither XDG_RUNTIME_DIR nor HOME is set")]
    NoPlace,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credentials {
    pub username: String,
    pub password: String,
}

impl Credentials {
    /// `user:password` in base64, as auth files and Basic auth carry them.
    pub fn encoded(&self) -> String {
        base64_encode(format!("{}:{}", self.username, self.password).as_bytes())
    }
}

/// The files searched, in order.
pub fn auth_files() -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Some(p) = primary_file() {
        out.push(p);
    }
    if let Some(h) = std::env::var_os("HOME").filter(|h| !h.is_empty()) {
        let h = PathBuf::from(h);
        let xdg_config = std::env::var_os("XDG_CONFIG_HOME")
            .filter(|x| !x.is_empty())
            .map(PathBuf::from)
            .unwrap_or_else(|| h.join(".config"));
        out.push(xdg_config.join("containers/auth.json"));
        out.push(h.join(".docker/config.json"));
    }
    out.dedup();
    out
}

/// Where `login` writes: `$REGISTRY_AUTH_FILE`, else
/// `$XDG_RUNTIME_DIR/containers/auth.json`, else `~/.config/containers/auth.json`.
pub fn primary_file() -> Option<PathBuf> {
    if let Some(f) = std::env::var_os("REGISTRY_AUTH_FILE").filter(|f| !f.is_empty()) {
        return Some(PathBuf::from(f));
    }
    if let Some(r) = std::env::var_os("XDG_RUNTIME_DIR").filter(|r| !r.is_empty()) {
        if std::path::Path::new(&r).is_dir() {
            return Some(PathBuf::from(r).join("containers/auth.json"));
        }
    }
    std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .map(|h| PathBuf::from(h).join(".config/containers/auth.json"))
}

fn read_json(path: &PathBuf) -> Option<Value> {
    use std::io::Read;
    let f = std::fs::File::open(path).ok()?;
    let mut buf = Vec::new();
    f.take(MAX_AUTH_FILE).read_to_end(&mut buf).ok()?;
    serde_json::from_slice(&buf).ok()
}

/// The keys an entry for `registry` may have in an auth file.
fn keys_for(registry: &str) -> Vec<String> {
    let mut keys = vec![
        registry.to_string(),
        format!("https://{registry}"),
        format!("http://{registry}"),
    ];
    if registry == "docker.io" {
        keys.push("https://index.docker.io/v1/".into());
        keys.push("index.docker.io".into());
        keys.push("registry-1.docker.io".into());
    }
    keys
}

/// Credentials for `registry` from the first file that has them.
pub fn lookup(registry: &str) -> Option<Credentials> {
    auth_files().iter().find_map(|f| {
        let v = read_json(f)?;
        let auths = v.get("auths")?.as_object()?;
        keys_for(registry).iter().find_map(|k| {
            let enc = auths.get(k)?.get("auth")?.as_str()?;
            let dec = base64_decode(enc)?;
            let s = String::from_utf8(dec).ok()?;
            let (u, p) = s.split_once(':')?;
            Some(Credentials {
                username: u.to_string(),
                password: p.to_string(),
            })
        })
    })
}

/// Store credentials for `registry` in the primary file (mode 0600).
pub fn save(registry: &str, creds: &Credentials) -> Result<PathBuf, AuthError> {
    let path = primary_file().ok_or(AuthError::NoPlace)?;
    let mut v = read_json(&path).unwrap_or_else(|| Value::Object(Map::new()));
    if !v.is_object() {
        v = Value::Object(Map::new());
    }
    let obj = v.as_object_mut().expect("an object");
    let auths = obj
        .entry("auths")
        .or_insert_with(|| Value::Object(Map::new()));
    if !auths.is_object() {
        *auths = Value::Object(Map::new());
    }
    auths.as_object_mut().expect("an object").insert(
        registry.to_string(),
        serde_json::json!({ "auth": creds.encoded() }),
    );
    write(&path, &v)?;
    Ok(path)
}

/// Forget `registry`'s credentials; whether there were any.
pub fn remove(registry: &str) -> Result<bool, AuthError> {
    let path = primary_file().ok_or(AuthError::NoPlace)?;
    let Some(mut v) = read_json(&path) else {
        return Ok(false);
    };
    let mut removed = false;
    if let Some(auths) = v.get_mut("auths").and_then(Value::as_object_mut) {
        for k in keys_for(registry) {
            removed |= auths.remove(&k).is_some();
        }
    }
    if removed {
        write(&path, &v)?;
    }
    Ok(removed)
}

fn write(path: &PathBuf, v: &Value) -> Result<(), AuthError> {
    let err = |reason: String| AuthError::File {
        op: "write",
        path: path.clone(),
        reason,
    };
    if let Some(dir) = path.parent() {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|e| err(e.to_string()))?;
    }
    // Written 0600 from the start: the file holds passwords.
    let bytes = serde_json::to_vec_pretty(v).expect("json serializes");
    let tmp = path.with_extension(format!("json.{}", std::process::id()));
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let _ = std::fs::remove_file(&tmp);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(|e| err(e.to_string()))?;
    f.write_all(&bytes)
        .and_then(|_| f.sync_all())
        .map_err(|e| err(e.to_string()))?;
    std::fs::rename(&tmp, path).map_err(|e| err(e.to_string()))
}

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

pub fn base64_encode(data: &[u8]) -> String {
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (b[0] as u32) << 16 | (b[1] as u32) << 8 | b[2] as u32;
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(B64[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

pub fn base64_decode(s: &str) -> Option<Vec<u8>> {
    let s = s.trim().trim_end_matches('=');
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let mut acc = 0u32;
    let mut bits = 0;
    for c in s.bytes() {
        let v = B64.iter().position(|&x| x == c)? as u32;
        acc = acc << 6 | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_round_trips() {
        for s in ["", "a", "ab", "abc", "user:pa:ss", "hutch:secret"] {
            assert_eq!(
                base64_decode(&base64_encode(s.as_bytes())).unwrap(),
                s.as_bytes()
            );
        }
        assert_eq!(base64_encode(b"hutch:secret"), "aHV0Y2g6c2VjcmV0");
        assert!(base64_decode("!!").is_none());
    }
}
