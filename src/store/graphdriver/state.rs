//! What only a graphdriver root has, beside the store-neutral inventory:
//! where each layer's data lives, layerdb mounts (RW layers), the driver
//! home's dirs and `l/` links, and leftovers of interrupted operations.

use super::Paths;
pub use super::buildkit::Buildkit;
use crate::ids::{CacheId, ChainId, DirName, LinkName, MountId};
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::PathBuf;

#[derive(Debug, Clone, Serialize)]
pub struct State {
    pub paths: Paths,
    /// Each layer's driver dir (`layerdb/sha256/<chain>/cache-id`).
    pub cache_ids: BTreeMap<ChainId, CacheId>,
    /// `layerdb/mounts/<name>`.
    pub mounts: BTreeMap<String, Mount>,
    /// Entries of the graphdriver home (`<root>/overlay2/*`), except `l/`.
    pub dirs: BTreeMap<DirName, DriverDir>,
    /// Entries of `<root>/overlay2/l/`.
    pub links: BTreeMap<LinkName, Link>,
    /// `layerdb/sha256/<hex>-<64hex>-removing`: interrupted layer deletions.
    pub removing: Vec<RemovingLayer>,
    /// layerdb entries the daemon cannot load (see the anomalies), with the
    /// `cache-id` when it could still be read, so their driver dir stays claimed.
    pub broken_layers: Vec<BrokenLayer>,
    /// `layerdb/tmp/write-set-*`: interrupted layer registrations.
    pub write_sets: Vec<PathBuf>,
    pub buildkit: Buildkit,
}

impl State {
    /// A layer's driver dir name.
    pub fn cache_id(&self, c: &ChainId) -> Option<&CacheId> {
        self.cache_ids.get(c)
    }

    /// The driver dir of a layer, if the layer has one on record and it exists.
    pub fn layer_dir(&self, c: &ChainId) -> Option<(&str, &DriverDir)> {
        let id = self.cache_ids.get(c)?;
        self.dirs.get(id.0.as_str()).map(|d| (id.0.as_str(), d))
    }
}

/// `layerdb/mounts/<name>`: a container's (or image mount's, or BuildKit's) RW layer.
#[derive(Debug, Clone, Serialize)]
pub struct Mount {
    pub name: String,
    pub mount_id: MountId,
    pub init_id: Option<MountId>,
    pub parent: Option<ChainId>,
}

/// One entry of the driver home; its name is the key it is stored under.
#[derive(Debug, Clone, Serialize)]
pub struct DriverDir {
    pub is_dir: bool,
    pub has_diff: bool,
    /// Contents of `<dir>/link` (short link ID), if present.
    pub link: Option<LinkName>,
    /// Read only when asked for (`LoadOptions::lower`): only verify needs it.
    /// Boxed: `df` has 30,000 dirs and reads `lower` of a few BuildKit ones.
    pub lower: Option<Box<Lower>>,
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
    DriverDir(DirName),
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
