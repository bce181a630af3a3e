//! Entry points shared by the cargo-fuzz targets under `fuzz/` and the unit
//! test that replays their seed corpora (`fuzz/corpus/<target>/`), so the
//! corpora run on every `cargo test` without a nightly toolchain.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use super::manifest::{self, ImageConfig, Manifest, Platform};
use super::reference::Reference;
use super::unpack;

/// Any input: no panic; what parses prints back to the same reference.
pub fn reference(data: &[u8]) {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(r) = Reference::parse(s) {
        let again = Reference::parse(&r.to_string())
            .unwrap_or_else(|e| panic!("{r} does not parse again: {e}"));
        assert_eq!(again, r);
    }
}

/// Any input: no panic, whatever the document claims to be.
pub fn manifest(data: &[u8]) {
    if let Ok(Manifest::Index(list)) = Manifest::parse(data, None) {
        let _ = manifest::choose(&list, &Platform::host());
    }
    if let Ok(c) = ImageConfig::parse(data) {
        let _ = manifest::chain_ids(&c.rootfs.diff_ids);
    }
}

/// Any layer: unpacked into a fresh directory, nothing appears beside it.
pub fn unpack(data: &[u8]) {
    static N: AtomicU64 = AtomicU64::new(0);
    let base = std::env::temp_dir().join(format!(
        "hutch-fuzz-unpack-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    let layer = base.join("layer");
    std::fs::create_dir_all(&layer).expect("create the fuzz dir");
    std::fs::write(base.join("sentinel"), b"untouched").expect("write the sentinel");
    let _ = unpack::unpack_layer(data, &layer);
    let mut beside: Vec<PathBuf> = std::fs::read_dir(&base)
        .expect("list the fuzz dir")
        .map(|e| e.expect("entry").path())
        .collect();
    beside.sort();
    assert_eq!(
        beside,
        vec![layer.clone(), base.join("sentinel")],
        "the layer wrote beside its directory"
    );
    assert_eq!(
        std::fs::read(base.join("sentinel")).expect("sentinel"),
        b"untouched"
    );
    std::fs::remove_dir_all(&base).expect("clean the fuzz dir");
}

/// The seed corpus of one target.
pub fn corpus(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target);
    let mut out: Vec<(PathBuf, Vec<u8>)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| {
            let p = e.expect("entry").path();
            let data = std::fs::read(&p).expect("read a seed");
            (p, data)
        })
        .collect();
    out.sort();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn replay(target: &str, f: fn(&[u8])) {
        let seeds = corpus(target);
        assert!(!seeds.is_empty(), "no seeds for {target}");
        for (path, data) in seeds {
            let r = std::panic::catch_unwind(|| f(&data));
            assert!(r.is_ok(), "{target} seed {} fails", path.display());
        }
    }

    #[test]
    fn reference_corpus() {
        replay("reference", reference);
    }

    #[test]
    fn manifest_corpus() {
        replay("manifest", manifest);
    }

    #[test]
    fn unpack_corpus() {
        replay("unpack", unpack);
    }
}
