//! The analysis of a [`Snapshot`]: what the daemon would load (its restore
//! rules), who uses what, and the holds over the snapshot's reference graph
//! ([`crate::holds`]). Pure: no disk access.

use crate::holds::graphdriver::{Edges, HolderIds, PROBE_PREFIXES};
use crate::holds::{Hold, Holder, HolderId, Holds};
use crate::ids::{ChainId, ContainerId, ImageId};
use crate::reach::Node;
use crate::store::graphdriver::{self, Mount};
use crate::store::{Container, Snapshot, Store};
use std::collections::{BTreeSet, HashMap, HashSet};

/// What a graphdriver directory is (its place in the layout) and, for one
/// that is nobody's data, whether it is an orphan.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DirRole {
    /// The `cache-id` of a layerdb layer.
    Layer(ChainId),
    /// A mount's RW dir (`mount-id`).
    MountRw(String),
    /// A mount's init dir (`init-id`).
    MountInit(String),
    /// The `cache-id` of a `-removing` layerdb entry: a deletion in progress.
    Removing,
    /// The `cache-id` of a layerdb entry the daemon cannot load.
    BrokenLayer(ChainId),
    /// Named in `buildkit/snapshots.db`.
    Buildkit,
    /// Left by the driver's feature probes (`check-overlayfs-support*`, ...).
    Probe,
    /// No layer's or mount's own dir, but a held dir's overlay stacks on it
    /// (BuildKit's copy of a parent layer's dir).
    Lower,
    /// Nothing holds it and its name is one the daemon generates.
    Orphan,
    /// Not referenced, but dockgc cannot tell what it is; never removed.
    Unknown(String),
}

pub struct Graph<'s> {
    pub snap: &'s Snapshot,
    /// The graphdriver half of the snapshot.
    pub gd: &'s graphdriver::State,
    /// Layers the daemon can load: their files parse and every ancestor loads.
    /// A B-tree collected at once, packed: a hash set's buckets for 30,000
    /// layers are twice its size.
    pub loadable: Loadable,
    /// Images the daemon restores at start (`store.restore`).
    pub loaded: BTreeSet<ImageId>,
    /// Children of each loaded image among loaded images (`parent` metadata).
    pub children: HashMap<ImageId, Vec<ImageId>>,
    /// Indexes into `snap.refs`, per image.
    pub refs_by_image: HashMap<ImageId, Vec<usize>>,
    /// Containers whose `Image` is this image (Docker's CONTAINERS column).
    pub containers_by_image: HashMap<ImageId, Vec<ContainerId>>,
    /// Images a container uses through `Image` or an image mount.
    pub used_by_containers: HashSet<ImageId>,
    /// The containers that use each image, as its image or an image mount.
    pub image_users: HashMap<ImageId, Vec<ContainerId>>,
    /// Role of each driver directory, by name.
    pub dir_roles: DirRoles<'s>,
    /// The container that owns each mount: its own RW layer (named by the
    /// container ID) and its image mounts' layers.
    pub mount_owners: HashMap<&'s str, ContainerId>,
    /// The snapshot as nodes and edges.
    pub edges: Edges<'s>,
    /// Who holds every layer and dir.
    pub holds: Holds,
    /// The holder of each image, mount and leftover.
    pub holders: HolderIds,
}

/// The OS the daemon runs on; images for another OS are not restored.
const HOST_OS: &str = "linux";

impl<'s> Graph<'s> {
    pub fn build(snap: &'s Snapshot) -> Graph<'s> {
        Self::build_with(snap, Vec::new())
    }

    /// With extra holders beside the store's own (each a reason and the
    /// nodes it holds): every consumer of the holds then sees them.
    pub fn build_with(snap: &'s Snapshot, extra: Vec<Hold>) -> Graph<'s> {
        // Containerd snapshots have their own analysis (`holds::containerd`,
        // `usage::containerd`); commands dispatch on the store before this.
        let Store::Graphdriver(gd) = &snap.store else {
            panic!("Graph::build needs a graphdriver snapshot; this one is containerd's")
        };
        // The chain IDs (a SHA-256 per layer of every image) need nothing
        // of the layer store: computed while its parent chains are checked.
        // Kept only until the edges hold each chain as layer keys: as chain
        // IDs they would be 4 MB at df's memory peak on 10,000 images.
        let ((layers, loadable), chains) = rayon::join(
            || loadable_layers(snap),
            || -> Vec<Vec<ChainId>> {
                (snap.images.values())
                    .map(|img| ChainId::chain(&img.diff_ids))
                    .collect()
            },
        );
        let mut loaded = BTreeSet::new();
        for ((id, img), chain) in snap.images.iter().zip(&chains) {
            let os_ok = img
                .os
                .as_deref()
                .is_none_or(|o| o.is_empty() || o == HOST_OS);
            let top_ok = chain
                .last()
                .is_none_or(|top| loadable.contains(&layers, top));
            if os_ok && top_ok {
                loaded.insert(*id);
            }
        }
        let mut children: HashMap<ImageId, Vec<ImageId>> = HashMap::new();
        for id in &loaded {
            if let Some(p) = snap.images[id].parent
                && loaded.contains(&p)
            {
                children.entry(p).or_default().push(*id);
            }
        }
        let mut refs_by_image: HashMap<ImageId, Vec<usize>> = HashMap::new();
        for (i, r) in snap.refs.iter().enumerate() {
            refs_by_image.entry(r.image).or_default().push(i);
        }
        let mut containers_by_image: HashMap<ImageId, Vec<ContainerId>> = HashMap::new();
        let mut used_by_containers = HashSet::new();
        let mut image_users: HashMap<ImageId, Vec<ContainerId>> = HashMap::new();
        let mut mount_owners = HashMap::new();
        for c in snap.containers.values() {
            if let Some(img) = c.image {
                containers_by_image
                    .entry(img)
                    .or_default()
                    .push(c.id.clone());
                used_by_containers.insert(img);
            }
            used_by_containers.extend(c.image_mounts.iter().map(|(i, _)| *i));
            for i in c.image.iter().chain(c.image_mounts.iter().map(|(i, _)| i)) {
                let users: &mut Vec<ContainerId> = image_users.entry(*i).or_default();
                if !users.contains(&c.id) {
                    users.push(c.id.clone());
                }
            }
            mount_owners.insert(c.id.0.as_str(), c.id.clone());
            for (_, m) in &c.image_mounts {
                mount_owners.insert(m.as_str(), c.id.clone());
            }
        }
        let edges = Edges::new(snap, gd, &chains, layers);
        drop(chains);
        let (holds, holders) =
            crate::holds::graphdriver::build(snap, gd, &edges, &mount_owners, extra);
        let dir_roles = classify_dirs(gd, &edges, &holds);
        Graph {
            snap,
            gd,
            loadable,
            loaded,
            children,
            refs_by_image,
            containers_by_image,
            used_by_containers,
            image_users,
            dir_roles,
            mount_owners,
            edges,
            holds,
            holders,
        }
    }

    /// Tags (not digest references) of an image.
    pub fn tags(&self, id: &ImageId) -> impl Iterator<Item = &'s str> + '_ {
        self.refs(id)
            .filter(|r| !r.is_digest())
            .map(|r| r.reference.as_str())
    }

    pub fn refs(&self, id: &ImageId) -> impl Iterator<Item = &'s crate::store::Reference> + '_ {
        let snap = self.snap;
        self.refs_by_image
            .get(id)
            .into_iter()
            .flatten()
            .map(move |i| &snap.refs[*i])
    }

    pub fn has_children(&self, id: &ImageId) -> bool {
        self.children.get(id).is_some_and(|c| !c.is_empty())
    }

    /// Shown by `docker images` without `-a`: referenced, or without children.
    pub fn is_listed(&self, id: &ImageId) -> bool {
        self.loaded.contains(id) && (self.refs_by_image.contains_key(id) || !self.has_children(id))
    }

    /// Docker's "dangling": no tag (digest-only counts) and no children.
    pub fn is_dangling(&self, id: &ImageId) -> bool {
        self.loaded.contains(id) && self.tags(id).next().is_none() && !self.has_children(id)
    }

    /// The mount (RW layer) of a container, when it has one.
    pub fn mount_of(&self, c: &Container) -> Option<&'s Mount> {
        self.gd.mounts.get(&c.id.0)
    }

    /// Every prefix chain ID of the image's `diff_ids`, base first, whether
    /// or not a layer has it (empty for an image the snapshot lacks).
    pub fn chain(&self, id: &ImageId) -> Vec<ChainId> {
        let Some(img) = self.snap.images.get(id) else {
            return Vec::new();
        };
        // A chain whose every layer exists is its layer keys; only a
        // damaged image's chain is hashed again.
        match self.edges.image_layer_keys(id) {
            keys if keys.len() == img.diff_ids.len() => (keys.iter())
                .map(|k| self.edges.layers[*k as usize])
                .collect(),
            _ => ChainId::chain(&img.diff_ids),
        }
    }

    /// The daemon loads this layer at start (see [`Loadable`]).
    pub fn is_loadable(&self, c: &ChainId) -> bool {
        self.loadable.contains(&self.edges.layers, c)
    }

    /// The layer node of a chain ID.
    pub fn layer_node(&self, c: &ChainId) -> Option<Node> {
        self.edges.layer(c)
    }

    /// The holders of a layer.
    pub fn layer_holders(&self, c: &ChainId) -> impl Iterator<Item = &Holder> + '_ {
        self.layer_node(c)
            .into_iter()
            .flat_map(|n| self.holds.of(n))
            .map(|h| self.holds.holder(*h))
    }

    /// Layers (with their sizes) that removing `removed` frees.
    pub fn freed_layers(&self, removed: impl IntoIterator<Item = HolderId>) -> Vec<(ChainId, u64)> {
        self.holds
            .freed(removed)
            .into_iter()
            .filter_map(|n| self.edges.chain_id(n))
            .map(|c| (c, self.snap.layers.get(&c).map_or(0, |l| l.size)))
            .collect()
    }

    /// The holders of these images.
    pub fn image_holders<'a>(&self, ids: impl IntoIterator<Item = &'a ImageId>) -> Vec<HolderId> {
        ids.into_iter()
            .filter_map(|i| self.holders.images.get(i).copied())
            .collect()
    }
}

/// Mirrors `loadLayer`'s recursion: a layer loads only if its parent loads.
/// A missing parent or a `parent` cycle makes the whole subtree unloadable.
/// Returns the store's layers (sorted; the graph's layer nodes) beside.
fn loadable_layers(snap: &Snapshot) -> (Vec<ChainId>, Loadable) {
    const UNSEEN: u8 = 0;
    const VISITING: u8 = 1;
    const OK: u8 = 2;
    const BAD: u8 = 3;
    // By position in the layer store, not in a map of chain IDs: 30,000
    // layers' states would be a megabyte at df's memory peak.
    let layers: Vec<ChainId> = snap.layers.keys().copied().collect();
    let parents: Vec<Option<ChainId>> = snap.layers.values().map(|l| l.parent).collect();
    let mut state = vec![UNSEEN; layers.len()];
    let mut path: Vec<usize> = Vec::new();
    for start in 0..layers.len() {
        if state[start] != UNSEEN {
            continue;
        }
        // Walk up the parent chain iteratively (chains can be 125 deep).
        path.clear();
        let mut cur = Some(start);
        let verdict = loop {
            let Some(i) = cur else { break OK };
            match state[i] {
                OK => break OK,
                BAD | VISITING => break BAD,
                _ => {}
            }
            state[i] = VISITING;
            path.push(i);
            cur = match parents[i] {
                None => None,
                Some(p) => match layers.binary_search(&p) {
                    Ok(j) => Some(j),
                    Err(_) => break BAD,
                },
            };
        };
        for &i in &path {
            state[i] = verdict;
        }
    }
    let ok = state.iter().map(|&s| s == OK).collect();
    (layers, Loadable { ok })
}

/// The layers the daemon loads at start: each with its whole parent chain
/// on record and no cycle (moby `layer_store.go` `loadLayer`).
#[derive(Debug)]
pub struct Loadable {
    /// Whether each layer of the store (in chain ID order) loads.
    ok: Vec<bool>,
}

impl Loadable {
    /// `layers`: the store's layers, sorted (the graph's `edges.layers`).
    fn contains(&self, layers: &[ChainId], c: &ChainId) -> bool {
        layers.binary_search(c).is_ok_and(|i| self.ok[i])
    }

    pub fn is_empty(&self) -> bool {
        !self.ok.contains(&true)
    }
}

/// Each driver dir's place in the layout; among those that are nobody's
/// data, the ones some holder (BuildKit, an unknown) claims.
fn classify_dirs<'s>(gd: &'s graphdriver::State, edges: &Edges, holds: &Holds) -> DirRoles<'s> {
    // Named roles by dir key (the order of `gd.dirs`); a later one wins,
    // as the mounts' over the layers', except for the leftover entries.
    let names: Vec<&'s str> = gd.dirs.keys().map(|d| d.as_str()).collect();
    let mut named: Vec<Option<DirRole>> = vec![None; names.len()];
    let mut set = |name: &str, role: DirRole, overwrite: bool| {
        if let Ok(i) = names.binary_search(&name)
            && (overwrite || named[i].is_none())
        {
            named[i] = Some(role);
        }
    };
    for (c, d) in &gd.cache_ids {
        set(&d.0, DirRole::Layer(*c), true);
    }
    for m in gd.mounts.values() {
        set(&m.mount_id.0, DirRole::MountRw(m.name.clone()), true);
        if let Some(i) = &m.init_id {
            set(&i.0, DirRole::MountInit(m.name.clone()), true);
        }
    }
    for b in &gd.broken_layers {
        if let Some(c) = &b.cache_id {
            set(&c.0, DirRole::BrokenLayer(b.chain_id), false);
        }
    }
    for r in &gd.removing {
        if let Some(c) = &r.cache_id {
            set(&c.0, DirRole::Removing, false);
        }
    }
    let roles = names
        .iter()
        .zip(named)
        .map(|(&n, named)| {
            let node = edges.dir(n);
            let claimed = |f: &dyn Fn(&Holder) -> bool| node.is_some_and(|n| holds.held_by(n, f));
            if let Some(r) = named {
                r
            } else if claimed(&|h| matches!(h, Holder::Buildkit { .. })) {
                DirRole::Buildkit
            } else if claimed(&|h| !matches!(h, Holder::Unknown { .. })) {
                DirRole::Lower
            } else if PROBE_PREFIXES.iter().any(|p| n.starts_with(p)) {
                DirRole::Probe
            } else if let Some(Holder::Unknown { why }) = node
                .and_then(|n| holds.of(n).first())
                .map(|h| holds.holder(*h))
            {
                DirRole::Unknown(why.clone())
            } else {
                DirRole::Orphan
            }
        })
        .collect();
    DirRoles { names, roles }
}

/// The role of each driver dir, by name: two lists in name order (a map
/// of 30,000 dirs kept megabytes of node room at df's memory peak).
#[derive(Debug)]
pub struct DirRoles<'s> {
    names: Vec<&'s str>,
    roles: Vec<DirRole>,
}

impl<'s> DirRoles<'s> {
    pub fn get(&self, name: &str) -> Option<&DirRole> {
        let i = self.names.binary_search(&name).ok()?;
        Some(&self.roles[i])
    }

    pub fn iter(&self) -> impl Iterator<Item = (&'s str, &DirRole)> + '_ {
        self.names.iter().copied().zip(&self.roles)
    }

    pub fn values(&self) -> impl Iterator<Item = &DirRole> + '_ {
        self.roles.iter()
    }
}

impl<'a, 's> IntoIterator for &'a DirRoles<'s> {
    type Item = (&'s str, &'a DirRole);
    type IntoIter = std::iter::Zip<
        std::iter::Copied<std::slice::Iter<'a, &'s str>>,
        std::slice::Iter<'a, DirRole>,
    >;
    fn into_iter(self) -> Self::IntoIter {
        self.names.iter().copied().zip(self.roles.iter())
    }
}

impl std::ops::Index<&str> for DirRoles<'_> {
    type Output = DirRole;
    fn index(&self, name: &str) -> &DirRole {
        self.get(name)
            .unwrap_or_else(|| panic!("no driver dir {name}"))
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::ids::{CacheId, DiffId, Digest, MountId};
    use crate::store::graphdriver::{DriverDir, Mount};
    use crate::store::*;
    use std::collections::BTreeMap;
    use std::path::{Path, PathBuf};

    /// A hand-made snapshot for pure tests.
    pub fn empty_snapshot() -> Snapshot {
        Snapshot {
            root: PathBuf::from("/r"),
            engine_id_present: true,
            refs: vec![],
            images: BTreeMap::new(),
            layers: BTreeMap::new(),
            containers: BTreeMap::new(),
            volumes: vec![],
            anomalies: vec![],
            unresolved: vec![],
            store: Store::Graphdriver(graphdriver::State {
                paths: graphdriver::Paths::new(Path::new("/r"), "overlay2"),
                cache_ids: BTreeMap::new(),
                mounts: BTreeMap::new(),
                dirs: BTreeMap::new(),
                links: BTreeMap::new(),
                removing: vec![],
                broken_layers: vec![],
                write_sets: vec![],
                buildkit: graphdriver::Buildkit::default(),
            }),
            source: Source::Disk,
        }
    }

    /// The graphdriver half of a test snapshot.
    pub fn gd(s: &mut Snapshot) -> &mut graphdriver::State {
        s.graphdriver_mut().expect("graphdriver snapshot")
    }

    pub fn diff(n: u8) -> DiffId {
        DiffId(Digest::of_bytes(&[n]))
    }

    /// Adds the layers of `diffs` (sizes = `size`), their driver dirs, and an image.
    pub fn add_image(
        s: &mut Snapshot,
        diffs: &[u8],
        size: u64,
        parent: Option<ImageId>,
    ) -> ImageId {
        let diff_ids: Vec<DiffId> = diffs.iter().map(|d| diff(*d)).collect();
        let chain = ChainId::chain(&diff_ids);
        for (i, c) in chain.iter().enumerate() {
            let cache = c.hex();
            s.layers.entry(*c).or_insert(Layer {
                chain_id: *c,
                diff_id: diff_ids[i],
                size,
                parent: (i > 0).then(|| chain[i - 1]),
            });
            gd(s)
                .cache_ids
                .entry(*c)
                .or_insert(CacheId(cache.as_str().into()));
            gd(s)
                .dirs
                .entry(cache.as_str().into())
                .or_insert(dir(&cache));
        }
        let id = ImageId(Digest::of_bytes(format!("{diffs:?}{parent:?}").as_bytes()));
        s.images.insert(
            id,
            Image {
                id,
                created: None,
                created_unix: None,
                labels: Default::default(),
                diff_ids,
                os: Some("linux".into()),
                parent,
                last_updated: None,
                built_locally: false,
                config_bytes: 10,
            },
        );
        id
    }

    pub fn dir(_name: &str) -> DriverDir {
        DriverDir {
            is_dir: true,
            has_diff: true,
            link: None,
            lower: None,
        }
    }

    pub fn tag(s: &mut Snapshot, name: &str, id: ImageId) {
        let repo = name.split([':', '@']).next().unwrap().to_string();
        s.refs.push(Reference {
            repository: repo,
            reference: name.into(),
            image: id,
        });
    }

    pub fn add_container(s: &mut Snapshot, n: u8, image: ImageId, running: bool) -> ContainerId {
        let id = ContainerId(format!("{n:02x}").repeat(32));
        let mount = MountId(format!("{:02x}", n.wrapping_add(1)).repeat(32));
        let top = ChainId::chain(&s.images[&image].diff_ids).last().copied();
        gd(s).mounts.insert(
            id.0.clone(),
            Mount {
                name: id.0.clone(),
                mount_id: mount.clone(),
                init_id: Some(MountId(format!("{}-init", mount.0))),
                parent: top,
            },
        );
        gd(s).dirs.insert(mount.0.as_str().into(), dir(&mount.0));
        gd(s).dirs.insert(
            format!("{}-init", mount.0).as_str().into(),
            dir(&format!("{}-init", mount.0)),
        );
        s.containers.insert(
            id.clone(),
            Container {
                id: id.clone(),
                name: format!("c{n}"),
                image: Some(image),
                config_image: None,
                driver: Some("overlay2".into()),
                state: ContainerState {
                    running,
                    has_started: running,
                    ..Default::default()
                },
                created: None,
                started_at: None,
                finished_at: None,
                image_mounts: vec![],
                volumes: vec![],
                log_bytes: 0,
                labels: Default::default(),
            },
        );
        id
    }

    #[test]
    fn loaded_listed_dangling_follow_the_daemon() {
        let mut s = empty_snapshot();
        let base = add_image(&mut s, &[1], 10, None);
        let mid = add_image(&mut s, &[1, 2], 10, Some(base));
        let top = add_image(&mut s, &[1, 2, 3], 10, Some(mid));
        let dangling = add_image(&mut s, &[1, 9], 10, None);
        tag(&mut s, "base:1", base);
        tag(&mut s, "app:1", top);
        tag(&mut s, &format!("app@sha256:{}", "1".repeat(64)), dangling);
        let g = Graph::build(&s);
        assert_eq!(g.loaded.len(), 4);
        assert!(g.is_listed(&base) && g.is_listed(&top) && !g.is_listed(&mid));
        assert!(g.is_dangling(&dangling), "digest-only counts as dangling");
        assert!(!g.is_dangling(&mid), "has children");
        assert!(!g.is_dangling(&top));
        assert_eq!(g.children[&base], vec![mid]);
    }

    #[test]
    fn a_broken_layer_unloads_every_image_above_it() {
        let mut s = empty_snapshot();
        let a = add_image(&mut s, &[1], 10, None);
        let b = add_image(&mut s, &[1, 2], 10, None);
        let c = add_image(&mut s, &[1, 2, 3], 10, None);
        // layer 2 is unloadable: remove it from layerdb
        let chain = ChainId::chain(&s.images[&b].diff_ids);
        s.layers.remove(&chain[1]);
        let g = Graph::build(&s);
        assert!(g.loaded.contains(&a));
        assert!(!g.loaded.contains(&b) && !g.loaded.contains(&c));
        assert!(!g.is_loadable(&ChainId::chain(&s.images[&c].diff_ids)[2]));
    }

    #[test]
    fn an_image_chain_is_its_chain_ids_with_or_without_its_layers() {
        let mut s = empty_snapshot();
        let whole = add_image(&mut s, &[1, 2, 3], 10, None);
        let holed = add_image(&mut s, &[4, 5, 6], 10, None);
        let bare = add_image(&mut s, &[7, 8], 10, None);
        // holed loses a middle layer, bare every layer.
        let holed_chain = ChainId::chain(&s.images[&holed].diff_ids);
        s.layers.remove(&holed_chain[1]);
        for c in ChainId::chain(&s.images[&bare].diff_ids) {
            s.layers.remove(&c);
        }
        let g = Graph::build(&s);
        for id in [whole, holed, bare] {
            assert_eq!(g.chain(&id), ChainId::chain(&s.images[&id].diff_ids));
        }
        assert_eq!(g.edges.image_layer_keys(&holed).len(), 2);
        assert!(g.edges.image_layer_keys(&bare).is_empty());
        let unknown = ImageId(Digest::of_bytes(b"no such image"));
        assert!(g.chain(&unknown).is_empty());
    }

    #[test]
    fn parent_cycles_are_unloadable_not_a_hang() {
        let mut s = empty_snapshot();
        let a = add_image(&mut s, &[1, 2], 10, None);
        let chain = ChainId::chain(&s.images[&a].diff_ids);
        s.layers.get_mut(&chain[0]).unwrap().parent = Some(chain[1]);
        let g = Graph::build(&s);
        assert!(g.loadable.is_empty());
        assert!(g.loaded.is_empty());
    }

    #[test]
    fn foreign_os_images_are_not_restored() {
        let mut s = empty_snapshot();
        let a = add_image(&mut s, &[1], 10, None);
        s.images.get_mut(&a).unwrap().os = Some("windows".into());
        assert!(Graph::build(&s).loaded.is_empty());
    }

    #[test]
    fn a_container_mount_holds_its_image_chain_and_dirs() {
        let mut s = empty_snapshot();
        let base = add_image(&mut s, &[1], 10, None);
        let app = add_image(&mut s, &[1, 2], 10, Some(base));
        let other = add_image(&mut s, &[7], 10, None);
        let c = add_container(&mut s, 5, app, false);
        let g = Graph::build(&s);
        let mount = g.holders.mounts[&c.0];
        assert_eq!(
            g.holds.holder(mount),
            &Holder::Mount {
                name: c.0.clone(),
                container: Some(c.clone())
            }
        );
        let held: HashSet<Node> = g.holds.reach(mount).iter().copied().collect();
        for l in &g.chain(&app) {
            assert!(held.contains(&g.layer_node(l).unwrap()));
            assert!(held.contains(&g.edges.dir(&l.hex()).unwrap()));
        }
        let m = &g.gd.mounts[&c.0];
        assert!(held.contains(&g.edges.dir(&m.mount_id.0).unwrap()));
        assert!(held.contains(&g.edges.dir(&m.init_id.clone().unwrap().0).unwrap()));
        assert!(!held.contains(&g.layer_node(&g.chain(&other)[0]).unwrap()));
        // The base layer: held by both images and the mount.
        let holders: Vec<String> = g
            .layer_holders(&g.chain(&base)[0])
            .map(|h| h.describe())
            .collect();
        assert_eq!(holders.len(), 3, "{holders:?}");
        // Removing app frees nothing while the container's mount holds it.
        assert!(g.freed_layers(g.image_holders([&app])).is_empty());
        assert_eq!(g.freed_layers(g.image_holders([&other])).len(), 1);
    }

    #[test]
    fn driver_dirs_are_classified() {
        let mut s = empty_snapshot();
        let a = add_image(&mut s, &[1], 10, None);
        add_container(&mut s, 5, a, true);
        let orphan = "9".repeat(64);
        gd(&mut s).dirs.insert(orphan.as_str().into(), dir(&orphan));
        gd(&mut s).dirs.insert(
            "k2x9v0q8w7e6r5t4y3u2i1o0p".into(),
            dir("k2x9v0q8w7e6r5t4y3u2i1o0p"),
        );
        gd(&mut s).dirs.insert(
            "abcdefghij0123456789abcde".into(),
            dir("abcdefghij0123456789abcde"),
        );
        // A BuildKit snapshot a live record holds.
        let bk = &mut gd(&mut s).buildkit;
        bk.status = graphdriver::BuildkitStatus::Read;
        bk.records
            .insert("abcdefghij0123456789abcde".into(), Default::default());
        bk.snapshots.insert(
            "abcdefghij0123456789abcde".into(),
            graphdriver::SnapshotRecord {
                parent: Some(String::new()),
                ..Default::default()
            },
        );
        gd(&mut s)
            .dirs
            .insert("metacopy-check123".into(), dir("metacopy-check123"));
        let g = Graph::build(&s);
        assert_eq!(g.dir_roles[orphan.as_str()], DirRole::Orphan);
        assert!(matches!(
            g.dir_roles["k2x9v0q8w7e6r5t4y3u2i1o0p"],
            DirRole::Unknown(_)
        ));
        assert_eq!(g.dir_roles["abcdefghij0123456789abcde"], DirRole::Buildkit);
        assert_eq!(g.dir_roles["metacopy-check123"], DirRole::Probe);
        assert!(matches!(
            g.dir_roles[g.chain(&a)[0].hex().as_str()],
            DirRole::Layer(_)
        ));
        assert_eq!(
            g.dir_roles
                .values()
                .filter(|r| matches!(r, DirRole::MountRw(_)))
                .count(),
            1
        );
        s.unresolved.push("/r/containers/x".into());
        assert!(matches!(
            Graph::build(&s).dir_roles[orphan.as_str()],
            DirRole::Unknown(_)
        ));
    }
}
