//! What the prune tests share, offline (`prune_daemon.rs`) and live
//! (`live_daemon.rs`): the scenario's named images, the daemon's view of a
//! root, and the judges (every kept image saves, no panic).

use super::*;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Output;

pub struct Names {
    /// The `dang:1` image that lost its tag.
    pub dang_old: String,
    /// The untagged loaded image from 2018.
    pub l2018: String,
    pub l2019: String,
    pub dang1: String,
    /// `solo:1` and its two untagged build parents.
    pub solo: BTreeSet<String>,
}

pub fn names(sc: &Scenario) -> Names {
    let imgs = sc.images_json_all.as_array().expect("images json");
    let by_id: BTreeMap<&str, &Value> = imgs
        .iter()
        .map(|i| (i["Id"].as_str().unwrap(), i))
        .collect();
    let l2018 = imgs
        .iter()
        .find(|i| i["Labels"]["org.example.untagged"] == "yes")
        .expect("the untagged 2018 image")["Id"]
        .as_str()
        .unwrap()
        .to_string();
    let base = &sc.tags["base:1"];
    let mut solo = BTreeSet::new();
    let mut cur = sc.tags["solo:1"].clone();
    while &cur != base {
        solo.insert(cur.clone());
        cur = by_id[cur.as_str()]["ParentId"]
            .as_str()
            .filter(|p| !p.is_empty())
            .expect("solo's chain reaches base:1")
            .to_string();
    }
    assert_eq!(solo.len(), 3, "solo:1 and its two build parents");
    Names {
        dang_old: sc.dangling_image.clone(),
        l2018,
        l2019: sc.tags["loaded:2019"].clone(),
        dang1: sc.tags["dang:1"].clone(),
        solo,
    }
}

pub fn set(ids: &[&String]) -> BTreeSet<String> {
    ids.iter().map(|s| s.to_string()).collect()
}

/// What a daemon lists: every image ID (`/images/json?all=1`), tag → ID,
/// digest reference → ID.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct View {
    pub images: BTreeSet<String>,
    pub tags: BTreeMap<String, String>,
    pub digests: BTreeMap<String, String>,
}

pub fn arr<'a>(v: &'a Value, key: &str) -> &'a Vec<Value> {
    v[key]
        .as_array()
        .unwrap_or_else(|| panic!("`{key}` is not an array in {v:#}"))
}

pub fn assert_no_panic(out: &Output) {
    assert!(
        out.status.code() != Some(101) && !stderr(out).contains("panicked at"),
        "dockgc panicked\n{}",
        describe(out)
    );
}

/// `docker save` of every image (one call; per image on failure, to name it).
pub fn assert_saves(d: &Daemon, ids: &BTreeSet<String>, when: &str) {
    if ids.is_empty() {
        return;
    }
    let mut args = vec!["save"];
    args.extend(ids.iter().map(String::as_str));
    let out = d.docker_output(&args);
    if out.status.success() && !out.stdout.is_empty() {
        return;
    }
    let mut failed = Vec::new();
    for id in ids {
        let o = d.docker_output(&["save", id]);
        if !o.status.success() {
            failed.push(format!(
                "{id}: {}",
                String::from_utf8_lossy(&o.stderr).trim()
            ));
        }
    }
    panic!(
        "{when}: docker save failed ({}):\n  {}\n{}",
        out.status,
        failed.join("\n  "),
        String::from_utf8_lossy(&out.stderr)
    );
}

pub fn hex_of(s: &str) -> String {
    sha256_digest(s.as_bytes())
        .trim_start_matches("sha256:")
        .to_string()
}

/// A daemon that must come up on `root` (the scenario's did).
pub fn must_start(root: &Path, when: &str) -> Daemon {
    Daemon::start(root).unwrap_or_else(|| {
        panic!(
            "{when}: dockerd did not start on {} (its log tail is above)",
            root.display()
        )
    })
}

pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

pub fn parse_json(out: &Output, what: &str) -> Value {
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{what}: invalid JSON: {e}\n{}", describe(out)))
}

/// IDs of `plan.images`.
pub fn plan_images(report: &Value) -> BTreeSet<String> {
    arr(&report["plan"], "images")
        .iter()
        .map(|i| i["id"].as_str().expect("image id").to_string())
        .collect()
}

pub fn refs_of(images: &Value, key: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for img in images.as_array().expect("images") {
        let id = img["Id"].as_str().unwrap();
        for t in img[key].as_array().into_iter().flatten() {
            let t = t.as_str().unwrap();
            if !t.starts_with("<none>") {
                out.insert(t.to_string(), id.to_string());
            }
        }
    }
    out
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

pub fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

pub const UNTIL: &str = "until=2019-12-01T00:00:00Z";

pub fn describe(out: &Output) -> String {
    format!(
        "status: {}\nstderr:\n{}\nstdout (first 8000 bytes):\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout[..out.stdout.len().min(8000)])
    )
}
