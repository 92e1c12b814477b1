//! The JSON blobs an image is made of: indexes (OCI image index, Docker
//! manifest list), manifests (OCI, Docker schema 2) and image configs
//! (`core/images/mediatypes.go`, `core/images/image.go` `Children`,
//! `Manifest`). Read from the content store for every image target in
//! meta.db, and followed to the configs.

use super::paths::Paths;
use crate::ids::{BlobDigest, DiffId};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";

/// The largest JSON blob read (real manifests and configs are kilobytes).
const MAX_JSON: u64 = 64 << 20;

pub fn is_index(mt: &str) -> bool {
    mt == OCI_INDEX || mt == DOCKER_LIST
}

pub fn is_manifest(mt: &str) -> bool {
    mt == OCI_MANIFEST || mt == DOCKER_MANIFEST
}

pub fn is_config(mt: &str) -> bool {
    mt == OCI_CONFIG || mt == DOCKER_CONFIG
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Platform {
    pub os: String,
    pub architecture: String,
    pub variant: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Descriptor {
    pub media_type: String,
    /// `None` when the descriptor's digest is not sha256 (see `raw_digest`).
    pub digest: Option<BlobDigest>,
    pub raw_digest: String,
    pub size: i64,
    pub platform: Option<Platform>,
    pub annotations: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ImageConfig {
    pub created: Option<String>,
    pub os: Option<String>,
    pub architecture: Option<String>,
    pub variant: Option<String>,
    pub diff_ids: Vec<DiffId>,
    pub labels: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Doc {
    Index {
        manifests: Vec<Descriptor>,
    },
    Manifest {
        config: Descriptor,
        layers: Vec<Descriptor>,
    },
    Config(ImageConfig),
    /// Present but not parseable as what its descriptor says.
    Bad {
        why: String,
    },
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawDesc {
    #[serde(default)]
    media_type: String,
    #[serde(default)]
    digest: String,
    #[serde(default)]
    size: i64,
    platform: Option<RawPlatform>,
    #[serde(default)]
    annotations: BTreeMap<String, String>,
}

#[derive(Deserialize)]
struct RawPlatform {
    #[serde(default)]
    os: String,
    #[serde(default)]
    architecture: String,
    variant: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawDoc {
    manifests: Option<Vec<RawDesc>>,
    config: Option<RawDesc>,
    layers: Option<Vec<RawDesc>>,
}

#[derive(Deserialize)]
struct RawConfig {
    created: Option<String>,
    os: Option<String>,
    architecture: Option<String>,
    variant: Option<String>,
    rootfs: Option<RawRootfs>,
    config: Option<RawRunConfig>,
}

#[derive(Deserialize)]
struct RawRootfs {
    #[serde(default)]
    diff_ids: Vec<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct RawRunConfig {
    labels: Option<BTreeMap<String, String>>,
}

fn desc(r: RawDesc) -> Descriptor {
    Descriptor {
        digest: BlobDigest::parse(&r.digest).ok(),
        raw_digest: r.digest,
        media_type: r.media_type,
        size: r.size,
        platform: r.platform.map(|p| Platform {
            os: p.os,
            architecture: p.architecture,
            variant: p.variant.filter(|v| !v.is_empty()),
        }),
        annotations: r.annotations,
    }
}

/// Parses a blob that its descriptor calls `media_type`. An unknown media
/// type is decided by shape, as containerd's `Children` does for the JSON
/// types it knows.
pub fn parse(media_type: &str, bytes: &[u8]) -> Doc {
    if is_config(media_type) {
        return parse_config(bytes);
    }
    let raw: RawDoc = match serde_json::from_slice(bytes) {
        Ok(r) => r,
        Err(e) => {
            return Doc::Bad {
                why: format!("not JSON: {e}"),
            };
        }
    };
    match (raw.manifests, raw.config) {
        (Some(m), _) if !is_manifest(media_type) => Doc::Index {
            manifests: m.into_iter().map(desc).collect(),
        },
        (_, Some(c)) if !is_index(media_type) => Doc::Manifest {
            config: desc(c),
            layers: raw
                .layers
                .unwrap_or_default()
                .into_iter()
                .map(desc)
                .collect(),
        },
        _ => Doc::Bad {
            why: format!("not an index or manifest although its media type is {media_type:?}"),
        },
    }
}

fn parse_config(bytes: &[u8]) -> Doc {
    let raw: RawConfig = match serde_json::from_slice(bytes) {
        Ok(r) => r,
        Err(e) => {
            return Doc::Bad {
                why: format!("not an image config: {e}"),
            };
        }
    };
    let mut diff_ids = Vec::new();
    for d in raw.rootfs.map(|r| r.diff_ids).unwrap_or_default() {
        match DiffId::parse(&d) {
            Ok(d) => diff_ids.push(d),
            Err(_) => {
                return Doc::Bad {
                    why: format!("diff ID {d:?} is not a sha256 digest"),
                };
            }
        }
    }
    Doc::Config(ImageConfig {
        created: raw.created,
        os: raw.os,
        architecture: raw.architecture,
        variant: raw.variant,
        diff_ids,
        labels: raw.config.and_then(|c| c.labels).unwrap_or_default(),
    })
}

/// Reads and parses every document reachable from `targets` (digest and
/// media type) whose blob file exists: indexes → manifests → configs.
pub fn read_all(
    paths: &Paths,
    targets: impl IntoIterator<Item = (BlobDigest, String)>,
    exists: impl Fn(&BlobDigest) -> Option<u64> + Sync,
) -> BTreeMap<BlobDigest, Doc> {
    let mut docs: BTreeMap<BlobDigest, Doc> = BTreeMap::new();
    let mut seen: BTreeSet<BlobDigest> = BTreeSet::new();
    let mut frontier: Vec<(BlobDigest, String)> = targets
        .into_iter()
        .filter(|(d, _)| seen.insert(*d))
        .collect();
    // Three levels at most: index, manifest, config (nested indexes add one each).
    for _ in 0..8 {
        if frontier.is_empty() {
            break;
        }
        let parsed: Vec<(BlobDigest, Doc)> = frontier
            .par_iter()
            .filter_map(|(d, mt)| {
                let size = exists(d)?;
                if size > MAX_JSON {
                    return Some((
                        *d,
                        Doc::Bad {
                            why: format!("{size} bytes: too large for a manifest or config"),
                        },
                    ));
                }
                let doc = match read_exact_size(&paths.blob(d), size) {
                    Ok(b) => parse(mt, &b),
                    Err(e) => Doc::Bad {
                        why: format!("{}: {e}", paths.blob(d).display()),
                    },
                };
                Some((*d, doc))
            })
            .collect();
        frontier.clear();
        for (d, doc) in parsed {
            match &doc {
                Doc::Index { manifests } => {
                    for m in manifests {
                        if let Some(md) = m.digest
                            && (is_manifest(&m.media_type) || is_index(&m.media_type))
                            && seen.insert(md)
                        {
                            frontier.push((md, m.media_type.clone()));
                        }
                    }
                }
                Doc::Manifest { config, .. } => {
                    if let Some(cd) = config.digest
                        && seen.insert(cd)
                    {
                        frontier.push((cd, config.media_type.clone()));
                    }
                }
                Doc::Config(_) | Doc::Bad { .. } => {}
            }
            docs.insert(d, doc);
        }
    }
    docs
}

/// A file whose size the listing already gave: one open and the reads,
/// without the `statx` that `fs::read` makes for its capacity.
fn read_exact_size(path: &std::path::Path, size: u64) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    let mut f = std::fs::File::open(path)?;
    let mut buf = Vec::with_capacity(usize::try_from(size).unwrap_or(0) + 1);
    // `take` bounds the read if the file grew since it was listed.
    (&mut f).take(MAX_JSON + 1).read_to_end(&mut buf)?;
    Ok(buf)
}

/// The platform a containerd on this host matches first
/// (`platforms.DefaultSpec`): linux with this machine's architecture.
pub fn host_platform() -> Platform {
    let (architecture, variant) = match std::env::consts::ARCH {
        "x86_64" => ("amd64", None),
        "aarch64" => ("arm64", Some("v8")),
        "arm" => ("arm", Some("v7")),
        "x86" => ("386", None),
        "powerpc64" => ("ppc64le", None),
        "s390x" => ("s390x", None),
        "riscv64" => ("riscv64", None),
        other => (other, None),
    };
    Platform {
        os: "linux".into(),
        architecture: architecture.into(),
        variant: variant.map(str::to_string),
    }
}

/// Whether a manifest's platform is the host's (`platforms.Only`, which
/// also accepts arm64 without a variant and 32-bit arm variants below it;
/// dockgc compares os and architecture, and the variant when both name one).
pub fn matches_host(p: Option<&Platform>, host: &Platform) -> bool {
    let Some(p) = p else { return false };
    p.os == host.os
        && p.architecture == host.architecture
        && match (&p.variant, &host.variant) {
            (Some(a), Some(b)) => a == b || host.architecture == "arm64",
            _ => true,
        }
}

/// Attestation and other pseudo manifests of an index: BuildKit marks them
/// `vnd.docker.reference.type` and platform `unknown/unknown` (moby
/// `daemon/containerd/image_manifest.go` `IsPseudoImage`).
pub fn is_pseudo(d: &Descriptor) -> bool {
    d.annotations.contains_key("vnd.docker.reference.type")
        || d.platform
            .as_ref()
            .is_some_and(|p| p.os == "unknown" && p.architecture == "unknown")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documents_parse_by_type_and_shape() {
        let d = "sha256:".to_string() + &"a".repeat(64);
        let m = format!(
            r#"{{"schemaVersion":2,"config":{{"mediaType":"{DOCKER_CONFIG}","digest":"{d}","size":3}},"layers":[{{"mediaType":"x","digest":"{d}","size":5}}]}}"#
        );
        match parse(DOCKER_MANIFEST, m.as_bytes()) {
            Doc::Manifest { config, layers } => {
                assert_eq!(config.size, 3);
                assert_eq!(layers.len(), 1);
            }
            other => panic!("{other:?}"),
        }
        let i = format!(
            r#"{{"manifests":[{{"mediaType":"{OCI_MANIFEST}","digest":"{d}","size":9,"platform":{{"os":"linux","architecture":"arm64","variant":"v8"}}}}]}}"#
        );
        match parse("", i.as_bytes()) {
            Doc::Index { manifests } => {
                assert_eq!(
                    manifests[0].platform.as_ref().unwrap().architecture,
                    "arm64"
                )
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(parse(OCI_INDEX, b"{"), Doc::Bad { .. }));
        assert!(matches!(parse(OCI_INDEX, m.as_bytes()), Doc::Bad { .. }));
        let c = format!(r#"{{"os":"linux","rootfs":{{"type":"layers","diff_ids":["{d}"]}}}}"#);
        match parse(OCI_CONFIG, c.as_bytes()) {
            Doc::Config(c) => assert_eq!(c.diff_ids.len(), 1),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn the_host_platform_matches_itself_only() {
        let h = host_platform();
        assert!(matches_host(Some(&h), &h));
        let other = Platform {
            os: "windows".into(),
            ..h.clone()
        };
        assert!(!matches_host(Some(&other), &h));
        assert!(!matches_host(None, &h));
    }
}
