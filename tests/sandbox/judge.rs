//! Resource limits and judge mode: every limit is enforced and reported.
//!
//! Each test runs twice: as hutch-sub, to whom `.ci/run` delegated a cgroup
//! v1 subtree (the cgroup path), and as hutch-nosub, who has none (the
//! rlimit-and-watchdog path). Which path a run took is asserted from the
//! report's `enforced_by`, against what `hutch info` says this host offers.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::harness::{hutch, programs_volume, scratch, User};

/// What `hutch info` says enforces each limit for `user`.
fn mechanisms(user: User) -> BTreeMap<String, String> {
    let out = hutch(user).args(["info", "--format", "json"]).run();
    let info: Value = serde_json::from_str(out.ok()).unwrap();
    serde_json::from_value(info["limits"].clone()).unwrap()
}

/// Run a judged command and return its report.
fn judge(user: User, name: &str, flags: &[&str], cmd: &[&str]) -> (Value, crate::harness::Out) {
    judged(hutch(user), user, name, flags, cmd)
}

/// [`judge`] with `hutch` as set up by the caller.
fn judged(
    hutch: crate::harness::Hutch,
    user: User,
    name: &str,
    flags: &[&str],
    cmd: &[&str],
) -> (Value, crate::harness::Out) {
    let dir = scratch(user, name);
    let report = dir.join("report.json");
    let out = hutch
        .run_rootfs([
            "-v",
            &programs_volume(),
            "--report",
            report.to_str().unwrap(),
        ])
        .args(flags)
        .args(cmd)
        .run();
    let text =
        std::fs::read_to_string(&report).unwrap_or_else(|e| panic!("no report ({e}): {out:#?}"));
    (serde_json::from_str(&text).unwrap(), out)
}

fn both(test: impl Fn(User)) {
    for user in [User::Sub, User::NoSub] {
        test(user);
    }
}

#[test]
fn fork_bomb_is_contained_and_the_host_still_forks() {
    both(|user| {
        let (r, _) = judge(
            user,
            "forkbomb",
            &["--pids-limit", "32", "--wall-time-limit", "3"],
            &["sh", "-c", "f() { f | f & }; f; sleep 100"],
        );
        assert_eq!(r["status"], "wall-time-limit", "{r}");
        let by = &mechanisms(user)["pids"];
        assert_eq!(r["enforced_by"]["pids"], *by, "{r}");
        eprintln!("{user:?}: pids limit enforced by {by}");
        if by.starts_with("cgroup") {
            assert_eq!(r["limits_reached"][0], "pids", "{r}");
        }
        // The bomb is gone: the user can still fork.
        let out = crate::harness::as_user(user, "/bin/sh")
            .args([
                "-c",
                "for i in 1 2 3 4 5; do /bin/true & done; wait; echo forked",
            ])
            .output()
            .unwrap();
        assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "forked");
    });
}

#[test]
fn allocation_loop_hits_the_memory_limit() {
    both(|user| {
        let (r, _) = judge(user, "alloc", &["-m", "64m"], &["/p/alloc"]);
        assert_eq!(r["status"], "memory-limit", "{r}");
        let by = &mechanisms(user)["memory"];
        assert_eq!(r["enforced_by"]["memory"], *by, "{r}");
        eprintln!("{user:?}: memory limit enforced by {by}");
        let rss = r["max_rss_kib"].as_u64().unwrap();
        assert!(rss > 16 * 1024 && rss <= 80 * 1024, "peak {rss} KiB: {r}");
    });
}

#[test]
fn files_in_the_sandboxs_tmpfs_count_against_the_memory_limit() {
    // An --rm run's writable layer is tmpfs: memory no process's resident
    // size shows. A cgroup charges it; without one the tmpfs is as big as
    // the limit.
    both(|user| {
        let (r, out) = judge(
            user,
            "tmpfs",
            &["-m", "64m"],
            &[
                "sh",
                "-c",
                "head -c 200000000 /dev/zero > /tmp/x; wc -c < /tmp/x; rm /tmp/x",
            ],
        );
        let kept: Option<u64> = out.stdout.trim().parse().ok();
        assert!(
            kept.is_some_and(|k| k <= 64 << 20) || r["status"] == "memory-limit",
            "{user:?} kept {kept:?} bytes in tmpfs: {r} {out:#?}"
        );
    });
}

#[test]
fn busy_loop_hits_the_cpu_time_limit() {
    both(|user| {
        let (r, _) = judge(
            user,
            "busy",
            &["--time-limit", "1"],
            &["sh", "-c", "while :; do :; done"],
        );
        assert_eq!(r["status"], "time-limit", "{r}");
        let cpu = r["cpu_time_ms"].as_u64().unwrap();
        assert!((900..=1500).contains(&cpu), "cpu {cpu} ms: {r}");
    });
}

#[test]
fn many_busy_processes_share_one_cpu_time_limit() {
    // Two loops of 0.6 s each stay under a per-process RLIMIT_CPU of 1 s:
    // only the whole-sandbox watchdog can stop them.
    both(|user| {
        let (r, _) = judge(
            user,
            "busy2",
            &["--time-limit", "1", "--wall-time-limit", "20"],
            &[
                "sh",
                "-c",
                "(while :; do :; done) & (while :; do :; done) & wait",
            ],
        );
        assert_eq!(r["status"], "time-limit", "{r}");
        let cpu = r["cpu_time_ms"].as_u64().unwrap();
        assert!((900..=1600).contains(&cpu), "cpu {cpu} ms: {r}");
    });
}

#[test]
fn sleep_hits_the_wall_time_limit() {
    both(|user| {
        let (r, out) = judge(
            user,
            "sleep",
            &["--wall-time-limit", "1"],
            &["sleep", "100"],
        );
        assert_eq!(r["status"], "wall-time-limit", "{r}");
        assert_eq!(out.code, 137);
        let wall = r["wall_time_ms"].as_u64().unwrap();
        assert!((1000..3000).contains(&wall), "wall {wall} ms: {r}");
    });
}

#[test]
fn output_limit_keeps_exactly_the_limit() {
    both(|user| {
        let dir = scratch(user, "yes-out");
        let stdout = dir.join("stdout");
        let (r, _) = judge(
            user,
            "yes",
            &[
                "--output-limit",
                "1000000",
                "--stdout",
                stdout.to_str().unwrap(),
            ],
            &["yes"],
        );
        assert_eq!(r["status"], "output-limit", "{r}");
        assert_eq!(r["output_bytes"], 1_000_000, "{r}");
        assert_eq!(std::fs::metadata(&stdout).unwrap().len(), 1_000_000);
    });
}

#[test]
fn normal_program_is_ok_with_plausible_figures() {
    both(|user| {
        let (r, out) = judge(
            user,
            "hello",
            &["-m", "256m", "--time-limit", "5"],
            &["/p/hello"],
        );
        assert_eq!(out.stdout, "hello\n");
        assert_eq!(r["status"], "ok", "{r}");
        assert_eq!(r["exit_code"], 0);
        assert!(r["signal"].is_null());
        assert!(r["cpu_time_ms"].as_u64().unwrap() < 500, "{r}");
        assert!(r["wall_time_ms"].as_u64().unwrap() < 5000, "{r}");
        let rss = r["max_rss_kib"].as_u64().unwrap();
        assert!(rss > 0 && rss < 64 * 1024, "{r}");
        let (r, out) = judge(user, "hello3", &[], &["/p/hello", "3"]);
        assert_eq!(
            (out.code, &r["status"], &r["exit_code"]),
            (3, &"runtime-error".into(), &3.into())
        );
    });
}

#[test]
fn segfault_is_signaled_11() {
    both(|user| {
        let (r, out) = judge(user, "segv", &[], &["/p/segv"]);
        assert_eq!(r["status"], "signaled", "{r}");
        assert_eq!(r["signal"], 11);
        assert_eq!(out.code, 139);
    });
}

#[test]
fn stdin_and_stdout_files() {
    let user = User::NoSub;
    let dir = scratch(user, "io-files");
    std::fs::write(dir.join("in"), "3 4\n").unwrap();
    let (r, _) = judge(
        user,
        "io",
        &[
            "--stdin",
            dir.join("in").to_str().unwrap(),
            "--stdout",
            dir.join("out").to_str().unwrap(),
            "--stderr",
            dir.join("err").to_str().unwrap(),
        ],
        &["sh", "-c", "read a b; echo $((a+b)); echo oops >&2"],
    );
    assert_eq!(r["status"], "ok", "{r}");
    assert_eq!(std::fs::read_to_string(dir.join("out")).unwrap(), "7\n");
    assert_eq!(std::fs::read_to_string(dir.join("err")).unwrap(), "oops\n");
}

#[test]
fn unenforceable_limit_is_refused_unless_best_effort() {
    // hutch-nosub has no delegated cgroup: --cpus cannot be enforced.
    let user = User::NoSub;
    assert!(mechanisms(user)["cpus"].starts_with("unavailable"));
    let (r, out) = judge(user, "cpus", &["--cpus", "0.5"], &["true"]);
    out.fails_with(125, "--cpus cannot be enforced");
    assert_eq!(r["status"], "sandbox-error");
    assert!(r["message"].as_str().unwrap().contains("--cpus"));
    let (r, out) = judge(
        user,
        "cpus-be",
        &["--cpus", "0.5", "--limits", "best-effort"],
        &["true"],
    );
    assert_eq!(out.code, 0);
    assert_eq!(r["not_enforced"][0], "cpus", "{r}");
}

#[test]
fn fifty_runs_on_two_workers_all_report_correctly() {
    let workers: Vec<_> = (0..2)
        .map(|w| {
            std::thread::spawn(move || {
                let user = if w == 0 { User::Sub } else { User::NoSub };
                for i in 0..25 {
                    let code = (i % 3).to_string();
                    let (r, out) = judge(
                        user,
                        &format!("par{w}-{i}"),
                        &["--time-limit", "2", "-m", "128m"],
                        &["/p/hello", &code],
                    );
                    assert_eq!(out.stdout, "hello\n");
                    let want = if i % 3 == 0 { "ok" } else { "runtime-error" };
                    assert_eq!(r["status"], want, "{r}");
                    assert_eq!(r["exit_code"], i % 3);
                }
            })
        })
        .collect();
    for w in workers {
        w.join().unwrap();
    }
}

/// A judge run writes its own one-uid map instead of exec'ing the setuid
/// newuidmap and newgidmap, unless `--userns` says otherwise or its user
/// needs the subordinate range.
#[test]
fn judge_runs_in_a_one_uid_namespace_unless_told_otherwise() {
    let uid_map = |flags: &[&str]| -> Vec<String> {
        let out = hutch(User::Sub)
            .run_rootfs(["--policy", "judge"])
            .args(flags)
            .args(["cat", "/proc/self/uid_map"])
            .run();
        out.ok()
            .lines()
            .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
            .collect()
    };
    let single = uid_map(&[]);
    assert_eq!(single.len(), 1, "{single:?}");
    assert!(
        single[0].starts_with("0 ") && single[0].ends_with(" 1"),
        "{single:?}"
    );
    // The user's choice is honoured.
    let auto = uid_map(&["--userns", "auto"]);
    assert_eq!(auto.len(), 2, "{auto:?}");
    assert_eq!(auto[0], single[0]);
    // A user other than root needs the range: judge falls back to auto.
    assert_eq!(uid_map(&["-u", "1000"]), auto);
    // Other profiles keep auto as their default.
    let out = hutch(User::Sub)
        .run_rootfs(["cat", "/proc/self/uid_map"])
        .run();
    assert_eq!(out.ok().lines().count(), 2, "{out:#?}");
}

/// A kept container's limits hold on every start: its cgroup goes when a
/// run ends (so each run's peak and OOM count start from zero) and is made
/// again, limits and all, by the next start.
#[test]
fn a_kept_container_is_limited_on_every_start() {
    both(|user| {
        let data = scratch(user, "judge-restart").join("data");
        std::fs::create_dir_all(&data).unwrap();
        let acct = user.account();
        crate::harness::chown(&data, acct.uid, acct.gid);
        let h = || hutch(user).env("HUTCH_DATA_DIR", &data);
        h().args([
            "create",
            "--name",
            "again",
            "-m",
            "64m",
            "-v",
            &programs_volume(),
        ])
        .args(["--rootfs"])
        .arg_path(crate::harness::rootfs(user))
        .args(["/p/alloc"])
        .run()
        .ok();
        for run in 0..2 {
            let out = h().args(["start", "-a", "again"]).run();
            assert_ne!(out.code, 0, "run {run}: {out:?}");
            let status = h()
                .args(["inspect", "--format", "{{.State.Report.status}}", "again"])
                .run();
            assert_eq!(status.ok().trim(), "memory-limit", "run {run}");
            let by = h()
                .args([
                    "inspect",
                    "--format",
                    "{{.State.Report.enforced_by.memory}}",
                    "again",
                ])
                .run();
            assert_eq!(by.ok().trim(), mechanisms(user)["memory"], "run {run}");
        }
        h().args(["rm", "again"]).run().ok();
    });
}

/// The host's memory cgroup of `pid`, from `/proc/PID/cgroup` (v1 or v2).
fn memory_cgroup_of(pid: i32) -> Option<std::path::PathBuf> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).ok()?;
    text.lines().find_map(|l| {
        let mut f = l.splitn(3, ':');
        let (_, ctrl, path) = (f.next()?, f.next()?, f.next()?);
        match ctrl {
            "memory" => Some(std::path::Path::new("/sys/fs/cgroup/memory").join(&path[1..])),
            "" => Some(std::path::Path::new("/sys/fs/cgroup").join(&path[1..])),
            _ => None,
        }
    })
}

/// An `--rm` run returns as soon as its figures are final, leaving init's
/// exit and the cgroup to init's keeper (see `sandbox::teardown`): a
/// cgroup of the run's own must still go, a slot of the pool be empty. A
/// workload that leaves processes behind keeps hutch until init's exit has
/// killed them: nothing of the sandbox outlives `hutch run`.
#[test]
fn an_rm_run_leaves_nothing_running_and_its_cgroup_goes() {
    let user = User::Sub;
    if !mechanisms(user)["memory"].starts_with("cgroup") {
        eprintln!("{user:?} has no delegated cgroup here: nothing to remove");
        return;
    }
    let deadline = || std::time::Instant::now() + crate::harness::TIMEOUT;
    for leave_one in [false, true] {
        let dir = scratch(user, if leave_one { "rm-leftover" } else { "rm-clean" });
        let report = dir.join("report.json");
        // A background sleep stands in for a workload's leftover process;
        // the clean workload kills and reaps its own before it exits. The
        // odd durations tell this test's sleeps from any other's.
        let script = if leave_one {
            "sleep 4241 & trap 'exit 0' USR1; echo ready; while :; do sleep 4242 & wait $!; done"
        } else {
            "trap 'kill $!; wait; exit 0' USR1; echo ready; while :; do sleep 4242 & wait $!; done"
        };
        let mut live = hutch(user)
            .run_rootfs([
                "-m",
                "64m",
                "--time-limit",
                "60",
                "--report",
                report.to_str().unwrap(),
            ])
            .args(["sh", "-c", script])
            .spawn();
        live.wait_line("ready");
        // "ready" is printed before the loop's sleep is started (and the
        // leftover's may not have exec'd yet): wait until both are there.
        let find_sleeps = || -> Vec<i32> {
            std::fs::read_dir("/proc")
                .unwrap()
                .flatten()
                .filter(|e| {
                    std::fs::read(e.path().join("cmdline"))
                        .is_ok_and(|c| c.starts_with(b"sleep\x00424"))
                })
                .filter_map(|e| e.file_name().to_str()?.parse().ok())
                .collect()
        };
        let until = deadline();
        let mut sleeps = find_sleeps();
        while sleeps.len() < 1 + leave_one as usize && std::time::Instant::now() < until {
            std::thread::sleep(std::time::Duration::from_millis(5));
            sleeps = find_sleeps();
        }
        assert_eq!(sleeps.len(), 1 + leave_one as usize, "{sleeps:?}");
        let cgroup = memory_cgroup_of(sleeps[0]).expect("the workload's memory cgroup");
        let name = cgroup.file_name().unwrap().to_string_lossy().into_owned();
        assert!(name.starts_with("hutch-"), "{cgroup:?}");
        let pooled = name.starts_with("hutch-pool-");
        live.signal(libc::SIGUSR1);
        assert_eq!(live.finish().code, 0);
        let r: Value = serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
        assert_eq!(r["status"], "ok", "{r}");
        assert_eq!(r["enforced_by"]["memory"], "cgroup-v1", "{r}");
        for p in &sleeps {
            let stat = std::fs::read_to_string(format!("/proc/{p}/stat")).unwrap_or_default();
            assert!(
                stat.is_empty(),
                "sandbox process {p} outlived hutch: {stat}"
            );
        }
        let until = deadline();
        let done = || match pooled {
            false => !cgroup.exists(),
            true => std::fs::read_to_string(cgroup.join("cgroup.procs"))
                .is_ok_and(|p| p.trim().is_empty()),
        };
        while !done() && std::time::Instant::now() < until {
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        assert!(done(), "{cgroup:?} was left behind, or not empty");
    }
}

/// `--rm` runs take a slot of a pool of cgroups rather than making and
/// removing one each (see `Cgroup::claim_pooled`). A slot reused after
/// runs that hit their memory and process limits starts afresh: its
/// limits are the new run's (higher ones, or none), and its verdict and
/// figures the new run's alone. The runs use a delegated parent of this
/// test's own and ask for the same controllers (slots are per set of
/// controllers), so that every one takes the same slot.
#[test]
fn a_pooled_cgroup_starts_each_run_afresh() {
    let user = User::Sub;
    if !mechanisms(user)["memory"].starts_with("cgroup-v1") {
        eprintln!("{user:?} has no delegated cgroup v1 subtree here: no pool");
        return;
    }
    let parent = format!("user/hutch-sub/pool-test-{}", std::process::id());
    // The first slot of the runs' controllers (all three runs ask for
    // the same: memory, pids through the limits, cpuacct for the time).
    const SLOT: &str = "hutch-pool-cpuacct-memory-pids-0";
    let controllers = ["memory", "pids", "cpuacct"];
    let dir = |ctrl: &str| {
        std::path::Path::new("/sys/fs/cgroup")
            .join(ctrl)
            .join(&parent)
    };
    /// Removes the test's parent and its slots, however the test ends.
    struct Parent(Vec<std::path::PathBuf>);
    impl Drop for Parent {
        fn drop(&mut self) {
            for d in &self.0 {
                for slot in std::fs::read_dir(d).into_iter().flatten().flatten() {
                    let _ = std::fs::remove_dir(slot.path());
                }
                let _ = std::fs::remove_dir(d);
            }
        }
    }
    let _parent = Parent(controllers.iter().map(|c| dir(c)).collect());
    for ctrl in controllers {
        let made = crate::harness::as_user(user, "mkdir")
            .arg(dir(ctrl))
            .status();
        assert!(made.unwrap().success(), "mkdir {}", dir(ctrl).display());
    }
    // The slot a run took is free again once its keeper has reaped init
    // (it holds the flock of the first controller's directory till then):
    // each run waits for that, so that every one takes slot 0.
    let slot_free = || {
        use std::os::fd::AsRawFd;
        let Ok(d) = std::fs::File::open(dir("cpuacct").join(SLOT)) else {
            return true; // not made yet
        };
        // SAFETY: flock on a descriptor we own, released when it closes.
        unsafe { libc::flock(d.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) == 0 }
    };
    let run = |name: &str, flags: &[&str], cmd: &[&str]| {
        let until = std::time::Instant::now() + crate::harness::TIMEOUT;
        while !slot_free() && std::time::Instant::now() < until {
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        let with_parent = hutch(user).env("HUTCH_CGROUP_PARENT", &parent);
        judged(with_parent, user, name, flags, cmd).0
    };
    let r = run(
        "pool-alloc",
        &["-m", "32m", "--pids-limit", "64", "--time-limit", "10"],
        &["/p/alloc"],
    );
    assert_eq!(r["status"], "memory-limit", "{r}");
    let bomb = ["sh", "-c", "f() { f | f & }; f; sleep 100"];
    let r = run(
        "pool-bomb",
        &[
            "-m",
            "32m",
            "--pids-limit",
            "8",
            "--time-limit",
            "10",
            "--wall-time-limit",
            "2",
        ],
        &bomb,
    );
    assert_eq!(r["limits_reached"][0], "pids", "{r}");
    // 24 processes at once under a limit of 64 (not the last run's 8),
    // and 48 MiB of a file in the writable tmpfs under a limit of 256m (not
    // 32m): neither limit is reached, and no earlier count is this run's.
    let script = "for i in $(seq 24); do sleep 0.5 & done; \
                  head -c 50331648 /dev/zero > /tmp/f; wait; echo done";
    let r = run(
        "pool-fine",
        &["-m", "256m", "--pids-limit", "64", "--time-limit", "10"],
        &["sh", "-c", script],
    );
    assert_eq!(r["status"], "ok", "{r}");
    assert!(r["limits_reached"].is_null(), "no limit reached: {r}");
    let rss = r["max_rss_kib"].as_u64().unwrap();
    assert!(
        (48 * 1024..120 * 1024).contains(&rss),
        "peak {rss} KiB: {r}"
    );
    let cpu = r["cpu_time_ms"].as_u64().unwrap();
    assert!(cpu < 2000, "cpu {cpu} ms, the earlier runs' included? {r}");
    // One slot served all three; once its keeper is done it is empty.
    let slots = std::fs::read_dir(dir("memory")).unwrap().flatten();
    let slots: Vec<String> = slots
        .filter(|e| e.path().is_dir())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(slots, [SLOT], "one slot, reused");
    let until = std::time::Instant::now() + crate::harness::TIMEOUT;
    let empty = || {
        controllers.iter().all(|c| {
            std::fs::read_to_string(dir(c).join(SLOT).join("cgroup.procs"))
                .is_ok_and(|p| p.trim().is_empty())
        })
    };
    while !empty() && std::time::Instant::now() < until {
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    assert!(empty(), "slot 0 still holds a process");
}
