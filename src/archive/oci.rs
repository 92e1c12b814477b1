//! The OCI image layout as `docker save` writes it since Engine 25:
//! `oci-layout`, `index.json` (one manifest descriptor per tag, with the
//! `io.containerd.image.name` and `org.opencontainers.image.ref.name`
//! annotations; one without annotations for an untagged image), every
//! blob under `blobs/sha256/`, plus `manifest.json` and `repositories`
//! pointing into `blobs/`. Those two make the same archive loadable by
//! `docker load` of Engine 20.10 to 24, which reads only `manifest.json`.
//!
//! Layers are uncompressed (`application/vnd.oci.image.layer.v1.tar`, the
//! blob digest is the diff ID) as Engine 25+ writes them, or gzip
//! (`...tar+gzip`, the digest of the compressed blob) with `--gzip`.

use super::docker_archive;
use super::{Chosen, Member, qualified, split_tag};
use crate::ids::{DiffId, Digest};
use serde::Serialize;
use serde_json::Value;
use std::collections::{BTreeMap, HashMap, HashSet};

pub(super) const MEDIA_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub(super) const MEDIA_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub(super) const MEDIA_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub(super) const MEDIA_LAYER: &str = "application/vnd.oci.image.layer.v1.tar";
pub(super) const MEDIA_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";

/// A layer as stored in the layout.
#[derive(Clone, Copy, Debug)]
pub(super) struct Blob {
    pub digest: Digest,
    pub size: u64,
}

pub(super) fn blob_path(d: &Digest) -> String {
    format!("blobs/sha256/{}", d.hex())
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Descriptor {
    media_type: &'static str,
    digest: String,
    size: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    annotations: Option<BTreeMap<&'static str, String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    platform: Option<Value>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Manifest<'a> {
    schema_version: u32,
    media_type: &'static str,
    config: &'a Descriptor,
    layers: Vec<Descriptor>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Index {
    schema_version: u32,
    media_type: &'static str,
    manifests: Vec<Descriptor>,
}

/// The image's platform from its config (`architecture`, `os`,
/// `os.version`, `os.features`, `variant`).
fn platform(config: &[u8]) -> Option<Value> {
    let v: Value = serde_json::from_slice(config).ok()?;
    let mut p = serde_json::Map::new();
    for k in ["architecture", "os", "os.version", "os.features", "variant"] {
        if let Some(x) = v.get(k).filter(|x| !x.is_null() && x.as_str() != Some("")) {
            p.insert(k.to_string(), x.clone());
        }
    }
    (!p.is_empty()).then_some(Value::Object(p))
}

/// Everything after the layer blobs: configs, manifests, `index.json`,
/// `manifest.json`, `repositories`, `oci-layout`.
pub(super) fn metadata(
    images: &[Chosen],
    blobs: &HashMap<DiffId, Blob>,
    gzip: bool,
) -> Vec<Member> {
    let mut out = Vec::new();
    let mut written: HashSet<Digest> = blobs.values().map(|b| b.digest).collect();
    let mut index = Vec::new();
    for c in images {
        let config = Descriptor {
            media_type: MEDIA_CONFIG,
            digest: c.id.to_string(),
            size: c.config.len() as u64,
            annotations: None,
            platform: None,
        };
        let manifest = Manifest {
            schema_version: 2,
            media_type: MEDIA_MANIFEST,
            config: &config,
            layers: c
                .layers
                .iter()
                .map(|l| {
                    let b = blobs[&l.diff_id];
                    Descriptor {
                        media_type: if gzip { MEDIA_LAYER_GZIP } else { MEDIA_LAYER },
                        digest: b.digest.to_string(),
                        size: b.size,
                        annotations: None,
                        platform: None,
                    }
                })
                .collect(),
        };
        let mbytes = serde_json::to_vec(&manifest).expect("manifest serializes");
        let mdigest = Digest::of_bytes(&mbytes);
        if written.insert(c.id.0) {
            out.push(Member::file(blob_path(&c.id.0), c.config.clone()));
        }
        let descriptor = |annotations| Descriptor {
            media_type: MEDIA_MANIFEST,
            digest: mdigest.to_string(),
            size: mbytes.len() as u64,
            annotations,
            platform: platform(&c.config),
        };
        if c.tags.is_empty() {
            index.push(descriptor(None));
        }
        for t in &c.tags {
            let (repo, tag) = split_tag(t);
            index.push(descriptor(Some(BTreeMap::from([
                (
                    "io.containerd.image.name",
                    format!("{}:{tag}", qualified(repo)),
                ),
                ("org.opencontainers.image.ref.name", tag.to_string()),
            ]))));
        }
        if written.insert(mdigest) {
            out.push(Member::file(blob_path(&mdigest), mbytes));
        }
    }
    let idx = Index {
        schema_version: 2,
        media_type: MEDIA_INDEX,
        manifests: index,
    };
    out.push(Member::file(
        "index.json".into(),
        serde_json::to_vec(&idx).expect("index serializes"),
    ));
    out.push(Member::file(
        "manifest.json".into(),
        docker_archive::manifest(
            images,
            |c| blob_path(&c.id.0),
            |d| blob_path(&blobs[d].digest),
        ),
    ));
    if let Some(r) = docker_archive::repositories(images) {
        out.push(Member::file("repositories".into(), r));
    }
    out.push(Member::file(
        "oci-layout".into(),
        br#"{"imageLayoutVersion":"1.0.0"}"#.to_vec(),
    ));
    out
}
