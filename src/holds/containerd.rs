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

use super::{Hold, Holder, HolderId, Holds};
use crate::ids::{BlobDigest, SnapshotKey};
use crate::reach::{Kind, Node, Refs};
use crate::store::containerd::{
    GcRules, Namespace, SnapKind, State, Time,
    meta::{Labels, SnapRec},
};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::path::PathBuf;

const LABEL_ROOT: &str = "containerd.io/gc.root";
const LABEL_REF_CONTENT: &str = "containerd.io/gc.ref.content";
const LABEL_REF_SNAPSHOT: &str = "containerd.io/gc.ref.snapshot.";
const LABEL_REF_IMAGE: &str = "containerd.io/gc.ref.image";
const LABEL_BREF_CONTAINER: &str = "containerd.io/gc.bref.container";
const LABEL_BREF_CONTENT: &str = "containerd.io/gc.bref.content";
const LABEL_BREF_IMAGE: &str = "containerd.io/gc.bref.image";
const LABEL_BREF_SNAPSHOT: &str = "containerd.io/gc.bref.snapshot.";
const LABEL_COND_SNAPSHOT: &str = "containerd.io/gc.cond.snapshot";
const LABEL_COND_USEDAT: &str = "containerd.io/gc.cond.value-usedat";
/// Lease and (2.0+) image expiry, RFC 3339.
pub const LABEL_EXPIRE: &str = "containerd.io/gc.expire";
/// A lease that keeps its resources but not what they refer to.
pub const LABEL_FLAT: &str = "containerd.io/gc.flat";

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

const NONE: u32 = u32::MAX;

/// The containerd snapshot as dense nodes and edges.
pub struct Edges<'s> {
    pub state: &'s State,
    pub namespaces: Vec<&'s str>,
    pub images: Vec<(u32, &'s str)>,
    pub blobs: Vec<(u32, BlobDigest)>,
    /// (namespace, snapshotter, key).
    pub snapshots: Vec<(u32, &'s str, &'s SnapshotKey)>,
    pub leases: Vec<(u32, &'s str)>,
    pub ingests: Vec<(u32, &'s str)>,
    pub containers: Vec<(u32, &'s str)>,
    pub sandboxes: Vec<(u32, &'s str)>,
    image_key: HashMap<(u32, &'s str), u32>,
    blob_key: HashMap<(u32, BlobDigest), u32>,
    snap_key: HashMap<(u32, &'s str, &'s str), u32>,
    /// Out-edges per kind, CSR: `out[k][at[k][n]..at[k][n + 1]]`.
    out: Vec<Vec<Node>>,
    at: Vec<Vec<u32>>,
}

fn ns_of(s: &State) -> Vec<(&str, &Namespace)> {
    s.namespaces
        .iter()
        .map(|(n, ns)| (n.as_str(), ns))
        .collect()
}

/// The value of a label that names an object, by prefix rule: `key` alone,
/// or followed by `.` or `/` and a name (containerd "allows reference
/// naming separated by . or /").
fn named(k: &str, prefix: &str) -> bool {
    match k.strip_prefix(prefix) {
        Some("") => true,
        Some(rest) => rest.starts_with('.') || rest.starts_with('/'),
        None => false,
    }
}

/// The snapshotter a `gc.ref.snapshot.<sn>[/…]` label names.
fn snapshotter_of<'a>(k: &'a str, prefix: &str) -> Option<&'a str> {
    let rest = k.strip_prefix(prefix)?;
    let sn = rest.split('/').next().unwrap_or(rest);
    (!sn.is_empty()).then_some(sn)
}

/// Whether labels make an object a `gc.root`: the exact key up to 2.1
/// (`isRootRef`), any key with that prefix from 2.2 (the handler loop).
fn gc_root<'l>(labels: &'l Labels, rules: &GcRules) -> Option<&'l str> {
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

impl<'s> Edges<'s> {
    pub fn new(s: &'s State) -> Edges<'s> {
        let rules = s.version.as_ref().map(|v| v.gc).unwrap_or(GcRules {
            images_are_nodes: false,
            root_prefix: false,
            back_refs: false,
            conditional: false,
        });
        let nss = ns_of(s);
        let mut e = Edges {
            state: s,
            namespaces: nss.iter().map(|(n, _)| *n).collect(),
            images: Vec::new(),
            blobs: Vec::new(),
            snapshots: Vec::new(),
            leases: Vec::new(),
            ingests: Vec::new(),
            containers: Vec::new(),
            sandboxes: Vec::new(),
            image_key: HashMap::new(),
            blob_key: HashMap::new(),
            snap_key: HashMap::new(),
            out: Vec::new(),
            at: Vec::new(),
        };
        for (i, (_, ns)) in nss.iter().enumerate() {
            let i = i as u32;
            for name in ns.images.keys() {
                e.image_key
                    .insert((i, name.as_str()), e.images.len() as u32);
                e.images.push((i, name.as_str()));
            }
            for d in ns.blobs.keys() {
                e.blob_key.insert((i, *d), e.blobs.len() as u32);
                e.blobs.push((i, *d));
            }
            for (sn, recs) in &ns.snapshots {
                for k in recs.keys() {
                    e.snap_key
                        .insert((i, sn.as_str(), k.0.as_str()), e.snapshots.len() as u32);
                    e.snapshots.push((i, sn.as_str(), k));
                }
            }
            e.leases.extend(ns.leases.keys().map(|k| (i, k.as_str())));
            e.ingests.extend(ns.ingests.keys().map(|k| (i, k.as_str())));
            e.containers
                .extend(ns.containers.keys().map(|k| (i, k.as_str())));
            e.sandboxes
                .extend(ns.sandboxes.keys().map(|k| (i, k.as_str())));
        }
        e.build_edges(&nss, &rules);
        e
    }

    fn blob(&self, ns: u32, v: &str) -> u32 {
        BlobDigest::parse(v)
            .ok()
            .and_then(|d| self.blob_key.get(&(ns, d)).copied())
            .unwrap_or(NONE)
    }

    fn snap(&self, ns: u32, sn: &str, key: &str) -> u32 {
        self.snap_key.get(&(ns, sn, key)).copied().unwrap_or(NONE)
    }

    fn image(&self, ns: u32, name: &str) -> u32 {
        self.image_key.get(&(ns, name)).copied().unwrap_or(NONE)
    }

    /// The forward references of an object's labels (`sendLabelRefs` with `fn`).
    fn label_refs(&self, ns: u32, labels: &Labels, rules: &GcRules, out: &mut Vec<Node>) {
        for (k, v) in labels {
            if !k.starts_with("containerd.io/gc.ref.") {
                continue;
            }
            let n = if named(k, LABEL_REF_CONTENT) {
                Node::new(Kind::Blob, self.blob(ns, v))
            } else if let Some(sn) = snapshotter_of(k, LABEL_REF_SNAPSHOT) {
                Node::new(Kind::Snapshot, self.snap(ns, sn, v))
            } else if rules.images_are_nodes && named(k, LABEL_REF_IMAGE) {
                Node::new(Kind::Image, self.image(ns, v))
            } else {
                // Plugin resources (`gc.ref.<type>`, 2.2+ mounts) hold no image data.
                continue;
            };
            if n.key != NONE {
                out.push(n);
            }
        }
    }

    /// Back-references (2.2+): a `gc.bref.*` label on `me` names an object
    /// that keeps `me` alive; that is an edge from the named object to `me`.
    fn back_refs(&self, ns: u32, labels: &Labels, me: Node, into: &mut Vec<(Node, Node)>) {
        for (k, v) in labels {
            if !k.starts_with("containerd.io/gc.bref.") {
                continue;
            }
            let from = if named(k, LABEL_BREF_CONTENT) {
                Node::new(Kind::Blob, self.blob(ns, v))
            } else if named(k, LABEL_BREF_IMAGE) {
                Node::new(Kind::Image, self.image(ns, v))
            } else if named(k, LABEL_BREF_CONTAINER) {
                let c = self
                    .containers
                    .iter()
                    .position(|(n, id)| *n == ns && *id == v.as_str());
                Node::new(Kind::Container, c.map_or(NONE, |c| c as u32))
            } else if let Some(sn) = snapshotter_of(k, LABEL_BREF_SNAPSHOT) {
                Node::new(Kind::Snapshot, self.snap(ns, sn, v))
            } else {
                continue;
            };
            if from.key != NONE {
                into.push((from, me));
            }
        }
    }

    fn build_edges(&mut self, nss: &[(&'s str, &'s Namespace)], rules: &GcRules) {
        let now = self.state.read_at;
        let mut adj: Vec<Vec<Vec<Node>>> = Kind::ALL
            .iter()
            .map(|k| vec![Vec::new(); self.count(*k)])
            .collect();
        let mut brefs: Vec<(Node, Node)> = Vec::new();
        // usedat values of snapshots, for 2.3+ conditional references.
        let mut usedat: HashMap<u32, Time> = HashMap::new();
        for (key, (ns, sn, k)) in self.snapshots.iter().enumerate() {
            let rec = &nss[*ns as usize].1.snapshots[*sn][*k];
            let mut out = Vec::new();
            if let Some(p) = &rec.parent {
                let p = self.snap(*ns, sn, &p.0);
                if p != NONE {
                    out.push(Node::new(Kind::Snapshot, p));
                    adj[Kind::SnapshotFlat.index()][key].push(Node::new(Kind::SnapshotFlat, p));
                }
            }
            self.label_refs(*ns, &rec.labels, rules, &mut out);
            adj[Kind::Snapshot.index()][key] = out;
            if rules.back_refs {
                self.back_refs(
                    *ns,
                    &rec.labels,
                    Node::new(Kind::Snapshot, key as u32),
                    &mut brefs,
                );
            }
            if let Some(t) = rec
                .labels
                .get(LABEL_COND_USEDAT)
                .and_then(|v| Time::parse_rfc3339(v).ok())
            {
                usedat.insert(key as u32, t);
            }
        }
        for (key, (ns, d)) in self.blobs.iter().enumerate() {
            let rec = &nss[*ns as usize].1.blobs[d];
            let mut out = Vec::new();
            self.label_refs(*ns, &rec.labels, rules, &mut out);
            if rules.conditional {
                self.conditional(*ns, &rec.labels, &usedat, now, &mut out);
            }
            adj[Kind::Blob.index()][key] = out;
            if rules.back_refs {
                self.back_refs(
                    *ns,
                    &rec.labels,
                    Node::new(Kind::Blob, key as u32),
                    &mut brefs,
                );
            }
        }
        for (key, (ns, name)) in self.images.iter().enumerate() {
            let rec = &nss[*ns as usize].1.images[*name];
            let target = rec
                .target
                .digest
                .and_then(|d| self.blob_key.get(&(*ns, d)).copied())
                .unwrap_or(NONE);
            let mut out = Vec::new();
            if target != NONE {
                out.push(Node::new(Kind::Blob, target));
                adj[Kind::ImageFlat.index()][key].push(Node::new(Kind::BlobFlat, target));
            }
            self.label_refs(*ns, &rec.labels, rules, &mut out);
            if rules.conditional {
                self.conditional(*ns, &rec.labels, &usedat, now, &mut out);
            }
            adj[Kind::Image.index()][key] = out;
            if rules.back_refs {
                self.back_refs(
                    *ns,
                    &rec.labels,
                    Node::new(Kind::Image, key as u32),
                    &mut brefs,
                );
            }
        }
        for (key, (ns, id)) in self.leases.iter().enumerate() {
            let rec = &nss[*ns as usize].1.leases[*id];
            let flat = rec.labels.contains_key(LABEL_FLAT);
            let out = &mut adj[Kind::Lease.index()][key];
            let (bk, sk, ik) = if flat {
                (Kind::BlobFlat, Kind::SnapshotFlat, Kind::ImageFlat)
            } else {
                (Kind::Blob, Kind::Snapshot, Kind::Image)
            };
            for d in &rec.content {
                if let Some(b) = self.blob_key.get(&(*ns, *d)) {
                    out.push(Node::new(bk, *b));
                }
            }
            for (sn, k) in &rec.snapshots {
                let s = self.snap_key.get(&(*ns, sn.as_str(), k.0.as_str()));
                if let Some(s) = s {
                    out.push(Node::new(sk, *s));
                }
            }
            for ing in &rec.ingests {
                if let Some(i) = self.ingests.iter().position(|(n, k)| n == ns && k == ing) {
                    out.push(Node::new(Kind::Ingest, i as u32));
                }
            }
            if rules.images_are_nodes {
                for name in &rec.images {
                    let i = self.image(*ns, name);
                    if i != NONE {
                        out.push(Node::new(ik, i));
                    }
                }
            }
        }
        for (key, (ns, k)) in self.ingests.iter().enumerate() {
            let rec = &nss[*ns as usize].1.ingests[*k];
            if let Some(d) = rec.expected
                && let Some(b) = self.blob_key.get(&(*ns, d))
            {
                adj[Kind::Ingest.index()][key].push(Node::new(Kind::Blob, *b));
            }
        }
        for (key, (ns, id)) in self.containers.iter().enumerate() {
            let rec = &nss[*ns as usize].1.containers[*id];
            let mut out = Vec::new();
            if let (Some(sn), Some(k)) = (&rec.snapshotter, &rec.snapshot_key) {
                let s = self.snap(*ns, sn, &k.0);
                if s != NONE {
                    out.push(Node::new(Kind::Snapshot, s));
                }
            }
            self.label_refs(*ns, &rec.labels, rules, &mut out);
            adj[Kind::Container.index()][key] = out;
            if rules.back_refs {
                self.back_refs(
                    *ns,
                    &rec.labels,
                    Node::new(Kind::Container, key as u32),
                    &mut brefs,
                );
            }
        }
        for (key, (ns, id)) in self.sandboxes.iter().enumerate() {
            let rec = &nss[*ns as usize].1.sandboxes[*id];
            let mut out = Vec::new();
            self.label_refs(*ns, &rec.labels, rules, &mut out);
            adj[Kind::Sandbox.index()][key] = out;
        }
        for (from, to) in brefs {
            adj[from.kind.index()][from.key as usize].push(to);
        }
        // CSR per kind.
        for lists in adj {
            let mut at = Vec::with_capacity(lists.len() + 1);
            let mut flat = Vec::new();
            at.push(0);
            for l in lists {
                flat.extend(l);
                at.push(flat.len() as u32);
            }
            self.out.push(flat);
            self.at.push(at);
        }
    }

    /// 2.3+ conditional references (`gc.cond.snapshot[.<sn>]` =
    /// `usedat<dur[,…]|key`): an edge to the snapshot while its
    /// `gc.cond.value-usedat` satisfies one condition.
    fn conditional(
        &self,
        ns: u32,
        labels: &Labels,
        usedat: &HashMap<u32, Time>,
        now: Time,
        out: &mut Vec<Node>,
    ) {
        for (k, v) in labels {
            let Some(rest) = k.strip_prefix(LABEL_COND_SNAPSHOT) else {
                continue;
            };
            let sn = rest.trim_start_matches(['.', '/']);
            let sn = sn.split('/').next().unwrap_or(sn);
            let Some((conds, key)) = v.split_once('|') else {
                continue;
            };
            let s = self.snap(ns, sn, key);
            let Some(used) = (s != NONE).then(|| usedat.get(&s)).flatten() else {
                continue;
            };
            let since = now.unix_nanos() - used.unix_nanos();
            let ok = conds.split(',').any(|c| {
                let Some(op) = c.find(['<', '>', '=']) else {
                    return false;
                };
                if &c[..op] != "usedat" {
                    return false;
                }
                let Some(d) = go_duration_nanos(&c[op + 1..]) else {
                    return false;
                };
                match &c[op..op + 1] {
                    "<" => since < d,
                    ">" => since > d,
                    _ => false,
                }
            });
            if ok {
                out.push(Node::new(Kind::Snapshot, s));
            }
        }
    }

    pub fn blob_node(&self, ns: u32, d: &BlobDigest) -> Option<Node> {
        self.blob_key
            .get(&(ns, *d))
            .map(|k| Node::new(Kind::Blob, *k))
    }

    pub fn snapshot_node(&self, ns: u32, sn: &str, key: &str) -> Option<Node> {
        self.snap_key
            .get(&(ns, sn, key))
            .map(|k| Node::new(Kind::Snapshot, *k))
    }

    pub fn image_node(&self, ns: u32, name: &str) -> Option<Node> {
        self.image_key
            .get(&(ns, name))
            .map(|k| Node::new(Kind::Image, *k))
    }

    pub fn ns_index(&self, name: &str) -> Option<u32> {
        self.namespaces
            .iter()
            .position(|n| *n == name)
            .map(|i| i as u32)
    }

    fn snap_rec(&self, key: u32) -> (&'s str, &'s str, &'s SnapshotKey, &'s SnapRec) {
        let (ns, sn, k) = self.snapshots[key as usize];
        let name = self.namespaces[ns as usize];
        (name, sn, k, &self.state.namespaces[name].snapshots[sn][k])
    }
}

/// A Go duration (`time.ParseDuration`) in nanoseconds: a sequence of
/// decimal numbers with units ns, us, µs, ms, s, m, h.
fn go_duration_nanos(s: &str) -> Option<i128> {
    let (neg, mut rest) = match s.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, s.strip_prefix('+').unwrap_or(s)),
    };
    if rest == "0" {
        return Some(0);
    }
    let mut total: f64 = 0.0;
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let n = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let num: f64 = rest[..n].parse().ok()?;
        rest = &rest[n..];
        let u = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let mult = match &rest[..u] {
            "ns" => 1.0,
            "us" | "µs" | "μs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return None,
        };
        rest = &rest[u..];
        total += num * mult;
    }
    let v = total as i128;
    Some(if neg { -v } else { v })
}

impl Refs for Edges<'_> {
    fn count(&self, kind: Kind) -> usize {
        match kind {
            Kind::Image | Kind::ImageFlat => self.images.len(),
            Kind::Blob | Kind::BlobFlat => self.blobs.len(),
            Kind::Snapshot | Kind::SnapshotFlat => self.snapshots.len(),
            Kind::Lease => self.leases.len(),
            Kind::Ingest => self.ingests.len(),
            Kind::Container => self.containers.len(),
            Kind::Sandbox => self.sandboxes.len(),
            Kind::Layer | Kind::Mount | Kind::Dir => 0,
        }
    }

    fn refs(&self, n: Node, out: &mut Vec<Node>) {
        let (Some(at), Some(list)) = (self.at.get(n.kind.index()), self.out.get(n.kind.index()))
        else {
            return;
        };
        if let (Some(a), Some(b)) = (at.get(n.key as usize), at.get(n.key as usize + 1)) {
            out.extend_from_slice(&list[*a as usize..*b as usize]);
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
    for (key, (ns, d)) in e.blobs.iter().enumerate() {
        let name = e.namespaces[*ns as usize];
        let rec = &s.namespaces[name].blobs[d];
        if let Some(v) = gc_root(&rec.labels, &rules) {
            out.push(hold(
                CtrdHolder::GcRoot {
                    namespace: name.into(),
                    object: format!("blob {d}"),
                    since: v.into(),
                },
                Node::new(Kind::Blob, key as u32),
            ));
        }
    }
    for key in 0..e.snapshots.len() {
        let (name, sn, k, rec) = e.snap_rec(key as u32);
        if let Some(v) = gc_root(&rec.labels, &rules) {
            out.push(hold(
                CtrdHolder::GcRoot {
                    namespace: name.into(),
                    object: format!("snapshot {sn}/{k}"),
                    since: v.into(),
                },
                Node::new(Kind::Snapshot, key as u32),
            ));
        }
    }
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

/// What the sweep would delete: a record, or a file or directory.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ItemKind {
    /// meta.db records.
    Lease,
    Image,
    BlobRecord,
    SnapshotRecord,
    IngestRecord,
    /// A snapshotter metastore record.
    Backend,
    /// Files and directories.
    Blob,
    SnapshotDir,
    IngestDir,
}

#[derive(Clone, Debug, Serialize)]
pub struct Item {
    pub kind: ItemKind,
    /// `ns/name` for records, the digest for blobs, the backend name for
    /// backend records, the directory name for dirs.
    pub id: String,
    /// The file or directory that goes (records: the database holding them).
    pub path: PathBuf,
    /// The namespace the item belongs to, when it belongs to one.
    pub namespace: Option<String>,
    /// Bytes it frees: file size for blobs, snapshot usage for snapshot
    /// dirs, allocated bytes for ingest dirs; 0 for records.
    pub bytes: u64,
    pub reason: String,
}

/// Data no record holds (doc'd per kind on [`OrphanKind`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum OrphanKind {
    /// A blob file no namespace records.
    BlobFile,
    /// An ingest directory whose ref no ingest record holds.
    IngestDir,
    /// An ingest directory without a readable `ref`: containerd logs it and
    /// never removes it (`store.go` `WalkStatusRefs`).
    IngestWithoutRef,
    /// A metastore snapshot no namespace's record names.
    Backend,
    /// A `snapshots/` entry that is no backend's id (`new-*`: an
    /// interrupted create; `rm-*`: an interrupted native removal).
    SnapshotDir,
}

#[derive(Clone, Debug, Serialize)]
pub struct Orphan {
    pub kind: OrphanKind,
    pub id: String,
    pub path: PathBuf,
    pub bytes: u64,
    pub reason: String,
    /// The next collection deletes it too: it dirties this store by
    /// removing collectable records (containerd sweeps a store only then).
    pub removed_at_next_gc: bool,
}

#[derive(Debug, Default, Serialize)]
pub struct Sweep {
    pub collectable: Vec<Item>,
    pub orphans: Vec<Orphan>,
}

/// The sweep of containerd's next collection, with "now" the time of reading.
pub fn collect(a: &Analysis<'_>) -> Sweep {
    let e = &a.edges;
    let s = e.state;
    let mut sweep = Sweep::default();
    let meta = s.paths.meta_db();
    let rules = s.version.as_ref().map(|v| v.gc);
    let images_collected = rules.is_some_and(|r| r.images_are_nodes);
    let unheld = |n: Node| !a.marked(n);
    let reason_unmarked = "no lease, image, container, sandbox, live ingest or gc.root reaches it";

    // 1. meta.db records.
    let mut removed_blob_or_ingest = false;
    let mut dirty_sn: BTreeSet<&str> = BTreeSet::new();
    for (key, (ns, id)) in e.leases.iter().enumerate() {
        if unheld(Node::new(Kind::Lease, key as u32)) {
            let name = e.namespaces[*ns as usize];
            let rec = &s.namespaces[name].leases[*id];
            sweep.collectable.push(Item {
                kind: ItemKind::Lease,
                id: format!("{name}/{id}"),
                path: meta.clone(),
                namespace: Some(name.into()),
                bytes: 0,
                reason: format!(
                    "expired at {}",
                    rec.labels.get(LABEL_EXPIRE).map_or("?", String::as_str)
                ),
            });
        }
    }
    if images_collected {
        for (key, (ns, img)) in e.images.iter().enumerate() {
            if unheld(Node::new(Kind::Image, key as u32)) {
                let name = e.namespaces[*ns as usize];
                let rec = &s.namespaces[name].images[*img];
                sweep.collectable.push(Item {
                    kind: ItemKind::Image,
                    id: format!("{name}/{img}"),
                    path: meta.clone(),
                    namespace: Some(name.into()),
                    bytes: 0,
                    reason: format!(
                        "gc.expire {} has passed and nothing refers to it",
                        rec.labels.get(LABEL_EXPIRE).map_or("?", String::as_str)
                    ),
                });
            }
        }
    }
    // Records that stay: what the content and snapshot sweeps keep.
    let mut kept_digests: HashSet<BlobDigest> = HashSet::new();
    let mut removed_blob_ns: BTreeMap<BlobDigest, Vec<&str>> = BTreeMap::new();
    for (key, (ns, d)) in e.blobs.iter().enumerate() {
        let name = e.namespaces[*ns as usize];
        if unheld(Node::new(Kind::Blob, key as u32)) {
            removed_blob_or_ingest = true;
            removed_blob_ns.entry(*d).or_default().push(name);
            sweep.collectable.push(Item {
                kind: ItemKind::BlobRecord,
                id: format!("{name}/{d}"),
                path: meta.clone(),
                namespace: Some(name.into()),
                bytes: 0,
                reason: reason_unmarked.into(),
            });
        } else {
            kept_digests.insert(*d);
        }
    }
    let mut live_refs: HashSet<&str> = HashSet::new();
    for (key, (ns, k)) in e.ingests.iter().enumerate() {
        let name = e.namespaces[*ns as usize];
        let rec = &s.namespaces[name].ingests[*k];
        if unheld(Node::new(Kind::Ingest, key as u32)) {
            removed_blob_or_ingest = true;
            sweep.collectable.push(Item {
                kind: ItemKind::IngestRecord,
                id: format!("{name}/{k}"),
                path: meta.clone(),
                namespace: Some(name.into()),
                bytes: 0,
                reason: match rec.expire_at {
                    Some(t) => format!("expired at {t}"),
                    None => "its lease is gone".into(),
                },
            });
        } else {
            live_refs.insert(rec.backend_ref.as_str());
            if let Some(d) = rec.expected {
                kept_digests.insert(d);
            }
        }
    }
    // Backend names still held, per snapshotter.
    let mut named: HashMap<&str, HashSet<&str>> = HashMap::new();
    for key in 0..e.snapshots.len() {
        let (name, sn, k, rec) = e.snap_rec(key as u32);
        if unheld(Node::new(Kind::Snapshot, key as u32)) {
            dirty_sn.insert(sn);
            sweep.collectable.push(Item {
                kind: ItemKind::SnapshotRecord,
                id: format!("{name}/{sn}/{k}"),
                path: meta.clone(),
                namespace: Some(name.into()),
                bytes: 0,
                reason: reason_unmarked.into(),
            });
        } else {
            named.entry(sn).or_default().insert(rec.name.as_str());
        }
    }

    // 2. Content files, when a blob or ingest record goes.
    for (d, f) in &s.blobs {
        if kept_digests.contains(d) {
            continue;
        }
        let path = s.paths.blob(d);
        match removed_blob_ns.get(d) {
            Some(nss) if removed_blob_or_ingest => sweep.collectable.push(Item {
                kind: ItemKind::Blob,
                id: d.to_string(),
                path,
                namespace: (nss.len() == 1).then(|| nss[0].to_string()),
                bytes: f.size,
                reason: format!("its record(s) in {} go", nss.join(", ")),
            }),
            Some(_) => {}
            None => sweep.orphans.push(Orphan {
                kind: OrphanKind::BlobFile,
                id: d.to_string(),
                path,
                bytes: f.size,
                reason: "no namespace records this blob".into(),
                removed_at_next_gc: removed_blob_or_ingest,
            }),
        }
    }
    let all_refs: HashSet<&str> = s
        .namespaces
        .values()
        .flat_map(|n| n.ingests.values().map(|i| i.backend_ref.as_str()))
        .collect();
    for (dir, ing) in &s.ingests {
        let path = s.paths.ingest(dir);
        match &ing.backend_ref {
            Ok(Some(r)) if live_refs.contains(r.as_str()) => {}
            Ok(Some(r)) if all_refs.contains(r.as_str()) => {
                if removed_blob_or_ingest {
                    sweep.collectable.push(Item {
                        kind: ItemKind::IngestDir,
                        id: dir.clone(),
                        path,
                        namespace: r.split('/').next().map(str::to_string),
                        bytes: ing.allocated,
                        reason: format!("its record for {r} goes"),
                    });
                }
            }
            Ok(Some(r)) => sweep.orphans.push(Orphan {
                kind: OrphanKind::IngestDir,
                id: dir.clone(),
                path,
                bytes: ing.allocated,
                reason: format!("no ingest record holds {r}"),
                removed_at_next_gc: removed_blob_or_ingest,
            }),
            Ok(None) | Err(_) => sweep.orphans.push(Orphan {
                kind: OrphanKind::IngestWithoutRef,
                id: dir.clone(),
                path,
                bytes: ing.allocated,
                reason: match &ing.backend_ref {
                    Err(why) => format!("ref unreadable ({why}); containerd never removes it"),
                    _ => "no ref file; containerd never removes it".into(),
                },
                removed_at_next_gc: false,
            }),
        }
    }

    // 3. Each snapshotter: backends no record names, leaves first; then
    // every directory that is no remaining backend's id (`Cleanup`).
    for (sn_name, sn) in &s.snapshotters {
        if sn.db_error.is_some() {
            // Its backends are unknown: nothing of it can be called collectable.
            continue;
        }
        let dirty = dirty_sn.contains(sn_name.as_str());
        let held = named.get(sn_name.as_str());
        let unnamed = |b: &str| !held.is_some_and(|h| h.contains(b));
        // Children per backend, to keep a parent whose child stays.
        let mut kids: HashMap<&str, Vec<&str>> = HashMap::new();
        for (n, b) in &sn.backends {
            if let Some(p) = &b.parent {
                kids.entry(p.as_str()).or_default().push(n.as_str());
            }
        }
        let mut goes: HashMap<&str, bool> = HashMap::new();
        fn decide<'a>(
            n: &'a str,
            kids: &HashMap<&'a str, Vec<&'a str>>,
            unnamed: &dyn Fn(&str) -> bool,
            goes: &mut HashMap<&'a str, bool>,
            depth: usize,
        ) -> bool {
            if let Some(g) = goes.get(n) {
                return *g;
            }
            goes.insert(n, false); // a cycle keeps everything on it
            let g = unnamed(n)
                && depth < 10_000
                && kids
                    .get(n)
                    .is_none_or(|ks| ks.iter().all(|k| decide(k, kids, unnamed, goes, depth + 1)));
            goes.insert(n, g);
            g
        }
        let mut remaining_ids: HashSet<String> = HashSet::new();
        for (n, b) in &sn.backends {
            let g = decide(n.as_str(), &kids, &unnamed, &mut goes, 0);
            let dir = b.id.to_string();
            if !g {
                remaining_ids.insert(dir);
                continue;
            }
            let ns = n.split('/').next().map(str::to_string);
            if removed_backend_from_collectable(a, sn_name, n) {
                // Only collectable records name it: it goes with them (its
                // snapshotter is dirty, since one of its records goes).
                sweep.collectable.push(Item {
                    kind: ItemKind::Backend,
                    id: n.clone(),
                    path: s.paths.metastore(sn_name),
                    namespace: ns.clone(),
                    bytes: 0,
                    reason: "its snapshot record goes".into(),
                });
                if sn.dirs.contains_key(&dir) {
                    sweep.collectable.push(Item {
                        kind: ItemKind::SnapshotDir,
                        id: dir.clone(),
                        path: s.paths.snapshot_dir(sn_name, &dir),
                        namespace: ns,
                        bytes: sn.usage(n).map_or(0, |u| u.size),
                        reason: format!("its backend snapshot {n} goes"),
                    });
                }
            } else {
                sweep.orphans.push(Orphan {
                    kind: OrphanKind::Backend,
                    id: n.clone(),
                    path: s.paths.snapshot_dir(sn_name, &dir),
                    bytes: sn.usage(n).map_or(0, |u| u.size),
                    reason: format!(
                        "metastore snapshot {n} (dir {dir}) is named by no namespace's record"
                    ),
                    removed_at_next_gc: dirty,
                });
                if !dirty {
                    remaining_ids.insert(dir);
                }
            }
        }
        for name in sn.dirs.keys() {
            if remaining_ids.contains(name)
                || sn.backends.values().any(|b| b.id.to_string() == *name)
            {
                continue;
            }
            let path = s.paths.snapshot_dir(sn_name, name);
            sweep.orphans.push(Orphan {
                kind: OrphanKind::SnapshotDir,
                id: name.clone(),
                bytes: crate::disk::allocated_bytes(&path),
                path,
                reason: if name.starts_with("new-") {
                    "an interrupted snapshot create".into()
                } else if name.starts_with("rm-") {
                    "an interrupted snapshot removal".into()
                } else {
                    "no backend snapshot has this id".into()
                },
                removed_at_next_gc: dirty,
            });
        }
    }
    sweep
        .collectable
        .sort_by(|x, y| (&x.kind, &x.id).cmp(&(&y.kind, &y.id)));
    sweep
        .orphans
        .sort_by(|x, y| (x.kind, &x.id).cmp(&(y.kind, &y.id)));
    sweep
}

/// Whether a backend name is held only by snapshot records that are collectable.
fn removed_backend_from_collectable(a: &Analysis<'_>, sn: &str, backend: &str) -> bool {
    let e = &a.edges;
    (0..e.snapshots.len()).any(|key| {
        let (_, s, _, rec) = e.snap_rec(key as u32);
        s == sn && rec.name == backend && !a.marked(Node::new(Kind::Snapshot, key as u32))
    })
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
    fn go_durations_parse() {
        assert_eq!(go_duration_nanos("1h"), Some(3_600_000_000_000));
        assert_eq!(go_duration_nanos("1h30m"), Some(5_400_000_000_000));
        assert_eq!(go_duration_nanos("1.5s"), Some(1_500_000_000));
        assert_eq!(go_duration_nanos("0"), Some(0));
        assert_eq!(go_duration_nanos("3x"), None);
        assert_eq!(go_duration_nanos(""), None);
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
