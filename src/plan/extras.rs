//! The parts of a plan the daemon carries out on its own terms: the build
//! cache prune (BuildKit decides what goes; dockgc estimates it from the
//! databases it reads) and volumes (chosen from the daemon's lists).

use super::{PlanBuildCache, PlanCacheRecord, PlanVolume};
use crate::buildcache::{self, BuildRecord};
use crate::graph::Graph;
use crate::ids::ImageId;
use crate::store::parse_time;
use std::collections::{BTreeMap, HashMap, HashSet};

pub struct BuildCacheOptions {
    /// `docker builder prune -a`: internal, frontend and shared records too.
    pub all: bool,
    /// Keep records used within this many seconds.
    pub until: Option<i64>,
    /// Keep this much cache.
    pub keep_bytes: Option<u64>,
    pub now: i64,
}

/// What `POST /build/prune` with these options would remove, by BuildKit's
/// rules (moby/buildkit `cache/manager.go` `prune`): records no build uses;
/// without `all`, only regular, unshared ones (records that only the images
/// this plan removes shared count as unshared: the images go first); none
/// used within `until`; with `keep_bytes`, least recently used first until
/// what is left fits. A parent becomes prunable once its children go.
pub fn build_cache(g: &Graph, o: &BuildCacheOptions, gone: &HashSet<ImageId>) -> PlanBuildCache {
    let bc = buildcache::compute_without(g, gone);
    build_cache_of(&bc, o)
}

/// The same estimate over records from anywhere (the API's `/system/df`
/// for a plan from the API alone).
pub fn build_cache_of(bc: &buildcache::BuildCache, o: &BuildCacheOptions) -> PlanBuildCache {
    let mut plan = PlanBuildCache {
        all: o.all,
        until: o.until,
        keep_bytes: o.keep_bytes,
        records: Vec::new(),
        bytes: 0,
        known: bc.known,
    };
    if !bc.known {
        return plan;
    }
    plan.records = chosen_records(bc, o)
        .iter()
        .map(|r| PlanCacheRecord {
            id: r.id.clone(),
            kind: r.kind.clone(),
            bytes: r.size,
            last_used: r.last_used.clone(),
            description: r.description.clone(),
        })
        .collect();
    plan.bytes = plan.records.iter().map(|r| r.bytes).sum();
    plan
}

/// The records `/build/prune` with these options deletes, in BuildKit's
/// order: leaves first, each taking its parents' last child away.
fn chosen_records<'a>(
    bc: &'a buildcache::BuildCache,
    o: &BuildCacheOptions,
) -> Vec<&'a BuildRecord> {
    let mut children: HashMap<&str, usize> = HashMap::new();
    for r in &bc.records {
        for p in &r.parents {
            *children.entry(p.as_str()).or_default() += 1;
        }
    }
    let last_used = |r: &BuildRecord| {
        r.last_used
            .as_deref()
            .or(Some(r.created.as_str()))
            .and_then(parse_time)
    };
    let eligible = |r: &BuildRecord| {
        if r.in_use == Some(true) {
            return false;
        }
        if !o.all && (matches!(r.kind.as_str(), "internal" | "frontend") || r.shared) {
            return false;
        }
        // BuildKit's until keeps only records used after the cutoff: one
        // never used has no time to compare and goes, however new
        // (`cache/manager.go` prune: `lastUsedAt != nil && lastUsedAt.After(cutOff)`).
        match (o.until, r.last_used.as_deref().and_then(parse_time)) {
            (Some(u), Some(t)) => o.now - t >= u,
            _ => true,
        }
    };
    let mut chosen: Vec<&BuildRecord> = Vec::new();
    let mut taken: HashSet<&str> = HashSet::new();
    // Records no build and no remaining child holds.
    let leaves = |taken: &HashSet<&str>, children: &HashMap<&str, usize>| -> Vec<&BuildRecord> {
        bc.records
            .iter()
            .filter(|r| !taken.contains(r.id.as_str()))
            .filter(|r| children.get(r.id.as_str()).copied().unwrap_or(0) == 0)
            .filter(|r| eligible(r))
            .collect()
    };
    let mut take = |r: &'a BuildRecord,
                    taken: &mut HashSet<&'a str>,
                    children: &mut HashMap<&'a str, usize>| {
        taken.insert(r.id.as_str());
        for p in &r.parents {
            if let Some(n) = children.get_mut(p.as_str()) {
                *n = n.saturating_sub(1);
            }
        }
        chosen.push(r);
    };
    // keep-storage 0 is no keep-storage (BuildKit: `gcMode := keepBytes != 0`).
    match o.keep_bytes.filter(|k| *k > 0) {
        // Every eligible leaf, then the parents they leave childless.
        None => loop {
            let mut round = leaves(&taken, &children);
            if round.is_empty() {
                break;
            }
            round.sort_by_key(|r| (last_used(r), r.id.clone()));
            for r in round {
                take(r, &mut taken, &mut children);
            }
        },
        // BuildKit's gc mode: one record at a time, the first in
        // `sortDeleteRecords` order among all eligible leaves, while the
        // unshared records add up to at least what is to be kept.
        Some(keep) => {
            let mut total: u64 = bc
                .records
                .iter()
                .filter(|r| !r.shared)
                .map(|r| r.size)
                .sum();
            while total >= keep {
                let mut round = leaves(&taken, &children);
                gc_order(&mut round);
                let Some(first) = round.first().copied() else {
                    break;
                };
                total = total.saturating_sub(first.size);
                take(first, &mut taken, &mut children);
            }
        }
    }
    chosen
}

/// BuildKit's order of deletion under keep-storage (moby/buildkit
/// `cache/manager.go` `sortDeleteRecords`): each record's rank by last use
/// (never used first; equal times share a rank) and by usage count (count 0
/// ranks 0), each divided by its largest rank, summed, lowest first. Ties,
/// which BuildKit leaves to map order, go by last use, then ID.
fn gc_order(records: &mut [&BuildRecord]) {
    let used = |r: &BuildRecord| {
        r.last_used
            .as_deref()
            .and_then(|t| t.parse::<jiff::Timestamp>().ok())
    };
    records.sort_by_key(|r| (used(r), r.id.clone()));
    let mut last_rank: HashMap<&str, f64> = HashMap::new();
    let (mut max_last, mut newest) = (0u32, None);
    for r in records.iter() {
        if let Some(t) = used(r)
            && newest.is_none_or(|n| t > n)
        {
            newest = Some(t);
            max_last += 1;
        }
        last_rank.insert(r.id.as_str(), f64::from(max_last));
    }
    let mut counts: Vec<u64> = records.iter().map(|r| r.usage_count).collect();
    counts.sort_unstable();
    counts.dedup();
    let count_rank = |n: u64| {
        // Distinct counts above 0 up to and including n.
        counts.iter().filter(|c| **c > 0 && **c <= n).count() as f64
    };
    let max_count = count_rank(u64::MAX);
    // Go divides by zero into NaN when every record has the same rank 0;
    // such a term then orders nothing: leave it out.
    let part = |rank: f64, max: f64| if max > 0.0 { rank / max } else { 0.0 };
    let key = |r: &BuildRecord| {
        part(last_rank[r.id.as_str()], f64::from(max_last))
            + part(count_rank(r.usage_count), max_count)
    };
    records.sort_by(|a, b| {
        key(a)
            .total_cmp(&key(b))
            .then_with(|| used(a).cmp(&used(b)))
            .then_with(|| a.id.cmp(&b.id))
    });
}

/// The label Engine 23+ sets on anonymous volumes.
pub const ANONYMOUS_LABEL: &str = "com.docker.volume.anonymous";

/// A volume as the daemon lists it, with what `/system/df` says of it.
pub struct ApiVolume {
    pub name: String,
    pub driver: String,
    pub labels: BTreeMap<String, String>,
    /// `UsageData.Size` (`None`: not computed).
    pub size: Option<u64>,
    /// Containers that mount it (`UsageData.RefCount`, or the container
    /// list's mounts).
    pub users: usize,
}

impl ApiVolume {
    /// Anonymous: labelled so (Engine 23+), or, from older engines, named
    /// by a 64-hex ID the daemon made up.
    pub fn anonymous(&self) -> bool {
        self.labels.contains_key(ANONYMOUS_LABEL)
            || (self.name.len() == 64 && self.name.bytes().all(|b| b.is_ascii_hexdigit()))
    }
}

/// `--volumes`: unused anonymous volumes; `all`: unused named ones too
/// (`docker volume prune [-a]`, moby `daemon/volume/service` `Prune`,
/// local driver only).
pub fn volumes(list: &[ApiVolume], all: bool) -> Vec<PlanVolume> {
    list.iter()
        .filter(|v| v.users == 0 && v.driver == "local" && (all || v.anonymous()))
        .map(|v| PlanVolume {
            name: v.name.clone(),
            driver: v.driver.clone(),
            bytes: v.size,
            labels: v.labels.clone(),
            anonymous: v.anonymous(),
            reason: if v.anonymous() {
                "anonymous, no container uses it".into()
            } else {
                "named, no container uses it (--all-volumes)".into()
            },
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vol(name: &str, users: usize, labels: &[(&str, &str)]) -> ApiVolume {
        ApiVolume {
            name: name.into(),
            driver: "local".into(),
            labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            size: Some(10),
            users,
        }
    }

    fn rec(
        id: &str,
        parent: Option<&str>,
        kind: &str,
        shared: bool,
        size: u64,
        used: i64,
    ) -> BuildRecord {
        let t = jiff::Timestamp::from_second(NOW - used)
            .unwrap()
            .to_string();
        BuildRecord {
            id: id.into(),
            parents: parent.into_iter().map(str::to_string).collect(),
            kind: kind.into(),
            description: String::new(),
            in_use: Some(false),
            shared,
            size,
            created: t.clone(),
            last_used: Some(t),
            usage_count: 1,
        }
    }

    const NOW: i64 = 2_000_000_000;

    fn opts(all: bool, until: Option<i64>, keep: Option<u64>) -> BuildCacheOptions {
        BuildCacheOptions {
            all,
            until,
            keep_bytes: keep,
            now: NOW,
        }
    }

    fn ids(p: &PlanBuildCache) -> Vec<&str> {
        let mut v: Vec<&str> = p.records.iter().map(|r| r.id.as_str()).collect();
        v.sort();
        v
    }

    #[test]
    fn build_cache_estimate_follows_buildkit_prune() {
        let bc = buildcache::BuildCache {
            known: true,
            records: vec![
                rec("base", None, "regular", false, 100, 7200),
                rec("child", Some("base"), "regular", false, 10, 60),
                rec("front", None, "frontend", false, 5, 7200),
                rec("img", None, "regular", true, 50, 7200),
                rec("mount", None, "exec.cachemount", false, 20, 7200),
            ],
        };
        // Without -a: regular and cache mounts no image shares; a parent
        // goes once its child does.
        assert_eq!(
            ids(&build_cache_of(&bc, &opts(false, None, None))),
            ["base", "child", "mount"]
        );
        // -a: every unused record.
        assert_eq!(
            ids(&build_cache_of(&bc, &opts(true, None, None))),
            ["base", "child", "front", "img", "mount"]
        );
        // until=1h: child was used a minute ago, so it and its parent stay.
        assert_eq!(
            ids(&build_cache_of(&bc, &opts(false, Some(3600), None))),
            ["mount"]
        );
        // keep-storage counts unshared records only (135 bytes here), so
        // with 150 to keep BuildKit deletes nothing; the order under it is
        // pinned by keep_storage_follows_buildkits_gc_order.
        let p = build_cache_of(&bc, &opts(true, None, Some(150)));
        assert!(p.records.is_empty(), "{p:?}");
        let p = build_cache_of(&bc, &opts(true, None, Some(100)));
        assert!(!p.records.is_empty(), "{p:?}");
        // Unknown records: nothing estimated, the daemon decides.
        let p = build_cache_of(&buildcache::BuildCache::default(), &opts(true, None, None));
        assert!(!p.known && p.records.is_empty());
    }

    fn rec_used(id: &str, size: u64, usage: u64, used: &str, shared: bool) -> BuildRecord {
        BuildRecord {
            id: id.into(),
            parents: Vec::new(),
            kind: "regular".into(),
            description: String::new(),
            in_use: Some(false),
            shared,
            size,
            created: "2020-01-01T00:00:00Z".into(),
            last_used: Some(used.into()),
            usage_count: usage,
        }
    }

    #[test]
    fn until_takes_a_record_never_used_however_new() {
        let mut fresh = rec("fresh", None, "regular", false, 7, 0);
        fresh.last_used = None;
        let bc = buildcache::BuildCache {
            known: true,
            records: vec![fresh, rec("recent", None, "regular", false, 5, 10)],
        };
        let o = BuildCacheOptions {
            all: false,
            until: Some(3600),
            keep_bytes: None,
            now: NOW,
        };
        let p = build_cache_of(&bc, &o);
        let ids: Vec<&str> = p.records.iter().map(|r| r.id.as_str()).collect();
        assert_eq!(ids, ["fresh"]);
        assert_eq!(p.bytes, 7);
    }

    #[test]
    fn keep_storage_follows_buildkits_gc_order() {
        // Ranks by last use a=1 b=2 c=3 s=4, by usage count (1, 5, 9)
        // b=c=1 a=2 s=3: b first (0.5 + 0.33). Only the unshared 300 bytes
        // count against keep-storage: after b, 200 < 250, done.
        let bc = buildcache::BuildCache {
            known: true,
            records: vec![
                rec_used("a", 100, 5, "2020-01-01T00:00:01Z", false),
                rec_used("b", 100, 1, "2020-01-01T00:00:02Z", false),
                rec_used("c", 100, 1, "2020-01-01T00:00:03Z", false),
                rec_used("s", 1000, 9, "2020-01-01T00:00:04Z", true),
            ],
        };
        let o = BuildCacheOptions {
            all: true,
            until: None,
            keep_bytes: Some(250),
            now: 1_600_000_000,
        };
        let ids = |p: PlanBuildCache| p.records.into_iter().map(|r| r.id).collect::<Vec<_>>();
        assert_eq!(ids(build_cache_of(&bc, &o)), ["b"]);
        // Without keep-storage, every eligible record goes.
        let all = BuildCacheOptions {
            keep_bytes: None,
            ..o
        };
        assert_eq!(ids(build_cache_of(&bc, &all)), ["a", "b", "c", "s"]);
    }

    #[test]
    fn volume_choice_follows_docker_volume_prune() {
        let anon = "a".repeat(64);
        let list = [
            vol(&anon, 0, &[]),
            vol("labelled", 0, &[(ANONYMOUS_LABEL, "")]),
            vol("named", 0, &[]),
            vol("used", 1, &[(ANONYMOUS_LABEL, "")]),
        ];
        let names = |v: Vec<PlanVolume>| v.into_iter().map(|v| v.name).collect::<Vec<_>>();
        assert_eq!(names(volumes(&list, false)), [anon.as_str(), "labelled"]);
        assert_eq!(
            names(volumes(&list, true)),
            [anon.as_str(), "labelled", "named"]
        );
    }
}
