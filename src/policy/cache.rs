//! Compiled seccomp filters cached under the runtime dir, keyed by a
//! SHA-256 of the resolved model (which holds everything the BPF depends
//! on: rules, default action, architecture, hutch's version), so a warm
//! start does not recompile. The cache is only an optimisation: any
//! problem reading it means "compile again", and writes are atomic.

use std::io::Write;
use std::path::{Path, PathBuf};

use seccompiler::sock_filter;
use sha2::{Digest, Sha256};

use super::seccomp::{Arch, Compiled, SeccompModel};

const MAGIC: &[u8; 8] = b"HUTCHBPF";
/// Bumped when the file layout or the compiler's output changes.
const FORMAT: u32 = 2;
/// A BPF program holds at most 4096 instructions; a profile a few filters.
const MAX_PROGRAMS: usize = 16;
const MAX_INSNS: usize = 4096;

/// The cache key of `model` compiled for `arch`.
pub fn key(model: &SeccompModel, arch: Arch) -> String {
    let mut h = Sha256::new();
    h.update(MAGIC);
    h.update(FORMAT.to_le_bytes());
    h.update(env!("CARGO_PKG_VERSION").as_bytes());
    h.update(arch.name().as_bytes());
    // The model serializes deterministically (vectors in order, no maps).
    h.update(serde_json::to_vec(model).unwrap_or_default());
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

pub fn path(dir: &Path, key: &str) -> PathBuf {
    dir.join(format!("{key}.bpf"))
}

fn encode(c: &Compiled) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&FORMAT.to_le_bytes());
    out.extend_from_slice(&(c.programs.len() as u32).to_le_bytes());
    for p in &c.programs {
        out.extend_from_slice(&(p.len() as u32).to_le_bytes());
        for i in p {
            out.extend_from_slice(&i.code.to_le_bytes());
            out.push(i.jt);
            out.push(i.jf);
            out.extend_from_slice(&i.k.to_le_bytes());
        }
    }
    out
}

fn decode(data: &[u8]) -> Option<Compiled> {
    let mut rest = data.strip_prefix(MAGIC.as_slice())?;
    let u32_le = |rest: &mut &[u8]| -> Option<u32> {
        let (head, tail) = rest.split_first_chunk::<4>()?;
        *rest = tail;
        Some(u32::from_le_bytes(*head))
    };
    if u32_le(&mut rest)? != FORMAT {
        return None;
    }
    let n = u32_le(&mut rest)? as usize;
    if n > MAX_PROGRAMS {
        return None;
    }
    let mut programs = Vec::with_capacity(n);
    for _ in 0..n {
        let len = u32_le(&mut rest)? as usize;
        if len == 0 || len > MAX_INSNS || rest.len() < len * 8 {
            return None;
        }
        let (body, tail) = rest.split_at(len * 8);
        rest = tail;
        programs.push(
            body.chunks_exact(8)
                .map(|c| sock_filter {
                    code: u16::from_le_bytes([c[0], c[1]]),
                    jt: c[2],
                    jf: c[3],
                    k: u32::from_le_bytes([c[4], c[5], c[6], c[7]]),
                })
                .collect(),
        );
    }
    rest.is_empty().then_some(Compiled { programs })
}

/// The cached filters for `key`, if a valid entry exists.
pub fn load(dir: &Path, key: &str) -> Option<Compiled> {
    let data = std::fs::read(path(dir, key)).ok()?;
    if data.len() > 16 + MAX_PROGRAMS * (4 + MAX_INSNS * 8) {
        return None;
    }
    decode(&data)
}

/// Store the filters for `key`: temp file in the same dir, fsync, rename.
pub fn store(dir: &Path, key: &str, c: &Compiled) -> std::io::Result<()> {
    let dst = path(dir, key);
    let tmp = dir.join(format!(".{key}.{}.tmp", std::process::id()));
    let result = (|| {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)?;
        f.write_all(&encode(c))?;
        f.sync_all()?;
        std::fs::rename(&tmp, &dst)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::seccomp::{compile, Action, NewProcesses, Rule};

    #[test]
    fn round_trip_and_corruption() {
        let model = SeccompModel {
            default_action: Action::Errno(1),
            rules: vec![Rule {
                syscalls: vec!["read".into()],
                arch: None,
                action: Action::Allow,
                conditions: vec![],
                why: String::new(),
            }],
            new_processes: NewProcesses::Any,
        };
        let c = compile(&model, Arch::X86_64).unwrap();
        let bytes = encode(&c);
        assert_eq!(decode(&bytes), Some(c.clone()));
        assert_eq!(decode(&bytes[..bytes.len() - 1]), None);
        let mut bad = bytes.clone();
        bad[0] = b'X';
        assert_eq!(decode(&bad), None);

        let dir = std::env::temp_dir().join(format!("hutch-cache-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let k = key(&model, Arch::X86_64);
        assert_ne!(k, key(&model, Arch::Aarch64));
        store(&dir, &k, &c).unwrap();
        assert_eq!(load(&dir, &k), Some(c));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
