//! The `hutch-runtime` binary: the OCI runtime command line (see
//! `hutch::runtime`).

fn main() {
    std::process::exit(hutch::runtime::main());
}
