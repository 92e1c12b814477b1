//! The Plan: exactly what a prune removes, each item with its bytes and the
//! rule that chose it. `--dry-run` prints it, `--plan-out` saves it, and the
//! real run executes the very same value; `apply FILE` re-validates a saved
//! one against the store as it is now before touching anything.

use crate::disk::docker_size;
use crate::graph::{DirRole, Graph};
use crate::ids::{CacheId, ChainId, DiffId, ImageId, MountId};
use crate::policy::Selection;
use crate::store::graphdriver::LinkTarget;
use crate::usage::OrphanKind;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

pub const PLAN_VERSION: u32 = 1;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Plan {
    pub version: u32,
    pub root: PathBuf,
    pub driver: String,
    /// When the plan was made (RFC 3339).
    pub created: String,
    /// `repositories.json` entries to remove.
    pub references: Vec<PlanRef>,
    /// Images whose config and metadata go.
    pub images: Vec<PlanImage>,
    /// Layers to remove, children before parents.
    pub layers: Vec<PlanLayer>,
    /// `layerdb/mounts` entries no container owns (`--orphans`).
    pub mounts: Vec<PlanMount>,
    /// Leftovers (`--orphans`): driver dirs, `-removing` entries, write-sets, dangling links.
    pub orphans: Vec<PlanOrphan>,
    /// Candidates a keep rule protected, for the reader of the plan.
    pub kept: Vec<PlanKept>,
    /// Things seen but never removed (unknown driver entries).
    pub untouched: Vec<PlanOrphan>,
    pub reclaim: Reclaim,
    pub note: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct PlanRef {
    pub repository: String,
    pub reference: String,
    pub image: ImageId,
    pub reason: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PlanImage {
    pub id: ImageId,
    pub reason: String,
    pub config_bytes: u64,
    pub repo_tags: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct PlanLayer {
    pub chain_id: ChainId,
    pub diff_id: DiffId,
    pub cache_id: CacheId,
    pub parent: Option<ChainId>,
    pub size: u64,
    pub reason: String,
    /// Another layer that stays names the same driver dir: remove only the
    /// layerdb entry (invariant 7).
    #[serde(default)]
    pub keep_driver_dir: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct PlanMount {
    pub name: String,
    pub mount_id: MountId,
    pub init_id: Option<MountId>,
    pub bytes: u64,
    pub reason: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct PlanOrphan {
    /// Relative to the root.
    pub path: PathBuf,
    pub kind: OrphanKind,
    pub bytes: u64,
    pub reason: String,
    /// For driver dirs: their `l/` link, removed with them.
    pub link: Option<String>,
    /// For `-removing` entries: the driver dir to finish removing first.
    pub cache_dir: Option<String>,
    /// Modification time (Unix seconds) when planned; a change makes the plan stale.
    pub mtime: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PlanKept {
    pub id: ImageId,
    pub reason: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Reclaim {
    pub images: u64,
    pub layers: u64,
    pub mounts: u64,
    pub orphans: u64,
    pub total: u64,
}

impl Plan {
    pub fn is_empty(&self) -> bool {
        self.references.is_empty()
            && self.images.is_empty()
            && self.layers.is_empty()
            && self.mounts.is_empty()
            && self.orphans.is_empty()
    }
}

pub struct OrphanOptions {
    /// Also remove unreferenced data older than `grace` seconds.
    pub enabled: bool,
    pub grace: i64,
    pub now: i64,
}

fn mtime(p: &Path) -> i64 {
    use std::os::unix::fs::MetadataExt;
    std::fs::symlink_metadata(p).map_or(0, |m| m.mtime())
}

/// Turns a policy selection (and, with `--orphans`, the store's leftovers)
/// into a Plan. Reads only: sizes of dirs to remove and mtimes for the grace period.
pub fn build(g: &Graph, sel: &Selection, o: &OrphanOptions, created: String) -> Plan {
    let snap = g.snap;
    let gd = g.gd;
    let paths = &gd.paths;

    // References of removed images, and of images that are only untagged.
    let mut references = Vec::new();
    for (id, why) in sel.remove.iter().chain(sel.untag.iter()) {
        let untag_only = sel.untag.contains_key(id);
        for r in g.refs(id) {
            references.push(PlanRef {
                repository: r.repository.clone(),
                reference: r.reference.clone(),
                image: *id,
                reason: if untag_only {
                    format!("{why}; the image stays, images built on it stay")
                } else {
                    why.clone()
                },
            });
        }
    }
    references.sort_by(|a, b| a.reference.cmp(&b.reference));

    // Children before parents, as `docker rmi` walks up: a failure then never
    // leaves a child whose `parent` names a removed image.
    let depth = |id: &ImageId| {
        std::iter::successors(Some(*id), |i| snap.images.get(i).and_then(|x| x.parent))
            .take(snap.images.len() + 1)
            .count()
    };
    let mut order: Vec<(&ImageId, &String)> = sel.remove.iter().collect();
    order.sort_by_cached_key(|(id, _)| (std::cmp::Reverse(depth(id)), **id));
    let images: Vec<PlanImage> = order
        .into_iter()
        .map(|(id, why)| PlanImage {
            id: *id,
            reason: why.clone(),
            config_bytes: snap.images[id].config_bytes,
            repo_tags: g.tags(id).map(str::to_string).collect(),
        })
        .collect();

    // Orphan mounts, when asked: no container owns them and no unreadable
    // container directory might.
    let mut mounts: Vec<PlanMount> = Vec::new();
    if o.enabled {
        let owners = &g.mount_owners;
        for m in gd.mounts.values() {
            let container_dir = paths.docker().container(&m.name);
            if owners.contains(m.name.as_str()) || snap.unresolved.contains(&container_dir) {
                continue;
            }
            let mdir = paths.mount(&m.name);
            if o.now - mtime(&mdir) < o.grace {
                continue;
            }
            mounts.push(PlanMount {
                name: m.name.clone(),
                mount_id: m.mount_id.clone(),
                init_id: m.init_id.clone(),
                bytes: 0,
                reason: if crate::ids::is_buildkit_key(&m.name) {
                    "transient BuildKit mount left by an interrupted build".into()
                } else {
                    "no container owns this RW layer".into()
                },
            });
        }
    }
    let removed_mounts: HashSet<&str> = mounts.iter().map(|m| m.name.as_str()).collect();
    let layers = layers_to_remove(g, sel, &removed_mounts, o);

    let mut orphans = Vec::new();
    let mut untouched = Vec::new();
    if o.enabled {
        collect_orphans(g, o, &layers, &mut orphans, &mut untouched);
    }

    // Sizes of directories to remove, in parallel.
    mounts.par_iter_mut().for_each(|m| {
        m.bytes = docker_size(&paths.dir(&m.mount_id.0))
            + m.init_id
                .as_ref()
                .map_or(0, |i| docker_size(&paths.dir(&i.0)));
    });
    orphans
        .par_iter_mut()
        .chain(untouched.par_iter_mut())
        .for_each(|x| {
            if x.kind != OrphanKind::DanglingLink {
                x.bytes = docker_size(&snap.root.join(&x.path))
                    + x.cache_dir
                        .as_ref()
                        .map_or(0, |c| docker_size(&paths.dir(c)));
            }
        });

    let mut reclaim = Reclaim {
        images: images.iter().map(|i| i.config_bytes).sum(),
        layers: layers.iter().map(|l| l.size).sum(),
        mounts: mounts.iter().map(|m| m.bytes).sum(),
        orphans: orphans.iter().map(|x| x.bytes).sum(),
        total: 0,
    };
    reclaim.total = reclaim.images + reclaim.layers + reclaim.mounts + reclaim.orphans;
    Plan {
        version: PLAN_VERSION,
        root: snap.root.clone(),
        driver: snap.driver().to_string(),
        created,
        references,
        images,
        layers,
        mounts,
        orphans,
        kept: sel
            .kept
            .iter()
            .map(|(id, r)| PlanKept {
                id: *id,
                reason: r.clone(),
            })
            .collect(),
        untouched,
        reclaim,
        note: sel.note.clone(),
    }
}

/// Layers something keeps when `removed_images` and `removed_mounts` go:
/// the chains of every other image (loaded or not: an image the daemon skips
/// may be repairable, and its data is not ours to take), of every other
/// mount, and of everything BuildKit's snapshots.db names.
pub fn held_layers(
    g: &Graph,
    removed_images: &HashSet<ImageId>,
    removed_mounts: &HashSet<&str>,
) -> HashSet<ChainId> {
    let snap = g.snap;
    let gd = g.gd;
    let mut held: HashSet<ChainId> = HashSet::new();
    for id in snap.images.keys().filter(|i| !removed_images.contains(i)) {
        held.extend(g.chains[id].iter().copied());
    }
    let chain_of = |start: Option<ChainId>| snap.layer_chain(start);
    for m in gd
        .mounts
        .values()
        .filter(|m| !removed_mounts.contains(m.name.as_str()))
    {
        held.extend(chain_of(m.parent));
    }
    let bk: HashSet<&str> = gd
        .buildkit
        .referenced_names
        .iter()
        .map(String::as_str)
        .collect();
    for l in snap.layers.values() {
        let cache = gd.cache_id(&l.chain_id).map_or("", |c| c.0.as_str());
        if bk.contains(l.chain_id.hex().as_str()) || bk.contains(cache) {
            held.extend(chain_of(Some(l.chain_id)));
        }
    }
    held
}

/// Layers of removed images that nothing else holds, plus (with `--orphans`)
/// layers nothing holds at all; never one with a child layer that stays.
fn layers_to_remove(
    g: &Graph,
    sel: &Selection,
    removed_mounts: &HashSet<&str>,
    o: &OrphanOptions,
) -> Vec<PlanLayer> {
    let snap = g.snap;
    let removed: HashSet<ImageId> = sel.remove.keys().copied().collect();
    let held = held_layers(g, &removed, removed_mounts);
    let chain_of = |start: Option<ChainId>| snap.layer_chain(start);
    let mut reason: HashMap<ChainId, String> = HashMap::new();
    for id in sel.remove.keys() {
        for c in &g.chains[id] {
            reason
                .entry(*c)
                .or_insert_with(|| format!("layer of removed image {}", id.short()));
        }
    }
    if o.enabled {
        for l in snap.layers.values() {
            if g.loadable.contains(&l.chain_id) && !reason.contains_key(&l.chain_id) {
                reason.insert(
                    l.chain_id,
                    "unreferenced layer (no image, container or BuildKit snapshot)".into(),
                );
            }
        }
    }
    let mut del: HashSet<ChainId> = reason
        .keys()
        .filter(|c| !held.contains(c) && snap.layers.contains_key(c))
        .copied()
        .collect();
    // A layer that stays holds a reference on its parent (§3.6): keep the
    // parent, and so its ancestors.
    let staying_children: Vec<ChainId> = snap
        .layers
        .values()
        .filter(|l| !del.contains(&l.chain_id))
        .filter_map(|l| l.parent)
        .collect();
    for p in staying_children {
        for c in chain_of(Some(p)) {
            if !del.remove(&c) {
                // Already kept, and so are its ancestors by the same rule.
                if !reason.contains_key(&c) {
                    break;
                }
            }
        }
    }
    // Broken entries share driver dirs? Never remove a cache dir another kept entry names.
    let gd = g.gd;
    let kept_caches: HashSet<&str> = gd
        .cache_ids
        .iter()
        .filter(|(c, _)| !del.contains(c))
        .map(|(_, d)| d.0.as_str())
        .chain(
            gd.broken_layers
                .iter()
                .filter_map(|b| b.cache_id.as_ref().map(|c| c.0.as_str())),
        )
        .collect();
    let depth = |c: &ChainId| chain_of(Some(*c)).count();
    let mut out: Vec<PlanLayer> = del
        .iter()
        .map(|c| {
            let l = &snap.layers[c];
            let cache_id = gd.cache_ids[c].clone();
            let shared = kept_caches.contains(cache_id.0.as_str());
            PlanLayer {
                keep_driver_dir: shared,
                chain_id: *c,
                diff_id: l.diff_id,
                cache_id,
                parent: l.parent,
                size: l.size,
                reason: if shared {
                    format!(
                        "{}; its driver dir is shared with a kept layer and stays",
                        reason[c]
                    )
                } else {
                    reason[c].clone()
                },
            }
        })
        .collect();
    // Children before parents; deterministic.
    out.sort_by_cached_key(|l| (std::cmp::Reverse(depth(&l.chain_id)), l.chain_id));
    out
}

fn collect_orphans(
    g: &Graph,
    o: &OrphanOptions,
    layers: &[PlanLayer],
    orphans: &mut Vec<PlanOrphan>,
    untouched: &mut Vec<PlanOrphan>,
) {
    let gd = g.gd;
    let paths = &gd.paths;
    let rel = |p: &Path| paths.rel(p).to_path_buf();
    let old_enough = |p: &Path| -> (bool, i64) {
        let m = mtime(p);
        (o.now - m >= o.grace, m)
    };
    // l/ links by the dir they point at.
    let mut link_of: HashMap<&str, &str> = HashMap::new();
    for (name, l) in &gd.links {
        if let LinkTarget::DriverDir(d) = &l.target {
            link_of.insert(d.as_str(), name.as_str());
        }
    }
    let live_caches: HashSet<&str> = gd
        .cache_ids
        .values()
        .map(|c| c.0.as_str())
        .chain(gd.mounts.values().flat_map(|m| {
            std::iter::once(m.mount_id.0.as_str()).chain(m.init_id.iter().map(|i| i.0.as_str()))
        }))
        .collect();
    let push = |list: &mut Vec<PlanOrphan>,
                path: PathBuf,
                kind,
                reason: &str,
                link: Option<String>,
                cache_dir| {
        let (ok, m) = old_enough(&path);
        if ok {
            list.push(PlanOrphan {
                path: rel(&path),
                kind,
                bytes: 0,
                reason: reason.to_string(),
                link,
                cache_dir,
                mtime: m,
            });
        }
    };
    for (name, role) in &g.dir_roles {
        let path = paths.dir(name);
        let link = link_of.get(name).map(|s| s.to_string());
        match role {
            DirRole::Orphan => push(
                orphans,
                path,
                OrphanKind::DriverDir,
                "no layerdb layer, mount or BuildKit snapshot references it",
                link,
                None,
            ),
            DirRole::Probe => push(
                orphans,
                path,
                OrphanKind::Probe,
                "overlay2 feature-probe leftover",
                link,
                None,
            ),
            DirRole::Unknown(why) => untouched.push(PlanOrphan {
                path: rel(&path),
                kind: OrphanKind::Unknown,
                bytes: 0,
                reason: format!("{why}; never removed"),
                link: None,
                cache_dir: None,
                mtime: mtime(&path),
            }),
            _ => {}
        }
    }
    let removed_caches: HashSet<&str> = layers.iter().map(|l| l.cache_id.0.as_str()).collect();
    for r in &gd.removing {
        // Finish it as the daemon's Cleanup does, unless a live entry shares the dir.
        let cache_dir = r
            .cache_id
            .as_ref()
            .map(|c| c.0.clone())
            .filter(|c| !live_caches.contains(c.as_str()) && !removed_caches.contains(c.as_str()))
            .filter(|c| gd.dirs.contains_key(c));
        push(
            orphans,
            r.path.clone(),
            OrphanKind::PendingRemoval,
            "finish an interrupted layer deletion",
            cache_dir
                .as_deref()
                .and_then(|c| link_of.get(c))
                .map(|s| s.to_string()),
            cache_dir,
        );
    }
    for w in &gd.write_sets {
        push(
            orphans,
            w.clone(),
            OrphanKind::WriteSet,
            "interrupted layer registration",
            None,
            None,
        );
    }
    for (name, l) in &gd.links {
        if !l.resolves {
            push(
                orphans,
                paths.link(name),
                OrphanKind::DanglingLink,
                "its target does not exist",
                None,
                None,
            );
        }
    }
    orphans.sort_by(|a, b| (a.kind, &a.path).cmp(&(b.kind, &b.path)));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph::tests::*;
    use crate::policy::{self, AgeBy, Filters};
    use crate::store::Snapshot;

    fn plan_for(s: &Snapshot, all: bool) -> Plan {
        let g = Graph::build(s);
        let sel = policy::select(
            &g,
            &policy::Options {
                all,
                filters: Filters::default(),
                older_than: None,
                age_by: AgeBy::Created,
                keep: vec![],
                keep_last: None,
                watermark: None,
                min_age: None,
                now: 0,
            },
        );
        build(
            &g,
            &sel,
            &OrphanOptions {
                enabled: false,
                grace: 0,
                now: 0,
            },
            "now".into(),
        )
    }

    #[test]
    fn layers_go_children_first_and_shared_ones_stay() {
        let mut s = empty_snapshot();
        let base = add_image(&mut s, &[1], 10, None);
        let a = add_image(&mut s, &[1, 2, 3], 5, None);
        tag(&mut s, "base:1", base);
        tag(&mut s, "a:1", a);
        let p = plan_for(&s, true);
        let chain = ChainId::chain(&s.images[&a].diff_ids);
        assert_eq!(p.images.len(), 2);
        assert_eq!(p.references.len(), 2);
        let order: Vec<ChainId> = p.layers.iter().map(|l| l.chain_id).collect();
        assert_eq!(order, vec![chain[2], chain[1], chain[0]]);

        // with a container on base, base's layer stays
        add_container(&mut s, 8, base, false);
        let p = plan_for(&s, true);
        let order: Vec<ChainId> = p.layers.iter().map(|l| l.chain_id).collect();
        assert_eq!(order, vec![chain[2], chain[1]]);
        assert_eq!(p.reclaim.layers, 10);
    }

    #[test]
    fn a_leaked_child_layer_keeps_its_parent() {
        let mut s = empty_snapshot();
        let a = add_image(&mut s, &[1, 2], 5, None);
        let leak = add_image(&mut s, &[1, 2, 9], 5, None);
        s.images.remove(&leak);
        let p = plan_for(&s, false);
        assert_eq!(p.images.len(), 1);
        assert!(p.images[0].id == a);
        assert!(
            p.layers.is_empty(),
            "the leaked child holds the chain: {:?}",
            p.layers
        );
    }

    #[test]
    fn plans_round_trip_through_json() {
        let mut s = empty_snapshot();
        add_image(&mut s, &[1], 5, None);
        let p = plan_for(&s, false);
        let text = serde_json::to_string(&p).unwrap();
        let back: Plan = serde_json::from_str(&text).unwrap();
        assert_eq!(back.layers, p.layers);
        assert_eq!(back.reclaim, p.reclaim);
        assert!(!back.is_empty());
    }
}
