//! Interrupted pulls resume: the fake registry of `images` cuts a layer's
//! download short (or hutch is killed in the middle of it), or a proxy in
//! front of the real registry hangs up mid-blob, and the next attempt asks
//! only for the rest with `Range: bytes=N-`; registries that ignore Range,
//! and kept bytes that turn out wrong, make it start over. Every case ends
//! with a valid store: the layer whole, no partial left.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hutch::image::reference::Digest;

use crate::harness::User;
use crate::images::{data, entries, fake_image, h, images_json, raw_tar, Cut, FakeRegistry, PLAIN};

/// Incompressible bytes, so the layer's size is what the test says.
fn noise(n: usize) -> Vec<u8> {
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

fn file_len(p: &Path) -> u64 {
    std::fs::metadata(p).map_or(0, |m| m.len())
}

/// The one layer in the store holds `file` with `content`.
fn assert_layer_holds(d: &Path, content: &[u8]) {
    let layers = entries(&d.join("layers"));
    assert_eq!(layers.len(), 1, "{layers:?}");
    let got = std::fs::read(d.join("layers").join(&layers[0]).join("fs/file")).unwrap();
    assert!(got == content, "the unpacked file differs");
    assert!(
        entries(&d.join("blobs/.partial")).is_empty(),
        "a partial download was kept: {:?}",
        entries(&d.join("blobs/.partial"))
    );
}

struct Case {
    layer: Vec<u8>,
    content: Vec<u8>,
    digest: Digest,
}

fn case() -> Case {
    let content = noise(1 << 20);
    let layer = raw_tar(&[("file", tar::EntryType::Regular, &content)]);
    Case {
        digest: Digest::of(&layer),
        layer,
        content,
    }
}

#[test]
fn a_killed_pull_resumes_where_it_stopped() {
    let user = User::Sub;
    let d = data(user, "resume-kill");
    let c = case();
    let reg = FakeRegistry::start(fake_image(
        "hutch/resume",
        &c.layer,
        c.layer.clone(),
        Cut::Stall,
    ));
    let name = format!("{}/hutch/resume", reg.addr);
    // The first pull gets half the layer, then the registry goes silent;
    // hutch (and its store helper: one process group) is killed for real.
    let mut first = h(user, &d).args(["pull", "-q", &name]);
    first.command().process_group(0);
    let live = first.spawn();
    let partial = d.join("blobs/.partial").join(c.digest.hex());
    let half = (c.layer.len() / 2) as u64;
    let deadline = Instant::now() + Duration::from_secs(60);
    while file_len(&partial) < half {
        assert!(
            Instant::now() < deadline,
            "the partial download never reached {half} bytes ({})",
            file_len(&partial)
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    // SAFETY: killing the process group of the hutch this test spawned.
    assert_eq!(unsafe { libc::kill(-live.pid(), libc::SIGKILL) }, 0);
    let out = live.finish();
    assert_eq!(out.code, -1, "{out:#?}");
    assert!(entries(&d.join("layers")).is_empty());
    assert_eq!(file_len(&partial), half);

    // The second pull fetches only the rest, and the store is valid.
    let out = h(user, &d).args(["pull", &name]).run();
    out.ok();
    assert!(out.stderr.contains("resuming at"), "{out:#?}");
    let blob = reg.requests(&format!("/blobs/{}", c.digest));
    assert_eq!(blob.len(), 2, "{blob:#?}");
    assert_eq!(blob[0].range, None);
    assert_eq!(blob[0].sent as u64, half);
    assert_eq!(blob[1].range.as_deref(), Some(&*format!("bytes={half}-")));
    assert_eq!(blob[1].status, 206);
    assert_eq!(blob[1].sent as u64, c.layer.len() as u64 - half);
    assert_layer_holds(&d, &c.content);
    assert_eq!(images_json(user, &d).len(), 1);
    assert!(
        entries(&d.join("tmp")).is_empty(),
        "work dirs kept: {:?}",
        entries(&d.join("tmp"))
    );
}

#[test]
fn a_dropped_connection_resumes_or_starts_over() {
    let user = User::Sub;
    let c = case();
    let len = c.layer.len();
    let half = len / 2;
    let range = format!("bytes={half}-");
    // (cut, the blob requests expected: (Range asked, status, bytes sent))
    type Expected<'a> = Vec<(Option<&'a str>, u16, usize)>;
    let cases: Vec<(Cut, Expected)> = vec![
        // Resumed within the same pull: only the rest comes again.
        (
            Cut::Once,
            vec![(None, 200, half), (Some(&range), 206, len - half)],
        ),
        // A registry that ignores Range: the whole blob again, from zero.
        (
            Cut::OnceIgnoringRange,
            vec![(None, 200, half), (Some(&range), 200, len)],
        ),
        // The kept half was wrong: the resumed blob fails its digest, the
        // partial goes and the next attempt starts from zero.
        (
            Cut::CorruptOnce,
            vec![
                (None, 200, half),
                (Some(&range), 206, len - half),
                (None, 200, len),
            ],
        ),
    ];
    for (cut, want) in cases {
        let d = data(user, &format!("resume-{cut:?}"));
        let reg = FakeRegistry::start(fake_image("hutch/resume", &c.layer, c.layer.clone(), cut));
        h(user, &d)
            .args(["pull", "-q", &format!("{}/hutch/resume", reg.addr)])
            .run()
            .ok();
        let got: Vec<(Option<String>, u16, usize)> = reg
            .requests(&format!("/blobs/{}", c.digest))
            .into_iter()
            .map(|r| (r.range, r.status, r.sent))
            .collect();
        let want: Vec<(Option<String>, u16, usize)> = want
            .into_iter()
            .map(|(r, s, n)| (r.map(String::from), s, n))
            .collect();
        assert_eq!(got, want, "{cut:?}");
        assert_layer_holds(&d, &c.content);
        assert_eq!(images_json(user, &d).len(), 1, "{cut:?}");
    }
}

/// One request that passed through [`CuttingProxy`], and the bytes of its
/// response (head and body) sent back to hutch.
#[derive(Debug, Clone, Default)]
struct Proxied {
    path: String,
    range: Option<String>,
    status: u16,
    bytes_back: usize,
    /// The body bytes sent before the proxy hung up (0: not cut).
    cut_after: usize,
}

/// A TCP proxy in front of the real registry that hangs up, once, in the
/// middle of the first large blob: after `cut` bytes of its body.
struct CuttingProxy {
    addr: String,
    log: Arc<Mutex<Vec<Proxied>>>,
}

impl CuttingProxy {
    fn start(upstream: &'static str, cut: usize) -> CuttingProxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let log: Arc<Mutex<Vec<Proxied>>> = Arc::default();
        let done = Arc::new(AtomicBool::new(false));
        let shared = log.clone();
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { continue };
                let Ok(server) = TcpStream::connect(upstream) else {
                    continue;
                };
                let (log, done) = (shared.clone(), done.clone());
                std::thread::spawn(move || relay(client, server, log, done, cut));
            }
        });
        CuttingProxy { addr, log }
    }
}

/// The end of an HTTP head (after "\r\n\r\n") in `buf`, if it is complete.
fn head_end(buf: &[u8]) -> Option<usize> {
    buf.windows(4).position(|w| w == b"\r\n\r\n").map(|i| i + 4)
}

fn relay(
    client: TcpStream,
    server: TcpStream,
    log: Arc<Mutex<Vec<Proxied>>>,
    done: Arc<AtomicBool>,
    cut: usize,
) {
    // The index in `log` of the request this connection is answering.
    let current: Arc<Mutex<Option<usize>>> = Arc::default();
    let (mut c_in, mut s_out) = (client.try_clone().unwrap(), server.try_clone().unwrap());
    let (log2, current2) = (log.clone(), current.clone());
    // Requests: their heads logged (GETs, no bodies), then forwarded as
    // they came: logged first, so that no answer can come back before its
    // request is the current one (under load it did, and was counted as
    // the previous request's).
    std::thread::spawn(move || {
        let mut pending = Vec::new();
        let mut buf = [0u8; 16384];
        while let Ok(n) = c_in.read(&mut buf) {
            if n == 0 {
                break;
            }
            pending.extend_from_slice(&buf[..n]);
            while let Some(end) = head_end(&pending) {
                let head = String::from_utf8_lossy(&pending[..end]).into_owned();
                pending.drain(..end);
                let path = head.split_whitespace().nth(1).unwrap_or("").to_string();
                let range = head
                    .lines()
                    .find_map(|l| {
                        l.strip_prefix("Range:")
                            .or_else(|| l.strip_prefix("range:"))
                    })
                    .map(|v| v.trim().to_string());
                let mut log = log2.lock().unwrap();
                log.push(Proxied {
                    path,
                    range,
                    ..Proxied::default()
                });
                *current2.lock().unwrap() = Some(log.len() - 1);
            }
            if s_out.write_all(&buf[..n]).is_err() {
                break;
            }
        }
        let _ = s_out.shutdown(Shutdown::Write);
    });
    // Responses: forwarded, counted, and the first large blob cut short.
    let (mut s_in, mut c_out) = (server, client);
    let mut head = Vec::new();
    let mut body_left = 0usize;
    let mut cutting = false;
    let mut body_sent = 0usize;
    let mut buf = [0u8; 16384];
    loop {
        let n = match s_in.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let mut chunk = &buf[..n];
        while !chunk.is_empty() {
            let idx = *current.lock().unwrap();
            if body_left == 0 {
                // A new response head.
                head.extend_from_slice(chunk);
                let Some(end) = head_end(&head) else {
                    if c_out.write_all(chunk).is_err() {
                        return;
                    }
                    if let Some(i) = idx {
                        log.lock().unwrap()[i].bytes_back += chunk.len();
                    }
                    chunk = &[];
                    continue;
                };
                let text = String::from_utf8_lossy(&head[..end]).into_owned();
                let in_chunk = end - (head.len() - chunk.len());
                head.clear();
                let status = text.split_whitespace().nth(1).and_then(|s| s.parse().ok());
                body_left = text
                    .lines()
                    .find_map(|l| {
                        let (k, v) = l.split_once(':')?;
                        k.eq_ignore_ascii_case("content-length")
                            .then(|| v.trim().parse().ok())?
                    })
                    .unwrap_or(0);
                cutting = body_left > 2 * cut && !done.swap(true, Ordering::SeqCst);
                body_sent = 0;
                if let Some(i) = idx {
                    let mut log = log.lock().unwrap();
                    log[i].status = status.unwrap_or(0);
                    log[i].bytes_back += in_chunk;
                }
                if c_out.write_all(&chunk[..in_chunk]).is_err() {
                    return;
                }
                chunk = &chunk[in_chunk..];
                continue;
            }
            let mut take = chunk.len().min(body_left);
            if cutting {
                take = take.min(cut - body_sent);
            }
            if c_out.write_all(&chunk[..take]).is_err() {
                return;
            }
            body_left -= take;
            body_sent += take;
            if let Some(i) = idx {
                log.lock().unwrap()[i].bytes_back += take;
            }
            chunk = &chunk[take..];
            if cutting && body_sent == cut {
                if let Some(i) = idx {
                    log.lock().unwrap()[i].cut_after = cut;
                }
                let _ = c_out.shutdown(Shutdown::Both);
                let _ = s_in.shutdown(Shutdown::Both);
                return;
            }
        }
    }
    let _ = c_out.shutdown(Shutdown::Write);
}

#[test]
fn a_pull_cut_off_by_a_proxy_resumes_against_the_real_registry() {
    let user = User::Sub;
    let d = data(user, "resume-proxy");
    // busybox's one layer is about 2.5 MB: cut after 1 MB of it.
    let cut = 1 << 20;
    let proxy = CuttingProxy::start(PLAIN, cut);
    let name = format!("{}/hutch/busybox", proxy.addr);
    let out = h(user, &d).args(["pull", &name]).run();
    out.ok();
    assert!(out.stderr.contains("resuming at"), "{out:#?}");
    let log = proxy.log.lock().unwrap().clone();
    let blobs: Vec<&Proxied> = log.iter().filter(|p| p.path.contains("/blobs/")).collect();
    let first = blobs
        .iter()
        .position(|p| p.cut_after > 0)
        .unwrap_or_else(|| panic!("no blob was cut: {log:#?}"));
    let again = blobs[first + 1..]
        .iter()
        .find(|p| p.path == blobs[first].path)
        .unwrap_or_else(|| panic!("the cut blob was not asked again: {log:#?}"));
    // The registry's own 206: only the rest came the second time.
    let kept: usize = again
        .range
        .as_deref()
        .and_then(|r| r.strip_prefix("bytes="))
        .and_then(|r| r.strip_suffix('-'))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no Range on the second request: {again:#?}"));
    assert!(
        kept > 0 && kept <= cut,
        "resumed at {kept} after {cut} sent"
    );
    assert_eq!(again.status, 206, "{again:#?}");
    assert!(again.bytes_back < 2 * (1 << 20), "{again:#?}");
    // A valid store: the image runs, nothing partial is left.
    let out = h(user, &d)
        .args(["run", "--rm", "--pull=never", &name, "echo", "resumed"])
        .run();
    assert_eq!(out.ok(), "resumed\n");
    assert!(entries(&d.join("blobs/.partial")).is_empty());
}
