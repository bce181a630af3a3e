//! The sandbox engine: from a validated [`Spec`] to a confined, running
//! workload.
//!
//! `spawn` is the parent's side (clone, id maps, release, error report),
//! `child` the child's ordered setup, `rootfs` the mounts, `init` the pid 1
//! that stays behind, `attach` the foreground relay of stdio and signals.

pub mod attach;
pub mod caps;
pub mod child;
pub mod console;
pub mod error;
pub mod idmap;
pub mod init;
pub mod passwd;
pub mod rootfs;
pub mod spawn;
pub mod spec;
pub mod sys;

pub use error::{SandboxError, SetupError};
pub use spawn::Exit;
pub use spec::Spec;
