//! containerd's GC graph as dense nodes and edges (`core/metadata/gc.go`
//! `references`, `sendLabelRefs`, `scanRoots` for back-references and
//! conditional references): what each record refers to.

use super::*;
use crate::ids::{BlobDigest, SnapshotKey};
use crate::reach::Refs;
use crate::store::containerd::Namespace;
use std::collections::HashMap;

/// Out-edges per kind, per node key, before they are packed.
type Adj = Vec<Vec<Vec<Node>>>;

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

    /// Snapshots: parent, labels, back-references; returns their
    /// `gc.cond.value-usedat` values, for 2.3+ conditional references.
    fn snapshot_edges(
        &self,
        nss: &[(&'s str, &'s Namespace)],
        rules: &GcRules,
        adj: &mut Adj,
        brefs: &mut Vec<(Node, Node)>,
    ) -> HashMap<u32, Time> {
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
                    brefs,
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
        usedat
    }

    /// Blobs and images: targets, labels, conditional and back-references.
    fn blob_and_image_edges(
        &self,
        nss: &[(&'s str, &'s Namespace)],
        rules: &GcRules,
        usedat: &HashMap<u32, Time>,
        adj: &mut Adj,
        brefs: &mut Vec<(Node, Node)>,
    ) {
        let now = self.state.read_at;
        for (key, (ns, d)) in self.blobs.iter().enumerate() {
            let rec = &nss[*ns as usize].1.blobs[d];
            let mut out = Vec::new();
            self.label_refs(*ns, &rec.labels, rules, &mut out);
            if rules.conditional {
                self.conditional(*ns, &rec.labels, usedat, now, &mut out);
            }
            adj[Kind::Blob.index()][key] = out;
            if rules.back_refs {
                self.back_refs(*ns, &rec.labels, Node::new(Kind::Blob, key as u32), brefs);
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
                self.conditional(*ns, &rec.labels, usedat, now, &mut out);
            }
            adj[Kind::Image.index()][key] = out;
            if rules.back_refs {
                self.back_refs(*ns, &rec.labels, Node::new(Kind::Image, key as u32), brefs);
            }
        }
    }

    /// Leases (to what they name, flat or not) and ingests (to the blob
    /// they will become).
    fn lease_and_ingest_edges(
        &self,
        nss: &[(&'s str, &'s Namespace)],
        rules: &GcRules,
        adj: &mut Adj,
    ) {
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
    }

    fn build_edges(&mut self, nss: &[(&'s str, &'s Namespace)], rules: &GcRules) {
        let mut adj: Adj = Kind::ALL
            .iter()
            .map(|k| vec![Vec::new(); self.count(*k)])
            .collect();
        let mut brefs: Vec<(Node, Node)> = Vec::new();
        let usedat = self.snapshot_edges(nss, rules, &mut adj, &mut brefs);
        self.blob_and_image_edges(nss, rules, &usedat, &mut adj, &mut brefs);
        self.lease_and_ingest_edges(nss, rules, &mut adj);
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

    pub(super) fn snap_rec(&self, key: u32) -> (&'s str, &'s str, &'s SnapshotKey, &'s SnapRec) {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_durations_parse() {
        assert_eq!(go_duration_nanos("1h"), Some(3_600_000_000_000));
        assert_eq!(go_duration_nanos("1h30m"), Some(5_400_000_000_000));
        assert_eq!(go_duration_nanos("1.5s"), Some(1_500_000_000));
        assert_eq!(go_duration_nanos("0"), Some(0));
        assert_eq!(go_duration_nanos("3x"), None);
        assert_eq!(go_duration_nanos(""), None);
    }
}
