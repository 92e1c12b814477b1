//! `df`: where the disk went, computed from the graph with the daemon's own
//! rules (moby `daemon/images/image_list.go` for SIZE and SHARED SIZE,
//! `daemon/disk_usage.go` for the summary), plus what Docker never shows.
//! Every "would this be freed" number (EXCLUSIVE, RECLAIMABLE, build cache)
//! is a question to the holds ([`crate::holds`]), asked with the same
//! selection the prune plan uses, so df and prune cannot disagree.

pub mod containerd;

use crate::buildcache::{self, BuildRecord};
use crate::disk::docker_size;
use crate::graph::Graph;
use crate::ids::{ChainId, ContainerId, ImageId};
use crate::leftovers::{self, Leftover};
use crate::policy;
use crate::store::{Anomaly, AnomalyKind, Snapshot};
use rayon::prelude::*;
use serde::Serialize;
use std::collections::HashMap;
use std::path::PathBuf;

pub use crate::leftovers::OrphanKind;

/// Which images count when deciding that a layer is shared (moby
/// `daemon/images/image_list.go`: engines 24+ count every image).
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
    /// Always `graphdriver` here; `containerd` for [`containerd::Usage`].
    pub store: &'static str,
    pub root: PathBuf,
    pub driver: String,
    pub shared_size_rule: SharedSizeRule,
    pub summary: Vec<SummaryRow>,
    pub images: Vec<ImageUsage>,
    pub containers: Vec<ContainerUsage>,
    /// The volumes `/system/df` lists, by name.
    pub volumes: Vec<VolumeUsage>,
    /// Docker's `LayersSize`: distinct layers of the listed images.
    pub layers_size: u64,
    /// BuildKit's records as `/system/df` lists them.
    pub build_cache: Vec<BuildRecord>,
    /// False when BuildKit's databases could not be read (see `anomalies`):
    /// then `build_cache` is empty because it is unknown, not because there is none.
    pub build_cache_known: bool,
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

/// A volume as `/system/df` reports it (its `UsageData`).
#[derive(Debug, Serialize)]
pub struct VolumeUsage {
    pub name: String,
    pub driver: String,
    /// As stored: `null` when the record has none (see [`crate::store::Volume`]).
    pub labels: Option<std::collections::BTreeMap<String, String>>,
    pub anonymous: bool,
    /// Docker's `RefCount`: containers, in any state, with a mount point on it.
    pub links: u64,
    /// Docker's `Size`: `directory.Size` of `_data`; `null` where the daemon
    /// reports -1 (no `_data`).
    pub size: Option<u64>,
}

#[derive(Debug, Serialize)]
pub struct Orphan {
    pub path: PathBuf,
    pub bytes: u64,
    pub kind: OrphanKind,
    pub reason: String,
}

impl From<&Leftover> for Orphan {
    fn from(x: &Leftover) -> Self {
        Orphan {
            path: x.path.clone(),
            bytes: x.bytes,
            kind: x.kind,
            reason: x.reason.clone(),
        }
    }
}

pub struct Options {
    pub shared_size: Option<SharedSizeRule>,
}

pub fn compute(g: &Graph, opts: &Options) -> Usage {
    let snap = g.snap;
    let rule = opts
        .shared_size
        .unwrap_or_else(|| SharedSizeRule::for_snapshot(snap));
    // The images' analysis is CPU; the containers', volumes' and orphans'
    // sizes are walks of their trees: run side by side.
    let (images, (layers_size, containers, volumes, orphans, build_cache, images_freed)) =
        rayon::join(
            || images(g, rule),
            || {
                let mut orphans = leftovers::collect(g);
                leftovers::measure(g, &mut orphans);
                let orphans: Vec<Orphan> = orphans.iter().map(Orphan::from).collect();
                (
                    layers_size(g),
                    containers(g),
                    volumes(g),
                    orphans,
                    buildcache::compute(g),
                    prune_all_frees(g),
                )
            },
        );
    let sizes = Sizes {
        layers: layers_size,
        images_freed,
    };
    let mut summary = summary(g, &images, sizes, &containers, &orphans, &build_cache);
    // Docker's order: Images, Containers, Local Volumes, Build Cache.
    summary.insert(2, volumes_row(&volumes));
    let mut anomalies = snap.anomalies.clone();
    anomalies.extend(not_loaded(g));
    Usage {
        store: "graphdriver",
        root: snap.root.clone(),
        driver: snap.driver().to_string(),
        shared_size_rule: rule,
        summary,
        images,
        containers,
        volumes,
        layers_size,
        build_cache_known: build_cache.known,
        build_cache: build_cache.records,
        orphans,
        anomalies,
        disk: None,
    }
}

/// Every image the daemon loads, newest first, with Docker's SIZE and
/// SHARED SIZE and dockgc's EXCLUSIVE.
fn images(g: &Graph, rule: SharedSizeRule) -> Vec<ImageUsage> {
    let snap = g.snap;
    let layer_size = |c: &ChainId| snap.layers.get(c).map_or(0, |l| l.size);
    let counts = chain_counts(g, rule);
    // Each image's EXCLUSIVE is a selection and a mark of its own: 10,000
    // of them are most of df's analysis, and independent.
    let loaded: Vec<&ImageId> = g.loaded.iter().collect();
    let mut images: Vec<ImageUsage> = loaded
        .par_iter()
        .map(|&id| {
            let img = &snap.images[id];
            let chain = g.chain(id);
            let listed = g.is_listed(id);
            // An image outside the counted set still shares a layer that a
            // counted image uses.
            let own = u32::from(rule == SharedSizeRule::Listed && !listed);
            let size: u64 = chain.iter().map(layer_size).sum();
            let shared: u64 = chain
                .iter()
                .filter(|c| counts.get(g, c) + own > 1)
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
                exclusive_size: exclusive_size(g, id),
                containers: g.containers_by_image.get(id).map_or(0, |v| v.len() as u64),
                listed,
                dangling: g.is_dangling(id),
                parent: img.parent,
                layers: chain.len(),
            }
        })
        .collect();
    drop(counts);
    // IDs are unique, so the order is total and an unstable sort gives the
    // same result without a stable sort's copy of the whole list.
    images.sort_unstable_by(|a, b| b.created_unix.cmp(&a.created_unix).then(a.id.cmp(&b.id)));
    images
}

/// How many images of the set a shared-size rule names use each layer.
/// Counted per layer node, not in a map by chain ID: a map's buckets for
/// 30,000 layers are megabytes at df's memory peak.
struct ChainCounts {
    by_node: Vec<u32>,
    /// Chain IDs with no layer node (none for a loaded image, whose every
    /// layer loads; kept so that the count never depends on that).
    other: HashMap<ChainId, u32>,
}

impl ChainCounts {
    fn get(&self, g: &Graph, c: &ChainId) -> u32 {
        match g.layer_node(c) {
            Some(n) => self.by_node[n.key as usize],
            None => self.other.get(c).copied().unwrap_or(0),
        }
    }
}

fn chain_counts(g: &Graph, rule: SharedSizeRule) -> ChainCounts {
    let mut counts = ChainCounts {
        by_node: vec![0; g.edges.layers.len()],
        other: HashMap::new(),
    };
    for id in &g.loaded {
        if rule == SharedSizeRule::All || g.is_listed(id) {
            for c in &g.chain(id) {
                match g.layer_node(c) {
                    Some(n) => counts.by_node[n.key as usize] += 1,
                    None => *counts.other.entry(*c).or_default() += 1,
                }
            }
        }
    }
    counts
}

/// Bytes that `docker rmi` of this image alone would free: the layers the
/// holds free when it and the untagged parents removed with it go
/// ([`policy::select_only`], the selection a prune of just this image makes).
fn exclusive_size(g: &Graph, id: &ImageId) -> u64 {
    let sel = policy::select_only(g, &[*id]);
    freed_bytes(g, sel.remove.keys())
}

fn freed_bytes<'a>(g: &Graph, images: impl IntoIterator<Item = &'a ImageId>) -> u64 {
    // Summed as found, not listed first: `prune -a` frees every layer.
    (g.holds.freed(g.image_holders(images)).into_iter())
        .filter_map(|n| g.edges.chain_id(n))
        .map(|c| g.snap.layers.get(&c).map_or(0, |l| l.size))
        .sum()
}

/// Docker's `LayersSize`: distinct layers of the listed images (`getLayerRefs`).
fn layers_size(g: &Graph) -> u64 {
    // Seen per layer node (a hash set of 30,000 chain IDs was 3 MB at df's
    // memory peak); a chain ID without a node (none for a loaded image)
    // goes to the set.
    let mut seen_node = vec![false; g.edges.layers.len()];
    let mut seen_other = std::collections::HashSet::new();
    let mut first_time = |c: &ChainId| match g.layer_node(c) {
        Some(n) => !std::mem::replace(&mut seen_node[n.key as usize], true),
        None => seen_other.insert(*c),
    };
    g.loaded
        .iter()
        .filter(|id| g.is_listed(id))
        .flat_map(|id| g.chain(id))
        .filter(|c| first_time(c))
        .map(|c| g.snap.layers.get(&c).map_or(0, |l| l.size))
        .sum()
}

fn containers(g: &Graph) -> Vec<ContainerUsage> {
    let paths = &g.gd.paths;
    g.snap
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
        .collect()
}

/// The volumes `/system/df` lists (moby `daemon/volume/service/service.go`
/// `LocalVolumesSize`: driver `local`, no options), with its `Size`
/// (`directory.Size` of `_data`, -1 without one: `daemon/internal/directory`)
/// and `RefCount` (the containers referencing it: every container the daemon
/// restores takes a reference per volume mount point, `daemon/mounts.go`
/// `prepareMountPoints`).
fn volumes(g: &Graph) -> Vec<VolumeUsage> {
    let mut links: HashMap<&str, u64> = HashMap::new();
    for c in g.snap.containers.values() {
        for v in &c.volumes {
            *links.entry(v.as_str()).or_default() += 1;
        }
    }
    volume_usage(g.gd.paths.docker(), &g.snap.volumes, &links)
}

/// The volumes `/system/df` lists with their size and `links` (containers
/// per volume name); shared with the containerd store, whose Docker root
/// keeps volumes the same way.
pub(crate) fn volume_usage(
    docker: &crate::store::paths::DockerRoot,
    volumes: &[crate::store::Volume],
    links: &HashMap<&str, u64>,
) -> Vec<VolumeUsage> {
    volumes
        .par_iter()
        .filter(|v| v.in_system_df())
        .map(|v| {
            let data = docker.volume_data(&v.name);
            let size = match std::fs::symlink_metadata(&data) {
                Err(_) => None,
                Ok(m) if m.is_dir() => Some(docker_size(&data)),
                Ok(m) => Some(m.len()),
            };
            VolumeUsage {
                name: v.name.clone(),
                driver: v.driver.clone(),
                labels: v.labels.clone(),
                anonymous: v.is_anonymous(),
                links: links.get(v.name.as_str()).copied().unwrap_or(0),
                size,
            }
        })
        .collect()
}

/// The Local Volumes row as the docker CLI (<= 28) totals `/system/df`
/// (`cli/command/formatter/disk_usage.go`, `diskUsageVolumesContext`):
/// ACTIVE are volumes with links, SIZE and RECLAIMABLE leave out sizes of -1,
/// RECLAIMABLE counts the volumes without links.
pub(crate) fn volumes_row(volumes: &[VolumeUsage]) -> SummaryRow {
    SummaryRow {
        kind: "volumes",
        total: volumes.len() as u64,
        active: volumes.iter().filter(|v| v.links > 0).count() as u64,
        size: volumes.iter().filter_map(|v| v.size).sum(),
        reclaimable: volumes
            .iter()
            .filter(|v| v.links == 0)
            .filter_map(|v| v.size)
            .sum(),
    }
}

/// What `prune -a` frees: the plan's own selection, the holds' answer.
fn prune_all_frees(g: &Graph) -> u64 {
    let prune_all = policy::select(g, &policy::Options::all(0));
    freed_bytes(g, prune_all.remove.keys())
}

/// The Images row's SIZE (Docker's `LayersSize`) and RECLAIMABLE.
struct Sizes {
    layers: u64,
    images_freed: u64,
}

fn summary(
    g: &Graph,
    images: &[ImageUsage],
    sizes: Sizes,
    containers: &[ContainerUsage],
    orphans: &[Orphan],
    build_cache: &buildcache::BuildCache,
) -> Vec<SummaryRow> {
    let snap = g.snap;
    let active = |c: &&ContainerUsage| snap.containers[&c.id].state.is_active();
    let listed: Vec<&ImageUsage> = images.iter().filter(|i| i.listed).collect();
    let bc = buildcache::totals(build_cache);
    let mut rows = vec![
        SummaryRow {
            kind: "images",
            total: listed.len() as u64,
            active: listed.iter().filter(|i| i.containers > 0).count() as u64,
            size: sizes.layers,
            reclaimable: sizes.images_freed,
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
            total: bc.total,
            active: bc.active,
            size: bc.size,
            reclaimable: bc.reclaimable,
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
    rows.push(row("orphans", &|o| {
        !matches!(o.kind, OrphanKind::PendingRemoval | OrphanKind::Unknown)
    }));
    rows.push(row("pending-removal", &|o| {
        o.kind == OrphanKind::PendingRemoval
    }));
    let mut unknown = row("unknown", &|o| o.kind == OrphanKind::Unknown);
    unknown.reclaimable = 0;
    rows.push(unknown);
    rows
}

/// Images with a valid config that the daemon would skip at start.
fn not_loaded(g: &Graph) -> Vec<Anomaly> {
    let snap = g.snap;
    snap.images
        .values()
        .filter(|i| !g.loaded.contains(&i.id))
        .map(|i| {
            let chain = g.chain(&i.id);
            let message = match chain.iter().find(|c| !g.is_loadable(c)) {
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
        gd(&mut s).dirs.insert(orphan.as_str().into(), dir(&orphan));
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
    fn volumes_as_system_df_lists_and_totals_them() {
        use crate::store::Volume;
        let t = tempfile::tempdir().unwrap();
        let mut s = empty_snapshot();
        s.root = t.path().to_path_buf();
        gd(&mut s).paths = crate::store::graphdriver::Paths::new(t.path(), "overlay2");
        let docker = crate::store::paths::DockerRoot::new(t.path());
        let vol =
            |name: &str, labels: Option<&[(&str, &str)]>, options: Option<&[(&str, &str)]>| {
                let map = |l: &[(&str, &str)]| {
                    l.iter()
                        .map(|(k, v)| (k.to_string(), v.to_string()))
                        .collect()
                };
                Volume {
                    name: name.into(),
                    driver: "local".into(),
                    labels: labels.map(map),
                    options: options.map(map),
                }
            };
        let anon = "ab".repeat(32);
        s.volumes = vec![
            vol("used", Some(&[("team", "a")]), Some(&[])),
            vol("idle", Some(&[]), Some(&[])),
            vol(&anon, None, None),
            vol("nodata", None, None),
            vol("tmp", Some(&[]), Some(&[("type", "tmpfs")])),
        ];
        let write = |name: &str, file: &str, n: usize| {
            let d = docker.volume_data(name);
            std::fs::create_dir_all(&d).unwrap();
            std::fs::write(d.join(file), vec![b'x'; n]).unwrap();
        };
        write("used", "a", 1000);
        write("used", "empty", 0);
        std::fs::hard_link(
            docker.volume_data("used").join("a"),
            docker.volume_data("used").join("b"),
        )
        .unwrap();
        write("idle", "a", 300);
        write(&anon, "a", 5);
        write("tmp", "a", 7);
        // Two containers on `used` (one running), one on the anonymous volume.
        let img = add_image(&mut s, &[1], 10, None);
        for (n, running, vols) in [(1, true, vec!["used"]), (2, false, vec!["used", &anon])] {
            let c = add_container(&mut s, n, img, running);
            s.containers.get_mut(&c).unwrap().volumes =
                vols.iter().map(|v| v.to_string()).collect();
        }
        let u = usage(&s, None);
        let names: Vec<&str> = u.volumes.iter().map(|v| v.name.as_str()).collect();
        assert_eq!(
            names,
            vec!["used", "idle", anon.as_str(), "nodata"],
            "tmp has options"
        );
        let by = |n: &str| u.volumes.iter().find(|v| v.name == n).unwrap();
        assert_eq!(
            (by("used").links, by("used").size),
            (2, Some(1000)),
            "hard link once"
        );
        assert_eq!((by("idle").links, by("idle").size), (0, Some(300)));
        assert_eq!((by(&anon).links, by(&anon).size), (1, Some(5)));
        assert!(by(&anon).anonymous && !by("idle").anonymous);
        assert_eq!(by("nodata").size, None, "the daemon's -1");
        assert!(by("used").labels.is_some() && by("nodata").labels.is_none());
        let row = &u.summary[2];
        assert_eq!(row.kind, "volumes");
        assert_eq!(
            (row.total, row.active, row.size, row.reclaimable),
            (4, 2, 1305, 300)
        );
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

/// One answer to one question: df's "would be freed" figures are the prune
/// plan's own bytes, on random snapshots with every kind of holder.
#[cfg(test)]
mod one_answer {
    use super::*;
    use crate::graph::tests::*;
    use crate::holds::{Hold, Holder};
    use crate::plan::{self, OrphanOptions};
    use crate::reach::Node;
    use proptest::prelude::*;

    fn plan_layer_bytes(g: &Graph, sel: &policy::Selection) -> u64 {
        let o = OrphanOptions {
            enabled: false,
            grace: 0,
            now: 0,
            live: false,
        };
        plan::build(g, sel, &o, String::new()).reclaim.layers
    }

    /// A snapshot from a recipe: images as (diff ids, parent index, tagged),
    /// containers on some images, leaked child layers, orphan mounts and
    /// BuildKit-named layers.
    fn snapshot(
        images: &[(Vec<u8>, Option<usize>, bool)],
        containers: &[usize],
        leaks: &[usize],
        buildkit: &[usize],
    ) -> Snapshot {
        let mut s = empty_snapshot();
        let mut ids = Vec::new();
        for (i, (diffs, parent, tagged)) in images.iter().enumerate() {
            let parent = parent.and_then(|p| ids.get(p).copied());
            let size = 1 + (i as u64 * 37) % 500;
            let id = add_image(&mut s, diffs, size, parent);
            if *tagged {
                tag(&mut s, &format!("r{i}:t"), id);
            }
            ids.push(id);
        }
        for (n, i) in containers.iter().enumerate() {
            if let Some(id) = ids.get(*i) {
                add_container(&mut s, 100 + n as u8, *id, n % 2 == 0);
            }
        }
        for (n, i) in leaks.iter().enumerate() {
            // A layer on top of an image's chain that no image uses.
            if let Some(id) = ids.get(*i) {
                let mut d = s.images[id].diff_ids.clone();
                d.push(diff(200 + n as u8));
                let chain = ChainId::chain(&d);
                let c = *chain.last().unwrap();
                s.layers.insert(
                    c,
                    crate::store::Layer {
                        chain_id: c,
                        diff_id: d[d.len() - 1],
                        size: 7,
                        parent: chain.get(chain.len().wrapping_sub(2)).copied(),
                    },
                );
                gd(&mut s)
                    .cache_ids
                    .insert(c, crate::ids::CacheId(c.hex().as_str().into()));
            }
        }
        for i in buildkit {
            if let Some(c) = ids
                .get(*i)
                .and_then(|id| ChainId::chain(&s.images[id].diff_ids).last().copied())
            {
                gd(&mut s).buildkit.referenced_names.push(c.hex());
            }
        }
        s
    }

    fn recipe() -> impl Strategy<Value = Snapshot> {
        let image = (
            prop::collection::vec(0u8..6, 1..4),
            prop::option::of(0usize..8),
            any::<bool>(),
        );
        (
            prop::collection::vec(image, 1..10),
            prop::collection::vec(0usize..10, 0..3),
            prop::collection::vec(0usize..10, 0..2),
            prop::collection::vec(0usize..10, 0..2),
        )
            .prop_map(|(i, c, l, b)| snapshot(&i, &c, &l, &b))
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]

        #[test]
        fn reclaimable_is_what_prune_all_frees(s in recipe()) {
            let g = Graph::build(&s);
            let u = compute(&g, &Options { shared_size: None });
            let sel = policy::select(&g, &policy::Options::all(0));
            prop_assert_eq!(u.summary[0].reclaimable, plan_layer_bytes(&g, &sel));
        }

        #[test]
        fn exclusive_is_what_removing_the_image_alone_frees(s in recipe()) {
            let g = Graph::build(&s);
            let u = compute(&g, &Options { shared_size: None });
            for i in &u.images {
                let sel = policy::select_only(&g, &[i.id]);
                prop_assert_eq!(i.exclusive_size, plan_layer_bytes(&g, &sel), "image {}", i.id);
            }
        }
    }

    /// A newcomer's test: one new holder, added in one place, changes df,
    /// the plan and verify together.
    #[test]
    fn one_extra_holder_changes_df_plan_and_verify_together() {
        let mut s = empty_snapshot();
        let a = add_image(&mut s, &[1, 2], 10, None);
        tag(&mut s, "a:1", a);
        let leak = add_image(&mut s, &[5], 3, None);
        s.images.remove(&leak); // its layer is now unreferenced
        let top = *ChainId::chain(&s.images[&a].diff_ids).last().unwrap();
        let leaked = ChainId::chain(&[diff(5)])[0];

        let plain = Graph::build(&s);
        let u = compute(&plain, &Options { shared_size: None });
        assert_eq!(u.summary[0].reclaimable, 20);
        assert_eq!(u.images[0].exclusive_size, 20);
        assert!(
            u.orphans
                .iter()
                .any(|o| o.kind == OrphanKind::UnreferencedLayer)
        );

        let pin = |g: &Graph, c: &ChainId| g.layer_node(c).unwrap();
        let roots: Vec<Node> = [top, leaked].iter().map(|c| pin(&plain, c)).collect();
        let held = Graph::build_with(
            &s,
            vec![Hold {
                holder: Holder::Extra {
                    why: "pinned by a test".into(),
                },
                roots,
            }],
        );
        // df: the pinned layers (the top and its parent) are no longer freed.
        let u = compute(&held, &Options { shared_size: None });
        assert_eq!(u.summary[0].reclaimable, 0);
        assert_eq!(u.images[0].exclusive_size, 0);
        assert!(
            u.orphans
                .iter()
                .all(|o| o.kind != OrphanKind::UnreferencedLayer)
        );
        // plan: prune -a --orphans removes the image but none of the layers.
        let sel = policy::select(&held, &policy::Options::all(0));
        let o = OrphanOptions {
            enabled: true,
            grace: 0,
            now: i64::MAX / 2,
            live: false,
        };
        let p = plan::build(&held, &sel, &o, String::new());
        assert_eq!(p.images.len(), 1);
        assert!(p.layers.is_empty(), "{:?}", p.layers);
        // verify: no unreferenced-layer warning for the pinned leak.
        let r = crate::verify::run(
            &held,
            &crate::verify::Options {
                deep: false,
                sizes: false,
                images: vec![],
            },
            &std::sync::atomic::AtomicU64::new(0),
        )
        .unwrap();
        assert!(
            r.findings
                .iter()
                .all(|f| f.check != crate::verify::Check::UnreferencedLayer),
            "{:?}",
            r.findings
        );
        let plain_r = crate::verify::run(
            &plain,
            &crate::verify::Options {
                deep: false,
                sizes: false,
                images: vec![],
            },
            &std::sync::atomic::AtomicU64::new(0),
        )
        .unwrap();
        assert!(
            plain_r
                .findings
                .iter()
                .any(|f| f.check == crate::verify::Check::UnreferencedLayer)
        );
    }
}
