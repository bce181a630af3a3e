//! Many runs leave nothing behind: no mount, process, directory or
//! descriptor.

use std::collections::BTreeSet;
use std::os::unix::fs::MetadataExt;

use crate::harness::{
    as_user, fixtures_dir, hutch, hutch_bin, programs_dir, rootfs, scratch, Hutch, User,
};

const RUNS: usize = 200;
const LEAK: &str = "leak-check";
const RM_LEAK: &str = "rm-leak-check";
/// Names this test run's sandboxes (other runs may share the machine), a
/// tag apart for each test (neither tag's marker contains the other's).
fn marker(tag: &str) -> String {
    format!("hutch-{tag}-marker-{}", std::process::id())
}

fn listing(dir: &std::path::Path) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            out.insert(e.path().display().to_string());
            if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                todo.push(e.path());
            }
        }
    }
    out
}

fn processes_with_marker(tag: &str) -> Vec<String> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(cmd) = std::fs::read(e.path().join("cmdline")) else {
            continue;
        };
        let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
        if cmd.contains(&marker(tag)) {
            out.push(format!("{}: {cmd}", e.file_name().to_string_lossy()));
        }
    }
    out
}

fn user_tmp_entries(uid: u32) -> BTreeSet<String> {
    std::fs::read_dir("/tmp")
        .unwrap()
        .flatten()
        .filter(|e| e.metadata().map(|m| m.uid() == uid).unwrap_or(false))
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect()
}

/// hutch's own open descriptors while its sandbox runs.
fn hutch_fds_while_running(data: &std::path::Path, runtime: &std::path::Path) -> usize {
    let mut live = isolated(data, runtime)
        .args([
            "sh",
            "-c",
            &format!(
                ": {}; trap 'exit 0' USR1; echo ready; while :; do sleep 1000 & wait $!; done",
                marker(LEAK)
            ),
        ])
        .spawn();
    live.wait_line("ready");
    // The workload runs; wait until hutch itself is past start-up (its
    // last setup read sees EOF when the workload execs) and sits in the
    // relay's poll, then count.
    let wchan = format!("/proc/{}/wchan", live.pid());
    let mut settled = false;
    let deadline = std::time::Instant::now() + crate::harness::TIMEOUT;
    while std::time::Instant::now() < deadline {
        if std::fs::read_to_string(&wchan)
            .unwrap_or_default()
            .contains("poll")
        {
            settled = true;
            break;
        }
        std::thread::yield_now();
    }
    assert!(settled, "hutch never reached its relay loop");
    let n = std::fs::read_dir(format!("/proc/{}/fd", live.pid()))
        .unwrap()
        .count();
    live.signal(libc::SIGUSR1);
    assert_eq!(live.finish().code, 0);
    n
}

/// What is left in the data dir, and what an empty store holds. Each run
/// was a container while it ran (as in Docker); only the store's empty
/// index may be left, and at most a few emptied container directories
/// parked for reuse (`.spareN`: anything in one would be listed as its own
/// entry and fail the comparison).
fn store_left(data: &std::path::Path) -> (BTreeSet<String>, BTreeSet<String>) {
    let empty_store: BTreeSet<_> = [data.join("containers"), data.join("containers/names")]
        .iter()
        .map(|p| p.display().to_string())
        .collect();
    // Parked directories, with the two files an `--rm` record parks in
    // them for the next one to write into.
    let parked: BTreeSet<_> = (0..4)
        .flat_map(|n| {
            let spare = data.join(format!("containers/.spare{n}"));
            [
                spare.clone(),
                spare.join("state.json"),
                spare.join(".config.parked"),
            ]
        })
        .map(|p| p.display().to_string())
        .collect();
    let left: BTreeSet<_> = listing(data).difference(&parked).cloned().collect();
    (left, empty_store)
}

fn isolated(data: &std::path::Path, runtime: &std::path::Path) -> Hutch {
    hutch(User::Sub)
        .env("HUTCH_DATA_DIR", data)
        .env("XDG_RUNTIME_DIR", runtime)
        .run_rootfs(Vec::<String>::new())
}

/// The host's mount table, less what other tests mount for themselves
/// meanwhile (a small tmpfs disk under their own scratch directory): only
/// mounts outside the scratch tree, or under `ours`, can be this test's.
fn host_mounts(ours: &[&std::path::Path]) -> Vec<String> {
    let scratch_root = fixtures_dir().join("scratch");
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .filter(|line| {
            let point = std::path::Path::new(line.split(' ').nth(4).unwrap_or(""));
            !point.starts_with(&scratch_root) || ours.iter().any(|o| point.starts_with(o))
        })
        .map(str::to_string)
        .collect()
}

#[test]
fn two_hundred_runs_leave_nothing_behind() {
    let data = scratch(User::Sub, "leak-data");
    let runtime = scratch(User::Sub, "leak-runtime");
    let uid = User::Sub.uid();
    let mounts_before = host_mounts(&[&data, &runtime]);
    let tmp_before = user_tmp_entries(uid);

    let fds_first = hutch_fds_while_running(&data, &runtime);
    let dirs_after_first = listing(&runtime);
    for i in 0..RUNS {
        let out = isolated(&data, &runtime)
            .args([
                "sh",
                "-c",
                &format!(": {}; ls /proc/self/fd | tr '\\n' ' '", marker(LEAK)),
            ])
            .run();
        // The workload gets stdin, stdout, stderr and nothing else (3 is
        // ls's own handle on the directory).
        assert_eq!(out.ok(), "0 1 2 3 ", "run {i}: {out:?}");
    }
    let fds_last = hutch_fds_while_running(&data, &runtime);

    assert_eq!(fds_first, fds_last, "hutch's descriptor count grew");
    assert_eq!(
        host_mounts(&[&data, &runtime]),
        mounts_before,
        "the host's mount table changed"
    );
    assert_eq!(processes_with_marker(LEAK), Vec::<String>::new());
    let (left, empty) = store_left(&data);
    assert_eq!(left, empty, "the data dir is not empty");
    assert_eq!(listing(&runtime), dirs_after_first, "the runtime dir grew");
    let tmp_after = user_tmp_entries(uid);
    assert!(
        tmp_after.is_subset(&tmp_before),
        "new entries in /tmp: {:?}",
        tmp_after.difference(&tmp_before).collect::<Vec<_>>()
    );
}

/// `--rm` runs with a cgroup return before init has exited and leave the
/// rest to init's keeper (`sandbox::teardown`): the cgroup, and the
/// record's state file and directory, which it parks. Once the keepers
/// are done the store is as empty as after runs without one.
#[test]
fn rm_runs_with_a_cgroup_leave_their_record_to_the_keeper_and_nothing_behind() {
    let user = User::Sub;
    let info = hutch(user).args(["info", "--format", "json"]).run();
    let info: serde_json::Value = serde_json::from_str(info.ok()).unwrap();
    let memory = info["limits"]["memory"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    if !memory.starts_with("cgroup") {
        eprintln!("{user:?} has no delegated cgroup here (memory by {memory}): no keeper to check");
        return;
    }
    let data = scratch(user, "leak-rm-data");
    let runtime = scratch(user, "leak-rm-runtime");
    for i in 0..20 {
        let out = isolated(&data, &runtime)
            .args(["-m", "64m", "--time-limit", "5", "--pids-limit", "16"])
            .args(["sh", "-c", &format!(": {}; echo ran", marker(RM_LEAK))])
            .run();
        assert_eq!(out.ok(), "ran\n", "run {i}: {out:?}");
    }
    // The last keepers may still be waiting for their init's exit.
    let until = std::time::Instant::now() + crate::harness::TIMEOUT;
    let (mut left, empty) = store_left(&data);
    while left != empty && std::time::Instant::now() < until {
        std::thread::sleep(std::time::Duration::from_millis(5));
        left = store_left(&data).0;
    }
    assert_eq!(left, empty, "the data dir is not empty");
    assert_eq!(processes_with_marker(RM_LEAK), Vec::<String>::new());
}

/// What `orphans` (tests/programs/orphans.c, a subreaper standing in for
/// the system's pid 1) says three judged `--rm` runs by `user`, one after
/// another under a shell, left for it to reap.
fn orphans_of_three_runs(user: User) -> Vec<String> {
    let run = format!(
        "{} run --rm --rootfs {} -m 64m --time-limit 5 --pids-limit 16 /bin/true",
        hutch_bin().display(),
        rootfs(user).display()
    );
    let script = format!("for i in 1 2 3; do {run} || exit 1; done");
    let out = as_user(user, programs_dir().join("orphans"))
        .args(["/bin/sh", "-c", &script])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    // The shell's status, among the orphans reaped before and after it.
    let (status, orphans): (Vec<&str>, Vec<&str>) =
        text.lines().partition(|l| l.starts_with("status "));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(status, ["status 0"], "{text}{stderr}");
    orphans.into_iter().map(str::to_string).collect()
}

/// An `--rm` run with a cgroup returns before init has exited, yet leaves
/// no zombie init for the system to reap (a pid 1 may reap late or never,
/// and each zombie keeps its charge in the user's process count): init is
/// the child of its keeper, which reaps it, and only the keeper is left to
/// the system, as bwrap leaves its pid 1. Without a cgroup hutch reaps init
/// itself and leaves nothing.
#[test]
fn judged_rm_runs_leave_the_system_only_their_keeper_to_reap() {
    for user in [User::Sub, User::NoSub] {
        let info = hutch(user).args(["info", "--format", "json"]).run();
        let info: serde_json::Value = serde_json::from_str(info.ok()).unwrap();
        let cgroup = info["limits"]["memory"]
            .as_str()
            .unwrap_or_default()
            .starts_with("cgroup");
        let orphans = orphans_of_three_runs(user);
        assert!(
            !orphans.iter().any(|o| o == "orphan init"),
            "{user:?}: a sandbox's init was left to the system: {orphans:?}"
        );
        let expected = if cgroup { 3 } else { 0 };
        eprintln!("{user:?}: cgroup {cgroup}, orphans {orphans:?}");
        assert_eq!(orphans.len(), expected, "{user:?}: {orphans:?}");
    }
}
