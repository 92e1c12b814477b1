//! The build cache as `/system/df` lists it, rebuilt offline from BuildKit's
//! records: which records the daemon would load (BuildKit
//! `cache/manager.go` `init`, `getRecord`), their fields (`DiskUsage` in
//! BuildKit `cache/manager.go` and moby
//! `daemon/internal/builder-next/builder.go`), their sizes (BuildKit
//! `cache/refs.go` `size` and moby's snapshot adapter `Usage`), and which
//! are shared with images (moby `builder-next/imagerefchecker/checker.go`).

use crate::disk::docker_size;
use crate::graph::Graph;
use crate::ids::{ChainId, ImageId};
use crate::store::Snapshot;
use crate::store::graphdriver::{Buildkit, BuildkitStatus, CacheRecord};
use serde::Serialize;
use std::collections::{BTreeMap, HashMap, HashSet};

/// The build cache of a root.
#[derive(Debug, Clone, Default, Serialize)]
pub struct BuildCache {
    /// Whether BuildKit's databases could be read: when not, the records are
    /// unknown and none are listed.
    pub known: bool,
    pub records: Vec<BuildRecord>,
}

/// One record, with the fields of `/system/df`'s `BuildCache`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BuildRecord {
    pub id: String,
    pub parents: Vec<String>,
    #[serde(rename = "type")]
    pub kind: String,
    pub description: String,
    /// In use by a running build. With the daemon stopped, never; with it
    /// running, unknown (`null`): references live only in its memory.
    pub in_use: Option<bool>,
    /// Its layer (or a descendant's) is part of an image.
    pub shared: bool,
    pub size: u64,
    /// RFC 3339 with nanoseconds, UTC, as the API prints it.
    pub created: String,
    pub last_used: Option<String>,
    pub usage_count: u64,
}

/// Which records the daemon loads: BuildKit 0.8 (Engine 20.10–22) and later
/// versions differ in two rules; a root with `engine-id` was written by 23+.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Rules {
    V08,
    Later,
}

pub fn compute(g: &Graph) -> BuildCache {
    compute_without(g, &HashSet::new())
}

/// The records as they are once the images `gone` are removed: a record
/// only those images shared is unshared then, and `docker builder prune`
/// (without -a) takes it in the same run.
pub fn compute_without(g: &Graph, gone: &HashSet<ImageId>) -> BuildCache {
    let bk = &g.gd.buildkit;
    match bk.status {
        BuildkitStatus::Absent => {
            return BuildCache {
                known: true,
                records: Vec::new(),
            };
        }
        BuildkitStatus::Unreadable { .. } => return BuildCache::default(),
        BuildkitStatus::Read => {}
    }
    let loaded = loaded(g.snap, bk);
    let twins = twins_of(bk, &loaded);
    let shared = shared(g, bk, &loaded, gone);
    let mut records: Vec<BuildRecord> = loaded
        .iter()
        .filter(|id| bk.records[**id].equal_mutable.is_none())
        .map(|id| {
            let r = &bk.records[*id];
            BuildRecord {
                id: id.to_string(),
                parents: r.parent.iter().cloned().collect(),
                kind: r.record_type.clone().unwrap_or_else(|| "regular".into()),
                description: r.description.clone().unwrap_or_default(),
                in_use: (!bk.live).then_some(false),
                shared: shared.contains(id),
                size: size(g, bk, id, r, &twins),
                created: go_time(r.created_ns.unwrap_or(i64::MIN)),
                // LastUsedAt only with a usage count (BuildKit `getLastUsed`).
                last_used: r
                    .last_used_ns
                    .filter(|t| *t != 0 && r.usage_count.is_some())
                    .map(go_time),
                usage_count: r.usage_count.unwrap_or(0).max(0) as u64,
            }
        })
        .collect();
    records.sort_by(|a, b| a.id.cmp(&b.id));
    BuildCache {
        known: true,
        records,
    }
}

/// The records the daemon loads at start (twins included), in ID order.
pub fn loaded<'a>(snap: &Snapshot, bk: &'a Buildkit) -> Vec<&'a str> {
    let rules = if snap.engine_id_present {
        Rules::Later
    } else {
        Rules::V08
    };
    Loader {
        snap,
        bk,
        rules,
        memo: HashMap::new(),
    }
    .all()
}

/// The daemon's record loading at start, memoised.
struct Loader<'a, 's> {
    snap: &'s Snapshot,
    bk: &'a Buildkit,
    rules: Rules,
    memo: HashMap<&'a str, bool>,
}

impl<'a> Loader<'a, '_> {
    fn all(mut self) -> Vec<&'a str> {
        let ids: Vec<&str> = self.bk.records.keys().map(String::as_str).collect();
        ids.into_iter().filter(|id| self.loads(id)).collect()
    }

    /// Dropped: deleted records (prune started), records whose parent does
    /// not load, twins whose mutable does not load (0.8; later versions keep
    /// them when their snapshot exists), and (later versions) mutable
    /// records without a snapshot.
    fn loads(&mut self, id: &'a str) -> bool {
        if let Some(v) = self.memo.get(id) {
            return *v;
        }
        // Cut cycles in damaged metadata: a record on its own parent chain does not load.
        self.memo.insert(id, false);
        let v = self.decide(id);
        self.memo.insert(id, v);
        v
    }

    fn decide(&mut self, id: &'a str) -> bool {
        let Some(r) = self.bk.records.get(id) else {
            return false;
        };
        if r.deleted {
            return false;
        }
        if let Some(p) = r.parent.as_deref()
            && !self.loads(p)
        {
            return false;
        }
        if let Some(m) = r.equal_mutable.as_deref()
            && !self.loads(m)
            && (self.rules == Rules::V08 || !self.snapshot_exists(id))
        {
            return false;
        }
        if self.rules == Rules::Later && !r.committed && !self.snapshot_exists(id) {
            return false;
        }
        true
    }

    fn snapshot_exists(&self, id: &str) -> bool {
        let key = self.bk.snapshot_key(id);
        self.bk.snapshots.contains_key(key)
            || self
                .bk
                .layer_of(key)
                .is_some_and(|c| self.snap.layers.contains_key(&c))
    }
}

/// Twins of each mutable record: immutable views that share its snapshot.
fn twins_of<'a>(bk: &'a Buildkit, loaded: &[&'a str]) -> HashMap<&'a str, Vec<&'a str>> {
    let mut out: HashMap<&str, Vec<&str>> = HashMap::new();
    for id in loaded {
        if let Some(m) = bk.records[*id].equal_mutable.as_deref() {
            out.entry(m).or_default().push(id);
        }
    }
    out
}

/// Records whose layer's diff-ID chain is a prefix of some image's (the
/// image store's own check), and every ancestor of one.
fn shared<'a>(
    g: &Graph,
    bk: &'a Buildkit,
    loaded: &[&'a str],
    gone: &HashSet<ImageId>,
) -> HashSet<&'a str> {
    let image_chains: HashSet<ChainId> = g
        .loaded
        .iter()
        .filter(|i| !gone.contains(*i))
        .flat_map(|i| g.chain(i))
        .collect();
    let direct = loaded.iter().copied().filter(|id| {
        let r = &bk.records[*id];
        let layer = bk
            .layer_of(id)
            .or_else(|| r.snapshot.as_deref().and_then(|k| bk.layer_of(k)));
        layer.is_some_and(|c| g.snap.layers.contains_key(&c) && image_chains.contains(&c))
    });
    let mut out = HashSet::new();
    for id in direct {
        let mut cur = Some(id);
        while let Some(i) = cur {
            if !out.insert(i) {
                break;
            }
            cur = bk.records.get(i).and_then(|r| r.parent.as_deref());
        }
    }
    out
}

/// A record's size, the way `DiskUsage` finds it: its cached
/// `snapshot.size`; for a mutable record, its twin's; for a blob-only one,
/// the blob's; else the snapshot's usage from the adapter.
fn size(
    g: &Graph,
    bk: &Buildkit,
    id: &str,
    r: &CacheRecord,
    twins: &HashMap<&str, Vec<&str>>,
) -> u64 {
    let known = |r: &CacheRecord| r.size.filter(|s| *s != -1);
    if let Some(s) = known(r) {
        return s.max(0) as u64;
    }
    if !r.committed
        && let Some(s) = twins
            .get(id)
            .into_iter()
            .flatten()
            .find_map(|t| known(&bk.records[*t]))
    {
        return s.max(0) as u64;
    }
    let blob = r
        .blob
        .as_deref()
        .and_then(|b| bk.blob_sizes.get(b))
        .copied()
        .unwrap_or(0)
        .max(0) as u64;
    if r.blob_only {
        return blob;
    }
    usage(g, bk, bk.snapshot_key(id)) + blob
}

/// moby's adapter `Usage(key)`: a layer's `size` file when the key is (or
/// became) a layer that exists, else the bucket's cached `size`, else the
/// driver's `DiffSize` (native overlay2 diff: `directory.Size` of `diff/`).
fn usage(g: &Graph, bk: &Buildkit, key: &str) -> u64 {
    if let Some(l) = bk.layer_of(key).and_then(|c| g.snap.layers.get(&c)) {
        return l.size;
    }
    if let Some(s) = bk.snapshots.get(key).and_then(|s| s.size) {
        return s.max(0) as u64;
    }
    bk.dir_of(key, &g.gd.cache_ids)
        .map_or(0, |d| docker_size(&g.gd.paths.diff(d)))
}

/// Go's `time.Time` as `encoding/json` writes it for a UTC time:
/// RFC 3339 with the nanoseconds' trailing zeros trimmed.
pub fn go_time(ns: i64) -> String {
    if ns == i64::MIN {
        return "0001-01-01T00:00:00Z".into();
    }
    match jiff::Timestamp::from_nanosecond(i128::from(ns)) {
        Ok(t) => {
            let s = t.strftime("%Y-%m-%dT%H:%M:%S%.f").to_string();
            let s = if s.contains('.') {
                s.trim_end_matches('0').trim_end_matches('.').to_string()
            } else {
                s
            };
            format!("{s}Z")
        }
        Err(_) => "0001-01-01T00:00:00Z".into(),
    }
}

/// The Build Cache row as `docker system df` (CLI 20.10 to 28) prints it:
/// SIZE counts only records not shared with images; RECLAIMABLE leaves out
/// records in use.
pub struct Totals {
    pub total: u64,
    pub active: u64,
    pub size: u64,
    pub reclaimable: u64,
}

pub fn totals(bc: &BuildCache) -> Totals {
    let unshared = bc.records.iter().filter(|r| !r.shared);
    let size: u64 = unshared.clone().map(|r| r.size).sum();
    let busy: u64 = unshared
        .filter(|r| r.in_use == Some(true))
        .map(|r| r.size)
        .sum();
    Totals {
        total: bc.records.len() as u64,
        active: bc.records.iter().filter(|r| r.in_use == Some(true)).count() as u64,
        size,
        reclaimable: size - busy,
    }
}

/// Records by ID, for lookups.
pub fn by_id(bc: &BuildCache) -> BTreeMap<&str, &BuildRecord> {
    bc.records.iter().map(|r| (r.id.as_str(), r)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_print_as_go_does() {
        assert_eq!(
            go_time(1796123314339027578),
            "2026-12-01T11:08:34.339027578Z"
        );
        assert_eq!(
            go_time(1796123314106819930),
            "2026-12-01T11:08:34.10681993Z"
        );
        assert_eq!(go_time(1796123314000000000), "2026-12-01T11:08:34Z");
        assert_eq!(go_time(i64::MIN), "0001-01-01T00:00:00Z");
    }
}
