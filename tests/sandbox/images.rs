//! Images against real registries (Debian's docker-registry on 127.0.0.1,
//! over HTTP, TLS, and TLS with basic auth; see scripts/start-registry.sh)
//! and a tiny fake registry in this file for what a real one will not do
//! (serve a blob that does not match its digest, or a hostile layer).
//! Every hutch runs as an unprivileged user with its own data dir.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock};

use hutch::image::reference::Digest;

use crate::harness::{chown, hutch, project_dir, scratch, Hutch, User};

pub const PLAIN: &str = "127.0.0.1:5790";
const TLS: &str = "127.0.0.1:5791";
const AUTH: &str = "127.0.0.1:5792";
pub const REGISTRY_DIR: &str = "/tmp/hutch-registry";

/// Start the registries and push the test images, once per test run.
pub fn registries() {
    static READY: OnceLock<()> = OnceLock::new();
    READY.get_or_init(|| {
        let script = |name: &str, args: &[&str], creds: Option<&str>| {
            let mut c = Command::new("bash");
            c.arg(project_dir().join("scripts").join(name))
                .args(args)
                .stdout(Stdio::null());
            if let Some(cr) = creds {
                c.env("DEST_CREDS", cr);
            }
            assert!(
                c.status().unwrap().success(),
                "scripts/{name} {args:?} failed"
            );
        };
        script("start-registry.sh", &[], None);
        script("build-test-images.sh", &[PLAIN], None);
        script("build-test-images.sh", &[TLS], None);
        script("build-test-images.sh", &[AUTH], Some("hutch:hutch-secret"));
    });
}

/// A fresh data dir for one test and user.
pub fn data(user: User, name: &str) -> PathBuf {
    registries();
    scratch(user, &format!("img-{name}"))
}

pub fn h(user: User, data: &Path) -> Hutch {
    hutch(user).env("HUTCH_DATA_DIR", data)
}

fn image(reg: &str, name: &str) -> String {
    format!("{reg}/hutch/{name}")
}

pub fn images_json(user: User, data: &Path) -> Vec<serde_json::Value> {
    let out = h(user, data).args(["images", "--format", "json"]).run();
    serde_json::from_str(out.ok()).unwrap()
}

/// Pull quietly; the image id.
fn pull_id(user: User, data: &Path, image: &str) -> String {
    let out = h(user, data).args(["pull", "-q", image]).run();
    out.ok().trim().to_string()
}

/// The manifest digest of the only image in the store.
fn manifest_digest(user: User, data: &Path) -> String {
    let list = images_json(user, data);
    list[0]["Digest"].as_str().unwrap().to_string()
}

/// Entries of `dir` (empty when missing).
pub fn entries(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .map(|d| {
            d.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn pull_by_tag_then_by_digest_and_run() {
    let d = data(User::Sub, "tag");
    let busybox = image(PLAIN, "busybox");
    let id = pull_id(User::Sub, &d, &busybox);
    assert!(id.starts_with("sha256:") && id.len() == 71, "{id}");
    let table = h(User::Sub, &d).args(["images"]).run().ok().to_string();
    let header = table.lines().next().unwrap();
    assert!(
        header.starts_with("REPOSITORY") && header.contains("IMAGE ID") && header.ends_with("SIZE"),
        "{table}"
    );
    assert!(
        table.contains(&format!("{busybox}  latest  {}", &id[7..19])),
        "{table}"
    );
    let quiet = h(User::Sub, &d)
        .args(["images", "-q"])
        .run()
        .ok()
        .to_string();
    assert_eq!(quiet.trim(), &id[7..19]);
    let out = h(User::Sub, &d)
        .args(["run", "--rm", &busybox, "echo", "hello from an image"])
        .run();
    assert_eq!(out.ok(), "hello from an image\n");

    // By digest, into another store: the same image.
    let digest = manifest_digest(User::Sub, &d);
    let d2 = data(User::Sub, "digest");
    let pinned = format!("{busybox}@{digest}");
    let id2 = h(User::Sub, &d2)
        .args(["pull", "-q", &pinned])
        .run()
        .ok()
        .trim()
        .to_string();
    assert_eq!(id2, id);
    let out = h(User::Sub, &d2)
        .args(["run", "--rm", "--pull=never", &pinned, "true"])
        .run();
    out.ok();
    // A digest the registry does not have.
    let missing = format!("{busybox}@sha256:{}", "0".repeat(64));
    h(User::Sub, &d2)
        .args(["pull", &missing])
        .run()
        .fails_with(125, "not found");
    h(User::Sub, &d2)
        .args(["pull", "Bad/Name"])
        .run()
        .fails_with(125, "invalid reference");
}

#[test]
fn run_pulls_when_missing_and_never_means_never() {
    let d = data(User::Sub, "policy");
    let busybox = image(PLAIN, "busybox");
    h(User::Sub, &d)
        .args(["run", "--rm", "--pull=never", &busybox, "true"])
        .run()
        .fails_with(125, "not in the store");
    let out = h(User::Sub, &d)
        .args(["run", "--rm", "-q", &busybox, "echo", "pulled"])
        .run();
    assert_eq!(out.ok(), "pulled\n");
    h(User::Sub, &d)
        .args(["run", "--rm", "--pull=always", "-q", &busybox, "true"])
        .run()
        .ok();
}

#[test]
fn manifest_list_gives_this_machines_platform() {
    let d = data(User::Sub, "multi");
    let multi = image(PLAIN, "multi");
    let out = h(User::Sub, &d)
        .args([
            "run",
            "--rm",
            &multi,
            "sh",
            "-c",
            "test -x /bin/busybox && echo native",
        ])
        .run();
    assert_eq!(out.ok(), "native\n");
    // The other platform's image holds one file naming its architecture.
    let other = if std::env::consts::ARCH == "aarch64" {
        "amd64"
    } else {
        "arm64"
    };
    let d2 = data(User::Sub, "multi-other");
    h(User::Sub, &d2)
        .args([
            "pull",
            "-q",
            "--platform",
            &format!("linux/{other}"),
            &multi,
        ])
        .run()
        .ok();
    let layers = d2.join("layers");
    let found: Vec<String> = entries(&layers)
        .iter()
        .filter_map(|l| std::fs::read_to_string(layers.join(l).join("fs/arch")).ok())
        .collect();
    assert_eq!(found, vec![format!("{other}\n")]);
    h(User::Sub, &d2)
        .args(["pull", "--platform", "linux/s390x", &multi])
        .run()
        .fails_with(125, "no image for platform linux/s390x");
}

#[test]
fn gzip_zstd_plain_layers_whiteouts_and_opaque_dirs() {
    let d = data(User::Sub, "layered");
    let layered = image(PLAIN, "layered");
    let script = "test -e /etc/deleteme && echo deleteme-visible; ls /opt/old; cat /srv/top; stat -c %u:%g /home/apt/file";
    let out = h(User::Sub, &d)
        .args(["run", "--rm", "-q", &layered, "sh", "-c", script])
        .run();
    // The whiteout hides /etc/deleteme, the opaque /opt/old hides a and b,
    // and _apt's file keeps uid 42 through the subuid range.
    assert_eq!(out.ok(), "new\ntop\n42:42\n");
    assert_eq!(entries(&d.join("layers")).len(), 3);
}

#[test]
fn one_uid_collapses_ownership() {
    let d = data(User::NoSub, "collapse");
    let layered = image(PLAIN, "layered");
    let out = h(User::NoSub, &d)
        .args([
            "run",
            "--rm",
            "-q",
            &layered,
            "stat",
            "-c",
            "%u",
            "/home/apt/file",
        ])
        .run();
    assert_eq!(out.ok(), "0\n");
}

#[test]
fn image_config_entrypoint_cmd_env_workdir_user() {
    let d = data(User::Sub, "config");
    let config = image(PLAIN, "config");
    let run = |args: &[&str]| {
        let mut a = vec!["run", "--rm", "-q"];
        a.extend_from_slice(args);
        h(User::Sub, &d).args(a).run()
    };
    assert_eq!(run(&[&config]).ok(), "ep default-cmd\n");
    assert_eq!(run(&[&config, "given"]).ok(), "ep given\n");
    let out = run(&["--entrypoint", "sh", &config, "-c", "echo $FOO; pwd; id -u"]);
    assert_eq!(out.ok(), "from-image\n/opt/old\n1000\n");
    let out = run(&[
        "--entrypoint",
        "sh",
        "-u",
        "0",
        "-w",
        "/",
        "-e",
        "FOO=flag",
        &config,
        "-c",
        "echo $FOO; pwd; id -u",
    ]);
    assert_eq!(out.ok(), "flag\n/\n0\n");
    // The image's StopSignal is the container's.
    let created = h(User::Sub, &d).args(["create", &config]).run();
    let id = created.ok().trim().to_string();
    let inspect = h(User::Sub, &d).args(["inspect", &id]).run();
    assert!(
        inspect.ok().contains("\"StopSignal\": \"SIGUSR1\""),
        "{inspect:#?}"
    );
}

#[test]
fn tls_registry_with_a_configured_ca() {
    let user = User::Sub;
    let d = data(user, "tls");
    // The user's own trust for this registry, as Podman reads it.
    let acct = user.account();
    let certs = acct.home.join(".config/containers/certs.d").join(TLS);
    std::fs::create_dir_all(&certs).unwrap();
    std::fs::copy(Path::new(REGISTRY_DIR).join("ca.crt"), certs.join("ca.crt")).unwrap();
    for p in [
        acct.home.join(".config"),
        acct.home.join(".config/containers"),
        acct.home.join(".config/containers/certs.d"),
        certs.clone(),
        certs.join("ca.crt"),
    ] {
        chown(&p, acct.uid, acct.gid);
    }
    let busybox = image(TLS, "busybox");
    let out = h(user, &d).args(["pull", &busybox]).run();
    out.ok();
    // Not a terminal: one plain line per layer, no bars.
    let lines: Vec<&str> = out.stderr.lines().collect();
    assert!(
        lines.iter().any(|l| l.contains(": downloading (")),
        "{out:#?}"
    );
    assert!(lines.iter().any(|l| l.contains(": done (")), "{out:#?}");
    assert!(!out.stderr.contains('\x1b'), "{out:#?}");
    let out = h(user, &d)
        .args(["run", "--rm", &busybox, "echo", "over tls"])
        .run();
    assert_eq!(out.ok(), "over tls\n");
}

#[test]
fn basic_auth_login_wrong_password_and_logout() {
    let user = User::Sub;
    let d = data(user, "auth");
    let authfile = d.join("auth.json");
    let busybox = image(AUTH, "busybox");
    let hh = || h(user, &d).env("REGISTRY_AUTH_FILE", &authfile);
    hh().args(["pull", "-q", &busybox])
        .run()
        .fails_with(125, "authentication to 127.0.0.1:5792 failed");
    hh().args([
        "login",
        AUTH,
        "-u",
        "hutch",
        "--password-stdin",
        "--tls-verify=false",
    ])
    .stdin("wrong-password\n")
    .run()
    .fails_with(125, "authentication to 127.0.0.1:5792 failed");
    assert!(!authfile.exists());
    hh().args(["pull", "-q", "--creds", "hutch:wrong", &busybox])
        .run()
        .fails_with(125, "refused the credentials");
    let out = hh()
        .args([
            "login",
            AUTH,
            "-u",
            "hutch",
            "--password-stdin",
            "--tls-verify=false",
        ])
        .stdin("hutch-secret\n")
        .run();
    assert!(out.ok().contains("Login Succeeded"));
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&authfile).unwrap().permissions().mode() & 0o777,
        0o600
    );
    hh().args(["pull", "-q", &busybox]).run().ok();
    hh().args(["logout", AUTH]).run().ok();
    hh().args(["rmi", &busybox]).run().ok();
    hh().args(["pull", "-q", &busybox])
        .run()
        .fails_with(125, "authentication");
}

/// A registry that serves whatever it is given: `/v2/` and
/// `/v2/<repo>/{manifests,blobs}/<ref>` from a map, nothing else; entries
/// are cut as their [`Cut`] says, and `Range: bytes=N-` is honoured unless
/// it says otherwise. With a token policy it answers like Docker Hub: 401
/// and a Bearer challenge pointing at its own `/token`, which hands out a
/// token (to anyone, or for one user's Basic credentials) that every other
/// request must then carry. Every request is logged.
pub struct FakeRegistry {
    pub addr: String,
    pub log: Arc<Mutex<Vec<Request>>>,
}

/// One request the fake registry answered.
#[derive(Debug, Clone)]
pub struct Request {
    pub path: String,
    /// The Range header, if any.
    pub range: Option<String>,
    /// Status and body bytes sent.
    pub status: u16,
    pub sent: usize,
}

impl FakeRegistry {
    /// The requests for paths ending in `suffix`.
    pub fn requests(&self, suffix: &str) -> Vec<Request> {
        let log = self.log.lock().unwrap();
        log.iter()
            .filter(|r| r.path.ends_with(suffix))
            .cloned()
            .collect()
    }
}

/// How the fake registry cuts a body short.
#[derive(Clone, Copy, PartialEq, Debug)]
pub enum Cut {
    /// Never.
    None,
    /// Every time: half of it, then it hangs up (Range ignored).
    Always,
    /// The first request gets half and a hang-up; later ones are whole.
    Once,
    /// As `Once`, but later requests ignore Range (200, whole body).
    OnceIgnoringRange,
    /// As `Once`, but the first half sent is corrupted.
    CorruptOnce,
    /// The first request gets half, then the connection stays open,
    /// silent, until the client goes.
    Stall,
}

#[derive(Clone)]
pub struct Served {
    content_type: String,
    body: Vec<u8>,
    cut: Cut,
}

#[derive(Clone)]
enum Token {
    None,
    Anonymous,
    For(String),
}

const TOKEN: &str = "fake-token-123";

impl FakeRegistry {
    pub fn start(routes: HashMap<String, Served>) -> FakeRegistry {
        FakeRegistry::start_with(routes, Token::None)
    }

    fn start_with(routes: HashMap<String, Served>, token: Token) -> FakeRegistry {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let routes = Arc::new(routes);
        let log: Arc<Mutex<Vec<Request>>> = Arc::default();
        let me = addr.clone();
        let shared = log.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(conn) = conn else { continue };
                let (routes, token, me) = (routes.clone(), token.clone(), me.clone());
                let log = shared.clone();
                std::thread::spawn(move || serve(conn, &routes, &token, &me, &log));
            }
        });
        FakeRegistry { addr, log }
    }
}

/// Answer a blob or manifest as its [`Cut`] says; `earlier` requests of the
/// same path came before. Returns the status, headers and body to send,
/// and whether to stall after sending.
fn cut_response(s: &Served, range: Option<&str>, earlier: usize) -> (u16, String, Vec<u8>, bool) {
    let len = s.body.len();
    let first = earlier == 0;
    let head = |status: &str, extra: &str, n: usize| {
        format!(
            "HTTP/1.1 {status}\r\nContent-Type: {}\r\nContent-Length: {n}\r\n{extra}Connection: close\r\n\r\n",
            s.content_type
        )
    };
    let half = |body: &[u8]| body[..len / 2].to_vec();
    match s.cut {
        Cut::Always => return (200, head("200 OK", "", len), half(&s.body), false),
        Cut::Once | Cut::OnceIgnoringRange if first => {
            return (200, head("200 OK", "", len), half(&s.body), false)
        }
        Cut::Stall if first => return (200, head("200 OK", "", len), half(&s.body), true),
        Cut::CorruptOnce if first => {
            let bad: Vec<u8> = s.body.iter().map(|b| b ^ 0x55).collect();
            return (200, head("200 OK", "", len), half(&bad), false);
        }
        _ => {}
    }
    let from = range
        .and_then(|r| r.strip_prefix("bytes="))
        .and_then(|r| r.strip_suffix('-'))
        .and_then(|n| n.parse::<usize>().ok());
    match from {
        Some(n) if n < len && s.cut != Cut::OnceIgnoringRange => {
            let extra = format!("Content-Range: bytes {n}-{}/{len}\r\n", len - 1);
            (
                206,
                head("206 Partial Content", &extra, len - n),
                s.body[n..].to_vec(),
                false,
            )
        }
        _ => (200, head("200 OK", "", len), s.body.clone(), false),
    }
}

fn serve(
    mut conn: std::net::TcpStream,
    routes: &HashMap<String, Served>,
    token: &Token,
    me: &str,
    log: &Mutex<Vec<Request>>,
) {
    let mut reader = BufReader::new(conn.try_clone().unwrap());
    let mut line = String::new();
    if reader.read_line(&mut line).is_err() {
        return;
    }
    let mut authorization = String::new();
    let mut range = None;
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h).unwrap_or(0) == 0 || h == "\r\n" {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            if k.eq_ignore_ascii_case("authorization") {
                authorization = v.trim().to_string();
            }
            if k.eq_ignore_ascii_case("range") {
                range = Some(v.trim().to_string());
            }
        }
    }
    let path = line.split_whitespace().nth(1).unwrap_or("").to_string();
    let challenge = format!(
        "HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Bearer realm=\"http://{me}/token\",service=\"fake\"\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    );
    let ok = |ct: &str, body: &[u8], n: usize| {
        let mut r = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: {ct}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        )
        .into_bytes();
        r.extend_from_slice(&body[..n]);
        r
    };
    let resp = if let Some(query) = path.strip_prefix("/token?") {
        let allowed = match token {
            Token::None => false,
            Token::Anonymous => true,
            Token::For(basic) => authorization == format!("Basic {basic}"),
        };
        if allowed && query.contains("scope=repository:hutch/") {
            let body = format!("{{\"token\":\"{TOKEN}\"}}");
            ok("application/json", body.as_bytes(), body.len())
        } else {
            b"HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".to_vec()
        }
    } else if !matches!(token, Token::None) && authorization != format!("Bearer {TOKEN}") {
        challenge.into_bytes()
    } else if path == "/v2/" {
        ok("application/json", b"{}", 2)
    } else {
        match routes.get(&path) {
            Some(s) => {
                let earlier = log
                    .lock()
                    .unwrap()
                    .iter()
                    .filter(|r| r.path == path)
                    .count();
                let (status, head, body, stall) = cut_response(s, range.as_deref(), earlier);
                log.lock().unwrap().push(Request {
                    path: path.clone(),
                    range: range.clone(),
                    status,
                    sent: body.len(),
                });
                let _ = conn.write_all(head.as_bytes());
                let _ = conn.write_all(&body);
                let _ = conn.flush();
                if stall {
                    // Until the client hangs up (or is killed).
                    let mut sink = [0u8; 512];
                    while matches!(std::io::Read::read(&mut conn, &mut sink), Ok(n) if n > 0) {}
                }
                return;
            }
            None => {
                b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".to_vec()
            }
        }
    };
    let _ = conn.write_all(&resp);
    let _ = conn.flush();
}

/// An image of one layer for the fake registry, under `repo:latest`.
/// `served_layer` is what the blob URL returns (normally `layer` itself).
pub fn fake_image(
    repo: &str,
    layer: &[u8],
    served_layer: Vec<u8>,
    cut: Cut,
) -> HashMap<String, Served> {
    let diff = Digest::of(layer);
    let layer_digest = Digest::of(layer);
    let config = format!(
        r#"{{"architecture":"amd64","os":"linux","config":{{"Cmd":["sh"]}},"rootfs":{{"type":"layers","diff_ids":["{diff}"]}}}}"#
    );
    let config_digest = Digest::of(config.as_bytes());
    let manifest = format!(
        r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{config_digest}","size":{}}},"layers":[{{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"{layer_digest}","size":{}}}]}}"#,
        config.len(),
        layer.len()
    );
    let mut m = HashMap::new();
    let json = |ct: &str, b: Vec<u8>| Served {
        content_type: ct.into(),
        body: b,
        cut: Cut::None,
    };
    m.insert(
        format!("/v2/{repo}/manifests/latest"),
        json(
            "application/vnd.oci.image.manifest.v1+json",
            manifest.into_bytes(),
        ),
    );
    m.insert(
        format!("/v2/{repo}/blobs/{config_digest}"),
        json("application/octet-stream", config.into_bytes()),
    );
    m.insert(
        format!("/v2/{repo}/blobs/{layer_digest}"),
        Served {
            content_type: "application/octet-stream".into(),
            body: served_layer,
            cut,
        },
    );
    m
}

/// A tar of raw entries `(name, type, data-or-link)`, names written as is.
pub fn raw_tar(entries: &[(&str, tar::EntryType, &[u8])]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (path, kind, data) in entries {
        let mut hd = tar::Header::new_gnu();
        hd.set_entry_type(*kind);
        hd.set_mode(0o644);
        hd.as_old_mut().name[..path.len()].copy_from_slice(path.as_bytes());
        let body: &[u8] = if matches!(kind, tar::EntryType::Symlink | tar::EntryType::Link) {
            hd.as_old_mut().linkname[..data.len()].copy_from_slice(data);
            &[]
        } else {
            data
        };
        hd.set_size(body.len() as u64);
        hd.set_cksum();
        b.append(&hd, body).unwrap();
    }
    b.into_inner().unwrap()
}

/// Nothing kept: no layer, no work dir, no image.
fn assert_store_empty(user: User, d: &Path) {
    assert!(
        entries(&d.join("layers")).is_empty(),
        "layers kept: {:?}",
        entries(&d.join("layers"))
    );
    assert!(
        entries(&d.join("tmp")).is_empty(),
        "work dirs kept: {:?}",
        entries(&d.join("tmp"))
    );
    assert!(images_json(user, d).is_empty());
}

#[test]
fn a_blob_that_does_not_match_its_digest_is_refused_and_not_kept() {
    let d = data(User::Sub, "mismatch");
    let layer = raw_tar(&[("file", tar::EntryType::Regular, b"the real content")]);
    let evil = raw_tar(&[("file", tar::EntryType::Regular, b"swapped content!")]);
    let reg = FakeRegistry::start(fake_image("hutch/swapped", &layer, evil, Cut::None));
    h(User::Sub, &d)
        .args(["pull", &format!("{}/hutch/swapped", reg.addr)])
        .run()
        .fails_with(125, "does not match its digest");
    assert_store_empty(User::Sub, &d);
}

#[test]
fn an_interrupted_download_leaves_no_corrupt_store() {
    let d = data(User::Sub, "interrupted");
    let layer = raw_tar(&[("file", tar::EntryType::Regular, &[7u8; 100_000])]);
    let reg = FakeRegistry::start(fake_image("hutch/cut", &layer, layer.clone(), Cut::Always));
    let out = h(User::Sub, &d)
        .args(["pull", &format!("{}/hutch/cut", reg.addr)])
        .run();
    assert_eq!(out.code, 125, "{out:#?}");
    assert_store_empty(User::Sub, &d);
}

#[test]
fn hostile_layers_are_refused_with_nothing_written_outside() {
    use tar::EntryType as T;
    let user = User::Sub;
    let outside = scratch(user, "img-hostile-outside");
    let target = outside.display().to_string();
    let cases: Vec<(&str, Vec<u8>)> = vec![
        (
            "traversal",
            raw_tar(&[("../../../../../../../tmp/hutch-escape", T::Regular, b"x")]),
        ),
        (
            "absolute",
            raw_tar(&[(&format!("{target}/abs"), T::Regular, b"x")]),
        ),
        (
            "symlink-then-file",
            raw_tar(&[
                ("link", T::Symlink, target.as_bytes()),
                ("link/through", T::Regular, b"x"),
            ]),
        ),
        (
            "relative-symlink-then-file",
            raw_tar(&[
                ("up", T::Symlink, b"../../../../../../../.."),
                ("up/tmp/hutch-escape", T::Regular, b"x"),
            ]),
        ),
        (
            "hardlink-outside",
            raw_tar(&[("hard", T::Link, b"../../../../../../etc/passwd")]),
        ),
        (
            "hardlink-through-symlink",
            raw_tar(&[
                ("link", T::Symlink, b"/etc"),
                ("hard", T::Link, b"link/passwd"),
            ]),
        ),
    ];
    for (name, layer) in cases {
        let d = data(user, &format!("hostile-{name}"));
        let reg = FakeRegistry::start(fake_image(
            "hutch/hostile",
            &layer,
            layer.clone(),
            Cut::None,
        ));
        h(user, &d)
            .args(["pull", &format!("{}/hutch/hostile", reg.addr)])
            .run()
            .fails_with(125, "refusing layer");
        assert!(
            entries(&outside).is_empty(),
            "{name}: wrote {:?}",
            entries(&outside)
        );
        assert!(!Path::new("/tmp/hutch-escape").exists(), "{name}");
        assert_store_empty(user, &d);
    }
}

#[test]
fn load_oci_and_docker_archives() {
    let d = data(User::Sub, "load");
    for (file, name) in [
        ("busybox.oci.tar", "hutch/busybox-oci:latest"),
        ("busybox.docker.tar", "hutch/busybox-docker:latest"),
    ] {
        let path = Path::new(REGISTRY_DIR).join("images").join(file);
        let out = h(User::Sub, &d)
            .args(["load", "-q", "-i"])
            .arg_path(&path)
            .run();
        assert!(
            out.ok()
                .contains(&format!("Loaded image: docker.io/{name}")),
            "{out:#?}"
        );
        let out = h(User::Sub, &d)
            .args(["run", "--rm", "--pull=never", name, "echo", "loaded"])
            .run();
        assert_eq!(out.ok(), "loaded\n");
    }
    // Both archives hold the same layer: it is stored once.
    assert_eq!(entries(&d.join("layers")).len(), 1);
    let junk = d.join("junk.tar");
    std::fs::write(&junk, b"not a tar at all").unwrap();
    h(User::Sub, &d)
        .args(["load", "-i"])
        .arg_path(&junk)
        .run()
        .fails_with(125, "");
}

#[test]
fn rmi_refuses_while_a_container_uses_the_image_unless_forced() {
    let d = data(User::Sub, "rmi");
    let busybox = image(PLAIN, "busybox");
    let layered = image(PLAIN, "layered");
    h(User::Sub, &d).args(["pull", "-q", &busybox]).run().ok();
    h(User::Sub, &d).args(["pull", "-q", &layered]).run().ok();
    // A container of busybox (created, never started).
    h(User::Sub, &d)
        .args(["create", &busybox, "sh", "-c", "echo x > /written"])
        .run()
        .ok();
    h(User::Sub, &d)
        .args(["rmi", &busybox])
        .run()
        .fails_with(125, "is used by container");
    // Without containers: removed, with its own layers (owned by subuids).
    let out = h(User::Sub, &d).args(["rmi", &layered]).run();
    assert!(out.ok().contains("Deleted: sha256:"));
    assert!(
        h(User::Sub, &d)
            .args(["images", "-q"])
            .run()
            .ok()
            .lines()
            .count()
            == 1
    );
    h(User::Sub, &d).args(["rmi", "-f", &busybox]).run().ok();
    assert!(images_json(User::Sub, &d).is_empty());
    assert!(entries(&d.join("layers")).is_empty());
    h(User::Sub, &d)
        .args(["rmi", &busybox])
        .run()
        .fails_with(125, "not in the store");
}

#[test]
fn image_prune_removes_unnamed_images() {
    let d = data(User::Sub, "prune");
    let busybox = image(PLAIN, "busybox");
    let id = pull_id(User::Sub, &d, &busybox);
    let digest = manifest_digest(User::Sub, &d);
    h(User::Sub, &d).args(["rmi", &busybox]).run().ok();
    // Pulled by digest only: no name, dangling.
    h(User::Sub, &d)
        .args(["pull", "-q", &format!("{busybox}@{digest}")])
        .run()
        .ok();
    let table = h(User::Sub, &d).args(["images"]).run().ok().to_string();
    assert!(table.contains("<none>"), "{table}");
    let out = h(User::Sub, &d).args(["image", "prune"]).run();
    assert!(out.ok().contains(&format!("Deleted: {id}")), "{out:#?}");
    assert!(entries(&d.join("layers")).is_empty());
}

#[test]
fn concurrent_pulls_of_one_image_both_succeed() {
    let d = data(User::Sub, "concurrent");
    let layered = image(PLAIN, "layered");
    let spawn = || {
        let mut c = h(User::Sub, &d).args(["pull", "-q", &layered]);
        let cmd = c.command();
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
        cmd.spawn().unwrap()
    };
    let (a, b) = (spawn(), spawn());
    for child in [a, b] {
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    assert_eq!(images_json(User::Sub, &d).len(), 1);
    assert_eq!(entries(&d.join("layers")).len(), 3);
    assert!(entries(&d.join("tmp")).is_empty());
    let out = h(User::Sub, &d)
        .args(["run", "--rm", "--pull=never", &layered, "cat", "/srv/top"])
        .run();
    assert_eq!(out.ok(), "top\n");
}

#[test]
fn bearer_tokens_anonymous_and_with_credentials() {
    let layer = raw_tar(&[("hello", tar::EntryType::Regular, b"token world\n")]);
    let user = User::Sub;
    // Anonymous tokens, as Docker Hub gives for public images.
    let d = data(user, "token-anon");
    let reg = FakeRegistry::start_with(
        fake_image("hutch/tok", &layer, layer.clone(), Cut::None),
        Token::Anonymous,
    );
    h(user, &d)
        .args(["pull", "-q", &format!("{}/hutch/tok", reg.addr)])
        .run()
        .ok();
    // Tokens only for the right user and password.
    let basic = hutch::image::auth::base64_encode(b"alice:s3cret");
    let reg = FakeRegistry::start_with(
        fake_image("hutch/tok", &layer, layer.clone(), Cut::None),
        Token::For(basic),
    );
    let name = format!("{}/hutch/tok", reg.addr);
    let d = data(user, "token-creds");
    h(user, &d)
        .args(["pull", "-q", &name])
        .run()
        .fails_with(125, "the token server answered 401");
    h(user, &d)
        .args(["pull", "-q", "--creds", "alice:wrong", &name])
        .run()
        .fails_with(125, "authentication to 127.0.0.1");
    assert_store_empty(user, &d);
    h(user, &d)
        .args(["pull", "-q", "--creds", "alice:s3cret", &name])
        .run()
        .ok();
    assert_eq!(entries(&d.join("layers")).len(), 1);
}
