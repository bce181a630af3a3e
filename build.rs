//! SHA-256 digests of the shipped policy profiles (policies/*.toml, which
//! src/policy/mod.rs compiles in with include_str!), so that the policy
//! cache's key need not hash their text on every run. Profiles read from
//! files are still hashed when read.

use std::fmt::Write as _;
use std::path::Path;

use sha2::{Digest, Sha256};

fn main() {
    let dir = Path::new("policies");
    // A directory: cargo re-runs this when any file in it changes.
    println!("cargo:rerun-if-changed={}", dir.display());
    let mut profiles: Vec<(String, Vec<u8>)> = std::fs::read_dir(dir)
        .expect("read policies/")
        .map(|e| e.expect("list policies/").path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .map(|p| {
            let name = p.file_stem().expect("a file name").to_string_lossy();
            let text = std::fs::read(&p).unwrap_or_else(|e| panic!("read {}: {e}", p.display()));
            (name.into_owned(), text)
        })
        .collect();
    profiles.sort();
    let mut out = String::from(
        "/// (name, SHA-256 of its text) of each policies/*.toml, by name.\n\
         pub const SHIPPED_SHA256: &[(&str, [u8; 32])] = &[\n",
    );
    for (name, text) in &profiles {
        let digest: [u8; 32] = Sha256::digest(text).into();
        writeln!(out, "    ({name:?}, {digest:?}),").expect("write to a String");
    }
    out.push_str("];\n");
    let dst = Path::new(&std::env::var_os("OUT_DIR").expect("OUT_DIR")).join("shipped_sha256.rs");
    std::fs::write(&dst, out).unwrap_or_else(|e| panic!("write {}: {e}", dst.display()));
}
