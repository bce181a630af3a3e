//! The built-in `host` root: the host's system directories read-only, and
//! nothing private of the host visible.

use std::os::unix::fs::PermissionsExt;

use crate::harness::{hutch, scratch, User};

/// Marker files planted as root where a sandbox must not see them.
fn plant_markers() -> Vec<std::path::PathBuf> {
    let sub = User::Sub.account();
    let other = User::NoSub.account();
    let paths = vec![
        sub.home.join("hutch-marker-own-home"),
        other.home.join("hutch-marker-other-home"),
        std::path::PathBuf::from("/root/hutch-marker-root"),
        std::path::PathBuf::from("/tmp/hutch-marker-host-tmp"),
        std::path::PathBuf::from("/var/tmp/hutch-marker-var-tmp"),
    ];
    for p in &paths {
        std::fs::write(p, "secret").unwrap();
        // World-readable: only the sandbox's view may hide them.
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o644)).unwrap();
    }
    // The user's own home is the user's; make the marker theirs too.
    crate::harness::chown(&paths[0], sub.uid, sub.gid);
    paths
}

#[test]
fn host_root_hides_homes_root_and_host_tmp() {
    let markers = plant_markers();
    // The markers (but /root's, behind its 0700) are really readable to the
    // user outside the sandbox...
    let readable: Vec<_> = markers.iter().filter(|m| !m.starts_with("/root")).collect();
    let outside = crate::harness::as_user(User::Sub, "cat")
        .args(&readable)
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&outside.stdout),
        "secret".repeat(readable.len())
    );
    // ...and not inside: neither by path nor anywhere in the tree.
    let mut script = String::new();
    for m in &markers {
        script.push_str(&format!("cat {} 2>/dev/null && echo LEAK; ", m.display()));
    }
    script.push_str(
        "find / -xdev -name 'hutch-marker*' 2>/dev/null; \
         find /home /root /tmp /var -name 'hutch-marker*' 2>/dev/null; \
         ls -A /home /tmp /root; echo end",
    );
    let out = hutch(User::Sub)
        .args(["run", "--rm", "host", "sh", "-c", &script])
        .run();
    assert_eq!(out.ok(), "/home:\n\n/root:\n\n/tmp:\nend\n", "{out:?}");
    for m in &markers {
        let _ = std::fs::remove_file(m);
    }
}

#[test]
fn host_root_system_dirs_are_read_only_and_tmp_is_private() {
    let before: Vec<_> = std::fs::read_dir("/tmp")
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    let out = hutch(User::Sub)
        .args([
            "run",
            "--rm",
            "host",
            "sh",
            "-c",
            "touch /usr/x || echo usr-ro; touch /etc/x || echo etc-ro; \
             echo t > /tmp/hutch-host-private && cat /tmp/hutch-host-private; id -u",
        ])
        .run();
    assert_eq!(out.ok(), "usr-ro\netc-ro\nt\n0\n");
    assert!(!std::path::Path::new("/tmp/hutch-host-private").exists());
    assert!(!std::path::Path::new("/usr/x").exists());
    let after: Vec<_> = std::fs::read_dir("/tmp")
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert!(after
        .iter()
        .all(|f| before.contains(f) || !f.to_string_lossy().contains("hutch-host")));
}

#[test]
fn host_root_with_a_volume_and_workdir_runs_a_local_tool() {
    // The desktop use: sandbox a downloaded binary in the current directory.
    let dir = scratch(User::Sub, "host-tool");
    std::fs::write(
        dir.join("tool"),
        "#!/bin/sh\necho tool ran in $(pwd) as $(id -u)\necho out > result\n",
    )
    .unwrap();
    std::fs::set_permissions(dir.join("tool"), std::fs::Permissions::from_mode(0o755)).unwrap();
    crate::harness::chown(&dir.join("tool"), User::Sub.uid(), User::Sub.account().gid);
    let out = hutch(User::Sub)
        .args([
            "run",
            "--rm",
            "-v",
            &format!("{}:/work", dir.display()),
            "-w",
            "/work",
            "host",
            "./tool",
        ])
        .run();
    assert_eq!(out.ok(), "tool ran in /work as 0\n");
    assert_eq!(
        std::fs::read_to_string(dir.join("result")).unwrap(),
        "out\n"
    );
}
