//! `df`: where the disk went, computed from the graph with the daemon's own
//! rules (format doc §8.1, §8.2), plus what Docker never shows.

use crate::disk::docker_size;
use crate::graph::{DirRole, Graph};
use crate::ids::{ChainId, ContainerId, ImageId};
use crate::store::graphdriver::LinkTarget;
use crate::store::{Anomaly, AnomalyKind, Snapshot};
use rayon::prelude::*;
use serde::Serialize;
use std::collections::{HashMap, HashSet};
use std::path::PathBuf;

/// Which images count when deciding that a layer is shared (§8.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SharedSizeRule {
    /// Engines 20.10–23: references counted over the listed images only.
    Listed,
    /// Engine 24 and later: references counted over every image.
    All,
}

impl SharedSizeRule {
    /// The rule of the engine that wrote the root: no `engine-id` means older than 23.
    pub fn for_snapshot(snap: &Snapshot) -> Self {
        if snap.engine_id_present {
            SharedSizeRule::All
        } else {
            SharedSizeRule::Listed
        }
    }
}

#[derive(Debug, Serialize)]
pub struct Usage {
    pub root: PathBuf,
    pub driver: String,
    pub shared_size_rule: SharedSizeRule,
    pub summary: Vec<SummaryRow>,
    pub images: Vec<ImageUsage>,
    pub containers: Vec<ContainerUsage>,
    /// Docker's `LayersSize`: distinct layers of the listed images.
    pub layers_size: u64,
    pub orphans: Vec<Orphan>,
    pub anomalies: Vec<Anomaly>,
    pub disk: Option<crate::reconcile::DiskUsage>,
}

#[derive(Debug, Serialize)]
pub struct SummaryRow {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub total: u64,
    pub active: u64,
    pub size: u64,
    pub reclaimable: u64,
}

#[derive(Debug, Serialize)]
pub struct ImageUsage {
    pub id: ImageId,
    pub repo_tags: Vec<String>,
    pub repo_digests: Vec<String>,
    pub created: Option<String>,
    #[serde(skip)]
    pub created_unix: Option<i64>,
    pub size: u64,
    pub shared_size: u64,
    /// `size - shared_size`, as the docker CLI computes UNIQUE SIZE.
    pub unique_size: u64,
    /// Bytes that removing this image alone would free: its layers that no
    /// other image, container or BuildKit snapshot holds, counting the untagged
    /// parents that `docker rmi` would remove with it.
    pub exclusive_size: u64,
    pub containers: u64,
    /// Shown by `docker images` without `-a`.
    pub listed: bool,
    pub dangling: bool,
    pub parent: Option<ImageId>,
    pub layers: usize,
}

#[derive(Debug, Serialize)]
pub struct ContainerUsage {
    pub id: ContainerId,
    pub names: Vec<String>,
    pub image: Option<ImageId>,
    /// What the user asked for (`Config.Image`).
    pub image_ref: Option<String>,
    pub state: &'static str,
    pub created: Option<String>,
    pub size_rw: u64,
    pub log_bytes: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum OrphanKind {
    /// A driver dir no layer, mount or BuildKit snapshot references.
    DriverDir,
    /// A layerdb layer no image, container or BuildKit snapshot uses.
    UnreferencedLayer,
    /// A layerdb layer the daemon cannot load, and the data under it.
    BrokenLayer,
    /// A `layerdb/mounts` entry no container owns.
    Mount,
    /// `layerdb/tmp/write-set-*`.
    WriteSet,
    /// An overlay2 feature-probe leftover.
    Probe,
    /// An `l/` symlink whose target does not exist.
    DanglingLink,
    /// A `-removing` layerdb entry and its driver dir.
    PendingRemoval,
    /// Something in the driver home dockgc cannot classify; never removed.
    Unknown,
}

#[derive(Debug, Serialize)]
pub struct Orphan {
    pub path: PathBuf,
    pub bytes: u64,
    pub kind: OrphanKind,
    pub reason: String,
}

pub struct Options {
    pub shared_size: Option<SharedSizeRule>,
}

pub fn compute(g: &Graph, opts: &Options) -> Usage {
    let snap = g.snap;
    let rule = opts
        .shared_size
        .unwrap_or_else(|| SharedSizeRule::for_snapshot(snap));
    let layer_size = |c: &ChainId| snap.layers.get(c).map_or(0, |l| l.size);

    // Reference counts per chain ID, over the set the rule names.
    let mut counts: HashMap<ChainId, u32> = HashMap::new();
    for id in &g.loaded {
        if rule == SharedSizeRule::All || g.is_listed(id) {
            for c in &g.chains[id] {
                *counts.entry(*c).or_default() += 1;
            }
        }
    }
    let holders = holders(g);
    let mut images: Vec<ImageUsage> = g
        .loaded
        .iter()
        .map(|id| {
            let img = &snap.images[id];
            let chain = &g.chains[id];
            let listed = g.is_listed(id);
            // An image outside the counted set still shares a layer that a
            // counted image uses.
            let own = u32::from(rule == SharedSizeRule::Listed && !listed);
            let size: u64 = chain.iter().map(layer_size).sum();
            let shared: u64 = chain
                .iter()
                .filter(|c| counts.get(c).copied().unwrap_or(0) + own > 1)
                .map(layer_size)
                .sum();
            let (mut repo_tags, mut repo_digests) = (Vec::new(), Vec::new());
            for r in g.refs(id) {
                if r.is_digest() {
                    repo_digests.push(r.reference.clone())
                } else {
                    repo_tags.push(r.reference.clone())
                }
            }
            repo_tags.sort();
            repo_digests.sort();
            ImageUsage {
                id: *id,
                repo_tags,
                repo_digests,
                created: img.created.clone(),
                created_unix: img.created_unix,
                size,
                shared_size: shared,
                unique_size: size - shared,
                exclusive_size: exclusive_size(g, id, &holders),
                containers: g.containers_by_image.get(id).map_or(0, |v| v.len() as u64),
                listed,
                dangling: g.is_dangling(id),
                parent: img.parent,
                layers: chain.len(),
            }
        })
        .collect();
    images.sort_by(|a, b| b.created_unix.cmp(&a.created_unix).then(a.id.cmp(&b.id)));

    // Docker's LayersSize: distinct layers of listed images (getLayerRefs).
    let listed_layers: HashSet<ChainId> = g
        .loaded
        .iter()
        .filter(|id| g.is_listed(id))
        .flat_map(|id| g.chains[id].iter().copied())
        .collect();
    let layers_size: u64 = listed_layers.iter().map(layer_size).sum();
    let in_use = layers_in_use(g);
    let images_reclaimable: u64 = listed_layers
        .iter()
        .filter(|c| !in_use.contains(c))
        .map(layer_size)
        .sum();

    let paths = &g.gd.paths;
    let containers: Vec<ContainerUsage> = snap
        .containers
        .values()
        .collect::<Vec<_>>()
        .par_iter()
        .map(|c| ContainerUsage {
            id: c.id.clone(),
            names: vec![c.name.clone()],
            image: c.image,
            image_ref: c.config_image.clone(),
            state: c.state.word(),
            created: c.created.clone(),
            size_rw: g
                .mount_of(c)
                .map_or(0, |m| docker_size(&paths.diff(&m.mount_id.0))),
            log_bytes: c.log_bytes,
        })
        .collect();

    let orphans = orphans(g, &holders);
    let build_cache = build_cache(g, &holders);

    let active = |c: &&ContainerUsage| snap.containers[&c.id].state.is_active();
    let listed_images: Vec<&ImageUsage> = images.iter().filter(|i| i.listed).collect();
    let mut summary = vec![
        SummaryRow {
            kind: "images",
            total: listed_images.len() as u64,
            active: listed_images.iter().filter(|i| i.containers > 0).count() as u64,
            size: layers_size,
            reclaimable: images_reclaimable,
        },
        SummaryRow {
            kind: "containers",
            total: containers.len() as u64,
            active: containers.iter().filter(active).count() as u64,
            size: containers.iter().map(|c| c.size_rw).sum(),
            reclaimable: containers
                .iter()
                .filter(|c| !active(c))
                .map(|c| c.size_rw)
                .sum(),
        },
        SummaryRow {
            kind: "build-cache",
            total: build_cache.0,
            active: 0,
            size: build_cache.1,
            reclaimable: build_cache.1,
        },
        SummaryRow {
            kind: "logs",
            total: containers.iter().filter(|c| c.log_bytes > 0).count() as u64,
            active: containers
                .iter()
                .filter(|c| c.log_bytes > 0 && active(c))
                .count() as u64,
            size: containers.iter().map(|c| c.log_bytes).sum(),
            reclaimable: containers
                .iter()
                .filter(|c| !active(c))
                .map(|c| c.log_bytes)
                .sum(),
        },
    ];
    let row = |kind: &'static str, pick: &dyn Fn(&Orphan) -> bool| {
        let v: Vec<&Orphan> = orphans.iter().filter(|o| pick(o)).collect();
        let size = v.iter().map(|o| o.bytes).sum();
        SummaryRow {
            kind,
            total: v.len() as u64,
            active: 0,
            size,
            reclaimable: size,
        }
    };
    summary.push(row("orphans", &|o| {
        !matches!(o.kind, OrphanKind::PendingRemoval | OrphanKind::Unknown)
    }));
    summary.push(row("pending-removal", &|o| {
        o.kind == OrphanKind::PendingRemoval
    }));
    let mut unknown = row("unknown", &|o| o.kind == OrphanKind::Unknown);
    unknown.reclaimable = 0;
    summary.push(unknown);

    let mut anomalies = snap.anomalies.clone();
    anomalies.extend(not_loaded(g));

    Usage {
        root: snap.root.clone(),
        driver: snap.driver().to_string(),
        shared_size_rule: rule,
        summary,
        images,
        containers,
        layers_size,
        orphans,
        anomalies,
        disk: None,
    }
}

/// Who holds each layer: loaded images whose chain contains it, plus one
/// extra hold for layers that mounts or BuildKit keep (which no image
/// removal can release).
struct Holders {
    images: HashMap<ChainId, u32>,
    pinned: HashSet<ChainId>,
}

fn holders(g: &Graph) -> Holders {
    let snap = g.snap;
    let gd = g.gd;
    let mut images: HashMap<ChainId, u32> = HashMap::new();
    for id in &g.loaded {
        for c in &g.chains[id] {
            *images.entry(*c).or_default() += 1;
        }
    }
    let mut pinned = HashSet::new();
    let buildkit: HashSet<&str> = gd
        .buildkit
        .referenced_names
        .iter()
        .map(String::as_str)
        .collect();
    let pin_from = |start: Option<ChainId>, pinned: &mut HashSet<ChainId>| {
        let mut cur = start;
        while let Some(c) = cur {
            if !pinned.insert(c) {
                break;
            }
            cur = snap.layers.get(&c).and_then(|l| l.parent);
        }
    };
    for m in gd.mounts.values() {
        pin_from(m.parent, &mut pinned);
    }
    for l in snap.layers.values() {
        let cache = gd.cache_id(&l.chain_id).map_or("", |c| c.0.as_str());
        if buildkit.contains(l.chain_id.hex().as_str()) || buildkit.contains(cache) {
            pin_from(Some(l.chain_id), &mut pinned);
        }
        // A child layer holds a reference on its parent (§3.6), even one no
        // image uses; removing images never releases the parent then.
        if !images.contains_key(&l.chain_id) {
            pin_from(l.parent, &mut pinned);
        }
    }
    Holders { images, pinned }
}

/// Bytes freed by removing `id` alone, as `docker rmi` (with its default
/// PruneChildren) would: nothing if a container uses it or it has children;
/// otherwise its layers no other holder keeps, including those of the
/// untagged, unused parents removed with it.
fn exclusive_size(g: &Graph, id: &ImageId, h: &Holders) -> u64 {
    if g.has_children(id) || g.used_by_containers.contains(id) {
        return 0;
    }
    let snap = g.snap;
    let mut set = vec![*id];
    let mut cur = snap.images[id].parent;
    while let Some(p) = cur {
        let removable = g.loaded.contains(&p)
            && !g.refs_by_image.contains_key(&p)
            && !g.used_by_containers.contains(&p)
            && g.children
                .get(&p)
                .is_some_and(|ch| ch.iter().all(|c| set.contains(c)));
        if !removable {
            break;
        }
        set.push(p);
        cur = snap.images[&p].parent;
    }
    let mut in_set: HashMap<ChainId, u32> = HashMap::new();
    for i in &set {
        for c in &g.chains[i] {
            *in_set.entry(*c).or_default() += 1;
        }
    }
    in_set
        .iter()
        .filter(|(c, n)| !h.pinned.contains(c) && h.images.get(c) == Some(n))
        .map(|(c, _)| snap.layers.get(c).map_or(0, |l| l.size))
        .sum()
}

/// Layers that `prune -a` keeps: those of images containers use (and their
/// ancestors), of container mounts, and everything pinned.
fn layers_in_use(g: &Graph) -> HashSet<ChainId> {
    let mut keep = HashSet::new();
    let mut img_stack: Vec<ImageId> = g.used_by_containers.iter().copied().collect();
    let mut seen = HashSet::new();
    while let Some(i) = img_stack.pop() {
        if !seen.insert(i) {
            continue;
        }
        if let Some(chain) = g.chains.get(&i) {
            keep.extend(chain.iter().copied());
        }
        if let Some(p) = g.snap.images.get(&i).and_then(|im| im.parent) {
            img_stack.push(p);
        }
    }
    for m in g.gd.mounts.values() {
        let mut cur = m.parent;
        while let Some(c) = cur {
            if !keep.insert(c) {
                break;
            }
            cur = g.snap.layers.get(&c).and_then(|l| l.parent);
        }
    }
    keep
}

/// BuildKit's driver dirs and the layers only BuildKit holds: (count, bytes).
fn build_cache(g: &Graph, h: &Holders) -> (u64, u64) {
    let snap = g.snap;
    let gd = g.gd;
    let dirs: Vec<&str> = g
        .dir_roles
        .iter()
        .filter(|(_, r)| **r == DirRole::Buildkit)
        .map(|(n, _)| *n)
        .collect();
    let dir_bytes: u64 = dirs.par_iter().map(|n| docker_size(&gd.paths.dir(n))).sum();
    let bk_layers: Vec<u64> = snap
        .layers
        .values()
        .filter(|l| !h.images.contains_key(&l.chain_id) && h.pinned.contains(&l.chain_id))
        .filter(|l| {
            let names = &gd.buildkit.referenced_names;
            names.contains(&l.chain_id.hex())
                || gd
                    .cache_id(&l.chain_id)
                    .is_some_and(|c| names.contains(&c.0))
        })
        .map(|l| l.size)
        .collect();
    (
        (dirs.len() + bk_layers.len()) as u64,
        dir_bytes + bk_layers.iter().sum::<u64>(),
    )
}

fn orphans(g: &Graph, h: &Holders) -> Vec<Orphan> {
    let snap = g.snap;
    let gd = g.gd;
    let paths = &gd.paths;
    // (path, kind, reason, dirs whose bytes count)
    let mut found: Vec<(PathBuf, OrphanKind, String, Vec<PathBuf>, u64)> = Vec::new();

    for (name, role) in &g.dir_roles {
        let path = paths.dir(name);
        let (kind, reason) = match role {
            DirRole::Orphan => (
                OrphanKind::DriverDir,
                "no layerdb layer, mount or BuildKit snapshot references it".to_string(),
            ),
            DirRole::Probe => (
                OrphanKind::Probe,
                "left by an interrupted overlay2 feature probe".to_string(),
            ),
            DirRole::Unknown(why) => (OrphanKind::Unknown, why.to_string()),
            _ => continue,
        };
        found.push((path.clone(), kind, reason, vec![path], 0));
    }

    // Layers no loaded image uses and nothing pins.
    for l in snap.layers.values() {
        if h.images.contains_key(&l.chain_id) || h.pinned.contains(&l.chain_id) {
            continue;
        }
        let (kind, reason) = if g.loadable.contains(&l.chain_id) {
            (
                OrphanKind::UnreferencedLayer,
                "no image, container or BuildKit snapshot uses it; Docker never removes such layers"
                    .to_string(),
            )
        } else {
            (
                OrphanKind::BrokenLayer,
                "its parent chain is missing or broken, so the daemon cannot load it".to_string(),
            )
        };
        found.push((paths.layer(&l.chain_id), kind, reason, vec![], l.size));
    }
    for b in &gd.broken_layers {
        let dirs = b.cache_id.iter().map(|c| paths.dir(&c.0)).collect();
        found.push((
            b.path.clone(),
            OrphanKind::BrokenLayer,
            "the daemon cannot load this layerdb entry (see anomalies)".to_string(),
            dirs,
            0,
        ));
    }

    // Mounts no container (or container image mount) owns.
    let owned = &g.mount_owners;
    for m in gd.mounts.values() {
        if owned.contains(m.name.as_str()) {
            continue;
        }
        let container_dir = paths.docker().container(&m.name);
        let (kind, reason) = if snap.unresolved.contains(&container_dir) {
            (
                OrphanKind::Unknown,
                "its container's config could not be read (see anomalies)",
            )
        } else if crate::ids::is_buildkit_key(&m.name) {
            (
                OrphanKind::Mount,
                "transient BuildKit mount left by an interrupted build",
            )
        } else {
            (OrphanKind::Mount, "no container owns this RW layer")
        };
        let mut dirs = vec![paths.dir(&m.mount_id.0)];
        dirs.extend(m.init_id.iter().map(|i| paths.dir(&i.0)));
        found.push((paths.mount(&m.name), kind, reason.into(), dirs, 0));
    }

    for r in &gd.removing {
        let dirs = r.cache_id.iter().map(|c| paths.dir(&c.0)).collect();
        found.push((
            r.path.clone(),
            OrphanKind::PendingRemoval,
            "interrupted layer deletion; the daemon finishes it only at a clean shutdown".into(),
            dirs,
            0,
        ));
    }
    for w in &gd.write_sets {
        found.push((
            w.clone(),
            OrphanKind::WriteSet,
            "interrupted layer registration; the daemon never cleans these".into(),
            vec![w.clone()],
            0,
        ));
    }
    for (name, l) in &gd.links {
        if !l.resolves {
            let reason = match &l.target {
                LinkTarget::DriverDir(d) => format!("its target ../{d}/diff does not exist"),
                LinkTarget::Other(t) => format!("its target {t} does not resolve"),
                LinkTarget::NotSymlink => "not a symlink".to_string(),
            };
            found.push((
                paths.link(name),
                OrphanKind::DanglingLink,
                reason,
                vec![],
                0,
            ));
        }
    }

    let mut out: Vec<Orphan> = found
        .into_par_iter()
        .map(|(path, kind, reason, dirs, fixed)| Orphan {
            bytes: fixed + dirs.iter().map(|d| docker_size(d)).sum::<u64>(),
            path,
            kind,
            reason,
        })
        .collect();
    out.sort_by(|a, b| (a.kind, &a.path).cmp(&(b.kind, &b.path)));
    out
}

/// Images with a valid config that the daemon would skip at start.
fn not_loaded(g: &Graph) -> Vec<Anomaly> {
    let snap = g.snap;
    snap.images
        .values()
        .filter(|i| !g.loaded.contains(&i.id))
        .map(|i| {
            let chain = &g.chains[&i.id];
            let message = match chain.iter().find(|c| !g.loadable.contains(c)) {
                Some(c) if snap.layers.contains_key(c) => {
                    format!("layer {c} cannot be loaded; the daemon does not restore this image")
                }
                Some(c) => format!("layer {c} is missing; the daemon does not restore this image"),
                None => format!(
                    "os {:?} is not this host's; the daemon does not restore this image",
                    i.os.as_deref().unwrap_or("")
                ),
            };
            Anomaly {
                kind: AnomalyKind::ImageNotLoaded,
                path: g.gd.paths.image_config(&i.id),
                message,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph::tests::*;

    fn usage(s: &Snapshot, rule: Option<SharedSizeRule>) -> Usage {
        compute(&Graph::build(s), &Options { shared_size: rule })
    }

    fn img<'a>(u: &'a Usage, id: &ImageId) -> &'a ImageUsage {
        u.images.iter().find(|i| i.id == *id).unwrap()
    }

    #[test]
    fn size_and_both_shared_size_rules() {
        let mut s = empty_snapshot();
        // base ← mid (untagged intermediate) ← app; other shares only base.
        let base = add_image(&mut s, &[1], 100, None);
        let mid = add_image(&mut s, &[1, 2], 10, Some(base));
        let app = add_image(&mut s, &[1, 2, 3], 1, Some(mid));
        let other = add_image(&mut s, &[1, 4], 1000, None);
        tag(&mut s, "base:1", base);
        tag(&mut s, "app:1", app);
        tag(&mut s, "other:1", other);
        // add_image gives every new layer the same size; base layer was made with 100.
        let u = usage(&s, Some(SharedSizeRule::All));
        assert_eq!(img(&u, &app).size, 100 + 10 + 1);
        // all images count: layers 1 and 2 are held by base/mid/app/other.
        assert_eq!(img(&u, &app).shared_size, 110);
        assert_eq!(img(&u, &app).unique_size, 1);
        assert_eq!(img(&u, &base).shared_size, 100);

        let u = usage(&s, Some(SharedSizeRule::Listed));
        // listed = base, app, other: layer 2 is held by app alone among them.
        assert_eq!(img(&u, &app).shared_size, 100);
        assert_eq!(img(&u, &app).unique_size, 11);
        assert!(!img(&u, &mid).listed);
        // the unlisted intermediate shares what listed images use.
        assert_eq!(img(&u, &mid).shared_size, 110);
        // LayersSize: distinct layers of listed images.
        assert_eq!(u.layers_size, 100 + 10 + 1 + 1000);
    }

    #[test]
    fn rule_follows_engine_id() {
        let mut s = empty_snapshot();
        s.engine_id_present = false;
        assert_eq!(usage(&s, None).shared_size_rule, SharedSizeRule::Listed);
        s.engine_id_present = true;
        assert_eq!(usage(&s, None).shared_size_rule, SharedSizeRule::All);
    }

    #[test]
    fn exclusive_size_counts_untagged_parents_and_respects_holders() {
        let mut s = empty_snapshot();
        let base = add_image(&mut s, &[1], 100, None);
        let mid = add_image(&mut s, &[1, 2], 10, Some(base));
        let app = add_image(&mut s, &[1, 2, 3], 1, Some(mid));
        tag(&mut s, "base:1", base);
        tag(&mut s, "app:1", app);
        let u = usage(&s, None);
        // removing app also removes untagged mid; base is tagged and stays.
        assert_eq!(img(&u, &app).exclusive_size, 10 + 1);
        assert_eq!(img(&u, &mid).exclusive_size, 0, "has children");
        assert_eq!(img(&u, &base).exclusive_size, 0, "has children");

        // a container on app pins everything
        add_container(&mut s, 9, app, false);
        let u = usage(&s, None);
        assert_eq!(img(&u, &app).exclusive_size, 0);
        assert_eq!(img(&u, &app).containers, 1);
        // images row: everything is in use, nothing reclaimable
        assert_eq!(u.summary[0].reclaimable, 0);
        assert_eq!(u.summary[0].active, 1);
    }

    #[test]
    fn reclaimable_counts_layers_no_container_needs() {
        let mut s = empty_snapshot();
        let a = add_image(&mut s, &[1, 2], 10, None);
        let b = add_image(&mut s, &[1, 3], 10, None);
        tag(&mut s, "a:1", a);
        tag(&mut s, "b:1", b);
        add_container(&mut s, 7, a, true);
        let u = usage(&s, None);
        assert_eq!(u.layers_size, 30);
        assert_eq!(u.summary[0].reclaimable, 10, "only b's own layer");
        assert_eq!(u.summary[1].total, 1);
        assert_eq!(u.summary[1].active, 1);
    }

    #[test]
    fn orphans_are_found_and_explained() {
        let mut s = empty_snapshot();
        let a = add_image(&mut s, &[1, 2], 10, None);
        tag(&mut s, "a:1", a);
        // an unreferenced layer on top of a's chain
        let leak = add_image(&mut s, &[1, 2, 5], 7, None);
        s.images.remove(&leak);
        let orphan = "9".repeat(64);
        gd(&mut s).dirs.insert(orphan.clone(), dir(&orphan));
        gd(&mut s).mounts.insert(
            "m".to_string(),
            crate::store::graphdriver::Mount {
                name: "m".into(),
                mount_id: crate::ids::MountId("8".repeat(64)),
                init_id: None,
                parent: None,
            },
        );
        let u = usage(&s, None);
        let kinds: Vec<OrphanKind> = u.orphans.iter().map(|o| o.kind).collect();
        assert_eq!(
            kinds,
            vec![
                OrphanKind::DriverDir,
                OrphanKind::UnreferencedLayer,
                OrphanKind::Mount
            ]
        );
        let leaked = u
            .orphans
            .iter()
            .find(|o| o.kind == OrphanKind::UnreferencedLayer)
            .unwrap();
        assert_eq!(leaked.bytes, 7);
        // the leaked child holds a reference on a's top layer, so removing
        // a alone frees only what the leak does not pin.
        assert_eq!(img(&u, &a).exclusive_size, 0);
        assert!(u.orphans.iter().all(|o| !o.reason.is_empty()));
    }

    #[test]
    fn images_on_missing_layers_are_reported_not_listed() {
        let mut s = empty_snapshot();
        let a = add_image(&mut s, &[1, 2], 10, None);
        let top = *ChainId::chain(&s.images[&a].diff_ids).last().unwrap();
        s.layers.remove(&top);
        let u = usage(&s, None);
        assert!(u.images.is_empty());
        assert!(
            u.anomalies
                .iter()
                .any(|x| x.kind == AnomalyKind::ImageNotLoaded && x.message.contains("missing"))
        );
    }
}
