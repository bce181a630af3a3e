//! The sandbox engine: from a validated [`Spec`] to a confined, running
//! workload.
//!
//! `spawn` is the parent's side (clone, id maps, release, error report),
//! `child` the child's ordered setup, `rootfs` the mounts, `init` the pid 1
//! that stays behind, `attach` the foreground relay of stdio and signals,
//! `teardown` what is left of an `--rm` run once its result is known.

pub mod attach;
pub mod caps;
pub mod cgroup;
pub mod child;
pub mod console;
pub mod enforce;
pub mod error;
pub mod hot;
pub mod idmap;
pub mod init;
pub mod limits;
pub mod nsjoin;
pub mod passwd;
pub mod report;
pub mod rootfs;
pub mod spawn;
pub mod spec;
pub mod sys;
pub mod teardown;
pub mod watchdog;

pub use error::{SandboxError, SetupError};
pub use spawn::Exit;
pub use spec::Spec;
