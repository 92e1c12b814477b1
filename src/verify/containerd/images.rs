//! Checks 5, 6 and 7: each image's closure (target, host-platform
//! manifest, config, layers have records), its unpacked chain link by link,
//! and the `uncompressed` labels of its layers.

use super::*;

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
            // The host-platform manifest (for an index: the one a pull or
            // run would use; others may be absent by design).
            let md = match s.doc(&t) {
                None => continue, // file missing: blob-missing says so
                Some(Doc::Bad { why }) => {
                    out.push(closure(format!("its target {t} cannot be parsed: {why}")));
                    continue;
                }
                Some(Doc::Manifest { .. }) => t,
                Some(Doc::Index { manifests }) => {
                    let Some(m) = manifests
                        .iter()
                        .find(|m| manifest::matches_host(m.platform.as_ref(), &host))
                    else {
                        continue; // no manifest for this host: nothing to run
                    };
                    let Some(md) = m.digest else { continue };
                    if !ns.blobs.contains_key(&md) {
                        out.push(closure(format!(
                            "the {} manifest {md} of its index has no blob record",
                            platform(&host)
                        )));
                        continue;
                    }
                    md
                }
                Some(Doc::Config(_)) => {
                    out.push(closure(format!("its target {t} is an image config")));
                    continue;
                }
            };
            let (config, layers) = match s.doc(&md) {
                Some(Doc::Manifest { config, layers }) => (config, layers),
                Some(Doc::Bad { why }) => {
                    out.push(closure(format!("manifest {md} cannot be parsed: {why}")));
                    continue;
                }
                Some(_) => {
                    out.push(closure(format!("{md} is not a manifest")));
                    continue;
                }
                None => continue,
            };
            let Some(cd) = config.digest else {
                out.push(closure(format!(
                    "manifest {md} names config {:?}, not a sha256 digest",
                    config.raw_digest
                )));
                continue;
            };
            if !ns.blobs.contains_key(&cd) {
                out.push(closure(format!("config {cd} has no blob record")));
                continue;
            }
            let cfg = match s.doc(&cd) {
                Some(Doc::Config(c)) => c,
                Some(Doc::Bad { why }) => {
                    out.push(closure(format!("config {cd} cannot be parsed: {why}")));
                    continue;
                }
                _ => continue,
            };
            if cfg.diff_ids.len() != layers.len() {
                out.push(closure(format!(
                    "config {cd} has {} diff IDs for {} layers",
                    cfg.diff_ids.len(),
                    layers.len()
                )));
                continue;
            }
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
                            if let Some(f) = labels.get_mut(&(ns.name.clone(), ld)) {
                                f.impact.images.push(ImageId(t.0));
                                f.impact
                                    .containers
                                    .extend(impact.containers.iter().cloned());
                                continue;
                            }
                            let mut f = finding(
                                Check::UncompressedLabel,
                                SubjectKind::Blob,
                                ld.to_string(),
                                s.paths.meta_db(),
                                format!(
                                    "{}: {LABEL_UNCOMPRESSED} is {v}, but layer {i} of {} has diff ID {}",
                                    ns.name, img.name, cfg.diff_ids[i]
                                ),
                            );
                            f.impact = Impact {
                                images: vec![ImageId(t.0)],
                                containers: impact.containers.clone(),
                            };
                            labels.insert((ns.name.clone(), ld), f);
                        }
                    }
                }
            }
            // Check 6: an unpacked image's chain, link by link.
            if unpacked && let Some(r) = recs {
                for (i, c) in chain.iter().enumerate() {
                    let want = i.checked_sub(1).map(|p| chain[p].to_string());
                    let problem = match r.get(&SnapshotKey(c.to_string())) {
                        None => Some(format!("chain ID {c} (layer {i}) is no snapshot")),
                        Some(rec) if rec.parent.as_ref().map(|p| p.0.clone()) != want => {
                            Some(format!(
                                "snapshot {c} (layer {i}) has parent {}, not {}",
                                rec.parent.as_ref().map_or("none", |p| p.0.as_str()),
                                want.as_deref().unwrap_or("none")
                            ))
                        }
                        _ => None,
                    };
                    if let Some(p) = problem {
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
                        break;
                    }
                }
            }
        }
    }
    out.extend(labels.into_values().map(merge));
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
