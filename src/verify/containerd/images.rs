//! Checks 5, 6 and 7: each image's closure (target, host-platform
//! manifest, config, layers have records), its unpacked chain link by link,
//! and the `uncompressed` labels of its layers.

use super::*;
use crate::store::containerd::{ImageConfig, Namespace, SnapRec};

/// The label unpack writes on a layer blob: its diff ID
/// (`core/unpack/unpacker.go`; 1.6 `image.go` `Unpack`).
const LABEL_UNCOMPRESSED: &str = "containerd.io/uncompressed";

/// Checks 5, 6 and 7 per image: closure, chain, `uncompressed` labels.
pub(super) fn images(
    s: &State,
    a: &Analysis<'_>,
    im: &Impacts<'_, '_>,
    out: &mut Vec<Finding>,
    summary: &mut Summary,
) {
    let host = manifest::host_platform();
    // One finding per labelled blob, with every image that uses it.
    let mut labels: BTreeMap<(String, BlobDigest), Finding> = BTreeMap::new();
    for ns in s.scoped() {
        let nsi = a.edges.ns_index(&ns.name).unwrap_or(u32::MAX);
        let mut seen = BTreeSet::new();
        let recs = ns.snapshots.get(s.default_snapshotter());
        for img in ns.images.values() {
            let Some(t) = img.target.digest else { continue };
            if !seen.insert(t) {
                continue;
            }
            summary.images_checked += 1;
            let node: Vec<Node> = a.edges.image_node(nsi, &img.name).into_iter().collect();
            let impact = im.of(&node);
            let closure = |msg: String| {
                let mut f = finding(
                    Check::ImageClosure,
                    SubjectKind::Image,
                    format!("{}/{}", ns.name, img.name),
                    s.paths.meta_db(),
                    msg,
                );
                f.impact = Impact {
                    images: vec![ImageId(t.0)],
                    containers: impact.containers.clone(),
                };
                f
            };
            if !ns.blobs.contains_key(&t) {
                out.push(closure(format!("its target {t} has no blob record")));
                continue;
            }
            let (layers, cfg) = match resolve(s, ns, t, &host) {
                Ok(r) => r,
                Err(Some(msg)) => {
                    out.push(closure(msg));
                    continue;
                }
                Err(None) => continue,
            };
            let chain = ChainId::chain(&cfg.diff_ids);
            let unpacked = chain
                .last()
                .zip(recs)
                .is_some_and(|(top, r)| r.contains_key(&SnapshotKey(top.to_string())));
            for (i, l) in layers.iter().enumerate() {
                let Some(ld) = l.digest else { continue };
                match ns.blobs.get(&ld) {
                    None if unpacked => {} // discarded after the unpack: normal
                    None => out.push(closure(format!(
                        "layer {i} ({ld}) has no blob record and the image is not unpacked"
                    ))),
                    Some(b) => {
                        if let Some(v) = b.labels.get(LABEL_UNCOMPRESSED)
                            && *v != cfg.diff_ids[i].to_string()
                        {
                            let msg = format!(
                                "{}: {LABEL_UNCOMPRESSED} is {v}, but layer {i} of {} has diff ID {}",
                                ns.name, img.name, cfg.diff_ids[i]
                            );
                            let key = (ns.name.clone(), ld);
                            label_finding(&mut labels, key, s, ImageId(t.0), &impact, msg);
                        }
                    }
                }
            }
            // Check 6: an unpacked image's chain, link by link.
            if unpacked
                && let Some(r) = recs
                && let Some(p) = chain_problem(&chain, r)
            {
                let mut f = finding(
                    Check::ImageChain,
                    SubjectKind::Image,
                    format!("{}/{}", ns.name, img.name),
                    s.paths.meta_db(),
                    p,
                );
                f.impact = Impact {
                    images: vec![ImageId(t.0)],
                    containers: impact.containers.clone(),
                };
                out.push(f);
            }
        }
    }
    out.extend(labels.into_values().map(merge));
}

/// The host-platform manifest's layers and config of target `t` (for an
/// index: the one a pull or run would use; others may be absent by design).
/// `Err(Some(why))`: the closure is broken; `Err(None)`: nothing to check
/// here (a missing file is `blob-missing`'s, no host manifest runs nothing).
fn resolve<'s>(
    s: &'s State,
    ns: &Namespace,
    t: BlobDigest,
    host: &manifest::Platform,
) -> Result<(&'s [manifest::Descriptor], &'s ImageConfig), Option<String>> {
    let md = match s.doc(&t) {
        None => return Err(None), // file missing: blob-missing says so
        Some(Doc::Bad { why }) => {
            return Err(Some(format!("its target {t} cannot be parsed: {why}")));
        }
        Some(Doc::Manifest { .. }) => t,
        Some(Doc::Index { manifests }) => {
            let Some(m) = manifests
                .iter()
                .find(|m| manifest::matches_host(m.platform.as_ref(), host))
            else {
                return Err(None); // no manifest for this host: nothing to run
            };
            let Some(md) = m.digest else {
                return Err(None);
            };
            if !ns.blobs.contains_key(&md) {
                return Err(Some(format!(
                    "the {} manifest {md} of its index has no blob record",
                    platform(host)
                )));
            }
            md
        }
        Some(Doc::Config(_)) => {
            return Err(Some(format!("its target {t} is an image config")));
        }
    };
    let (config, layers) = match s.doc(&md) {
        Some(Doc::Manifest { config, layers }) => (config, layers),
        Some(Doc::Bad { why }) => {
            return Err(Some(format!("manifest {md} cannot be parsed: {why}")));
        }
        Some(_) => {
            return Err(Some(format!("{md} is not a manifest")));
        }
        None => return Err(None),
    };
    let Some(cd) = config.digest else {
        return Err(Some(format!(
            "manifest {md} names config {:?}, not a sha256 digest",
            config.raw_digest
        )));
    };
    if !ns.blobs.contains_key(&cd) {
        return Err(Some(format!("config {cd} has no blob record")));
    }
    let cfg = match s.doc(&cd) {
        Some(Doc::Config(c)) => c,
        Some(Doc::Bad { why }) => {
            return Err(Some(format!("config {cd} cannot be parsed: {why}")));
        }
        _ => return Err(None),
    };
    if cfg.diff_ids.len() != layers.len() {
        return Err(Some(format!(
            "config {cd} has {} diff IDs for {} layers",
            cfg.diff_ids.len(),
            layers.len()
        )));
    }
    Ok((layers, cfg))
}

/// One `uncompressed-label` finding per labelled blob: a first image makes
/// it, every other image using the blob joins its impact.
fn label_finding(
    labels: &mut BTreeMap<(String, BlobDigest), Finding>,
    key: (String, BlobDigest),
    s: &State,
    image: ImageId,
    impact: &Impact,
    msg: String,
) {
    if let Some(f) = labels.get_mut(&key) {
        f.impact.images.push(image);
        f.impact
            .containers
            .extend(impact.containers.iter().cloned());
        return;
    }
    let mut f = finding(
        Check::UncompressedLabel,
        SubjectKind::Blob,
        key.1.to_string(),
        s.paths.meta_db(),
        msg,
    );
    f.impact = Impact {
        images: vec![image],
        containers: impact.containers.clone(),
    };
    labels.insert(key, f);
}

/// The first link of an unpacked chain that is no snapshot or has another
/// parent than the previous chain ID.
fn chain_problem(chain: &[ChainId], r: &BTreeMap<SnapshotKey, SnapRec>) -> Option<String> {
    for (i, c) in chain.iter().enumerate() {
        let want = i.checked_sub(1).map(|p| chain[p].to_string());
        match r.get(&SnapshotKey(c.to_string())) {
            None => return Some(format!("chain ID {c} (layer {i}) is no snapshot")),
            Some(rec) if rec.parent.as_ref().map(|p| p.0.clone()) != want => {
                return Some(format!(
                    "snapshot {c} (layer {i}) has parent {}, not {}",
                    rec.parent.as_ref().map_or("none", |p| p.0.as_str()),
                    want.as_deref().unwrap_or("none")
                ));
            }
            _ => {}
        }
    }
    None
}

fn merge(mut f: Finding) -> Finding {
    f.impact.images.sort();
    f.impact.images.dedup();
    f.impact.containers.sort();
    f.impact.containers.dedup();
    f
}

fn platform(p: &manifest::Platform) -> String {
    match &p.variant {
        Some(v) => format!("{}/{}/{v}", p.os, p.architecture),
        None => format!("{}/{}", p.os, p.architecture),
    }
}
