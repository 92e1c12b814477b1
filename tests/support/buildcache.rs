//! The build cache as the daemon's `/system/df` lists it, against dockgc's
//! `df --format json` (the BuildKit tests on real and generated roots).

use serde_json::Value;
use std::collections::BTreeMap;

pub fn row<'a>(u: &'a Value, kind: &str) -> &'a Value {
    u["summary"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["type"] == kind)
        .unwrap_or_else(|| panic!("no {kind} row in {u:#}"))
}

/// Every field of every BuildCache record, and the Build Cache row as the
/// CLI (20.10 to 28) computes it from them.
pub fn assert_build_cache(u: &Value, system_df: &Value, when: &str) {
    assert_eq!(u["build_cache_known"], true, "{when}");
    let theirs: BTreeMap<&str, &Value> = system_df["BuildCache"]
        .as_array()
        .map(|a| a.iter().map(|r| (r["ID"].as_str().unwrap(), r)).collect())
        .unwrap_or_default();
    let ours: BTreeMap<&str, &Value> = u["build_cache"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["id"].as_str().unwrap(), r))
        .collect();
    assert_eq!(
        ours.keys().collect::<Vec<_>>(),
        theirs.keys().collect::<Vec<_>>(),
        "{when}: record IDs"
    );
    let mut bad = Vec::new();
    for (id, t) in &theirs {
        let o = ours[id];
        let parent = o["parents"].as_array().unwrap().first().cloned();
        let pairs = [
            ("Size", "size"),
            ("Shared", "shared"),
            ("Type", "type"),
            ("Description", "description"),
            ("CreatedAt", "created"),
            ("LastUsedAt", "last_used"),
            ("UsageCount", "usage_count"),
            ("InUse", "in_use"),
        ];
        for (theirs_k, ours_k) in pairs {
            if t[theirs_k] != o[ours_k] {
                bad.push(format!(
                    "{id} {theirs_k}: daemon {} dockgc {}",
                    t[theirs_k], o[ours_k]
                ));
            }
        }
        let want_parent = t["Parent"].as_str().filter(|p| !p.is_empty());
        if want_parent != parent.as_ref().and_then(|p| p.as_str()) {
            bad.push(format!(
                "{id} Parent: daemon {want_parent:?} dockgc {parent:?}"
            ));
        }
    }
    assert!(bad.is_empty(), "{when}: {bad:#?}");
    let recs: Vec<&&Value> = theirs.values().collect();
    let size: u64 = recs
        .iter()
        .filter(|r| r["Shared"] == false)
        .map(|r| r["Size"].as_u64().unwrap())
        .sum();
    let r = row(u, "build-cache");
    assert_eq!(r["total"], recs.len(), "{when}: {r}");
    assert_eq!(r["active"], 0, "{when}: {r}");
    assert_eq!(r["size"], size, "{when}: {r}");
    assert_eq!(r["reclaimable"], size, "{when}: {r}");
}
