//! `hutch-runtime`, the OCI runtime command line: bundles driven through
//! create, start, state, exec, kill and delete as the unprivileged user,
//! refusals of what it cannot honour, the `run.hutch.policy` annotation,
//! and rootless Podman using it as its runtime.

use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::{json, Value};

use crate::harness::{
    as_user, pidfd, probe, rootfs, runtime_bin, scratch, wait_exit, Out, User, TIMEOUT,
};

/// A bundle for hutch-sub: config.json over the harness' busybox rootfs
/// (read-only: other tests share it), with a tmpfs /tmp and the test's
/// scratch dir bound at /out for the workload to report through.
struct Bundle {
    user: User,
    dir: PathBuf,
    out: PathBuf,
    state: PathBuf,
    config: Value,
}

impl Bundle {
    fn new(name: &str, args: &[&str]) -> Bundle {
        Bundle::of(User::Sub, name, args)
    }

    /// A bundle for `user`: hutch-nosub maps its own ids only.
    fn of(user: User, name: &str, args: &[&str]) -> Bundle {
        let dir = scratch(user, &format!("rt-{name}"));
        let out = dir.join("out");
        let state = dir.join("state");
        for d in [&out, &state] {
            std::fs::create_dir(d).unwrap();
            crate::harness::chown(d, user.uid(), user.account().gid);
        }
        let (uid, gid) = (user.uid(), user.account().gid);
        let (uid_map, gid_map) = match user {
            User::Sub => {
                let (start, count) = subordinate(user.account().name);
                (
                    json!([{"containerID": 0, "hostID": uid, "size": 1}, {"containerID": 1, "hostID": start, "size": count}]),
                    json!([{"containerID": 0, "hostID": gid, "size": 1}, {"containerID": 1, "hostID": start, "size": count}]),
                )
            }
            User::NoSub => (
                json!([{"containerID": 0, "hostID": uid, "size": 1}]),
                json!([{"containerID": 0, "hostID": gid, "size": 1}]),
            ),
        };
        let config = json!({
            "ociVersion": "1.0.2",
            "process": {
                "user": {"uid": 0, "gid": 0},
                "args": args,
                "env": ["PATH=/bin:/usr/bin:/sbin"],
                "cwd": "/"
            },
            "root": {"path": rootfs(user), "readonly": true},
            "hostname": "bundle",
            "mounts": [
                {"destination": "/proc", "type": "proc", "source": "proc"},
                {"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
                {"destination": "/dev/pts", "type": "devpts", "source": "devpts", "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"]},
                {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue", "options": ["nosuid", "noexec", "nodev"]},
                {"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["nosuid", "noexec", "nodev", "ro"]},
                {"destination": "/tmp", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "nodev", "mode=1777"]},
                {"destination": "/out", "type": "bind", "source": out, "options": ["rbind", "rw"]},
                {"destination": "/probe", "type": "bind", "source": probe(), "options": ["rbind", "ro"]}
            ],
            "linux": {
                "namespaces": [{"type": "pid"}, {"type": "ipc"}, {"type": "uts"}, {"type": "mount"}, {"type": "network"}, {"type": "user"}],
                "uidMappings": uid_map,
                "gidMappings": gid_map,
                "maskedPaths": ["/proc/kcore"],
                "readonlyPaths": ["/proc/sys"]
            }
        });
        Bundle {
            user,
            dir,
            out,
            state,
            config,
        }
    }

    fn write(&self) {
        let path = self.dir.join("config.json");
        std::fs::write(&path, serde_json::to_vec_pretty(&self.config).unwrap()).unwrap();
    }

    /// `hutch-runtime --root STATE ARGS...` to completion.
    fn rt(&self, args: &[&str]) -> Out {
        let mut cmd = self.command(args);
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
        let o = cmd.output().unwrap();
        Out {
            code: o.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = as_user(self.user, runtime_bin());
        cmd.arg("--root").arg(&self.state).args(args);
        cmd.current_dir(&self.dir).stdin(Stdio::null());
        cmd
    }

    /// `create --bundle DIR --pid-file FILE ID`: the container keeps
    /// create's stdio, so it goes to files here (a pipe would stay open
    /// for the container's whole life). Returns the result and the pid.
    fn create(&self, id: &str) -> (Out, Option<i32>) {
        self.write();
        let log = self.dir.join(format!("{id}.stdout"));
        let err = self.dir.join(format!("{id}.stderr"));
        let pid_file = self.dir.join(format!("{id}.pid"));
        let status = self
            .command(&["create", "--bundle"])
            .arg(&self.dir)
            .arg("--pid-file")
            .arg(&pid_file)
            .arg(id)
            .stdout(std::fs::File::create(&log).unwrap())
            .stderr(std::fs::File::create(&err).unwrap())
            .status()
            .unwrap();
        let pid = std::fs::read_to_string(&pid_file)
            .ok()
            .and_then(|s| s.trim().parse().ok());
        let out = Out {
            code: status.code().unwrap_or(-1),
            stdout: std::fs::read_to_string(&log).unwrap(),
            stderr: std::fs::read_to_string(&err).unwrap(),
        };
        (out, pid)
    }

    fn stdout_of(&self, id: &str) -> String {
        std::fs::read_to_string(self.dir.join(format!("{id}.stdout"))).unwrap()
    }

    fn state(&self, id: &str) -> Value {
        let out = self.rt(&["state", id]);
        serde_json::from_str(out.ok()).unwrap()
    }

    /// A FIFO in /out the workload writes a line to, read here: waiting on
    /// the workload's own event rather than sleeping.
    fn fifo(&self, name: &str) -> PathBuf {
        let p = self.out.join(name);
        let c = std::ffi::CString::new(p.to_str().unwrap()).unwrap();
        // SAFETY: a valid C string.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o666) }, 0);
        crate::harness::chown(&p, self.user.uid(), self.user.account().gid);
        p
    }
}

/// The first line written to `fifo`, within the harness timeout.
fn read_line(fifo: &Path) -> String {
    let fifo = fifo.to_path_buf();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let f = std::fs::File::open(&fifo).unwrap();
        let mut line = String::new();
        std::io::BufReader::new(f).read_line(&mut line).unwrap();
        let _ = tx.send(line);
    });
    rx.recv_timeout(TIMEOUT)
        .expect("no line from the container")
}

fn subordinate(name: &str) -> (u64, u64) {
    let text = std::fs::read_to_string("/etc/subuid").unwrap();
    let f: Vec<&str> = text
        .lines()
        .map(|l| l.split(':').collect::<Vec<_>>())
        .find(|f| f[0] == name)
        .expect("hutch-sub has a subordinate range")
        .clone();
    (f[1].parse().unwrap(), f[2].parse().unwrap())
}

fn wait_gone(pid: i32) {
    if let Some(fd) = pidfd(pid) {
        assert!(wait_exit(&fd, TIMEOUT), "process {pid} did not end");
    }
}

#[test]
fn bundle_lifecycle_create_start_state_exec_kill_delete() {
    let b = Bundle::new(
        "lifecycle",
        &[
            "sh",
            "-c",
            "echo workload ran; echo ready > /out/ready; exec sleep 1000",
        ],
    );
    let ready = b.fifo("ready");
    let (out, pid) = b.create("c1");
    assert_eq!(out.code, 0, "{out:#?}");
    let pid = pid.expect("create wrote the pid file");

    // Created: the process exists, set up, but the workload has not run.
    let st = b.state("c1");
    assert_eq!(st["status"], "created", "{st}");
    assert_eq!(st["pid"], pid, "{st}");
    assert_eq!(st["id"], "c1");
    assert_eq!(
        st["ociVersion"].as_str().unwrap().split('.').next(),
        Some("1")
    );
    assert_eq!(
        Path::new(st["bundle"].as_str().unwrap()),
        std::fs::canonicalize(&b.dir).unwrap()
    );
    assert!(Path::new(&format!("/proc/{pid}")).exists());
    assert_eq!(b.stdout_of("c1"), "", "the workload ran before start");
    // A created container cannot be exec'd into or started twice over.
    b.rt(&["exec", "c1", "true"])
        .fails_with(125, "container c1 is created");

    b.rt(&["start", "c1"]).ok();
    assert_eq!(read_line(&ready), "ready\n");
    assert_eq!(b.stdout_of("c1"), "workload ran\n");
    let st = b.state("c1");
    assert_eq!(st["status"], "running", "{st}");
    assert_eq!(st["pid"], pid, "{st}");
    b.rt(&["start", "c1"])
        .fails_with(125, "container c1 is running");

    // exec joins the container: its hostname, its pid namespace.
    let out = b.rt(&[
        "exec",
        "c1",
        "sh",
        "-c",
        "hostname; cat /proc/1/cmdline | tr '\\0' ' '",
    ]);
    assert_eq!(out.ok(), "bundle\nsleep 1000 ");

    // A running container is not deleted without --force.
    b.rt(&["delete", "c1"])
        .fails_with(125, "container c1 is running");
    // pid 1 of its namespace ignores TERM (no handler): KILL ends it.
    b.rt(&["kill", "c1", "KILL"]).ok();
    wait_gone(pid);
    let st = b.state("c1");
    assert_eq!(st["status"], "stopped", "{st}");
    assert!(st.get("pid").is_none(), "{st}");
    b.rt(&["kill", "c1", "TERM"])
        .fails_with(125, "container c1 is stopped");

    b.rt(&["delete", "c1"]).ok();
    b.rt(&["state", "c1"])
        .fails_with(125, "container c1 does not exist");
    assert!(!b.state.join("c1").exists());
}

#[test]
fn deleting_a_created_container_kills_it_before_its_workload_runs() {
    let b = Bundle::new("created-delete", &["sh", "-c", "echo ran > /out/ran"]);
    let (out, pid) = b.create("c2");
    assert_eq!(out.code, 0, "{out:#?}");
    let pid = pid.unwrap();
    let fd = pidfd(pid).expect("the created process exists");
    b.rt(&["delete", "c2"]).ok();
    assert!(wait_exit(&fd, Duration::from_secs(10)));
    assert!(!b.out.join("ran").exists(), "the workload ran");
    b.rt(&["start", "c2"])
        .fails_with(125, "container c2 does not exist");
}

#[test]
fn config_fields_hutch_cannot_honour_are_refused_by_name() {
    let mut b = Bundle::new("refusals", &["true"]);
    let cases: Vec<(&str, Value, &str)> = vec![
        ("/linux/intelRdt", json!({"closID": "x"}), "linux.intelRdt"),
        (
            "/linux/resources",
            json!({"blockIO": {"weight": 10}}),
            "linux.resources.blockIO",
        ),
        (
            "/linux/resources",
            json!({"memory": {"disableOOMKiller": true}}),
            "linux.resources.memory.disableOOMKiller",
        ),
        (
            "/linux/cgroupsPath",
            json!("system.slice:hutch:bad"),
            "linux.cgroupsPath",
        ),
        (
            "/linux/cgroupsPath",
            json!("../escape"),
            "linux.cgroupsPath",
        ),
        (
            "/process/apparmorProfile",
            json!("docker-default"),
            "process.apparmorProfile",
        ),
        (
            "/hooks",
            json!({"createContainer": [{"path": "/bin/true"}]}),
            "hooks.createContainer",
        ),
        (
            "/hooks",
            json!({"createRuntime": [{"path": "/bin/false"}]}),
            "hooks.createRuntime[0]",
        ),
        (
            "/linux/sysctl",
            json!({"kernel.panic": "1"}),
            "linux.sysctl.kernel.panic",
        ),
    ];
    let clean = b.config.clone();
    for (pointer, value, field) in cases {
        b.config = clean.clone();
        let (parent, key) = pointer.rsplit_once('/').unwrap();
        let parent = if parent.is_empty() {
            &mut b.config
        } else {
            b.config.pointer_mut(parent).unwrap()
        };
        parent[key] = value;
        let (out, pid) = b.create("bad");
        assert_eq!(out.code, 125, "{field}: {out:#?}");
        assert!(out.stderr.contains(field), "{field}: {out:#?}");
        assert!(pid.is_none(), "{field}: a process was started");
        // Nothing is left: the id is free again.
        b.rt(&["state", "bad"]).fails_with(125, "does not exist");
    }
}

#[test]
fn hooks_run_with_the_state_at_their_step() {
    let mut b = Bundle::new("hooks", &["sh", "-c", "echo ran"]);
    let hook = |name: &str| {
        let file = b.out.join(format!("{name}.json"));
        json!({"path": "/bin/sh", "args": ["sh", "-c", "cat > \"$OUT\""], "env": [format!("OUT={}", file.display())]})
    };
    b.config["hooks"] = json!({
        "createRuntime": [hook("createRuntime")],
        "poststart": [hook("poststart")],
        "poststop": [hook("poststop")],
    });
    let (out, pid) = b.create("h1");
    assert_eq!(out.code, 0, "{out:#?}");
    let pid = pid.unwrap();
    let read = |name: &str| -> Value {
        let text = std::fs::read_to_string(b.out.join(format!("{name}.json")))
            .unwrap_or_else(|e| panic!("hook {name} did not run: {e}"));
        serde_json::from_str(&text).unwrap()
    };
    let created = read("createRuntime");
    assert_eq!(created["status"], "created", "{created}");
    assert_eq!(created["id"], "h1");
    assert_eq!(created["pid"], pid);
    assert!(!b.out.join("poststart.json").exists());
    b.rt(&["start", "h1"]).ok();
    // poststart runs before start returns.
    assert_eq!(read("poststart")["id"], "h1");
    wait_gone(pid);
    b.rt(&["delete", "h1"]).ok();
    assert_eq!(read("poststop")["status"], "stopped");
    assert_eq!(b.stdout_of("h1"), "ran\n");
}

/// Run a bundle to its end; its stdout.
fn run_to_end(b: &Bundle, id: &str) -> String {
    let (out, pid) = b.create(id);
    assert_eq!(out.code, 0, "{out:#?}");
    b.rt(&["start", id]).ok();
    wait_gone(pid.unwrap());
    b.rt(&["delete", id]).ok();
    b.stdout_of(id)
}

#[test]
fn policy_annotation_applies_the_profiles_seccomp_and_landlock() {
    // The root is read-only, so Landlock's default profile leaves only the
    // mounts writable: /proc/self/comm is writable without it (procfs is
    // not read-only), and only Landlock refuses it.
    let script =
        "grep '^Seccomp:' /proc/self/status; /probe/probe write:/proc/self/comm write:/tmp/x";
    let mut b = Bundle::new("policy", &["sh", "-c", script]);
    let plain = run_to_end(&b, "plain");
    assert!(plain.contains("Seccomp:\t0"), "{plain}");
    assert!(plain.contains("write:/proc/self/comm: OK"), "{plain}");
    assert!(plain.contains("write:/tmp/x: OK"), "{plain}");

    b.config["annotations"] = json!({"run.hutch.policy": "default"});
    let confined = run_to_end(&b, "confined");
    assert!(confined.contains("Seccomp:\t2"), "{confined}");
    assert!(
        confined.contains("write:/proc/self/comm: EACCES"),
        "{confined}"
    );
    assert!(confined.contains("write:/tmp/x: OK"), "{confined}");

    b.config["annotations"] = json!({"run.hutch.policy": "/etc/passwd"});
    let (out, _) = b.create("path");
    out.fails_with(125, "annotations.run.hutch.policy");

    // judge refuses IPv4 and IPv6 sockets, but a runtime container's
    // network namespace may be joined by others (a pod's): its loopback is
    // up (IFF_UP | IFF_LOOPBACK) as runc and crun leave it.
    let mut b = Bundle::new("policy-judge", &["cat", "/sys/class/net/lo/flags"]);
    b.config["annotations"] = json!({"run.hutch.policy": "judge"});
    assert_eq!(run_to_end(&b, "judge"), "0x9\n");
}

/// The busybox image in hutch-sub's Podman storage, from the local registry.
fn podman_image() -> &'static str {
    static IMAGE: std::sync::OnceLock<&'static str> = std::sync::OnceLock::new();
    IMAGE.get_or_init(|| {
        crate::images::registries();
        let image = "127.0.0.1:5790/hutch/busybox:latest";
        let out = podman(&["pull", "-q", "--tls-verify=false", image]);
        assert_eq!(out.code, 0, "{out:#?}");
        image
    })
}

fn podman(args: &[&str]) -> Out {
    let mut cmd = as_user(User::Sub, "podman");
    cmd.args(args).stdin(Stdio::null());
    let o = cmd
        .output()
        .expect("run podman (scripts/setup-host.sh installs it)");
    Out {
        code: o.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
    }
}

fn podman_rt(args: &[&str]) -> Out {
    let rt = runtime_bin().to_str().unwrap().to_string();
    let mut all = vec!["--runtime", rt.as_str()];
    all.extend_from_slice(args);
    podman(&all)
}

#[test]
fn podman_runs_containers_through_hutch_runtime() {
    let image = podman_image();
    let out = podman_rt(&["run", "--rm", image, "echo", "hello"]);
    assert_eq!(out.ok(), "hello\n");

    let name = format!("hutch-rt-{}", std::process::id());
    let _ = podman(&["rm", "-f", &name]);
    let script = "grep '^Seccomp:' /proc/self/status; echo started; trap 'echo stopping; exit 0' TERM; while true; do sleep 0.1; done";
    let out = podman_rt(&[
        "run",
        "-d",
        "--name",
        &name,
        "--annotation",
        "run.hutch.policy=default",
        image,
        "sh",
        "-c",
        script,
    ]);
    out.ok();
    // podman exec runs in the container (hutch-runtime exec), confined too.
    let out = podman_rt(&[
        "exec",
        &name,
        "sh",
        "-c",
        "grep '^Seccomp:' /proc/self/status; cat /proc/1/cmdline",
    ]);
    let text = out.ok();
    assert!(text.starts_with("Seccomp:\t2\nsh\0-c\0"), "{text:?}");
    let logs = podman(&["logs", &name]);
    assert!(logs.ok().contains("Seccomp:\t2\nstarted"), "{logs:#?}");
    podman_rt(&["stop", "-t", "20", &name]).ok();
    let logs = podman(&["logs", &name]);
    assert!(logs.ok().contains("stopping"), "{logs:#?}");
    let st = podman(&[
        "inspect",
        "--format",
        "{{.State.Status}} {{.State.ExitCode}}",
        &name,
    ]);
    assert_eq!(st.ok().trim(), "exited 0");
    podman_rt(&["rm", &name]).ok();
    assert_ne!(
        podman(&["inspect", &name]).code,
        0,
        "the container is still there"
    );
}

impl Bundle {
    /// Bind the harness' static test programs (tests/programs) at /p.
    fn with_programs(mut self) -> Bundle {
        let mounts = self.config["mounts"].as_array_mut().unwrap();
        mounts.push(json!({"destination": "/p", "type": "bind", "source": crate::harness::programs_dir(), "options": ["rbind", "ro"]}));
        self
    }

    fn stderr_of(&self, id: &str) -> String {
        std::fs::read_to_string(self.dir.join(format!("{id}.stderr"))).unwrap()
    }
}

/// Start 40 background sleeps, writing how many were started to
/// /out/count after each; busybox sh exits when a fork fails.
const FORK_LOOP: &str =
    "i=0; while [ $i -lt 40 ]; do sleep 1000 & i=$((i+1)); echo $i > /out/count; done; echo all forked";

fn forked(b: &Bundle) -> u32 {
    std::fs::read_to_string(b.out.join("count"))
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

#[test]
fn resources_bite_in_the_delegated_cgroup_at_cgroups_path() {
    let script = format!("/p/alloc; echo alloc $?; {FORK_LOOP}");
    let mut b = Bundle::new("resources", &["sh", "-c", &script]).with_programs();
    let mib = 1u64 << 20;
    b.config["linux"]["resources"] = json!({
        "memory": {"limit": 32 * mib, "swap": 32 * mib},
        "pids": {"limit": 10},
        "cpu": {"shares": 512, "quota": 50000, "period": 100000},
        "devices": [{"allow": false, "access": "rwm"},
            {"allow": true, "type": "c", "major": 1, "minor": 3, "access": "rwm"},
            {"allow": true, "type": "c", "major": 1, "minor": 5, "access": "rwm"},
            {"allow": true, "type": "c", "major": 1, "minor": 7, "access": "rwm"},
            {"allow": true, "type": "c", "major": 1, "minor": 8, "access": "rwm"},
            {"allow": true, "type": "c", "major": 1, "minor": 9, "access": "rwm"},
            {"allow": true, "type": "c", "major": 5, "minor": 0, "access": "rwm"},
            {"allow": true, "type": "c", "major": 5, "minor": 2, "access": "rwm"},
            {"allow": true, "type": "c", "major": 136, "access": "rwm"}]
    });
    let rel = format!("hutch-rt-tests/limits-{}", std::process::id());
    b.config["linux"]["cgroupsPath"] = json!(rel);
    let (out, pid) = b.create("lim");
    assert_eq!(out.code, 0, "{out:#?}");
    let pid = pid.unwrap();
    // The cgroup is where cgroupsPath says, under the delegated subtree,
    // with the limits written, and the container's process is in it.
    let dir = |ctrl: &str| {
        Path::new("/sys/fs/cgroup")
            .join(ctrl)
            .join("user/hutch-sub")
            .join(&rel)
    };
    let read = |ctrl: &str, file: &str| std::fs::read_to_string(dir(ctrl).join(file)).unwrap();
    assert_eq!(
        read("memory", "memory.limit_in_bytes").trim(),
        (32 * mib).to_string()
    );
    assert_eq!(read("pids", "pids.max").trim(), "10");
    assert_eq!(read("cpu", "cpu.cfs_quota_us").trim(), "50000");
    assert_eq!(read("cpu", "cpu.shares").trim(), "512");
    assert!(read("pids", "cgroup.procs")
        .lines()
        .any(|l| l == pid.to_string()));

    b.rt(&["start", "lim"]).ok();
    wait_gone(pid);
    let stdout = b.stdout_of("lim");
    // The allocation was stopped by the OOM killer (SIGKILL), not by an
    // rlimit (malloc failing: exit 3).
    assert!(stdout.starts_with("alloc 137\n"), "{stdout}");
    // The fork loop was stopped by pids.max: the shell, its sleeps and
    // nothing more.
    assert!(!stdout.contains("all forked"), "{stdout}");
    let n = forked(&b);
    assert!((1..10).contains(&n), "{n} forked");
    let stderr = b.stderr_of("lim");
    assert!(stderr.contains("can't fork"), "{stderr}");
    let oom = read("memory", "memory.oom_control");
    assert!(!oom.contains("oom_kill 0\n"), "{oom}");

    b.rt(&["delete", "lim"]).ok();
    assert!(!dir("memory").exists(), "delete left the cgroup");
    assert!(!dir("pids").exists(), "delete left the cgroup");
    for ctrl in ["memory", "pids", "cpu", "freezer"] {
        let _ = std::fs::remove_dir(dir(ctrl).parent().unwrap());
    }
}

#[test]
fn resources_without_a_delegated_cgroup_are_refused_or_held_by_rlimit() {
    let mut b = Bundle::of(User::NoSub, "resources-nosub", &["sh", "-c", FORK_LOOP]);
    // hutch-nosub has no cgroup subtree: a memory limit cannot be held
    // (there is no supervisor to watch it), nor a CPU weight.
    for (res, field) in [
        (
            json!({"memory": {"limit": 33554432}}),
            "linux.resources.memory.limit",
        ),
        (
            json!({"cpu": {"shares": 512}}),
            "linux.resources.cpu.shares",
        ),
        (
            json!({"cpu": {"quota": 50000}}),
            "linux.resources.cpu.quota",
        ),
    ] {
        b.config["linux"]["resources"] = res;
        let (out, pid) = b.create("refused");
        assert_eq!(out.code, 125, "{field}: {out:#?}");
        assert!(out.stderr.contains(field), "{field}: {out:#?}");
        assert!(pid.is_none());
    }
    // pause needs a freezer: refused by name.
    b.config["linux"]["resources"] = json!({});
    b.config["process"]["args"] = json!(["sh", "-c", "echo up > /out/up; exec sleep 1000"]);
    let up = b.fifo("up");
    let (out, pid) = b.create("nofreeze");
    assert_eq!(out.code, 0, "{out:#?}");
    b.rt(&["start", "nofreeze"]).ok();
    assert_eq!(read_line(&up), "up\n");
    b.rt(&["pause", "nofreeze"])
        .fails_with(125, "has no cgroup with a freezer");
    b.rt(&["delete", "--force", "nofreeze"]).ok();
    wait_gone(pid.unwrap());

    // A pids limit holds through RLIMIT_NPROC: one uid in a user
    // namespace of the container's own.
    b.config["process"]["args"] = json!(["sh", "-c", FORK_LOOP]);
    b.config["linux"]["resources"] = json!({"pids": {"limit": 10}});
    let (out, pid) = b.create("nproc");
    assert_eq!(out.code, 0, "{out:#?}");
    b.rt(&["start", "nproc"]).ok();
    wait_gone(pid.unwrap());
    assert!(!b.stdout_of("nproc").contains("all forked"));
    let n = forked(&b);
    assert!((1..10).contains(&n), "{n} forked");
    b.rt(&["delete", "nproc"]).ok();
}

/// The number the pause test's workload last wrote.
fn counter(b: &Bundle) -> u64 {
    std::fs::read_to_string(b.out.join("n"))
        .unwrap_or_default()
        .trim()
        .parse()
        .unwrap_or(0)
}

#[test]
fn pause_freezes_the_container_and_resume_thaws_it() {
    let script = "echo up > /out/up; i=0; while true; do i=$((i+1)); echo $i > /out/n.tmp; mv /out/n.tmp /out/n; sleep 0.02; done";
    let b = Bundle::new("pause", &["sh", "-c", script]);
    let up = b.fifo("up");
    let (out, pid) = b.create("p1");
    assert_eq!(out.code, 0, "{out:#?}");
    let pid = pid.unwrap();
    b.rt(&["pause", "p1"])
        .fails_with(125, "container p1 is created");
    b.rt(&["start", "p1"]).ok();
    assert_eq!(read_line(&up), "up\n");

    b.rt(&["pause", "p1"]).ok();
    assert_eq!(b.state("p1")["status"], "paused");
    let frozen_at = counter(&b);
    // Nothing to wait on: a frozen container does nothing, so give it
    // time in which it would have counted (every 20ms) and look again.
    std::thread::sleep(Duration::from_millis(400));
    assert_eq!(counter(&b), frozen_at, "the counter advanced while paused");
    b.rt(&["exec", "p1", "true"])
        .fails_with(125, "container p1 is paused");
    b.rt(&["pause", "p1"])
        .fails_with(125, "container p1 is paused");
    // ps still lists it.
    let ps: Vec<i32> = serde_json::from_str(b.rt(&["ps", "--format", "json", "p1"]).ok()).unwrap();
    assert!(ps.contains(&pid), "{ps:?}");

    b.rt(&["resume", "p1"]).ok();
    assert_eq!(b.state("p1")["status"], "running");
    let deadline = std::time::Instant::now() + TIMEOUT;
    while counter(&b) <= frozen_at {
        assert!(
            std::time::Instant::now() < deadline,
            "no count after resume"
        );
        std::thread::sleep(Duration::from_millis(20));
    }

    // A paused container is deleted with --force: killed, thawed, gone.
    b.rt(&["pause", "p1"]).ok();
    b.rt(&["delete", "p1"])
        .fails_with(125, "container p1 is paused");
    b.rt(&["delete", "--force", "p1"]).ok();
    wait_gone(pid);
}

impl Bundle {
    /// `hutch-runtime ARGS...` with `file` open as descriptor 3.
    fn rt_with_fd3(&self, args: &[&str], file: &std::fs::File) -> Out {
        use std::os::fd::AsRawFd;
        use std::os::unix::process::CommandExt;
        let fd = file.as_raw_fd();
        let mut cmd = self.command(args);
        // SAFETY: dup2 and fcntl are async-signal-safe; descriptor 3 is
        // left without close-on-exec, as a caller passing it means it
        // (dup2 onto itself would not clear the flag).
        unsafe {
            cmd.pre_exec(move || {
                let ret = if fd == 3 {
                    libc::fcntl(3, libc::F_SETFD, 0)
                } else {
                    libc::dup2(fd, 3)
                };
                if ret < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        // Files, not pipes: a created container keeps create's stdio.
        let (out, err) = (self.dir.join("fd3.stdout"), self.dir.join("fd3.stderr"));
        let status = cmd
            .stdout(std::fs::File::create(&out).unwrap())
            .stderr(std::fs::File::create(&err).unwrap())
            .status()
            .unwrap();
        Out {
            code: status.code().unwrap_or(-1),
            stdout: std::fs::read_to_string(&out).unwrap(),
            stderr: std::fs::read_to_string(&err).unwrap(),
        }
    }
}

#[test]
fn exec_takes_user_groups_capabilities_and_a_process_file() {
    let mut b = Bundle::new(
        "exec-flags",
        &["sh", "-c", "echo up > /out/up; exec sleep 1000"],
    );
    let caps = json!(["CAP_CHOWN", "CAP_KILL"]);
    b.config["process"]["capabilities"] =
        json!({"bounding": caps, "effective": caps, "permitted": caps});
    let up = b.fifo("up");
    let (out, pid) = b.create("x1");
    assert_eq!(out.code, 0, "{out:#?}");
    b.rt(&["start", "x1"]).ok();
    assert_eq!(read_line(&up), "up\n");

    let ids = "id -u; id -g; id -G; grep CapEff /proc/self/status";
    let out = b.rt(&[
        "exec",
        "--user",
        "1000:1001",
        "--additional-gids",
        "2000",
        "-g",
        "2001",
        "x1",
        "sh",
        "-c",
        ids,
    ]);
    assert_eq!(
        out.ok(),
        "1000\n1001\n1001 2000 2001\nCapEff:\t0000000000000000\n"
    );
    // No capability unless asked, and only those the container has.
    let out = b.rt(&["exec", "x1", "grep", "CapEff", "/proc/self/status"]);
    assert_eq!(out.ok(), "CapEff:\t0000000000000000\n");
    let out = b.rt(&[
        "exec",
        "--cap",
        "CAP_CHOWN",
        "x1",
        "grep",
        "CapEff",
        "/proc/self/status",
    ]);
    assert_eq!(out.ok(), "CapEff:\t0000000000000001\n");
    b.rt(&["exec", "--cap", "CAP_SYS_ADMIN", "x1", "true"])
        .fails_with(125, "CAP_SYS_ADMIN: the container was not given it");
    // Ids outside the container's mappings are refused, not tried.
    b.rt(&["exec", "--user", "70000", "x1", "true"])
        .fails_with(125, "not mapped");
    b.rt(&["exec", "--user", "bob", "x1", "true"])
        .fails_with(125, "expected UID or UID:GID");

    // --process: a process object as config.json has it.
    let process = |caps: Value| {
        let file = b.dir.join("process.json");
        std::fs::write(
            &file,
            json!({
                "user": {"uid": 1000, "gid": 1000, "additionalGids": [3000]},
                "args": ["sh", "-c", "id -u; id -G; pwd; echo $WHO; grep CapEff /proc/self/status"],
                "env": ["PATH=/bin", "WHO=from-file"],
                "cwd": "/tmp",
                "capabilities": caps
            })
            .to_string(),
        )
        .unwrap();
        file
    };
    let file = process(json!({}));
    let out = b.rt(&["exec", "--process", file.to_str().unwrap(), "x1"]);
    assert_eq!(
        out.ok(),
        "1000\n1000 3000\n/tmp\nfrom-file\nCapEff:\t0000000000000000\n"
    );
    let admin = json!(["CAP_SYS_ADMIN"]);
    let file = process(
        json!({"bounding": admin, "permitted": admin, "effective": admin, "ambient": admin}),
    );
    b.rt(&["exec", "--process", file.to_str().unwrap(), "x1"])
        .fails_with(125, "CAP_SYS_ADMIN: the container was not given it");

    b.rt(&["delete", "--force", "x1"]).ok();
    wait_gone(pid.unwrap());
}

#[test]
fn preserve_fds_pass_descriptors_to_create_and_exec() {
    let b = Bundle::new(
        "preserve-fds",
        &[
            "sh",
            "-c",
            "echo created-fd3 >&3; echo up > /out/up; exec sleep 1000",
        ],
    );
    let up = b.fifo("up");
    b.write();
    let log = b.dir.join("fd3.log");
    let file = std::fs::File::create(&log).unwrap();
    let dir = b.dir.to_str().unwrap().to_string();
    let out = b.rt_with_fd3(
        &["create", "--preserve-fds", "1", "--bundle", &dir, "f1"],
        &file,
    );
    assert_eq!(out.code, 0, "{out:#?}");
    b.rt(&["start", "f1"]).ok();
    assert_eq!(read_line(&up), "up\n");
    assert_eq!(std::fs::read_to_string(&log).unwrap(), "created-fd3\n");

    let out = b.rt_with_fd3(
        &[
            "exec",
            "--preserve-fds",
            "1",
            "f1",
            "sh",
            "-c",
            "echo exec-fd3 >&3",
        ],
        &file,
    );
    out.ok();
    assert_eq!(
        std::fs::read_to_string(&log).unwrap(),
        "created-fd3\nexec-fd3\n"
    );
    // Without the flag, descriptor 3 does not reach the process.
    let out = b.rt_with_fd3(&["exec", "f1", "sh", "-c", "echo leaked >&3"], &file);
    assert_ne!(out.code, 0, "{out:#?}");
    assert_eq!(
        std::fs::read_to_string(&log).unwrap(),
        "created-fd3\nexec-fd3\n"
    );
    // A descriptor the caller said it passes and did not is refused.
    b.rt_with_fd3(&["exec", "--preserve-fds", "2", "f1", "true"], &file)
        .fails_with(125, "descriptor 4 is not open");

    b.rt(&["delete", "--force", "f1"]).ok();
}
