//! `verify` of a containerd store: the integrity of meta.db's records
//! against the snapshotters' metastores, their directories and the content
//! store's files, and of each image's closure and layer chain. Quick checks
//! read what the snapshot holds; `--deep` hashes every blob file (sha256,
//! in parallel, largest first). Normal states are never findings: layer
//! blobs gone after an unpack, images that are not unpacked, extra
//! namespaces, empty view `fs` dirs, empty `labels` buckets, 1.7's
//! top-level sandbox buckets, a stale `children` entry.

mod deep;
mod images;

use super::{Check, Finding, Impact, Report, Severity, Subject, SubjectKind, Summary};
use crate::holds::Holder;
use crate::holds::containerd::{Analysis, CtrdHolder, OrphanKind};
use crate::ids::{BlobDigest, ChainId, ContainerId, ImageId, SnapshotKey};
use crate::reach::{Kind, Node};
use crate::store::containerd::{Doc, SnapKind, State, manifest};
use crate::store::{AnomalyKind, Snapshot};
use sha2::{Digest as _, Sha256};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::PathBuf;
use std::sync::atomic::AtomicU64;

pub struct Options {
    pub deep: bool,
}

fn finding(check: Check, kind: SubjectKind, id: String, path: PathBuf, message: String) -> Finding {
    Finding {
        check,
        severity: check.severity(),
        subject: Subject { kind, id },
        path,
        message,
        impact: Impact::default(),
    }
}

/// What a finding on these nodes breaks: the images and containers whose
/// holds reach them.
struct Impacts<'a, 's> {
    a: &'a Analysis<'s>,
    docker: BTreeSet<&'s str>,
}

impl Impacts<'_, '_> {
    fn of(&self, nodes: &[Node]) -> Impact {
        let mut images = BTreeSet::new();
        let mut containers = BTreeSet::new();
        let s = self.a.edges.state;
        for n in nodes {
            for h in self.a.holders_of(*n) {
                match self.a.holds.holder(h) {
                    Holder::Containerd(CtrdHolder::Image { namespace, name }) => {
                        if let Some(d) = s
                            .namespaces
                            .get(namespace)
                            .and_then(|ns| ns.images.get(name))
                            .and_then(|i| i.target.digest)
                        {
                            images.insert(ImageId(d.0));
                        }
                    }
                    Holder::Containerd(CtrdHolder::Container { id, .. }) => {
                        containers.insert(ContainerId(id.clone()));
                    }
                    Holder::Containerd(CtrdHolder::Lease { id, .. })
                        if self.docker.contains(id.as_str()) =>
                    {
                        containers.insert(ContainerId(id.clone()));
                    }
                    _ => {}
                }
            }
        }
        Impact {
            images: images.into_iter().collect(),
            containers: containers.into_iter().collect(),
        }
    }
}

/// Runs the checks on a containerd snapshot. `hashed` counts deep bytes.
pub fn run(snap: &Snapshot, opts: &Options, hashed: &AtomicU64) -> Option<Report> {
    let s = snap.containerd()?;
    let mut findings = Vec::new();
    let mut summary = Summary::default();
    if let Some(e) = &s.meta_error {
        findings.push(finding(
            Check::MetaDb,
            SubjectKind::Path,
            s.paths.meta_db().display().to_string(),
            s.paths.meta_db(),
            format!("{e}; containerd cannot start on this root"),
        ));
    }
    let a = Analysis::new(s);
    let impacts = Impacts {
        a: &a,
        docker: s.docker_containers.iter().map(|c| c.id.as_str()).collect(),
    };
    if s.meta_error.is_none() {
        anomalies(snap, s, &mut findings);
        blobs(s, &a, &impacts, &mut findings);
        images::images(s, &a, &impacts, &mut findings, &mut summary);
        snapshots(s, &a, &impacts, &mut findings, &mut summary);
        sweep_findings(s, &a, &mut findings);
        ingests(s, &mut findings);
    }
    summary.blobs_checked = s.blobs.len() as u64;
    if opts.deep {
        let (bytes, bad) = deep::deep(s, hashed);
        summary.bytes_hashed = bytes;
        for (d, got) in bad {
            let nodes: Vec<Node> = a
                .edges
                .blobs
                .iter()
                .enumerate()
                .filter(|(_, (_, x))| *x == d)
                .map(|(k, _)| Node::new(Kind::Blob, k as u32))
                .collect();
            let mut f = finding(
                Check::BlobDigestMismatch,
                SubjectKind::Blob,
                d.to_string(),
                s.paths.blob(&d),
                match got {
                    Ok(h) => format!("the file hashes to sha256:{h}, not to its name"),
                    Err(e) => format!("cannot be read: {e}"),
                },
            );
            f.impact = impacts.of(&nodes);
            findings.push(f);
        }
    }
    findings.sort_by(|x, y| (x.check, &x.subject, &x.path).cmp(&(y.check, &y.subject, &y.path)));
    for f in &findings {
        match f.severity {
            Severity::Error => summary.errors += 1,
            Severity::Warning => summary.warnings += 1,
        }
        *summary.by_check.entry(f.check.id()).or_default() += 1;
    }
    Some(Report {
        store: "containerd",
        namespace: Some(s.scope.name().to_string()),
        root: s.paths.root().to_path_buf(),
        deep: opts.deep,
        findings,
        summary,
    })
}

/// Problems met while reading: malformed values in a database, a
/// database that cannot be read, a snapshotter dockgc does not read.
fn anomalies(snap: &Snapshot, s: &State, out: &mut Vec<Finding>) {
    for (name, sn) in &s.snapshotters {
        if let Some(e) = &sn.db_error {
            out.push(finding(
                Check::Metastore,
                SubjectKind::Path,
                s.paths.metastore(name).display().to_string(),
                s.paths.metastore(name),
                format!("{e}; snapshotter {name} cannot start"),
            ));
        }
    }
    for an in &snap.anomalies {
        if an.kind != AnomalyKind::Containerd {
            continue;
        }
        let check = if an.path == s.paths.meta_db() {
            Check::MetaDb
        } else if an.path.ends_with("metadata.db") {
            Check::Metastore
        } else if an.message.contains("not one dockgc reads") {
            Check::Unverifiable
        } else if an.path.starts_with(s.paths.sha256_blobs()) {
            Check::BlobFileUnrecorded
        } else {
            Check::Unreadable
        };
        out.push(finding(
            check,
            SubjectKind::Path,
            an.path.display().to_string(),
            an.path.clone(),
            an.message.clone(),
        ));
    }
}

/// Layer blobs whose chain is unpacked, per namespace: their files may go
/// (CRI's `discard_unpacked_layers`) without harm.
fn discardable(s: &State) -> HashMap<&str, BTreeSet<BlobDigest>> {
    let mut out: HashMap<&str, BTreeSet<BlobDigest>> = HashMap::new();
    for ns in s.namespaces.values() {
        let Some(recs) = ns.snapshots.get(s.default_snapshotter()) else {
            continue;
        };
        for doc in s.docs.values() {
            let Doc::Manifest { config, layers } = doc else {
                continue;
            };
            let Some(Doc::Config(cfg)) = config.digest.and_then(|d| s.doc(&d)) else {
                continue;
            };
            for (l, c) in layers.iter().zip(ChainId::chain(&cfg.diff_ids)) {
                if let Some(d) = l.digest
                    && recs.contains_key(&SnapshotKey(c.to_string()))
                {
                    out.entry(ns.name.as_str()).or_default().insert(d);
                }
            }
        }
    }
    out
}

/// Checks 2 and 3: every record's file exists and has the recorded size.
fn blobs(s: &State, a: &Analysis<'_>, im: &Impacts<'_, '_>, out: &mut Vec<Finding>) {
    let discard = discardable(s);
    let mut by_digest: BTreeMap<BlobDigest, Vec<(u32, &str, i64)>> = BTreeMap::new();
    for (k, (ns, d)) in a.edges.blobs.iter().enumerate() {
        let name = a.edges.namespaces[*ns as usize];
        let size = s.namespaces[name].blobs[d].size;
        by_digest
            .entry(*d)
            .or_default()
            .push((k as u32, name, size));
    }
    for (d, recs) in by_digest {
        let scoped: Vec<&(u32, &str, i64)> = recs.iter().filter(|r| s.scope.covers(r.1)).collect();
        if scoped.is_empty() {
            continue;
        }
        let nodes: Vec<Node> = scoped.iter().map(|r| Node::new(Kind::Blob, r.0)).collect();
        match s.blobs.get(&d) {
            None => {
                let missing: Vec<&str> = scoped
                    .iter()
                    .filter(|r| !discard.get(r.1).is_some_and(|x| x.contains(&d)))
                    .map(|r| r.1)
                    .collect();
                if missing.is_empty() {
                    continue;
                }
                let mut f = finding(
                    Check::BlobMissing,
                    SubjectKind::Blob,
                    d.to_string(),
                    s.paths.blob(&d),
                    format!("recorded in {} but the file is missing", missing.join(", ")),
                );
                f.impact = im.of(&nodes);
                out.push(f);
            }
            Some(file) => {
                let wrong: Vec<String> = scoped
                    .iter()
                    .filter(|r| u64::try_from(r.2).ok() != Some(file.size))
                    .map(|r| format!("{} records {}", r.1, r.2))
                    .collect();
                if !wrong.is_empty() {
                    let mut f = finding(
                        Check::BlobSizeMismatch,
                        SubjectKind::Blob,
                        d.to_string(),
                        s.paths.blob(&d),
                        format!("the file has {} bytes; {}", file.size, wrong.join(", ")),
                    );
                    f.impact = im.of(&nodes);
                    out.push(f);
                }
            }
        }
    }
}

/// Checks 8, 9 and 13: meta.db record → backend (and parents agree) →
/// directory; every parent exists and is committed; no cycles.
fn snapshots(
    s: &State,
    a: &Analysis<'_>,
    im: &Impacts<'_, '_>,
    out: &mut Vec<Finding>,
    summary: &mut Summary,
) {
    let e = &a.edges;
    for (key, (ns, sn, k)) in e.snapshots.iter().enumerate() {
        let name = e.namespaces[*ns as usize];
        if !s.scope.covers(name) {
            continue;
        }
        let Some(snr) = s.snapshotters.get(*sn) else {
            continue; // another snapshotter: named by the reader, not checked
        };
        if snr.db_error.is_some() {
            continue; // the metastore finding covers it
        }
        summary.snapshots_checked += 1;
        let recs = &s.namespaces[name].snapshots[*sn];
        let rec = &recs[*k];
        let node = [Node::new(Kind::Snapshot, key as u32)];
        let subject = format!("{name}/{sn}/{k}");
        let mut push = |check: Check, path: PathBuf, msg: String| {
            let mut f = finding(check, SubjectKind::Snapshot, subject.clone(), path, msg);
            f.impact = im.of(&node);
            out.push(f);
        };
        let Some(b) = snr.backends.get(&rec.name) else {
            push(
                Check::SnapshotBackend,
                s.paths.metastore(sn),
                format!(
                    "its backend snapshot {:?} is not in the metastore",
                    rec.name
                ),
            );
            continue;
        };
        let parent_rec = rec.parent.as_ref().map(|p| (p, recs.get(p)));
        let want_parent = parent_rec.and_then(|(_, r)| r.map(|r| r.name.clone()));
        if parent_rec.is_some_and(|(_, r)| r.is_some()) && b.parent != want_parent {
            push(
                Check::SnapshotBackend,
                s.paths.metastore(sn),
                format!(
                    "mismatched parent: meta.db says {:?}, the metastore says {:?}",
                    want_parent.as_deref().unwrap_or("none"),
                    b.parent.as_deref().unwrap_or("none")
                ),
            );
        }
        let dir = b.id.to_string();
        let data = s.paths.snapshot_data(sn, &dir);
        let present = match snr.dirs.get(dir.as_str()) {
            Some(d) if *sn == "overlayfs" => d.has_fs,
            Some(d) => d.is_dir,
            None => false,
        };
        if !present {
            push(
                Check::SnapshotDirMissing,
                data,
                format!(
                    "{} snapshot {} ({}) has no directory",
                    b.kind.word(),
                    rec.name,
                    dir
                ),
            );
        }
        // Chain sanity: the parent exists, is committed, and no cycle.
        if let Some((p, pr)) = parent_rec {
            match pr {
                None => push(
                    Check::SnapshotParent,
                    s.paths.meta_db(),
                    format!("its parent {p} is no snapshot in {name}"),
                ),
                Some(pr) => {
                    let kind = snr.backends.get(&pr.name).map(|x| x.kind);
                    if kind.is_some_and(|k| k != SnapKind::Committed) {
                        push(
                            Check::SnapshotParent,
                            s.paths.metastore(sn),
                            format!(
                                "its parent {p} is {}, not committed",
                                kind.map_or("unknown", |k| k.word())
                            ),
                        );
                    }
                }
            }
            if in_cycle(recs, k) {
                push(
                    Check::SnapshotParent,
                    s.paths.meta_db(),
                    "its parent chain is a cycle".into(),
                );
            }
        }
    }
}

/// Whether following parents from `k` comes back to it (or walks longer
/// than there are records: a cycle further up).
fn in_cycle(
    recs: &BTreeMap<SnapshotKey, crate::store::containerd::SnapRec>,
    k: &SnapshotKey,
) -> bool {
    let mut cur = recs.get(k).and_then(|r| r.parent.clone());
    let mut steps = 0;
    while let Some(c) = cur {
        if &c == k || steps > recs.len() {
            return true;
        }
        steps += 1;
        cur = recs.get(&c).and_then(|r| r.parent.clone());
    }
    false
}

/// Checks 4, 10 and 11 and the ingest orphans, from the sweep's orphans.
fn sweep_findings(s: &State, a: &Analysis<'_>, out: &mut Vec<Finding>) {
    let sweep = crate::holds::containerd::collect(a);
    for o in sweep.orphans {
        let (check, kind) = match o.kind {
            OrphanKind::BlobFile => (Check::BlobFileUnrecorded, SubjectKind::Blob),
            OrphanKind::SnapshotDir => (Check::SnapshotDirUnrecorded, SubjectKind::Path),
            OrphanKind::Backend => {
                if !s.scope.covers(o.id.split('/').next().unwrap_or("")) {
                    continue;
                }
                (Check::BackendUnreferenced, SubjectKind::Snapshot)
            }
            OrphanKind::IngestDir => (Check::IngestDirUnrecorded, SubjectKind::Ingest),
            OrphanKind::IngestWithoutRef => (Check::IngestDirWithoutRef, SubjectKind::Ingest),
        };
        out.push(finding(
            check,
            kind,
            o.id.clone(),
            o.path.clone(),
            format!(
                "{}{}",
                o.reason,
                if o.removed_at_next_gc {
                    "; containerd's next GC removes it"
                } else {
                    ""
                }
            ),
        ));
    }
}

/// Check 12: an ingest directory is named by the sha256 of its ref.
fn ingests(s: &State, out: &mut Vec<Finding>) {
    for (dir, ing) in &s.ingests {
        if let Ok(Some(r)) = &ing.backend_ref {
            let want = crate::ids::hex(&Sha256::digest(r.as_bytes()));
            if *dir != want {
                out.push(finding(
                    Check::IngestRefMismatch,
                    SubjectKind::Ingest,
                    dir.clone(),
                    s.paths.ingest(dir),
                    format!(
                        "its ref {r:?} belongs in ingest/{want}; the content store cannot find it"
                    ),
                ));
            }
        }
    }
}
