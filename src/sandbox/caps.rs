//! Dropping every capability from every set.
//!
//! The workload runs as root of its own user namespace, which holds a full
//! set of capabilities over the sandbox's namespaces. All of them go: the
//! bounding set (so no exec can regain one), the ambient set, and the
//! effective, permitted and inheritable sets, unless the Spec keeps some
//! (`Advanced::capabilities`, from an OCI config's `process.capabilities`):
//! those stay in every set, ambient too, and nothing else does.

use std::io;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use super::sys;

/// Capability names without `CAP_`, by number.
pub const NAMES: &[&str] = &[
    "CHOWN",
    "DAC_OVERRIDE",
    "DAC_READ_SEARCH",
    "FOWNER",
    "FSETID",
    "KILL",
    "SETGID",
    "SETUID",
    "SETPCAP",
    "LINUX_IMMUTABLE",
    "NET_BIND_SERVICE",
    "NET_BROADCAST",
    "NET_ADMIN",
    "NET_RAW",
    "IPC_LOCK",
    "IPC_OWNER",
    "SYS_MODULE",
    "SYS_RAWIO",
    "SYS_CHROOT",
    "SYS_PTRACE",
    "SYS_PACCT",
    "SYS_ADMIN",
    "SYS_BOOT",
    "SYS_NICE",
    "SYS_RESOURCE",
    "SYS_TIME",
    "SYS_TTY_CONFIG",
    "MKNOD",
    "LEASE",
    "AUDIT_WRITE",
    "AUDIT_CONTROL",
    "SETFCAP",
    "MAC_OVERRIDE",
    "MAC_ADMIN",
    "SYSLOG",
    "WAKE_ALARM",
    "BLOCK_SUSPEND",
    "AUDIT_READ",
    "PERFMON",
    "BPF",
    "CHECKPOINT_RESTORE",
];

const LINUX_CAPABILITY_VERSION_3: u32 = 0x2008_0522;

#[repr(C)]
struct CapHeader {
    version: u32,
    pid: i32,
}

#[repr(C)]
#[derive(Clone, Copy, Default)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

/// The highest capability number this kernel knows, read once per process
/// tree (init reads it; the workload, started sharing init's memory,
/// finds it read).
pub fn last_cap() -> u32 {
    static LAST: AtomicU32 = AtomicU32::new(u32::MAX);
    let known = LAST.load(Ordering::Relaxed);
    if known != u32::MAX {
        return known;
    }
    let last = crate::procfs::read_small(std::path::Path::new("/proc/sys/kernel/cap_last_cap"))
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(40);
    LAST.store(last, Ordering::Relaxed);
    last
}

/// Empty the bounding set. Needs CAP_SETPCAP, so it runs before setuid.
pub fn drop_bounding(last: u32) -> io::Result<()> {
    drop_bounding_except(last, &[])
}

/// What this process's bounding set holds at most, as a bit mask of
/// capability numbers, once [`drop_bounding_except`] has emptied it
/// (`u64::MAX`: not known). Shared with the workload, which init starts
/// as a `CLONE_VM` child: it inherits the emptied set and need not read
/// every capability of it again.
static BOUNDED_TO: AtomicU64 = AtomicU64::new(u64::MAX);

/// Empty the bounding set but for `keep`.
pub fn drop_bounding_except(last: u32, keep: &[u32]) -> io::Result<()> {
    let wanted = keep
        .iter()
        .try_fold(0u64, |m, &c| (c < 64).then(|| m | 1 << c))
        .filter(|_| last < 64);
    let held = BOUNDED_TO.load(Ordering::Relaxed);
    if wanted.is_some_and(|w| held != u64::MAX && held & !w == 0) {
        return Ok(());
    }
    for cap in (0..=last).filter(|c| !keep.contains(c)) {
        // Each drop makes the process new credentials (and the old ones
        // wait for an RCU grace period to be freed); a read makes none.
        // SAFETY: prctl with integer arguments only.
        if unsafe { libc::prctl(libc::PR_CAPBSET_READ, cap as libc::c_ulong, 0, 0, 0) } == 0 {
            continue;
        }
        match sys::prctl(libc::PR_CAPBSET_DROP, cap as libc::c_ulong) {
            Ok(()) => {}
            // A capability the running kernel does not know is not there to drop.
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {}
            Err(e) => return Err(e),
        }
    }
    if let Some(w) = wanted {
        // `held` is all ones when not known yet: `w` alone then.
        BOUNDED_TO.store(w & held, Ordering::Relaxed);
    }
    Ok(())
}

/// Empty the ambient, effective, permitted and inheritable sets.
pub fn clear_all() -> io::Result<()> {
    set_only(&[])
}

/// Make `keep` the effective, permitted, inheritable and ambient sets (so
/// they survive exec even for a non-root uid); every other capability goes.
pub fn set_only(keep: &[u32]) -> io::Result<()> {
    sys::prctl(
        libc::PR_CAP_AMBIENT,
        libc::PR_CAP_AMBIENT_CLEAR_ALL as libc::c_ulong,
    )?;
    let mut header = CapHeader {
        version: LINUX_CAPABILITY_VERSION_3,
        pid: 0,
    };
    let mut data = [CapData::default(); 2];
    for &cap in keep.iter().filter(|&&c| c < 64) {
        let word = &mut data[(cap / 32) as usize];
        let bit = 1u32 << (cap % 32);
        word.effective |= bit;
        word.permitted |= bit;
        word.inheritable |= bit;
    }
    // SAFETY: header and data are laid out as the kernel's v3 capability
    // structs (one header, two data words) and live for the whole call.
    sys::check(unsafe { libc::syscall(libc::SYS_capset, &mut header, data.as_ptr()) })?;
    for &cap in keep {
        // SAFETY: prctl with integer arguments only.
        let ret = unsafe {
            libc::prctl(
                libc::PR_CAP_AMBIENT,
                libc::PR_CAP_AMBIENT_RAISE as libc::c_ulong,
                cap as libc::c_ulong,
                0 as libc::c_ulong,
                0 as libc::c_ulong,
            )
        };
        sys::check(ret as libc::c_long)?;
    }
    Ok(())
}
