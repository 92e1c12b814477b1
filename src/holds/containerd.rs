//! The containerd source's half of the holds: containerd's garbage
//! collector's mark (`core/metadata/gc.go` `scanRoots`, `references`,
//! `sendLabelRefs`; 1.x `metadata/gc.go`; `pkg/gc/gc.go` `Tricolor`) as
//! nodes, edges and holders over [`crate::reach`], and its sweep
//! (`core/metadata/db.go` `GarbageCollect`, `content.go` and `snapshot.go`
//! `garbageCollect`) as [`collect`]: what containerd's next collection
//! would delete, computed with the same core as everything else.
//!
//! Nodes are per namespace: references never cross namespaces (`gcnode`
//! carries the namespace). The mark always covers every namespace, because
//! a blob file goes only when no namespace records it.

mod edges;
mod sweep;

pub use edges::Edges;
pub use sweep::{Item, ItemKind, Orphan, OrphanKind, Sweep, collect};

use super::{Hold, Holder, HolderId, Holds};
use crate::reach::{Kind, Node};
use crate::store::containerd::{
    GcRules, SnapKind, State, Time,
    meta::{Labels, SnapRec},
};
use serde::Serialize;

pub(crate) const LABEL_ROOT: &str = "containerd.io/gc.root";
pub(crate) const LABEL_REF_CONTENT: &str = "containerd.io/gc.ref.content";
pub(crate) const LABEL_REF_SNAPSHOT: &str = "containerd.io/gc.ref.snapshot.";
pub(crate) const LABEL_REF_IMAGE: &str = "containerd.io/gc.ref.image";
pub(crate) const LABEL_BREF_CONTAINER: &str = "containerd.io/gc.bref.container";
pub(crate) const LABEL_BREF_CONTENT: &str = "containerd.io/gc.bref.content";
pub(crate) const LABEL_BREF_IMAGE: &str = "containerd.io/gc.bref.image";
pub(crate) const LABEL_BREF_SNAPSHOT: &str = "containerd.io/gc.bref.snapshot.";
pub(crate) const LABEL_COND_SNAPSHOT: &str = "containerd.io/gc.cond.snapshot";
pub(crate) const LABEL_COND_USEDAT: &str = "containerd.io/gc.cond.value-usedat";
/// Lease and (2.0+) image expiry, RFC 3339.
pub const LABEL_EXPIRE: &str = "containerd.io/gc.expire";
/// A lease that keeps its resources but not what they refer to.
pub const LABEL_FLAT: &str = "containerd.io/gc.flat";

/// The value of a label that names an object, by prefix rule: `key` alone,
/// or followed by `.` or `/` and a name (containerd "allows reference
/// naming separated by . or /").
pub(crate) fn named(k: &str, prefix: &str) -> bool {
    match k.strip_prefix(prefix) {
        Some("") => true,
        Some(rest) => rest.starts_with('.') || rest.starts_with('/'),
        None => false,
    }
}

/// The snapshotter a `gc.ref.snapshot.<sn>[/…]` label names.
pub(crate) fn snapshotter_of<'a>(k: &'a str, prefix: &str) -> Option<&'a str> {
    let rest = k.strip_prefix(prefix)?;
    let sn = rest.split('/').next().unwrap_or(rest);
    (!sn.is_empty()).then_some(sn)
}

/// Whether labels make an object a `gc.root`: the exact key up to 2.1
/// (`isRootRef`), any key with that prefix from 2.2 (the handler loop).
pub(crate) fn gc_root<'l>(labels: &'l Labels, rules: &GcRules) -> Option<&'l str> {
    if rules.root_prefix {
        labels
            .range(LABEL_ROOT.to_string()..)
            .take_while(|(k, _)| k.starts_with(LABEL_ROOT))
            .map(|(_, v)| v.as_str())
            .next()
    } else {
        labels.get(LABEL_ROOT).map(String::as_str)
    }
}

/// `gc.expire` is past at `now`. An unparseable value is ignored, as
/// containerd logs and ignores it.
pub fn expired(labels: &Labels, now: Time) -> bool {
    labels
        .get(LABEL_EXPIRE)
        .and_then(|v| Time::parse_rfc3339(v).ok())
        .is_some_and(|exp| now.unix_nanos() > exp.unix_nanos())
}

/// Why containerd keeps something: a root of its mark.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "what", rename_all = "kebab-case")]
pub enum CtrdHolder {
    /// An image record (every one up to 1.7; an unexpired one from 2.0).
    Image { namespace: String, name: String },
    /// An unexpired lease and the resources it names.
    Lease {
        namespace: String,
        id: String,
        expires: Option<String>,
        flat: bool,
    },
    /// An ingest record whose `expireat` is still ahead.
    Ingest {
        namespace: String,
        key: String,
        expires: String,
    },
    /// A blob or snapshot record labelled `containerd.io/gc.root`.
    GcRoot {
        namespace: String,
        object: String,
        since: String,
    },
    /// A container record: never collected.
    Container { namespace: String, id: String },
    /// A sandbox record: its label references are roots.
    Sandbox { namespace: String, id: String },
}

impl CtrdHolder {
    pub fn describe(&self) -> String {
        match self {
            CtrdHolder::Image { namespace, name } => format!("image {namespace}/{name}"),
            CtrdHolder::Lease {
                namespace,
                id,
                expires,
                flat,
            } => format!(
                "lease {namespace}/{id}{}{}",
                if *flat { " (flat)" } else { "" },
                expires
                    .as_ref()
                    .map(|e| format!(" until {e}"))
                    .unwrap_or_default()
            ),
            CtrdHolder::Ingest {
                namespace,
                key,
                expires,
            } => format!("ingest {namespace}/{key} until {expires}"),
            CtrdHolder::GcRoot {
                namespace,
                object,
                since,
            } => format!("gc.root on {namespace}/{object} since {since:?}"),
            CtrdHolder::Container { namespace, id } => format!("container {namespace}/{id}"),
            CtrdHolder::Sandbox { namespace, id } => format!("sandbox {namespace}/{id}"),
        }
    }
}

/// Blobs and snapshots labelled `containerd.io/gc.root` (by prefix from
/// 2.2): roots whatever else holds them.
fn gc_root_holds(e: &Edges<'_>, rules: &GcRules, out: &mut Vec<Hold>) {
    let s = e.state;
    for (key, (ns, d)) in e.blobs.iter().enumerate() {
        let name = e.namespaces[*ns as usize];
        let rec = &s.namespaces[name].blobs[d];
        if let Some(v) = gc_root(&rec.labels, rules) {
            out.push(Hold {
                holder: Holder::Containerd(CtrdHolder::GcRoot {
                    namespace: name.into(),
                    object: format!("blob {d}"),
                    since: v.into(),
                }),
                roots: vec![Node::new(Kind::Blob, key as u32)],
            });
        }
    }
    for key in 0..e.snapshots.len() {
        let (name, sn, k, rec) = e.snap_rec(key as u32);
        if let Some(v) = gc_root(&rec.labels, rules) {
            out.push(Hold {
                holder: Holder::Containerd(CtrdHolder::GcRoot {
                    namespace: name.into(),
                    object: format!("snapshot {sn}/{k}"),
                    since: v.into(),
                }),
                roots: vec![Node::new(Kind::Snapshot, key as u32)],
            });
        }
    }
}

/// The roots of the mark, each with its reason (`scanRoots`).
pub fn holds(e: &Edges<'_>) -> Vec<Hold> {
    let s = e.state;
    let now = s.read_at;
    let rules = s.version.as_ref().map(|v| v.gc);
    let rules = rules.unwrap_or(GcRules {
        images_are_nodes: false,
        root_prefix: false,
        back_refs: false,
        conditional: false,
    });
    let mut out = Vec::new();
    let hold = |h: CtrdHolder, n: Node| Hold {
        holder: Holder::Containerd(h),
        roots: vec![n],
    };
    for (key, (ns, id)) in e.leases.iter().enumerate() {
        let name = e.namespaces[*ns as usize];
        let rec = &s.namespaces[name].leases[*id];
        if expired(&rec.labels, now) {
            continue;
        }
        out.push(hold(
            CtrdHolder::Lease {
                namespace: name.into(),
                id: (*id).into(),
                expires: rec.labels.get(LABEL_EXPIRE).cloned(),
                flat: rec.labels.contains_key(LABEL_FLAT),
            },
            Node::new(Kind::Lease, key as u32),
        ));
    }
    for (key, (ns, img)) in e.images.iter().enumerate() {
        let name = e.namespaces[*ns as usize];
        let rec = &s.namespaces[name].images[*img];
        if rules.images_are_nodes && expired(&rec.labels, now) {
            continue;
        }
        out.push(hold(
            CtrdHolder::Image {
                namespace: name.into(),
                name: (*img).into(),
            },
            Node::new(Kind::Image, key as u32),
        ));
    }
    for (key, (ns, k)) in e.ingests.iter().enumerate() {
        let name = e.namespaces[*ns as usize];
        let rec = &s.namespaces[name].ingests[*k];
        let Some(exp) = rec.expire_at else { continue };
        if now.unix_nanos() > exp.unix_nanos() {
            continue;
        }
        out.push(hold(
            CtrdHolder::Ingest {
                namespace: name.into(),
                key: (*k).into(),
                expires: exp.to_string(),
            },
            Node::new(Kind::Ingest, key as u32),
        ));
    }
    gc_root_holds(e, &rules, &mut out);
    for (key, (ns, id)) in e.containers.iter().enumerate() {
        out.push(hold(
            CtrdHolder::Container {
                namespace: e.namespaces[*ns as usize].into(),
                id: (*id).into(),
            },
            Node::new(Kind::Container, key as u32),
        ));
    }
    for (key, (ns, id)) in e.sandboxes.iter().enumerate() {
        out.push(hold(
            CtrdHolder::Sandbox {
                namespace: e.namespaces[*ns as usize].into(),
                id: (*id).into(),
            },
            Node::new(Kind::Sandbox, key as u32),
        ));
    }
    out
}

/// The edges, holders and holds of a containerd snapshot.
pub struct Analysis<'s> {
    pub edges: Edges<'s>,
    pub holds: Holds,
}

impl<'s> Analysis<'s> {
    pub fn new(s: &'s State) -> Analysis<'s> {
        let edges = Edges::new(s);
        let h = holds(&edges);
        let holds = Holds::compute(&edges, h);
        Analysis { edges, holds }
    }

    /// A record is marked when some holder reaches it, flat or not.
    pub fn marked(&self, n: Node) -> bool {
        let flat = match n.kind {
            Kind::Blob => Some(Kind::BlobFlat),
            Kind::Image => Some(Kind::ImageFlat),
            Kind::Snapshot => Some(Kind::SnapshotFlat),
            _ => None,
        };
        self.holds.is_held(n) || flat.is_some_and(|k| self.holds.is_held(Node::new(k, n.key)))
    }

    /// The holders of a record, flat holds included.
    pub fn holders_of(&self, n: Node) -> Vec<HolderId> {
        let mut h: Vec<HolderId> = self.holds.of(n).to_vec();
        let flat = match n.kind {
            Kind::Blob => Some(Kind::BlobFlat),
            Kind::Image => Some(Kind::ImageFlat),
            Kind::Snapshot => Some(Kind::SnapshotFlat),
            _ => None,
        };
        if let Some(k) = flat {
            h.extend_from_slice(self.holds.of(Node::new(k, n.key)));
        }
        h.sort_unstable();
        h.dedup();
        h
    }
}

/// Snapshot kinds by record, for reports: the backend's kind.
pub fn kind_of(s: &State, sn: &str, rec: &SnapRec) -> Option<SnapKind> {
    s.snapshotters
        .get(sn)
        .and_then(|x| x.backends.get(&rec.name))
        .map(|b| b.kind)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_names_follow_containerds_rules() {
        assert!(named("containerd.io/gc.ref.content", LABEL_REF_CONTENT));
        assert!(named("containerd.io/gc.ref.content.l.0", LABEL_REF_CONTENT));
        assert!(named("containerd.io/gc.ref.content/x", LABEL_REF_CONTENT));
        assert!(!named("containerd.io/gc.ref.contentx", LABEL_REF_CONTENT));
        assert_eq!(
            snapshotter_of(
                "containerd.io/gc.ref.snapshot.overlayfs/a",
                LABEL_REF_SNAPSHOT
            ),
            Some("overlayfs")
        );
        assert_eq!(
            snapshotter_of("containerd.io/gc.ref.snapshot.", LABEL_REF_SNAPSHOT),
            None
        );
    }

    #[test]
    fn gc_root_is_exact_then_prefix() {
        let mut l = Labels::new();
        l.insert("containerd.io/gc.root.mine".into(), "x".into());
        let old = GcRules {
            images_are_nodes: true,
            root_prefix: false,
            back_refs: false,
            conditional: false,
        };
        assert_eq!(gc_root(&l, &old), None);
        let new = GcRules {
            root_prefix: true,
            ..old
        };
        assert_eq!(gc_root(&l, &new), Some("x"));
    }
}
