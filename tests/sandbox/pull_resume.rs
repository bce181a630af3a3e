//! Interrupted pulls resume: the fake registry of `images` cuts a layer's
//! download short (or hutch is killed in the middle of it), and the next
//! attempt asks only for the rest with `Range: bytes=N-`; registries that
//! ignore Range, and kept bytes that turn out wrong, make it start over.
//! Every case ends with a valid store: the layer whole, no partial left.

use std::os::unix::process::CommandExt;
use std::path::Path;
use std::time::{Duration, Instant};

use hutch::image::reference::Digest;

use crate::harness::User;
use crate::images::{data, entries, fake_image, h, images_json, raw_tar, Cut, FakeRegistry};

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
