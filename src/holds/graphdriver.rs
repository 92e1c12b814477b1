//! The graphdriver source's half of the holds: its nodes and edges (image →
//! every layer of its chain; layer → parent layer and its driver dir; mount →
//! its RW and init dirs and its parent layer) and its holders (images,
//! container mounts, BuildKit, leftovers, unknowns). Adding a kind of holder
//! is one more `Hold` pushed in [`build`].
//!
//! The edges mirror the daemon's reference counts (moby
//! `daemon/internal/layer/layer_store.go` `loadLayer`, `loadMount`,
//! `ro_layer.go`): a child layer and a mount each hold a reference on their
//! parent, and an image holds its top layer.

use super::{Hold, Holder, HolderId, Holds};
use crate::ids::{ChainId, ContainerId, ImageId, MountId};
use crate::reach::{Kind, Marker, Node, Refs};
use crate::store::Snapshot;
use crate::store::graphdriver::{BuildkitStatus, State};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;

const NONE: u32 = u32::MAX;

/// The index of `x` in the sorted list `v`.
fn position<T: Ord>(v: &[T], x: &T) -> Option<u32> {
    v.binary_search(x).ok().map(|i| i as u32)
}

/// The graphdriver snapshot as dense nodes and edges. Each node list is in
/// key order (taken from the snapshot's sorted maps), so a node's number is
/// found by binary search: a hash index beside each list would cost
/// megabytes on a root of 30,000 layers and dirs.
pub struct Edges<'s> {
    pub images: Vec<ImageId>,
    pub layers: Vec<ChainId>,
    pub mounts: Vec<&'s str>,
    pub dirs: Vec<&'s str>,
    /// Layers of each image's chain that exist: `image_layers[image_at[i]..image_at[i+1]]`.
    image_layers: Vec<u32>,
    image_at: Vec<u32>,
    layer_parent: Vec<u32>,
    layer_dir: Vec<u32>,
    /// The dir a BuildKit dir's overlay stacks on (its first `lower`).
    dir_lower: Vec<u32>,
    /// RW dir, init dir, parent layer.
    mount_refs: Vec<[u32; 3]>,
}

impl<'s> Edges<'s> {
    /// `chains` are the images' chain IDs, in the snapshot's image order;
    /// `layers` the snapshot's layers, in its order.
    pub fn new(
        snap: &Snapshot,
        gd: &'s State,
        chains: &[Vec<ChainId>],
        layers: Vec<ChainId>,
    ) -> Self {
        debug_assert!(layers.iter().eq(snap.layers.keys()));
        let dirs: Vec<&str> = gd.dirs.keys().map(|d| d.as_str()).collect();
        let layer_key = |c: &ChainId| position(&layers, c);
        let dir_key = |d: &str| position(&dirs, &d);
        let layer_of = |c: &ChainId| layer_key(c).unwrap_or(NONE);
        let layer_parent: Vec<u32> = snap
            .layers
            .values()
            .map(|l| l.parent.as_ref().map_or(NONE, layer_of))
            .collect();
        let images: Vec<ImageId> = snap.images.keys().copied().collect();
        // Three independent passes of 10,000s of lookups each.
        let ((image_layers, image_at), (layer_dir, dir_lower)) = rayon::join(
            || image_keys(chains, &layers, &layer_parent),
            || {
                rayon::join(
                    || {
                        // cache_ids and layers are both in chain ID order.
                        let mut ids = gd.cache_ids.iter().peekable();
                        (layers.iter())
                            .map(|c| {
                                while ids.next_if(|(k, _)| *k < c).is_some() {}
                                match ids.next_if(|(k, _)| *k == c) {
                                    Some((_, d)) => dir_key(&d.0).unwrap_or(NONE),
                                    None => NONE,
                                }
                            })
                            .collect::<Vec<u32>>()
                    },
                    || {
                        (gd.dirs.values())
                            .map(|d| lower_dir(gd, d).and_then(dir_key).unwrap_or(NONE))
                            .collect::<Vec<u32>>()
                    },
                )
            },
        );
        let mounts: Vec<&str> = gd.mounts.keys().map(String::as_str).collect();
        let dir_of = |id: Option<&MountId>| id.and_then(|i| dir_key(&i.0)).unwrap_or(NONE);
        let mount_refs = gd
            .mounts
            .values()
            .map(|m| {
                [
                    dir_of(Some(&m.mount_id)),
                    dir_of(m.init_id.as_ref()),
                    m.parent.as_ref().map_or(NONE, layer_of),
                ]
            })
            .collect();
        Edges {
            images,
            layers,
            mounts,
            dirs,
            image_layers,
            image_at,
            layer_parent,
            layer_dir,
            dir_lower,
            mount_refs,
        }
    }

    /// The layer keys of image `id`'s chain that have a layer, base first.
    pub fn image_layer_keys(&self, id: &ImageId) -> &[u32] {
        match position(&self.images, id) {
            Some(k) => {
                let k = k as usize;
                &self.image_layers[self.image_at[k] as usize..self.image_at[k + 1] as usize]
            }
            None => &[],
        }
    }

    pub fn image(&self, id: &ImageId) -> Option<Node> {
        position(&self.images, id).map(|k| Node::new(Kind::Image, k))
    }

    pub fn layer(&self, c: &ChainId) -> Option<Node> {
        position(&self.layers, c).map(|k| Node::new(Kind::Layer, k))
    }

    pub fn mount(&self, name: &str) -> Option<Node> {
        position(&self.mounts, &name).map(|k| Node::new(Kind::Mount, k))
    }

    pub fn dir(&self, name: &str) -> Option<Node> {
        position(&self.dirs, &name).map(|k| Node::new(Kind::Dir, k))
    }

    /// The chain ID of a layer node.
    pub fn chain_id(&self, n: Node) -> Option<ChainId> {
        (n.kind == Kind::Layer)
            .then(|| self.layers.get(n.key as usize).copied())
            .flatten()
    }

    /// The name of a dir node.
    pub fn dir_name(&self, n: Node) -> Option<&'s str> {
        (n.kind == Kind::Dir)
            .then(|| self.dirs.get(n.key as usize).copied())
            .flatten()
    }
}

/// Each image's layer keys, one list (`image_layers[image_at[i]..image_at[i + 1]]`).
fn image_keys(
    chains: &[Vec<ChainId>],
    layers: &[ChainId],
    layer_parent: &[u32],
) -> (Vec<u32>, Vec<u32>) {
    let mut image_layers = Vec::new();
    let mut image_at = Vec::with_capacity(chains.len() + 1);
    for chain in chains {
        image_at.push(image_layers.len() as u32);
        let at = image_layers.len();
        image_layers.extend(chain_keys(chain, layers, layer_parent));
        debug_assert!(
            image_layers[at..]
                .iter()
                .copied()
                .eq(chain.iter().filter_map(|c| position(layers, c)))
        );
    }
    image_at.push(image_layers.len() as u32);
    (image_layers, image_at)
}

/// The layer keys of `chain` (base first; chain IDs without a layer left
/// out). In a whole store a chain is its top layer's parent walk, so each
/// key is checked against the walk (one comparison) before a binary search
/// is spent on it: 300,000 searches on a root of 10,000 images otherwise.
fn chain_keys(chain: &[ChainId], layers: &[ChainId], parent: &[u32]) -> Vec<u32> {
    let mut out = Vec::with_capacity(chain.len());
    // The key the parent walk predicts for the next chain ID down.
    let mut next = None;
    for c in chain.iter().rev() {
        let key = match next {
            Some(k) if layers.get(k as usize) == Some(c) => Some(k),
            _ => position(layers, c),
        };
        next = key.map(|k| parent[k as usize]).filter(|&p| p != NONE);
        out.extend(key);
    }
    out.reverse();
    out
}

impl Refs for Edges<'_> {
    fn count(&self, kind: Kind) -> usize {
        match kind {
            Kind::Image => self.images.len(),
            Kind::Layer => self.layers.len(),
            Kind::Mount => self.mounts.len(),
            Kind::Dir => self.dirs.len(),
            // containerd's kinds: a graphdriver root has none.
            _ => 0,
        }
    }

    fn refs(&self, n: Node, out: &mut Vec<Node>) {
        let k = n.key as usize;
        let push = |out: &mut Vec<Node>, kind, key: u32| {
            if key != NONE {
                out.push(Node::new(kind, key));
            }
        };
        match n.kind {
            Kind::Image => {
                let (a, b) = (self.image_at[k] as usize, self.image_at[k + 1] as usize);
                out.extend(
                    self.image_layers[a..b]
                        .iter()
                        .map(|l| Node::new(Kind::Layer, *l)),
                );
            }
            Kind::Layer => {
                push(out, Kind::Layer, self.layer_parent[k]);
                push(out, Kind::Dir, self.layer_dir[k]);
            }
            Kind::Mount => {
                let [rw, init, parent] = self.mount_refs[k];
                push(out, Kind::Dir, rw);
                push(out, Kind::Dir, init);
                push(out, Kind::Layer, parent);
            }
            // A dir holds the dir its overlay stacks on: for layerdb layers
            // that is the parent layer's dir anyway; for BuildKit it may be
            // BuildKit's own copy of it.
            Kind::Dir => push(out, Kind::Dir, self.dir_lower[k]),
            _ => {}
        }
    }
}

/// The dir the first entry of a dir's `lower` (`l/<link>`) points to.
pub fn lower_dir<'s>(gd: &'s State, d: &crate::store::graphdriver::DriverDir) -> Option<&'s str> {
    let link = d.lower.as_ref()?.first.strip_prefix("l/")?;
    match &gd.links.get(link)?.target {
        crate::store::graphdriver::LinkTarget::DriverDir(x) => Some(x.as_str()),
        _ => None,
    }
}

/// The holder ids of the snapshot's things, to ask "what does removing these free".
#[derive(Default)]
pub struct HolderIds {
    pub images: HashMap<ImageId, HolderId>,
    pub mounts: HashMap<String, HolderId>,
    /// Layers nothing but themselves (and other leftovers) holds.
    pub leftover_layers: BTreeMap<ChainId, HolderId>,
    /// `-removing` entries and entries the daemon cannot load, by path.
    pub leftover_entries: HashMap<PathBuf, HolderId>,
}

/// Why nothing references a driver dir dockgc still will not call an orphan.
pub const UNRESOLVED: &str =
    "unreferenced, but an unreadable layer, mount or container may reference it";
pub const BUILDKIT_NAME: &str = "BuildKit-style name not found in buildkit/snapshots.db";
pub const NOT_A_DIR: &str = "not a directory (e.g. backingFsBlockDev)";
pub const FOREIGN_NAME: &str = "name the daemon never generates";

/// Leftovers of the daemon's feature probes (overlay2 `check.go`).
pub const PROBE_PREFIXES: &[&str] = &[
    "check-overlayfs-support",
    "opaque-bug-check",
    "metacopy-check",
    "userxattr-check",
];

/// The holds of a graphdriver snapshot, with `extra` holders appended.
pub fn build(
    snap: &Snapshot,
    gd: &State,
    edges: &Edges,
    mount_owners: &HashMap<&str, ContainerId>,
    extra: Vec<Hold>,
) -> (Holds, HolderIds) {
    let mut holds: Vec<Hold> = Vec::new();
    let mut ids = HolderIds::default();
    let add = |holds: &mut Vec<Hold>, holder, roots| {
        holds.push(Hold { holder, roots });
        (holds.len() - 1) as HolderId
    };

    for (i, id) in edges.images.iter().enumerate() {
        let h = add(
            &mut holds,
            Holder::Image { id: *id },
            vec![Node::new(Kind::Image, i as u32)],
        );
        ids.images.insert(*id, h);
    }
    for (i, name) in edges.mounts.iter().enumerate() {
        let holder = Holder::Mount {
            name: name.to_string(),
            container: mount_owners.get(name).cloned(),
        };
        let h = add(&mut holds, holder, vec![Node::new(Kind::Mount, i as u32)]);
        ids.mounts.insert(name.to_string(), h);
    }
    for (what, roots) in buildkit_holds(snap, gd, edges) {
        add(&mut holds, Holder::Buildkit { what }, roots);
    }

    // What the holders so far reach; every other layer is a leftover that
    // holds itself and its ancestors.
    let mut marker = Marker::new(edges);
    let mut reached = Reached {
        layers: vec![false; edges.layers.len()],
        dirs: vec![false; edges.dirs.len()],
    };
    let roots = holds.iter().flat_map(|h| h.roots.iter().copied());
    marker.mark(edges, roots, |n| reached.note(n));
    let leftovers: Vec<u32> = (0..edges.layers.len() as u32)
        .filter(|i| !reached.layers[*i as usize])
        .collect();
    for i in leftovers {
        let n = Node::new(Kind::Layer, i);
        let chain_id = edges.layers[i as usize];
        let h = add(&mut holds, Holder::LeftoverLayer { chain_id }, vec![n]);
        ids.leftover_layers.insert(chain_id, h);
        marker.mark(edges, [n], |n| reached.note(n));
    }
    let entries = gd
        .removing
        .iter()
        .map(|r| (&r.path, &r.cache_id))
        .chain(gd.broken_layers.iter().map(|b| (&b.path, &b.cache_id)));
    for (path, cache_id) in entries {
        let roots: Vec<Node> = cache_id.iter().filter_map(|c| edges.dir(&c.0)).collect();
        let holder = Holder::LeftoverEntry {
            path: gd.paths.rel(path).to_path_buf(),
        };
        for n in &roots {
            reached.note(*n);
        }
        let h = add(&mut holds, holder, roots);
        ids.leftover_entries.insert(path.clone(), h);
    }

    // Dirs nothing holds that dockgc still cannot call orphans.
    let mut unknown: BTreeMap<&'static str, Vec<Node>> = BTreeMap::new();
    for (i, name) in edges.dirs.iter().enumerate() {
        if reached.dirs[i] {
            continue;
        }
        if let Some(why) = unknown_reason(snap, gd, name) {
            unknown
                .entry(why)
                .or_default()
                .push(Node::new(Kind::Dir, i as u32));
        }
    }
    for (why, roots) in unknown {
        add(&mut holds, Holder::Unknown { why: why.into() }, roots);
    }
    holds.extend(extra);
    drop(marker);
    (Holds::compute(edges, holds), ids)
}

/// Which layers and dirs some holder reaches, while holders are added.
struct Reached {
    layers: Vec<bool>,
    dirs: Vec<bool>,
}

impl Reached {
    fn note(&mut self, n: Node) {
        match n.kind {
            Kind::Layer => self.layers[n.key as usize] = true,
            Kind::Dir => self.dirs[n.key as usize] = true,
            _ => {}
        }
    }
}

/// BuildKit's holds: one per cache record the daemon would load (dropped
/// and deleted records hold nothing, whatever `snapshots.db` still lists).
/// A record holds its snapshot in moby's adapter
/// (`daemon/internal/builder-next/adapters/snapshot/snapshot.go`): the dir
/// the key's `Prepare` created, the dir its data was committed to, the layer
/// it is or became (`chainid`; a layer holds its parents), and the same for
/// every snapshot below it (`parent`), whose dirs are its overlay lowers.
/// Runtime references of a running build are not on disk; with the daemon
/// stopped there are none.
fn buildkit_holds(snap: &Snapshot, gd: &State, edges: &Edges) -> Vec<(String, Vec<Node>)> {
    let bk = &gd.buildkit;
    if let BuildkitStatus::Unreadable { why } = &bk.status {
        let roots = substring_roots(snap, gd, edges);
        return vec![(
            format!("named in buildkit/snapshots.db, which could not be read: {why}"),
            roots,
        )];
    }
    crate::buildcache::loaded(snap, bk)
        .into_iter()
        .filter_map(|id| {
            let key = bk.snapshot_key(id);
            let roots = snapshot_roots(bk, edges, key);
            (!roots.is_empty()).then(|| (format!("record {id}"), roots))
        })
        .collect()
}

/// The dirs and layers of snapshot `key` and of every snapshot below it.
fn snapshot_roots(bk: &crate::store::graphdriver::Buildkit, edges: &Edges, key: &str) -> Vec<Node> {
    let mut roots = Vec::new();
    let mut seen: HashSet<&str> = HashSet::new();
    let mut todo = vec![key];
    while let Some(k) = todo.pop() {
        if !seen.insert(k) {
            continue;
        }
        if let Some(c) = bk.layer_of(k) {
            roots.extend(edges.layer(&c));
        }
        let Some(s) = bk.snapshots.get(k) else {
            continue;
        };
        if s.has_own_dir() {
            roots.extend(edges.dir(k));
        }
        if let Some(c) = s.committed.as_deref() {
            roots.extend(edges.dir(c));
            todo.push(c);
        }
        if let Some(p) = s.parent.as_deref().filter(|p| !p.is_empty()) {
            todo.push(p);
        }
    }
    roots
}

/// The substring rule's layers and dirs: every candidate name found in the
/// bytes of `snapshots.db`.
fn substring_roots(snap: &Snapshot, gd: &State, edges: &Edges) -> Vec<Node> {
    let names: HashSet<&str> = gd
        .buildkit
        .referenced_names
        .iter()
        .map(String::as_str)
        .collect();
    if names.is_empty() {
        return Vec::new();
    }
    let mut roots: Vec<Node> = snap
        .layers
        .keys()
        .filter(|c| {
            names.contains(c.hex().as_str())
                || gd.cache_id(c).is_some_and(|d| names.contains(d.0.as_str()))
        })
        .filter_map(|c| edges.layer(c))
        .collect();
    roots.extend(names.iter().filter_map(|n| edges.dir(n)));
    roots
}

/// Why an unheld driver dir is not an orphan, if it is not one.
fn unknown_reason(snap: &Snapshot, gd: &State, name: &str) -> Option<&'static str> {
    if PROBE_PREFIXES.iter().any(|p| name.starts_with(p)) {
        return None; // a probe leftover
    }
    let d = gd.dirs.get(name)?;
    if !d.is_dir {
        return Some(NOT_A_DIR);
    }
    if crate::ids::is_buildkit_key(name) {
        // BuildKit names its snapshots like this; without a readable
        // snapshots.db there is no proof it is unused.
        return Some(BUILDKIT_NAME);
    }
    if MountId::parse(name).is_some() {
        return (!snap.unresolved.is_empty()).then_some(UNRESOLVED);
    }
    Some(FOREIGN_NAME)
}
