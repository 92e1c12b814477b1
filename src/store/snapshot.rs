//! The Snapshot: everything a source read from a data root, as plain data.
//! Nothing after `load` touches the disk for metadata; the graph, usage,
//! verify and policy are pure functions of this.
//!
//! The inventory here is store-neutral: references, images, layers (by chain
//! ID, with their sizes), containers. What only one store has lives beside
//! it in [`Store`]: for a graphdriver root, the driver dirs, `l/` links,
//! `lower` files, layerdb mounts, write-sets and interrupted deletions
//! ([`super::graphdriver::State`]). A new source adds a variant and a module,
//! not fields here.

use super::{containerd, graphdriver};
use crate::ids::{ChainId, ContainerId, DiffId, ImageId};
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::PathBuf;

#[derive(Debug, Clone, Serialize)]
pub struct Snapshot {
    pub root: PathBuf,
    /// `<root>/engine-id` exists: written by Engine 23 and later. Its absence
    /// means an older engine wrote the root, which decides the shared-size rule.
    pub engine_id_present: bool,
    pub refs: Vec<Reference>,
    pub images: BTreeMap<ImageId, Image>,
    pub layers: BTreeMap<ChainId, Layer>,
    pub containers: BTreeMap<ContainerId, Container>,
    /// The volumes the daemon knows, by name (see [`Volume`]).
    pub volumes: Vec<Volume>,
    pub anomalies: Vec<Anomaly>,
    /// Entries whose references could not be read: a mount without a readable
    /// `mount-id`, a broken layer without a `cache-id`, a container directory
    /// whose config does not load, an area that could not be listed. While any
    /// exist, data nothing else references may still belong to them, so it is
    /// reported as unknown, never as an orphan.
    pub unresolved: Vec<PathBuf>,
    /// What only this kind of store has.
    pub store: Store,
    /// Where the facts came from.
    pub source: Source,
}

/// Where a snapshot's facts came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    /// The root's own files.
    #[default]
    Disk,
    /// A daemon's Engine API alone: no driver dirs, no leftovers, and
    /// layer sizes estimated from the images' sizes.
    Api,
}

/// The store-specific half of a snapshot.
#[derive(Debug, Clone, Serialize)]
pub enum Store {
    /// A graphdriver root (`image/<driver>/` and `<root>/<driver>/`).
    Graphdriver(graphdriver::State),
    /// A containerd root (meta.db, snapshotters, content store): Docker 29's
    /// containerd image store, Kubernetes nodes, nerdctl.
    Containerd(containerd::State),
}

impl Snapshot {
    /// The graphdriver state, for a graphdriver root.
    pub fn graphdriver(&self) -> Option<&graphdriver::State> {
        match &self.store {
            Store::Graphdriver(g) => Some(g),
            Store::Containerd(_) => None,
        }
    }

    /// The containerd state, for a containerd root.
    pub fn containerd(&self) -> Option<&containerd::State> {
        match &self.store {
            Store::Containerd(c) => Some(c),
            Store::Graphdriver(_) => None,
        }
    }

    /// The graphdriver state, to change (tests and generators).
    pub fn graphdriver_mut(&mut self) -> Option<&mut graphdriver::State> {
        match &mut self.store {
            Store::Graphdriver(g) => Some(g),
            Store::Containerd(_) => None,
        }
    }

    /// The storage driver's name (`overlay2`), or the containerd snapshotter
    /// images are unpacked into, as reports and plans show it.
    pub fn driver(&self) -> &str {
        match &self.store {
            Store::Graphdriver(g) => g.paths.driver(),
            Store::Containerd(c) => c.default_snapshotter(),
        }
    }

    /// `start` and its ancestors through the layers' `parent` files, child
    /// first; bounded, so a `parent` cycle in damaged metadata cannot hang.
    pub fn layer_chain(&self, start: Option<ChainId>) -> impl Iterator<Item = ChainId> + '_ {
        std::iter::successors(start, |c| self.layers.get(c).and_then(|l| l.parent))
            .take(self.layers.len() + 1)
    }
}

/// One entry of `repositories.json`.
#[derive(Debug, Clone, Serialize)]
pub struct Reference {
    /// Outer key: familiar repository name (`alpine`, `ghcr.io/org/app`).
    pub repository: String,
    /// Inner key: `name:tag` or `name@sha256:<manifest digest>`.
    pub reference: String,
    pub image: ImageId,
}

impl Reference {
    /// A digest reference (`name@sha256:...`) rather than a tag.
    pub fn is_digest(&self) -> bool {
        self.reference.contains('@')
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Image {
    pub id: ImageId,
    /// `created` exactly as written in the config (RFC3339), if any.
    pub created: Option<String>,
    /// `created` as Unix seconds, when it parses.
    pub created_unix: Option<i64>,
    pub labels: Labels,
    pub diff_ids: Vec<DiffId>,
    pub os: Option<String>,
    /// `imagedb/metadata/sha256/<id>/parent`.
    pub parent: Option<ImageId>,
    /// `imagedb/metadata/sha256/<id>/lastUpdated` (last tag time), raw.
    pub last_updated: Option<String>,
    pub built_locally: bool,
    pub config_bytes: u64,
}

/// An image's labels (`config.Labels`), sorted by key, each key once. A
/// sorted list, not a `BTreeMap`: a map's first node has room for 11
/// entries, and on a root of 10,000 images with a label or two each that
/// spare room was megabytes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Labels(Box<[(String, String)]>);

impl Labels {
    pub fn get(&self, key: &str) -> Option<&String> {
        let i = self.0.binary_search_by(|(k, _)| k.as_str().cmp(key)).ok()?;
        Some(&self.0[i].1)
    }

    pub fn contains_key(&self, key: &str) -> bool {
        self.get(key).is_some()
    }

    pub fn iter(&self) -> impl Iterator<Item = (&String, &String)> {
        self.0.iter().map(|(k, v)| (k, v))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Sets `key` (tests and generators build images this way).
    pub fn insert(&mut self, key: String, value: String) {
        let mut all: BTreeMap<String, String> = std::mem::take(self).into();
        all.insert(key, value);
        *self = all.into();
    }
}

impl From<BTreeMap<String, String>> for Labels {
    fn from(m: BTreeMap<String, String>) -> Self {
        Labels(m.into_iter().collect())
    }
}

impl From<Labels> for BTreeMap<String, String> {
    fn from(l: Labels) -> Self {
        l.0.into_vec().into_iter().collect()
    }
}

/// As a map does: a later duplicate key replaces the earlier value.
impl FromIterator<(String, String)> for Labels {
    fn from_iter<I: IntoIterator<Item = (String, String)>>(it: I) -> Self {
        it.into_iter().collect::<BTreeMap<_, _>>().into()
    }
}

impl std::ops::Index<&str> for Labels {
    type Output = String;
    fn index(&self, key: &str) -> &String {
        self.get(key).expect("no such label")
    }
}

impl Serialize for Labels {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_map(self.iter())
    }
}

/// A read-only layer, by chain ID. Where its data lives is the store's
/// business (a graphdriver's `cache-id`: [`graphdriver::State::cache_ids`]).
#[derive(Debug, Clone, Serialize)]
pub struct Layer {
    pub chain_id: ChainId,
    pub diff_id: DiffId,
    /// This layer's own bytes as the daemon reports them (layerdb `size`).
    pub size: u64,
    pub parent: Option<ChainId>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Container {
    pub id: ContainerId,
    /// `Name` without the leading `/`.
    pub name: String,
    /// The authoritative container → image link (`Image`).
    pub image: Option<ImageId>,
    /// What the user typed (`Config.Image`), for display only.
    pub config_image: Option<String>,
    pub driver: Option<String>,
    pub state: ContainerState,
    pub created: Option<String>,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
    /// Image IDs of `"Type":"image"` mount points (`Spec.Source`), with their mount names.
    pub image_mounts: Vec<(ImageId, String)>,
    /// Names of the volumes its mount points use (entries with a `Driver`),
    /// sorted, each once.
    pub volumes: Vec<String>,
    /// Apparent bytes of the files its log driver wrote under the root
    /// ([`super::paths::is_container_log`]).
    pub log_bytes: u64,
    /// `Config.Labels`.
    pub labels: BTreeMap<String, String>,
}

/// A volume as the daemon's volume service knows it: every directory under
/// `volumes/` is a volume of the `local` driver (moby
/// `daemon/volume/local/local.go` `New`), and `volumes/metadata.db` adds its
/// labels and options and the volumes of other drivers
/// (`daemon/volume/service/store.go`, `db.go`).
#[derive(Debug, Clone, Serialize)]
pub struct Volume {
    pub name: String,
    pub driver: String,
    /// `Labels` as stored: `None` where the record has `null` or there is no
    /// record, which the API echoes as `null` (Engine 20.10 writes `null` for
    /// anonymous volumes, `{}` for `docker volume create` without labels).
    pub labels: Option<BTreeMap<String, String>>,
    /// `Options` as stored (`None` as for labels). A `local` volume with
    /// options is a mount (tmpfs, NFS, a bind) whose data is not on this disk.
    pub options: Option<BTreeMap<String, String>>,
}

impl Volume {
    /// The label Engine 23 and later put on volumes created without a name
    /// (moby `daemon/volume/service/service.go`, `AnonymousLabel`).
    pub const ANONYMOUS_LABEL: &'static str = "com.docker.volume.anonymous";

    /// Created without a name: labelled so (Engine >= 23), or, from older
    /// engines, unlabelled (`null`) with the 64-hex random name they gave it
    /// (`stringid.GenerateRandomID` in `daemon/create_unix.go`
    /// `createContainerOSSpecificSettings`).
    pub fn is_anonymous(&self) -> bool {
        match &self.labels {
            Some(l) => l.contains_key(Self::ANONYMOUS_LABEL),
            None => {
                self.name.len() == 64
                    && self
                        .name
                        .bytes()
                        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
            }
        }
    }

    /// Listed by `/system/df` and counted in its Local Volumes: driver
    /// `local` and no options (moby `daemon/volume/service/service.go`
    /// `LocalVolumesSize`).
    pub fn in_system_df(&self) -> bool {
        self.driver == "local" && self.options.as_ref().is_none_or(|o| o.is_empty())
    }
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct ContainerState {
    pub running: bool,
    pub paused: bool,
    pub restarting: bool,
    pub dead: bool,
    pub pid: i64,
    pub exit_code: i64,
    /// The process named by `Pid` still exists (live-restore keeps containers
    /// running while dockerd is down).
    pub pid_alive: bool,
    pub has_started: bool,
}

impl ContainerState {
    /// Docker's ACTIVE rule for `system df`: running, paused or restarting.
    pub fn is_active(&self) -> bool {
        self.running || self.paused || self.restarting
    }

    /// The word Docker shows in `docker ps -a` (`State.StateString`).
    pub fn word(&self) -> &'static str {
        if self.running {
            if self.paused {
                "paused"
            } else if self.restarting {
                "restarting"
            } else {
                "running"
            }
        } else if self.dead {
            "dead"
        } else if self.has_started {
            "exited"
        } else {
            "created"
        }
    }
}

/// Something malformed found while reading. Never fatal for the scan.
#[derive(Debug, Clone, Serialize)]
pub struct Anomaly {
    pub kind: AnomalyKind,
    pub path: PathBuf,
    pub message: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum AnomalyKind {
    /// `repositories.json` unreadable or not of the expected shape.
    Refs,
    /// An imagedb config whose bytes do not hash to its file name.
    ConfigDigest,
    /// An imagedb config that does not parse or lacks `rootfs`.
    ConfigParse,
    /// imagedb metadata (`parent`, `lastUpdated`) unreadable or malformed.
    ImageMetadata,
    /// An image whose config is fine but that the daemon would not restore
    /// (a layer of its chain is missing or unloadable, or another OS).
    ImageNotLoaded,
    /// A layerdb entry missing `diff`, `size` or `cache-id`, or with a malformed one.
    LayerFiles,
    /// A `layerdb/mounts` entry that the daemon cannot load.
    Mount,
    /// A container directory whose `config.v2.json` is unreadable or malformed.
    Container,
    /// A graphdriver entry that could not be read.
    DriverDir,
    /// An `l/` entry that is not a symlink or whose target is missing.
    Link,
    /// A directory that could not be listed or a file that could not be read.
    Unreadable,
    /// A directory loop or a symlink where the store has a directory.
    Loop,
    /// A BuildKit database that could not be read.
    Buildkit,
    /// `volumes/metadata.db` unreadable or damaged, or one of its records
    /// malformed: the volumes are listed from their directories alone.
    Volumes,
    /// A containerd record, file or directory that could not be read, or a
    /// part of a containerd root dockgc does not read (another snapshotter).
    Containerd,
}
