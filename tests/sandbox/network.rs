//! User-mode networking: slirp4netns and pasta, published ports, DNS, and
//! no way back to the host's loopback unless asked for.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::Duration;

use crate::harness::{descendants, hutch, pidfd, rootfs, scratch, wait_exit, User};

const BACKENDS: [&str; 2] = ["slirp4netns", "pasta"];

/// A port that was free a moment ago on 127.0.0.1.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Network helper processes of `uid` still alive anywhere on the host.
fn helpers_of(uid: u32) -> Vec<String> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let p = entry.path();
        let Ok(status) = std::fs::read_to_string(p.join("status")) else {
            continue;
        };
        let owner = status
            .lines()
            .find_map(|l| l.strip_prefix("Uid:"))
            .and_then(|l| l.split_whitespace().next())
            .and_then(|u| u.parse::<u32>().ok());
        let comm = std::fs::read_to_string(p.join("comm")).unwrap_or_default();
        let comm = comm.trim();
        let zombie = status.lines().any(|l| l.starts_with("State:") && l.contains('Z'));
        if owner == Some(uid)
            && !zombie
            && (comm == "slirp4netns" || comm.starts_with("pasta") || comm.starts_with("passt"))
        {
            out.push(format!("{} {comm}", entry.file_name().to_string_lossy()));
        }
    }
    out
}

fn http_get(port: u16) -> String {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect to the published port");
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    s.write_all(b"GET /index.html HTTP/1.0\r\n\r\n").unwrap();
    let mut reply = String::new();
    let _ = s.read_to_string(&mut reply);
    reply
}

#[test]
fn a_web_server_inside_is_published_with_each_backend() {
    let user = User::Sub;
    for backend in BACKENDS {
        let www = scratch(user, &format!("www-{backend}"));
        std::fs::write(www.join("index.html"), format!("served by {backend}\n")).unwrap();
        let port = free_port();
        let mut live = hutch(user)
            .run_rootfs([
                "--network",
                backend,
                "-p",
                &format!("127.0.0.1:{port}:80"),
                "-v",
                &format!("{}:/www:ro", www.display()),
                "sh",
                "-c",
                "httpd -p 80 -h /www && echo ready && exec sleep 60",
            ])
            .spawn();
        live.wait_line("ready");
        let reply = http_get(port);
        assert!(reply.contains(&format!("served by {backend}")), "{backend}: {reply:?}");
        live.signal(libc::SIGTERM);
        let out = live.finish();
        assert_eq!(out.code, 143, "{out:#?}");
        assert_eq!(helpers_of(user.uid()), Vec::<String>::new(), "{backend} left behind");
    }
}

#[test]
fn host_loopback_is_unreachable_unless_allowed() {
    let user = User::Sub;
    let server = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = server.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for mut conn in server.incoming().flatten() {
            let _ = conn.write_all(b"hello-from-host\n");
        }
    });
    // The host as seen from the sandbox: slirp4netns's 10.0.2.2, pasta's
    // gateway; and the sandbox's own loopback, which pasta could forward.
    let probe = format!(
        "gw=$(ip route | awk '/default/ {{print $3}}'); \
         for a in 10.0.2.2 $gw 127.0.0.1; do echo | nc -w 3 $a {port}; done; echo done"
    );
    for backend in BACKENDS {
        let out = hutch(user)
            .run_rootfs(["--network", backend, "sh", "-c", &probe])
            .run();
        let text = out.ok();
        assert!(!text.contains("hello-from-host"), "{backend} reached the host: {out:#?}");
        assert!(text.contains("done"));
        let allowed = format!("{backend}:allow_host_loopback=true");
        let out = hutch(user)
            .run_rootfs(["--network", &allowed, "sh", "-c", &probe])
            .run();
        assert!(out.ok().contains("hello-from-host"), "{backend} with allow: {out:#?}");
    }
}

#[test]
fn no_network_reaches_nothing() {
    let out = hutch(User::NoSub)
        .run_rootfs([
            "sh",
            "-c",
            "cat /proc/net/dev | tail -n +3 | cut -d: -f1; echo | nc -w 2 192.0.2.1 80 && echo connected; true",
        ])
        .run();
    assert_eq!(out.stdout.trim(), "lo", "{out:#?}");
    assert!(out.stderr.contains("unreachable"), "{out:#?}");
}

#[test]
fn the_helper_dies_with_hutch() {
    let user = User::Sub;
    for backend in BACKENDS {
        let mut live = hutch(user)
            .run_rootfs(["--network", backend, "sh", "-c", "echo ready; exec sleep 60"])
            .spawn();
        live.wait_line("ready");
        let helpers: Vec<_> = descendants(live.pid())
            .into_iter()
            .filter(|p| {
                let comm = std::fs::read_to_string(format!("/proc/{p}/comm")).unwrap_or_default();
                comm.starts_with("slirp4netns") || comm.starts_with("pasta") || comm.starts_with("passt")
            })
            .collect();
        assert_eq!(helpers.len(), 1, "{backend}: helpers {helpers:?}");
        let fd = pidfd(helpers[0]).expect("helper alive");
        live.signal(libc::SIGKILL);
        assert!(wait_exit(&fd, Duration::from_secs(20)), "{backend} outlived hutch");
        let _ = live.finish();
    }
}

#[test]
fn a_taken_host_port_is_reported_before_start() {
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    hutch(User::Sub)
        .run_rootfs([
            "--network",
            "slirp4netns",
            "-p",
            &format!("127.0.0.1:{port}:80"),
            "true",
        ])
        .run()
        .fails_with(125, &format!("cannot publish 127.0.0.1:{port}/tcp"));
    hutch(User::Sub)
        .run_rootfs(["-p", "8080:80", "true"])
        .run()
        .fails_with(125, "-p needs a private network");
    hutch(User::Sub)
        .run_rootfs(["--network", "bridge", "true"])
        .run()
        .fails_with(125, "invalid --network \"bridge\"");
}

#[test]
fn dns_and_hosts_files() {
    let out = hutch(User::Sub)
        .run_rootfs([
            "--network",
            "slirp4netns",
            "--dns",
            "9.9.9.9",
            "--add-host",
            "db:10.1.2.3",
            "-h",
            "web",
            "sh",
            "-c",
            "cat /etc/resolv.conf /etc/hosts",
        ])
        .run();
    let text = out.ok();
    assert!(text.contains("nameserver 9.9.9.9\n"), "{text}");
    assert!(text.contains("10.1.2.3\tdb\n"), "{text}");
    assert!(text.contains("\tweb\n"), "{text}");
    // The image's own files are untouched: the rootfs has no hosts file.
    assert!(!rootfs(User::Sub).join("etc/hosts").exists());
    // pasta's DNS forwarder by default.
    let out = hutch(User::Sub)
        .run_rootfs(["--network", "pasta", "cat", "/etc/resolv.conf"])
        .run();
    assert_eq!(out.ok(), "nameserver 169.254.1.1\n");
}

#[test]
fn host_network_is_shared_with_a_warning() {
    let host_ns = std::fs::read_link("/proc/self/ns/net").unwrap();
    let out = hutch(User::NoSub)
        .run_rootfs(["--network", "host", "readlink", "/proc/self/ns/net"])
        .run();
    assert_eq!(out.ok().trim(), host_ns.to_string_lossy());
    assert!(out.stderr.contains("not network-isolated"), "{out:#?}");
}
