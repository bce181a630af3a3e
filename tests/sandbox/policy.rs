//! Seccomp and Landlock policies against the real kernel: the probe
//! (tests/probe/probe.c) tries each operation for real and prints the
//! errno the kernel answered.

use std::path::PathBuf;

use crate::harness::{as_user, hutch, probe_volume, project_dir, scratch, Out, User};

/// Everything the issue lists as refused by `default`.
const FORBIDDEN: &[&str] = &[
    "mount",
    "umount2",
    "unshare-user",
    "clone-newuser",
    "setns",
    "keyctl",
    "add_key",
    "bpf",
    "perf_event_open",
    "ptrace-sibling",
    "tiocsti",
    "init_module",
    "kexec_load",
    "reboot",
    "swapon",
    "acct",
    "settimeofday",
    "open_by_handle_at",
    "userfaultfd",
    "personality-read-implies-exec",
];

/// Run the probe in the busybox rootfs with extra `hutch run` flags.
fn probe_run(flags: &[&str], ops: &[&str]) -> Out {
    probe_run_as(User::Sub, flags, ops)
}

fn probe_run_as(user: User, flags: &[&str], ops: &[&str]) -> Out {
    let vol = probe_volume();
    let mut args: Vec<&str> = vec!["-v", &vol];
    args.extend_from_slice(flags);
    args.push("/probe/probe");
    args.extend_from_slice(ops);
    hutch(user).run_rootfs(args).run()
}

/// The probe's answer per op, asserting it ran and answered every op.
fn answers(out: &Out, ops: &[&str]) -> Vec<(String, String)> {
    let text = out.ok();
    let got: Vec<(String, String)> = text
        .lines()
        .filter_map(|l| l.split_once(": "))
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect();
    let names: Vec<&str> = got.iter().map(|(a, _)| a.as_str()).collect();
    assert_eq!(names, ops, "the probe did not answer every op: {out:#?}");
    got
}

#[track_caller]
fn assert_all(out: &Out, ops: &[&str], expected: &str) {
    let wrong: Vec<String> = answers(out, ops)
        .into_iter()
        .filter(|(_, e)| e != expected)
        .map(|(op, e)| format!("{op}: {e}"))
        .collect();
    assert!(
        wrong.is_empty(),
        "expected {expected} from every op, got {wrong:?}"
    );
}

/// A profile file the test user can read.
fn profile(name: &str, text: &str) -> PathBuf {
    let dir = scratch(User::Sub, name);
    let path = dir.join(format!("{name}.toml"));
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn default_refuses_every_listed_operation_with_eperm() {
    for user in [User::Sub, User::NoSub] {
        let out = probe_run_as(user, &[], FORBIDDEN);
        assert_all(&out, FORBIDDEN, "EPERM");
    }
}

/// EPERM could also come from the missing capabilities; a profile that
/// extends default with a distinctive errno shows that the filter is what
/// refuses each operation.
#[test]
fn the_seccomp_filter_is_what_refuses_them() {
    let marker = profile(
        "policy-marker",
        "extends = \"default\"\n[seccomp]\ndefault_errno = \"EHWPOISON\"\n",
    );
    let out = probe_run(&["--policy", marker.to_str().unwrap()], FORBIDDEN);
    assert_all(&out, FORBIDDEN, "EHWPOISON");

    // And without a filter, some of them do succeed in this sandbox.
    let succeed = [
        "unshare-user",
        "clone-newuser",
        "keyctl",
        "add_key",
        "personality-read-implies-exec",
    ];
    let out = probe_run(&["--policy", "unconfined"], &succeed);
    assert_all(&out, &succeed, "OK");
}

#[test]
fn tiocsti_on_the_sandbox_terminal_is_refused() {
    let vol = probe_volume();
    let root = crate::harness::rootfs(User::Sub);
    let cmd = format!(
        "{} run --rm -t -v {vol} --rootfs {} /probe/probe tiocsti-stdin",
        crate::harness::hutch_bin().display(),
        root.display()
    );
    let out = as_user(User::Sub, "script")
        .args(["-qec", &cmd, "/dev/null"])
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("tiocsti-stdin: EPERM"),
        "stdout: {text} stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn ordinary_programs_work_under_default() {
    let out = hutch(User::Sub)
        .run_rootfs([
            "sh",
            "-c",
            "seq 1 100 | grep 7 | wc -l; echo data > /tmp/f && cat /tmp/f; echo bg > /tmp/g & wait $!; cat /tmp/g; ls /bin | head -n 1 >/dev/null && echo ls-ok",
        ])
        .run();
    assert_eq!(out.ok(), "19\ndata\nbg\nls-ok\n");
    let ops = [
        "fork",
        "children",
        "threads",
        "tcp",
        "socket-unix",
        "write:/tmp/probe-file",
        "read:/tmp/probe-file",
    ];
    assert_all(&probe_run(&[], &ops), &ops, "OK");
}

#[test]
fn landlock_reading_only_usr_and_bin() {
    let p = profile(
        "policy-read-only",
        r#"
[landlock]
[[landlock.path]]
path = "/usr"
access = ["read", "execute"]
why = "test"
[[landlock.path]]
path = "/bin"
access = ["read", "execute"]
why = "test"
[[landlock.path]]
path = "/probe"
access = ["read", "execute"]
why = "the probe itself"
"#,
    );
    let ops = ["read:/etc/passwd", "read:/bin/busybox", "write:/tmp/x"];
    let out = probe_run(&["--policy", p.to_str().unwrap()], &ops);
    let got = answers(&out, &ops);
    assert_eq!(got[0].1, "EACCES", "{got:?}");
    assert_eq!(got[1].1, "OK", "{got:?}");
    assert_eq!(got[2].1, "EACCES", "{got:?}");
}

#[test]
fn landlock_confines_writes_to_the_writable_mounts() {
    let out_dir = scratch(User::Sub, "policy-writes-out");
    let p = profile(
        "policy-writes",
        r#"
extends = "default"
[landlock]
inherit_paths = false
[[landlock.path]]
path = "/"
access = ["read", "execute"]
why = "test"
[[landlock.path]]
path = "@mounts"
access = ["read", "write", "make", "remove"]
why = "test"
"#,
    );
    let vol = format!("{}:/out", out_dir.display());
    let ops = ["write:/out/x", "write:/etc/x", "write:/tmp/x"];
    let out = probe_run(&["--policy", p.to_str().unwrap(), "-v", &vol], &ops);
    let got = answers(&out, &ops);
    assert_eq!(got[0].1, "OK", "{got:?}");
    // The root is a writable overlay: only Landlock stops these.
    assert_eq!(got[1].1, "EACCES", "{got:?}");
    assert_eq!(got[2].1, "EACCES", "{got:?}");
    assert_eq!(
        std::fs::read_to_string(out_dir.join("x")).unwrap(),
        "probe\n"
    );

    // Default lets the writable root be written.
    let ops = ["write:/etc/x"];
    assert_all(&probe_run(&[], &ops), &ops, "OK");
}

#[test]
fn landlock_tcp_connect_ports() {
    let p = profile(
        "policy-tcp",
        "[landlock]\ntcp_connect = [40001]\n[[landlock.path]]\npath = \"/\"\naccess = [\"all\"]\nwhy = \"test\"\n",
    );
    let ops = ["tcp:40001", "tcp:40002"];
    let out = probe_run(&["--policy", p.to_str().unwrap()], &ops);
    let got = answers(&out, &ops);
    assert_eq!(got[0].1, "OK", "{got:?}");
    assert_eq!(got[1].1, "EACCES", "{got:?}");
}

#[test]
fn judge_refuses_network_sockets_and_new_processes() {
    let work = scratch(User::Sub, "policy-judge-work");
    let vol = format!("{}:/work", work.display());
    let ops = [
        "socket-inet",
        "tcp",
        "fork",
        "threads",
        "socket-unix",
        "write:/work/out",
        "write:/tmp/x",
        "write:/etc/x",
    ];
    let out = probe_run(&["--policy", "judge", "-v", &vol], &ops);
    let got: Vec<String> = answers(&out, &ops).into_iter().map(|(_, e)| e).collect();
    assert_eq!(
        got,
        ["EPERM", "EPERM", "EPERM", "EPERM", "OK", "OK", "OK", "EACCES"],
        "{out:#?}"
    );

    // A run that asks for threads gets threads, still no processes.
    let threads = profile(
        "policy-judge-threads",
        "extends = \"judge\"\n[seccomp]\nnew_processes = \"threads\"\n",
    );
    let ops = ["threads", "fork"];
    let out = probe_run(&["--policy", threads.to_str().unwrap()], &ops);
    let got: Vec<String> = answers(&out, &ops).into_iter().map(|(_, e)| e).collect();
    assert_eq!(got, ["OK", "EPERM"], "{out:#?}");
}

#[test]
fn a_policy_without_inet_sockets_leaves_the_network_namespace_as_made() {
    let files = [
        "cat",
        "/sys/class/net/lo/flags",
        "/proc/sys/net/ipv4/ip_unprivileged_port_start",
    ];
    // judge refuses IPv4 and IPv6 sockets: lo stays down (IFF_LOOPBACK
    // only) and the ports below 1024 stay privileged, as the kernel made them.
    let judge = hutch(User::Sub)
        .run_rootfs(["--policy", "judge"])
        .args(files)
        .run();
    assert_eq!(judge.ok(), "0x8\n1024\n");
    // The same profile letting AF_INET through gets them set up.
    let inet = profile(
        "policy-judge-inet",
        "extends = \"judge\"\n[[seccomp.rule]]\nwhy = \"AF_INET too\"\nsyscalls = [\"socket\"]\nargs = [{ index = 0, op = \"eq\", value = 2, width = 32 }]\n",
    );
    let out = hutch(User::Sub)
        .run_rootfs(["--policy", inet.to_str().unwrap()])
        .args(files)
        .run();
    assert_eq!(out.ok(), "0x9\n0\n");
}

#[test]
fn a_profile_requiring_abi_99_is_refused() {
    let p = profile("policy-abi99", "[landlock]\nminimum_abi = 99\n");
    hutch(User::Sub)
        .args([
            "run",
            "--rm",
            "--policy",
            p.to_str().unwrap(),
            "host",
            "true",
        ])
        .run()
        .fails_with(125, "requires Landlock ABI 99, but this kernel has ABI");
}

#[test]
fn malformed_profiles_are_refused_with_their_location() {
    let cases = [
        (
            "policy-bad-syntax",
            "[seccomp]\ndefault_action = \"errno\"\nnew_processes = \n",
            ":3:",
        ),
        (
            "policy-bad-key",
            "[landlock]\nminimum_abi = 1\nbest_efort = true\n",
            ":3:1: unknown field `best_efort`",
        ),
        (
            "policy-bad-syscall",
            "[[seccomp.allow]]\nwhy = \"x\"\nsyscalls = [\"read\", \"frobnicate\"]\n",
            ":3:21: seccomp.allow.syscalls: unknown syscall `frobnicate`",
        ),
        (
            "policy-bad-right",
            "[landlock]\n[[landlock.path]]\npath = \"/\"\naccess = [\"fly\"]\nwhy = \"x\"\n",
            ":4:11: landlock.path.access: unknown access right `fly`",
        ),
    ];
    for (name, text, needle) in cases {
        let p = profile(name, text);
        let expected = format!("{}{needle}", p.display());
        hutch(User::Sub)
            .args([
                "run",
                "--rm",
                "--policy",
                p.to_str().unwrap(),
                "host",
                "true",
            ])
            .run()
            .fails_with(125, &expected);
        hutch(User::Sub)
            .args(["policy", "check", p.to_str().unwrap()])
            .run()
            .fails_with(125, &expected);
    }
    let big = profile("policy-too-big", &"# padding\n".repeat(30_000));
    hutch(User::Sub)
        .args([
            "run",
            "--rm",
            "--policy",
            big.to_str().unwrap(),
            "host",
            "true",
        ])
        .run()
        .fails_with(125, "more than the 262144 a profile may have");
}

/// Docker's JSON profiles, copied where the test user can read them.
fn docker_json(name: &str) -> PathBuf {
    let dir = scratch(User::Sub, &format!("policy-{name}"));
    let dst = dir.join(name);
    std::fs::copy(project_dir().join("tests/data/seccomp").join(name), &dst).unwrap();
    dst
}

#[test]
fn docker_and_containers_common_json_load_and_work() {
    // containers-common lets user namespaces and keyrings through (Podman
    // nests containers) and answers unknown calls with ENOSYS.
    for (name, expected) in [
        (
            "docker-default.json",
            ["EPERM", "EPERM", "EPERM", "OK", "OK", "OK"],
        ),
        (
            "containers-common.json",
            ["OK", "ENOSYS", "OK", "OK", "OK", "OK"],
        ),
    ] {
        let file = docker_json(name);
        let opt = format!("seccomp={}", file.display());
        let out = hutch(User::Sub)
            .run_rootfs([
                "--security-opt",
                &opt,
                "sh",
                "-c",
                "seq 1 10 | tail -n 1; grep -c Seccomp_filters: /proc/self/status",
            ])
            .run();
        assert_eq!(out.ok(), "10\n1\n", "{name}");
        let ops = [
            "unshare-user",
            "personality-read-implies-exec",
            "keyctl",
            "threads",
            "fork",
            "tcp",
        ];
        let out = probe_run(&["--security-opt", &opt], &ops);
        let got: Vec<String> = answers(&out, &ops).into_iter().map(|(_, e)| e).collect();
        assert_eq!(got, expected, "{name}: {out:#?}");
        hutch(User::Sub)
            .args(["policy", "check", "--json", file.to_str().unwrap()])
            .run()
            .ok();
    }
}

#[test]
fn unconfined_choices_warn_and_lift_the_filters() {
    let out = probe_run(&["--policy", "unconfined"], &["unshare-user"]);
    assert!(
        out.stderr.contains("warning: policy unconfined"),
        "{out:#?}"
    );
    assert_all(&out, &["unshare-user"], "OK");

    let out = probe_run(
        &["--security-opt", "seccomp=unconfined"],
        &["unshare-user", "write:/etc/x"],
    );
    assert!(out.stderr.contains("no seccomp filter"), "{out:#?}");
    assert_all(&out, &["unshare-user", "write:/etc/x"], "OK");

    // landlock=unconfined under judge: writes outside the mounts pass,
    // seccomp still refuses fork.
    let out = probe_run(
        &["--policy", "judge", "--security-opt", "landlock=unconfined"],
        &["write:/etc/x", "fork"],
    );
    assert!(out.stderr.contains("no Landlock ruleset"), "{out:#?}");
    let got: Vec<String> = answers(&out, &["write:/etc/x", "fork"])
        .into_iter()
        .map(|(_, e)| e)
        .collect();
    assert_eq!(got, ["OK", "EPERM"]);

    hutch(User::Sub)
        .args([
            "run",
            "--rm",
            "--security-opt",
            "apparmor=x",
            "host",
            "true",
        ])
        .run()
        .fails_with(125, "invalid --security-opt \"apparmor=x\"");
}

#[test]
fn policy_show_and_check() {
    let shown = hutch(User::Sub).args(["policy", "show", "judge"]).run();
    assert_eq!(
        shown.ok(),
        std::fs::read_to_string(project_dir().join("policies/judge.toml")).unwrap()
    );
    let out = hutch(User::Sub).args(["policy", "check", "default"]).run();
    let text = out.ok();
    assert!(
        text.contains("seccomp: default action errno EPERM"),
        "{text}"
    );
    assert!(text.contains("landlock: kernel ABI"), "{text}");
    // hutch info says which Landlock ABI the default policy enforces here.
    let info = hutch(User::Sub).args(["info"]).run();
    let line = info
        .ok()
        .lines()
        .find(|l| l.trim_start().starts_with("default policy:"))
        .unwrap_or_else(|| panic!("{info:#?}"))
        .to_string();
    assert!(line.contains("enforces ABI"), "{line}");
    hutch(User::Sub)
        .args(["policy", "show", "nope"])
        .run()
        .fails_with(125, "no shipped policy named \"nope\"");
}

/// A warm start loads the compiled filter instead of compiling again.
#[test]
fn compiled_filters_are_cached_by_profile_hash() {
    let p = profile(
        "policy-cache",
        "extends = \"default\"\n[seccomp]\ndefault_errno = \"EXDEV\"\n",
    );
    let check = || {
        let out = hutch(User::Sub)
            .args(["policy", "check", p.to_str().unwrap()])
            .run();
        let line = out
            .ok()
            .lines()
            .find(|l| l.contains("cache: "))
            .unwrap_or_else(|| panic!("no cache line: {out:#?}"))
            .to_string();
        line
    };
    let first = check();
    let path = PathBuf::from(first.rsplit(' ').next().unwrap());
    // Start cold whatever earlier runs left.
    std::fs::remove_file(&path).unwrap();
    let cold = check();
    assert!(cold.contains("compiled, stored as"), "{cold}");
    let inode = std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(&path).unwrap());
    let warm = check();
    assert!(warm.contains(&format!("hit {}", path.display())), "{warm}");
    // A run uses the same entry: not rewritten (a rewrite renames a new file in).
    let ops = ["mount"];
    assert_all(
        &probe_run(&["--policy", p.to_str().unwrap()], &ops),
        &ops,
        "EXDEV",
    );
    let after = std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(&path).unwrap());
    assert_eq!(inode, after);
}

/// Rules with their own actions beat both the allowlist and the default,
/// conditions included.
#[test]
fn rule_actions_override_the_allowlist_and_the_default() {
    let p = profile(
        "policy-actions",
        r#"
extends = "default"
[[seccomp.rule]]
why = "test: an errno rule on a call the default refuses"
syscalls = ["keyctl"]
action = "errno"
errno = "ENOTTY"
[[seccomp.rule]]
why = "test: an errno rule on AF_UNIX only, a call the allowlist allows"
syscalls = ["socket"]
action = "errno"
errno = "EMLINK"
args = [{ index = 0, op = "eq", value = 1, width = 32 }]
[[seccomp.rule]]
why = "test: kill"
syscalls = ["mount"]
action = "kill-process"
"#,
    );
    let policy = ["--policy", p.to_str().unwrap()];
    let ops = ["keyctl", "socket-unix", "socket-inet", "add_key"];
    let got: Vec<String> = answers(&probe_run(&policy, &ops), &ops)
        .into_iter()
        .map(|(_, e)| e)
        .collect();
    assert_eq!(got, ["ENOTTY", "EMLINK", "OK", "EPERM"]);

    // SIGSYS (31) ends the workload: 128 + 31, after what it printed.
    let out = probe_run(&policy, &["fork", "mount", "fork"]);
    assert_eq!(out.code, 159, "{out:#?}");
    assert_eq!(out.stdout, "fork: OK\n", "{out:#?}");
}
