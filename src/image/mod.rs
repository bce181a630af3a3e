//! OCI images: references, the registry client, the content-addressed store
//! and safe layer unpacking.
//!
//! Everything that writes the store (pull, load, rmi, prune) runs in the
//! store helper, a child in a user namespace with the sandbox's id mapping
//! (see [`userns`]); reading it (images, run) needs no helper.

pub mod auth;
#[doc(hidden)]
pub mod fuzzing;
pub mod load;
pub mod manifest;
pub mod pull;
pub mod reference;
pub mod registry;
pub mod store;
pub mod unpack;
pub mod userns;

use std::path::PathBuf;

use manifest::{ImageConfig, ManifestError};
use reference::{Reference, ReferenceError};
use store::{ImageRecord, Store, StoreError};
use userns::UsernsError;

#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error(transparent)]
    Reference(#[from] ReferenceError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Userns(#[from] UsernsError),
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    /// A failure inside the store helper, already rendered.
    #[error("{0}")]
    Helper(String),
    #[error("image {0} is not in the store (hint: `hutch pull {0}`, or run with --pull=missing)")]
    NotFound(String),
    #[error("image {name} is used by container {container} (hint: remove the container first, or rmi -f)")]
    InUse { name: String, container: String },
    #[error(
        "layer {0} of the image is missing from the store (hint: `hutch pull` the image again)"
    )]
    MissingLayer(String),
    #[error("the store's path {0} cannot be an overlay lower dir: {1} (hint: set HUTCH_DATA_DIR to a shorter path without ':' or ',')")]
    LowerDir(PathBuf, &'static str),
}

/// When `hutch run` pulls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PullPolicy {
    Missing,
    Always,
    Never,
}

impl std::str::FromStr for PullPolicy {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "missing" => Ok(PullPolicy::Missing),
            "always" => Ok(PullPolicy::Always),
            "never" => Ok(PullPolicy::Never),
            o => Err(format!(
                "invalid --pull {o:?} (hint: missing, always or never)"
            )),
        }
    }
}

/// Run `work` on the store inside the store helper.
pub fn in_helper<T, F>(work: F) -> Result<T, ImageError>
where
    T: serde::Serialize + serde::de::DeserializeOwned,
    F: FnOnce(&Store) -> Result<T, String>,
{
    let map = userns::store_mapping();
    userns::run(&map, || {
        let store = Store::open().map_err(|e| e.to_string())?;
        work(&store)
    })?
    .map_err(ImageError::Helper)
}

/// Pull `r` into the store (in the store helper).
pub fn pull(r: &Reference, opts: &pull::PullOptions) -> Result<ImageRecord, ImageError> {
    in_helper(|store| pull::pull(store, r, opts).map_err(|e| e.to_string()))
}

/// An image ready to run: its layers (topmost first) and config.
#[derive(Debug, Clone)]
pub struct Runnable {
    pub record: ImageRecord,
    pub config: ImageConfig,
    pub layers: Vec<PathBuf>,
}

/// Find `name` in the store, pulling it as `policy` says.
pub fn prepare(
    name: &str,
    policy: PullPolicy,
    opts: &pull::PullOptions,
) -> Result<Runnable, ImageError> {
    let store = Store::open()?;
    let found = store.index()?.find(name).cloned();
    let record = match (found, policy) {
        (Some(rec), PullPolicy::Missing | PullPolicy::Never) => rec,
        (None, PullPolicy::Never) => return Err(ImageError::NotFound(name.to_string())),
        (_, _) => {
            let r = Reference::parse(name)?;
            pull(&r, opts)?
        }
    };
    let config_bytes = store.read_blob(&record.id, manifest::MAX_CONFIG)?;
    let config = ImageConfig::parse(&config_bytes)?;
    let mut layers = Vec::new();
    for chain in record.layers.iter().rev() {
        if store.layer(chain)?.is_none() {
            return Err(ImageError::MissingLayer(chain.to_string()));
        }
        let dir = store.layer_dir(chain);
        // Overlay's option syntax cannot carry these in a lowerdir.
        if dir.to_string_lossy().contains([':', ',']) {
            return Err(ImageError::LowerDir(dir, "it contains ':' or ','"));
        }
        layers.push(dir);
    }
    // The whole mount option must fit in one page.
    let total: usize = layers.iter().map(|l| l.as_os_str().len() + 1).sum();
    if total > 3500 {
        return Err(ImageError::LowerDir(
            store.root.clone(),
            "the image's layer paths are too long together for one overlay mount",
        ));
    }
    Ok(Runnable {
        record,
        config,
        layers,
    })
}

/// The containers (by id) whose `config.json` names image `rec`.
pub fn containers_using(store: &Store, rec: &ImageRecord) -> Vec<String> {
    let mut out = Vec::new();
    let Ok(dir) = std::fs::read_dir(store.root.join("containers")) else {
        return out;
    };
    for e in dir.flatten() {
        let Ok(bytes) = std::fs::read(e.path().join("config.json")) else {
            continue;
        };
        let Ok(v) = serde_json::from_slice::<serde_json::Value>(&bytes) else {
            continue;
        };
        let Some(image) = v.get("image").and_then(|i| i.as_str()) else {
            continue;
        };
        let hex = image.strip_prefix("sha256:").unwrap_or(image);
        let by_ref = Reference::parse(image).ok().map(|r| r.to_string());
        if hex == rec.id.hex() || rec.names.iter().any(|n| Some(n) == by_ref.as_ref()) {
            out.push(e.file_name().to_string_lossy().into_owned());
        }
    }
    out
}
