//! Extended attributes from layers: a layer built here with `setcap` and
//! `tar --xattrs` (PAX `SCHILY.xattr.*` records) carries a file capability
//! and a `user.*` attribute, which the sandbox sees; `trusted.*` and
//! `user.overlay.*` records are dropped (src/image/unpack.rs's unit tests
//! cover the other `security.*` ones); a
//! capability the kernel cannot take costs a warning, not the image. The
//! capability grants nothing: every capability is dropped and
//! no_new_privs is set in the sandbox.

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::process::Command;

use crate::harness::{programs_dir, scratch, User};
use crate::images::{data, entries, fake_image, h, Cut, FakeRegistry};

/// A v2 `security.capability`: cap_net_raw (13), permitted and effective,
/// as `setcap cap_net_raw+ep` writes it.
fn cap_net_raw_ep() -> Vec<u8> {
    [0x0200_0001u32, 1 << 13, 0, 0, 0]
        .iter()
        .flat_map(|w| w.to_le_bytes())
        .collect()
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn host_xattr(p: &Path, name: &str) -> Option<Vec<u8>> {
    let p = CString::new(p.as_os_str().as_bytes()).unwrap();
    let n = CString::new(name).unwrap();
    let mut buf = vec![0u8; 256];
    // SAFETY: valid C strings and a buffer of the length given.
    let r = unsafe { libc::lgetxattr(p.as_ptr(), n.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
    (r >= 0).then(|| {
        buf.truncate(r as usize);
        buf
    })
}

fn set_xattr(p: &Path, name: &str, value: &[u8]) {
    let pc = CString::new(p.as_os_str().as_bytes()).unwrap();
    let n = CString::new(name).unwrap();
    // SAFETY: valid C strings and a value slice with its length.
    let r = unsafe {
        libc::lsetxattr(
            pc.as_ptr(),
            n.as_ptr(),
            value.as_ptr().cast(),
            value.len(),
            0,
        )
    };
    assert_eq!(
        r,
        0,
        "setxattr {name} on {}: {}",
        p.display(),
        std::io::Error::last_os_error()
    );
}

/// The layer, made as an image build would: `setcap` on a file, other
/// attributes set as root, `tar --xattrs` (GNU tar's PAX records).
fn layer() -> Vec<u8> {
    let dir = scratch(User::Sub, "xattrs-layer");
    let capped = dir.join("capped");
    std::fs::copy(programs_dir().join("xattrs"), &capped).unwrap();
    let status = Command::new("setcap")
        .arg("cap_net_raw+ep")
        .arg(&capped)
        .status()
        .expect("run setcap (libcap2-bin; scripts/setup-host.sh installs it)");
    assert!(status.success());
    set_xattr(&capped, "user.note", b"hello");
    set_xattr(&capped, "trusted.evil", b"x");
    set_xattr(&capped, "user.overlay.redirect", b"/etc");
    // A capability bound to another namespace's root (uid 1000): refused.
    let foreign = dir.join("foreign");
    std::fs::write(&foreign, b"\x7fELF").unwrap();
    let v3: Vec<u8> = [0x0300_0001u32, 1 << 13, 0, 0, 0, 1000]
        .iter()
        .flat_map(|w| w.to_le_bytes())
        .collect();
    set_xattr(&foreign, "security.capability", &v3);
    let out = Command::new("tar")
        .args([
            "--xattrs",
            "--xattrs-include=*",
            "--numeric-owner",
            "--owner=0",
            "--group=0",
            "-cf",
            "-",
            "-C",
        ])
        .arg(&dir)
        .args(["capped", "foreign"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

#[test]
fn file_capabilities_and_user_xattrs_come_from_layers_and_grant_nothing() {
    let layer = layer();
    // With a subordinate range, and with one uid only (where the store's
    // and the sandbox's namespace root is the user too).
    for user in [User::Sub, User::NoSub] {
        check_layer(user, &layer);
    }
}

fn check_layer(user: User, layer: &[u8]) {
    let d = data(user, "xattrs");
    let reg = FakeRegistry::start(fake_image("hutch/caps", layer, layer.to_vec(), Cut::None));
    let name = format!("{}/hutch/caps", reg.addr);
    let out = h(user, &d).args(["pull", "-q", &name]).run();
    out.ok();
    // The one refused capability: a warning naming the file, not a failure.
    assert!(
        out.stderr
            .contains("cannot keep extended attribute security.capability of /foreign"),
        "{out:#?}"
    );
    assert_eq!(out.stderr.matches("warning").count(), 1, "{out:#?}");

    // On the host: a v3 capability whose root id is the user's own uid
    // (root of the store's and the sandbox's user namespace), so it means
    // nothing outside them; the skipped attributes are absent.
    let layers = entries(&d.join("layers"));
    let capped = d.join("layers").join(&layers[0]).join("fs/capped");
    let stored = host_xattr(&capped, "security.capability").expect("a capability on the host");
    assert_eq!(stored.len(), 24, "{}", hex(&stored));
    assert_eq!(stored[3], 3, "revision 3: {}", hex(&stored));
    let uid = user.account().uid;
    assert_eq!(stored[20..24], uid.to_le_bytes(), "{}", hex(&stored));
    for skipped in ["trusted.evil", "user.overlay.redirect"] {
        assert_eq!(host_xattr(&capped, skipped), None, "{skipped}");
    }

    // Inside the sandbox: the capability reads back as setcap wrote it,
    // the user attribute too; running the file gains nothing.
    let out = h(user, &d)
        .args([
            "run",
            "--rm",
            "--pull=never",
            &name,
            "/capped",
            "/capped",
            "security.capability",
            "user.note",
        ])
        .run();
    let text = out.ok();
    assert!(
        text.contains(&format!("security.capability={}", hex(&cap_net_raw_ep()))),
        "{text}"
    );
    assert!(
        text.contains(&format!("user.note={}", hex(b"hello"))),
        "{text}"
    );
    for set in ["CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"] {
        assert!(
            text.contains(&format!("{set}:\t0000000000000000")),
            "{set} not empty: {text}"
        );
    }
}
