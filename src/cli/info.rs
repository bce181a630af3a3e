//! `hutch info`: what this host offers and what hutch will use.

use std::path::Path;

use clap::Args;
use serde::Serialize;

use crate::paths;
use crate::sandbox::idmap::{which, HostIds, IdMapping, UsernsMode};
use crate::sandbox::sys;

#[derive(Debug, Args)]
pub struct InfoArgs {
    /// Output format: text or json
    #[arg(long, default_value = "text", value_parser = ["text", "json"])]
    pub format: String,
}

#[derive(Debug, Serialize)]
pub struct Info {
    pub version: &'static str,
    pub kernel: String,
    pub user_namespaces: Probe,
    pub apparmor_restricts_userns: bool,
    pub id_mapping: IdMappingInfo,
    pub overlay: OverlayInfo,
    pub landlock_abi: Option<u32>,
    /// What the default policy enforces with Landlock on this kernel.
    pub landlock_default_policy: String,
    pub seccomp: bool,
    pub cgroup: CgroupInfo,
    /// limit -> the mechanism that would enforce it for this user.
    pub limits: std::collections::BTreeMap<String, String>,
    pub network_helpers: NetInfo,
    pub data_dir: Option<String>,
    pub runtime_dir: Option<String>,
}

/// The result of trying something for real.
#[derive(Debug, Serialize)]
pub struct Probe {
    pub ok: bool,
    pub error: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct IdMappingInfo {
    pub host: HostIds,
    /// What `--userns=auto` maps on this host.
    pub auto: IdMapping,
    pub note: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct OverlayInfo {
    pub kernel_in_userns: Probe,
    pub fuse_overlayfs: Option<String>,
    pub dev_fuse_accessible: bool,
    /// What `--overlay=auto` will use.
    pub will_use: Option<&'static str>,
}

#[derive(Debug, Serialize)]
pub struct CgroupInfo {
    pub version: &'static str,
    pub own_cgroup: Option<String>,
    pub writable_delegated_subtree: bool,
}

#[derive(Debug, Serialize)]
pub struct NetInfo {
    pub slirp4netns: Option<String>,
    pub pasta: Option<String>,
}

pub fn info(args: InfoArgs) -> anyhow::Result<i32> {
    let info = gather();
    if args.format == "json" {
        println!("{}", serde_json::to_string_pretty(&info)?);
    } else {
        print_text(&info);
    }
    Ok(0)
}

pub fn gather() -> Info {
    // SAFETY: getuid cannot fail.
    let uid = unsafe { libc::getuid() };
    let host = HostIds::probe(uid);
    let auto = IdMapping::resolve(UsernsMode::Auto);
    let note = (!auto.use_helpers).then(|| {
        "one uid only: files an image chowns to other users appear owned by root, and switching to another user fails (hint: add a range to /etc/subuid and /etc/subgid and install uidmap)".to_string()
    });
    let userns = probe_in_child(|| unshare(libc::CLONE_NEWUSER).map_err(|e| e.to_string()));
    let kernel_overlay = probe_in_child(kernel_overlay_probe);
    let fuse = which("fuse-overlayfs");
    let dev_fuse = access_rw(Path::new("/dev/fuse"));
    let will_use = if kernel_overlay.ok {
        Some("kernel")
    } else if fuse.is_some() && dev_fuse {
        Some("fuse-overlayfs")
    } else {
        None
    };
    Info {
        version: env!("CARGO_PKG_VERSION"),
        kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .map(|s| s.trim().to_string())
            .unwrap_or_default(),
        user_namespaces: userns,
        apparmor_restricts_userns: std::fs::read_to_string(
            "/proc/sys/kernel/apparmor_restrict_unprivileged_userns",
        )
        .map(|s| s.trim() == "1")
        .unwrap_or(false),
        id_mapping: IdMappingInfo { host, auto, note },
        overlay: OverlayInfo {
            kernel_in_userns: kernel_overlay,
            fuse_overlayfs: fuse,
            dev_fuse_accessible: dev_fuse,
            will_use,
        },
        landlock_abi: landlock_abi(),
        landlock_default_policy: crate::policy::default_landlock_summary(),
        // SAFETY: PR_GET_SECCOMP takes no pointers.
        seccomp: unsafe { libc::prctl(libc::PR_GET_SECCOMP, 0, 0, 0, 0) } >= 0,
        cgroup: cgroup_info(),
        limits: crate::sandbox::limits::mechanisms(),
        network_helpers: NetInfo {
            slirp4netns: which("slirp4netns"),
            pasta: which("pasta"),
        },
        data_dir: paths::data_dir().ok().map(|p| p.display().to_string()),
        runtime_dir: paths::runtime_dir().ok().map(|p| p.display().to_string()),
    }
}

fn print_text(i: &Info) {
    let yes = |b: bool| if b { "yes" } else { "no" };
    let probe = |p: &Probe| match &p.error {
        None => "yes".to_string(),
        Some(e) => format!("no ({e})"),
    };
    let opt = |o: &Option<String>| o.clone().unwrap_or_else(|| "not found".into());
    println!("hutch {}", i.version);
    println!("kernel:                  {}", i.kernel);
    println!("user namespaces:         {}", probe(&i.user_namespaces));
    println!(
        "  AppArmor restricts:    {}",
        yes(i.apparmor_restricts_userns)
    );
    let h = &i.id_mapping.host;
    let range = |r: &Option<crate::sandbox::idmap::SubRange>| {
        r.map(|r| r.to_string()).unwrap_or_else(|| "none".into())
    };
    println!("subuid range:            {}", range(&h.subuid));
    println!("subgid range:            {}", range(&h.subgid));
    println!(
        "newuidmap / newgidmap:   {} / {}",
        opt(&h.newuidmap),
        opt(&h.newgidmap)
    );
    let ids: u64 = i
        .id_mapping
        .auto
        .uid_map
        .iter()
        .map(|r| r.count as u64)
        .sum();
    println!(
        "--userns=auto maps:      {ids} uid(s){}",
        if i.id_mapping.auto.use_helpers {
            " through newuidmap"
        } else {
            ""
        }
    );
    if let Some(n) = &i.id_mapping.note {
        println!("  note:                  {n}");
    }
    println!(
        "overlay in user ns:      {}",
        probe(&i.overlay.kernel_in_userns)
    );
    println!(
        "fuse-overlayfs:          {}",
        opt(&i.overlay.fuse_overlayfs)
    );
    println!(
        "/dev/fuse accessible:    {}",
        yes(i.overlay.dev_fuse_accessible)
    );
    println!(
        "overlay will use:        {}",
        i.overlay
            .will_use
            .unwrap_or("nothing: --rootfs and images cannot run (hint: install fuse-overlayfs)")
    );
    println!(
        "landlock ABI:            {}",
        i.landlock_abi
            .map(|v| v.to_string())
            .unwrap_or_else(|| "not available".into())
    );
    println!("  default policy:        {}", i.landlock_default_policy);
    println!("seccomp:                 {}", yes(i.seccomp));
    println!("cgroup:                  {}", i.cgroup.version);
    println!("  own cgroup:            {}", opt(&i.cgroup.own_cgroup));
    println!(
        "  writable delegation:   {}",
        yes(i.cgroup.writable_delegated_subtree)
    );
    println!("limits enforced by:");
    for (limit, by) in &i.limits {
        println!("  {:<22} {by}", format!("{limit}:"));
    }
    println!(
        "slirp4netns:             {}",
        opt(&i.network_helpers.slirp4netns)
    );
    println!("pasta:                   {}", opt(&i.network_helpers.pasta));
    println!("data dir:                {}", opt(&i.data_dir));
    println!("runtime dir:             {}", opt(&i.runtime_dir));
}

/// The Landlock ABI version the kernel offers, if any.
pub fn landlock_abi() -> Option<u32> {
    const LANDLOCK_CREATE_RULESET_VERSION: libc::c_uint = 1;
    // SAFETY: with a NULL attr and size 0, this only asks for the version.
    let v = unsafe {
        libc::syscall(
            libc::SYS_landlock_create_ruleset,
            std::ptr::null::<libc::c_void>(),
            0usize,
            LANDLOCK_CREATE_RULESET_VERSION,
        )
    };
    (v > 0).then_some(v as u32)
}

fn access_rw(p: &Path) -> bool {
    sys::cstr(p)
        // SAFETY: a valid C string.
        .map(|c| unsafe { libc::access(c.as_ptr(), libc::R_OK | libc::W_OK) } == 0)
        .unwrap_or(false)
}

fn unshare(flags: libc::c_int) -> std::io::Result<()> {
    // SAFETY: unshare takes only flags.
    sys::check(unsafe { libc::unshare(flags) } as libc::c_long).map(drop)
}

/// Run `f` in a forked child (probes change namespaces) and report how it went.
fn probe_in_child(f: fn() -> Result<(), String>) -> Probe {
    let Ok((r, w)) = sys::pipe() else {
        return Probe {
            ok: false,
            error: Some("cannot create a pipe".into()),
        };
    };
    use std::os::fd::AsRawFd;
    // SAFETY: hutch info is single-threaded; the child only runs `f`,
    // writes to the pipe and exits.
    let pid = unsafe { libc::fork() };
    if pid == 0 {
        let msg = match f() {
            Ok(()) => String::new(),
            Err(e) => e,
        };
        let _ = sys::write_all(w.as_raw_fd(), msg.as_bytes());
        // SAFETY: leave without running the parent's exit handlers.
        unsafe { libc::_exit(0) };
    }
    drop(w);
    let out = sys::read_to_end(r.as_raw_fd(), 4096).unwrap_or_default();
    let mut status = 0;
    // SAFETY: reaping our own child.
    unsafe { libc::waitpid(pid, &mut status, 0) };
    let msg = String::from_utf8_lossy(&out).into_owned();
    Probe {
        ok: pid > 0 && msg.is_empty(),
        error: (pid <= 0 || !msg.is_empty()).then(|| {
            if msg.is_empty() {
                "fork failed".into()
            } else {
                msg
            }
        }),
    }
}

fn kernel_overlay_probe() -> Result<(), String> {
    // SAFETY: getuid/getgid cannot fail.
    let (uid, gid) = unsafe { (libc::getuid(), libc::getgid()) };
    // Before unshare: inside, we are uid 0 and would look for root's dir.
    let scratch = paths::scratch_dir().map_err(|e| e.to_string())?;
    unshare(libc::CLONE_NEWUSER | libc::CLONE_NEWNS).map_err(|e| format!("unshare: {e}"))?;
    std::fs::write("/proc/self/setgroups", "deny").map_err(|e| format!("setgroups: {e}"))?;
    std::fs::write("/proc/self/uid_map", format!("0 {uid} 1"))
        .map_err(|e| format!("uid_map: {e}"))?;
    std::fs::write("/proc/self/gid_map", format!("0 {gid} 1"))
        .map_err(|e| format!("gid_map: {e}"))?;
    sys::mount(
        None,
        Path::new("/"),
        None,
        libc::MS_REC | libc::MS_PRIVATE,
        None,
    )
    .map_err(|e| format!("private /: {e}"))?;
    sys::mount(Some("tmpfs"), &scratch, Some("tmpfs"), 0, None)
        .map_err(|e| format!("tmpfs: {e}"))?;
    for d in ["l", "u", "w", "m"] {
        std::fs::create_dir(scratch.join(d)).map_err(|e| e.to_string())?;
    }
    let s = scratch.display();
    sys::mount(
        Some("overlay"),
        &scratch.join("m"),
        Some("overlay"),
        0,
        Some(&format!(
            "lowerdir={s}/l,upperdir={s}/u,workdir={s}/w,userxattr"
        )),
    )
    .map_err(|e| e.to_string())
}

fn cgroup_info() -> CgroupInfo {
    let is_v2 = std::fs::metadata("/sys/fs/cgroup/cgroup.controllers").is_ok();
    let hybrid = Path::new("/sys/fs/cgroup/unified").is_dir();
    let version = if is_v2 {
        "v2"
    } else if hybrid {
        "v1 (hybrid)"
    } else {
        "v1"
    };
    let own = std::fs::read_to_string("/proc/self/cgroup")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("0::").map(str::to_string))
        });
    let writable = match (&own, is_v2) {
        (Some(path), true) => access_rw(
            &Path::new("/sys/fs/cgroup")
                .join(path.trim_start_matches('/'))
                .join("cgroup.procs"),
        ),
        _ => false,
    };
    CgroupInfo {
        version,
        own_cgroup: own,
        // A v1 subtree chowned to the user counts as much as a v2 one.
        writable_delegated_subtree: writable
            || crate::sandbox::cgroup::Delegation::find().is_some(),
    }
}
