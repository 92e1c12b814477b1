//! The Snapshot: everything `store::load` read from a data root, as plain data.
//! Nothing after `load` touches the disk for metadata; the graph, usage and
//! (later) verify and policy are pure functions of this.

use crate::ids::{CacheId, ChainId, ContainerId, DiffId, ImageId, MountId};
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::PathBuf;

#[derive(Debug, Clone, Serialize)]
pub struct Snapshot {
    pub root: PathBuf,
    /// Graphdriver name, from `image/<driver>/` (e.g. `overlay2`).
    pub driver: String,
    /// `<root>/engine-id` exists: written by Engine 23 and later. Its absence
    /// means an older engine wrote the root, which decides the shared-size rule.
    pub engine_id_present: bool,
    pub refs: Vec<Reference>,
    pub images: BTreeMap<ImageId, Image>,
    pub layers: BTreeMap<ChainId, Layer>,
    pub mounts: BTreeMap<String, Mount>,
    pub containers: BTreeMap<ContainerId, Container>,
    /// Entries of the graphdriver home (`<root>/overlay2/*`), except `l/`.
    pub driver_dirs: BTreeMap<String, DriverDir>,
    /// Entries of `<root>/overlay2/l/`.
    pub links: BTreeMap<String, Link>,
    /// `layerdb/sha256/<hex>-<64hex>-removing`: interrupted layer deletions.
    pub removing: Vec<RemovingLayer>,
    /// layerdb entries the daemon cannot load (see `anomalies`), with the
    /// `cache-id` when it could still be read, so their driver dir stays claimed.
    pub broken_layers: Vec<BrokenLayer>,
    /// `layerdb/tmp/write-set-*`: interrupted layer registrations.
    pub write_sets: Vec<PathBuf>,
    pub buildkit: Buildkit,
    pub anomalies: Vec<Anomaly>,
    /// Entries whose references could not be read: a mount without a readable
    /// `mount-id`, a broken layer without a `cache-id`, a container directory
    /// whose config does not load, an area that could not be listed. While any
    /// exist, data nothing else references may still belong to them, so it is
    /// reported as unknown, never as an orphan.
    pub unresolved: Vec<PathBuf>,
}

impl Snapshot {
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
    pub labels: BTreeMap<String, String>,
    pub diff_ids: Vec<DiffId>,
    pub os: Option<String>,
    /// `imagedb/metadata/sha256/<id>/parent`.
    pub parent: Option<ImageId>,
    /// `imagedb/metadata/sha256/<id>/lastUpdated` (last tag time), raw.
    pub last_updated: Option<String>,
    pub built_locally: bool,
    pub config_bytes: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Layer {
    pub chain_id: ChainId,
    pub diff_id: DiffId,
    /// The layerdb `size` file: this layer's own bytes as the daemon reports them.
    pub size: u64,
    pub cache_id: CacheId,
    pub parent: Option<ChainId>,
}

/// `layerdb/mounts/<name>`: a container's (or image mount's, or BuildKit's) RW layer.
#[derive(Debug, Clone, Serialize)]
pub struct Mount {
    pub name: String,
    pub mount_id: MountId,
    pub init_id: Option<MountId>,
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
    /// `*-json.log*` files of this container (current and rotated).
    pub log_bytes: u64,
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

/// One entry of the driver home; its name is the key it is stored under.
#[derive(Debug, Clone, Serialize)]
pub struct DriverDir {
    pub is_dir: bool,
    pub has_diff: bool,
    /// Contents of `<dir>/link` (short link ID), if present.
    pub link: Option<String>,
    /// Read only when asked for (`LoadOptions::lower`): only verify needs it.
    pub lower: Option<Lower>,
}

/// `<dir>/lower` (`l/<parent link>:<parent's lower>`), kept compact: on a root
/// with 30,000 layers the full strings would be most of the snapshot, and the
/// rule "my lower = l/<parent link> + : + parent's lower" only needs the first
/// entry and hashes of the whole and of the rest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Lower {
    /// The first entry, e.g. `l/ABCDEF...`.
    pub first: String,
    pub entries: usize,
    /// Hash of the whole string.
    pub hash: u64,
    /// Hash of everything after the first `:` (0 entries: hash of "").
    pub tail_hash: u64,
}

impl Lower {
    pub fn parse(s: &str) -> Lower {
        let (first, tail) = s.split_once(':').unwrap_or((s, ""));
        Lower {
            first: first.to_string(),
            entries: s.split(':').count(),
            hash: fnv1a(s.as_bytes()),
            tail_hash: fnv1a(tail.as_bytes()),
        }
    }
}

/// FNV-1a: deterministic across runs and platforms, unlike `DefaultHasher`'s keys.
pub fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf29ce484222325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x100000001b3)
    })
}

/// An entry of `<root>/overlay2/l/`; its name is the key it is stored under.
#[derive(Debug, Clone, Serialize)]
pub struct Link {
    pub target: LinkTarget,
    /// The target exists on disk.
    pub resolves: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum LinkTarget {
    /// `../<dir>/diff`, the only shape overlay2 writes.
    DriverDir(String),
    /// A symlink with any other target.
    Other(String),
    /// Not a symlink at all.
    NotSymlink,
}

#[derive(Debug, Clone, Serialize)]
pub struct RemovingLayer {
    pub path: PathBuf,
    pub chain_hex: String,
    pub cache_id: Option<CacheId>,
}

#[derive(Debug, Clone, Serialize)]
pub struct BrokenLayer {
    pub path: PathBuf,
    pub chain_id: ChainId,
    pub cache_id: Option<CacheId>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Buildkit {
    /// `<root>/buildkit` exists.
    pub present: bool,
    /// `buildkit/snapshots.db` exists and was read.
    pub snapshots_db: bool,
    /// Driver dir names and chain IDs found as byte substrings of snapshots.db
    /// (format doc §12: stale pages can only add false "referenced", never remove).
    pub referenced_names: Vec<String>,
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
}
