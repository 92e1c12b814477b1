//! Quick checks: metadata only, from the Snapshot and the graph.

use super::select::Scope;
use super::{Check, Finding, Impact, Subject, SubjectKind};
use crate::disk::docker_size;
use crate::graph::Graph;
use crate::ids::{ChainId, ImageId, MountId};
use crate::leftovers::{self, OrphanKind, Subject as Left};
use crate::store::Layer;
use crate::store::graphdriver::{DriverDir, LinkTarget, fnv1a};
use crate::store::{Anomaly, AnomalyKind};
use rayon::prelude::*;
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

pub fn finding(
    check: Check,
    kind: SubjectKind,
    id: String,
    path: PathBuf,
    message: String,
) -> Finding {
    Finding {
        check,
        severity: check.severity(),
        subject: Subject { kind, id },
        path,
        message,
        impact: Impact::default(),
    }
}

pub fn layer_finding(check: Check, chain: ChainId, path: PathBuf, message: String) -> Finding {
    finding(check, SubjectKind::Layer, chain.to_string(), path, message)
}

/// The name of the path component `up` levels above the file (0 = the file).
fn component(path: &Path, up: usize) -> Option<String> {
    path.ancestors()
        .nth(up)
        .and_then(|p| p.file_name())
        .map(|n| n.to_string_lossy().into_owned())
}

fn from_anomaly(a: &Anomaly) -> Finding {
    let image = |up| {
        component(&a.path, up)
            .and_then(|h| ImageId::from_hex(&h))
            .map(|i| (SubjectKind::Image, i.to_string()))
    };
    let layer = |up| {
        component(&a.path, up)
            .and_then(|h| ChainId::from_hex(&h))
            .map(|c| (SubjectKind::Layer, c.to_string()))
    };
    let path_subject = || (SubjectKind::Path, a.path.display().to_string());
    let (check, subject) = match a.kind {
        AnomalyKind::ConfigDigest => (Check::ConfigDigest, image(0)),
        AnomalyKind::ConfigParse => (Check::ConfigParse, image(0)),
        AnomalyKind::ImageMetadata => (Check::ImageParent, image(1)),
        AnomalyKind::Refs => (Check::Refs, None),
        AnomalyKind::LayerFiles => (Check::LayerFiles, layer(1)),
        AnomalyKind::Loop => (Check::LayerFiles, layer(0)),
        AnomalyKind::ImageNotLoaded => (Check::LayerChain, image(0)),
        AnomalyKind::Mount => (
            Check::Mounts,
            component(&a.path, 1).map(|m| (SubjectKind::Mount, m)),
        ),
        AnomalyKind::Container => (
            Check::ContainerConfig,
            component(&a.path, 1).map(|c| (SubjectKind::Container, c)),
        ),
        AnomalyKind::DriverDir => (Check::DriverDir, None),
        AnomalyKind::Link => (Check::DanglingLink, None),
        AnomalyKind::Unreadable
        | AnomalyKind::Buildkit
        | AnomalyKind::Volumes
        | AnomalyKind::Containerd => (Check::Unreadable, None),
    };
    let (kind, id) = subject.unwrap_or_else(path_subject);
    finding(check, kind, id, a.path.clone(), a.message.clone())
}

pub fn quick(g: &Graph, scope: &Scope) -> Vec<Finding> {
    let snap = g.snap;
    let gd = g.gd;
    let paths = &gd.paths;
    let mut out: Vec<Finding> = snap.anomalies.iter().map(from_anomaly).collect();

    // Images whose config file exists, even if it is damaged (those have their
    // own finding; a reference to them is not also a dangling reference).
    let mut present: HashSet<ImageId> = snap.images.keys().copied().collect();
    present.extend(
        snap.anomalies
            .iter()
            .filter(|a| matches!(a.kind, AnomalyKind::ConfigDigest | AnomalyKind::ConfigParse))
            .filter_map(|a| component(&a.path, 0).and_then(|h| ImageId::from_hex(&h))),
    );
    let broken: HashSet<ChainId> = gd.broken_layers.iter().map(|b| b.chain_id).collect();
    let layer_exists = |c: &ChainId| snap.layers.contains_key(c) || broken.contains(c);

    for img in snap.images.values() {
        if let Some(p) = img.parent
            && !present.contains(&p)
        {
            out.push(finding(
                Check::ImageParent,
                SubjectKind::Image,
                img.id.to_string(),
                paths.image_metadata(&img.id).join("parent"),
                format!("parent {p} does not exist"),
            ));
        }
        let chain = g.chain(&img.id);
        let missing: Vec<(usize, &ChainId)> = chain
            .iter()
            .enumerate()
            .filter(|(_, c)| !layer_exists(c))
            .collect();
        if let Some((i, c)) = missing.first() {
            out.push(finding(
                Check::LayerChain,
                SubjectKind::Image,
                img.id.to_string(),
                paths.image_config(&img.id),
                format!(
                    "layer {c} (diff_ids[{i}] = {}) is missing from layerdb{}; the daemon does not load this image",
                    img.diff_ids[*i],
                    if missing.len() > 1 {
                        format!(", and {} more", missing.len() - 1)
                    } else {
                        String::new()
                    }
                ),
            ));
        }
    }

    for r in &snap.refs {
        if !present.contains(&r.image) {
            out.push(finding(
                Check::Refs,
                SubjectKind::Reference,
                r.reference.clone(),
                paths.repositories_json(),
                format!("names image {} which does not exist", r.image),
            ));
        }
    }

    layer_checks(g, &layer_exists, &mut out);
    mount_checks(g, &present, &mut out);
    leftover_warnings(g, &mut out);
    buildkit_checks(g, &mut out);

    if !scope.all {
        out.retain(|f| match f.subject.kind {
            SubjectKind::Image => {
                ImageId::parse(&f.subject.id).is_ok_and(|i| scope.images.contains(&i))
            }
            SubjectKind::Layer => {
                ChainId::parse(&f.subject.id).is_ok_and(|c| scope.layers.contains(&c))
            }
            _ => false,
        });
    }
    out
}

/// Per layer: its chain ID, and its driver dir with link and `lower`.
fn layer_checks(
    g: &Graph,
    layer_exists: &(dyn Fn(&ChainId) -> bool + Sync),
    out: &mut Vec<Finding>,
) {
    // The one check across layers first (in layer order, as the daemon
    // would meet them); then each layer's own checks, in parallel: 30,000
    // layers' stats of driver dirs and `lower` comparisons.
    let mut cache_owner: HashMap<&str, ChainId> = HashMap::new();
    let shared_with: Vec<Option<ChainId>> = (g.snap.layers.values())
        .map(|l| {
            let cache = g.gd.cache_id(&l.chain_id)?;
            cache_owner.insert(cache.0.as_str(), l.chain_id)
        })
        .collect();
    let layers: Vec<&Layer> = g.snap.layers.values().collect();
    let per_layer: Vec<Vec<Finding>> = layers
        .par_iter()
        .zip(shared_with)
        .map(|(l, other)| {
            let mut out = Vec::new();
            chain_checks(g, l, layer_exists, &mut out);
            let Some(cache) = g.gd.cache_id(&l.chain_id).map(|c| c.0.as_str()) else {
                return out;
            };
            if let Some(other) = other {
                out.push(layer_finding(
                    Check::DriverDir,
                    l.chain_id,
                    g.gd.paths.layer(&l.chain_id).join("cache-id"),
                    format!("cache-id {cache} is also the cache-id of layer {other}"),
                ));
            }
            driver_dir_checks(g, l, cache, &mut out);
            out
        })
        .collect();
    out.extend(per_layer.into_iter().flatten());
}

/// The chain ID recomputed from `parent` and `diff`, as the daemon's
/// `registerWithDescriptor` computes it, and the parent's existence.
fn chain_checks(
    g: &Graph,
    l: &Layer,
    layer_exists: &(dyn Fn(&ChainId) -> bool + Sync),
    out: &mut Vec<Finding>,
) {
    let dir = g.gd.paths.layer(&l.chain_id);
    let expected = ChainId::child(l.parent.as_ref(), &l.diff_id);
    if expected != l.chain_id {
        out.push(layer_finding(
            Check::ChainId,
            l.chain_id,
            dir.join(if l.parent.is_some() { "parent" } else { "diff" }),
            format!(
                "chain ID recomputed from parent and diff is {expected}, not the directory name"
            ),
        ));
    }
    if let Some(p) = l.parent
        && !layer_exists(&p)
    {
        out.push(layer_finding(
            Check::ChainId,
            l.chain_id,
            dir.join("parent"),
            format!("parent layer {p} does not exist"),
        ));
    }
}

/// The layer's driver dir has `diff/`, a `link` whose `l/` symlink points
/// back at it, and the `lower` overlay2 wrote for it.
fn driver_dir_checks(g: &Graph, l: &Layer, cache: &str, out: &mut Vec<Finding>) {
    let gd = g.gd;
    let paths = &gd.paths;
    let lf = |check, path: PathBuf, msg: String| layer_finding(check, l.chain_id, path, msg);
    let Some(d) = gd.dirs.get(cache).filter(|d| d.is_dir) else {
        out.push(lf(
            Check::DriverDir,
            paths.dir(cache),
            "the layer's driver directory (its cache-id) is missing".into(),
        ));
        return;
    };
    if !d.has_diff {
        out.push(lf(
            Check::DriverDir,
            paths.diff(cache),
            "diff/ is missing".into(),
        ));
    }
    match &d.link {
        None => out.push(lf(
            Check::DriverDir,
            paths.link_file(cache),
            "link file is missing".into(),
        )),
        Some(link) => match gd.links.get(link) {
            None => out.push(lf(
                Check::DriverDir,
                paths.link(link),
                format!("l/{link} is missing"),
            )),
            Some(lk) if lk.target != LinkTarget::DriverDir(cache.into()) => out.push(lf(
                Check::DriverDir,
                paths.link(link),
                format!("l/{link} does not point to ../{cache}/diff"),
            )),
            Some(lk) if !lk.resolves => out.push(lf(
                Check::DriverDir,
                paths.link(link),
                format!("l/{link} does not resolve"),
            )),
            Some(_) => {}
        },
    }
    lower_check(g, l, cache, d, out);
}

/// `lower` is `l/<parent's link>` followed by the parent's own `lower`
/// (moby `daemon/graphdriver/overlay2/overlay.go` `create`, `getLower`).
/// The parent is the dir the layer was created on: for a layer BuildKit
/// registered (its cache-id is BuildKit's dir), the snapshot its adapter
/// recorded as the parent, which may be BuildKit's own copy of the parent
/// layer's dir (a `--no-cache` rebuild of an equal layer); else the parent
/// layer's dir.
fn lower_check(g: &Graph, l: &Layer, cache: &str, d: &DriverDir, out: &mut Vec<Finding>) {
    let path = g.gd.paths.dir(cache).join("lower");
    let lf = |msg: String| layer_finding(Check::DriverDir, l.chain_id, path.clone(), msg);
    let layer_parent = l.parent.and_then(|p| g.gd.layer_dir(&p));
    let parent = buildkit_parent(g, cache).or(layer_parent);
    match (l.parent, &d.lower, parent) {
        (None, Some(_), _) => out.push(lf("a base layer has a lower file".into())),
        (Some(_), None, _) => out.push(lf("lower file is missing".into())),
        (Some(_), Some(lower), Some((pname, pd))) => {
            let want_first = pd.link.as_ref().map(|k| format!("l/{k}"));
            let want_tail = pd.lower.as_ref().map_or(fnv1a(b""), |x| x.hash);
            if want_first.as_deref() != Some(lower.first.as_str())
                && !buildkit_copy_of(g, &lower.first, pname, pd)
            {
                out.push(lf(format!(
                    "lower starts with {}, not the parent's link {}",
                    lower.first,
                    want_first.unwrap_or_else(|| "(none)".into())
                )));
            } else if lower.tail_hash != want_tail {
                out.push(lf(
                    "lower does not continue with the parent layer's lower".into()
                ));
            }
        }
        _ => {}
    }
}

/// The dir BuildKit's adapter created `cache` on (`Prepare(key, parent)`),
/// from `snapshots.db`: the parent snapshot's dir.
fn buildkit_parent<'g>(g: &'g Graph, cache: &str) -> Option<(&'g str, &'g DriverDir)> {
    let bk = &g.gd.buildkit;
    let parent = bk.snapshots.get(cache)?.parent.as_deref()?;
    let name = bk.dir_of(parent, &g.gd.cache_ids)?;
    g.gd.dirs.get_key_value(name).map(|(n, d)| (n.as_str(), d))
}

/// `first` (`l/<link>`) names a BuildKit dir stacked exactly as the parent
/// dir is: BuildKit's copy of the parent, whose record a `builder prune` took.
fn buildkit_copy_of(g: &Graph, first: &str, parent: &str, pd: &DriverDir) -> bool {
    let Some(x) = first
        .strip_prefix("l/")
        .and_then(|link| g.gd.links.get(link))
        .and_then(|l| match &l.target {
            LinkTarget::DriverDir(x) => Some(x.as_str()),
            _ => None,
        })
    else {
        return false;
    };
    let Some(xd) = g.gd.dirs.get(x) else {
        return false;
    };
    x != parent
        && crate::ids::is_buildkit_key(x)
        && xd.has_diff
        && xd.lower.as_ref().map(|l| l.hash) == pd.lower.as_ref().map(|l| l.hash)
}

fn mount_checks(g: &Graph, present: &HashSet<ImageId>, out: &mut Vec<Finding>) {
    let snap = g.snap;
    let gd = g.gd;
    let paths = &gd.paths;
    for m in gd.mounts.values() {
        let dir = paths.mount(&m.name);
        let mf = |path: PathBuf, msg: String| {
            finding(Check::Mounts, SubjectKind::Mount, m.name.clone(), path, msg)
        };
        let has = |id: &MountId| {
            gd.dirs
                .get(id.0.as_str())
                .is_some_and(|d| d.is_dir && d.has_diff)
        };
        if !has(&m.mount_id) {
            out.push(mf(
                paths.dir(&m.mount_id.0),
                "the RW layer's directory (mount-id) is missing or has no diff/".into(),
            ));
        }
        if let Some(i) = &m.init_id
            && !has(i)
        {
            out.push(mf(
                paths.dir(&i.0),
                "the init layer's directory (init-id) is missing or has no diff/".into(),
            ));
        }
        if let Some(p) = m.parent
            && !snap.layers.contains_key(&p)
        {
            out.push(mf(
                dir.join("parent"),
                format!("parent layer {p} does not exist"),
            ));
        }
    }
    for c in snap.containers.values() {
        let cfg = paths.docker().container_config(&c.id);
        match gd.mounts.get(&c.id.0) {
            None => out.push(finding(
                Check::Mounts,
                SubjectKind::Container,
                c.id.0.clone(),
                paths.mount(&c.id.0),
                "the container's RW layer (layerdb/mounts entry) is missing".into(),
            )),
            Some(m) => {
                let top = c.image.and_then(|i| g.chain(&i).last().copied());
                if c.image.is_some_and(|i| snap.images.contains_key(&i)) && m.parent != top {
                    out.push(finding(
                        Check::Mounts,
                        SubjectKind::Container,
                        c.id.0.clone(),
                        paths.mount(&c.id.0).join("parent"),
                        "the RW layer's parent is not the top layer of the container's image"
                            .into(),
                    ));
                }
            }
        }
        let own = c.image.iter().map(|i| (i, c.id.0.as_str()));
        let mounted = c.image_mounts.iter().map(|(i, m)| (i, m.as_str()));
        for (img, mount) in own.chain(mounted) {
            if present.contains(img) {
                continue;
            }
            // `docker rmi -f` of an image a stopped container uses removes
            // the config and references; the RW layer keeps the layers
            // below, and the container starts. Only without them is it broken.
            let (check, message) = if starts_without_image(g, mount) {
                (
                    Check::ImageRemoved,
                    format!(
                        "image {img} was removed (docker rmi -f); the container's RW layer \
                         still holds the layers it runs on"
                    ),
                )
            } else {
                (
                    Check::ContainerImage,
                    format!(
                        "image {img} does not exist, and the container's RW layer does not hold its layers"
                    ),
                )
            };
            out.push(finding(
                check,
                SubjectKind::Container,
                c.id.0.clone(),
                cfg.clone(),
                message,
            ));
        }
    }
}

/// The RW layer `mount` exists with its dirs, on a parent layer that loads.
fn starts_without_image(g: &Graph, mount: &str) -> bool {
    let has = |id: &crate::ids::MountId| g.gd.dirs.get(id.0.as_str()).is_some_and(|d| d.has_diff);
    g.gd.mounts.get(mount).is_some_and(|m| {
        has(&m.mount_id)
            && m.init_id.as_ref().is_none_or(has)
            && m.parent.is_none_or(|p| g.is_loadable(&p))
    })
}

/// BuildKit's records against its snapshots, and its snapshots against the
/// driver dirs: warnings, since a build only redoes what is missing.
fn buildkit_checks(g: &Graph, out: &mut Vec<Finding>) {
    let bk = &g.gd.buildkit;
    let db = g.gd.paths.docker().buildkit();
    let exists = |key: &str| {
        bk.snapshots.contains_key(key)
            || bk
                .layer_of(key)
                .is_some_and(|c| g.snap.layers.contains_key(&c))
    };
    let mut seen = HashSet::new();
    for id in crate::buildcache::loaded(g.snap, bk) {
        let r = &bk.records[id];
        let key = bk.snapshot_key(id);
        if r.blob_only {
            continue; // lazy: no snapshot until it is used
        }
        if !exists(key) {
            out.push(finding(
                Check::BuildkitRecord,
                SubjectKind::Path,
                id.to_string(),
                db.join("metadata_v2.db"),
                format!("cache record {id}: its snapshot {key} is missing"),
            ));
            continue;
        }
        let mut todo = vec![key];
        while let Some(k) = todo.pop() {
            if !seen.insert(k) {
                continue;
            }
            let Some(s) = bk.snapshots.get(k) else {
                if let Some(c) = bk.layer_of(k).filter(|c| !g.snap.layers.contains_key(c)) {
                    out.push(buildkit_snapshot(
                        &db,
                        k,
                        format!("its layer {c} is missing"),
                    ));
                }
                continue;
            };
            let dirs = s
                .has_own_dir()
                .then_some(k)
                .into_iter()
                .chain(s.committed.as_deref());
            for d in dirs {
                if !g.gd.dirs.contains_key(d) {
                    out.push(buildkit_snapshot(
                        &db,
                        k,
                        format!(
                            "its driver dir {} is gone",
                            g.gd.paths.rel(&g.gd.paths.dir(d)).display()
                        ),
                    ));
                }
            }
            todo.extend(s.committed.as_deref());
            todo.extend(s.parent.as_deref().filter(|p| !p.is_empty()));
        }
    }
}

fn buildkit_snapshot(db: &std::path::Path, key: &str, why: String) -> Finding {
    finding(
        Check::BuildkitSnapshot,
        SubjectKind::Path,
        key.to_string(),
        db.join("snapshots.db"),
        format!("BuildKit snapshot {key}: {why}"),
    )
}

/// The store's leftovers ([`leftovers::collect`]), as warnings: the same
/// items df lists and `prune --orphans` removes. Broken entries are not
/// repeated here: their anomaly is already an error.
fn leftover_warnings(g: &Graph, out: &mut Vec<Finding>) {
    for x in leftovers::collect(g) {
        let check = match (x.kind, &x.subject) {
            (OrphanKind::DriverDir | OrphanKind::Probe, _) => Check::OrphanDir,
            (OrphanKind::Unknown, Left::Dir { .. }) => Check::UnknownDir,
            (OrphanKind::UnreferencedLayer, _) => Check::UnreferencedLayer,
            (OrphanKind::Mount, _) => Check::OrphanMount,
            (OrphanKind::PendingRemoval, _) => Check::Removing,
            (OrphanKind::WriteSet, _) => Check::WriteSet,
            (OrphanKind::DanglingLink, _) => Check::DanglingLink,
            (OrphanKind::BrokenLayer | OrphanKind::Unknown, _) => continue,
        };
        let (kind, id) = match &x.subject {
            Left::Layer { chain_id } => (SubjectKind::Layer, chain_id.to_string()),
            Left::Mount { name } => (SubjectKind::Mount, name.clone()),
            _ => (SubjectKind::Path, x.path.display().to_string()),
        };
        out.push(finding(check, kind, id, x.path, x.reason));
    }
}

/// `--sizes`: a layer whose `size` file disagrees with `directory.Size` of its `diff/`.
pub fn sizes(g: &Graph, scope: &Scope) -> Vec<Finding> {
    let snap = g.snap;
    let gd = g.gd;
    scope
        .layers
        .par_iter()
        .filter_map(|c| snap.layers.get(c))
        .filter_map(|l| {
            let (name, d) = gd.layer_dir(&l.chain_id)?;
            if !d.has_diff {
                return None;
            }
            let diff = gd.paths.diff(name);
            let walked = docker_size(&diff);
            (walked != l.size).then(|| {
                layer_finding(
                    Check::SizeMismatch,
                    l.chain_id,
                    diff,
                    format!("size file says {} bytes, diff/ holds {walked}", l.size),
                )
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph::tests::*;
    use crate::ids::{DiffId, Digest};
    use crate::store::Snapshot;
    use crate::store::graphdriver::{Link, Lower};
    use crate::verify::select;

    /// A consistent two-layer image with links and lowers, plus a container.
    fn healthy() -> (Snapshot, ImageId) {
        let mut s = empty_snapshot();
        let img = add_image(&mut s, &[1, 2], 10, None);
        tag(&mut s, "app:1", img);
        let chain = ChainId::chain(&s.images[&img].diff_ids);
        for (i, c) in chain.iter().enumerate() {
            let name = c.hex();
            let link = format!("LINK{i}");
            let d = gd(&mut s).dirs.get_mut(name.as_str()).unwrap();
            d.link = Some(link.as_str().into());
            if i > 0 {
                d.lower = Some(Box::new(Lower::parse("l/LINK0")));
            }
            gd(&mut s).links.insert(
                link.as_str().into(),
                Link {
                    target: LinkTarget::DriverDir(name.as_str().into()),
                    resolves: true,
                },
            );
        }
        add_container(&mut s, 3, img, false);
        (s, img)
    }

    fn checks_of(s: &Snapshot) -> Vec<(Check, String)> {
        let g = Graph::build(s);
        let scope = select::scope(&g, &[]).unwrap();
        let mut v: Vec<(Check, String)> = quick(&g, &scope)
            .into_iter()
            .map(|f| (f.check, f.subject.id))
            .collect();
        v.sort();
        v
    }

    #[test]
    fn a_healthy_store_has_no_findings() {
        let (s, _) = healthy();
        assert_eq!(checks_of(&s), vec![]);
    }

    #[test]
    fn each_damage_fires_its_check() {
        let (s0, img) = healthy();
        let chain = ChainId::chain(&s0.images[&img].diff_ids);

        let mut s = s0.clone();
        s.layers.get_mut(&chain[1]).unwrap().diff_id = DiffId(Digest::of_bytes(b"other"));
        assert_eq!(checks_of(&s), vec![(Check::ChainId, chain[1].to_string())]);

        let mut s = s0.clone();
        gd(&mut s).dirs.remove(chain[0].hex().as_str());
        assert_eq!(
            checks_of(&s),
            vec![(Check::DriverDir, chain[0].to_string())]
        );

        let mut s = s0.clone();
        gd(&mut s)
            .dirs
            .get_mut(chain[1].hex().as_str())
            .unwrap()
            .lower = Some(Box::new(Lower::parse("l/WRONG")));
        assert_eq!(
            checks_of(&s),
            vec![(Check::DriverDir, chain[1].to_string())]
        );

        let mut s = s0.clone();
        gd(&mut s)
            .dirs
            .get_mut(chain[1].hex().as_str())
            .unwrap()
            .lower = Some(Box::new(Lower::parse("l/LINK0:l/EXTRA")));
        assert_eq!(
            checks_of(&s),
            vec![(Check::DriverDir, chain[1].to_string())]
        );

        let mut s = s0.clone();
        gd(&mut s).links.get_mut("LINK1").unwrap().target =
            LinkTarget::DriverDir("elsewhere".into());
        assert_eq!(
            checks_of(&s),
            vec![(Check::DriverDir, chain[1].to_string())]
        );

        let mut s = s0.clone();
        let ghost = ImageId(Digest::of_bytes(b"ghost"));
        tag(&mut s, "ghost:1", ghost);
        assert_eq!(checks_of(&s), vec![(Check::Refs, "ghost:1".into())]);

        let mut s = s0.clone();
        s.images.get_mut(&img).unwrap().parent = Some(ghost);
        assert_eq!(checks_of(&s), vec![(Check::ImageParent, img.to_string())]);

        let mut s = s0.clone();
        s.containers.values_mut().next().unwrap().image = Some(ghost);
        // Force-removed under a container whose RW layer holds its layers: a warning.
        let got = checks_of(&s);
        assert_eq!(got.len(), 1, "{got:?}");
        assert_eq!(got[0].0, Check::ImageRemoved);
        // Without the layers below the RW layer it cannot start: an error.
        gd(&mut s).mounts.values_mut().next().unwrap().parent =
            Some(ChainId(Digest::of_bytes(b"gone")));
        let got = checks_of(&s);
        assert!(
            got.iter().any(|(c, _)| *c == Check::ContainerImage),
            "{got:?}"
        );

        let mut s = s0.clone();
        let m = gd(&mut s)
            .mounts
            .values()
            .next()
            .unwrap()
            .mount_id
            .0
            .clone();
        gd(&mut s).dirs.remove(m.as_str());
        let got = checks_of(&s);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].0, Check::Mounts);
    }

    #[test]
    fn a_missing_middle_layer_is_layer_chain_and_chain_id() {
        let (mut s, img) = healthy();
        let chain = ChainId::chain(&s.images[&img].diff_ids);
        s.layers.remove(&chain[0]);
        let got = checks_of(&s);
        assert!(
            got.contains(&(Check::LayerChain, img.to_string())),
            "{got:?}"
        );
        assert!(
            got.contains(&(Check::ChainId, chain[1].to_string())),
            "{got:?}"
        );
    }

    #[test]
    fn leftovers_are_warnings() {
        let (mut s, _) = healthy();
        let orphan = "9".repeat(64);
        gd(&mut s).dirs.insert(orphan.as_str().into(), dir(&orphan));
        gd(&mut s)
            .write_sets
            .push("/r/image/overlay2/layerdb/tmp/write-set-1".into());
        gd(&mut s).links.insert(
            "DANGLING".into(),
            Link {
                target: LinkTarget::DriverDir("gone".into()),
                resolves: false,
            },
        );
        let g = Graph::build(&s);
        let f = quick(&g, &select::scope(&g, &[]).unwrap());
        let checks: Vec<Check> = f.iter().map(|f| f.check).collect();
        assert_eq!(checks.len(), 3);
        assert!(checks.contains(&Check::OrphanDir));
        assert!(checks.contains(&Check::WriteSet));
        assert!(checks.contains(&Check::DanglingLink));
        assert!(
            f.iter()
                .all(|f| f.severity == crate::verify::Severity::Warning)
        );
    }

    #[test]
    fn impact_names_every_image_and_container_on_a_layer() {
        let (mut s, img) = healthy();
        let other = add_image(&mut s, &[1, 7], 10, None);
        let chain = ChainId::chain(&s.images[&img].diff_ids);
        gd(&mut s).dirs.remove(chain[0].hex().as_str());
        let g = Graph::build(&s);
        let r = crate::verify::run(
            &g,
            &crate::verify::Options {
                deep: false,
                sizes: false,
                images: vec![],
            },
            &std::sync::atomic::AtomicU64::new(0),
        )
        .unwrap();
        let f = r
            .findings
            .iter()
            .find(|f| f.check == Check::DriverDir && f.subject.id == chain[0].to_string())
            .unwrap();
        assert_eq!(f.impact.images.len(), 2);
        assert!(f.impact.images.contains(&img) && f.impact.images.contains(&other));
        assert_eq!(f.impact.containers.len(), 1);
        assert!(r.has_errors());
    }
}
