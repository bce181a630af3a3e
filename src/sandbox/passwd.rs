//! Resolving `-u name|uid[:group|gid]` against the sandbox's own
//! /etc/passwd and /etc/group, read from the root's layers (topmost first)
//! with every path confined to its layer.

use std::io::Read;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use super::spec::User;
use super::sys;

/// /etc/passwd or /etc/group larger than this is not a real one.
const MAX_DB_SIZE: u64 = 4 << 20;

#[derive(Debug, thiserror::Error)]
pub enum UserError {
    #[error("unable to find user {0}: no matching entries in passwd file")]
    NoUser(String),
    #[error("unable to find group {0}: no matching entries in group file")]
    NoGroup(String),
    #[error("invalid user spec {0:?} (hint: use NAME, UID, NAME:GROUP or UID:GID)")]
    Invalid(String),
}

/// The resolved user, with the home directory for `HOME`.
#[derive(Debug, Clone)]
pub struct ResolvedUser {
    pub user: User,
    pub home: String,
}

/// Reads files from the root's layers as the overlay will show them.
pub struct RootFiles {
    layers: Vec<PathBuf>,
}

impl RootFiles {
    pub fn new(layers: Vec<PathBuf>) -> RootFiles {
        RootFiles { layers }
    }

    /// The content of `path` in the topmost layer that has it.
    pub fn read(&self, path: &Path) -> Option<String> {
        self.layers.iter().find_map(|layer| {
            let dir = std::fs::File::open(layer).ok()?;
            let fd: OwnedFd = sys::open_in_root(dir.as_raw_fd(), path, libc::O_RDONLY).ok()?;
            let mut f = std::fs::File::from(fd);
            // Room for an image's usual passwd or group file at once.
            let mut s = String::with_capacity(4096);
            f.by_ref().take(MAX_DB_SIZE).read_to_string(&mut s).ok()?;
            Some(s)
        })
    }
}

fn entries(db: &str) -> impl Iterator<Item = Vec<&str>> {
    db.lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| l.split(':').collect::<Vec<_>>())
        .filter(|f| f.len() >= 4)
}

/// Resolve `spec` (empty means the default user) for a sandbox.
pub fn resolve(
    spec: &str,
    files: &RootFiles,
    default_uid: u32,
    default_gid: u32,
) -> Result<ResolvedUser, UserError> {
    let passwd = files.read(Path::new("/etc/passwd")).unwrap_or_default();
    let group = files.read(Path::new("/etc/group")).unwrap_or_default();
    let (user_part, group_part) = match spec.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (spec, None),
    };
    if spec.is_empty() {
        let home = entries(&passwd)
            .find(|f| f[2].parse() == Ok(default_uid))
            .map(|f| f.get(5).unwrap_or(&"/").to_string())
            .unwrap_or_else(|| {
                if default_uid == 0 {
                    "/root".into()
                } else {
                    "/".into()
                }
            });
        return Ok(ResolvedUser {
            user: User {
                uid: default_uid,
                gid: default_gid,
                additional_gids: vec![],
            },
            home,
        });
    }
    if user_part.is_empty() || group_part == Some("") {
        return Err(UserError::Invalid(spec.to_string()));
    }
    let entry = entries(&passwd).find(|f| f[0] == user_part || f[2] == user_part);
    let (name, uid, mut gid, home) = match (entry, user_part.parse::<u32>()) {
        (Some(f), _) => (
            Some(f[0].to_string()),
            f[2].parse()
                .map_err(|_| UserError::Invalid(spec.to_string()))?,
            f[3].parse().unwrap_or(0),
            f.get(5).unwrap_or(&"/").to_string(),
        ),
        (None, Ok(uid)) => (None, uid, 0, "/".to_string()),
        (None, Err(_)) => return Err(UserError::NoUser(user_part.to_string())),
    };
    if let Some(g) = group_part {
        gid = match entries(&group).find(|f| f[0] == g || f[2] == g) {
            Some(f) => f[2]
                .parse()
                .map_err(|_| UserError::Invalid(spec.to_string()))?,
            None => g.parse().map_err(|_| UserError::NoGroup(g.to_string()))?,
        };
    }
    let additional_gids = match &name {
        Some(n) => entries(&group)
            .filter(|f| f[3].split(',').any(|m| m == n))
            .filter_map(|f| f[2].parse().ok())
            .filter(|g| *g != gid)
            .collect(),
        None => vec![],
    };
    Ok(ResolvedUser {
        user: User {
            uid,
            gid,
            additional_gids,
        },
        home,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn root_with(passwd: &str, group: &str) -> (tempdir::Dir, RootFiles) {
        let d = tempdir::Dir::new();
        std::fs::create_dir_all(d.0.join("etc")).unwrap();
        std::fs::write(d.0.join("etc/passwd"), passwd).unwrap();
        std::fs::write(d.0.join("etc/group"), group).unwrap();
        let files = RootFiles::new(vec![d.0.clone()]);
        (d, files)
    }

    mod tempdir {
        pub struct Dir(pub std::path::PathBuf);
        impl Dir {
            pub fn new() -> Dir {
                let p = std::env::temp_dir().join(format!(
                    "hutch-passwd-test-{}-{:?}",
                    std::process::id(),
                    std::thread::current().id()
                ));
                std::fs::create_dir_all(&p).unwrap();
                Dir(p)
            }
        }
        impl Drop for Dir {
            fn drop(&mut self) {
                let _ = std::fs::remove_dir_all(&self.0);
            }
        }
    }

    const PASSWD: &str = "root:x:0:0:root:/root:/bin/sh\nalice:x:1000:1000::/home/alice:/bin/sh\n";
    const GROUP: &str = "root:x:0:\nalice:x:1000:\nstaff:x:50:alice\n";

    #[test]
    fn names_ids_and_groups() {
        let (_d, f) = root_with(PASSWD, GROUP);
        let u = resolve("alice", &f, 0, 0).unwrap();
        assert_eq!(
            (u.user.uid, u.user.gid, u.home.as_str()),
            (1000, 1000, "/home/alice")
        );
        assert_eq!(u.user.additional_gids, vec![50]);
        let u = resolve("1000:staff", &f, 0, 0).unwrap();
        assert_eq!((u.user.uid, u.user.gid), (1000, 50));
        let u = resolve("4242:4343", &f, 0, 0).unwrap();
        assert_eq!((u.user.uid, u.user.gid), (4242, 4343));
        let u = resolve("", &f, 0, 0).unwrap();
        assert_eq!((u.user.uid, u.home.as_str()), (0, "/root"));
    }

    #[test]
    fn unknown_names_are_errors() {
        let (_d, f) = root_with(PASSWD, GROUP);
        assert!(matches!(resolve("bob", &f, 0, 0), Err(UserError::NoUser(n)) if n == "bob"));
        assert!(matches!(
            resolve("alice:nogroup", &f, 0, 0),
            Err(UserError::NoGroup(_))
        ));
        assert!(matches!(
            resolve(":1", &f, 0, 0),
            Err(UserError::Invalid(_))
        ));
    }

    #[test]
    fn symlinks_cannot_leave_the_layer() {
        let d = tempdir::Dir::new();
        std::fs::create_dir_all(d.0.join("etc")).unwrap();
        std::os::unix::fs::symlink("/etc/hostname", d.0.join("etc/passwd")).unwrap();
        let f = RootFiles::new(vec![d.0.clone()]);
        // The absolute link resolves inside the layer, where nothing is.
        assert!(f.read(Path::new("/etc/passwd")).is_none());
    }
}
