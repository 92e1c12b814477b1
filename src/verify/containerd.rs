//! `verify` of a containerd store: the integrity of meta.db's records
//! against the snapshotters' metastores, their directories and the content
//! store's files, and of each image's closure and layer chain. Quick checks
//! read what the snapshot holds; `--deep` hashes every blob file (sha256,
//! in parallel, largest first). Normal states are never findings: layer
//! blobs gone after an unpack, images that are not unpacked, extra
//! namespaces, empty view `fs` dirs, empty `labels` buckets, 1.7's
//! top-level sandbox buckets, a stale `children` entry.

use super::{Check, Finding, Impact, Report, Severity, Subject, SubjectKind, Summary};
use crate::holds::Holder;
use crate::holds::containerd::{Analysis, CtrdHolder, OrphanKind};
use crate::ids::{BlobDigest, ChainId, ContainerId, ImageId, SnapshotKey};
use crate::reach::{Kind, Node};
use crate::store::containerd::{Doc, SnapKind, State, manifest};
use crate::store::{AnomalyKind, Snapshot};
use rayon::prelude::*;
use sha2::{Digest as _, Sha256};
use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// The label unpack writes on a layer blob: its diff ID
/// (`core/unpack/unpacker.go`; 1.6 `image.go` `Unpack`).
const LABEL_UNCOMPRESSED: &str = "containerd.io/uncompressed";

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
        images(s, &a, &impacts, &mut findings, &mut summary);
        snapshots(s, &a, &impacts, &mut findings, &mut summary);
        sweep_findings(s, &a, &mut findings);
        ingests(s, &mut findings);
    }
    summary.blobs_checked = s.blobs.len() as u64;
    if opts.deep {
        let (bytes, bad) = deep(s, hashed);
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

/// Checks 5, 6 and 7 per image: closure, chain, `uncompressed` labels.
fn images(
    s: &State,
    a: &Analysis<'_>,
    im: &Impacts<'_, '_>,
    out: &mut Vec<Finding>,
    summary: &mut Summary,
) {
    let host = manifest::host_platform();
    // One finding per labelled blob, with every image that uses it.
    let mut labels: BTreeMap<(String, BlobDigest), Finding> = BTreeMap::new();
    for ns in s.scoped() {
        let nsi = a.edges.ns_index(&ns.name).unwrap_or(u32::MAX);
        let mut seen = BTreeSet::new();
        let recs = ns.snapshots.get(s.default_snapshotter());
        for img in ns.images.values() {
            let Some(t) = img.target.digest else { continue };
            if !seen.insert(t) {
                continue;
            }
            summary.images_checked += 1;
            let node: Vec<Node> = a.edges.image_node(nsi, &img.name).into_iter().collect();
            let impact = im.of(&node);
            let closure = |msg: String| {
                let mut f = finding(
                    Check::ImageClosure,
                    SubjectKind::Image,
                    format!("{}/{}", ns.name, img.name),
                    s.paths.meta_db(),
                    msg,
                );
                f.impact = Impact {
                    images: vec![ImageId(t.0)],
                    containers: impact.containers.clone(),
                };
                f
            };
            if !ns.blobs.contains_key(&t) {
                out.push(closure(format!("its target {t} has no blob record")));
                continue;
            }
            // The host-platform manifest (for an index: the one a pull or
            // run would use; others may be absent by design).
            let md = match s.doc(&t) {
                None => continue, // file missing: blob-missing says so
                Some(Doc::Bad { why }) => {
                    out.push(closure(format!("its target {t} cannot be parsed: {why}")));
                    continue;
                }
                Some(Doc::Manifest { .. }) => t,
                Some(Doc::Index { manifests }) => {
                    let Some(m) = manifests
                        .iter()
                        .find(|m| manifest::matches_host(m.platform.as_ref(), &host))
                    else {
                        continue; // no manifest for this host: nothing to run
                    };
                    let Some(md) = m.digest else { continue };
                    if !ns.blobs.contains_key(&md) {
                        out.push(closure(format!(
                            "the {} manifest {md} of its index has no blob record",
                            platform(&host)
                        )));
                        continue;
                    }
                    md
                }
                Some(Doc::Config(_)) => {
                    out.push(closure(format!("its target {t} is an image config")));
                    continue;
                }
            };
            let (config, layers) = match s.doc(&md) {
                Some(Doc::Manifest { config, layers }) => (config, layers),
                Some(Doc::Bad { why }) => {
                    out.push(closure(format!("manifest {md} cannot be parsed: {why}")));
                    continue;
                }
                Some(_) => {
                    out.push(closure(format!("{md} is not a manifest")));
                    continue;
                }
                None => continue,
            };
            let Some(cd) = config.digest else {
                out.push(closure(format!(
                    "manifest {md} names config {:?}, not a sha256 digest",
                    config.raw_digest
                )));
                continue;
            };
            if !ns.blobs.contains_key(&cd) {
                out.push(closure(format!("config {cd} has no blob record")));
                continue;
            }
            let cfg = match s.doc(&cd) {
                Some(Doc::Config(c)) => c,
                Some(Doc::Bad { why }) => {
                    out.push(closure(format!("config {cd} cannot be parsed: {why}")));
                    continue;
                }
                _ => continue,
            };
            if cfg.diff_ids.len() != layers.len() {
                out.push(closure(format!(
                    "config {cd} has {} diff IDs for {} layers",
                    cfg.diff_ids.len(),
                    layers.len()
                )));
                continue;
            }
            let chain = ChainId::chain(&cfg.diff_ids);
            let unpacked = chain
                .last()
                .zip(recs)
                .is_some_and(|(top, r)| r.contains_key(&SnapshotKey(top.to_string())));
            for (i, l) in layers.iter().enumerate() {
                let Some(ld) = l.digest else { continue };
                match ns.blobs.get(&ld) {
                    None if unpacked => {} // discarded after the unpack: normal
                    None => out.push(closure(format!(
                        "layer {i} ({ld}) has no blob record and the image is not unpacked"
                    ))),
                    Some(b) => {
                        if let Some(v) = b.labels.get(LABEL_UNCOMPRESSED)
                            && *v != cfg.diff_ids[i].to_string()
                        {
                            if let Some(f) = labels.get_mut(&(ns.name.clone(), ld)) {
                                f.impact.images.push(ImageId(t.0));
                                f.impact
                                    .containers
                                    .extend(impact.containers.iter().cloned());
                                continue;
                            }
                            let mut f = finding(
                                Check::UncompressedLabel,
                                SubjectKind::Blob,
                                ld.to_string(),
                                s.paths.meta_db(),
                                format!(
                                    "{}: {LABEL_UNCOMPRESSED} is {v}, but layer {i} of {} has diff ID {}",
                                    ns.name, img.name, cfg.diff_ids[i]
                                ),
                            );
                            f.impact = Impact {
                                images: vec![ImageId(t.0)],
                                containers: impact.containers.clone(),
                            };
                            labels.insert((ns.name.clone(), ld), f);
                        }
                    }
                }
            }
            // Check 6: an unpacked image's chain, link by link.
            if unpacked && let Some(r) = recs {
                for (i, c) in chain.iter().enumerate() {
                    let want = i.checked_sub(1).map(|p| chain[p].to_string());
                    let problem = match r.get(&SnapshotKey(c.to_string())) {
                        None => Some(format!("chain ID {c} (layer {i}) is no snapshot")),
                        Some(rec) if rec.parent.as_ref().map(|p| p.0.clone()) != want => {
                            Some(format!(
                                "snapshot {c} (layer {i}) has parent {}, not {}",
                                rec.parent.as_ref().map_or("none", |p| p.0.as_str()),
                                want.as_deref().unwrap_or("none")
                            ))
                        }
                        _ => None,
                    };
                    if let Some(p) = problem {
                        let mut f = finding(
                            Check::ImageChain,
                            SubjectKind::Image,
                            format!("{}/{}", ns.name, img.name),
                            s.paths.meta_db(),
                            p,
                        );
                        f.impact = Impact {
                            images: vec![ImageId(t.0)],
                            containers: impact.containers.clone(),
                        };
                        out.push(f);
                        break;
                    }
                }
            }
        }
    }
    out.extend(labels.into_values().map(merge));
}

fn merge(mut f: Finding) -> Finding {
    f.impact.images.sort();
    f.impact.images.dedup();
    f.impact.containers.sort();
    f.impact.containers.dedup();
    f
}

fn platform(p: &manifest::Platform) -> String {
    match &p.variant {
        Some(v) => format!("{}/{}/{v}", p.os, p.architecture),
        None => format!("{}/{}", p.os, p.architecture),
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
        let present = match snr.dirs.get(&dir) {
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
            let mut cur = rec.parent.clone();
            let mut steps = 0;
            while let Some(c) = cur {
                if &c == *k || steps > recs.len() {
                    push(
                        Check::SnapshotParent,
                        s.paths.meta_db(),
                        "its parent chain is a cycle".into(),
                    );
                    break;
                }
                steps += 1;
                cur = recs.get(&c).and_then(|r| r.parent.clone());
            }
        }
    }
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

const BUF: usize = 1 << 20;

thread_local! {
    static BUFFER: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

fn hash_file(path: &Path, hashed: &AtomicU64) -> std::io::Result<String> {
    let mut f = std::fs::File::open(path)?;
    // Sequential read-ahead: the kernel doubles its window, which matters
    // on cold caches; an error here only loses the hint.
    let _ = rustix::fs::fadvise(&f, 0, None, rustix::fs::Advice::Sequential);
    let mut h = Sha256::new();
    BUFFER.with_borrow_mut(|buf| {
        if buf.len() < BUF {
            buf.resize(BUF, 0);
        }
        loop {
            let n = f.read(buf)?;
            if n == 0 {
                break;
            }
            h.update(&buf[..n]);
            hashed.fetch_add(n as u64, Ordering::Relaxed);
        }
        Ok(crate::ids::hex(&h.finalize()))
    })
}

/// sha256 of every blob file, largest first so a big one does not run
/// alone at the end; returns the bytes hashed and the mismatches.
/// A blob whose file does not hash to its name: what it hashes to, or why
/// it could not be read.
type Mismatch = (BlobDigest, Result<String, String>);

fn deep(s: &State, hashed: &AtomicU64) -> (u64, Vec<Mismatch>) {
    let mut todo: Vec<(&BlobDigest, u64)> = s.blobs.iter().map(|(d, f)| (d, f.size)).collect();
    todo.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    let before = hashed.load(Ordering::Relaxed);
    let bad: Vec<Mismatch> = todo
        .par_iter()
        .filter_map(|(d, _)| match hash_file(&s.paths.blob(d), hashed) {
            Ok(h) if h == d.hex() => None,
            Ok(h) => Some((**d, Ok(h))),
            Err(e) => Some((**d, Err(e.to_string()))),
        })
        .collect();
    (hashed.load(Ordering::Relaxed) - before, bad)
}
