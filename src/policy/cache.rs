//! Two caches under the runtime dir, so a warm start neither parses nor
//! compiles:
//!
//! - compiled seccomp filters, keyed by a SHA-256 of the resolved model
//!   (which holds everything the BPF depends on: rules, default action,
//!   architecture, hutch's version);
//! - whole resolved policies (filters, Landlock plan, warnings), keyed by
//!   what the command line chose plus the host facts resolving reads (hutch
//!   build, architecture, Landlock ABI, kernel release for Docker JSON), and
//!   valid only while every profile file they were resolved from still has
//!   the content they were resolved from (each entry lists those files with
//!   the SHA-256 of the exact text parsed, re-checked on every hit).
//!
//! Both are only an optimisation: any problem reading an entry means
//! "resolve again", and writes are atomic.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use seccompiler::sock_filter;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::landlock::Plan;
use super::seccomp::{Arch, Compiled, SeccompModel, MAX_INSNS};
use super::{Choice, Policy, SeccompChoice, StoredPolicy};

const MAGIC: &[u8; 8] = b"HUTCHBPF";
/// Bumped when the file layout or the compiler's output changes (the
/// optimiser in `bpf_opt.rs` and the merge in `bpf_tree.rs` included).
const FORMAT: u32 = 5;
/// A profile compiles to a few filters.
const MAX_PROGRAMS: usize = 16;

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

/// Store the filters for `key`.
pub fn store(dir: &Path, key: &str, c: &Compiled) -> std::io::Result<()> {
    write_atomic(&path(dir, key), &encode(c))
}

/// Write a cache entry: temp file in the same dir, fsync, rename.
fn write_atomic(dst: &Path, data: &[u8]) -> std::io::Result<()> {
    crate::durable::write_atomic(dst, data, 0o600)
}

fn sha256_hex(data: &[u8]) -> String {
    Sha256::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

// SHIPPED_SHA256: the build script's digests of policies/*.toml.
include!(concat!(env!("OUT_DIR"), "/shipped_sha256.rs"));

const POLICY_MAGIC: &[u8; 8] = b"HUTCHPOL";
/// Bumped when the entry layout changes.
const POLICY_FORMAT: u32 = 2;
/// Far above any real entry (a few filters, a Landlock plan, some text).
const MAX_POLICY_BYTES: u64 = 4 << 20;

/// A file a resolved policy was made from, with the hash of the text parsed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Dep {
    pub path: PathBuf,
    /// The size cap it was read with, to re-read it the same way.
    pub max: usize,
    pub sha256: String,
}

impl Dep {
    pub fn new(path: &Path, max: usize, text: &[u8]) -> Dep {
        Dep {
            path: path.to_path_buf(),
            max,
            sha256: sha256_hex(text),
        }
    }

    /// Whether the file still holds that text.
    fn unchanged(&self) -> bool {
        super::read_capped(&self.path, self.max)
            .is_ok_and(|t| sha256_hex(t.as_bytes()) == self.sha256)
    }
}

/// Everything of an entry but the filters, which follow it in the BPF
/// cache's own encoding (compact and quick to read).
#[derive(Serialize, Deserialize)]
struct PolicyMeta {
    deps: Vec<Dep>,
    name: String,
    has_seccomp: bool,
    landlock: Option<Plan>,
    inet_sockets: bool,
    warnings: Vec<String>,
    report: Vec<String>,
}

/// The cache key of what `choice` resolves to on this host; `None` where
/// hutch has no seccomp support (resolving fails there anyway).
pub fn policy_key(choice: &Choice) -> Option<String> {
    let arch = Arch::host()?;
    let mut h = Sha256::new();
    let mut part = |b: &[u8]| {
        h.update((b.len() as u64).to_le_bytes());
        h.update(b);
    };
    part(POLICY_MAGIC);
    part(&POLICY_FORMAT.to_le_bytes());
    // The filters inside change with the compiler's output.
    part(&FORMAT.to_le_bytes());
    part(env!("CARGO_PKG_VERSION").as_bytes());
    part(arch.name().as_bytes());
    part(&super::landlock::kernel_abi().to_le_bytes());
    // A development build may change a shipped profile without a new
    // version: their digests, computed when the binary was built.
    for (name, digest) in SHIPPED_SHA256 {
        part(name.as_bytes());
        part(digest);
    }
    part(choice.profile.as_deref().unwrap_or("").as_bytes());
    part(&[
        u8::from(choice.profile.is_some()),
        u8::from(choice.landlock_unconfined),
    ]);
    match &choice.seccomp {
        SeccompChoice::Profile => part(b"profile"),
        SeccompChoice::Unconfined => part(b"unconfined"),
        SeccompChoice::DockerJson(p) => {
            part(b"docker-json");
            part(p.as_os_str().as_encoded_bytes());
            // Docker profiles select rules by kernel version.
            part(
                std::fs::read_to_string("/proc/sys/kernel/osrelease")
                    .unwrap_or_default()
                    .as_bytes(),
            );
        }
    }
    // Relative profile paths name different files from different dirs:
    // keep their entries apart rather than have them replace each other.
    part(
        std::env::current_dir()
            .unwrap_or_default()
            .as_os_str()
            .as_encoded_bytes(),
    );
    Some(h.finalize().iter().map(|b| format!("{b:02x}")).collect())
}

pub fn policy_path(dir: &Path, key: &str) -> PathBuf {
    dir.join(format!("{key}.policy"))
}

/// The cached policy for `key`, if a valid entry exists and every file it
/// was resolved from is unchanged.
pub fn load_policy(dir: &Path, key: &str) -> Option<Policy> {
    use std::io::Read;
    let f = std::fs::File::open(policy_path(dir, key)).ok()?;
    // Room for a shipped policy's entry up front: read in one call, not
    // in steps from 32 bytes up.
    let mut data = Vec::with_capacity(16 << 10);
    f.take(MAX_POLICY_BYTES + 1).read_to_end(&mut data).ok()?;
    let rest = data.strip_prefix(POLICY_MAGIC.as_slice())?;
    let (format, rest) = rest.split_first_chunk::<4>()?;
    if u32::from_le_bytes(*format) != POLICY_FORMAT {
        return None;
    }
    let (len, rest) = rest.split_first_chunk::<4>()?;
    let len = u32::from_le_bytes(*len) as usize;
    if rest.len() < len {
        return None;
    }
    let (meta, bpf) = rest.split_at(len);
    let meta: PolicyMeta = serde_json::from_slice(meta).ok()?;
    let compiled = decode(bpf)?;
    if !meta.deps.iter().all(Dep::unchanged) {
        return None;
    }
    // The same fail-closed check as a container record's policy.
    Policy::try_from(StoredPolicy {
        name: meta.name,
        seccomp: meta.has_seccomp.then(|| Arc::new(compiled)),
        landlock: meta.landlock,
        inet_sockets: meta.inet_sockets,
        warnings: meta.warnings,
        report: meta.report,
    })
    .ok()
}

/// Store `policy`, resolved from the files `deps`, for `key`.
pub fn store_policy(dir: &Path, key: &str, policy: &Policy, deps: &[Dep]) -> std::io::Result<()> {
    let meta = PolicyMeta {
        deps: deps.to_vec(),
        name: policy.name.clone(),
        has_seccomp: policy.seccomp.is_some(),
        landlock: policy.landlock.clone(),
        inet_sockets: policy.inet_sockets,
        warnings: policy.warnings.clone(),
        report: policy.report.clone(),
    };
    let json = serde_json::to_vec(&meta).map_err(std::io::Error::other)?;
    let mut out = Vec::with_capacity(json.len() + 16 * 1024);
    out.extend_from_slice(POLICY_MAGIC);
    out.extend_from_slice(&POLICY_FORMAT.to_le_bytes());
    out.extend_from_slice(&(json.len() as u32).to_le_bytes());
    out.extend_from_slice(&json);
    let empty = Compiled { programs: vec![] };
    out.extend_from_slice(&encode(policy.seccomp.as_deref().unwrap_or(&empty)));
    write_atomic(&policy_path(dir, key), &out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::seccomp::{compile, Action, NewProcesses, Rule};

    #[test]
    fn resolved_policies_hold_only_while_their_files_do() {
        let dir = std::env::temp_dir().join(format!("hutch-polcache-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let prof = dir.join("mine.toml");
        std::fs::write(&prof, "extends = \"judge\"\n").unwrap();
        let choice = Choice {
            profile: Some(prof.display().to_string()),
            ..Choice::default()
        };
        let mut deps = Vec::new();
        let p = Policy::resolve_recording(&choice, &mut deps).unwrap();
        assert_eq!(deps.len(), 1, "one file read: {deps:?}");
        assert!(p.seccomp.is_some() && p.landlock.is_some());
        let key = policy_key(&choice).unwrap();
        assert_ne!(key, policy_key(&Choice::default()).unwrap());
        store_policy(&dir, &key, &p, &deps).unwrap();
        let back = load_policy(&dir, &key).expect("a fresh entry is a hit");
        assert!(!p.inet_sockets && !back.inet_sockets, "judge's answer kept");
        assert_eq!(
            serde_json::to_value(&back).unwrap(),
            serde_json::to_value(&p).unwrap()
        );

        // Through the runtime dir: the same policy as resolving afresh.
        let cached = Policy::resolve_cached(&choice).unwrap();
        let again = Policy::resolve_cached(&choice).unwrap();
        for q in [&cached, &again] {
            assert_eq!(q.seccomp, p.seccomp);
            assert_eq!(
                serde_json::to_value(&q.landlock).unwrap(),
                serde_json::to_value(&p.landlock).unwrap()
            );
            assert_eq!(q.warnings, p.warnings);
        }

        // The profile changes: the entry no longer holds, and resolving
        // through the cache sees the new text.
        std::fs::write(&prof, "extends = \"unconfined\"\n").unwrap();
        assert!(load_policy(&dir, &key).is_none());
        let changed = Policy::resolve_cached(&choice).unwrap();
        assert!(changed.seccomp.is_none() && changed.landlock.is_none());

        // A damaged entry is a miss, never a weaker policy.
        std::fs::write(&prof, "extends = \"judge\"\n").unwrap();
        let file = policy_path(&dir, &key);
        let bytes = std::fs::read(&file).unwrap();
        std::fs::write(&file, &bytes[..bytes.len() - 3]).unwrap();
        assert!(load_policy(&dir, &key).is_none());
        // An entry that lost its filter without saying so is refused.
        let stripped = Policy {
            seccomp: None,
            ..p.clone()
        };
        store_policy(&dir, &key, &stripped, &deps).unwrap();
        assert!(load_policy(&dir, &key).is_none());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn build_time_digests_are_those_of_the_shipped_profiles() {
        let names: Vec<&str> = SHIPPED_SHA256.iter().map(|(n, _)| *n).collect();
        let shipped: Vec<&str> = crate::policy::SHIPPED.iter().map(|(n, _)| *n).collect();
        assert_eq!(
            names, shipped,
            "policies/*.toml and SHIPPED list other profiles"
        );
        for ((name, text), (_, digest)) in crate::policy::SHIPPED.iter().zip(SHIPPED_SHA256) {
            assert_eq!(sha256_hex(text.as_bytes()), hex(digest), "{name}");
        }
    }

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

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
