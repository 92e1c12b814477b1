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
    let by_id: HashMap<&str, &BuildRecord> =
        bc.records.iter().map(|r| (r.id.as_str(), r)).collect();
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
        match (o.until, last_used(r)) {
            (Some(u), Some(t)) => o.now - t >= u,
            _ => true,
        }
    };
    let mut total: u64 = bc.records.iter().map(|r| r.size).sum();
    let mut chosen: Vec<&BuildRecord> = Vec::new();
    let mut taken: HashSet<&str> = HashSet::new();
    loop {
        // Leaves first: a record whose children are all gone.
        let mut round: Vec<&BuildRecord> = bc
            .records
            .iter()
            .filter(|r| !taken.contains(r.id.as_str()))
            .filter(|r| children.get(r.id.as_str()).copied().unwrap_or(0) == 0)
            .filter(|r| eligible(r))
            .collect();
        if round.is_empty() {
            break;
        }
        round.sort_by_key(|r| (last_used(r), r.id.clone()));
        let mut progressed = false;
        for r in round {
            if o.keep_bytes.is_some_and(|k| total < k) {
                break;
            }
            taken.insert(r.id.as_str());
            total = total.saturating_sub(r.size);
            for p in &r.parents {
                if let Some(n) = children.get_mut(p.as_str()) {
                    *n = n.saturating_sub(1);
                }
            }
            chosen.push(r);
            progressed = true;
        }
        if !progressed {
            break;
        }
    }
    plan.records = chosen
        .iter()
        .filter(|r| by_id.contains_key(r.id.as_str()))
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
        // keep-storage: least recently used first, until what is left fits.
        let p = build_cache_of(&bc, &opts(true, None, Some(150)));
        let left: u64 = 185 - p.bytes;
        assert!(
            left < 150 && left + p.records.last().unwrap().bytes >= 150,
            "{p:?}"
        );
        // Unknown records: nothing estimated, the daemon decides.
        let p = build_cache_of(&buildcache::BuildCache::default(), &opts(true, None, None));
        assert!(!p.known && p.records.is_empty());
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
