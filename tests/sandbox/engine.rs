//! The sandbox engine: namespaces, id maps, rootfs, capabilities, exit codes.

use crate::harness::{hutch, User};

#[test]
fn root_inside_with_the_full_subuid_range() {
    let out = hutch(User::Sub)
        .run_rootfs(["sh", "-c", "id -u; cat /proc/self/uid_map"])
        .run();
    let text = out.ok();
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some("0"));
    let map: Vec<Vec<u64>> = lines
        .map(|l| l.split_whitespace().map(|n| n.parse().unwrap()).collect())
        .collect();
    assert_eq!(map[0], vec![0, User::Sub.uid() as u64, 1]);
    assert_eq!(map[1][0], 1);
    assert_eq!(map[1][2], 65536);
}

#[test]
fn one_uid_without_a_subuid_range() {
    let out = hutch(User::NoSub)
        .run_rootfs(["cat", "/proc/self/uid_map"])
        .run();
    let map: Vec<u64> = out
        .ok()
        .split_whitespace()
        .map(|n| n.parse().unwrap())
        .collect();
    assert_eq!(map, vec![0, User::NoSub.uid() as u64, 1]);
}

#[test]
fn no_capabilities_and_no_new_privs() {
    let out = hutch(User::Sub)
        .run_rootfs(["cat", "/proc/self/status"])
        .run();
    let status = out.ok();
    for field in ["CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"] {
        let line = status
            .lines()
            .find(|l| l.starts_with(field))
            .unwrap_or_else(|| panic!("{field} missing"));
        assert!(line.ends_with("0000000000000000"), "{line}");
    }
    assert!(status.lines().any(|l| l == "NoNewPrivs:\t1"), "{status}");
}

#[test]
fn exit_codes_follow_docker() {
    assert_eq!(
        hutch(User::Sub)
            .run_rootfs(["sh", "-c", "exit 3"])
            .run()
            .code,
        3
    );
    assert_eq!(
        hutch(User::Sub)
            .run_rootfs(["sh", "-c", "kill -9 $$"])
            .run()
            .code,
        137
    );
    hutch(User::Sub)
        .run_rootfs(["no-such-command"])
        .run()
        .fails_with(127, "executable file not found");
    hutch(User::Sub)
        .run_rootfs(["/etc/passwd"])
        .run()
        .fails_with(126, "/etc/passwd");
}

/// Regression: the device binds were made nodev, so /dev/null could not be
/// opened and busybox sh failed to start background jobs.
#[test]
fn device_nodes_work() {
    let out = hutch(User::NoSub)
        .run_rootfs([
            "sh",
            "-c",
            "echo x > /dev/null && head -c 3 /dev/zero | wc -c && head -c 8 /dev/urandom | wc -c",
        ])
        .run();
    assert_eq!(out.ok().split_whitespace().collect::<Vec<_>>(), ["3", "8"]);
}
