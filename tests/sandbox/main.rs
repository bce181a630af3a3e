//! hutch's integration tests: one binary, one shared harness. Every test
//! runs hutch as an unprivileged user (see harness.rs).

mod harness;

mod engine;
mod errors;
mod host;
mod image_xattrs;
mod images;
mod judge;
mod layout;
mod leaks;
mod lifecycle;
mod network;
mod policy;
mod process;
mod pull_resume;
mod runtime;
