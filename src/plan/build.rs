//! Building a plan: a policy selection plus, with `--orphans`, the store's
//! leftovers, turned into the items to remove. What goes with them is the
//! holds' answer ([`crate::holds`]).

use super::*;
use crate::graph::Graph;
use crate::holds::{Holder, HolderId};
use crate::ids::{CacheId, ChainId, DirName, ImageId};
use crate::leftovers::{self, Leftover, OrphanKind, Subject};
use crate::policy::Selection;
use crate::reach::Node;
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

#[derive(Debug, Clone)]
pub struct OrphanOptions {
    /// Also remove unreferenced data older than `grace` seconds.
    pub enabled: bool,
    pub grace: i64,
    pub now: i64,
    /// The daemon runs: only driver dirs, `-removing` leftovers, write-sets
    /// and dangling links, never RW layers or layers (a `docker load`
    /// registers layers before their image), and the grace counts from the
    /// later of mtime and ctime (a rename changes only the ctime).
    pub live: bool,
}

/// The shortest grace while the daemon runs: a `docker load` or a build
/// must have registered what it creates by then.
pub const MIN_LIVE_GRACE: i64 = 600;

fn mtime(p: &Path) -> i64 {
    use std::os::unix::fs::MetadataExt;
    std::fs::symlink_metadata(p).map_or(0, |m| m.mtime())
}

/// The later of mtime and ctime; `None` when it cannot be read (gone since
/// it was listed: something is acting on it).
fn changed(p: &Path) -> Option<i64> {
    use std::os::unix::fs::MetadataExt;
    std::fs::symlink_metadata(p)
        .ok()
        .map(|m| m.mtime().max(m.ctime()))
}

/// Turns a policy selection (and, with `--orphans`, the store's leftovers)
/// into a Plan. Reads only: sizes of dirs to remove and mtimes for the grace period.
pub fn build(g: &Graph, sel: &Selection, o: &OrphanOptions, created: String) -> Plan {
    let snap = g.snap;
    let containers = containers(g, sel);
    let references = references(g, sel);
    let images = images(g, sel);
    let Leftovers {
        mounts,
        orphan_layers,
        orphans,
        untouched,
    } = leftovers_to_remove(g, o);
    let removed = holders_removed(
        g,
        sel.remove.keys(),
        mounts
            .iter()
            .chain(containers.iter().flat_map(|c| &c.mounts))
            .map(|m| m.name.as_str()),
        orphan_layers.iter(),
        orphans.iter().map(|x| snap.root.join(&x.path)),
    );
    let layers = layers_to_remove(g, sel, &removed, &orphan_layers);
    let mut reclaim = Reclaim {
        images: images.iter().map(|i| i.config_bytes).sum(),
        layers: layers.iter().map(|l| l.size).sum(),
        mounts: mounts.iter().map(|m| m.bytes).sum(),
        orphans: orphans.iter().map(|x| x.bytes).sum(),
        containers: containers.iter().map(|c| c.bytes).sum(),
        ..Reclaim::default()
    };
    reclaim.sum();
    let kept_containers = sel
        .containers
        .kept
        .iter()
        .map(|(id, why)| PlanKeptContainer {
            id: id.clone(),
            name: snap
                .containers
                .get(id)
                .map(|c| c.name.clone())
                .unwrap_or_default(),
            reason: why.clone(),
        })
        .collect();
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
        containers,
        kept_containers,
        build_cache: None,
        volumes: Vec::new(),
        source: "disk".into(),
        unseen: Vec::new(),
        disagreements: Vec::new(),
        grace: o.enabled.then_some(if o.live {
            o.grace.max(MIN_LIVE_GRACE)
        } else {
            o.grace
        }),
    }
}

/// The selected containers, each with its RW layer and its image mounts'
/// RW layers, which go with it (moby `daemon/delete.go`).
fn containers(g: &Graph, sel: &Selection) -> Vec<PlanContainer> {
    let snap = g.snap;
    let paths = &g.gd.paths;
    sel.containers
        .remove
        .iter()
        .filter_map(|(id, why)| {
            let c = snap.containers.get(id)?;
            let own = g.mount_of(c);
            let mounts: Vec<PlanMount> = own
                .into_iter()
                .chain(
                    c.image_mounts
                        .iter()
                        .filter_map(|(_, name)| g.gd.mounts.get(name)),
                )
                .map(|m| PlanMount {
                    name: m.name.clone(),
                    bytes: crate::disk::docker_size(&paths.diff(&m.mount_id.0)),
                    reason: format!("RW layer of container {}", c.name),
                    dirs: RwDirs {
                        mount_id: m.mount_id.clone(),
                        init_id: m.init_id.clone(),
                    },
                })
                .collect();
            let rw = own.map_or(0, |m| {
                mounts
                    .iter()
                    .find(|p| p.name == m.name)
                    .map_or(0, |p| p.bytes)
            });
            Some(PlanContainer {
                id: id.clone(),
                name: c.name.clone(),
                image: c.image,
                state: c.state.word().to_string(),
                stopped: if c.state.has_started {
                    c.finished_at.clone()
                } else {
                    c.created.clone()
                },
                reason: why.clone(),
                bytes: rw + c.log_bytes,
                mounts,
            })
        })
        .collect()
}

/// References of removed images, and of images that are only untagged.
fn references(g: &Graph, sel: &Selection) -> Vec<PlanRef> {
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
    references
}

/// Images to remove, children before parents, as `docker rmi` walks up: a
/// failure then never leaves a child whose `parent` names a removed image.
fn images(g: &Graph, sel: &Selection) -> Vec<PlanImage> {
    let snap = g.snap;
    let depth = |id: &ImageId| {
        std::iter::successors(Some(*id), |i| snap.images.get(i).and_then(|x| x.parent))
            .take(snap.images.len() + 1)
            .count()
    };
    let mut order: Vec<(&ImageId, &String)> = sel.remove.iter().collect();
    order.sort_by_cached_key(|(id, _)| (std::cmp::Reverse(depth(id)), **id));
    order
        .into_iter()
        .map(|(id, why)| PlanImage {
            id: *id,
            reason: why.clone(),
            config_bytes: snap.images[id].config_bytes,
            repo_tags: g.tags(id).map(str::to_string).collect(),
        })
        .collect()
}

/// What `--orphans` removes, from the one list of leftovers.
struct Leftovers {
    mounts: Vec<PlanMount>,
    /// Unreferenced layers (their removal goes with the image layers).
    orphan_layers: Vec<ChainId>,
    orphans: Vec<PlanOrphan>,
    untouched: Vec<PlanOrphan>,
}

fn leftovers_to_remove(g: &Graph, o: &OrphanOptions) -> Leftovers {
    let mut out = Leftovers {
        mounts: Vec::new(),
        orphan_layers: Vec::new(),
        orphans: Vec::new(),
        untouched: Vec::new(),
    };
    if !o.enabled {
        return out;
    }
    let paths = &g.gd.paths;
    let mut items = leftovers::collect(g);
    if o.live {
        items.retain(|x| {
            x.kind == OrphanKind::Unknown
                || matches!(
                    x.subject,
                    Subject::Dir { .. }
                        | Subject::Removing { .. }
                        | Subject::WriteSet
                        | Subject::Link { .. }
                )
        });
    }
    // Only what the plan keeps needs measuring: drop what grace protects.
    let mtimes: Vec<i64> = items.iter().map(|x| mtime(&x.path)).collect();
    let mut keep = Vec::with_capacity(items.len());
    for (x, m) in items.drain(..).zip(mtimes) {
        let old_enough = if o.live {
            // Never old when its times cannot be read: a write-set that a
            // `docker load` renames into place between the listing and
            // this look would count as changed at the epoch.
            changed(&x.path).is_some_and(|t| o.now - t >= o.grace.max(MIN_LIVE_GRACE))
        } else {
            o.now - m >= o.grace
        };
        // Offline, layers have no grace (the daemon is down: nothing registers them).
        let layer = !o.live && matches!(x.subject, Subject::Layer { .. });
        if old_enough || x.kind == OrphanKind::Unknown || layer {
            keep.push((x, m));
        }
    }
    let mut items: Vec<Leftover> = keep.iter().map(|(x, _)| x.clone()).collect();
    leftovers::measure(g, &mut items);
    for (x, (_, mtime)) in items.into_iter().zip(keep) {
        let orphan = |link: Option<String>, cache_dir: Option<String>| PlanOrphan {
            path: paths.rel(&x.path).to_path_buf(),
            kind: x.kind,
            bytes: x.bytes,
            reason: x.reason.clone(),
            mtime,
            steps: OrphanSteps { link, cache_dir },
        };
        match (&x.subject, x.kind) {
            (_, OrphanKind::Unknown) => out.untouched.push(orphan(None, None)),
            (Subject::Layer { chain_id }, OrphanKind::UnreferencedLayer) => {
                out.orphan_layers.push(*chain_id)
            }
            (Subject::Layer { .. } | Subject::Entry, _) => {} // broken: never removed
            (Subject::Mount { name }, _) => {
                if let Some(m) = g.gd.mounts.get(name) {
                    out.mounts.push(PlanMount {
                        name: name.clone(),
                        bytes: x.bytes,
                        reason: x.reason.clone(),
                        dirs: RwDirs {
                            mount_id: m.mount_id.clone(),
                            init_id: m.init_id.clone(),
                        },
                    });
                }
            }
            (Subject::Dir { link, .. }, _) => out.orphans.push(orphan(link.clone(), None)),
            (Subject::Removing { cache_dir, link }, _) => {
                out.orphans.push(orphan(link.clone(), cache_dir.clone()))
            }
            (Subject::WriteSet | Subject::Link { .. }, _) => out.orphans.push(orphan(None, None)),
        }
    }
    out
}

/// The holders a plan removes, in the graph of the store as it is now: its
/// images, its mounts, its unreferenced layers and its `-removing` entries.
pub fn holders_removed<'a>(
    g: &Graph,
    images: impl IntoIterator<Item = &'a ImageId>,
    mounts: impl IntoIterator<Item = &'a str>,
    layers: impl IntoIterator<Item = &'a ChainId>,
    entries: impl IntoIterator<Item = PathBuf>,
) -> Vec<HolderId> {
    let h = &g.holders;
    let mut out: Vec<HolderId> = g.image_holders(images);
    out.extend(mounts.into_iter().filter_map(|m| h.mounts.get(m).copied()));
    out.extend(
        layers
            .into_iter()
            .filter_map(|c| h.leftover_layers.get(c).copied()),
    );
    out.extend(
        entries
            .into_iter()
            .filter_map(|p| h.leftover_entries.get(&p).copied()),
    );
    out
}

/// The layers a plan frees on the store as it is now, leaving out images
/// and mounts that could not be removed (a failure keeps what they hold).
pub fn frees(
    g: &Graph,
    plan: &Plan,
    failed_images: &HashSet<ImageId>,
    failed_mounts: &HashSet<&str>,
) -> HashSet<ChainId> {
    let root = &g.snap.root;
    let removed = holders_removed(
        g,
        plan.images
            .iter()
            .map(|i| &i.id)
            .filter(|i| !failed_images.contains(i)),
        plan.mounts
            .iter()
            .chain(plan.containers.iter().flat_map(|c| &c.mounts))
            .map(|m| m.name.as_str())
            .filter(|m| !failed_mounts.contains(m)),
        plan.layers.iter().map(|l| &l.chain_id),
        plan.orphans.iter().map(|o| root.join(&o.path)),
    );
    g.freed_layers(removed)
        .into_iter()
        .map(|(c, _)| c)
        .collect()
}

/// The layers removing `removed` frees, children before parents; a layer's
/// driver dir goes with it unless something that stays still holds the dir.
fn layers_to_remove(
    g: &Graph,
    sel: &Selection,
    removed: &[HolderId],
    orphan_layers: &[ChainId],
) -> Vec<PlanLayer> {
    let snap = g.snap;
    let freed: HashSet<Node> = g.holds.freed(removed.iter().copied()).into_iter().collect();
    let orphan: HashSet<&ChainId> = orphan_layers.iter().collect();
    // Why each layer goes: the first removed image whose chain has it.
    let mut reason: HashMap<ChainId, String> = HashMap::new();
    for id in sel.remove.keys() {
        for c in &g.chain(id) {
            reason
                .entry(*c)
                .or_insert_with(|| format!("layer of removed image {}", id.short()));
        }
    }
    let why = |c: &ChainId| -> String {
        if let Some(r) = reason.get(c) {
            return r.clone();
        }
        if orphan.contains(c) {
            return leftovers::REASON_LAYER.to_string();
        }
        let by: Vec<String> = g.layer_holders(c).map(Holder::describe).collect();
        format!("held only by what this plan removes: {}", by.join(", "))
    };
    let depth = |c: &ChainId| snap.layer_chain(Some(*c)).count();
    let mut out: Vec<PlanLayer> = freed
        .iter()
        .filter_map(|n| g.edges.chain_id(*n))
        .filter_map(|c| {
            let l = snap.layers.get(&c)?;
            // From the API alone there are no driver dirs: the daemon
            // deletes the layer; the plan only names it (and keeps "its" dir).
            let cache_id = match g.gd.cache_id(&c) {
                Some(id) => id.clone(),
                None if snap.source == crate::store::Source::Api => CacheId(DirName::new()),
                None => return None,
            };
            let dir_stays = cache_id.0.is_empty()
                || g.edges
                    .dir(&cache_id.0)
                    .is_some_and(|d| !freed.contains(&d));
            let reason = if dir_stays {
                format!(
                    "{}; its driver dir is shared with a kept layer and stays",
                    why(&c)
                )
            } else {
                why(&c)
            };
            Some(PlanLayer {
                chain_id: c,
                diff_id: l.diff_id,
                parent: l.parent,
                size: l.size,
                reason,
                data: LayerData {
                    cache_id,
                    keep_dir: dir_stays,
                },
            })
        })
        .collect();
    // Children before parents; deterministic.
    out.sort_by_cached_key(|l| (std::cmp::Reverse(depth(&l.chain_id)), l.chain_id));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph::tests::*;
    use crate::policy;
    use crate::store::Snapshot;

    fn plan_for(s: &Snapshot, all: bool) -> Plan {
        let g = Graph::build(s);
        let sel = policy::select(
            &g,
            &policy::Options {
                all,
                ..policy::Options::all(0)
            },
        );
        build(
            &g,
            &sel,
            &OrphanOptions {
                enabled: false,
                grace: 0,
                now: 0,
                live: false,
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
    fn live_leftovers_whose_times_cannot_be_read_are_not_old() {
        // Listed, then gone before its times were read (a write-set a
        // `docker load` renamed into place): never planned live. Offline
        // (nothing else runs) its mtime reads as 0, as before.
        let mut s = empty_snapshot();
        gd(&mut s)
            .write_sets
            .push(PathBuf::from("/r/image/overlay2/layerdb/tmp/write-set-1"));
        let g = Graph::build(&s);
        let sel = policy::select(&g, &policy::Options::all(0));
        let plan = |live| {
            build(
                &g,
                &sel,
                &OrphanOptions {
                    enabled: true,
                    grace: MIN_LIVE_GRACE,
                    now: 1_800_000_000,
                    live,
                },
                "now".into(),
            )
        };
        assert!(plan(true).orphans.is_empty(), "{:?}", plan(true).orphans);
        assert_eq!(plan(false).orphans.len(), 1);
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
