//! The docker-archive format (`docker save` of Engine 20.10 to 24):
//! `manifest.json` (Config, RepoTags, Layers, Parent), `repositories`, the
//! config as `<image ID hex>.json`, and one directory per layer.
//!
//! Engine 20.10 names each layer directory by a legacy v1 ID (a hash of a
//! synthesized v1 config) and adds `VERSION` and `json` files to it; its
//! `docker load` reads only `manifest.json` and the files it names, so the
//! directories here are named by diff ID instead, and a layer shared by
//! several images is written once (20.10 writes a symlink for the second
//! copy). The v1 files are left out: only pre-1.10 loaders, which ignore
//! `manifest.json`, read them. With `--gzip` a layer file is
//! `<diff ID hex>/layer.tar.gz`; `docker load` detects the compression.

use super::{Chosen, Member, split_tag};
use crate::ids::DiffId;
use serde::Serialize;
use std::collections::BTreeMap;

/// `<diff ID hex>/`.
pub(super) fn layer_dir(diff: &DiffId) -> String {
    format!("{}/", diff.hex())
}

/// `<diff ID hex>/layer.tar`, or `layer.tar.gz` when compressed.
pub(super) fn layer_member(diff: &DiffId, gzip: bool) -> String {
    format!("{}/layer.tar{}", diff.hex(), if gzip { ".gz" } else { "" })
}

/// One entry of `manifest.json`, fields in the daemon's order.
#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct ManifestItem {
    pub config: String,
    pub repo_tags: Option<Vec<String>>,
    pub layers: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parent: Option<String>,
}

/// `manifest.json`: one entry per image, layers bottom first. `Parent` is
/// set when the image's parent is saved too (as the daemon's
/// `validatedParentLinks` does), so `docker load` restores the link.
pub(super) fn manifest(
    images: &[Chosen],
    config_path: impl Fn(&Chosen) -> String,
    layer_path: impl Fn(&DiffId) -> String,
) -> Vec<u8> {
    let items: Vec<ManifestItem> = images
        .iter()
        .map(|c| ManifestItem {
            config: config_path(c),
            repo_tags: (!c.tags.is_empty()).then(|| c.tags.clone()),
            layers: c.layers.iter().map(|l| layer_path(&l.diff_id)).collect(),
            parent: c
                .parent
                .filter(|p| images.iter().any(|o| o.id == *p && o.id != c.id))
                .map(|p| p.to_string()),
        })
        .collect();
    let mut out = serde_json::to_vec(&items).expect("manifest serializes");
    out.push(b'\n');
    out
}

/// `repositories`: `{repo: {tag: <top layer name>}}` for tagged images
/// (only pre-1.10 loaders read it); `None` when nothing is tagged.
pub(super) fn repositories(images: &[Chosen]) -> Option<Vec<u8>> {
    let mut repos: BTreeMap<&str, BTreeMap<&str, String>> = BTreeMap::new();
    for c in images {
        let Some(top) = c.layers.last() else { continue };
        for t in &c.tags {
            let (repo, tag) = split_tag(t);
            repos
                .entry(repo)
                .or_default()
                .insert(tag, top.diff_id.hex());
        }
    }
    if repos.is_empty() {
        return None;
    }
    let mut out = serde_json::to_vec(&repos).expect("repositories serializes");
    out.push(b'\n');
    Some(out)
}

/// Everything after the layers: configs, `manifest.json`, `repositories`.
pub(super) fn metadata(images: &[Chosen], gzip: bool) -> Vec<Member> {
    let mut out: Vec<Member> = images
        .iter()
        .map(|c| Member::file(format!("{}.json", c.id.hex()), c.config.clone()))
        .collect();
    out.push(Member::file(
        "manifest.json".into(),
        manifest(
            images,
            |c| format!("{}.json", c.id.hex()),
            |d| layer_member(d, gzip),
        ),
    ));
    if let Some(r) = repositories(images) {
        out.push(Member::file("repositories".into(), r));
    }
    out
}
