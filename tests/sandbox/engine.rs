//! The sandbox engine: namespaces, id maps, rootfs, capabilities, exit codes.

use crate::harness::{hutch, rootfs, scratch, User};

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

fn uid_map(text: &str) -> Vec<Vec<u64>> {
    text.lines()
        .map(|l| l.split_whitespace().map(|n| n.parse().unwrap()).collect())
        .collect()
}

#[test]
fn userns_keep_id_keeps_the_users_own_uid() {
    let uid = User::Sub.uid() as u64;
    let out = hutch(User::Sub)
        .args(["run", "--rm", "--userns=keep-id", "--rootfs"])
        .arg_path(rootfs(User::Sub))
        .args(["sh", "-c", "id -u; id -g; cat /proc/self/uid_map"])
        .run();
    let text = out.ok();
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some(uid.to_string().as_str()), "{text}");
    assert_eq!(
        lines.next(),
        Some(User::Sub.account().gid.to_string().as_str())
    );
    let map = uid_map(&lines.collect::<Vec<_>>().join("\n"));
    // The user's own id maps to itself; the subordinate range fills the rest.
    assert!(map.contains(&vec![uid, uid, 1]), "{map:?}");
    let total: u64 = map.iter().map(|r| r[2]).sum();
    assert_eq!(total, 65537, "{map:?}");
}

#[test]
fn userns_keep_id_without_a_range_maps_only_the_user() {
    let uid = User::NoSub.uid() as u64;
    let out = hutch(User::NoSub)
        .args(["run", "--rm", "--userns=keep-id", "--rootfs"])
        .arg_path(rootfs(User::NoSub))
        .args(["sh", "-c", "id -u; cat /proc/self/uid_map"])
        .run();
    let text = out.ok();
    let (first, rest) = text.split_once('\n').unwrap();
    assert_eq!(first, uid.to_string());
    assert_eq!(uid_map(rest), vec![vec![uid, uid, 1]]);
}

#[test]
fn userns_single_maps_one_uid_even_with_a_range() {
    let out = hutch(User::Sub)
        .args(["run", "--rm", "--userns=single", "--rootfs"])
        .arg_path(rootfs(User::Sub))
        .args(["sh", "-c", "id -u; cat /proc/self/uid_map"])
        .run();
    let text = out.ok();
    let (first, rest) = text.split_once('\n').unwrap();
    assert_eq!(first, "0");
    assert_eq!(uid_map(rest), vec![vec![0, User::Sub.uid() as u64, 1]]);
}

#[test]
fn dash_u_runs_as_that_user() {
    let out = hutch(User::Sub)
        .args(["run", "--rm", "-u", "user", "--rootfs"])
        .arg_path(rootfs(User::Sub))
        .args(["sh", "-c", "id -u; id -g; id -G; echo $HOME"])
        .run();
    assert_eq!(out.ok(), "1000\n1000\n1000 50\n/home/user\n");
}

#[test]
fn a_file_written_to_a_volume_belongs_to_the_invoking_user() {
    use std::os::unix::fs::MetadataExt;
    for user in [User::Sub, User::NoSub] {
        let vol = scratch(user, "volume-owner");
        hutch(user)
            .args([
                "run",
                "--rm",
                "-v",
                &format!("{}:/out", vol.display()),
                "--rootfs",
            ])
            .arg_path(rootfs(user))
            .args(["sh", "-c", "echo hi > /out/file"])
            .run()
            .ok();
        let meta = std::fs::metadata(vol.join("file")).unwrap();
        assert_eq!(meta.uid(), user.uid(), "{user:?}");
        assert_eq!(meta.gid(), user.account().gid, "{user:?}");
    }
}

#[test]
fn only_the_sandboxs_processes_are_visible() {
    let out = hutch(User::Sub)
        .run_rootfs([
            "sh",
            "-c",
            "ls /proc | grep -E '^[0-9]+$' | sort -n | tr '\\n' ' '",
        ])
        .run();
    // pid 1 is hutch's init, then sh and the pipeline's own processes:
    // nothing of the host (whose pids run into the thousands).
    let pids: Vec<u32> = out
        .ok()
        .split_whitespace()
        .map(|p| p.parse().unwrap())
        .collect();
    assert_eq!(pids[0], 1, "{pids:?}");
    assert!(pids.len() <= 8 && pids.iter().all(|&p| p < 20), "{pids:?}");
}

#[test]
fn hostname_is_the_sandboxs_own() {
    let out = hutch(User::Sub).run_rootfs(["hostname"]).run();
    let default = out.ok().trim().to_string();
    assert_eq!(default.len(), 12, "{default}");
    assert!(default.chars().all(|c| c.is_ascii_hexdigit()), "{default}");
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    assert_ne!(default, host.trim());
    let out = hutch(User::Sub)
        .args(["run", "--rm", "-h", "judge-7", "--rootfs"])
        .arg_path(rootfs(User::Sub))
        .args(["sh", "-c", "hostname; echo $HOSTNAME"])
        .run();
    assert_eq!(out.ok(), "judge-7\njudge-7\n");
}

#[test]
fn loopback_is_the_only_interface_and_it_is_up() {
    let dev = hutch(User::Sub).run_rootfs(["cat", "/proc/net/dev"]).run();
    // Two header lines, then one "name: counters" line per interface.
    let names: Vec<&str> = dev
        .ok()
        .lines()
        .skip(2)
        .filter_map(|l| l.split(':').next())
        .map(str::trim)
        .collect();
    assert_eq!(names, vec!["lo"], "{dev:?}");
    let links = hutch(User::Sub).run_rootfs(["ip", "-o", "link"]).run();
    let links = links.ok();
    assert_eq!(links.lines().count(), 1, "{links}");
    assert!(links.contains(": lo: <LOOPBACK,UP,LOWER_UP>"), "{links}");
}

#[test]
fn writes_land_in_the_upper_dir_and_never_in_the_rootfs() {
    let data = scratch(User::Sub, "data-dir");
    let root = rootfs(User::Sub);
    let out = hutch(User::Sub)
        .env("HUTCH_DATA_DIR", &data)
        .args(["run", "--rootfs"])
        .arg_path(root)
        .args([
            "sh",
            "-c",
            "echo changed > /etc/hostname && echo new > /written-inside && rm /bin/ls && cat /etc/hostname",
        ])
        .run();
    assert_eq!(out.ok(), "changed\n");
    // ROOTFS is untouched...
    assert_eq!(
        std::fs::read_to_string(root.join("etc/hostname")).unwrap(),
        "hutch-test\n"
    );
    assert!(!root.join("written-inside").exists());
    assert!(root.join("bin/ls").symlink_metadata().is_ok());
    // ...and without --rm the writes stay in containers/<id>/upper (beside
    // containers/names, the lifecycle's name index).
    let containers: Vec<_> = std::fs::read_dir(data.join("containers"))
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().len() == 64)
        .collect();
    assert_eq!(containers.len(), 1);
    let upper = containers[0].path().join("upper");
    assert_eq!(
        std::fs::read_to_string(upper.join("written-inside")).unwrap(),
        "new\n"
    );
    assert_eq!(
        std::fs::read_to_string(upper.join("etc/hostname")).unwrap(),
        "changed\n"
    );
}

#[test]
fn with_rm_nothing_is_left_in_the_data_dir() {
    let data = scratch(User::Sub, "data-dir-rm");
    hutch(User::Sub)
        .env("HUTCH_DATA_DIR", &data)
        .run_rootfs(["sh", "-c", "echo x > /file"])
        .run()
        .ok();
    // The run was a container while it ran (as in Docker); only the
    // store's empty index is left, and its emptied directory parked for
    // the next container (renaming it frees no disk block).
    let mut left: Vec<_> = walk(&data);
    left.sort();
    assert_eq!(
        left,
        [
            data.join("containers"),
            data.join("containers/.spare0"),
            data.join("containers/names")
        ],
        "{left:?}"
    );
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        out.push(e.path());
        if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
            out.extend(walk(&e.path()));
        }
    }
    out
}

#[test]
fn read_only_root_refuses_writes() {
    let out = hutch(User::Sub)
        .args(["run", "--rm", "--read-only", "--rootfs"])
        .arg_path(rootfs(User::Sub))
        .args([
            "sh",
            "-c",
            "touch /x || echo refused; echo y > /tmp/y || echo refused",
        ])
        .run();
    let text = out.ok();
    assert_eq!(text, "refused\nrefused\n", "{out:?}");
    assert!(out.stderr.contains("Read-only file system"), "{out:?}");
}

/// The filesystem type of the sandbox's `/`, from a mountinfo line.
fn root_fstype(text: &str) -> &str {
    let line = text
        .lines()
        .find(|l| l.split(' ').nth(4) == Some("/"))
        .unwrap_or("");
    line.split(" - ")
        .nth(1)
        .and_then(|t| t.split(' ').next())
        .unwrap_or("")
}

#[test]
fn a_read_only_root_is_a_bind_of_its_layer_unless_a_mount_point_is_missing() {
    // Every mount point is in the image (/proc, /dev, /sys, /etc/hosts,
    // the workdir): the layer itself, bound read-only, with hutch's hosts
    // file over the image's.
    let out = hutch(User::Sub)
        .args(["run", "--rm", "--read-only", "-h", "judge1", "--rootfs"])
        .arg_path(rootfs(User::Sub))
        .args([
            "sh",
            "-c",
            "cat /proc/self/mountinfo; grep -c judge1 /etc/hosts; touch /etc/x || echo refused",
        ])
        .run();
    let text = out.ok();
    let fstype = root_fstype(text);
    assert!(!fstype.is_empty() && fstype != "overlay", "{text}");
    assert!(text.ends_with("1\nrefused\n"), "{out:?}");
    assert!(out.stderr.contains("Read-only file system"), "{out:?}");

    // A tmpfs on a directory the image lacks: its mount point is made in
    // an overlay's upper layer, never in the image.
    let out = hutch(User::Sub)
        .args(["run", "--rm", "--read-only", "--tmpfs", "/no-such-dir", "--rootfs"])
        .arg_path(rootfs(User::Sub))
        .args([
            "sh",
            "-c",
            "cat /proc/self/mountinfo; echo y > /no-such-dir/y && cat /no-such-dir/y; touch /x || echo refused",
        ])
        .run();
    let text = out.ok();
    assert_eq!(root_fstype(text), "overlay", "{text}");
    assert!(text.ends_with("y\nrefused\n"), "{out:?}");
    assert!(!rootfs(User::Sub).join("no-such-dir").exists());
    assert!(!rootfs(User::Sub).join("x").exists());
}

#[test]
fn tmpfs_is_writable_and_its_size_is_enforced() {
    let out = hutch(User::Sub)
        .args([
            "run",
            "--rm",
            "--read-only",
            "--tmpfs",
            "/scratch:size=1m",
            "--rootfs",
        ])
        .arg_path(rootfs(User::Sub))
        .args([
            "sh",
            "-c",
            "echo ok > /scratch/a && cat /scratch/a; \
             dd if=/dev/zero of=/scratch/big bs=1k count=2048 2>/dev/null || echo full; \
             du -k /scratch/big | cut -f1; grep ' /scratch ' /proc/mounts",
        ])
        .run();
    let text = out.ok();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(&lines[..2], ["ok", "full"], "{text}");
    let kib: u64 = lines[2].parse().unwrap();
    assert!(kib <= 1024, "{text}");
    assert!(
        lines[3].contains("tmpfs") && lines[3].contains("size=1024k"),
        "{text}"
    );
}

#[test]
fn a_read_only_volume_refuses_writes() {
    let vol = scratch(User::Sub, "ro-volume");
    std::fs::write(vol.join("kept"), "original").unwrap();
    let out = hutch(User::Sub)
        .args(["run", "--rm", "-v", &format!("{}:/data:ro", vol.display()), "--rootfs"])
        .arg_path(rootfs(User::Sub))
        .args([
            "sh",
            "-c",
            "cat /data/kept; echo; echo x > /data/kept || echo refused; touch /data/new || echo refused",
        ])
        .run();
    assert_eq!(out.ok(), "original\nrefused\nrefused\n");
    assert_eq!(
        std::fs::read_to_string(vol.join("kept")).unwrap(),
        "original"
    );
    assert!(!vol.join("new").exists());
}

#[test]
fn a_setuid_root_binary_gains_nothing() {
    let root = rootfs(User::Sub);
    // Control: the probe does report a setuid gain where the kernel grants
    // one (run by another user on the host, it gets the owner's euid).
    let control = crate::harness::as_user(User::NoSub, root.join("bin/suid-probe"))
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&control.stdout),
        format!("uid={} euid={}\n", User::NoSub.uid(), User::Sub.uid())
    );
    // Inside, the probe is setuid root; run as 1000 it stays 1000.
    let out = hutch(User::Sub)
        .args(["run", "--rm", "-u", "1000", "--rootfs"])
        .arg_path(root)
        .args([
            "sh",
            "-c",
            "stat -c '%u %A' /bin/suid-probe; /bin/suid-probe; /bin/suid-busybox id -u 2>/dev/null; ln -s /bin/suid-busybox /tmp/id && /tmp/id -u",
        ])
        .run();
    let text = out.ok();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "0 -rwsr-xr-x", "{text}");
    assert_eq!(lines[1], "uid=1000 euid=1000", "{text}");
    assert_eq!(lines.last(), Some(&"1000"), "{text}");
}

#[test]
fn devpts_is_the_sandboxs_own() {
    let out = hutch(User::Sub).run_rootfs(["ls", "/dev/pts"]).run();
    // The host's ptys are not there: only this devpts's ptmx.
    assert_eq!(out.ok(), "ptmx\n");
}

#[test]
fn dev_shm_is_sticky_and_noexec_and_masked_directories_are_empty_and_read_only() {
    let out = hutch(User::Sub)
        .run_rootfs([
            "sh",
            "-c",
            "stat -c %a /dev/shm; echo kept > /dev/shm/f && cat /dev/shm/f; \
             cp /bin/busybox /dev/shm/bb && /dev/shm/bb true 2>/dev/null; echo exec=$?; \
             for d in /proc/acpi /sys/firmware; do \
               [ -d $d ] || { echo $d absent; continue; }; \
               echo $d $(ls -A $d | wc -l); touch $d/x 2>/dev/null; echo write=$?; done",
        ])
        .run();
    let text = out.ok();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[..3], ["1777", "kept", "exec=126"], "{text}");
    for dir in ["/proc/acpi", "/sys/firmware"] {
        if std::path::Path::new(dir).is_dir() {
            // Nothing of the host's shows, and nothing can be put there.
            assert!(text.contains(&format!("{dir} 0\nwrite=1\n")), "{text}");
        }
    }
}

#[test]
fn fuse_overlayfs_works_when_asked_for() {
    let root = rootfs(User::Sub);
    let out = hutch(User::Sub)
        .args(["run", "--rm", "--overlay=fuse", "--rootfs"])
        .arg_path(root)
        .args([
            "sh",
            "-c",
            "grep ' / ' /proc/mounts | cut -d' ' -f1,3; echo new > /fuse-written && cat /fuse-written",
        ])
        .run();
    assert_eq!(out.ok(), "fuse-overlayfs fuse.fuse-overlayfs\nnew\n");
    assert!(!root.join("fuse-written").exists());
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

#[test]
fn every_namespace_is_new() {
    let kinds = ["user", "mnt", "pid", "ipc", "uts", "net", "cgroup"];
    let script: String = kinds
        .iter()
        .map(|k| format!("readlink /proc/self/ns/{k}; "))
        .collect();
    let out = hutch(User::Sub).run_rootfs(["sh", "-c", &script]).run();
    let inside: Vec<&str> = out.ok().lines().collect();
    assert_eq!(inside.len(), kinds.len(), "{out:?}");
    for (k, seen) in kinds.iter().zip(inside) {
        let host = std::fs::read_link(format!("/proc/self/ns/{k}")).unwrap();
        assert_ne!(seen, host.to_string_lossy(), "{k} namespace is the host's");
    }
}

#[test]
fn proc_and_sys_are_masked_and_read_only() {
    // Masked files read empty (where this kernel has them at all).
    let masked: Vec<&str> = [
        "/proc/kcore",
        "/proc/keys",
        "/proc/interrupts",
        "/proc/timer_list",
    ]
    .into_iter()
    .filter(|p| std::path::Path::new(p).exists())
    .collect();
    assert!(!masked.is_empty());
    let mut script: String = masked.iter().map(|p| format!("wc -c < {p}; ")).collect();
    script.push_str(
        "echo x > /proc/sys/kernel/hostname || echo proc-sys-ro; \
         touch /sys/kernel/x || echo sysfs-ro; hostname",
    );
    let out = hutch(User::Sub).run_rootfs(["sh", "-c", &script]).run();
    let text = out.ok();
    let lines: Vec<&str> = text.lines().map(str::trim).collect();
    let n = masked.len();
    assert!(lines[..n].iter().all(|l| *l == "0"), "{out:?}");
    // Host /proc/interrupts is never empty: the mask really hid it.
    assert!(!std::fs::read_to_string("/proc/interrupts")
        .unwrap()
        .is_empty());
    assert_eq!(lines[n..n + 2], ["proc-sys-ro", "sysfs-ro"], "{out:?}");
    // The refused write did not rename the sandbox.
    assert_ne!(lines[n + 2], "x");
}
