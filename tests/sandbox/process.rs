//! Process behaviour as `docker run`: exit status, signals, death of the
//! sandbox with hutch, reaping, terminals and stdio.

use std::time::Duration;

use crate::harness::{descendants, hutch, pidfd, rootfs, scratch, wait_exit, User};

#[test]
fn exit_status_is_the_commands_own_or_128_plus_the_signal() {
    for (cmd, code) in [
        ("exit 0", 0),
        ("exit 42", 42),
        ("kill -TERM $$", 128 + libc::SIGTERM),
        ("kill -SEGV $$", 128 + libc::SIGSEGV),
    ] {
        let out = hutch(User::Sub).run_rootfs(["sh", "-c", cmd]).run();
        assert_eq!(out.code, code, "{cmd}: {out:?}");
        assert_eq!(out.stderr, "", "{cmd}: {out:?}");
    }
}

#[test]
fn cannot_invoke_not_found_and_own_errors_each_say_so() {
    let nf = hutch(User::Sub).run_rootfs(["no-such-command"]).run();
    nf.fails_with(127, "no-such-command");
    let nf2 = hutch(User::Sub).run_rootfs(["/no/such/path"]).run();
    nf2.fails_with(127, "/no/such/path");
    let dir = hutch(User::Sub).run_rootfs(["/etc"]).run();
    dir.fails_with(126, "/etc");
    let noexec = hutch(User::Sub).run_rootfs(["/etc/passwd"]).run();
    noexec.fails_with(126, "Permission denied");
    let own = hutch(User::Sub)
        .args(["run", "--rm", "-w", "/etc/passwd", "--rootfs"])
        .arg_path(rootfs(User::Sub))
        .arg_path(std::path::Path::new("true"))
        .run();
    assert!(matches!(own.code, 125 | 126), "{own:?}");
    for out in [&nf, &nf2, &dir, &noexec, &own] {
        assert_eq!(out.stderr.lines().count(), 1, "{out:?}");
        assert!(out.stderr.starts_with("hutch: "), "{out:?}");
    }
}

/// A workload that traps the forwarded signals and reports each.
const TRAPS: &str = "for s in INT HUP QUIT WINCH USR1; do trap \"echo got $s\" $s; done; \
                     trap 'echo got TERM; exit 7' TERM; echo ready; \
                     while :; do sleep 1000 & wait $!; kill $! 2>/dev/null; done";

#[test]
fn signals_sent_to_hutch_reach_the_workload() {
    let mut live = hutch(User::Sub).run_rootfs(["sh", "-c", TRAPS]).spawn();
    live.wait_line("ready");
    for (sig, name) in [
        (libc::SIGINT, "INT"),
        (libc::SIGHUP, "HUP"),
        (libc::SIGQUIT, "QUIT"),
        (libc::SIGWINCH, "WINCH"),
        (libc::SIGUSR1, "USR1"),
        (libc::SIGTERM, "TERM"),
    ] {
        live.signal(sig);
        live.wait_line(&format!("got {name}"));
    }
    let out = live.finish();
    assert_eq!(out.code, 7, "{out:?}");
}

#[test]
fn an_untrapped_sigterm_ends_the_workload_with_143() {
    let mut live = hutch(User::Sub)
        .run_rootfs(["sh", "-c", "echo ready; exec sleep 1000"])
        .spawn();
    live.wait_line("ready");
    // `exec sleep` replaced the shell once sleep has its own /proc entry;
    // the signal is forwarded to whatever the workload is by then.
    live.signal(libc::SIGTERM);
    let out = live.finish();
    assert_eq!(out.code, 128 + libc::SIGTERM, "{out:?}");
}

#[test]
fn killing_hutch_kills_the_whole_sandbox() {
    let mut live = hutch(User::Sub)
        .run_rootfs([
            "sh",
            "-c",
            // A plain child, a daemon that left its session and was
            // orphaned to init, and the shell itself.
            "sleep 1000 & (setsid sleep 1001 &) ; \
             while [ $(ls /proc | grep -c '^[0-9]') -lt 4 ]; do :; done; echo ready; wait",
        ])
        .spawn();
    live.wait_line("ready");
    let pids = descendants(live.pid());
    // init, sh, two sleeps (the subshell that forked the daemon is gone).
    assert!(pids.len() >= 4, "{pids:?}");
    let fds: Vec<_> = pids
        .iter()
        .filter_map(|&p| pidfd(p).map(|fd| (p, fd)))
        .collect();
    assert_eq!(fds.len(), pids.len());
    live.signal(libc::SIGKILL);
    let out = live.finish();
    assert_eq!(out.code, -1, "{out:?}");
    for (pid, fd) in &fds {
        assert!(
            wait_exit(fd, Duration::from_secs(20)),
            "sandbox process {pid} survived hutch"
        );
    }
}

#[test]
fn orphans_are_reaped() {
    // A subshell starts a grandchild and exits at once: the grandchild is
    // orphaned to init. Once it has exited, init must reap it, or it stays
    // a zombie (state Z) under /proc for good.
    let out = hutch(User::Sub)
        .run_rootfs([
            "sh",
            "-c",
            "mkfifo /tmp/f; ( sh -c 'echo $$ > /tmp/f; exit 0' & ); pid=$(cat /tmp/f); \
             n=0; while [ -e /proc/$pid ] && [ $n -lt 200000 ]; do n=$((n+1)); done; \
             if [ -e /proc/$pid ]; then echo left; grep State /proc/$pid/status; else echo reaped; fi; \
             grep -l '^State:.*Z' /proc/[0-9]*/status 2>/dev/null | wc -l",
        ])
        .run();
    assert_eq!(out.ok(), "reaped\n0\n", "{out:?}");
}

#[test]
fn stdout_and_stderr_stay_apart_without_a_tty() {
    let out = hutch(User::Sub)
        .run_rootfs(["sh", "-c", "echo to-out; echo to-err >&2; echo more-out"])
        .run();
    assert_eq!(out.ok(), "to-out\nmore-out\n");
    assert_eq!(out.stderr, "to-err\n");
}

#[test]
fn dash_i_forwards_stdin_and_without_it_stdin_is_empty() {
    let data = "line one\nline two\n".repeat(1000);
    let out = hutch(User::Sub)
        .args(["run", "--rm", "-i", "--rootfs"])
        .arg_path(rootfs(User::Sub))
        .args(["sh", "-c", "cat; echo eof"])
        .stdin(data.clone())
        .run();
    assert_eq!(out.ok(), format!("{data}eof\n"));
    let out = hutch(User::Sub)
        .run_rootfs(["sh", "-c", "cat; echo eof"])
        .stdin(data)
        .run();
    assert_eq!(out.ok(), "eof\n");
}

/// Run `inner` (a shell line) under `script`, i.e. on a real pty, as the
/// unprivileged user; returns what the terminal showed.
fn under_pty(inner: &str, stdin: &str) -> String {
    use std::io::Write;
    let mut cmd = crate::harness::as_user(User::Sub, "script");
    cmd.args(["-qec", inner, "/dev/null"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    let mut sin = child.stdin.take().unwrap();
    sin.write_all(stdin.as_bytes()).unwrap();
    // Keep stdin open until the inner command is done: script ends the
    // session on EOF.
    let out = child.wait_with_output().unwrap();
    drop(sin);
    assert!(out.status.success(), "{out:?}");
    String::from_utf8_lossy(&out.stdout).replace('\r', "")
}

#[test]
fn dash_t_gives_a_pty_with_the_window_size_and_restores_the_terminal() {
    let dir = scratch(User::Sub, "tty");
    let hutch_bin = crate::harness::hutch_bin().display().to_string();
    let root = rootfs(User::Sub).display().to_string();
    let d = dir.display();
    let inner = format!(
        "stty rows 31 cols 101; stty -g > {d}/before; \
         {hutch_bin} run --rm -t --rootfs {root} sh -c 'tty; stty size; test -t 0 && test -t 2 && echo tty-stdio; stty raw -echo'; \
         echo status=$?; stty -g > {d}/after"
    );
    let shown = under_pty(&inner, "");
    assert!(
        shown.contains("/dev/pts/0\n31 101\ntty-stdio\n"),
        "{shown:?}"
    );
    assert!(shown.contains("status=0"), "{shown:?}");
    let before = std::fs::read_to_string(dir.join("before")).unwrap();
    let after = std::fs::read_to_string(dir.join("after")).unwrap();
    assert_eq!(before, after, "the user's terminal modes were not restored");
}

#[test]
fn dash_it_forwards_keystrokes_through_the_pty() {
    let hutch_bin = crate::harness::hutch_bin().display().to_string();
    let root = rootfs(User::Sub).display().to_string();
    let inner = format!(
        "{hutch_bin} run --rm -it --rootfs {root} sh -c 'read line; echo got:$line; exit 3'; echo status=$?"
    );
    let shown = under_pty(&inner, "typed words\n");
    assert!(shown.contains("got:typed words\n"), "{shown:?}");
    assert!(shown.contains("status=3"), "{shown:?}");
}
