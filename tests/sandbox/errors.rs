//! Bad input and unusable hosts: exit 125 and one line naming the problem.

use crate::harness::{as_user, hutch, hutch_bin, rootfs, Out, User};

#[track_caller]
fn one_line_125(out: &Out, needle: &str) {
    out.fails_with(125, needle);
    assert_eq!(out.stdout, "", "{out:?}");
    assert_eq!(out.stderr.lines().count(), 1, "not one line: {out:?}");
    assert!(out.stderr.starts_with("hutch: "), "{out:?}");
}

#[test]
fn a_missing_rootfs_is_named() {
    let out = hutch(User::Sub)
        .args(["run", "--rm", "--rootfs", "/nonexistent/rootfs", "true"])
        .run();
    one_line_125(&out, "/nonexistent/rootfs");
    let out = hutch(User::Sub).args(["run", "--rm"]).run();
    one_line_125(&out, "no root filesystem given");
}

#[test]
fn a_bad_volume_spec_is_named() {
    for spec in [
        "/tmp",
        "relative:/x",
        "/tmp:relative",
        "/tmp:/x:bogus",
        "/does-not-exist:/x",
    ] {
        let out = hutch(User::Sub)
            .args(["run", "--rm", "-v", spec, "--rootfs"])
            .arg_path(rootfs(User::Sub))
            .args(["true"])
            .run();
        one_line_125(&out, &format!("invalid volume spec {spec:?}"));
    }
}

#[test]
fn an_unknown_user_is_named() {
    let out = hutch(User::Sub)
        .args(["run", "--rm", "-u", "nosuchuser", "--rootfs"])
        .arg_path(rootfs(User::Sub))
        .args(["true"])
        .run();
    one_line_125(&out, "nosuchuser");
    // A uid the one-uid mapping cannot hold.
    let out = hutch(User::NoSub)
        .args(["run", "--rm", "-u", "1000", "--rootfs"])
        .arg_path(rootfs(User::NoSub))
        .args(["true"])
        .run();
    one_line_125(&out, "1000");
}

#[test]
fn an_unknown_userns_mode_is_named() {
    let out = hutch(User::Sub)
        .args(["run", "--rm", "--userns=private", "--rootfs"])
        .arg_path(rootfs(User::Sub))
        .args(["true"])
        .run();
    one_line_125(&out, "unknown --userns mode \"private\"");
}

#[test]
fn a_host_without_user_namespaces_is_explained() {
    // For real: inside a user namespace of its own, the test lowers
    // user.max_user_namespaces to 0, so hutch's clone fails (ENOSPC).
    let inner = format!(
        "echo 0 > /proc/sys/user/max_user_namespaces && exec {} run --rm --rootfs {} true",
        hutch_bin().display(),
        rootfs(User::Sub).display()
    );
    // Inside, hutch runs as uid 0: give it a runtime dir of its own.
    let runtime = crate::harness::scratch(User::Sub, "no-userns-runtime");
    let out = as_user(User::Sub, "unshare")
        .env("XDG_RUNTIME_DIR", &runtime)
        .args(["-Ur", "sh", "-c", &inner])
        .output()
        .unwrap();
    let out = Out {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    };
    one_line_125(&out, "cannot create the sandbox's namespaces");
    assert!(out.stderr.contains("max_user_namespaces"), "{out:?}");
}

#[test]
fn info_reports_the_host_in_text_and_json() {
    let text = hutch(User::Sub).args(["info"]).run();
    let text = text.ok();
    for needle in [
        "kernel:",
        "user namespaces:",
        "subuid range:",
        "landlock ABI:",
        "seccomp:",
        "cgroup:",
        "fuse-overlayfs:",
        "slirp4netns:",
        "pasta:",
    ] {
        assert!(text.contains(needle), "{needle} missing: {text}");
    }
    let out = hutch(User::Sub).args(["info", "--format", "json"]).run();
    let v: serde_json::Value = serde_json::from_str(out.ok()).expect("info --format json is JSON");
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap();
    assert_eq!(v["kernel"], release.trim());
    assert_eq!(v["user_namespaces"]["ok"], true);
    assert_eq!(v["id_mapping"]["host"]["uid"], User::Sub.uid());
    assert_eq!(v["id_mapping"]["host"]["subuid"]["count"], 65536);
    assert_eq!(v["id_mapping"]["auto"]["use_helpers"], true);
    assert_eq!(v["overlay"]["kernel_in_userns"]["ok"], true, "{v}");
    assert_eq!(v["overlay"]["will_use"], "kernel");
    assert!(v["landlock_abi"].as_u64().unwrap() >= 1);
    assert_eq!(v["seccomp"], true);
    for key in [
        "apparmor_restricts_userns",
        "cgroup",
        "network_helpers",
        "data_dir",
        "runtime_dir",
    ] {
        assert!(v.get(key).is_some(), "{key} missing: {v}");
    }
    // Without a subuid range, info says auto maps one uid.
    let out = hutch(User::NoSub).args(["info", "--format", "json"]).run();
    let v: serde_json::Value = serde_json::from_str(out.ok()).unwrap();
    assert!(v["id_mapping"]["host"]["subuid"].is_null(), "{v}");
    assert_eq!(
        v["id_mapping"]["auto"]["uid_map"].as_array().unwrap().len(),
        1
    );
}

#[test]
fn a_usage_error_is_one_line_with_a_pointer_to_help() {
    let out = hutch(User::Sub)
        .args(["run", "--no-such-flag", "host", "true"])
        .run();
    one_line_125(&out, "'--no-such-flag'");
    assert!(out.stderr.contains("hutch run --help"), "{out:?}");
    let out = hutch(User::Sub).args(["run", "--rm", "--userns"]).run();
    one_line_125(&out, "--userns");
}

#[test]
fn no_usable_overlay_is_a_clear_error() {
    // fuse-overlayfs asked for, and not on hutch's PATH.
    let out = hutch(User::Sub)
        .env("PATH", "/nonexistent")
        .args(["run", "--rm", "--overlay=fuse", "--rootfs"])
        .arg_path(rootfs(User::Sub))
        .args(["true"])
        .run();
    one_line_125(
        &out,
        "cannot mount overlay on /: fuse-overlayfs could not be run",
    );
    assert!(out.stderr.contains("install fuse-overlayfs"), "{out:?}");
    let out = hutch(User::Sub)
        .args(["run", "--rm", "--overlay=magic", "--rootfs"])
        .arg_path(rootfs(User::Sub))
        .args(["true"])
        .run();
    one_line_125(&out, "invalid --overlay \"magic\"");
}
