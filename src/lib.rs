//! hutch: a rootless sandbox for untrusted code.
//!
//! See ARCHITECTURE.md for how the modules fit together.

pub mod cli;
pub mod container;
pub mod durable;
pub mod image;
pub mod net;
pub mod paths;
pub mod policy;
pub mod procfs;
pub mod sandbox;
