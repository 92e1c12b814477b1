//! Orphans and leftovers, listed once: data nothing holds and the debris of
//! interrupted operations, each with one kind, one reason and one size. df
//! shows them, the prune plan removes the ones `--orphans` allows, verify
//! warns about them; all three render these same items.

use crate::disk::docker_size;
use crate::graph::{DirRole, Graph};
use crate::holds::Holder;
use crate::ids::ChainId;
use crate::store::graphdriver::LinkTarget;
use rayon::prelude::*;
use serde::Serialize;
use std::collections::HashMap;
use std::path::PathBuf;

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

/// What a leftover is, for the consumers that act on it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Subject {
    /// A driver dir, with the `l/` link that points at it.
    Dir {
        name: String,
        link: Option<String>,
    },
    /// A layerdb layer.
    Layer {
        chain_id: ChainId,
    },
    /// A layerdb entry the daemon cannot load.
    Entry,
    /// A `layerdb/mounts` entry.
    Mount {
        name: String,
    },
    /// A `-removing` entry; its driver dir (and that dir's link) when
    /// nothing else claims the dir.
    Removing {
        cache_dir: Option<String>,
        link: Option<String>,
    },
    WriteSet,
    /// An `l/` entry.
    Link {
        name: String,
    },
}

#[derive(Debug, Clone)]
pub struct Leftover {
    pub kind: OrphanKind,
    pub subject: Subject,
    /// Absolute.
    pub path: PathBuf,
    pub reason: String,
    /// Apparent bytes of everything removing it frees: its dirs' files
    /// (`directory.Size`), or a layer's `size`. Zero until [`measure`].
    pub bytes: u64,
}

pub const REASON_DIR: &str = "no layer, mount or BuildKit snapshot references it";
pub const REASON_PROBE: &str = "left by an interrupted overlay2 feature probe";
pub const REASON_LAYER: &str =
    "no image, container or BuildKit snapshot uses it; Docker never removes such layers";
pub const REASON_UNLOADABLE: &str =
    "its parent chain is missing or broken, so the daemon cannot load it";
pub const REASON_ENTRY: &str = "the daemon cannot load this layerdb entry (see anomalies)";
pub const REASON_MOUNT: &str = "no container owns this RW layer";
pub const REASON_BUILDKIT_MOUNT: &str = "transient BuildKit mount left by an interrupted build";
pub const REASON_MOUNT_UNKNOWN: &str = "its container's config could not be read (see anomalies)";
pub const REASON_REMOVING: &str =
    "interrupted layer deletion; the daemon finishes it only at a clean shutdown";
pub const REASON_WRITE_SET: &str = "interrupted layer registration; the daemon never cleans these";

/// Every leftover of the snapshot, sorted by kind and path, sizes not yet measured.
pub fn collect(g: &Graph) -> Vec<Leftover> {
    let mut out = Vec::new();
    dirs(g, &mut out);
    layers(g, &mut out);
    mounts(g, &mut out);
    entries(g, &mut out);
    links(g, &mut out);
    out.sort_by(|a, b| (a.kind, &a.path).cmp(&(b.kind, &b.path)));
    out
}

/// Fills in the sizes, in parallel (each is a walk of a directory tree).
pub fn measure(g: &Graph, items: &mut [Leftover]) {
    let paths = &g.gd.paths;
    let mounts = &g.gd.mounts;
    items.par_iter_mut().for_each(|x| {
        x.bytes = match &x.subject {
            Subject::Layer { chain_id } => g.snap.layers.get(chain_id).map_or(0, |l| l.size),
            Subject::Link { .. } => 0,
            Subject::Dir { .. } | Subject::WriteSet => docker_size(&x.path),
            Subject::Entry => broken_dir(g, &x.path).map_or(0, |d| docker_size(&paths.dir(&d))),
            Subject::Mount { name } => mounts.get(name).map_or(0, |m| {
                docker_size(&paths.dir(&m.mount_id.0))
                    + m.init_id
                        .as_ref()
                        .map_or(0, |i| docker_size(&paths.dir(&i.0)))
            }),
            Subject::Removing { cache_dir, .. } => {
                docker_size(&x.path) + cache_dir.as_ref().map_or(0, |d| docker_size(&paths.dir(d)))
            }
        };
    });
}

/// `l/` links by the driver dir they point at.
fn link_of<'g>(g: &'g Graph) -> HashMap<&'g str, &'g str> {
    g.gd.links
        .iter()
        .filter_map(|(name, l)| match &l.target {
            LinkTarget::DriverDir(d) => Some((d.as_str(), name.as_str())),
            _ => None,
        })
        .collect()
}

fn dirs(g: &Graph, out: &mut Vec<Leftover>) {
    let link_of = link_of(g);
    for (name, role) in &g.dir_roles {
        let (kind, reason) = match role {
            DirRole::Orphan => (OrphanKind::DriverDir, REASON_DIR.to_string()),
            DirRole::Probe => (OrphanKind::Probe, REASON_PROBE.to_string()),
            DirRole::Unknown(why) => (OrphanKind::Unknown, why.clone()),
            _ => continue,
        };
        let link = (kind != OrphanKind::Unknown)
            .then(|| link_of.get(name).map(|l| l.to_string()))
            .flatten();
        out.push(Leftover {
            kind,
            subject: Subject::Dir {
                name: name.to_string(),
                link,
            },
            path: g.gd.paths.dir(name),
            reason,
            bytes: 0,
        });
    }
}

/// Layers whose only holders are leftovers themselves.
fn layers(g: &Graph, out: &mut Vec<Leftover>) {
    for c in g.holders.leftover_layers.keys() {
        let Some(n) = g.layer_node(c) else { continue };
        if !g
            .holds
            .only_held_by(n, |h| matches!(h, Holder::LeftoverLayer { .. }))
        {
            continue;
        }
        let (kind, reason) = if g.is_loadable(c) {
            (OrphanKind::UnreferencedLayer, REASON_LAYER)
        } else {
            (OrphanKind::BrokenLayer, REASON_UNLOADABLE)
        };
        out.push(Leftover {
            kind,
            subject: Subject::Layer { chain_id: *c },
            path: g.gd.paths.layer(c),
            reason: reason.into(),
            bytes: 0,
        });
    }
}

/// Mounts no container (or container image mount) owns.
fn mounts(g: &Graph, out: &mut Vec<Leftover>) {
    let paths = &g.gd.paths;
    for m in g.gd.mounts.values() {
        if g.mount_owners.contains_key(m.name.as_str()) {
            continue;
        }
        let (kind, reason) = if g
            .snap
            .unresolved
            .contains(&paths.docker().container(&m.name))
        {
            (OrphanKind::Unknown, REASON_MOUNT_UNKNOWN)
        } else if crate::ids::is_buildkit_key(&m.name) {
            (OrphanKind::Mount, REASON_BUILDKIT_MOUNT)
        } else {
            (OrphanKind::Mount, REASON_MOUNT)
        };
        out.push(Leftover {
            kind,
            subject: Subject::Mount {
                name: m.name.clone(),
            },
            path: paths.mount(&m.name),
            reason: reason.into(),
            bytes: 0,
        });
    }
}

/// Broken layerdb entries, `-removing` entries and write-sets.
fn entries(g: &Graph, out: &mut Vec<Leftover>) {
    let gd = g.gd;
    for b in &gd.broken_layers {
        out.push(Leftover {
            kind: OrphanKind::BrokenLayer,
            subject: Subject::Entry,
            path: b.path.clone(),
            reason: REASON_ENTRY.into(),
            bytes: 0,
        });
    }
    let link_of = link_of(g);
    for r in &gd.removing {
        // Its dir, unless something else (a layer that stays, or one this
        // plan removes anyway) also claims it.
        let cache_dir = r
            .cache_id
            .as_ref()
            .filter(|c| g.edges.dir(&c.0).is_some_and(|n| g.holds.of(n).len() == 1))
            .map(|c| c.0.to_string());
        let link = cache_dir
            .as_deref()
            .and_then(|c| link_of.get(c))
            .map(|s| s.to_string());
        out.push(Leftover {
            kind: OrphanKind::PendingRemoval,
            subject: Subject::Removing { cache_dir, link },
            path: r.path.clone(),
            reason: REASON_REMOVING.into(),
            bytes: 0,
        });
    }
    for w in &gd.write_sets {
        out.push(Leftover {
            kind: OrphanKind::WriteSet,
            subject: Subject::WriteSet,
            path: w.clone(),
            reason: REASON_WRITE_SET.into(),
            bytes: 0,
        });
    }
}

fn links(g: &Graph, out: &mut Vec<Leftover>) {
    for (name, l) in &g.gd.links {
        if l.resolves {
            continue;
        }
        let reason = match &l.target {
            LinkTarget::DriverDir(d) => format!("its target ../{d}/diff does not exist"),
            LinkTarget::Other(t) => format!("its target {t} does not resolve"),
            LinkTarget::NotSymlink => "not a symlink".to_string(),
        };
        out.push(Leftover {
            kind: OrphanKind::DanglingLink,
            subject: Subject::Link {
                name: name.to_string(),
            },
            path: g.gd.paths.link(name),
            reason,
            bytes: 0,
        });
    }
}

/// The driver dir a broken layerdb entry still claims, when nothing else does.
fn broken_dir(g: &Graph, path: &std::path::Path) -> Option<String> {
    let b = g.gd.broken_layers.iter().find(|b| b.path == path)?;
    let c = b.cache_id.as_ref()?;
    let n = g.edges.dir(&c.0)?;
    (g.holds.of(n).len() == 1).then(|| c.0.to_string())
}
