//! Integration tests of `dockgc df` against a data root written by a real
//! Docker daemon (see `support::scenario`). The daemon's own answers, captured
//! before it was stopped, are the expected values.
//!
//! These tests skip (with a loud SKIPPED message) when no daemon can be started,
//! unless `DOCKGC_REQUIRE_DOCKER` or `CI` is set.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Output;

use serde_json::Value;
use support::*;

macro_rules! scenario_or_skip {
    () => {
        match scenario() {
            Some(s) => s,
            None => return,
        }
    };
}

// ---------------------------------------------------------------------------
// Helpers

fn run_dockgc(root: &Path, args: &[&str]) -> Output {
    dockgc()
        .arg("--root")
        .arg(root)
        .args(args)
        .output()
        .expect("run dockgc")
}

fn describe(out: &Output) -> String {
    format!(
        "status: {}\nstderr:\n{}\nstdout (first 4000 bytes):\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout[..out.stdout.len().min(4000)])
    )
}

fn assert_no_panic(out: &Output) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.code() != Some(101) && !stderr.contains("panicked at"),
        "dockgc panicked\n{}",
        describe(out)
    );
}

/// `dockgc --root ROOT df --format json EXTRA...`, which must exit 0.
fn df_json_out(root: &Path, extra: &[&str]) -> (Value, Output) {
    let mut args = vec!["df", "--format", "json"];
    args.extend_from_slice(extra);
    let out = run_dockgc(root, &args);
    assert_no_panic(&out);
    assert_eq!(
        out.status.code(),
        Some(0),
        "dockgc {args:?} failed\n{}",
        describe(&out)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "dockgc {args:?} printed invalid JSON: {e}\n{}",
            describe(&out)
        )
    });
    (v, out)
}

fn df_json(root: &Path, extra: &[&str]) -> Value {
    df_json_out(root, extra).0
}

fn arr<'a>(v: &'a Value, key: &str) -> &'a Vec<Value> {
    v[key]
        .as_array()
        .unwrap_or_else(|| panic!("`{key}` is not an array in {v:#}"))
}

fn u(v: &Value, key: &str) -> u64 {
    v[key]
        .as_u64()
        .unwrap_or_else(|| panic!("`{key}` is not a non-negative integer in {v:#}"))
}

fn s<'a>(v: &'a Value, key: &str) -> &'a str {
    v[key]
        .as_str()
        .unwrap_or_else(|| panic!("`{key}` is not a string in {v:#}"))
}

/// Entries of `v[key]` by their `id`.
fn by_id<'a>(v: &'a Value, key: &str) -> BTreeMap<String, &'a Value> {
    arr(v, key)
        .iter()
        .map(|e| (s(e, "id").to_string(), e))
        .collect()
}

fn check(mismatches: &[String], what: &str, json: &Value) {
    assert!(
        mismatches.is_empty(),
        "{what}: {} mismatch(es):\n  {}\n--- dockgc JSON ---\n{json:#}",
        mismatches.len(),
        mismatches.join("\n  ")
    );
}

/// Strings a damage report may use to name something: anomalies and orphans
/// (path, message, reason) plus stderr.
fn mentions(json: &Value, out: &Output, needle: &str) -> bool {
    let in_list = |key: &str| {
        json[key].as_array().into_iter().flatten().any(|e| {
            ["path", "message", "reason"]
                .iter()
                .any(|k| e[*k].as_str().is_some_and(|t| t.contains(needle)))
        })
    };
    in_list("anomalies")
        || in_list("orphans")
        || String::from_utf8_lossy(&out.stderr).contains(needle)
}

fn anomaly_mentions(json: &Value, needle: &str) -> bool {
    json["anomalies"].as_array().into_iter().flatten().any(|e| {
        ["path", "message"]
            .iter()
            .any(|k| e[*k].as_str().is_some_and(|t| t.contains(needle)))
    })
}

fn store_dir(root: &Path) -> PathBuf {
    root.join("image/overlay2")
}

fn layer_dir(root: &Path, chain: &str) -> PathBuf {
    store_dir(root)
        .join("layerdb/sha256")
        .join(chain.trim_start_matches("sha256:"))
}

/// Independent reading of the image graph: image ID → chain IDs of its layers,
/// bottom first, from the image config's `rootfs.diff_ids` (§3.1).
fn image_chains(root: &Path, ids: &[String]) -> BTreeMap<String, Vec<String>> {
    ids.iter()
        .map(|id| {
            let hexid = id.trim_start_matches("sha256:");
            let p = store_dir(root).join("imagedb/content/sha256").join(hexid);
            let cfg: Value = serde_json::from_slice(&fs::read(&p).unwrap()).unwrap();
            let mut chains: Vec<String> = Vec::new();
            for d in cfg["rootfs"]["diff_ids"].as_array().unwrap() {
                let d = d.as_str().unwrap();
                let c = match chains.last() {
                    None => d.to_string(),
                    Some(p) => sha256_digest(format!("{p} {d}").as_bytes()),
                };
                chains.push(c);
            }
            (id.clone(), chains)
        })
        .collect()
}

fn layer_size(root: &Path, chain: &str) -> u64 {
    let p = layer_dir(root, chain).join("size");
    fs::read_to_string(&p)
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
        .parse()
        .unwrap()
}

/// SharedSize of each of `images` with references counted over `counted`:
/// the sum of the `size` of its chain layers referenced by more than one of
/// the counted images (§8.1).
fn shared_sizes(
    root: &Path,
    chains: &BTreeMap<String, Vec<String>>,
    counted: &[String],
    images: &[String],
) -> BTreeMap<String, u64> {
    let mut refs: BTreeMap<&str, usize> = BTreeMap::new();
    for id in counted {
        for c in &chains[id] {
            *refs.entry(c).or_default() += 1;
        }
    }
    images
        .iter()
        .map(|id| {
            let shared = chains[id]
                .iter()
                .filter(|c| refs.get(c.as_str()).copied().unwrap_or(0) > 1)
                .map(|c| layer_size(root, c))
                .sum();
            (id.clone(), shared)
        })
        .collect()
}

fn json_log(root: &Path, id: &str) -> PathBuf {
    root.join("containers")
        .join(id)
        .join(format!("{id}-json.log"))
}

fn ids_set(v: &Value, key: &str) -> BTreeSet<String> {
    by_id(v, key).into_keys().collect()
}

// ---------------------------------------------------------------------------
// df numbers versus the daemon

#[test]
fn df_images_are_docker_images_all() {
    let sc = scenario_or_skip!();
    let j = df_json(&sc.root, &[]);
    let got = ids_set(&j, "images");
    let want: BTreeSet<String> = sc.images_all.iter().cloned().collect();
    assert_eq!(got, want, "dockgc images[] ids != `docker images -a` ids");
    assert_eq!(s(&j, "driver"), "overlay2");
    let listed: BTreeSet<String> = arr(&j, "images")
        .iter()
        .filter(|i| i["listed"].as_bool() == Some(true))
        .map(|i| s(i, "id").to_string())
        .collect();
    let want_listed: BTreeSet<String> = sc.images_listed.iter().cloned().collect();
    assert_eq!(
        listed, want_listed,
        "images with listed=true != `docker images` (no -a)"
    );
}

#[test]
fn df_listed_images_match_system_df() {
    let sc = scenario_or_skip!();
    let j = df_json(&sc.root, &[]);
    let mine = by_id(&j, "images");
    let mut bad = Vec::new();
    let daemon_images = arr(&sc.system_df, "Images");
    assert!(daemon_images.len() >= 8, "scenario too small");
    for d in daemon_images {
        let id = s(d, "Id");
        let Some(m) = mine.get(id) else {
            bad.push(format!("{id}: missing from dockgc images[]"));
            continue;
        };
        for (mk, dk) in [
            ("size", "Size"),
            ("shared_size", "SharedSize"),
            ("containers", "Containers"),
        ] {
            let (a, b) = (m[mk].as_i64(), d[dk].as_i64());
            if a != b {
                bad.push(format!(
                    "{id} {:?}: dockgc {mk}={a:?}, daemon {dk}={b:?}",
                    d["RepoTags"]
                ));
            }
        }
        if let (Some(sz), Some(sh), Some(un)) = (
            m["size"].as_i64(),
            m["shared_size"].as_i64(),
            m["unique_size"].as_i64(),
        ) && un != sz - sh
        {
            bad.push(format!(
                "{id}: unique_size {un} != size {sz} - shared_size {sh}"
            ));
        }
    }
    let (a, b) = (
        j["layers_size"].as_i64(),
        sc.system_df["LayersSize"].as_i64(),
    );
    if a != b {
        bad.push(format!(
            "layers_size: dockgc {a:?}, daemon LayersSize {b:?}"
        ));
    }
    check(&bad, "df vs /system/df Images", &j);
}

#[test]
fn df_containers_match_system_df() {
    let sc = scenario_or_skip!();
    let j = df_json(&sc.root, &[]);
    let mine = by_id(&j, "containers");
    let daemon: BTreeMap<&str, &Value> = arr(&sc.system_df, "Containers")
        .iter()
        .map(|c| (s(c, "Id"), c))
        .collect();
    let got: BTreeSet<&str> = mine.keys().map(|k| k.as_str()).collect();
    let want: BTreeSet<&str> = daemon.keys().copied().collect();
    assert_eq!(got, want, "container id sets differ");
    let mut bad = Vec::new();
    for (id, d) in &daemon {
        let m = mine[*id];
        if m["size_rw"].as_i64() != d["SizeRw"].as_i64() {
            bad.push(format!(
                "{id} {:?}: size_rw {:?} != SizeRw {:?}",
                d["Names"], m["size_rw"], d["SizeRw"]
            ));
        }
        if m["image"].as_str() != d["ImageID"].as_str() {
            bad.push(format!(
                "{id}: image {:?} != ImageID {:?}",
                m["image"], d["ImageID"]
            ));
        }
        let names: Vec<String> = arr(m, "names")
            .iter()
            .map(|n| n.as_str().unwrap().trim_start_matches('/').to_string())
            .collect();
        let dnames: Vec<String> = arr(d, "Names")
            .iter()
            .map(|n| n.as_str().unwrap().trim_start_matches('/').to_string())
            .collect();
        if names != dnames {
            bad.push(format!("{id}: names {names:?} != daemon {dnames:?}"));
        }
    }
    // States on disk after the daemon stopped (it stops "running" on shutdown,
    // so that one is not checked).
    for (name, state) in [
        ("exited", "exited"),
        ("failed", "exited"),
        ("created", "created"),
    ] {
        let id = &sc.containers[name];
        if mine[id]["state"].as_str() != Some(state) {
            bad.push(format!(
                "{name}: state {:?}, want {state}",
                mine[id]["state"]
            ));
        }
    }
    for name in ["running", "exited", "created"] {
        let id = &sc.containers[name];
        if mine[id]["size_rw"].as_u64().unwrap_or(0) == 0 {
            bad.push(format!("{name}: scenario should give a non-empty RW layer"));
        }
    }
    check(&bad, "df containers vs /system/df", &j);
}

#[test]
fn df_all_images_match_images_json_all() {
    let sc = scenario_or_skip!();
    let j = df_json(&sc.root, &[]);
    let mine = by_id(&j, "images");
    let all = sc.images_json_all.as_array().unwrap();
    let parents: BTreeSet<&str> = all
        .iter()
        .map(|i| s(i, "ParentId"))
        .filter(|p| !p.is_empty())
        .collect();
    let mut bad = Vec::new();
    for d in all {
        let id = s(d, "Id");
        let Some(m) = mine.get(id) else {
            bad.push(format!("{id}: missing"));
            continue;
        };
        if m["size"].as_i64() != d["Size"].as_i64() {
            bad.push(format!(
                "{id}: size {:?} != Size {:?}",
                m["size"], d["Size"]
            ));
        }
        let want_parent = Some(s(d, "ParentId")).filter(|p| !p.is_empty());
        if m["parent"].as_str() != want_parent {
            bad.push(format!("{id}: parent {:?} != {want_parent:?}", m["parent"]));
        }
        let strip = |key: &str, none: &str| -> BTreeSet<String> {
            d[key]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|t| t.as_str())
                .filter(|t| *t != none)
                .map(String::from)
                .collect()
        };
        let tags = strip("RepoTags", "<none>:<none>");
        let my_tags: BTreeSet<String> = arr(m, "repo_tags")
            .iter()
            .map(|t| t.as_str().unwrap().to_string())
            .collect();
        if my_tags != tags {
            bad.push(format!("{id}: repo_tags {my_tags:?} != {tags:?}"));
        }
        let digests = strip("RepoDigests", "<none>@<none>");
        let my_digests: BTreeSet<String> = arr(m, "repo_digests")
            .iter()
            .map(|t| t.as_str().unwrap().to_string())
            .collect();
        if my_digests != digests {
            bad.push(format!("{id}: repo_digests {my_digests:?} != {digests:?}"));
        }
        let created = m["created"]
            .as_str()
            .and_then(|c| c.parse::<jiff::Timestamp>().ok())
            .map(|t| t.as_second());
        if created != d["Created"].as_i64() {
            bad.push(format!(
                "{id}: created {:?} != Created {}",
                m["created"], d["Created"]
            ));
        }
        let dangling = tags.is_empty() && !parents.contains(id);
        if m["dangling"].as_bool() != Some(dangling) {
            bad.push(format!(
                "{id}: dangling {:?}, want {dangling}",
                m["dangling"]
            ));
        }
    }
    let dang = &mine[&sc.dangling_image];
    if dang["dangling"].as_bool() != Some(true) || dang["listed"].as_bool() != Some(true) {
        bad.push(format!(
            "rebuilt-away dang:1 image should be dangling and listed: {dang}"
        ));
    }
    check(&bad, "df vs /images/json?all=1", &j);
}

#[test]
fn df_summary_rows_match_system_df() {
    let sc = scenario_or_skip!();
    let j = df_json(&sc.root, &[]);
    let rows: BTreeMap<&str, &Value> = arr(&j, "summary")
        .iter()
        .map(|r| (s(r, "type"), r))
        .collect();
    let mut bad = Vec::new();
    let mut expect = |row: &str, key: &str, want: u64| match rows.get(row) {
        None => bad.push(format!("summary row {row} missing")),
        Some(r) if r[key].as_u64() != Some(want) => {
            bad.push(format!("summary {row}.{key} = {:?}, want {want}", r[key]))
        }
        _ => {}
    };
    let images = arr(&sc.system_df, "Images");
    expect("images", "total", images.len() as u64);
    expect(
        "images",
        "active",
        images.iter().filter(|i| u(i, "Containers") > 0).count() as u64,
    );
    expect("images", "size", u(&sc.system_df, "LayersSize"));
    let ctrs = arr(&sc.system_df, "Containers");
    let rw: u64 = ctrs.iter().map(|c| u(c, "SizeRw")).sum();
    // Offline truth: after the daemon stopped, a container is active only if
    // its config.v2.json says so (the daemon stops containers at shutdown).
    let mut active = 0;
    let mut active_rw = 0;
    for c in ctrs {
        let id = s(c, "Id");
        let cfg: Value = serde_json::from_slice(
            &fs::read(sc.root.join("containers").join(id).join("config.v2.json")).unwrap(),
        )
        .unwrap();
        let st = &cfg["State"];
        if [
            st["Running"].as_bool(),
            st["Paused"].as_bool(),
            st["Restarting"].as_bool(),
        ]
        .contains(&Some(true))
        {
            active += 1;
            active_rw += u(c, "SizeRw");
        }
    }
    expect("containers", "total", ctrs.len() as u64);
    expect("containers", "active", active);
    expect("containers", "size", rw);
    expect("containers", "reclaimable", rw - active_rw);
    let logs: u64 = ctrs
        .iter()
        .map(|c| fs::metadata(json_log(&sc.root, s(c, "Id"))).map_or(0, |m| m.len()))
        .sum();
    expect("logs", "size", logs);
    check(&bad, "summary rows", &j);
}

#[test]
fn shared_size_rule_is_listed_for_engine_20_10() {
    let sc = scenario_or_skip!();
    assert!(
        sc.server_version.starts_with("20.10."),
        "this test expects Debian's Engine 20.10, got {}",
        sc.server_version
    );
    assert!(
        !sc.root.join("engine-id").exists(),
        "Engine 20.10 should not write engine-id"
    );
    let j = df_json(&sc.root, &[]);
    assert_eq!(
        j["shared_size_rule"], "listed",
        "auto rule for a root without engine-id"
    );
    let j = df_json(&sc.root, &["--shared-size", "listed"]);
    assert_eq!(j["shared_size_rule"], "listed");
}

#[test]
fn shared_size_all_matches_independent_count() {
    let sc = scenario_or_skip!();
    let chains = image_chains(&sc.root, &sc.images_all);
    // Validate the independent code on the rule the daemon implements here.
    let listed = shared_sizes(&sc.root, &chains, &sc.images_listed, &sc.images_listed);
    for d in arr(&sc.system_df, "Images") {
        assert_eq!(
            Some(listed[s(d, "Id")] as i64),
            d["SharedSize"].as_i64(),
            "independent listed-rule SharedSize disagrees with the daemon for {d}"
        );
    }
    let all = shared_sizes(&sc.root, &chains, &sc.images_all, &sc.images_all);
    assert!(
        sc.images_listed.iter().any(|id| all[id] > listed[id]),
        "scenario must contain an image whose layers are shared only with intermediate parents"
    );

    let j = df_json(&sc.root, &["--shared-size", "all"]);
    assert_eq!(j["shared_size_rule"], "all");
    let jl = df_json(&sc.root, &[]);
    let mine = by_id(&j, "images");
    let mine_listed = by_id(&jl, "images");
    let mut bad = Vec::new();
    for id in &sc.images_all {
        let got = mine.get(id).and_then(|m| m["shared_size"].as_u64());
        if got != Some(all[id]) {
            bad.push(format!(
                "{id}: all-rule shared_size {got:?}, want {}",
                all[id]
            ));
        }
    }
    for id in &sc.images_listed {
        let a = mine.get(id).and_then(|m| m["shared_size"].as_u64());
        let l = mine_listed.get(id).and_then(|m| m["shared_size"].as_u64());
        if a < l {
            bad.push(format!("{id}: all-rule {a:?} < listed-rule {l:?}"));
        }
        let size = mine.get(id).and_then(|m| m["size"].as_u64());
        let unique = mine.get(id).and_then(|m| m["unique_size"].as_u64());
        if let (Some(sz), Some(a), Some(un)) = (size, a, unique)
            && un != sz - a
        {
            bad.push(format!(
                "{id}: unique_size {un} != {sz} - {a} under the all rule"
            ));
        }
    }
    check(&bad, "--shared-size all", &j);
}

#[test]
fn df_disk_total_is_du_and_categories_sum() {
    let sc = scenario_or_skip!();
    let j = df_json(&sc.root, &["--disk"]);
    let du = std::process::Command::new("du")
        .args(["-s", "-B1"])
        .arg(&sc.root)
        .output()
        .expect("du");
    assert!(du.status.success());
    let du_total: u64 = String::from_utf8_lossy(&du.stdout)
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let disk = &j["disk"];
    assert!(disk.is_object(), "--disk must fill `disk`: {j:#}");
    assert_eq!(
        u(disk, "total_bytes"),
        du_total,
        "disk.total_bytes != du -s -B1\n{disk:#}"
    );
    let cats = arr(disk, "categories");
    let sum: u64 = cats.iter().map(|c| u(c, "bytes")).sum();
    assert_eq!(
        sum, du_total,
        "categories do not sum to the total\n{disk:#}"
    );
    assert!(cats.len() >= 2, "expected several categories: {disk:#}");
    // Without --disk, `disk` is null.
    assert!(df_json(&sc.root, &[])["disk"].is_null());
}

/// One answer to one question on a root a real daemon wrote: df's Images
/// RECLAIMABLE is the layer bytes of the `prune -a` plan, and each image's
/// EXCLUSIVE the layer bytes of a plan that removes it alone (`docker rmi`).
#[test]
fn df_and_plans_agree_on_what_is_freed() {
    use dockgc::{graph::Graph, plan, policy, store, usage};
    let sc = scenario_or_skip!();
    let snap = store::load(&sc.root).expect("load the scenario");
    let g = Graph::build(&snap);
    let u = usage::compute(&g, &usage::Options { shared_size: None });
    let no_orphans = plan::OrphanOptions {
        enabled: false,
        grace: 0,
        now: 0,
        live: false,
    };
    let bytes = |sel: &policy::Selection| {
        plan::build(&g, sel, &no_orphans, String::new())
            .reclaim
            .layers
    };
    let all = policy::select(&g, &policy::Options::all(0));
    assert_eq!(u.summary[0].kind, "images");
    assert_eq!(u.summary[0].reclaimable, bytes(&all));
    assert!(
        u.summary[0].reclaimable > 0,
        "the scenario has unused images"
    );
    let mut nonzero = 0;
    for i in &u.images {
        let alone = policy::select_only(&g, &[i.id]);
        assert_eq!(i.exclusive_size, bytes(&alone), "image {}", i.id);
        nonzero += usize::from(i.exclusive_size > 0);
    }
    assert!(nonzero > 0, "some image frees something alone");
}

#[test]
fn read_only_commands_change_nothing() {
    let sc = scenario_or_skip!();
    let copy = copy_root(&sc.root);
    let root = copy.path();
    let before = tree_hash(root);
    for args in [
        &["df"][..],
        &["df", "-v"],
        &["df", "--disk"],
        &["df", "--format", "json"],
        &[
            "df",
            "-v",
            "--disk",
            "--format",
            "json",
            "--shared-size",
            "all",
        ],
    ] {
        let out = run_dockgc(root, args);
        assert_no_panic(&out);
        assert_eq!(
            out.status.code(),
            Some(0),
            "dockgc {args:?}\n{}",
            describe(&out)
        );
        assert!(!out.stdout.is_empty(), "dockgc {args:?} printed nothing");
        assert_eq!(
            tree_hash(root),
            before,
            "dockgc {args:?} changed the data root"
        );
    }
}

#[test]
fn table_output_names_images_and_containers() {
    let sc = scenario_or_skip!();
    let out = run_dockgc(&sc.root, &["df", "-v"]);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    for needle in ["app", "solo", "loaded", "exited", "created"] {
        assert!(
            text.contains(needle),
            "`df -v` does not mention {needle}:\n{text}"
        );
    }
}

#[test]
fn log_bytes_are_json_log_sizes() {
    let sc = scenario_or_skip!();
    let j = df_json(&sc.root, &[]);
    let mine = by_id(&j, "containers");
    let mut bad = Vec::new();
    for (name, id) in &sc.containers {
        let want = fs::metadata(json_log(&sc.root, id)).map_or(0, |m| m.len());
        let got = mine.get(id).and_then(|c| c["log_bytes"].as_u64());
        if got != Some(want) {
            bad.push(format!("{name}: log_bytes {got:?}, file has {want}"));
        }
    }
    let exited = fs::metadata(json_log(&sc.root, &sc.containers["exited"]))
        .unwrap()
        .len();
    assert!(
        exited > 10_000,
        "exited container should have a sizeable log"
    );
    check(&bad, "log_bytes", &j);
}

// ---------------------------------------------------------------------------
// Damaged copies: anomalies are reported, exit 0, no panic.

fn images_without(sc: &Scenario, root: &Path, chain: &str) -> BTreeSet<String> {
    image_chains(root, &sc.images_all)
        .into_iter()
        .filter(|(_, c)| !c.iter().any(|x| x == chain))
        .map(|(id, _)| id)
        .collect()
}

/// The daemon's own `docker images -a` on a (damaged) root, to check a test's
/// expectation. Starting a daemon changes the root: call this last.
fn daemon_images_all(root: &Path) -> Option<BTreeSet<String>> {
    let d = Daemon::start(root)?;
    let out = d.docker(&["images", "-a", "--no-trunc", "-q"]);
    d.stop();
    Some(
        out.lines()
            .map(|l| l.trim().to_string())
            .filter(|l| !l.is_empty())
            .collect(),
    )
}

#[test]
fn truncated_repositories_json_is_an_anomaly() {
    let sc = scenario_or_skip!();
    let copy = copy_root(&sc.root);
    let root = copy.path();
    let p = store_dir(root).join("repositories.json");
    let bytes = fs::read(&p).unwrap();
    fs::write(&p, &bytes[..bytes.len() / 2]).unwrap();
    let (j, out) = df_json_out(root, &[]);
    assert!(
        mentions(&j, &out, "repositories.json"),
        "truncated repositories.json not reported\n{}",
        describe(&out)
    );
    let want: BTreeSet<String> = sc.images_all.iter().cloned().collect();
    assert_eq!(
        ids_set(&j, "images"),
        want,
        "imagedb is intact: same images"
    );
}

#[test]
fn size_file_with_newline_makes_layer_unloadable() {
    let sc = scenario_or_skip!();
    let copy = copy_root(&sc.root);
    let root = copy.path();
    // The COPY layer of solo:1 (a middle layer, used by no container).
    let solo = &sc.tags["solo:1"];
    let chain = image_chains(root, std::slice::from_ref(solo))[solo][1].clone();
    let p = layer_dir(root, &chain).join("size");
    let mut v = fs::read(&p).unwrap();
    v.push(b'\n');
    fs::write(&p, v).unwrap();
    let (j, out) = df_json_out(root, &[]);
    let rel = format!("{}/size", chain.trim_start_matches("sha256:"));
    assert!(
        anomaly_mentions(&j, &rel),
        "no anomaly naming {rel}\n{}",
        describe(&out)
    );
    let want = images_without(sc, root, &chain);
    assert!(!want.contains(solo));
    assert_eq!(
        ids_set(&j, "images"),
        want,
        "images on the unloadable layer must not be listed (the daemon skips them)"
    );
    if let Some(daemon) = daemon_images_all(root) {
        assert_eq!(
            daemon, want,
            "the daemon disagrees with this test's expectation"
        );
    }
}

#[test]
fn missing_cache_id_is_an_anomaly() {
    let sc = scenario_or_skip!();
    let copy = copy_root(&sc.root);
    let root = copy.path();
    let dang = &sc.dangling_image;
    let chain = image_chains(root, std::slice::from_ref(dang))[dang]
        .last()
        .unwrap()
        .clone();
    fs::remove_file(layer_dir(root, &chain).join("cache-id")).unwrap();
    let (j, out) = df_json_out(root, &[]);
    let hexc = chain.trim_start_matches("sha256:");
    assert!(
        anomaly_mentions(&j, hexc),
        "no anomaly naming layer {hexc}\n{}",
        describe(&out)
    );
    let want = images_without(sc, root, &chain);
    assert!(!want.contains(dang));
    assert_eq!(ids_set(&j, "images"), want);
    if let Some(daemon) = daemon_images_all(root) {
        assert_eq!(
            daemon, want,
            "the daemon disagrees with this test's expectation"
        );
    }
}

#[test]
fn dangling_l_link_is_reported() {
    let sc = scenario_or_skip!();
    let copy = copy_root(&sc.root);
    let root = copy.path();
    let name = "DGCDANGLINGLINKAAAAAAAAAAA";
    assert_eq!(name.len(), 26);
    std::os::unix::fs::symlink(
        format!("../{}/diff", "0".repeat(64)),
        root.join("overlay2/l").join(name),
    )
    .unwrap();
    let (j, out) = df_json_out(root, &[]);
    assert!(
        mentions(&j, &out, name),
        "dangling l/{name} not reported\n{}",
        describe(&out)
    );
}

#[test]
fn unreferenced_overlay2_dir_is_an_orphan() {
    let sc = scenario_or_skip!();
    let copy = copy_root(&sc.root);
    let root = copy.path();
    let id = "dead".repeat(16);
    let dir = root.join("overlay2").join(&id);
    fs::create_dir_all(dir.join("diff/sub")).unwrap();
    fs::write(dir.join("diff/sub/payload.bin"), vec![7u8; 10_000]).unwrap();
    fs::write(dir.join("link"), "DGCORPHANLINKAAAAAAAAAAAAA").unwrap();
    let (j, out) = df_json_out(root, &[]);
    let orphan = arr(&j, "orphans").iter().find(|o| {
        o["path"]
            .as_str()
            .is_some_and(|p| p.ends_with(&format!("overlay2/{id}")))
    });
    let Some(o) = orphan else {
        panic!("overlay2/{id} not listed in orphans\n{}", describe(&out));
    };
    assert!(u(o, "bytes") >= 10_000, "orphan bytes too small: {o}");
    assert!(
        !s(o, "kind").is_empty() && !s(o, "reason").is_empty(),
        "{o}"
    );
    let want: BTreeSet<String> = sc.images_all.iter().cloned().collect();
    assert_eq!(
        ids_set(&j, "images"),
        want,
        "an orphan dir changes no image"
    );
    // Nothing real is called an orphan.
    let real: Vec<&Value> = arr(&j, "orphans")
        .iter()
        .filter(|o| !o["path"].as_str().unwrap_or("").contains(&id))
        .collect();
    assert!(
        real.is_empty(),
        "undamaged data reported as orphans: {real:#?}"
    );
}

#[test]
fn undamaged_root_has_no_anomalies_or_orphans() {
    let sc = scenario_or_skip!();
    let j = df_json(&sc.root, &[]);
    assert_eq!(
        arr(&j, "anomalies").len(),
        0,
        "anomalies on a clean root: {j:#}"
    );
    assert_eq!(
        arr(&j, "orphans").len(),
        0,
        "orphans on a clean root: {j:#}"
    );
}

// Unreadable by permission (chmod 000) cannot be tested: these tests run as
// root (dockerd needs it), and root reads through mode bits. Instead a
// directory is replaced by a file, and another by a symlink loop (ELOOP).

#[test]
fn container_dir_replaced_by_file_is_an_anomaly() {
    let sc = scenario_or_skip!();
    let copy = copy_root(&sc.root);
    let root = copy.path();
    let id = &sc.containers["exited"];
    let p = root.join("containers").join(id);
    fs::remove_dir_all(&p).unwrap();
    fs::write(&p, "not a directory").unwrap();
    let (j, out) = df_json_out(root, &[]);
    assert!(
        anomaly_mentions(&j, &format!("containers/{id}")),
        "containers/{id} (a file) not reported\n{}",
        describe(&out)
    );
}

#[test]
fn mount_dir_symlink_loop_is_an_anomaly() {
    let sc = scenario_or_skip!();
    let copy = copy_root(&sc.root);
    let root = copy.path();
    let id = &sc.containers["created"];
    let p = store_dir(root).join("layerdb/mounts").join(id);
    fs::remove_dir_all(&p).unwrap();
    std::os::unix::fs::symlink(id, &p).unwrap(); // points at itself: ELOOP
    let (j, out) = df_json_out(root, &[]);
    assert!(
        anomaly_mentions(&j, id),
        "container {id} with a looping layerdb/mounts entry not reported\n{}",
        describe(&out)
    );
}

// ---------------------------------------------------------------------------
// Not a Docker root (needs no daemon)

#[test]
fn non_docker_root_exits_2_naming_the_path() {
    let empty = tempfile::tempdir().unwrap();
    let missing = empty.path().join("does-not-exist");
    for root in [empty.path(), missing.as_path()] {
        let rs = root.to_str().unwrap();
        for args in [
            vec!["--root", rs, "df"],
            vec!["df", "--root", rs],
            vec!["--root", rs, "df", "--format", "json"],
        ] {
            let out = dockgc().args(&args).output().unwrap();
            assert_no_panic(&out);
            assert_eq!(
                out.status.code(),
                Some(2),
                "dockgc {args:?}\n{}",
                describe(&out)
            );
            assert!(
                String::from_utf8_lossy(&out.stderr).contains(rs),
                "stderr does not name {rs}\n{}",
                describe(&out)
            );
        }
    }
}

#[test]
fn tree_hash_sees_metadata_and_content_changes() {
    let t = tempfile::tempdir().unwrap();
    let r = t.path();
    fs::create_dir(r.join("d")).unwrap();
    fs::write(r.join("d/f"), "abc").unwrap();
    std::os::unix::fs::symlink("f", r.join("d/l")).unwrap();
    let h0 = tree_hash(r);
    assert_eq!(h0, tree_hash(r), "hash is deterministic");
    let _ = fs::read(r.join("d/f")).unwrap();
    assert_eq!(h0, tree_hash(r), "reading changes nothing");

    let step = |what: &str, f: &dyn Fn(), prev: &mut String| {
        f();
        let h = tree_hash(r);
        assert_ne!(&h, prev, "tree_hash missed: {what}");
        *prev = h;
    };
    let mut h = h0;
    step(
        "content",
        &|| fs::write(r.join("d/f"), "abd").unwrap(),
        &mut h,
    );
    step(
        "mode",
        &|| {
            use std::os::unix::fs::PermissionsExt;
            fs::set_permissions(r.join("d/f"), fs::Permissions::from_mode(0o600)).unwrap()
        },
        &mut h,
    );
    step(
        "symlink target",
        &|| {
            fs::remove_file(r.join("d/l")).unwrap();
            std::os::unix::fs::symlink("g", r.join("d/l")).unwrap();
        },
        &mut h,
    );
    step(
        "mtime",
        &|| {
            let f = fs::File::options().write(true).open(r.join("d/f")).unwrap();
            f.set_modified(std::time::SystemTime::UNIX_EPOCH).unwrap();
        },
        &mut h,
    );
    step(
        "new empty file",
        &|| fs::write(r.join("d/new"), "").unwrap(),
        &mut h,
    );
    step(
        "xattr",
        &|| {
            let c = std::ffi::CString::new(r.join("d/new").to_str().unwrap()).unwrap();
            let rc = unsafe {
                libc::setxattr(c.as_ptr(), c"user.dgc".as_ptr(), b"1".as_ptr().cast(), 1, 0)
            };
            if rc != 0 {
                // Filesystem without user xattrs: make a change the hash must see anyway.
                fs::write(r.join("d/new"), "x").unwrap();
            }
        },
        &mut h,
    );
}
