//! Two things done before hutch is compiled:
//!
//! - SHA-256 digests of the shipped policy profiles (policies/*.toml, which
//!   src/policy/mod.rs compiles in with include_str!), so that the policy
//!   cache's key need not hash their text on every run. Profiles read from
//!   files are still hashed when read.
//! - The linker is asked to place the functions a run executes first in the
//!   text of the `hutch` binary, in the order link/symbol-order.txt lists
//!   them (made by scripts/symbol-order.sh), where the linker takes that
//!   (lld, rustc's default linker on x86_64 Linux since 1.90). A run touches
//!   about 500 KB of code scattered over hutch's 5.5 MB of text, and each
//!   first touch of a 64 KiB window of it is a page fault, in the run's
//!   process and again in its init: 75 of them per judge run, 18 with the order.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use sha2::{Digest, Sha256};

fn main() {
    shipped_digests();
    symbol_order();
}

fn shipped_digests() {
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

/// Hands link/symbol-order.txt to the linker for the `hutch` binary if the
/// linker takes it, which a link of an empty program with the same flags
/// and the same linker arguments tells (GNU ld refuses them). Names the
/// file lists that a build no longer has (after a change of code or of
/// dependencies) are skipped without a warning; the test `layout::*` says
/// when too many are.
fn symbol_order() {
    const ORDER: &str = "link/symbol-order.txt";
    println!("cargo:rerun-if-changed={ORDER}");
    let manifest =
        PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR"));
    let order = manifest.join(ORDER);
    if !order.is_file() {
        return;
    }
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("OUT_DIR"));
    if let Err(why) = linker_takes(&out) {
        println!(
            "cargo:warning=the linker does not take --symbol-ordering-file ({why}): \
             hutch's code stays in link order, and a run takes more page faults"
        );
        return;
    }
    for arg in order_args(&order) {
        println!("cargo:rustc-link-arg-bin=hutch={arg}");
    }
    // For the test that checks the layout of the binary.
    println!("cargo:rustc-env=HUTCH_SYMBOL_ORDER={}", order.display());
}

/// The linker arguments for an ordering file: `-Xlinker` pairs, not
/// `-Wl,`, which would split a path at its commas.
fn order_args(list: &Path) -> Vec<String> {
    vec![
        "-Xlinker".into(),
        format!("--symbol-ordering-file={}", list.display()),
        "-Xlinker".into(),
        "--no-warn-symbol-ordering".into(),
    ]
}

/// Links `fn main() {}` for the target with the flags hutch is built with
/// and [`order_args`] for a one-name list; the linker's complaint if that
/// fails.
fn linker_takes(out: &Path) -> Result<(), String> {
    let (Some(rustc), Some(target)) = (std::env::var_os("RUSTC"), std::env::var_os("TARGET"))
    else {
        return Err("RUSTC or TARGET not set".into());
    };
    let src = out.join("order-probe.rs");
    let list = out.join("order-probe.txt");
    std::fs::write(&src, "fn main() {}\n").map_err(|e| e.to_string())?;
    std::fs::write(&list, "main\n").map_err(|e| e.to_string())?;
    let mut cmd = Command::new(rustc);
    cmd.arg("--crate-type=bin")
        .arg("--target")
        .arg(target)
        .arg("-o")
        .arg(out.join("order-probe"));
    // Cargo's linker first, the rustflags after it, as cargo orders them
    // (a `-C linker` in the rustflags wins).
    if let Some(linker) = std::env::var_os("RUSTC_LINKER") {
        let mut arg = std::ffi::OsString::from("linker=");
        arg.push(linker);
        cmd.arg("-C").arg(arg);
    }
    let flags = std::env::var("CARGO_ENCODED_RUSTFLAGS").unwrap_or_default();
    cmd.args(flags.split('\x1f').filter(|f| !f.is_empty()));
    for arg in order_args(&list) {
        cmd.arg("-C").arg(format!("link-arg={arg}"));
    }
    cmd.arg(&src);
    let done = cmd.output().map_err(|e| e.to_string())?;
    if done.status.success() {
        return Ok(());
    }
    let err = String::from_utf8_lossy(&done.stderr);
    Err(err
        .lines()
        .find(|l| l.contains("error") || l.contains("unrecognized"))
        .unwrap_or("link failed")
        .trim()
        .chars()
        .take(200)
        .collect())
}
