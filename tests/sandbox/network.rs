//! User-mode networking: slirp4netns and pasta, published ports, DNS, and
//! no way back to the host's loopback unless asked for.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::fd::OwnedFd;
use std::time::Duration;

use crate::harness::{hutch, pidfd, rootfs, scratch, wait_exit, User};

const BACKENDS: [&str; 2] = ["slirp4netns", "pasta"];

/// A port that was free a moment ago on 127.0.0.1.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The network helper among hutch's own children (slirp4netns or pasta;
/// pasta's own short-lived children are not counted).
fn helper_of(hutch_pid: i32) -> i32 {
    let found = children_named(hutch_pid, &["slirp4netns", "pasta", "passt"]);
    assert_eq!(
        found.len(),
        1,
        "one helper expected among hutch's children: {found:?}"
    );
    found[0]
}

/// hutch's own TCP port forwarder among hutch's children (slirp4netns's
/// published TCP ports).
fn forwarder_of(hutch_pid: i32) -> i32 {
    let found = children_named(hutch_pid, &["hutch-forward"]);
    assert_eq!(found.len(), 1, "one forwarder expected: {found:?}");
    found[0]
}

/// A sandbox's network helper and, with slirp4netns and published TCP
/// ports, hutch's forwarder: children of `parent` (a foreground hutch, or a
/// detached container's supervisor), held as pidfds to see them end.
struct Helpers {
    backend: String,
    helper: OwnedFd,
    forwarder: Option<OwnedFd>,
}

impl Helpers {
    fn of(parent: i32, backend: &str) -> Helpers {
        Helpers {
            backend: backend.to_string(),
            helper: pidfd(helper_of(parent)).expect("the helper runs"),
            forwarder: (backend == "slirp4netns")
                .then(|| pidfd(forwarder_of(parent)).expect("the forwarder runs")),
        }
    }

    /// Fails unless each has ended within `within` of `what`.
    fn assert_gone(&self, within: Duration, what: &str) {
        assert!(
            wait_exit(&self.helper, within),
            "{}: the helper outlived {what}",
            self.backend
        );
        if let Some(f) = &self.forwarder {
            assert!(
                wait_exit(f, within),
                "{}: the forwarder outlived {what}",
                self.backend
            );
        }
    }
}

/// Children of `pid` whose command name starts with one of `names`.
fn children_named(hutch_pid: i32, names: &[&str]) -> Vec<i32> {
    let mut found = Vec::new();
    for task in std::fs::read_dir(format!("/proc/{hutch_pid}/task"))
        .unwrap()
        .flatten()
    {
        let children = std::fs::read_to_string(task.path().join("children")).unwrap_or_default();
        for c in children
            .split_whitespace()
            .filter_map(|c| c.parse::<i32>().ok())
        {
            let comm = std::fs::read_to_string(format!("/proc/{c}/comm")).unwrap_or_default();
            if names.iter().any(|n| comm.starts_with(n)) {
                found.push(c);
            }
        }
    }
    found
}

/// A web server on the host's 127.0.0.1 that answers every request with
/// `hello-from-host`; its port.
///
/// It reads the whole request before it answers and closes: a socket
/// closed with bytes unread sends a reset, not a FIN, and Debian 12's
/// pasta drops the reply it has not yet passed on when the reset follows
/// at once (under load, most of the time). The reply has a Content-Length
/// so that the client stops without waiting for the server's FIN, which
/// that pasta does not pass on once the client has half-closed.
fn host_server() -> u16 {
    let server = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = server.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for mut conn in server.incoming().flatten() {
            let mut request = Vec::new();
            let mut buf = [0u8; 1024];
            while !request.ends_with(b"\r\n\r\n") && request.len() < 64 * 1024 {
                match conn.read(&mut buf) {
                    Ok(n) if n > 0 => request.extend_from_slice(&buf[..n]),
                    _ => break,
                }
            }
            let body = "hello-from-host\n";
            let _ = write!(
                conn,
                "HTTP/1.0 200 OK\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            );
        }
    });
    port
}

/// A shell command that fetches `host_server`'s page from `$host` (a shell
/// word) and prints it, giving up after `secs`.
fn fetch(host: &str, port: u16, secs: u32) -> String {
    format!("timeout {secs} wget -q -O - http://{host}:{port}/")
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
        let helpers = Helpers::of(live.pid(), backend);
        let reply = http_get(port);
        assert!(
            reply.contains(&format!("served by {backend}")),
            "{backend}: {reply:?}"
        );
        live.signal(libc::SIGTERM);
        let out = live.finish();
        assert_eq!(out.code, 143, "{out:#?}");
        // hutch kills and reaps its helpers before it exits.
        helpers.assert_gone(Duration::ZERO, "its sandbox");
    }
}

#[test]
fn host_loopback_is_unreachable_unless_allowed() {
    let user = User::Sub;
    let port = host_server();
    // The host as seen from the sandbox: slirp4netns's 10.0.2.2, pasta's
    // gateway; and the sandbox's own loopback, which pasta could forward.
    let probe = format!(
        "gw=$(ip route | awk '/default/ {{print $3}}'); \
         for a in 10.0.2.2 $gw 127.0.0.1; do {}; done; echo done",
        fetch("$a", port, 3)
    );
    for backend in BACKENDS {
        let out = hutch(user)
            .run_rootfs(["--network", backend, "sh", "-c", &probe])
            .run();
        let text = out.ok();
        assert!(
            !text.contains("hello-from-host"),
            "{backend} reached the host: {out:#?}"
        );
        assert!(text.contains("done"));
        let allowed = format!("{backend}:allow_host_loopback=true");
        let out = hutch(user)
            .run_rootfs(["--network", &allowed, "sh", "-c", &probe])
            .run();
        assert!(
            out.ok().contains("hello-from-host"),
            "{backend} with allow: {out:#?}"
        );
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
        let publish = format!("127.0.0.1:{}:80", free_port());
        let mut live = hutch(user)
            .run_rootfs([
                "--network",
                backend,
                "-p",
                &publish,
                "sh",
                "-c",
                "echo ready; exec sleep 60",
            ])
            .spawn();
        live.wait_line("ready");
        let helpers = Helpers::of(live.pid(), backend);
        live.signal(libc::SIGKILL);
        helpers.assert_gone(Duration::from_secs(20), "hutch");
        let _ = live.finish();
    }
}

#[test]
fn ctrl_c_reaches_the_workload_and_leaves_its_network_up() {
    use std::os::unix::process::CommandExt;
    let user = User::Sub;
    let port = host_server();
    for backend in BACKENDS {
        let host = match backend {
            "slirp4netns" => "10.0.2.2",
            _ => "$(ip route | awk '/default/ {print $3}')",
        };
        // The workload answers SIGINT by using the network once more: a
        // helper that the Ctrl-C reached answers nothing.
        let script = format!(
            "host={host}; trap '{}; exit 3' INT; echo ready; while :; do sleep 0.1; done",
            fetch("$host", port, 20)
        );
        let network = format!("{backend}:allow_host_loopback=true");
        let mut h = hutch(user).run_rootfs(["--network", &network, "sh", "-c", &script]);
        h.command().process_group(0);
        let mut live = h.spawn();
        live.wait_line("ready");
        // A terminal's Ctrl-C: SIGINT to the whole foreground process group.
        // SAFETY: signalling the process group of the hutch we spawned.
        assert_eq!(unsafe { libc::kill(-live.pid(), libc::SIGINT) }, 0);
        let out = live.finish();
        assert_eq!(out.code, 3, "{backend}: {out:#?}");
        assert!(
            out.stdout.contains("hello-from-host"),
            "{backend}: the network went down with Ctrl-C: {out:#?}"
        );
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
    // A helper missing from PATH is named, with the package to install.
    for (backend, package) in [("slirp4netns", "slirp4netns"), ("pasta", "passt")] {
        hutch(User::NoSub)
            .env("PATH", "/nonexistent")
            .run_rootfs(["--network", backend, "true"])
            .run()
            .fails_with(
                125,
                &format!("{backend} is not installed (hint: apt-get install {package}"),
            );
    }
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
    // The image's own files are untouched.
    assert_eq!(
        std::fs::read_to_string(rootfs(User::Sub).join("etc/hosts")).unwrap(),
        "127.0.0.1\tlocalhost\n"
    );
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

/// The parent of `pid`, from /proc/PID/stat.
fn parent_of(pid: i32) -> i32 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    stat[stat.rfind(')').unwrap() + 2..]
        .split_whitespace()
        .nth(1)
        .unwrap()
        .parse()
        .unwrap()
}

#[test]
fn detached_containers_own_their_helper_until_stop_rm_or_supervisor_death() {
    let user = User::Sub;
    let data = scratch(user, "net-lifecycle").join("data");
    std::fs::create_dir_all(&data).unwrap();
    let acct = user.account();
    crate::harness::chown(&data, acct.uid, acct.gid);
    let h = |args: &[&str]| hutch(user).env("HUTCH_DATA_DIR", &data).args(args).run();
    let www = scratch(user, "net-lifecycle-www");
    std::fs::write(www.join("index.html"), "detached\n").unwrap();
    let root = rootfs(user).display().to_string();
    let volume = format!("{}:/www:ro", www.display());

    let ends = ["stop", "rm", "kill-supervisor"];
    for (backend, end) in BACKENDS.into_iter().flat_map(|b| ends.map(|e| (b, e))) {
        let name = &format!("web-{backend}-{end}");
        let port = free_port();
        let publish = format!("127.0.0.1:{port}:80");
        h(&[
            "run",
            "-d",
            "--name",
            name,
            "--network",
            backend,
            "-p",
            &publish,
            "-v",
            &volume,
            "--rootfs",
            &root,
            "sh",
            "-c",
            "httpd -p 80 -h /www && echo ready && exec sleep 300",
        ])
        .ok();
        let mut logs = hutch(user)
            .env("HUTCH_DATA_DIR", &data)
            .args(["logs", "-f", name])
            .spawn();
        logs.wait_line("ready");
        assert!(http_get(port).contains("detached"), "{name}");
        assert_eq!(
            h(&["port", name]).ok(),
            format!("80/tcp -> 127.0.0.1:{port}\n")
        );
        assert_eq!(h(&["port", name, "80"]).ok(), format!("127.0.0.1:{port}\n"));
        assert_eq!(h(&["port", name, "81"]).code, 1);
        let init: i32 = h(&["inspect", "-f", "{{.State.Pid}}", name])
            .ok()
            .trim()
            .parse()
            .unwrap();
        let supervisor = parent_of(init);
        let helpers = Helpers::of(supervisor, backend);
        match end {
            "stop" => {
                h(&["stop", "-t", "1", name]).ok();
            }
            "rm" => {
                h(&["rm", "-f", name]).ok();
            }
            _ => {
                // SAFETY: killing the test user's supervisor process.
                unsafe { libc::kill(supervisor, libc::SIGKILL) };
            }
        }
        helpers.assert_gone(Duration::from_secs(20), &format!("{name} ({end})"));
        let _ = logs.finish();
        let _ = h(&["rm", "-f", name]);
    }
}

#[test]
fn publish_all_serves_the_images_exposed_ports() {
    // The `web` test image exposes 80/tcp and 8080/tcp and serves /www.
    crate::images::registries();
    let user = User::Sub;
    let data = scratch(user, "net-publish-all");
    let h = |args: &[&str]| hutch(user).env("HUTCH_DATA_DIR", &data).args(args).run();
    let web = "127.0.0.1:5790/hutch/web";
    h(&["pull", "-q", web]).ok();
    // The image's own Cmd runs httpd in the foreground, which says nothing
    // when it listens: this command says "ready" once httpd has bound.
    h(&[
        "run",
        "-d",
        "-P",
        "--name",
        "web",
        "--network",
        "private",
        web,
        "sh",
        "-c",
        "httpd -p 80 -h /www && echo ready && exec sleep 300",
    ])
    .ok();
    let mut logs = hutch(user)
        .env("HUTCH_DATA_DIR", &data)
        .args(["logs", "-f", "web"])
        .spawn();
    logs.wait_line("ready");

    // Both exposed ports are published, each on its own free host port.
    let listing = h(&["port", "web"]).ok().to_string();
    let mapped: Vec<(String, u16)> = listing
        .lines()
        .map(|l| {
            let (container, host) = l.split_once(" -> ").expect(&listing);
            let (ip, port) = host.rsplit_once(':').unwrap();
            assert_eq!(ip, "0.0.0.0", "{listing}");
            (container.to_string(), port.parse().unwrap())
        })
        .collect();
    assert_eq!(
        mapped.iter().map(|m| m.0.as_str()).collect::<Vec<_>>(),
        ["80/tcp", "8080/tcp"],
        "{listing}"
    );
    assert_ne!(mapped[0].1, mapped[1].1);
    let port80 = mapped[0].1;
    assert_eq!(
        h(&["port", "web", "80/tcp"]).ok(),
        format!("0.0.0.0:{port80}\n")
    );
    let reply = http_get(port80);
    assert!(
        reply.contains("200 OK") && reply.contains("hello from the web image"),
        "{reply:?}"
    );

    // inspect: Docker's shape for -P.
    let field = |f: &str| h(&["inspect", "-f", f, "web"]).ok().trim().to_string();
    assert_eq!(field("{{json .HostConfig.PublishAllPorts}}"), "true");
    assert_eq!(
        field("{{.HostConfig.NetworkMode}}"),
        hutch::net::preferred_backend().to_string()
    );
    let ports: serde_json::Value =
        serde_json::from_str(&field("{{json .NetworkSettings.Ports}}")).unwrap();
    for (container, host) in &mapped {
        assert_eq!(
            ports[container],
            serde_json::json!([{"HostIp": "0.0.0.0", "HostPort": host.to_string()}]),
            "{ports}"
        );
    }
    let ps = h(&["ps"]).ok().to_string();
    assert!(ps.contains(&format!("0.0.0.0:{port80}->80/tcp")), "{ps}");

    // Without -P, the image's ports stay closed.
    h(&["create", "--name", "closed", "--network", "private", web]).ok();
    let closed = h(&[
        "inspect",
        "-f",
        "{{json .HostConfig.PublishAllPorts}} {{json .NetworkSettings.Ports}}",
        "closed",
    ]);
    assert_eq!(closed.ok().trim(), "false {}");
    assert_eq!(h(&["port", "closed"]).ok(), "");

    h(&["rm", "-f", "web", "closed"]).ok();
    let _ = logs.finish();
    // The published port is closed with its container.
    assert!(TcpStream::connect(("127.0.0.1", port80)).is_err());
}
