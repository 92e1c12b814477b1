//! The generator's BuildKit build cache and volumes (`SynthSpec::build_records`,
//! `SynthSpec::volumes`), judged by a real daemon (Engine 20.10 from
//! Debian's `docker.io`, its embedded BuildKit 0.8): started on a generated
//! root, it loads every record and volume, and its `/system/df` equals
//! what the generator meant and what `dockgc df` reads — record by record
//! (ID, parent, type, description, in use, shared, size, created, last
//! used, usage count), volume by volume (links, size, labels), the Build
//! Cache and Local Volumes rows of `docker system df`, images and
//! containers. Its df then changes the metadata as on any host (twins,
//! cached sizes, usage counts of mutable records), and dockgc reading the
//! stopped root again equals the daemon's settled df. `docker builder prune
//! -af` removes every record, snapshot and BuildKit dir, which it can only
//! do if leases and snapshots are what BuildKit would have written.
//!
//! What the generator leaves out, on purpose: `cache.db` (solver cache keys;
//! the daemon starts with an empty one, so the records are no cache hits
//! for later builds, which df does not show) and the content-hash caches of
//! local sources (written empty, as for an empty context).
//!
//! Skips (loudly) without a usable dockerd unless `DOCKGC_REQUIRE_DOCKER` or
//! `CI` is set; see `tests/support/mod.rs`.

mod support;

use dockgc::synth::{SynthReport, SynthSpec, generate};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Output;

fn spec() -> SynthSpec {
    let mut spec = SynthSpec::scale(40, 110);
    spec.bases = 3;
    spec.containers = 8;
    spec.dangling = 3;
    spec.files_per_layer = 2;
    spec.file_bytes = 700;
    spec.seed = 2026;
    // Engine 20.10 writes no engine-id (and labels no anonymous volume).
    spec.engine_id = false;
    spec.build_records = 140;
    spec.volumes = 45;
    spec
}

fn run(root: &Path, args: &[&str]) -> Output {
    support::dockgc()
        .arg("--root")
        .arg(root)
        .args(args)
        .output()
        .expect("run dockgc")
}

fn df_json(root: &Path) -> Value {
    let out = run(root, &["df", "-v", "--format", "json"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "dockgc df: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("df JSON")
}

fn df_text(root: &Path) -> String {
    let out = run(root, &["df"]);
    assert_eq!(out.status.code(), Some(0));
    String::from_utf8(out.stdout).unwrap()
}

/// The fields after `title` on its line of a `system df` table.
fn line_fields(text: &str, title: &str) -> Vec<String> {
    let line = text
        .lines()
        .find(|l| l.starts_with(title))
        .unwrap_or_else(|| panic!("no {title:?} line in:\n{text}"));
    line[title.len()..]
        .split_whitespace()
        .map(str::to_string)
        .collect()
}

/// Every volume's links, size, driver and labels, and the volumes row.
fn assert_volumes(u: &Value, system_df: &Value, when: &str) {
    let theirs: BTreeMap<&str, &Value> = system_df["Volumes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| (v["Name"].as_str().unwrap(), v))
        .collect();
    let ours: BTreeMap<&str, &Value> = u["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| (v["name"].as_str().unwrap(), v))
        .collect();
    assert_eq!(
        ours.keys().collect::<Vec<_>>(),
        theirs.keys().collect::<Vec<_>>(),
        "{when}: volume names"
    );
    let mut bad = Vec::new();
    for (name, t) in &theirs {
        let o = ours[name];
        for (field, got, want) in [
            ("links", &o["links"], &t["UsageData"]["RefCount"]),
            ("size", &o["size"], &t["UsageData"]["Size"]),
            ("driver", &o["driver"], &t["Driver"]),
            ("labels", &o["labels"], &t["Labels"]),
        ] {
            if got != want {
                bad.push(format!("{name}.{field}: dockgc {got}, daemon {want}"));
            }
        }
    }
    assert!(bad.is_empty(), "{when}: {bad:#?}");
    let r = support::row(u, "volumes");
    assert_eq!(r["total"], theirs.len(), "{when}");
    let active = theirs
        .values()
        .filter(|v| v["UsageData"]["RefCount"].as_i64().unwrap() > 0)
        .count();
    assert_eq!(r["active"], active, "{when}");
}

/// Images (size, shared size, containers), LayersSize and containers' SizeRw.
fn assert_images_and_containers(u: &Value, system_df: &Value, when: &str) {
    let ours: BTreeMap<&str, &Value> = u["images"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| (i["id"].as_str().unwrap(), i))
        .collect();
    for t in system_df["Images"].as_array().unwrap() {
        let id = t["Id"].as_str().unwrap();
        let o = ours
            .get(id)
            .unwrap_or_else(|| panic!("{when}: no image {id}"));
        assert_eq!(o["size"], t["Size"], "{when}: {id} size");
        assert_eq!(o["shared_size"], t["SharedSize"], "{when}: {id} shared");
        assert_eq!(o["containers"], t["Containers"], "{when}: {id} containers");
    }
    assert_eq!(u["layers_size"], system_df["LayersSize"], "{when}");
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

/// What the generator meant equals what the daemon lists.
fn assert_as_generated(report: &SynthReport, system_df: &Value) {
    let theirs: BTreeMap<&str, &Value> = system_df["BuildCache"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["ID"].as_str().unwrap(), r))
        .collect();
    assert_eq!(
        theirs.len(),
        report.build_cache.len(),
        "the daemon loads every record"
    );
    for r in &report.build_cache {
        let t = theirs
            .get(r.id.as_str())
            .unwrap_or_else(|| panic!("the daemon dropped {}", r.id));
        assert_eq!(t["Type"], r.kind, "{}", r.id);
        assert_eq!(t["Shared"], r.shared, "{}", r.id);
        assert_eq!(t["Size"], r.size, "{}", r.id);
        assert_eq!(
            t["Parent"].as_str().filter(|p| !p.is_empty()),
            r.parent.as_deref(),
            "{}",
            r.id
        );
    }
    let vols: BTreeMap<&str, &Value> = system_df["Volumes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| (v["Name"].as_str().unwrap(), v))
        .collect();
    for v in &report.volume_list {
        match vols.get(v.name.as_str()) {
            None => assert!(v.options, "the daemon lacks volume {}", v.name),
            Some(t) => {
                assert!(
                    !v.options,
                    "{}: a volume with options is not listed",
                    v.name
                );
                assert_eq!(t["UsageData"]["RefCount"], v.links, "{}", v.name);
                assert_eq!(t["UsageData"]["Size"], v.size, "{}", v.name);
            }
        }
    }
}

#[test]
fn a_real_daemon_loads_the_generated_build_cache_and_volumes() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let root = tmp.path().join("docker");
    let report = generate(&root, &spec()).expect("generate");
    assert_eq!(report.build_cache.len(), 140);
    let kinds: BTreeSet<&str> = report.build_cache.iter().map(|r| r.kind.as_str()).collect();
    for k in [
        "regular",
        "source.local",
        "exec.cachemount",
        "frontend",
        "internal",
    ] {
        assert!(kinds.contains(k), "{k} in {kinds:?}");
    }
    assert!(report.twins > 0 && !report.held_layers.is_empty());
    assert!(
        report
            .volume_list
            .iter()
            .any(|v| v.anonymous && v.links > 0)
    );

    // dockgc on the pristine root, before any daemon touched it.
    let before = df_json(&root);
    let before_text = df_text(&root);
    let out = run(&root, &["verify", "--deep"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "verify --deep: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    // A copy for builder prune, untouched by the first daemon.
    let copy = support::copy_root(&root);

    let Some(daemon) = support::Daemon::start(&root) else {
        return;
    };
    let listed: BTreeSet<String> = daemon
        .docker(&["volume", "ls", "-q"])
        .lines()
        .map(str::to_string)
        .collect();
    let generated: BTreeSet<String> = report.volume_list.iter().map(|v| v.name.clone()).collect();
    assert_eq!(listed, generated, "docker volume ls");
    let first = daemon.api("/system/df");
    let cli = daemon.docker(&["system", "df"]);
    let settled = daemon.api("/system/df");
    daemon.stop();

    assert_as_generated(&report, &first);
    support::assert_build_cache(&before, &first, "pristine root, the daemon's first df");
    assert_volumes(&before, &first, "pristine root");
    assert_images_and_containers(&before, &first, "pristine root");
    // The rows as `docker system df` prints them; Images RECLAIMABLE is
    // dockgc's own (what removing images frees: not what BuildKit holds),
    // and the CLI prints no percentage for the build cache.
    for (title, fields) in [
        ("Images", 3),
        ("Containers", 5),
        ("Local Volumes", 5),
        ("Build Cache", 4),
    ] {
        assert_eq!(
            line_fields(&before_text, title)[..fields],
            line_fields(&cli, title)[..fields],
            "{title}: dockgc\n{before_text}\ndocker system df\n{cli}"
        );
    }

    // The daemon's df made twins and cached sizes: dockgc reads that too.
    let after = df_json(&root);
    support::assert_build_cache(&after, &settled, "after the daemon's df");
    assert_volumes(&after, &settled, "after the daemon's df");

    // docker builder prune -af removes every record and BuildKit's dirs,
    // leaves the images and what they need.
    let d = support::Daemon::start(copy.path()).expect("a daemon on the copy");
    d.docker(&["builder", "prune", "-af"]);
    let pruned = d.api("/system/df");
    d.stop();
    assert!(
        pruned["BuildCache"].as_array().is_none_or(|a| a.is_empty()),
        "{:#}",
        pruned["BuildCache"]
    );
    let u = df_json(copy.path());
    support::assert_build_cache(&u, &pruned, "after builder prune -af");
    assert_images_and_containers(&u, &pruned, "after builder prune -af");
    let out = run(copy.path(), &["verify"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "verify after builder prune: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    let dirs: BTreeSet<String> = std::fs::read_dir(copy.path().join("overlay2"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    let buildkit_only: Vec<&String> = dirs
        .iter()
        .filter(|d| d.len() == 25)
        .filter(|d| !report.layer_list.iter().any(|l| &l.cache_id == *d))
        .collect();
    assert!(
        buildkit_only.is_empty(),
        "dirs of BuildKit's alone left after builder prune: {buildkit_only:?}"
    );
    // The layers only BuildKit held went with their records; every image
    // layer stayed.
    let layerdb: BTreeSet<String> =
        std::fs::read_dir(copy.path().join("image/overlay2/layerdb/sha256"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
    for l in &report.held_layers {
        assert!(
            !layerdb.contains(&l.chain_id.hex()),
            "held layer {} left",
            l.chain_id
        );
    }
    for l in &report.layer_list {
        assert!(
            layerdb.contains(&l.chain_id.hex()),
            "image layer {} gone",
            l.chain_id
        );
    }
}
