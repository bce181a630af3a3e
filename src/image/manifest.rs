//! The JSON documents of an image, parsed from untrusted bytes: manifests
//! (Docker schema 2 and OCI), manifest lists and OCI indexes, and the image
//! config. Sizes are capped before parsing; anything unexpected is refused.

use serde::{Deserialize, Serialize};

use super::reference::Digest;

/// Manifests and indexes larger than this are not real ones (the registry
/// server caps at 4 MiB as well).
pub const MAX_MANIFEST: u64 = 4 << 20;
/// Image configs: a few KiB normally, history can make them bigger.
pub const MAX_CONFIG: u64 = 8 << 20;
/// More layers than this would not fit an overlay mount's options anyway.
pub const MAX_LAYERS: usize = 128;

pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// What hutch asks a registry for, in its order of preference.
pub const ACCEPT: &str = "application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json";

#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("malformed {what}: {reason}")]
    Malformed { what: &'static str, reason: String },
    #[error("unsupported manifest media type {0:?} (hint: hutch reads Docker schema 2 and OCI images; schema 1 is long deprecated)")]
    MediaType(String),
    #[error("no image for platform {wanted} in the index (available: {available}) (hint: pick one with --platform)")]
    NoPlatform { wanted: String, available: String },
    #[error(
        "invalid platform {0:?} (hint: OS/ARCH[/VARIANT], e.g. linux/amd64 or linux/arm64/v8)"
    )]
    BadPlatform(String),
    #[error("the image has {0} layers; hutch stacks at most {MAX_LAYERS}")]
    TooManyLayers(usize),
    #[error("the image's config lists {diff_ids} layer digests but its manifest {layers} layers")]
    LayerCount { diff_ids: usize, layers: usize },
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Platform {
    pub os: String,
    pub architecture: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
}

impl Platform {
    /// The platform of this machine, in the registry's words.
    pub fn host() -> Platform {
        let (architecture, variant) = match std::env::consts::ARCH {
            "x86_64" => ("amd64", None),
            "aarch64" => ("arm64", Some("v8")),
            "x86" => ("386", None),
            "arm" => ("arm", Some("v7")),
            "powerpc64" => ("ppc64le", None),
            other => (other, None),
        };
        Platform {
            os: "linux".into(),
            architecture: architecture.into(),
            variant: variant.map(String::from),
        }
    }

    /// `os/arch[/variant]`
    pub fn parse(s: &str) -> Result<Platform, ManifestError> {
        let parts: Vec<&str> = s.split('/').collect();
        let ok =
            |p: &&str| !p.is_empty() && p.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
        match parts.as_slice() {
            [os, arch] if ok(os) && ok(arch) => Ok(Platform {
                os: os.to_string(),
                architecture: arch.to_string(),
                variant: None,
            }),
            [os, arch, v] if ok(os) && ok(arch) && ok(v) => Ok(Platform {
                os: os.to_string(),
                architecture: arch.to_string(),
                variant: Some(v.to_string()),
            }),
            _ => Err(ManifestError::BadPlatform(s.to_string())),
        }
    }

    fn matches(&self, other: &Platform) -> bool {
        self.os == other.os
            && self.architecture == other.architecture
            && match (&self.variant, &other.variant) {
                (Some(a), Some(b)) => a == b,
                // An index entry without a variant serves every variant.
                _ => true,
            }
    }
}

impl std::fmt::Display for Platform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Descriptor {
    #[serde(rename = "mediaType", default)]
    pub media_type: String,
    pub digest: Digest,
    pub size: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<Platform>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<std::collections::BTreeMap<String, String>>,
}

impl Descriptor {
    /// The image name an OCI layout gives this entry, if any.
    pub fn annotations_name(&self) -> Option<String> {
        let a = self.annotations.as_ref()?;
        a.get("io.containerd.image.name")
            .or_else(|| a.get("org.opencontainers.image.ref.name"))
            .cloned()
    }
}

#[derive(Debug, Clone, Deserialize)]
struct RawManifest {
    #[serde(rename = "schemaVersion")]
    schema_version: Option<u32>,
    #[serde(rename = "mediaType", default)]
    media_type: Option<String>,
    #[serde(default)]
    manifests: Option<Vec<Descriptor>>,
    #[serde(default)]
    config: Option<Descriptor>,
    #[serde(default)]
    layers: Option<Vec<Descriptor>>,
}

/// An image manifest: its config and layers, bottom first.
#[derive(Debug, Clone)]
pub struct ImageManifest {
    pub config: Descriptor,
    pub layers: Vec<Descriptor>,
}

#[derive(Debug, Clone)]
pub enum Manifest {
    Index(Vec<Descriptor>),
    Image(ImageManifest),
}

impl Manifest {
    /// Parse a manifest or index; `content_type` is the registry's header
    /// (or the descriptor's media type), used when the JSON has none.
    pub fn parse(bytes: &[u8], content_type: Option<&str>) -> Result<Manifest, ManifestError> {
        let bad = |reason: String| ManifestError::Malformed {
            what: "manifest",
            reason,
        };
        if bytes.len() as u64 > MAX_MANIFEST {
            return Err(bad(format!(
                "{} bytes, more than {MAX_MANIFEST}",
                bytes.len()
            )));
        }
        let raw: RawManifest = serde_json::from_slice(bytes).map_err(|e| bad(e.to_string()))?;
        if raw.schema_version != Some(2) {
            return Err(ManifestError::MediaType(format!(
                "schemaVersion {:?}",
                raw.schema_version
            )));
        }
        let media = raw
            .media_type
            .clone()
            .or_else(|| content_type.map(|c| c.split(';').next().unwrap_or(c).trim().to_string()))
            .unwrap_or_default();
        let is_index = match media.as_str() {
            DOCKER_LIST | OCI_INDEX => true,
            DOCKER_MANIFEST | OCI_MANIFEST => false,
            // OCI allows the media type to be left out: tell by the fields.
            "" | "application/json" => raw.manifests.is_some(),
            other => return Err(ManifestError::MediaType(other.to_string())),
        };
        if is_index {
            let list = raw
                .manifests
                .ok_or_else(|| bad("an index without manifests".into()))?;
            if list.len() > 1024 {
                return Err(bad("more than 1024 entries in an index".into()));
            }
            return Ok(Manifest::Index(list));
        }
        let config = raw
            .config
            .ok_or_else(|| bad("no config descriptor".into()))?;
        let layers = raw.layers.ok_or_else(|| bad("no layers".into()))?;
        if layers.len() > MAX_LAYERS {
            return Err(ManifestError::TooManyLayers(layers.len()));
        }
        if config.size > MAX_CONFIG {
            return Err(bad(format!("config of {} bytes", config.size)));
        }
        for l in &layers {
            if !is_layer_type(&l.media_type) {
                return Err(bad(format!(
                    "layer {} has media type {:?} (hint: foreign or encrypted layers are not supported)",
                    l.digest, l.media_type
                )));
            }
        }
        Ok(Manifest::Image(ImageManifest { config, layers }))
    }
}

fn is_layer_type(t: &str) -> bool {
    matches!(
        t,
        "application/vnd.docker.image.rootfs.diff.tar.gzip"
            | "application/vnd.docker.image.rootfs.diff.tar"
            | "application/vnd.docker.image.rootfs.diff.tar.zstd"
            | "application/vnd.oci.image.layer.v1.tar"
            | "application/vnd.oci.image.layer.v1.tar+gzip"
            | "application/vnd.oci.image.layer.v1.tar+zstd"
            // docker save archives name no media type
            | ""
    )
}

/// Pick the entry of an index for `want`.
pub fn choose<'a>(
    list: &'a [Descriptor],
    want: &Platform,
) -> Result<&'a Descriptor, ManifestError> {
    list.iter()
        .find(|d| d.platform.as_ref().is_some_and(|p| want.matches(p)))
        .ok_or_else(|| ManifestError::NoPlatform {
            wanted: want.to_string(),
            available: list
                .iter()
                .filter_map(|d| d.platform.as_ref().map(|p| p.to_string()))
                .collect::<Vec<_>>()
                .join(", "),
        })
}

/// The part of an image config that hutch uses.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ImageConfig {
    #[serde(default)]
    pub architecture: String,
    #[serde(default)]
    pub os: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
    #[serde(default)]
    pub config: RunConfig,
    pub rootfs: RootFs,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct RunConfig {
    #[serde(
        rename = "Entrypoint",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub entrypoint: Option<Vec<String>>,
    #[serde(rename = "Cmd", default, skip_serializing_if = "Option::is_none")]
    pub cmd: Option<Vec<String>>,
    #[serde(rename = "Env", default, skip_serializing_if = "Option::is_none")]
    pub env: Option<Vec<String>>,
    #[serde(
        rename = "WorkingDir",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub working_dir: Option<String>,
    #[serde(rename = "User", default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    #[serde(
        rename = "StopSignal",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub stop_signal: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct RootFs {
    #[serde(rename = "type", default)]
    pub kind: String,
    pub diff_ids: Vec<Digest>,
}

impl ImageConfig {
    pub fn parse(bytes: &[u8]) -> Result<ImageConfig, ManifestError> {
        let bad = |reason: String| ManifestError::Malformed {
            what: "image config",
            reason,
        };
        if bytes.len() as u64 > MAX_CONFIG {
            return Err(bad(format!("{} bytes", bytes.len())));
        }
        let c: ImageConfig = serde_json::from_slice(bytes).map_err(|e| bad(e.to_string()))?;
        if c.rootfs.kind != "layers" {
            return Err(bad(format!("rootfs type {:?}", c.rootfs.kind)));
        }
        if c.rootfs.diff_ids.len() > MAX_LAYERS {
            return Err(ManifestError::TooManyLayers(c.rootfs.diff_ids.len()));
        }
        Ok(c)
    }
}

/// Chain ids (OCI image spec): the id of a layer stacked on its parents,
/// bottom first. `chain[0] = diff[0]`, `chain[n] = sha256(chain[n-1] + " " + diff[n])`.
pub fn chain_ids(diff_ids: &[Digest]) -> Vec<Digest> {
    let mut out: Vec<Digest> = Vec::with_capacity(diff_ids.len());
    for d in diff_ids {
        let next = match out.last() {
            None => d.clone(),
            Some(prev) => Digest::of(format!("{prev} {d}").as_bytes()),
        };
        out.push(next);
    }
    out
}

/// A signal name or number from an image's StopSignal.
pub fn parse_signal(s: &str) -> Option<i32> {
    crate::container::record::parse_signal(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(c: char) -> String {
        format!("sha256:{}", c.to_string().repeat(64))
    }

    #[test]
    fn index_and_platform_choice() {
        let json = format!(
            r#"{{"schemaVersion":2,"mediaType":"{OCI_INDEX}","manifests":[
            {{"mediaType":"{OCI_MANIFEST}","digest":"{}","size":10,"platform":{{"os":"linux","architecture":"arm64","variant":"v8"}}}},
            {{"mediaType":"{OCI_MANIFEST}","digest":"{}","size":10,"platform":{{"os":"linux","architecture":"amd64"}}}}]}}"#,
            d('a'),
            d('b')
        );
        let Manifest::Index(list) = Manifest::parse(json.as_bytes(), None).unwrap() else {
            panic!("not an index")
        };
        let amd = Platform::parse("linux/amd64").unwrap();
        assert_eq!(choose(&list, &amd).unwrap().digest.to_string(), d('b'));
        let arm = Platform::parse("linux/arm64/v8").unwrap();
        assert_eq!(choose(&list, &arm).unwrap().digest.to_string(), d('a'));
        let e = choose(&list, &Platform::parse("linux/s390x").unwrap()).unwrap_err();
        assert!(e.to_string().contains("linux/arm64/v8, linux/amd64"), "{e}");
        assert!(Platform::parse("linux").is_err());
    }

    #[test]
    fn manifests_are_checked() {
        let m = format!(
            r#"{{"schemaVersion":2,"mediaType":"{DOCKER_MANIFEST}","config":{{"mediaType":"x","digest":"{}","size":5}},"layers":[{{"mediaType":"application/vnd.docker.image.rootfs.diff.tar.gzip","digest":"{}","size":7}}]}}"#,
            d('c'),
            d('e')
        );
        let Manifest::Image(img) = Manifest::parse(m.as_bytes(), None).unwrap() else {
            panic!()
        };
        assert_eq!(img.layers.len(), 1);
        let foreign = m.replace("rootfs.diff.tar.gzip", "rootfs.foreign.diff.tar.gzip");
        assert!(Manifest::parse(foreign.as_bytes(), None).is_err());
        assert!(Manifest::parse(b"{\"schemaVersion\":1}", None).is_err());
        assert!(Manifest::parse(b"not json", None).is_err());
        let bad_digest = m.replace(&d('e'), "sha256:xyz");
        assert!(Manifest::parse(bad_digest.as_bytes(), None).is_err());
    }

    #[test]
    fn chain_ids_follow_the_spec() {
        let a = Digest::parse(&d('a')).unwrap();
        let b = Digest::parse(&d('b')).unwrap();
        let c = chain_ids(&[a.clone(), b.clone()]);
        assert_eq!(c[0], a);
        assert_eq!(c[1], Digest::of(format!("{a} {b}").as_bytes()));
    }

    #[test]
    fn signals() {
        assert_eq!(parse_signal("SIGTERM"), Some(libc::SIGTERM));
        assert_eq!(parse_signal("QUIT"), Some(libc::SIGQUIT));
        assert_eq!(parse_signal("9"), Some(9));
        assert_eq!(parse_signal("SIGNOPE"), None);
    }
}
