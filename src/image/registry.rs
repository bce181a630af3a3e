//! A client of the distribution API v2: manifests and blobs, with anonymous
//! bearer tokens (`WWW-Authenticate: Bearer realm=...`), basic auth and
//! credentials from the auth files. Synchronous (ureq with rustls): the
//! threads that use it live in the store helper, never in the process that
//! clones a sandbox.
//!
//! HTTPS always, except for registries on 127.0.0.0/8 (and localhost) or
//! named with `--tls-verify=false`, which may fall back to plain HTTP as
//! Docker's "insecure registries" do. A CA for a private registry is read
//! from `certs.d/<host:port>/*.crt` under `~/.config/containers`,
//! `/etc/containers` or `/etc/docker`.

use std::io::Read;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::auth::{self, Credentials};
use super::manifest::{ACCEPT, MAX_MANIFEST};
use super::reference::{Digest, Reference};

/// Transient failures are retried this many times in all.
pub const ATTEMPTS: u32 = 4;

#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("cannot reach registry {registry}: {reason}{hint}")]
    Unreachable {
        registry: String,
        reason: String,
        hint: &'static str,
    },
    #[error("authentication to {registry} failed: {reason} (hint: check the user name and password; `hutch login {registry}`)")]
    Auth { registry: String, reason: String },
    #[error("{what} {reference}: not found in {registry} (hint: check the name and tag)")]
    NotFound {
        what: &'static str,
        reference: String,
        registry: String,
    },
    #[error("registry {registry} answered {status} for {url}{hint}")]
    Status {
        registry: String,
        status: u16,
        url: String,
        hint: &'static str,
    },
    #[error("{what} {expected} from {registry} does not match its digest (got {got}); refused and not kept")]
    DigestMismatch {
        what: &'static str,
        registry: String,
        expected: String,
        got: Digest,
    },
    #[error("{what} from {registry} is larger than the {limit} bytes it may be; refused")]
    TooLarge {
        what: &'static str,
        registry: String,
        limit: u64,
    },
    #[error("reading {what} from {registry}: {source}")]
    Read {
        what: &'static str,
        registry: String,
        source: std::io::Error,
    },
}

impl RegistryError {
    /// Worth another attempt: the network or the server hiccuped.
    pub fn is_transient(&self) -> bool {
        match self {
            RegistryError::Unreachable { .. } | RegistryError::Read { .. } => true,
            RegistryError::Status { status, .. } => *status >= 500 || *status == 429,
            _ => false,
        }
    }
}

type R<T> = Result<T, RegistryError>;

#[derive(Debug, Clone, Default)]
enum AuthState {
    #[default]
    None,
    Basic(String),
    Bearer(String),
}

/// A client for one repository on one registry.
#[derive(Clone)]
pub struct Client {
    agent: ureq::Agent,
    base: String,
    pub registry: String,
    repository: String,
    creds: Option<Credentials>,
    auth: Arc<Mutex<AuthState>>,
}

impl Client {
    /// Connect to `r`'s registry: choose the scheme, learn how it wants to
    /// be authenticated, and authenticate.
    pub fn connect(r: &Reference, tls_verify: bool) -> R<Client> {
        Client::connect_with(r, tls_verify, auth::lookup(&r.registry))
    }

    pub fn connect_with(r: &Reference, tls_verify: bool, creds: Option<Credentials>) -> R<Client> {
        let host = r.api_host().to_string();
        let insecure_ok = r.is_loopback() || !tls_verify;
        let ca = ca_certs(&r.registry);
        let mut attempts: Vec<(&str, bool)> = Vec::new();
        if insecure_ok {
            // As Docker treats insecure registries: TLS first (verified when
            // a CA is configured), then plain HTTP.
            attempts.push(("https", !ca.is_empty() && tls_verify));
            attempts.push(("http", false));
        } else {
            attempts.push(("https", true));
        }
        let mut last = None;
        for (scheme, verify) in attempts {
            let agent = agent(verify, &ca);
            let base = format!("{scheme}://{host}");
            let mut client = Client {
                agent,
                base,
                registry: r.registry.clone(),
                repository: r.repository.clone(),
                creds: creds.clone(),
                auth: Arc::default(),
            };
            match client.ping() {
                Ok(()) => return Ok(client),
                Err(e @ RegistryError::Unreachable { .. }) => last = Some(e),
                Err(e) => return Err(e),
            }
        }
        Err(last.expect("at least one attempt"))
    }

    fn unreachable(&self, e: ureq::Error) -> RegistryError {
        let reason = e.to_string();
        let hint = if reason.contains("certificate")
            || reason.contains("Certificate")
            || reason.contains("tls")
        {
            " (hint: the registry's TLS certificate is not trusted; put its CA in ~/.config/containers/certs.d/HOST:PORT/ca.crt, or use --tls-verify=false)"
        } else {
            ""
        };
        RegistryError::Unreachable {
            registry: self.registry.clone(),
            reason,
            hint,
        }
    }

    /// `GET /v2/`: 200 (open) or 401 with a challenge.
    fn ping(&mut self) -> R<()> {
        let url = format!("{}/v2/", self.base);
        let resp = self
            .agent
            .get(&url)
            .call()
            .map_err(|e| self.unreachable(e))?;
        match resp.status().as_u16() {
            200..=299 => Ok(()),
            401 => {
                let ch = header(&resp, "www-authenticate").unwrap_or_default();
                self.authenticate(&ch)
            }
            s => Err(RegistryError::Status {
                registry: self.registry.clone(),
                status: s,
                url,
                hint: " (hint: is this a registry serving the v2 API?)",
            }),
        }
    }

    /// Answer a `WWW-Authenticate` challenge.
    fn authenticate(&self, challenge: &str) -> R<()> {
        let (scheme, params) = parse_challenge(challenge);
        let state = if scheme.eq_ignore_ascii_case("basic") {
            let c = self.creds.as_ref().ok_or_else(|| RegistryError::Auth {
                registry: self.registry.clone(),
                reason: "the registry wants a user name and password and none are stored".into(),
            })?;
            AuthState::Basic(format!("Basic {}", c.encoded()))
        } else if scheme.eq_ignore_ascii_case("bearer") {
            let token = self.fetch_token(&params)?;
            AuthState::Bearer(token)
        } else {
            return Err(RegistryError::Auth {
                registry: self.registry.clone(),
                reason: format!("unsupported challenge {challenge:?}"),
            });
        };
        *self.auth.lock().expect("auth lock") = state;
        Ok(())
    }

    fn fetch_token(&self, params: &[(String, String)]) -> R<String> {
        let get = |k: &str| params.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        let realm = get("realm").ok_or_else(|| RegistryError::Auth {
            registry: self.registry.clone(),
            reason: "a bearer challenge without a realm".into(),
        })?;
        // Never send credentials in the clear to anywhere but this machine.
        let realm_loopback = realm.strip_prefix("http://").map(|rest| {
            let host = rest.split(['/', ':']).next().unwrap_or("");
            host == "localhost"
                || host
                    .parse::<std::net::Ipv4Addr>()
                    .is_ok_and(|a| a.is_loopback())
        });
        if !(realm.starts_with("https://") || realm_loopback == Some(true)) {
            return Err(RegistryError::Auth {
                registry: self.registry.clone(),
                reason: format!("the token realm {realm:?} is not HTTPS"),
            });
        }
        let mut url = format!("{realm}?scope=repository:{}:pull", self.repository);
        if let Some(s) = get("service") {
            url.push_str("&service=");
            url.push_str(&urlencode(s));
        }
        let mut req = self.agent.get(&url);
        if let Some(c) = &self.creds {
            req = req.header("Authorization", &format!("Basic {}", c.encoded()));
        }
        let mut resp = req.call().map_err(|e| self.unreachable(e))?;
        let status = resp.status().as_u16();
        if status == 401 || status == 403 {
            return Err(RegistryError::Auth {
                registry: self.registry.clone(),
                reason: format!("the token server answered {status}"),
            });
        }
        if status != 200 {
            return Err(RegistryError::Status {
                registry: self.registry.clone(),
                status,
                url,
                hint: "",
            });
        }
        let body = read_capped(resp.body_mut().as_reader(), 1 << 20).map_err(|source| {
            RegistryError::Read {
                what: "a token",
                registry: self.registry.clone(),
                source,
            }
        })?;
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
        v.get("token")
            .or_else(|| v.get("access_token"))
            .and_then(|t| t.as_str())
            .map(String::from)
            .ok_or_else(|| RegistryError::Auth {
                registry: self.registry.clone(),
                reason: "the token server gave no token".into(),
            })
    }

    fn auth_header(&self) -> Option<String> {
        match &*self.auth.lock().expect("auth lock") {
            AuthState::None => None,
            AuthState::Basic(h) => Some(h.clone()),
            AuthState::Bearer(token) => Some(format!("Bearer {token}")),
        }
    }

    /// GET `path` under the repository, authenticated, renewing an expired
    /// token once.
    fn get(
        &self,
        path: &str,
        accept: Option<&str>,
        from: Option<u64>,
    ) -> R<ureq::http::Response<ureq::Body>> {
        let url = format!("{}/v2/{}/{}", self.base, self.repository, path);
        for round in 0..2 {
            let mut req = self.agent.get(&url);
            if let Some(a) = accept {
                req = req.header("Accept", a);
            }
            if let Some(start) = from {
                req = req.header("Range", &format!("bytes={start}-"));
            }
            if let Some(h) = self.auth_header() {
                req = req.header("Authorization", &h);
            }
            let resp = req.call().map_err(|e| self.unreachable(e))?;
            match resp.status().as_u16() {
                200..=299 => return Ok(resp),
                401 if round == 0 => {
                    let ch = header(&resp, "www-authenticate").unwrap_or_default();
                    let was_basic =
                        matches!(*self.auth.lock().expect("auth lock"), AuthState::Basic(_));
                    if was_basic {
                        return Err(RegistryError::Auth {
                            registry: self.registry.clone(),
                            reason: "the registry refused the credentials (401)".into(),
                        });
                    }
                    self.authenticate(&ch)?;
                }
                401 | 403 => {
                    return Err(RegistryError::Auth {
                        registry: self.registry.clone(),
                        reason: format!(
                            "access to {} denied ({})",
                            self.repository,
                            resp.status().as_u16()
                        ),
                    })
                }
                404 => {
                    return Err(RegistryError::NotFound {
                        what: if path.starts_with("blobs") {
                            "blob"
                        } else {
                            "manifest"
                        },
                        reference: format!(
                            "{}/{}",
                            self.repository,
                            path.rsplit('/').next().unwrap_or("")
                        ),
                        registry: self.registry.clone(),
                    })
                }
                s => {
                    return Err(RegistryError::Status {
                        registry: self.registry.clone(),
                        status: s,
                        url,
                        hint: "",
                    })
                }
            }
        }
        unreachable!("the loop returns")
    }

    /// Check that the registry accepts our credentials (for `login`).
    pub fn check_credentials(&self) -> R<()> {
        let url = format!("{}/v2/", self.base);
        let mut req = self.agent.get(&url);
        if let Some(h) = self.auth_header() {
            req = req.header("Authorization", &h);
        }
        let resp = req.call().map_err(|e| self.unreachable(e))?;
        match resp.status().as_u16() {
            200..=299 => Ok(()),
            s => Err(RegistryError::Auth {
                registry: self.registry.clone(),
                reason: format!("the registry answered {s}"),
            }),
        }
    }

    /// A manifest or index by tag or digest: its bytes, content type and
    /// digest (verified when asked for by digest).
    pub fn manifest(&self, reference: &str) -> R<(Vec<u8>, Option<String>, Digest)> {
        retry(|| {
            let mut resp = self.get(&format!("manifests/{reference}"), Some(ACCEPT), None)?;
            let ct = header(&resp, "content-type");
            let bytes =
                read_capped(resp.body_mut().as_reader(), MAX_MANIFEST).map_err(|source| {
                    if is_too_large(&source) {
                        RegistryError::TooLarge {
                            what: "a manifest",
                            registry: self.registry.clone(),
                            limit: MAX_MANIFEST,
                        }
                    } else {
                        RegistryError::Read {
                            what: "a manifest",
                            registry: self.registry.clone(),
                            source,
                        }
                    }
                })?;
            let got = Digest::of(&bytes);
            if let Some(want) = Digest::parse(reference) {
                if want != got {
                    return Err(RegistryError::DigestMismatch {
                        what: "manifest",
                        registry: self.registry.clone(),
                        expected: want.to_string(),
                        got,
                    });
                }
            }
            Ok((bytes, ct, got))
        })
    }

    /// A small blob (a config), read whole and verified.
    pub fn small_blob(&self, d: &Digest, size: u64) -> R<Vec<u8>> {
        retry(|| {
            let reader = self.blob(d)?;
            let bytes = read_capped(reader, size).map_err(|source| RegistryError::Read {
                what: "a blob",
                registry: self.registry.clone(),
                source,
            })?;
            let got = Digest::of(&bytes);
            if &got != d {
                return Err(RegistryError::DigestMismatch {
                    what: "blob",
                    registry: self.registry.clone(),
                    expected: d.to_string(),
                    got,
                });
            }
            Ok(bytes)
        })
    }

    /// A blob's body as a stream; the caller verifies it.
    pub fn blob(&self, d: &Digest) -> R<impl Read + Send + 'static> {
        let resp = self.get(&format!("blobs/{d}"), None, None)?;
        Ok(resp.into_body().into_reader())
    }

    /// A blob's body from byte `from` on, and where it really starts: `from`
    /// when the registry honoured the Range request (206 with a matching
    /// Content-Range), 0 when it sent the whole blob instead (200), or when
    /// it could not satisfy the range (416: the whole blob is asked again).
    pub fn blob_from(&self, d: &Digest, from: u64) -> R<(Box<dyn Read + Send>, u64)> {
        if from == 0 {
            return Ok((Box::new(self.blob(d)?), 0));
        }
        let resp = match self.get(&format!("blobs/{d}"), None, Some(from)) {
            Err(RegistryError::Status { status: 416, .. }) => {
                return Ok((Box::new(self.blob(d)?), 0))
            }
            r => r?,
        };
        let start = match resp.status().as_u16() {
            206 => {
                let range = header(&resp, "content-range").unwrap_or_default();
                if content_range_start(&range) != Some(from) {
                    // Not the bytes asked for: start over with the whole blob.
                    drop(resp);
                    return Ok((Box::new(self.blob(d)?), 0));
                }
                from
            }
            _ => 0,
        };
        Ok((Box::new(resp.into_body().into_reader()), start))
    }

    pub fn mismatch(&self, expected: &Digest, got: Digest) -> RegistryError {
        RegistryError::DigestMismatch {
            what: "blob",
            registry: self.registry.clone(),
            expected: expected.to_string(),
            got,
        }
    }
}

/// Run `f` until it succeeds or fails for good, backing off between tries.
pub fn retry<T>(mut f: impl FnMut() -> R<T>) -> R<T> {
    let mut delay = Duration::from_millis(250);
    let mut n = 1;
    loop {
        match f() {
            Err(e) if e.is_transient() && n < ATTEMPTS => {
                std::thread::sleep(delay);
                delay *= 2;
                n += 1;
            }
            other => return other,
        }
    }
}

fn agent(verify: bool, ca: &[ureq::tls::Certificate<'static>]) -> ureq::Agent {
    let mut tls = ureq::tls::TlsConfig::builder();
    if !verify {
        tls = tls.disable_verification(true);
    } else if !ca.is_empty() {
        tls = tls.root_certs(ureq::tls::RootCerts::new_with_certs(ca));
    }
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .tls_config(tls.build())
        .timeout_connect(Some(Duration::from_secs(30)))
        .timeout_recv_response(Some(Duration::from_secs(60)))
        .timeout_per_read(Some(Duration::from_secs(60)))
        .user_agent(concat!("hutch/", env!("CARGO_PKG_VERSION")))
        .build()
        .into()
}

/// CA certificates configured for `registry` (`host:port`).
fn ca_certs(registry: &str) -> Vec<ureq::tls::Certificate<'static>> {
    let mut dirs: Vec<PathBuf> = Vec::new();
    if let Some(h) = std::env::var_os("HOME").filter(|h| !h.is_empty()) {
        dirs.push(PathBuf::from(h).join(".config/containers/certs.d"));
    }
    dirs.push(PathBuf::from("/etc/containers/certs.d"));
    dirs.push(PathBuf::from("/etc/docker/certs.d"));
    let mut out = Vec::new();
    for d in dirs {
        let Ok(entries) = std::fs::read_dir(d.join(registry)) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.extension().is_some_and(|x| x == "crt") {
                if let Ok(pem) = std::fs::read(&p) {
                    for item in ureq::tls::parse_pem(&pem).flatten() {
                        if let ureq::tls::PemItem::Certificate(c) = item {
                            out.push(c);
                        }
                    }
                }
            }
        }
    }
    out
}

fn header(resp: &ureq::http::Response<ureq::Body>, name: &str) -> Option<String> {
    resp.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(String::from)
}

/// Read at most `max` bytes; more is a [`TooLarge`] error.
pub fn read_capped(r: impl Read, max: u64) -> std::io::Result<Vec<u8>> {
    let mut buf = Vec::new();
    r.take(max + 1).read_to_end(&mut buf)?;
    if buf.len() as u64 > max {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            TooLarge(max),
        ));
    }
    Ok(buf)
}

/// The error [`read_capped`] gives for more than `max` bytes.
#[derive(Debug, thiserror::Error)]
#[error("more than {0} bytes")]
pub struct TooLarge(pub u64);

pub fn is_too_large(e: &std::io::Error) -> bool {
    e.get_ref().is_some_and(|inner| inner.is::<TooLarge>())
}

/// The first byte of a `Content-Range: bytes START-END/TOTAL`.
fn content_range_start(h: &str) -> Option<u64> {
    let rest = h.trim().strip_prefix("bytes")?.trim_start();
    rest.split('-').next()?.trim().parse().ok()
}

/// `Bearer realm="x",service="y"` as ("Bearer", [(realm, x), (service, y)]).
pub fn parse_challenge(h: &str) -> (String, Vec<(String, String)>) {
    let h = h.trim();
    let (scheme, rest) = h.split_once(' ').unwrap_or((h, ""));
    let mut params = Vec::new();
    let mut s = rest.trim();
    while !s.is_empty() {
        let Some((k, after)) = s.split_once('=') else {
            break;
        };
        let k = k.trim().trim_start_matches(',').trim().to_ascii_lowercase();
        let after = after.trim_start();
        let (v, next) = if let Some(q) = after.strip_prefix('"') {
            match q.find('"') {
                Some(end) => (&q[..end], &q[end + 1..]),
                None => (q, ""),
            }
        } else {
            match after.find(',') {
                Some(end) => (&after[..end], &after[end..]),
                None => (after, ""),
            }
        };
        params.push((k, v.to_string()));
        s = next.trim_start_matches(',').trim();
    }
    (scheme.to_string(), params)
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_ranges() {
        assert_eq!(content_range_start("bytes 100-199/200"), Some(100));
        assert_eq!(content_range_start("bytes 0-0/1"), Some(0));
        assert_eq!(content_range_start("bytes */200"), None);
        assert_eq!(content_range_start("items 1-2/3"), None);
    }

    #[test]
    fn challenges() {
        let (s, p) = parse_challenge(
            r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/busybox:pull""#,
        );
        assert_eq!(s, "Bearer");
        assert_eq!(
            p[0],
            ("realm".into(), "https://auth.docker.io/token".into())
        );
        assert_eq!(p[1], ("service".into(), "registry.docker.io".into()));
        assert_eq!(p[2].1, "repository:library/busybox:pull");
        let (s, p) = parse_challenge(r#"Basic realm="Registry Realm""#);
        assert_eq!(s, "Basic");
        assert_eq!(p[0].1, "Registry Realm");
    }
}
