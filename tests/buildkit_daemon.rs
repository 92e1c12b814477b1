//! BuildKit, judged by a real daemon: on the modern scenario (BuildKit builds
//! of every kind, see `support::modern`) and on copies of it after
//! `docker builder prune -af` and after a partial `docker builder prune
//! --filter until=`, dockgc's df equals `/system/df` (build cache record by
//! record, images, containers), `verify --deep` finds no error, `prune -a
//! --orphans` leaves exactly what `docker image prune -a` leaves, and a
//! daemon restarted on a root dockgc pruned still builds from its cache.

mod support;

use bbolt::build::{Node, Options, Tree, image};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::Path;
use std::process::Output;
use support::*;

macro_rules! modern_or_skip {
    () => {
        match scenario_modern() {
            Some(s) => s,
            None => return,
        }
    };
}

fn run(root: &Path, args: &[&str]) -> Output {
    dockgc()
        .arg("--root")
        .arg(root)
        .args(args)
        .output()
        .expect("run dockgc")
}

fn show(out: &Output) -> String {
    format!(
        "status {}\nstderr:\n{}\nstdout:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout[..out.stdout.len().min(8000)])
    )
}

fn json(root: &Path, args: &[&str]) -> Value {
    let out = run(root, args);
    assert!(
        matches!(out.status.code(), Some(0 | 1)),
        "dockgc {args:?}\n{}",
        show(&out)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}\n{}", show(&out)))
}

fn df(root: &Path) -> Value {
    json(root, &["df", "-v", "--format", "json"])
}

/// Images: Size, SharedSize and Containers per image, the Images row.
fn assert_images(u: &Value, system_df: &Value, when: &str) {
    let ours: BTreeMap<&str, &Value> = u["images"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| (i["id"].as_str().unwrap(), i))
        .collect();
    let mut n = 0;
    for t in system_df["Images"].as_array().unwrap() {
        let id = t["Id"].as_str().unwrap();
        let o = ours
            .get(id)
            .unwrap_or_else(|| panic!("{when}: no image {id}"));
        assert_eq!(o["size"], t["Size"], "{when}: {id} size");
        assert_eq!(
            o["shared_size"], t["SharedSize"],
            "{when}: {id} shared size"
        );
        assert_eq!(o["containers"], t["Containers"], "{when}: {id} containers");
        n += 1;
    }
    let r = row(u, "images");
    assert_eq!(r["total"], n, "{when}: {r}");
    assert_eq!(u["layers_size"], system_df["LayersSize"], "{when}");
}

fn assert_containers(u: &Value, system_df: &Value, when: &str) {
    let ours: BTreeMap<&str, &Value> = u["containers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["id"].as_str().unwrap(), c))
        .collect();
    let theirs = system_df["Containers"].as_array().unwrap();
    assert_eq!(ours.len(), theirs.len(), "{when}");
    for t in theirs {
        let id = t["Id"].as_str().unwrap();
        let want = t["SizeRw"].as_u64().unwrap_or(0);
        assert_eq!(ours[id]["size_rw"], want, "{when}: {id} SizeRw");
    }
}

/// `verify --deep` on a healthy BuildKit root: no error; warnings only for
/// what the scenario put there on purpose (the force-removed image).
fn assert_verifies(root: &Path, when: &str) {
    for args in [
        &["verify", "--format", "json"][..],
        &["verify", "--deep", "--format", "json"],
    ] {
        let out = run(root, args);
        let v: Value =
            serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}\n{}", show(&out)));
        let findings = v["findings"].as_array().unwrap();
        let unexpected: Vec<&Value> = findings
            .iter()
            .filter(|f| f["check"] != "image-removed")
            .collect();
        assert!(unexpected.is_empty(), "{when}: {args:?}: {unexpected:#?}");
        assert_eq!(out.status.code(), Some(0), "{when}: {}", show(&out));
    }
}

/// What a daemon and the store show after a prune: images and tags, and the
/// layerdb entries, driver dirs and `l/` links on disk.
#[derive(Debug, PartialEq, Eq)]
struct Left {
    images: BTreeSet<String>,
    layers: BTreeSet<String>,
    dirs: BTreeSet<String>,
    links: BTreeSet<String>,
}

fn names(dir: &Path) -> BTreeSet<String> {
    fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

fn left(root: &Path) -> Left {
    let d = Daemon::start(root).expect("a daemon starts on the pruned root");
    let images = d
        .docker(&["images", "-a", "--no-trunc", "-q"])
        .lines()
        .map(str::to_string)
        .collect();
    d.stop();
    let mut dirs = names(&root.join("overlay2"));
    dirs.remove("l");
    Left {
        images,
        layers: names(&root.join("image/overlay2/layerdb/sha256")),
        dirs,
        links: names(&root.join("overlay2/l")),
    }
}

/// `dockgc prune -a --orphans` on one copy against `docker image prune -a`
/// on another: the same images, layers, dirs and links are left.
fn assert_prune_all_equals_docker(root: &Path, when: &str) {
    let theirs = copy_root(root);
    let d = Daemon::start(theirs.path()).expect("daemon");
    d.docker(&["image", "prune", "-a", "-f"]);
    d.stop();
    let ours = copy_root(root);
    let out = run(
        ours.path(),
        &["prune", "-a", "--orphans", "--grace", "0s", "--yes"],
    );
    assert_eq!(out.status.code(), Some(0), "{when}: {}", show(&out));
    let (t, o) = (left(theirs.path()), left(ours.path()));
    assert_eq!(
        o, t,
        "{when}: dockgc prune -a --orphans leaves other data than docker image prune -a"
    );
}

/// A copy of the modern root after `docker builder prune ARGS` on it, with
/// the daemon's settled `/system/df` after the prune.
fn after_builder_prune(sc: &Modern, args: &[&str]) -> (tempfile::TempDir, Value) {
    let copy = copy_root(&sc.root);
    let d = Daemon::start(copy.path()).expect("daemon");
    let mut a = vec!["builder", "prune", "-f"];
    a.extend_from_slice(args);
    d.docker_bk(&a);
    let df = d.settled_df();
    d.stop();
    (copy, df)
}

#[test]
fn df_equals_system_df() {
    let sc = modern_or_skip!();
    let u = df(&sc.root);
    assert_build_cache(&u, &sc.system_df, "modern root");
    assert_images(&u, &sc.system_df, "modern root");
    assert_containers(&u, &sc.system_df, "modern root");
    assert!(
        u["build_cache"].as_array().unwrap().len() > 20,
        "the scenario builds a real cache"
    );
}

/// What BuildKit holds is not reclaimable by an image prune: RECLAIMABLE
/// and each image's EXCLUSIVE count only what `prune -a` would free.
#[test]
fn reclaimable_is_what_prune_all_frees() {
    let sc = modern_or_skip!();
    let u = df(&sc.root);
    let plan = json(&sc.root, &["prune", "-a", "--dry-run", "--format", "json"]);
    assert_eq!(
        row(&u, "images")["reclaimable"],
        plan["plan"]["reclaim"]["layers"],
        "{u:#}"
    );
}

#[test]
fn a_healthy_buildkit_root_verifies() {
    let sc = modern_or_skip!();
    assert_verifies(&sc.root, "modern root");
    let v = json(&sc.root, &["verify", "--format", "json"]);
    let removed: Vec<&Value> = v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["check"] == "image-removed")
        .collect();
    assert_eq!(removed.len(), 1, "{v:#}");
    assert_eq!(removed[0]["subject"]["id"], sc.containers["orphaned"]);
    assert!(
        removed[0]["message"]
            .as_str()
            .unwrap()
            .contains(&sc.force_removed),
        "the warning names the image: {}",
        removed[0]
    );
}

#[test]
fn the_container_of_a_force_removed_image_still_starts() {
    let sc = modern_or_skip!();
    let copy = copy_root(&sc.root);
    let d = Daemon::start(copy.path()).expect("daemon");
    let out = d.docker(&["start", "-a", "orphaned"]);
    d.stop();
    assert_eq!(out.trim(), "gone soon");
}

#[test]
fn prune_all_equals_docker_image_prune_all() {
    let sc = modern_or_skip!();
    assert_prune_all_equals_docker(&sc.root, "modern root");
}

#[test]
fn after_builder_prune_all() {
    let sc = modern_or_skip!();
    let (copy, system_df) = after_builder_prune(sc, &["-a"]);
    let u = df(copy.path());
    assert_build_cache(&u, &system_df, "after builder prune -af");
    assert!(u["build_cache"].as_array().unwrap().is_empty());
    assert_images(&u, &system_df, "after builder prune -af");
    assert_verifies(copy.path(), "after builder prune -af");
    // BuildKit holds nothing now: what images alone held is reclaimable.
    assert!(
        row(&u, "images")["reclaimable"].as_u64().unwrap() > 0,
        "{u:#}"
    );
    assert_prune_all_equals_docker(copy.path(), "after builder prune -af");
}

#[test]
fn after_a_partial_builder_prune() {
    let sc = modern_or_skip!();
    // Keep the records used in the last part of the build: until = the
    // time since the median last use.
    let mut used: Vec<i64> = sc.system_df["BuildCache"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|r| r["LastUsedAt"].as_str())
        .filter_map(|t| t.parse::<jiff::Timestamp>().ok())
        .map(|t| t.as_second())
        .collect();
    used.sort();
    let median = used[used.len() / 2];
    let age = jiff::Timestamp::now().as_second() - median;
    let until = format!("until={age}s");
    let (copy, system_df) = after_builder_prune(sc, &["-a", "--filter", &until]);
    let left = system_df["BuildCache"].as_array().map_or(0, Vec::len);
    let before = sc.system_df["BuildCache"].as_array().unwrap().len();
    assert!(
        left > 0 && left < before,
        "a partial prune: {left} of {before} records left with {until}"
    );
    let u = df(copy.path());
    assert_build_cache(&u, &system_df, "after a partial builder prune");
    assert_images(&u, &system_df, "after a partial builder prune");
    assert_verifies(copy.path(), "after a partial builder prune");
    assert_prune_all_equals_docker(copy.path(), "after a partial builder prune");
}

/// After dockgc's prune, a daemon on the root still builds from its cache
/// and `docker builder prune` still works.
#[test]
fn a_pruned_root_still_builds_from_cache() {
    let sc = modern_or_skip!();
    let copy = copy_root(&sc.root);
    let out = run(
        copy.path(),
        &["prune", "-a", "--orphans", "--grace", "0s", "--yes"],
    );
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let d = Daemon::start(copy.path()).expect("daemon");
    d.docker(&["tag", &sc.tags["base:1"], "base:1"]);
    let ctx = tempfile::tempdir().unwrap();
    fs::write(ctx.path().join("first.txt"), "the same first layer\n").unwrap();
    fs::write(
        ctx.path().join("Dockerfile"),
        "FROM base:1\nCOPY first.txt /first.txt\n",
    )
    .unwrap();
    let build = d.docker_bk_output(&[
        "build",
        "--network",
        "none",
        "--progress",
        "plain",
        "-t",
        "again:1",
        ctx.path().to_str().unwrap(),
    ]);
    let log = String::from_utf8_lossy(&build.stderr).into_owned();
    assert!(build.status.success(), "{log}");
    assert!(
        log.contains("CACHED"),
        "the COPY step comes from the cache:\n{log}"
    );
    d.docker_bk(&["builder", "prune", "-af"]);
    let df = d.settled_df();
    d.stop();
    assert!(df["BuildCache"].as_array().is_none_or(|a| a.is_empty()));
}

// ---------------------------------------------------------------------------
// BuildKit damage

/// A bbolt file as a tree, to write back changed with the test writer.
fn tree_of(path: &Path) -> Tree {
    fn copy(b: bbolt::Bucket<'_>) -> Tree {
        let mut t = Tree::new();
        t.set_sequence(b.sequence());
        for (k, e) in b.iter() {
            match e {
                bbolt::Entry::Value(v) => {
                    t.put(k, v);
                }
                bbolt::Entry::Bucket(sub) => {
                    t.entries.insert(k.to_vec(), Node::Bucket(copy(sub)));
                }
            }
        }
        t
    }
    copy(bbolt::Db::open(path).expect("open").root())
}

fn rewrite(path: &Path, f: impl FnOnce(&mut Tree)) {
    let mut t = tree_of(path);
    f(&mut t);
    fs::write(path, image(&t, &Options::default()).expect("image")).unwrap();
}

fn checks(root: &Path) -> Vec<(String, String)> {
    let v = json(root, &["verify", "--format", "json"]);
    let mut out: Vec<(String, String)> = v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["check"].as_str().unwrap().to_string(),
                f["severity"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    out.sort();
    out.dedup();
    out
}

/// A record whose snapshot is gone: the warning buildkit-record.
#[test]
fn warning_buildkit_record() {
    let sc = modern_or_skip!();
    let copy = copy_root(&sc.root);
    let db = copy.path().join("buildkit/snapshots.db");
    // A cache mount's snapshot: its own bucket, no layer.
    let cachemount = sc.system_df["BuildCache"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["Type"] == "exec.cachemount")
        .and_then(|r| r["ID"].as_str())
        .unwrap()
        .to_string();
    rewrite(&db, |t| {
        assert!(t.entries.remove(cachemount.as_bytes()).is_some());
    });
    let got = checks(copy.path());
    assert!(
        got.contains(&("buildkit-record".into(), "warning".into())),
        "{got:?}"
    );
    assert!(got.iter().all(|(_, sev)| sev == "warning"), "{got:?}");
}

/// A snapshot whose driver dir is gone: the warning buildkit-snapshot.
#[test]
fn warning_buildkit_snapshot() {
    let sc = modern_or_skip!();
    let copy = copy_root(&sc.root);
    let snapshots = tree_of(&copy.path().join("buildkit/snapshots.db"));
    // A cache mount's dir: BuildKit's alone (no layer sits on it).
    let dir = sc.system_df["BuildCache"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["Type"] == "exec.cachemount")
        .and_then(|r| r["ID"].as_str())
        .unwrap()
        .to_string();
    assert!(snapshots.entries.contains_key(dir.as_bytes()));
    let link = fs::read_to_string(copy.path().join("overlay2").join(&dir).join("link")).unwrap();
    fs::remove_dir_all(copy.path().join("overlay2").join(&dir)).unwrap();
    fs::remove_file(copy.path().join("overlay2/l").join(link.trim())).unwrap();
    let got = checks(copy.path());
    assert!(
        got.contains(&("buildkit-snapshot".into(), "warning".into())),
        "{got:?}"
    );
    assert!(got.iter().all(|(_, sev)| sev == "warning"), "{got:?}");
}

/// A damaged `snapshots.db`: df still runs, names the file, and falls back
/// to the substring rule; prune keeps what BuildKit might own.
#[test]
fn a_damaged_buildkit_database_is_named_and_kept() {
    let sc = modern_or_skip!();
    let copy = copy_root(&sc.root);
    let db = copy.path().join("buildkit/snapshots.db");
    let bytes = fs::read(&db).unwrap();
    fs::write(&db, &bytes[..4096 + 100]).unwrap(); // truncated inside page 1
    let out = run(copy.path(), &["df", "-v", "--format", "json"]);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let u: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(u["build_cache_known"], false);
    let a: Vec<&Value> = u["anomalies"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["kind"] == "buildkit")
        .collect();
    assert_eq!(a.len(), 1, "{u:#}");
    let msg = a[0]["message"].as_str().unwrap();
    assert!(
        msg.contains("snapshots.db") && msg.contains("kept"),
        "{msg}"
    );
    // What BuildKit might own stays: the prune plan removes no BuildKit dir.
    let p = json(
        copy.path(),
        &[
            "prune",
            "-a",
            "--orphans",
            "--grace",
            "0s",
            "--dry-run",
            "--format",
            "json",
        ],
    );
    let bk_dirs: Vec<&Value> = p["plan"]["orphans"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|o| {
            o["path"]
                .as_str()
                .and_then(|p| p.strip_prefix("overlay2/"))
                .is_some_and(|n| n.len() == 25)
        })
        .collect();
    assert!(bk_dirs.is_empty(), "{bk_dirs:#?}");
}
