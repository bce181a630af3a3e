//! User and group id mappings for the sandbox's user namespace.
//!
//! `auto` maps the invoking user to root and the user's subordinate range
//! (from /etc/subuid and /etc/subgid, installed through the setuid helpers
//! newuidmap and newgidmap) to uids 1..N. Without a range or the helpers, one
//! uid is all an unprivileged process may map, so images that chown files to
//! other users lose that ownership (`hutch info` says so).

use std::fmt;
use std::path::Path;
use std::process::Command;

use serde::{Deserialize, Serialize};

#[derive(Debug, thiserror::Error)]
pub enum IdmapError {
    #[error("unknown --userns mode {0:?} (hint: use auto, keep-id or single)")]
    UnknownMode(String),
    #[error("cannot write {file} for sandbox process {pid}: {source}")]
    Write {
        file: &'static str,
        pid: i32,
        source: std::io::Error,
    },
    #[error(
        "cannot run {helper}: {source} (hint: install the uidmap package, or use --userns=single)"
    )]
    HelperMissing {
        helper: &'static str,
        source: std::io::Error,
    },
    #[error("{helper} {args} failed: {stderr} (hint: check /etc/subuid and /etc/subgid, or use --userns=single)")]
    HelperFailed {
        helper: &'static str,
        args: String,
        stderr: String,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum UsernsMode {
    Auto,
    KeepId,
    Single,
}

impl std::str::FromStr for UsernsMode {
    type Err = IdmapError;
    fn from_str(s: &str) -> Result<Self, IdmapError> {
        match s {
            "auto" | "" => Ok(UsernsMode::Auto),
            "keep-id" => Ok(UsernsMode::KeepId),
            "single" => Ok(UsernsMode::Single),
            other => Err(IdmapError::UnknownMode(other.to_string())),
        }
    }
}

/// One line of a uid_map: `count` ids from `inside` map to `outside`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdRange {
    pub inside: u32,
    pub outside: u32,
    pub count: u32,
}

/// A subordinate id range from /etc/subuid or /etc/subgid.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct SubRange {
    pub start: u32,
    pub count: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdMapping {
    pub uid_map: Vec<IdRange>,
    pub gid_map: Vec<IdRange>,
    /// Install the maps with newuidmap/newgidmap (needed for more than one id).
    pub use_helpers: bool,
    /// The uid and gid the workload runs as when `-u` is not given.
    pub default_uid: u32,
    pub default_gid: u32,
}

impl IdMapping {
    /// Choose the mapping for `mode` on this host, for the invoking user.
    pub fn resolve(mode: UsernsMode) -> IdMapping {
        // SAFETY: getuid/getgid cannot fail and touch no memory.
        let (uid, gid) = unsafe { (libc::getuid(), libc::getgid()) };
        // `single` needs nothing from the host: skip reading /etc/subuid,
        // /etc/subgid, /etc/passwd and searching PATH for the helpers.
        let subs = match mode {
            UsernsMode::Single => None,
            _ => HostIds::probe(uid).usable(),
        };
        let single = |inside_uid: u32, inside_gid: u32| IdMapping {
            uid_map: vec![IdRange {
                inside: inside_uid,
                outside: uid,
                count: 1,
            }],
            gid_map: vec![IdRange {
                inside: inside_gid,
                outside: gid,
                count: 1,
            }],
            use_helpers: false,
            default_uid: inside_uid,
            default_gid: inside_gid,
        };
        match (mode, subs) {
            (UsernsMode::Single, _) | (UsernsMode::Auto, None) => single(0, 0),
            (UsernsMode::KeepId, None) => single(uid, gid),
            (UsernsMode::Auto, Some((su, sg))) => IdMapping {
                uid_map: vec![
                    IdRange {
                        inside: 0,
                        outside: uid,
                        count: 1,
                    },
                    IdRange {
                        inside: 1,
                        outside: su.start,
                        count: su.count,
                    },
                ],
                gid_map: vec![
                    IdRange {
                        inside: 0,
                        outside: gid,
                        count: 1,
                    },
                    IdRange {
                        inside: 1,
                        outside: sg.start,
                        count: sg.count,
                    },
                ],
                use_helpers: true,
                default_uid: 0,
                default_gid: 0,
            },
            (UsernsMode::KeepId, Some((su, sg))) => IdMapping {
                uid_map: keep_id_map(uid, su),
                gid_map: keep_id_map(gid, sg),
                use_helpers: true,
                default_uid: uid,
                default_gid: gid,
            },
        }
    }

    pub fn maps_uid(&self, uid: u32) -> bool {
        covers(&self.uid_map, uid)
    }

    pub fn maps_gid(&self, gid: u32) -> bool {
        covers(&self.gid_map, gid)
    }

    /// Install the maps for the process `pid`, which waits in its new user
    /// namespace until this returns.
    pub fn apply(&self, pid: i32) -> Result<(), IdmapError> {
        self.start(pid)?.finish()
    }

    /// Begin installing the maps for `pid`: written at once without the
    /// helpers; with them, both setuid helpers are started (each costs an
    /// exec, and they are on every sandbox's start-up path) and the caller
    /// may do other work before [`PendingMaps::finish`] waits for them.
    pub fn start(&self, pid: i32) -> Result<PendingMaps, IdmapError> {
        if self.use_helpers {
            let uid = Helper::spawn("newuidmap", pid, &self.uid_map)?;
            let gid = Helper::spawn("newgidmap", pid, &self.gid_map);
            return Ok(PendingMaps(Some((uid, gid))));
        }
        // Without the helpers an unprivileged process may map only itself,
        // and only after giving up setgroups(2) for good.
        write_proc(pid, "setgroups", "deny")?;
        write_proc(pid, "uid_map", &format_map(&self.uid_map))?;
        write_proc(pid, "gid_map", &format_map(&self.gid_map))?;
        Ok(PendingMaps(None))
    }
}

/// Maps being installed by the helpers (or already written: `None`).
#[must_use = "the maps are only in place once finish() returns Ok"]
pub struct PendingMaps(Option<(Helper, Result<Helper, IdmapError>)>);

impl PendingMaps {
    /// Wait for the helpers; Ok once both maps are written.
    pub fn finish(self) -> Result<(), IdmapError> {
        let Some((uid, gid)) = self.0 else {
            return Ok(());
        };
        let uid = uid.finish();
        gid?.finish()?;
        uid
    }
}

/// keep-id: the user's own id maps to itself, the subordinate range fills
/// every other id from 0 upwards.
fn keep_id_map(own: u32, sub: SubRange) -> Vec<IdRange> {
    let below = sub.count.min(own);
    let mut map = Vec::new();
    if below > 0 {
        map.push(IdRange {
            inside: 0,
            outside: sub.start,
            count: below,
        });
    }
    map.push(IdRange {
        inside: own,
        outside: own,
        count: 1,
    });
    if sub.count > below {
        map.push(IdRange {
            inside: own + 1,
            outside: sub.start + below,
            count: sub.count - below,
        });
    }
    map
}

fn covers(map: &[IdRange], id: u32) -> bool {
    map.iter()
        .any(|r| id >= r.inside && (id - r.inside) < r.count)
}

fn format_map(map: &[IdRange]) -> String {
    map.iter()
        .map(|r| format!("{} {} {}\n", r.inside, r.outside, r.count))
        .collect()
}

fn write_proc(pid: i32, file: &'static str, content: &str) -> Result<(), IdmapError> {
    std::fs::write(format!("/proc/{pid}/{file}"), content).map_err(|source| IdmapError::Write {
        file,
        pid,
        source,
    })
}

/// A running newuidmap or newgidmap.
struct Helper {
    name: &'static str,
    args: Vec<String>,
    child: std::process::Child,
}

impl Helper {
    fn spawn(name: &'static str, pid: i32, map: &[IdRange]) -> Result<Helper, IdmapError> {
        let mut args = vec![pid.to_string()];
        for r in map {
            args.extend([
                r.inside.to_string(),
                r.outside.to_string(),
                r.count.to_string(),
            ]);
        }
        let child = Command::new(name)
            .args(&args)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .map_err(|source| IdmapError::HelperMissing {
                helper: name,
                source,
            })?;
        Ok(Helper { name, args, child })
    }

    fn finish(self) -> Result<(), IdmapError> {
        let out = self
            .child
            .wait_with_output()
            .map_err(|source| IdmapError::HelperMissing {
                helper: self.name,
                source,
            })?;
        if !out.status.success() {
            return Err(IdmapError::HelperFailed {
                helper: self.name,
                args: self.args.join(" "),
                stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
            });
        }
        Ok(())
    }
}

/// What the host offers the invoking user for id mapping.
#[derive(Debug, Clone, Serialize)]
pub struct HostIds {
    pub uid: u32,
    pub subuid: Option<SubRange>,
    pub subgid: Option<SubRange>,
    pub newuidmap: Option<String>,
    pub newgidmap: Option<String>,
}

impl HostIds {
    pub fn probe(uid: u32) -> HostIds {
        let name = user_name(uid);
        HostIds {
            uid,
            subuid: sub_range(Path::new("/etc/subuid"), uid, name.as_deref()),
            subgid: sub_range(Path::new("/etc/subgid"), uid, name.as_deref()),
            newuidmap: which("newuidmap"),
            newgidmap: which("newgidmap"),
        }
    }

    /// Both ranges and both helpers, or nothing.
    pub fn usable(&self) -> Option<(SubRange, SubRange)> {
        match (self.subuid, self.subgid, &self.newuidmap, &self.newgidmap) {
            (Some(u), Some(g), Some(_), Some(_)) => Some((u, g)),
            _ => None,
        }
    }
}

impl fmt::Display for SubRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}-{} ({} ids)",
            self.start,
            self.start as u64 + self.count as u64 - 1,
            self.count
        )
    }
}

/// The first range in a subuid-format file for this user (by name or uid).
pub fn sub_range(file: &Path, uid: u32, name: Option<&str>) -> Option<SubRange> {
    let text = std::fs::read_to_string(file).ok()?;
    parse_sub_ranges(&text, uid, name)
}

pub fn parse_sub_ranges(text: &str, uid: u32, name: Option<&str>) -> Option<SubRange> {
    let uid_s = uid.to_string();
    text.lines().find_map(|line| {
        let mut it = line.trim().split(':');
        let who = it.next()?;
        let start = it.next()?.parse().ok()?;
        let count: u32 = it.next()?.parse().ok()?;
        let ours = who == uid_s || Some(who) == name;
        (ours && count > 0).then_some(SubRange { start, count })
    })
}

fn user_name(uid: u32) -> Option<String> {
    let text = std::fs::read_to_string("/etc/passwd").ok()?;
    text.lines().find_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        (f.len() > 2 && f[2].parse() == Ok(uid)).then(|| f[0].to_string())
    })
}

/// Find an executable on the host's PATH.
pub fn which(name: &str) -> Option<String> {
    let path = std::env::var("PATH").unwrap_or_else(|_| "/usr/bin:/bin".into());
    path.split(':').find_map(|dir| {
        let p = Path::new(dir).join(name);
        p.is_file().then(|| p.to_string_lossy().into_owned())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subuid_by_name_or_uid() {
        let text = "alice:100000:65536\n1001:200000:1000\nbad line\n";
        assert_eq!(
            parse_sub_ranges(text, 1000, Some("alice")),
            Some(SubRange {
                start: 100000,
                count: 65536
            })
        );
        assert_eq!(
            parse_sub_ranges(text, 1001, Some("bob")),
            Some(SubRange {
                start: 200000,
                count: 1000
            })
        );
        assert_eq!(parse_sub_ranges(text, 1002, Some("carol")), None);
    }

    #[test]
    fn keep_id_covers_everything_once() {
        let m = keep_id_map(
            1000,
            SubRange {
                start: 100000,
                count: 65536,
            },
        );
        assert_eq!(
            m[0],
            IdRange {
                inside: 0,
                outside: 100000,
                count: 1000
            }
        );
        assert_eq!(
            m[1],
            IdRange {
                inside: 1000,
                outside: 1000,
                count: 1
            }
        );
        assert_eq!(
            m[2],
            IdRange {
                inside: 1001,
                outside: 101000,
                count: 64536
            }
        );
        assert!(covers(&m, 0) && covers(&m, 1000) && covers(&m, 65536) && !covers(&m, 65537));
    }

    #[test]
    fn unknown_mode_is_named() {
        let e = "private".parse::<UsernsMode>().unwrap_err();
        assert!(e.to_string().contains("\"private\""));
    }
}
