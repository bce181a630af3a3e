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
             n=0; while [ -e /proc/$pid ] && [ $n -lt 2000000 ]; do n=$((n+1)); done; \
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

#[test]
fn the_workload_is_not_in_the_users_session() {
    // Run from a terminal, without -t: /dev/tty (the caller's controlling
    // terminal, bound in from the host) must not open, since the workload
    // is in a session of init's making, which has no terminal.
    let hutch_bin = crate::harness::hutch_bin().display().to_string();
    let root = rootfs(User::Sub).display().to_string();
    let inner = format!(
        "(: > /dev/tty) 2>/dev/null && echo outside:opened; \
         {hutch_bin} run --rm --rootfs {root} sh -c '(: > /dev/tty) 2>/dev/null && echo inside:opened || echo inside:refused'"
    );
    let shown = under_pty(&inner, "");
    // Control: outside, the terminal opens.
    assert!(shown.contains("outside:opened"), "{shown:?}");
    assert!(shown.contains("inside:refused"), "{shown:?}");
}

#[test]
fn the_workload_cannot_type_into_the_users_terminal() {
    // TIOCSTI queues input for whoever reads the terminal next: the user's
    // shell. Without -t hutch never hands the workload the terminal (it
    // relays through pipes), and the workload leads a session of its own,
    // so the terminal would refuse even if it got there.
    let probe = crate::harness::programs_dir().join("tiocsti");
    let hutch_bin = crate::harness::hutch_bin().display().to_string();
    let root = rootfs(User::Sub).display().to_string();
    let inner = format!(
        "{probe}; {hutch_bin} run --rm -i -v {vol} --rootfs {root} /p/tiocsti",
        probe = probe.display(),
        vol = crate::harness::programs_volume(),
    );
    let shown = under_pty(&inner, "");
    let lines: Vec<&str> = shown.lines().collect();
    // Control: outside a sandbox, in the terminal's own session, it works.
    assert!(lines.contains(&"0:tty-injected"), "{shown:?}");
    // Inside: no fd is the user's terminal, none injected.
    let inside: Vec<&&str> = lines
        .iter()
        .skip_while(|l| !l.starts_with("2:"))
        .skip(1)
        .filter(|l| l.starts_with(|c: char| c.is_ascii_digit()))
        .collect();
    assert_eq!(inside.len(), 3, "{shown:?}");
    for l in inside {
        assert!(
            l.contains("not-tty") || l.contains("tty-refused"),
            "{shown:?}"
        );
    }
}

#[test]
fn without_dash_t_the_users_terminal_never_reaches_the_workload() {
    // A terminal fd is read-write: handed over, it would let the workload
    // read keystrokes through its stdout or change the terminal's modes.
    // hutch relays through pipes instead, as Docker does.
    let dir = scratch(User::Sub, "no-tty");
    let hutch_bin = crate::harness::hutch_bin().display().to_string();
    let root = rootfs(User::Sub).display().to_string();
    let d = dir.display();
    let inner = format!(
        "stty -g > {d}/before; \
         {hutch_bin} run --rm -i --rootfs {root} sh -c \
         'for fd in 0 1 2; do test -t $fd && echo fd$fd-is-a-tty; done; stty -echo 2>/dev/null && echo modes-changed; read line; echo got:$line; echo err >&2'; \
         stty -g > {d}/after"
    );
    let shown = under_pty(&inner, "typed\n");
    assert!(!shown.contains("-is-a-tty"), "{shown:?}");
    assert!(!shown.contains("modes-changed"), "{shown:?}");
    assert!(shown.contains("got:typed\n"), "{shown:?}");
    assert!(shown.contains("err\n"), "{shown:?}");
    let before = std::fs::read_to_string(dir.join("before")).unwrap();
    let after = std::fs::read_to_string(dir.join("after")).unwrap();
    assert_eq!(before, after, "the user's terminal modes changed");
}

#[test]
fn dash_t_follows_the_users_window_size() {
    use std::io::BufRead;
    use std::os::fd::AsRawFd;
    let hutch_bin = crate::harness::hutch_bin().display().to_string();
    let root = rootfs(User::Sub).display().to_string();
    // The workload reports its size on SIGWINCH, which its own pty sends
    // when hutch passes on a new size.
    let inner = format!(
        "stty rows 24 cols 80; {hutch_bin} run --rm -t --rootfs {root} sh -c \
         'trap \"echo size \\$(stty size); exit 0\" WINCH; echo ready; while :; do sleep 1000 & wait $!; done'"
    );
    let mut cmd = crate::harness::as_user(User::Sub, "script");
    cmd.args(["-qec", &inner, "/dev/null"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null());
    let mut child = cmd.spawn().unwrap();
    let keep_stdin_open = child.stdin.take();
    let (tx, rx) = std::sync::mpsc::channel();
    let out = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(out).lines().map_while(Result::ok) {
            let _ = tx.send(line.replace('\r', ""));
        }
    });
    let wait_for = |needle: &str| loop {
        let line = rx
            .recv_timeout(crate::harness::TIMEOUT)
            .unwrap_or_else(|e| panic!("no {needle:?} from the sandbox: {e}"));
        if line.contains(needle) {
            return line;
        }
    };
    wait_for("ready");
    // The user resizes the terminal: set the size on hutch's own terminal
    // (script's pty), which sends hutch SIGWINCH.
    let hutch_pid = descendants(child.id() as i32)
        .into_iter()
        .find(|p| {
            std::fs::read_to_string(format!("/proc/{p}/cmdline"))
                .is_ok_and(|c| c.starts_with(&hutch_bin))
        })
        .expect("hutch under script");
    let tty = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(format!("/proc/{hutch_pid}/fd/0"))
        .unwrap();
    let ws = libc::winsize {
        ws_row: 40,
        ws_col: 120,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCSWINSZ reads a winsize from a live local.
    let r = unsafe { libc::ioctl(tty.as_raw_fd(), libc::TIOCSWINSZ, &ws) };
    assert_eq!(r, 0);
    assert_eq!(wait_for("size "), "size 40 120");
    drop(keep_stdin_open);
    assert!(child.wait().unwrap().success());
}

#[test]
fn stdio_files_cannot_be_reopened_for_more_access() {
    // `hutch run -i ... < input > output`: handed over as themselves, the
    // workload could reopen /proc/self/fd/0 for writing and change the
    // host's input file, or /proc/self/fd/1 for reading what the output
    // file held before. hutch passes pipes instead. Unconfined policy: the
    // engine alone must hold.
    let dir = scratch(User::Sub, "stdio-files");
    let input = dir.join("input");
    let output = dir.join("output");
    std::fs::write(&input, "original input\n").unwrap();
    std::fs::write(&output, "earlier log\n").unwrap();
    for f in [&input, &output] {
        crate::harness::chown(f, User::Sub.uid(), User::Sub.account().gid);
    }
    let script = format!(
        "timeout 60 {} run --rm -i --policy unconfined --rootfs {} sh -c \
         'cat; echo changed > /proc/self/fd/0; for f in 0 1; do readlink /proc/self/fd/$f | cut -d: -f1; done' \
         < {} >> {} 2>/dev/null",
        crate::harness::hutch_bin().display(),
        rootfs(User::Sub).display(),
        input.display(),
        output.display()
    );
    let status = crate::harness::as_user(User::Sub, "sh")
        .args(["-c", &script])
        .status()
        .unwrap();
    assert!(status.success());
    assert_eq!(std::fs::read_to_string(&input).unwrap(), "original input\n");
    assert_eq!(
        std::fs::read_to_string(&output).unwrap(),
        "earlier log\noriginal input\npipe\npipe\n"
    );
}

/// hutch starts without std's runtime start-up (src/main.rs), so it does
/// itself what that did: a closed stderr becomes /dev/null (never the
/// first file hutch opens, which its messages would then be written into),
/// and a stdout nobody reads is an EPIPE error, not a death by SIGPIPE.
#[test]
fn a_closed_stderr_is_dev_null_and_a_reader_gone_is_no_sigpipe() {
    use std::os::unix::process::CommandExt;
    // A limit, so that hutch holds files (its cgroup's) for the whole
    // run: a closed stderr left as it was would be the first of them.
    let mut h = hutch(User::Sub).run_rootfs([
        "--pids-limit",
        "64",
        "sh",
        "-c",
        "echo ready; exec sleep 30",
    ]);
    // SAFETY: only close(2) between fork and exec.
    unsafe {
        h.command().pre_exec(|| {
            libc::close(2);
            Ok(())
        });
    }
    let mut live = h.spawn();
    live.wait_line("ready");
    let fd2 = std::fs::read_link(format!("/proc/{}/fd/2", live.pid()));
    live.signal(libc::SIGKILL);
    live.finish();
    assert_eq!(fd2.unwrap(), std::path::Path::new("/dev/null"));

    // A pipe whose reader is gone before hutch writes a byte to it.
    let mut h = hutch(User::Sub).args(["--help"]);
    // SAFETY: only pipe(2), dup2(2) and close(2) between fork and exec.
    unsafe {
        h.command().pre_exec(|| {
            let mut fds = [0; 2];
            if libc::pipe(fds.as_mut_ptr()) != 0 || libc::dup2(fds[1], 1) != 1 {
                return Err(std::io::Error::last_os_error());
            }
            libc::close(fds[0]);
            libc::close(fds[1]);
            Ok(())
        });
    }
    let out = h.run();
    // Killed by a signal, the harness would see no exit code (-1).
    assert_eq!(out.code, 0, "{out:?}");
}
