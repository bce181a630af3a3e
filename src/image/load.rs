//! `hutch load`: images from an OCI image archive (a tar of an OCI layout:
//! `oci-layout`, `index.json`, `blobs/sha256/...`) or a `docker save`
//! archive (`manifest.json` naming a config and layer tars), with no
//! registry. The archive is untrusted like any layer: it is unpacked with
//! the same confinement into a work dir, and every blob is verified.

use std::io::Read;
use std::path::{Path, PathBuf};

use super::manifest::{self, Descriptor, ImageManifest, Manifest, Platform};
use super::pull::{self, LayerSource, PullError};
use super::reference::{Digest, Reference};
use super::store::{ImageRecord, Store};
use super::unpack;

/// manifest.json and index.json larger than this are not real ones.
const MAX_JSON: u64 = 4 << 20;

struct DirSource {
    /// Layer digest to file holding its (compressed) bytes.
    files: Vec<(Digest, PathBuf)>,
}

impl LayerSource for DirSource {
    fn open(&self, d: &Descriptor, _from: u64) -> Result<(Box<dyn Read + Send>, u64), PullError> {
        let p = self
            .files
            .iter()
            .find(|(x, _)| x == &d.digest)
            .map(|(_, p)| p)
            .ok_or_else(|| PullError::Other(format!("the archive has no blob {}", d.digest)))?;
        let f = std::fs::File::open(p)
            .map_err(|e| PullError::Other(format!("cannot open {}: {e}", p.display())))?;
        Ok((Box::new(f), 0))
    }

    fn transient(&self, _: &PullError) -> bool {
        false
    }
}

fn read_json(dir: &Path, rel: &str) -> Result<Vec<u8>, PullError> {
    let p = inside(dir, rel)?;
    let f = std::fs::File::open(&p)
        .map_err(|e| PullError::Other(format!("the archive's {rel}: {e}")))?;
    super::registry::read_capped(f, MAX_JSON)
        .map_err(|e| PullError::Other(format!("the archive's {rel}: {e}")))
}

/// A path inside the archive named by its own JSON: confined like a tar entry.
fn inside(dir: &Path, rel: &str) -> Result<PathBuf, PullError> {
    let p = Path::new(rel);
    if p.is_absolute()
        || p.components()
            .any(|c| matches!(c, std::path::Component::ParentDir))
    {
        return Err(PullError::Other(format!(
            "the archive names a path outside itself: {rel:?}"
        )));
    }
    let full = dir.join(p);
    // A symlink in the archive must not lead out either.
    let canon = std::fs::canonicalize(&full)
        .map_err(|e| PullError::Other(format!("the archive's {rel}: {e}")))?;
    let root = std::fs::canonicalize(dir).map_err(|e| PullError::Other(e.to_string()))?;
    if !canon.starts_with(&root) {
        return Err(PullError::Other(format!(
            "the archive's {rel:?} leads outside it"
        )));
    }
    Ok(canon)
}

fn blob_path(dir: &Path, d: &Digest) -> Result<PathBuf, PullError> {
    inside(dir, &format!("blobs/sha256/{}", d.hex()))
}

/// Load every image in `archive`; returns their records.
pub fn load(store: &Store, archive: &Path, quiet: bool) -> Result<Vec<ImageRecord>, PullError> {
    let work = store.new_tmp()?;
    let result = (|| {
        let dir = work.join("archive");
        std::fs::create_dir(&dir).map_err(|e| PullError::Other(e.to_string()))?;
        let f = std::fs::File::open(archive)
            .map_err(|e| PullError::Other(format!("cannot open {}: {e} (hint: -i FILE names a tar made by `docker save` or an OCI archive)", archive.display())))?;
        let plain = unpack::decompress(f).map_err(|e| PullError::Other(e.to_string()))?;
        unpack::unpack_tar(plain, &dir).map_err(|source| PullError::Unpack {
            digest: Digest::of(b""),
            source,
        })?;
        if dir.join("index.json").exists() && dir.join("oci-layout").exists() {
            load_oci(store, &dir, quiet)
        } else if dir.join("manifest.json").exists() {
            load_docker(store, &dir, quiet)
        } else {
            Err(PullError::Other(format!(
                "{} is neither an OCI archive (index.json, oci-layout) nor a docker save archive (manifest.json)",
                archive.display()
            )))
        }
    })();
    let _ = super::store::remove_tree(&work);
    result
}

fn load_oci(store: &Store, dir: &Path, quiet: bool) -> Result<Vec<ImageRecord>, PullError> {
    let index = read_json(dir, "index.json")?;
    let Manifest::Index(entries) = Manifest::parse(&index, Some(manifest::OCI_INDEX))? else {
        return Err(PullError::Other("index.json is not an index".into()));
    };
    let mut out = Vec::new();
    for top in &entries {
        let name = top
            .annotations_name()
            .and_then(|n| Reference::parse(&n).ok())
            .filter(|r| r.tag.is_some());
        let read_blob = |d: &Digest| -> Result<Vec<u8>, PullError> {
            let p = blob_path(dir, d)?;
            let f = std::fs::File::open(&p).map_err(|e| PullError::Other(e.to_string()))?;
            let b = super::registry::read_capped(f, MAX_JSON)
                .map_err(|e| PullError::Other(e.to_string()))?;
            if &Digest::of(&b) != d {
                return Err(PullError::Other(format!(
                    "blob {d} in the archive does not match its digest"
                )));
            }
            Ok(b)
        };
        let mut bytes = read_blob(&top.digest)?;
        let mut mdigest = top.digest.clone();
        let mut digests = Vec::new();
        let img = loop {
            match Manifest::parse(&bytes, Some(&top.media_type))? {
                Manifest::Image(m) => break m,
                Manifest::Index(list) => {
                    let e = manifest::choose(&list, &Platform::host())?;
                    if let Some(r) = &name {
                        digests.push(format!("{}@{mdigest}", r.name()));
                    }
                    mdigest = e.digest.clone();
                    bytes = read_blob(&e.digest)?;
                    if digests.len() > 4 {
                        return Err(PullError::Other("indexes nested too deep".into()));
                    }
                }
            }
        };
        let config = read_blob(&img.config.digest)?;
        let files = img
            .layers
            .iter()
            .map(|l| Ok((l.digest.clone(), blob_path(dir, &l.digest)?)))
            .collect::<Result<Vec<_>, PullError>>()?;
        let names = name.iter().map(|r| r.to_string()).collect();
        if let Some(r) = &name {
            digests.push(format!("{}@{mdigest}", r.name()));
        }
        out.push(pull::install(
            store,
            &img,
            &config,
            &bytes,
            &mdigest,
            names,
            digests,
            &DirSource { files },
            quiet,
        )?);
    }
    Ok(out)
}

#[derive(serde::Deserialize)]
struct DockerEntry {
    #[serde(rename = "Config")]
    config: String,
    #[serde(rename = "RepoTags", default)]
    repo_tags: Option<Vec<String>>,
    #[serde(rename = "Layers")]
    layers: Vec<String>,
}

fn load_docker(store: &Store, dir: &Path, quiet: bool) -> Result<Vec<ImageRecord>, PullError> {
    let m = read_json(dir, "manifest.json")?;
    let entries: Vec<DockerEntry> = serde_json::from_slice(&m)
        .map_err(|e| PullError::Other(format!("the archive's manifest.json: {e}")))?;
    let mut out = Vec::new();
    for e in entries {
        let config = read_json(dir, &e.config)?;
        let cfg = manifest::ImageConfig::parse(&config)?;
        if cfg.rootfs.diff_ids.len() != e.layers.len() {
            return Err(manifest::ManifestError::LayerCount {
                diff_ids: cfg.rootfs.diff_ids.len(),
                layers: e.layers.len(),
            }
            .into());
        }
        // A docker archive's layers are identified by what they unpack to;
        // their file digest is computed here and checked again as they are read.
        let mut files = Vec::new();
        let mut layers = Vec::new();
        for l in &e.layers {
            let p = inside(dir, l)?;
            let mut f =
                std::fs::File::open(&p).map_err(|err| PullError::Other(format!("{l}: {err}")))?;
            let mut h = unpack::HashReader::new(&mut f);
            std::io::copy(&mut h, &mut std::io::sink())
                .map_err(|err| PullError::Other(format!("{l}: {err}")))?;
            let d = h.digest();
            layers.push(Descriptor {
                media_type: "application/vnd.docker.image.rootfs.diff.tar".into(),
                digest: d.clone(),
                size: h.count,
                platform: None,
                annotations: None,
            });
            files.push((d, p));
        }
        let config_desc = Descriptor {
            media_type: "application/vnd.docker.container.image.v1+json".into(),
            digest: Digest::of(&config),
            size: config.len() as u64,
            platform: None,
            annotations: None,
        };
        // The store keeps a manifest for every image: write the one a
        // registry would have served.
        let manifest_json = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": manifest::DOCKER_MANIFEST,
            "config": config_desc,
            "layers": layers,
        });
        let mbytes = serde_json::to_vec(&manifest_json).expect("json");
        let mdigest = Digest::of(&mbytes);
        let img = ImageManifest {
            config: config_desc,
            layers,
        };
        let names: Vec<String> = e
            .repo_tags
            .unwrap_or_default()
            .iter()
            .filter_map(|t| Reference::parse(t).ok())
            .map(|r| r.to_string())
            .collect();
        out.push(pull::install(
            store,
            &img,
            &config,
            &mbytes,
            &mdigest,
            names,
            vec![],
            &DirSource { files },
            quiet,
        )?);
    }
    Ok(out)
}
