//! The layout of the hutch binary: the functions a run executes, listed in
//! link/symbol-order.txt, lead its text (build.rs hands the list to the
//! linker), so that a run faults in a few 64 KiB windows of code instead
//! of one for every corner of 5.5 MB it touches.

use std::collections::HashMap;
use std::process::Command;

/// Every defined function of the binary: name to (address, size).
fn functions(bin: &str) -> HashMap<String, (u64, u64)> {
    let out = Command::new("nm")
        .args(["-S", "--defined-only", bin])
        .output()
        .expect("nm (binutils) reads the binary's symbol table");
    assert!(
        out.status.success(),
        "nm {bin}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|line| {
            let mut f = line.split_whitespace();
            let (addr, size, kind, name) = (f.next()?, f.next()?, f.next()?, f.next()?);
            if !matches!(kind, "t" | "T" | "W" | "w") {
                return None;
            }
            let addr = u64::from_str_radix(addr, 16).ok()?;
            let size = u64::from_str_radix(size, 16).ok()?;
            Some((name.to_string(), (addr, size)))
        })
        .collect()
}

#[test]
fn the_functions_a_run_executes_lead_the_text() {
    if cfg!(debug_assertions) {
        // The list names the release build's functions: the profile is in
        // the hash of every mangled name of hutch's own code, which a debug
        // build therefore lacks (`cargo test --release`, as README says).
        eprintln!("layout: not checked in a debug build");
        return;
    }
    let Some(order) = option_env!("HUTCH_SYMBOL_ORDER") else {
        panic!(
            "build.rs did not hand link/symbol-order.txt to the linker: it links with lld only \
             (rustc 1.90 or later on x86_64 Linux links with it by default); a run of this build \
             faults in three times the code pages"
        );
    };
    let listed: Vec<String> = std::fs::read_to_string(order)
        .unwrap()
        .lines()
        .map(str::to_string)
        .filter(|l| !l.is_empty())
        .collect();
    assert!(
        listed.len() >= 100,
        "{order} lists {} functions",
        listed.len()
    );
    let funcs = functions(env!("CARGO_BIN_EXE_hutch"));
    let found: Vec<(u64, u64)> = listed
        .iter()
        .filter_map(|n| funcs.get(n).copied())
        .collect();
    // Names of hutch's own code drift as it changes (a hash in each mangled
    // name, and ThinLTO's suffix for the functions it promotes); glibc's,
    // std's and the dependencies' mostly stay. Past half of hutch's own
    // gone, the list is stale.
    let own: Vec<&String> = listed.iter().filter(|n| n.contains("5hutch")).collect();
    let own_found = own
        .iter()
        .filter(|n| funcs.contains_key(n.as_str()))
        .count();
    assert!(
        !own.is_empty() && own_found * 2 >= own.len(),
        "only {own_found} of the {} functions of hutch's own code in {order} are in this \
         build: regenerate it with scripts/symbol-order.sh (as root)",
        own.len()
    );
    let text_start = funcs.values().map(|&(a, _)| a).min().unwrap();
    let listed_bytes: u64 = found.iter().map(|&(_, s)| s).sum();
    // Laid out in order, the listed functions fill the start of the text,
    // up to alignment padding; without the order they are spread over all
    // of it.
    let bound = text_start + listed_bytes * 3 / 2 + 64 * 1024;
    let inside = found.iter().filter(|&&(a, _)| a < bound).count();
    assert!(
        inside * 10 >= found.len() * 9,
        "{inside} of the {} listed functions found lie in the first {} KiB of the text \
         ({} KiB of them): the linker did not follow {order}",
        found.len(),
        (bound - text_start) / 1024,
        listed_bytes / 1024
    );
}
