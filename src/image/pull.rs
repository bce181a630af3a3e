//! Pulling an image into the store: resolve the manifest (choosing the
//! platform from an index), fetch and verify the config, then stream the
//! missing layers in parallel: download, hash, decompress, hash again and
//! unpack in one pass into a private work dir. A layer enters the store
//! (one rename) only once both its blob digest and its diff id match; a
//! failure or an interruption leaves nothing but a work dir that the next
//! command sweeps. Runs inside the store helper (see `userns`).

use std::io::{IsTerminal, Read, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use super::manifest::{
    self, Descriptor, ImageConfig, ImageManifest, Manifest, ManifestError, Platform,
};
use super::reference::{Digest, Reference};
use super::registry::{self, Client, RegistryError};
use super::store::{ImageRecord, LayerMeta, Store, StoreError};
use super::unpack::{self, HashReader, UnpackError};

/// Layers downloaded at once.
const PARALLEL: usize = 4;

#[derive(Debug, thiserror::Error)]
pub enum PullError {
    #[error(transparent)]
    Registry(#[from] RegistryError),
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("layer {digest}: {source}")]
    Unpack { digest: Digest, source: UnpackError },
    #[error("layer {digest} unpacks to diff id {got}, but the image config says {want}; refused and not kept")]
    DiffId {
        digest: Digest,
        want: Digest,
        got: Digest,
    },
    /// A resumed download did not match the digest: the kept part or the
    /// rest was wrong. The partial is gone; the next attempt starts over.
    #[error("layer {digest}: the resumed download does not match its digest; starting over")]
    ResumedBadly { digest: Digest },
    #[error("{0}")]
    Other(String),
}

#[derive(Debug, Clone, Default)]
pub struct PullOptions {
    pub platform: Option<Platform>,
    pub tls_verify: bool,
    pub quiet: bool,
    pub creds: Option<super::auth::Credentials>,
}

/// Where a layer's compressed bytes come from.
pub trait LayerSource: Sync {
    /// The blob from byte `from` on, and the offset where what it returns
    /// really starts (0 when the source can only give the whole blob).
    fn open(&self, d: &Descriptor, from: u64) -> Result<(Box<dyn Read + Send>, u64), PullError>;
    /// Whether a download is worth keeping to resume (a network source).
    fn resumable(&self) -> bool {
        false
    }
    /// Failures worth another attempt.
    fn transient(&self, e: &PullError) -> bool {
        matches!(e, PullError::Registry(r) if r.is_transient())
            || matches!(e, PullError::ResumedBadly { .. })
            || matches!(
                e,
                PullError::Unpack {
                    source: UnpackError::Stream(_),
                    ..
                }
            )
    }
}

struct RegistrySource<'a>(&'a Client);

impl LayerSource for RegistrySource<'_> {
    fn open(&self, d: &Descriptor, from: u64) -> Result<(Box<dyn Read + Send>, u64), PullError> {
        Ok(self.0.blob_from(&d.digest, from)?)
    }

    fn resumable(&self) -> bool {
        true
    }
}

pub fn pull(store: &Store, r: &Reference, opts: &PullOptions) -> Result<ImageRecord, PullError> {
    let client = match &opts.creds {
        Some(c) => Client::connect_with(r, opts.tls_verify, Some(c.clone()))?,
        None => Client::connect(r, opts.tls_verify)?,
    };
    let (bytes, ct, top_digest) = client.manifest(&r.manifest_ref())?;
    let mut digests = vec![format!("{}@{top_digest}", r.name())];
    let (img, manifest_bytes, manifest_digest) = match Manifest::parse(&bytes, ct.as_deref())? {
        Manifest::Image(m) => (m, bytes, top_digest),
        Manifest::Index(list) => {
            let want = opts.platform.clone().unwrap_or_else(Platform::host);
            let entry = manifest::choose(&list, &want)?;
            store.write_blob(&bytes)?;
            let (b, ct, d) = client.manifest(&entry.digest.to_string())?;
            match Manifest::parse(&b, ct.as_deref().or(Some(&entry.media_type)))? {
                Manifest::Image(m) => {
                    digests.push(format!("{}@{d}", r.name()));
                    (m, b, d)
                }
                Manifest::Index(_) => {
                    return Err(PullError::Other(format!(
                        "the index entry {} for {want} is another index; nested indexes are not supported",
                        entry.digest
                    )))
                }
            }
        }
    };
    let config_bytes = match store.read_blob(&img.config.digest, manifest::MAX_CONFIG) {
        Ok(b) => b,
        Err(_) => client.small_blob(&img.config.digest, img.config.size)?,
    };
    let names = r
        .tag
        .as_ref()
        .map(|t| vec![format!("{}:{t}", r.name())])
        .unwrap_or_default();
    if !opts.quiet {
        eprintln!("Pulling {r}");
    }
    install(
        store,
        &img,
        &config_bytes,
        &manifest_bytes,
        &manifest_digest,
        names,
        digests,
        &RegistrySource(&client),
        opts.quiet,
    )
}

/// Verify an image's config, bring its missing layers into the store from
/// `source`, and record it in the index under `names`.
#[allow(clippy::too_many_arguments)]
pub fn install(
    store: &Store,
    img: &ImageManifest,
    config_bytes: &[u8],
    manifest_bytes: &[u8],
    manifest_digest: &Digest,
    names: Vec<String>,
    digests: Vec<String>,
    source: &dyn LayerSource,
    quiet: bool,
) -> Result<ImageRecord, PullError> {
    let got = Digest::of(config_bytes);
    if got != img.config.digest {
        return Err(PullError::Other(format!(
            "image config {} does not match its digest (got {got}); refused and not kept",
            img.config.digest
        )));
    }
    let config = ImageConfig::parse(config_bytes)?;
    if config.rootfs.diff_ids.len() != img.layers.len() {
        return Err(ManifestError::LayerCount {
            diff_ids: config.rootfs.diff_ids.len(),
            layers: img.layers.len(),
        }
        .into());
    }
    let chains = manifest::chain_ids(&config.rootfs.diff_ids);
    // No sweep may take these layers until the index names them.
    let _hold = store.hold_layers(&chains)?;
    let mut jobs = Vec::new();
    for (i, l) in img.layers.iter().enumerate() {
        if store.layer(&chains[i])?.is_none()
            && !jobs
                .iter()
                .any(|(_, c, _): &(Descriptor, Digest, Digest)| c == &chains[i])
        {
            jobs.push((
                l.clone(),
                chains[i].clone(),
                config.rootfs.diff_ids[i].clone(),
            ));
        }
    }
    store.sweep_tmp()?;
    let progress = Progress::new(&jobs, quiet);
    let queue = Mutex::new(jobs.into_iter().enumerate().collect::<Vec<_>>());
    let errors: Mutex<Vec<PullError>> = Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for _ in 0..PARALLEL {
            s.spawn(|| loop {
                let job = queue.lock().expect("queue").pop();
                let Some((slot, (desc, chain, diff))) = job else {
                    break;
                };
                if !errors.lock().expect("errors").is_empty() {
                    break;
                }
                let r = registry_retry(source, || {
                    fetch_layer(store, source, &desc, &chain, &diff, &progress, slot)
                });
                progress.finish(slot, r.is_ok());
                if let Err(e) = r {
                    errors.lock().expect("errors").push(e);
                }
            });
        }
    });
    // Every worker is joined here: the scope ends only when they have.
    if let Some(e) = errors.into_inner().expect("errors").into_iter().next() {
        return Err(e);
    }
    store.write_blob(manifest_bytes)?;
    store.write_blob(config_bytes)?;
    let mut size = 0;
    for c in &chains {
        size += store.layer(c)?.map_or(0, |m| m.size);
    }
    let rec = ImageRecord {
        id: img.config.digest.clone(),
        manifest: manifest_digest.clone(),
        names,
        digests,
        created: config.created.clone(),
        size,
        layers: chains,
    };
    let lock = store.lock()?;
    let mut index = store.index()?;
    index.insert(rec);
    store.write_index(&index, &lock)?;
    let rec = index
        .images
        .iter()
        .find(|i| i.id == img.config.digest)
        .cloned()
        .expect("just inserted");
    Ok(rec)
}

fn registry_retry<T>(
    source: &dyn LayerSource,
    mut f: impl FnMut() -> Result<T, PullError>,
) -> Result<T, PullError> {
    let mut delay = std::time::Duration::from_millis(250);
    for attempt in 1.. {
        match f() {
            Err(e) if source.transient(&e) && attempt < registry::ATTEMPTS => {
                std::thread::sleep(delay);
                delay *= 2;
            }
            other => return other,
        }
    }
    unreachable!()
}

/// Download, verify and unpack one layer into a work dir, then commit it.
///
/// From a registry, the compressed bytes are also appended to the blob's
/// partial file (`blobs/.partial/<hex>`, see [`Store::partial`]) as they
/// arrive, so an attempt after a dropped connection, or a later pull after
/// an interrupted one, asks only for the rest (`Range: bytes=N-`). The
/// unpack then reads the kept bytes first and the rest from the network:
/// the work dir always starts empty and the blob digest always covers the
/// whole blob, so a resumed layer is verified exactly like a fresh one. A
/// resumed blob that does not match its digest loses its partial and is
/// downloaded again from zero.
fn fetch_layer(
    store: &Store,
    source: &dyn LayerSource,
    desc: &Descriptor,
    chain: &Digest,
    diff: &Digest,
    progress: &Progress,
    slot: usize,
) -> Result<(), PullError> {
    let partial = if source.resumable() {
        store.partial(&desc.digest)?
    } else {
        None
    };
    let mut have = partial.as_ref().map_or(0, |p| p.downloaded());
    if have > desc.size {
        // More than the blob can be: worthless.
        if let Some(p) = &partial {
            p.truncate(0)?;
        }
        have = 0;
    }
    let tmp = store.new_tmp()?;
    let result = (|| {
        let fs = tmp.join("fs");
        std::fs::create_dir(&fs)
            .map_err(|e| PullError::Other(format!("cannot create {}: {e}", fs.display())))?;
        progress.restart(slot);
        let (body, start) = if have > 0 && have == desc.size {
            (Box::new(std::io::empty()) as Box<dyn Read + Send>, have)
        } else {
            source.open(desc, have)?
        };
        if let Some(p) = &partial {
            if start < have {
                // The source sends the whole blob again.
                p.truncate(0)?;
            }
        }
        progress.resumed(slot, start);
        let kept = Kept {
            file: partial.as_ref().filter(|_| start > 0).map(|p| &p.file),
            pos: 0,
            end: start,
        };
        let fresh = Tee {
            inner: Counted {
                inner: body,
                progress,
                slot,
            },
            file: partial.as_ref().map(|p| &p.file),
        };
        let mut hashed = HashReader::new(kept.chain(fresh).take(desc.size + 1));
        let unpacked = unpack::unpack_layer(&mut hashed, &fs);
        // Read to the end so the digest covers the whole blob, even when the
        // unpack stopped early.
        let drained = std::io::copy(&mut hashed, &mut std::io::sink());
        let got = hashed.digest();
        // The digest is decisive once every byte was read: after a clean
        // end, or after the declared size arrived even though the unpack
        // failed (a corrupt kept part makes the tar unreadable, and only
        // the digest tells that from a hostile layer).
        let complete = unpacked.is_ok() && drained.is_ok();
        let whole = drained.is_ok() && hashed.count == desc.size;
        if hashed.count > desc.size || ((complete || whole) && got != desc.digest) {
            if let Some(p) = &partial {
                p.truncate(0)?;
            }
            if start > 0 {
                return Err(PullError::ResumedBadly {
                    digest: desc.digest.clone(),
                });
            }
            return Err(PullError::Registry(RegistryError::DigestMismatch {
                what: "layer",
                registry: "the source".into(),
                expected: desc.digest.to_string(),
                got,
            }));
        }
        if drained.is_ok() && got == desc.digest {
            // The whole blob is here and verified: nothing left to resume,
            // whatever the unpack says.
            if let Some(p) = &partial {
                p.truncate(0)?;
            }
        }
        let (diff_id, stats) = unpacked.map_err(|source| PullError::Unpack {
            digest: desc.digest.clone(),
            source,
        })?;
        drained.map_err(|e| PullError::Unpack {
            digest: desc.digest.clone(),
            source: UnpackError::Stream(e),
        })?;
        if &diff_id != diff {
            return Err(PullError::DiffId {
                digest: desc.digest.clone(),
                want: diff.clone(),
                got: diff_id,
            });
        }
        for dev in &stats.skipped_devices {
            eprintln!("hutch: warning: layer {}: skipped device node /{dev} (hutch never creates devices)", desc.digest.short());
        }
        if let Some((file, name, why)) = &stats.xattr_failed {
            let more = match stats.xattr_failures.saturating_sub(1) {
                0 => String::new(),
                n => format!(" (and {n} more in this layer)"),
            };
            eprintln!(
                "hutch: warning: layer {}: cannot keep extended attribute {name} of /{file}: {why}{more}; the image is kept without it",
                desc.digest.short()
            );
        }
        store.commit_layer(
            &tmp,
            &LayerMeta {
                chain_id: chain.clone(),
                diff_id,
                size: stats.bytes,
            },
        )?;
        Ok(())
    })();
    if result.is_err() {
        let _ = super::store::remove_tree(&tmp);
    }
    if let Some(p) = partial {
        // Emptied above once verified (or found wrong): it goes. Otherwise
        // it holds what arrived before the failure, for the next attempt.
        if p.downloaded() == 0 {
            p.remove();
        }
    }
    result
}

/// The part of a blob kept from an earlier attempt: the partial file's
/// first `end` bytes.
struct Kept<'a> {
    file: Option<&'a std::fs::File>,
    pos: u64,
    end: u64,
}

impl Read for Kept<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        use std::os::unix::fs::FileExt;
        let Some(file) = self.file else {
            return Ok(0);
        };
        let want = (self.end - self.pos).min(buf.len() as u64) as usize;
        if want == 0 {
            return Ok(0);
        }
        let n = file.read_at(&mut buf[..want], self.pos)?;
        if n == 0 {
            // Someone shortened the file under us.
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        self.pos += n as u64;
        Ok(n)
    }
}

/// Appends what passes through to the partial file (opened for append).
struct Tee<'a, R> {
    inner: R,
    file: Option<&'a std::fs::File>,
}

impl<R: Read> Read for Tee<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        if let Some(mut f) = self.file {
            if f.write_all(&buf[..n]).is_err() {
                // A full disk costs the ability to resume, not the pull:
                // stop keeping, and drop what was kept.
                let _ = f.set_len(0);
                self.file = None;
            }
        }
        Ok(n)
    }
}

struct Counted<'a, R> {
    inner: R,
    progress: &'a Progress,
    slot: usize,
}

impl<R: Read> Read for Counted<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.progress.add(self.slot, n as u64);
        Ok(n)
    }
}

/// Progress per layer: redrawn bars on a terminal, one line per finished
/// layer otherwise, nothing with --quiet.
struct Progress {
    layers: Vec<(String, u64)>,
    done: Vec<AtomicU64>,
    tty: bool,
    quiet: bool,
    drawn: Mutex<(bool, std::time::Instant)>,
    state: Arc<Mutex<Vec<u8>>>,
}

impl Progress {
    fn new(jobs: &[(Descriptor, Digest, Digest)], quiet: bool) -> Progress {
        let p = Progress {
            layers: jobs
                .iter()
                .map(|(d, _, _)| (d.digest.short().to_string(), d.size))
                .collect(),
            done: jobs.iter().map(|_| AtomicU64::new(0)).collect(),
            tty: std::io::stderr().is_terminal(),
            quiet,
            drawn: Mutex::new((false, std::time::Instant::now())),
            state: Arc::new(Mutex::new(vec![0; jobs.len()])),
        };
        if !quiet && !p.tty {
            for (d, size) in &p.layers {
                eprintln!("{d}: downloading ({})", human(*size));
            }
        }
        p
    }

    fn restart(&self, slot: usize) {
        self.done[slot].store(0, Ordering::Relaxed);
    }

    /// The download of `slot` continues at byte `start` (0: from scratch).
    fn resumed(&self, slot: usize, start: u64) {
        if start == 0 {
            return;
        }
        self.done[slot].store(start, Ordering::Relaxed);
        if !self.quiet && !self.tty {
            let (d, size) = &self.layers[slot];
            eprintln!("{d}: resuming at {} of {}", human(start), human(*size));
        }
    }

    fn add(&self, slot: usize, n: u64) {
        self.done[slot].fetch_add(n, Ordering::Relaxed);
        if self.tty && !self.quiet {
            self.redraw(false);
        }
    }

    fn finish(&self, slot: usize, ok: bool) {
        self.state.lock().expect("progress")[slot] = if ok { 1 } else { 2 };
        if self.quiet {
            return;
        }
        if self.tty {
            self.redraw(true);
        } else {
            let (d, size) = &self.layers[slot];
            eprintln!(
                "{d}: {} ({})",
                if ok { "done" } else { "failed" },
                human(*size)
            );
        }
    }

    fn redraw(&self, force: bool) {
        let mut drawn = self.drawn.lock().expect("progress");
        if !force && drawn.1.elapsed() < std::time::Duration::from_millis(100) {
            return;
        }
        let state = self.state.lock().expect("progress").clone();
        let mut out = String::new();
        if drawn.0 {
            out.push_str(&format!("\x1b[{}A", self.layers.len()));
        }
        for (i, (d, size)) in self.layers.iter().enumerate() {
            let got = self.done[i].load(Ordering::Relaxed).min(*size);
            let width = 30u64;
            let filled = if *size == 0 {
                width
            } else {
                got * width / size
            };
            let status = match state[i] {
                1 => "done".to_string(),
                2 => "failed".to_string(),
                _ => format!("{}/{}", human(got), human(*size)),
            };
            out.push_str(&format!(
                "\x1b[2K{d}: [{}{}] {status}\n",
                "=".repeat(filled as usize),
                " ".repeat((width - filled) as usize)
            ));
        }
        let _ = std::io::stderr().write_all(out.as_bytes());
        *drawn = (true, std::time::Instant::now());
    }
}

/// 1.2MB, 512kB, 30B.
pub fn human(n: u64) -> String {
    let f = n as f64;
    if f >= 1e9 {
        format!("{:.2}GB", f / 1e9)
    } else if f >= 1e6 {
        format!("{:.1}MB", f / 1e6)
    } else if f >= 1e3 {
        format!("{:.1}kB", f / 1e3)
    } else {
        format!("{n}B")
    }
}
