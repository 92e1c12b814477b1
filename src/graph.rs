//! The reference graph over a [`Snapshot`]: what the daemon would load, who
//! uses what, and reachability. Pure: no disk access.

use crate::ids::{ChainId, ContainerId, ImageId};
use crate::store::graphdriver::{self, Mount};
use crate::store::{Container, Snapshot, Store};
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

/// A node of the store's reference graph.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Node {
    /// Index into `Snapshot::refs`.
    Reference(usize),
    Image(ImageId),
    Layer(ChainId),
    Container(ContainerId),
    /// A `layerdb/mounts/<name>` entry.
    Mount(String),
    /// A graphdriver directory name.
    DriverDir(String),
}

/// Every node reachable from `roots` through `edges`. A plain worklist mark
/// (containerd's gc.go shape): the edge function is the whole graph.
pub fn mark<F>(roots: impl IntoIterator<Item = Node>, mut edges: F) -> HashSet<Node>
where
    F: FnMut(&Node, &mut Vec<Node>),
{
    let mut seen: HashSet<Node> = HashSet::new();
    let mut stack: Vec<Node> = Vec::new();
    for r in roots {
        if seen.insert(r.clone()) {
            stack.push(r);
        }
    }
    let mut out = Vec::new();
    while let Some(n) = stack.pop() {
        out.clear();
        edges(&n, &mut out);
        for m in out.drain(..) {
            if seen.insert(m.clone()) {
                stack.push(m);
            }
        }
    }
    seen
}

/// What a graphdriver directory is, and why.
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
    /// Nothing references it and its name is one the daemon generates.
    Orphan,
    /// Not referenced, but dockgc cannot tell what it is; never removed.
    Unknown(&'static str),
}

pub struct Graph<'s> {
    pub snap: &'s Snapshot,
    /// The graphdriver half of the snapshot.
    pub gd: &'s graphdriver::State,
    /// Layers the daemon can load: their files parse and every ancestor loads.
    pub loadable: HashSet<ChainId>,
    /// Images the daemon restores at start (`store.restore`).
    pub loaded: BTreeSet<ImageId>,
    /// Every prefix chain ID of each image's `diff_ids`, base first.
    pub chains: HashMap<ImageId, Vec<ChainId>>,
    /// Children of each loaded image among loaded images (`parent` metadata).
    pub children: HashMap<ImageId, Vec<ImageId>>,
    /// Indexes into `snap.refs`, per image.
    pub refs_by_image: HashMap<ImageId, Vec<usize>>,
    /// Containers whose `Image` is this image (Docker's CONTAINERS column).
    pub containers_by_image: HashMap<ImageId, Vec<ContainerId>>,
    /// Images a container uses through `Image` or an image mount.
    pub used_by_containers: HashSet<ImageId>,
    /// Role of each driver directory, by name.
    pub dir_roles: BTreeMap<&'s str, DirRole>,
    /// Mount names some container owns: its own RW layer (named by the
    /// container ID) and its image mounts' layers.
    pub mount_owners: HashSet<&'s str>,
}

/// The OS the daemon runs on; images for another OS are not restored.
const HOST_OS: &str = "linux";

impl<'s> Graph<'s> {
    pub fn build(snap: &'s Snapshot) -> Graph<'s> {
        let Store::Graphdriver(gd) = &snap.store;
        let loadable = loadable_layers(snap);
        let mut chains = HashMap::with_capacity(snap.images.len());
        let mut loaded = BTreeSet::new();
        for (id, img) in &snap.images {
            let chain = ChainId::chain(&img.diff_ids);
            let os_ok = img
                .os
                .as_deref()
                .is_none_or(|o| o.is_empty() || o == HOST_OS);
            let top_ok = chain.last().is_none_or(|top| loadable.contains(top));
            if os_ok && top_ok {
                loaded.insert(*id);
            }
            chains.insert(*id, chain);
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
        for c in snap.containers.values() {
            if let Some(img) = c.image {
                containers_by_image
                    .entry(img)
                    .or_default()
                    .push(c.id.clone());
                used_by_containers.insert(img);
            }
            used_by_containers.extend(c.image_mounts.iter().map(|(i, _)| *i));
        }
        let dir_roles = classify_dirs(snap, gd);
        let mount_owners = snap
            .containers
            .values()
            .flat_map(|c| {
                std::iter::once(c.id.0.as_str())
                    .chain(c.image_mounts.iter().map(|(_, m)| m.as_str()))
            })
            .collect();
        Graph {
            mount_owners,
            snap,
            gd,
            loadable,
            loaded,
            chains,
            children,
            refs_by_image,
            containers_by_image,
            used_by_containers,
            dir_roles,
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

    /// The reference graph's edges (architecture: reference → image → parent
    /// image and layer chain → parent layer → driver dir; container → image
    /// and mount → RW, init and parent layer).
    pub fn edges(&self, n: &Node, out: &mut Vec<Node>) {
        let snap = self.snap;
        let gd = self.gd;
        match n {
            Node::Reference(i) => out.push(Node::Image(snap.refs[*i].image)),
            Node::Image(id) => {
                if let Some(img) = snap.images.get(id) {
                    out.extend(img.parent.map(Node::Image));
                }
                if let Some(chain) = self.chains.get(id) {
                    out.extend(chain.iter().map(|c| Node::Layer(*c)));
                }
            }
            Node::Layer(c) => {
                if let Some(l) = snap.layers.get(c) {
                    out.extend(l.parent.map(Node::Layer));
                }
                if let Some(d) = gd.cache_id(c) {
                    out.push(Node::DriverDir(d.0.clone()));
                }
            }
            Node::Container(id) => {
                if let Some(c) = snap.containers.get(id) {
                    out.extend(c.image.map(Node::Image));
                    for (img, mount) in &c.image_mounts {
                        out.push(Node::Image(*img));
                        out.push(Node::Mount(mount.clone()));
                    }
                    out.push(Node::Mount(id.0.clone()));
                }
            }
            Node::Mount(name) => {
                if let Some(m) = gd.mounts.get(name) {
                    out.push(Node::DriverDir(m.mount_id.0.clone()));
                    out.extend(m.init_id.as_ref().map(|i| Node::DriverDir(i.0.clone())));
                    out.extend(m.parent.map(Node::Layer));
                }
            }
            Node::DriverDir(_) => {}
        }
    }

    /// Everything reachable from `roots`.
    pub fn reachable(&self, roots: impl IntoIterator<Item = Node>) -> HashSet<Node> {
        mark(roots, |n, out| self.edges(n, out))
    }
}

/// Mirrors `loadLayer`'s recursion: a layer loads only if its parent loads.
/// A missing parent or a `parent` cycle makes the whole subtree unloadable.
fn loadable_layers(snap: &Snapshot) -> HashSet<ChainId> {
    #[derive(Clone, Copy, PartialEq)]
    enum St {
        Visiting,
        Ok,
        Bad,
    }
    let mut state: HashMap<ChainId, St> = HashMap::with_capacity(snap.layers.len());
    for start in snap.layers.keys() {
        if state.contains_key(start) {
            continue;
        }
        // Walk up the parent chain iteratively (chains can be 125 deep).
        let mut path: Vec<ChainId> = Vec::new();
        let mut cur = Some(*start);
        let verdict = loop {
            let Some(c) = cur else { break St::Ok };
            match state.get(&c) {
                Some(St::Ok) => break St::Ok,
                Some(St::Bad) | Some(St::Visiting) => break St::Bad,
                None => {}
            }
            let Some(layer) = snap.layers.get(&c) else {
                break St::Bad;
            };
            state.insert(c, St::Visiting);
            path.push(c);
            cur = layer.parent;
        };
        for c in path {
            state.insert(c, verdict);
        }
    }
    state
        .into_iter()
        .filter(|(_, s)| *s == St::Ok)
        .map(|(c, _)| c)
        .collect()
}

const PROBE_PREFIXES: &[&str] = &[
    "check-overlayfs-support",
    "opaque-bug-check",
    "metacopy-check",
    "userxattr-check",
];

fn classify_dirs<'s>(snap: &Snapshot, gd: &'s graphdriver::State) -> BTreeMap<&'s str, DirRole> {
    let mut by_name: HashMap<&str, DirRole> = HashMap::new();
    for (c, d) in &gd.cache_ids {
        by_name.insert(&d.0, DirRole::Layer(*c));
    }
    for m in gd.mounts.values() {
        by_name.insert(&m.mount_id.0, DirRole::MountRw(m.name.clone()));
        if let Some(i) = &m.init_id {
            by_name.insert(&i.0, DirRole::MountInit(m.name.clone()));
        }
    }
    for b in &gd.broken_layers {
        if let Some(c) = &b.cache_id {
            by_name
                .entry(&c.0)
                .or_insert(DirRole::BrokenLayer(b.chain_id));
        }
    }
    for r in &gd.removing {
        if let Some(c) = &r.cache_id {
            by_name.entry(&c.0).or_insert(DirRole::Removing);
        }
    }
    let buildkit: HashSet<&str> = gd
        .buildkit
        .referenced_names
        .iter()
        .map(String::as_str)
        .collect();
    gd.dirs
        .iter()
        .map(|(name, d)| {
            let n = name.as_str();
            let role = if let Some(r) = by_name.get(n) {
                r.clone()
            } else if buildkit.contains(n) {
                DirRole::Buildkit
            } else if PROBE_PREFIXES.iter().any(|p| n.starts_with(p)) {
                DirRole::Probe
            } else if !d.is_dir {
                DirRole::Unknown("not a directory (e.g. backingFsBlockDev)")
            } else if crate::ids::is_buildkit_key(n) {
                // BuildKit names its snapshots like this; without a readable
                // snapshots.db there is no proof it is unused.
                DirRole::Unknown("BuildKit-style name not found in buildkit/snapshots.db")
            } else if crate::ids::MountId::parse(n).is_some() && !snap.unresolved.is_empty() {
                DirRole::Unknown(
                    "unreferenced, but an unreadable layer, mount or container may reference it",
                )
            } else if crate::ids::MountId::parse(n).is_some() {
                DirRole::Orphan
            } else {
                DirRole::Unknown("name the daemon never generates")
            };
            (n, role)
        })
        .collect()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::ids::{CacheId, DiffId, Digest, MountId};
    use crate::store::graphdriver::{DriverDir, Mount};
    use crate::store::*;
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
            gd(s).cache_ids.entry(*c).or_insert(CacheId(cache.clone()));
            gd(s).dirs.entry(cache.clone()).or_insert(dir(&cache));
        }
        let id = ImageId(Digest::of_bytes(format!("{diffs:?}{parent:?}").as_bytes()));
        s.images.insert(
            id,
            Image {
                id,
                created: None,
                created_unix: None,
                labels: BTreeMap::new(),
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
        gd(s).dirs.insert(mount.0.clone(), dir(&mount.0));
        gd(s).dirs.insert(
            format!("{}-init", mount.0),
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
                log_bytes: 0,
            },
        );
        id
    }

    #[test]
    fn mark_follows_edges_and_stops_at_cycles() {
        let edges = |n: &Node, out: &mut Vec<Node>| {
            if let Node::DriverDir(s) = n {
                let next = match s.as_str() {
                    "a" => "b",
                    "b" => "c",
                    "c" => "a",
                    _ => return,
                };
                out.push(Node::DriverDir(next.into()));
            }
        };
        let r = mark([Node::DriverDir("a".into())], edges);
        assert_eq!(r.len(), 3);
        let r = mark([Node::DriverDir("z".into())], edges);
        assert_eq!(r.len(), 1);
        assert!(mark(std::iter::empty(), edges).is_empty());
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
        assert!(
            !g.loadable
                .contains(&ChainId::chain(&s.images[&c].diff_ids)[2])
        );
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
    fn reachability_from_a_container_covers_image_chain_and_dirs() {
        let mut s = empty_snapshot();
        let base = add_image(&mut s, &[1], 10, None);
        let app = add_image(&mut s, &[1, 2], 10, Some(base));
        let other = add_image(&mut s, &[7], 10, None);
        let c = add_container(&mut s, 5, app, false);
        let g = Graph::build(&s);
        let live = g.reachable([Node::Container(c.clone())]);
        assert!(live.contains(&Node::Image(app)) && live.contains(&Node::Image(base)));
        for l in &g.chains[&app] {
            assert!(live.contains(&Node::Layer(*l)));
            assert!(live.contains(&Node::DriverDir(l.hex())));
        }
        let m = &g.gd.mounts[&c.0];
        assert!(live.contains(&Node::DriverDir(m.mount_id.0.clone())));
        assert!(live.contains(&Node::DriverDir(m.init_id.clone().unwrap().0)));
        assert!(!live.contains(&Node::Image(other)));
        assert!(!live.contains(&Node::Layer(g.chains[&other][0])));
    }

    #[test]
    fn driver_dirs_are_classified() {
        let mut s = empty_snapshot();
        let a = add_image(&mut s, &[1], 10, None);
        add_container(&mut s, 5, a, true);
        let orphan = "9".repeat(64);
        gd(&mut s).dirs.insert(orphan.clone(), dir(&orphan));
        gd(&mut s).dirs.insert(
            "k2x9v0q8w7e6r5t4y3u2i1o0p".into(),
            dir("k2x9v0q8w7e6r5t4y3u2i1o0p"),
        );
        gd(&mut s).dirs.insert(
            "abcdefghij0123456789abcde".into(),
            dir("abcdefghij0123456789abcde"),
        );
        gd(&mut s).buildkit.referenced_names = vec!["abcdefghij0123456789abcde".into()];
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
            g.dir_roles[g.chains[&a][0].hex().as_str()],
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
