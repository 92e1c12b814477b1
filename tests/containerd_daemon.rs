//! dockgc on containerd stores, judged by a real containerd (Debian's
//! containerd 1.6 and runc): the scenario of `support::ctrd_scenario`
//! (images sharing a base in moby, k8s.io and default, tags, a dangling
//! name, a multi-platform index, a container with data, a leased RW
//! snapshot, a kept view, an ingest leftover, an unreferenced blob, a
//! collectable prepare/commit pair). Every figure is compared with what
//! containerd itself reports; the collectable set with what containerd's
//! own startup GC removes from a copy; every verify check ID fires exactly
//! on its injected damage.

mod support;

use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Output;
use support::*;

macro_rules! scenario_or_skip {
    () => {
        match ctrd_scenario() {
            Some(s) => s,
            None => return,
        }
    };
}

fn run(root: &Path, args: &[&str]) -> Output {
    dockgc()
        .arg("--containerd-root")
        .arg(root)
        .args(args)
        .env_remove("DOCKGC_ROOT")
        .env_remove("DOCKGC_CONFIG")
        .env_remove("DOCKGC_NAMESPACE")
        .output()
        .unwrap()
}

fn json(root: &Path, args: &[&str]) -> Value {
    let out = run(root, args);
    assert!(
        out.status.success(),
        "dockgc {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn df(root: &Path, ns: &str) -> Value {
    json(root, &["--namespace", ns, "df", "--format", "json"])
}

fn u(v: &Value) -> u64 {
    v.as_u64().unwrap_or_else(|| panic!("not a number: {v}"))
}

#[test]
fn snapshot_usage_is_ctrs_byte_for_byte() {
    let s = scenario_or_skip!();
    for ns in NAMESPACES {
        let j = &s.judge[ns];
        let v = df(&s.root, ns);
        assert_eq!(v["store"], "containerd");
        assert_eq!(v["namespace"], ns);
        let mine: BTreeMap<String, (u64, u64)> = v["snapshots"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| {
                (
                    x["key"].as_str().unwrap().to_string(),
                    (u(&x["size"]), u(&x["inodes"])),
                )
            })
            .collect();
        assert_eq!(mine, j.usage, "{ns}: snapshots usage -b");
        for x in v["snapshots"].as_array().unwrap() {
            let key = x["key"].as_str().unwrap();
            let (parent, kind) = &j.snapshots[key];
            assert_eq!(
                x["kind"].as_str().unwrap(),
                kind.to_lowercase(),
                "{ns} {key}"
            );
            assert_eq!(x["parent"].as_str().unwrap_or(""), parent, "{ns} {key}");
        }
    }
    // Every active snapshot equals du -s -B1 of its directory, as containerd measures it.
    let v = df(&s.root, "moby");
    for x in v["snapshots"].as_array().unwrap() {
        if x["kind"] == "active" {
            let dir = s
                .root
                .join("io.containerd.snapshotter.v1.overlayfs/snapshots")
                .join(x["dir"].as_str().unwrap())
                .join("fs");
            assert_eq!(u(&x["size"]), du(&dir), "{}", dir.display());
        }
    }
}

fn du(p: &Path) -> u64 {
    let out = std::process::Command::new("du")
        .args(["-s", "-B1"])
        .arg(p)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap()
}

#[test]
fn blobs_are_the_files_and_the_records_are_ctrs() {
    let s = scenario_or_skip!();
    let v = df(&s.root, "all");
    let mut per_ns: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for b in v["blobs"].as_array().unwrap() {
        let d = b["digest"].as_str().unwrap();
        let file = s
            .root
            .join("io.containerd.content.v1.content/blobs/sha256")
            .join(d.trim_start_matches("sha256:"));
        assert_eq!(u(&b["size"]), fs::metadata(&file).unwrap().len(), "{d}");
        assert_eq!(b["present"], true);
        for ns in b["namespaces"].as_array().unwrap() {
            per_ns
                .entry(ns.as_str().unwrap().into())
                .or_default()
                .insert(d.into());
        }
    }
    for ns in NAMESPACES {
        assert_eq!(per_ns[ns], s.judge[ns].content, "{ns}: ctr content ls");
    }
    // One blob file backs the base layer in every namespace; snapshots are per namespace.
    let files = fs::read_dir(s.root.join("io.containerd.content.v1.content/blobs/sha256"))
        .unwrap()
        .count();
    assert_eq!(
        files as u64,
        u(&v["summary"][2]["total"]),
        "{}",
        v["summary"]
    );
}

#[test]
fn image_sizes_match_ctr_images_ls() {
    let s = scenario_or_skip!();
    for ns in NAMESPACES {
        let v = df(&s.root, ns);
        let mut seen = BTreeSet::new();
        for img in v["images"].as_array().unwrap() {
            let size = ctr_size(u(&img["blob_size"]));
            for n in img["names"].as_array().unwrap() {
                let n = n.as_str().unwrap();
                let (target, printed) = &s.judge[ns].images[n];
                assert_eq!(img["id"].as_str().unwrap(), target, "{ns} {n}");
                assert_eq!(&size, printed, "{ns} {n}: ctr images ls SIZE");
                seen.insert(n.to_string());
            }
        }
        let want: BTreeSet<String> = s.judge[ns].images.keys().cloned().collect();
        assert_eq!(
            seen, want,
            "{ns}: every name of ctr images ls, grouped by target"
        );
    }
}

#[test]
fn engine29_sizes_follow_the_documented_rules() {
    let s = scenario_or_skip!();
    let v = df(&s.root, "moby");
    assert_eq!(v["engine_rules"]["name"], "29.6+");
    assert_eq!(v["engine_rules"]["chosen"], false);
    let usage = &s.judge["moby"].usage;
    let img = |name: &str| {
        v["images"]
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i["names"].as_array().unwrap().iter().any(|n| n == name))
            .unwrap_or_else(|| panic!("no {name}"))
            .clone()
    };
    // bb:1 by hand: manifest + config + its one layer blob + its snapshot.
    let bb = img(BB1);
    let blob_total = u(&bb["blob_size"]);
    let base_key = s.judge["moby"]
        .snapshots
        .iter()
        .find(|(_, (p, _))| p.is_empty())
        .map(|(k, _)| k.clone())
        .unwrap();
    assert_eq!(u(&bb["size"]), blob_total + usage[&base_key].0);
    // Shared: the base snapshot (every image) and the base blob.
    let shared = u(&bb["shared_size"]);
    assert!(
        shared > usage[&base_key].0,
        "content counts too under 29.5+"
    );
    assert_eq!(u(&bb["unique_size"]), u(&bb["size"]) - shared);
    // The dangling image is <none>: only its moby-dangling@ name.
    let dangling: Vec<&Value> = v["images"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["dangling"] == true)
        .collect();
    assert_eq!(dangling.len(), 1);
    assert!(
        dangling[0]["names"][0]
            .as_str()
            .unwrap()
            .starts_with("moby-dangling@")
    );
    // Under 29.0-29.4 SharedSize has no content part.
    let old = json(
        &s.root,
        &["df", "--format", "json", "--engine-version", "29.3"],
    );
    let bb_old = old["images"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["names"].as_array().unwrap().iter().any(|n| n == BB1))
        .unwrap()
        .clone();
    assert_eq!(u(&bb_old["shared_size"]), usage[&base_key].0);
    assert_eq!(old["engine_rules"]["name"], "29.0-29.3");
    // The index: only the amd64 manifest was imported; attestation adds nothing unpacked.
    let multi = img(MULTI);
    assert_eq!(multi["platforms"], serde_json::json!(["linux/amd64"]));
    assert_eq!(multi["unpacked"], true);
    let table = run(&s.root, &["df"]);
    let text = String::from_utf8_lossy(&table.stdout);
    assert!(text.contains("Engine 29.6+ rules"), "{text}");
}

/// dockgc's collectable set and removed orphans, as the oracle lists them.
fn predicted(v: &Value) -> (BTreeSet<(String, String)>, BTreeSet<PathBuf>) {
    let root = PathBuf::from(v["root"].as_str().unwrap());
    let mut records = BTreeSet::new();
    let mut paths = BTreeSet::new();
    for i in v["collectable"].as_array().unwrap() {
        let kind = i["kind"].as_str().unwrap();
        let path = PathBuf::from(i["path"].as_str().unwrap());
        match kind {
            "blob" | "snapshot-dir" | "ingest-dir" => {
                paths.insert(path.strip_prefix(&root).unwrap().to_path_buf());
            }
            "backend" => {}
            _ => {
                records.insert((kind.to_string(), i["id"].as_str().unwrap().to_string()));
            }
        }
    }
    for o in v["orphans"].as_array().unwrap() {
        if o["removed_at_next_gc"] == true {
            let path = PathBuf::from(o["path"].as_str().unwrap());
            paths.insert(path.strip_prefix(&root).unwrap().to_path_buf());
        }
    }
    (records, paths)
}

#[test]
fn collectable_is_what_containerds_own_gc_removes() {
    let s = scenario_or_skip!();
    let v = df(&s.root, "all");
    let (records, paths) = predicted(&v);
    // What this scenario made collectable, by construction.
    let want_records: BTreeSet<(String, String)> = [
        ("snapshot-record", "moby/overlayfs/c0ffee".to_string()),
        ("snapshot-record", "moby/overlayfs/c0ffee-init".to_string()),
        ("blob-record", format!("moby/{}", s.unreferenced)),
    ]
    .into_iter()
    .map(|(a, b)| (a.to_string(), b))
    .collect();
    assert_eq!(records, want_records, "{:#}", v["collectable"]);
    assert_eq!(
        paths.len(),
        3,
        "two snapshot dirs and one blob file: {paths:?}"
    );
    let Some(removed) = gc_oracle(&s.root, &s.judge) else {
        return;
    };
    assert_eq!(records, removed.records, "records the startup GC removed");
    assert_eq!(
        paths, removed.paths,
        "files and dirs the startup GC removed"
    );
    // Kept, as containerd keeps them: the lease, the container, the ingest, the view.
    let kept: Vec<&str> = ["ctr1", "view1", s.rw_key.as_str()].to_vec();
    for k in kept {
        assert!(
            !removed
                .records
                .contains(&("snapshot-record".into(), format!("moby/overlayfs/{k}"))),
            "{k} went"
        );
    }
}

#[test]
fn a_live_containerd_is_read_as_a_point_in_time_snapshot() {
    let s = scenario_or_skip!();
    let v = &s.live_df;
    assert_eq!(v["containerd"]["live"], true, "{:#}", v["containerd"]);
    assert_eq!(v["containerd"]["point_in_time"], true);
    let mine: BTreeMap<(String, String), u64> = v["snapshots"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| {
            (
                (
                    x["namespace"].as_str().unwrap().to_string(),
                    x["key"].as_str().unwrap().to_string(),
                ),
                u(&x["size"]),
            )
        })
        .collect();
    for ns in NAMESPACES {
        for (k, (size, _)) in &s.judge[ns].usage {
            assert_eq!(mine[&(ns.to_string(), k.clone())], *size, "{ns} {k}");
        }
    }
    // Stopped, it is not live.
    assert_eq!(df(&s.root, "moby")["containerd"]["live"], false);
}

#[test]
fn disk_reconciles_to_du_of_the_root() {
    let s = scenario_or_skip!();
    let v = json(
        &s.root,
        &["--namespace", "all", "df", "--disk", "--format", "json"],
    );
    let d = &v["disk"];
    let sum: u64 = d["categories"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| u(&c["bytes"]))
        .sum();
    assert_eq!(sum, u(&d["total_bytes"]));
    assert_eq!(u(&d["total_bytes"]), du(&s.root));
    let cat = |n: &str| {
        u(&d["categories"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == n)
            .unwrap()["bytes"])
    };
    assert!(cat("image-snapshots") > 0 && cat("blobs") > 0 && cat("metadata") > 0);
    assert!(cat("collectable") > 0, "the pair's dirs and the blob");
}

#[test]
fn the_root_is_only_read() {
    let s = scenario_or_skip!();
    let copy = copy_root(&s.root);
    let before = tree_hash(copy.path());
    for args in [
        vec!["--namespace", "all", "df"],
        vec!["--namespace", "all", "df", "--disk", "-v"],
        vec!["--namespace", "all", "verify", "--deep"],
        vec!["prune", "--dry-run"],
        vec!["prune", "--yes"],
    ] {
        let _ = run(copy.path(), &args);
        assert_eq!(
            tree_hash(copy.path()),
            before,
            "dockgc {args:?} changed the root"
        );
    }
    // No containerd was started on it: none has the root on its command line.
    let root = copy.path().to_string_lossy().to_string();
    for e in fs::read_dir("/proc").unwrap().flatten() {
        if let Ok(cmd) = fs::read(e.path().join("cmdline")) {
            let cmd = String::from_utf8_lossy(&cmd);
            assert!(!cmd.contains(&root), "a process runs on the root: {cmd}");
        }
    }
}

#[test]
fn a_clean_root_verifies_with_no_findings_quick_and_deep() {
    let s = scenario_or_skip!();
    for deep in [false, true] {
        let mut args = vec!["--namespace", "all", "verify", "--format", "json"];
        if deep {
            args.push("--deep");
        }
        let out = run(&s.root, &args);
        let v: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(v["findings"], serde_json::json!([]), "deep={deep}: {v:#}");
        assert_eq!(out.status.code(), Some(0));
        assert_eq!(v["store"], "containerd");
        if deep {
            assert!(u(&v["summary"]["bytes_hashed"]) > 1_000_000);
        }
    }
}

// ---------------------------------------------------------------------------
// Damage: each on its own copy; each fires exactly its check.

struct Root {
    dir: tempfile::TempDir,
}

impl Root {
    fn copy(s: &CtrdScenario) -> Root {
        Root {
            dir: copy_root(&s.root),
        }
    }
    fn p(&self) -> &Path {
        self.dir.path()
    }
    fn blob(&self, d: &str) -> PathBuf {
        self.p()
            .join("io.containerd.content.v1.content/blobs/sha256")
            .join(d.trim_start_matches("sha256:"))
    }
    fn meta(&self) -> PathBuf {
        self.p().join("io.containerd.metadata.v1.bolt/meta.db")
    }
    fn metastore(&self) -> PathBuf {
        self.p()
            .join("io.containerd.snapshotter.v1.overlayfs/metadata.db")
    }
    fn snapshots(&self) -> PathBuf {
        self.p()
            .join("io.containerd.snapshotter.v1.overlayfs/snapshots")
    }
    fn ingest(&self) -> PathBuf {
        self.p().join("io.containerd.content.v1.content/ingest")
    }
    /// (check IDs of the findings, exit status).
    fn verify(&self, deep: bool) -> (Vec<String>, Value, i32) {
        let mut args = vec!["--namespace", "all", "verify", "--format", "json"];
        if deep {
            args.push("--deep");
        }
        let out = run(self.p(), &args);
        let v: Value = serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stderr)));
        let ids = v["findings"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["check"].as_str().unwrap().to_string())
            .collect();
        (ids, v, out.status.code().unwrap_or(-1))
    }
}

fn ids(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

/// A manifest's config digest, read from the blob.
fn config_of(root: &Path, target: &str) -> String {
    let m: Value = serde_json::from_slice(
        &fs::read(
            root.join("io.containerd.content.v1.content/blobs/sha256")
                .join(target.trim_start_matches("sha256:")),
        )
        .unwrap(),
    )
    .unwrap();
    m["config"]["digest"].as_str().unwrap().to_string()
}

fn layers_of(root: &Path, target: &str) -> Vec<String> {
    let m: Value = serde_json::from_slice(
        &fs::read(
            root.join("io.containerd.content.v1.content/blobs/sha256")
                .join(target.trim_start_matches("sha256:")),
        )
        .unwrap(),
    )
    .unwrap();
    m["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["digest"].as_str().unwrap().to_string())
        .collect()
}

/// A snapshot's backend id in the metastore, by backend name prefix and key.
fn backend_of(root: &Root, ns: &str, key: &str) -> (String, String) {
    let db = bbolt::Db::open(root.meta()).unwrap();
    let name = db
        .bucket_path(["v1", ns, "snapshots", "overlayfs", key])
        .unwrap()
        .get("name")
        .unwrap()
        .to_vec();
    let name = String::from_utf8(name).unwrap();
    let ms = bbolt::Db::open(root.metastore()).unwrap();
    let id = ms
        .bucket_path(["v1", "snapshots", &name])
        .unwrap()
        .get("id")
        .unwrap()[0];
    (name, (id & 0x7f).to_string())
}

fn top_of(s: &CtrdScenario, name: &str) -> String {
    // app:1's top chain is ctr1's parent; app:2's is the rw mount's.
    match name {
        APP1 => s.judge["moby"].snapshots["ctr1"].0.clone(),
        APP2 => s.judge["moby"].snapshots[&s.rw_key].0.clone(),
        _ => unreachable!(),
    }
}

#[test]
fn every_check_fires_exactly_on_its_damage() {
    let s = scenario_or_skip!();
    let app1 = &s.targets[APP1];
    let app2 = &s.targets[APP2];

    // A byte appended to a config: its size (quick), and its digest (deep).
    let r = Root::copy(s);
    let cfg = config_of(r.p(), app1);
    let mut b = fs::read(r.blob(&cfg)).unwrap();
    b.push(b'\n');
    fs::write(r.blob(&cfg), &b).unwrap();
    let (got, v, code) = r.verify(false);
    assert_eq!(got, ids(&["blob-size-mismatch"]), "{v:#}");
    assert_eq!(code, 1);
    assert_eq!(v["findings"][0]["subject"]["id"], cfg);
    assert!(
        !v["findings"][0]["impact"]["images"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    let (got, _, _) = r.verify(true);
    assert_eq!(got, ids(&["blob-digest-mismatch", "blob-size-mismatch"]));

    // A byte flipped in a layer: the digest only, deep only.
    let r = Root::copy(s);
    let layer = layers_of(r.p(), app2).pop().unwrap();
    let mut b = fs::read(r.blob(&layer)).unwrap();
    let mid = b.len() / 2;
    b[mid] ^= 0xff;
    fs::write(r.blob(&layer), &b).unwrap();
    assert_eq!(r.verify(false).0, ids(&[]));
    let (got, v, code) = r.verify(true);
    assert_eq!(got, ids(&["blob-digest-mismatch"]), "{v:#}");
    assert_eq!(code, 1);

    // A config file removed.
    let r = Root::copy(s);
    fs::remove_file(r.blob(&config_of(r.p(), app2))).unwrap();
    let (got, v, code) = r.verify(false);
    assert_eq!(got, ids(&["blob-missing"]), "{v:#}");
    assert_eq!(code, 1);

    // A blob file no namespace records: a warning, exit 0.
    let r = Root::copy(s);
    let body = b"stray";
    fs::write(r.blob(&sha256_digest(body)), body).unwrap();
    let (got, v, code) = r.verify(false);
    assert_eq!(got, ids(&["blob-file-unrecorded"]), "{v:#}");
    assert_eq!(code, 0);

    // A snapshot dir removed: app:2's top layer.
    let r = Root::copy(s);
    let (_, id) = backend_of(&r, "moby", &top_of(s, APP2));
    fs::remove_dir_all(r.snapshots().join(&id)).unwrap();
    let (got, v, code) = r.verify(false);
    assert_eq!(got, ids(&["snapshot-dir-missing"]), "{v:#}");
    assert_eq!(code, 1);
    let f = &v["findings"][0];
    assert!(
        !f["impact"]["images"].as_array().unwrap().is_empty(),
        "{f:#}"
    );

    // Dirs added without a record, one of them an interrupted create.
    let r = Root::copy(s);
    fs::create_dir_all(r.snapshots().join("999/fs")).unwrap();
    fs::create_dir_all(r.snapshots().join("new-123456789/fs")).unwrap();
    let (got, v, code) = r.verify(false);
    assert_eq!(
        got,
        ids(&["snapshot-dir-unrecorded", "snapshot-dir-unrecorded"]),
        "{v:#}"
    );
    assert_eq!(code, 0);

    // An ingest dir without its ref: containerd never removes it.
    let r = Root::copy(s);
    let d = r.ingest().join("0".repeat(64));
    fs::create_dir_all(&d).unwrap();
    fs::write(d.join("data"), b"partial").unwrap();
    let (got, v, _) = r.verify(false);
    assert_eq!(got, ids(&["ingest-dir-without-ref"]), "{v:#}");

    // An ingest dir under the wrong name.
    let r = Root::copy(s);
    let e = fs::read_dir(r.ingest())
        .unwrap()
        .flatten()
        .next()
        .unwrap()
        .path();
    fs::rename(&e, r.ingest().join("f".repeat(64))).unwrap();
    let (got, v, _) = r.verify(false);
    assert_eq!(got, ids(&["ingest-ref-mismatch"]), "{v:#}");

    // A truncated meta.db: verify reports it, df refuses naming the file.
    let r = Root::copy(s);
    let len = fs::metadata(r.meta()).unwrap().len();
    fs::OpenOptions::new()
        .write(true)
        .open(r.meta())
        .unwrap()
        .set_len(len / 2)
        .unwrap();
    let (got, v, code) = r.verify(false);
    assert_eq!(got, ids(&["meta-db"]), "{v:#}");
    assert_eq!(code, 1);
    let out = run(r.p(), &["df"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("meta.db") && err.contains("page"), "{err}");

    // A truncated metastore.
    let r = Root::copy(s);
    let len = fs::metadata(r.metastore()).unwrap().len();
    fs::OpenOptions::new()
        .write(true)
        .open(r.metastore())
        .unwrap()
        .set_len(len / 3)
        .unwrap();
    let (got, v, _) = r.verify(false);
    assert_eq!(got, ids(&["metastore"]), "{v:#}");

    // Records changed through a rewritten meta.db or metastore.
    // app:1's config record gone from moby (k8s.io still records the file).
    let r = Root::copy(s);
    let cfg = config_of(r.p(), app1);
    rewrite_bolt(&r.meta(), |t| {
        tree_at(t, &["v1", "moby", "content", "blob"])
            .entries
            .remove(cfg.as_bytes());
    });
    let (got, v, code) = r.verify(false);
    assert_eq!(got, ids(&["image-closure"]), "{v:#}");
    assert_eq!(code, 1);

    // A wrong uncompressed label.
    let r = Root::copy(s);
    let layer = layers_of(r.p(), app1)[1].clone();
    rewrite_bolt(&r.meta(), |t| {
        tree_at(t, &["v1", "moby", "content", "blob", &layer, "labels"]).put(
            "containerd.io/uncompressed",
            format!("sha256:{}", "e".repeat(64)),
        );
    });
    let (got, v, _) = r.verify(false);
    assert_eq!(got, ids(&["uncompressed-label"]), "{v:#}");

    // app:2's top snapshot re-parented onto the base, in both databases.
    let r = Root::copy(s);
    let top2 = top_of(s, APP2);
    let base = s.judge["moby"].snapshots[&top_of(s, APP1)].0.clone();
    let (top2_name, _) = backend_of(&r, "moby", &top2);
    let (base_name, _) = backend_of(&r, "moby", &base);
    rewrite_bolt(&r.meta(), |t| {
        tree_at(t, &["v1", "moby", "snapshots", "overlayfs", &top2]).put("parent", base.as_str());
    });
    rewrite_bolt(&r.metastore(), |t| {
        tree_at(t, &["v1", "snapshots", &top2_name]).put("parent", base_name.as_str());
    });
    let (got, v, _) = r.verify(false);
    assert_eq!(got, ids(&["image-chain"]), "{v:#}");

    // Parents that disagree between meta.db and the metastore.
    let r = Root::copy(s);
    let (ctr1_name, _) = backend_of(&r, "moby", "ctr1");
    let (base_name, _) = backend_of(&r, "moby", &base);
    rewrite_bolt(&r.metastore(), |t| {
        tree_at(t, &["v1", "snapshots", &ctr1_name]).put("parent", base_name.as_str());
    });
    let (got, v, _) = r.verify(false);
    assert_eq!(got, ids(&["snapshot-backend"]), "{v:#}");

    // A parent that is not committed.
    let r = Root::copy(s);
    let (init_name, _) = backend_of(&r, "moby", "c0ffee-init");
    rewrite_bolt(&r.metastore(), |t| {
        tree_at(t, &["v1", "snapshots", &init_name]).put("kind", [2u8]);
    });
    let (got, v, _) = r.verify(false);
    assert_eq!(got, ids(&["snapshot-parent"]), "{v:#}");

    // A backend snapshot no record names.
    let r = Root::copy(s);
    rewrite_bolt(&r.meta(), |t| {
        tree_at(t, &["v1", "moby", "snapshots", "overlayfs"])
            .entries
            .remove(b"view1".as_slice());
    });
    let (got, v, code) = r.verify(false);
    assert_eq!(got, ids(&["backend-unreferenced"]), "{v:#}");
    assert_eq!(code, 0);

    // An ingest dir whose record is gone.
    let r = Root::copy(s);
    rewrite_bolt(&r.meta(), |t| {
        tree_at(t, &["v1", "moby", "content", "ingests"])
            .entries
            .remove(b"upload-leftover-1".as_slice());
    });
    let (got, v, _) = r.verify(false);
    assert_eq!(got, ids(&["ingest-dir-unrecorded"]), "{v:#}");
}

#[test]
fn prune_is_refused_with_the_commands_that_work_and_dry_run_lists() {
    let s = scenario_or_skip!();
    let out = run(&s.root, &["prune", "--yes"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    for want in [
        "docker image prune",
        "nerdctl image prune",
        "crictl rmi --prune",
        "content prune",
    ] {
        assert!(err.contains(want), "{want}: {err}");
    }
    let out = run(&s.root, &["prune", "--dry-run"]);
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("c0ffee") && text.contains(&s.unreferenced),
        "{text}"
    );
    let v = json(&s.root, &["prune", "--dry-run", "--format", "json"]);
    assert_eq!(v["store"], "containerd");
    assert!(!v["collectable"].as_array().unwrap().is_empty());
    for i in v["collectable"].as_array().unwrap() {
        assert!(!i["reason"].as_str().unwrap().is_empty());
    }
}

#[test]
fn namespaces_are_named_and_an_unknown_one_is_refused() {
    let s = scenario_or_skip!();
    let out = run(&s.root, &["--namespace", "nope", "df"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("default, k8s.io, moby"), "{err}");
    // k8s.io: the CRI triple is one image.
    let v = df(&s.root, "k8s.io");
    let app1 = v["images"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["names"].as_array().unwrap().iter().any(|n| n == APP1))
        .unwrap();
    assert_eq!(app1["names"].as_array().unwrap().len(), 3, "{app1:#}");
    assert!(
        app1["names"]
            .as_array()
            .unwrap()
            .iter()
            .any(|n| n == s.app1_config.as_str())
    );
    // all: every namespace, each blob file once.
    let all = df(&s.root, "all");
    assert_eq!(all["namespaces"], serde_json::json!(NAMESPACES));
    // Each blob file once on disk, though namespaces share the base's blobs.
    let dir = s.root.join("io.containerd.content.v1.content/blobs/sha256");
    let files: BTreeMap<String, u64> = fs::read_dir(&dir)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            (
                format!("sha256:{}", e.file_name().to_string_lossy()),
                e.metadata().unwrap().len(),
            )
        })
        .collect();
    let blobs: Vec<(String, u64)> = all["blobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| (b["digest"].as_str().unwrap().to_string(), u(&b["size"])))
        .collect();
    assert_eq!(blobs.len(), files.len(), "one row per blob file");
    assert_eq!(blobs.into_iter().collect::<BTreeMap<_, _>>(), files);
    assert_eq!(u(&all["content_total"]), files.values().sum::<u64>());
    let per_ns: u64 = NAMESPACES
        .iter()
        .map(|ns| u(&df(&s.root, ns)["content_total"]))
        .sum();
    assert!(
        per_ns > u(&all["content_total"]),
        "the scenario shares blobs"
    );
    // Each snapshot dir once.
    let dirs: Vec<(String, String)> = all["snapshots"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| {
            (
                x["snapshotter"].as_str().unwrap().to_string(),
                x["dir"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let distinct: BTreeSet<&(String, String)> = dirs.iter().collect();
    assert_eq!(distinct.len(), dirs.len(), "{dirs:?}");
}

/// A Docker 29 root in containerd mode around a copy of the scenario's
/// root (as `<root>/containerd/daemon`, dockerd's own containerd), with a
/// Docker container whose RW snapshot is ctr1 on app:1.
fn docker29_root(s: &CtrdScenario) -> tempfile::TempDir {
    let docker = tempfile::Builder::new()
        .prefix("dgc-d29")
        .tempdir_in("/tmp")
        .unwrap();
    let d = docker.path();
    fs::create_dir_all(d.join("image")).unwrap();
    fs::write(d.join("image/identity-cache.db"), b"").unwrap();
    fs::create_dir_all(d.join("rootfs/overlayfs")).unwrap();
    fs::create_dir_all(d.join("containerd")).unwrap();
    let out = std::process::Command::new("cp")
        .arg("-a")
        .arg(&s.root)
        .arg(d.join("containerd/daemon"))
        .output()
        .unwrap();
    assert!(out.status.success());
    // A Docker 29 container whose RW snapshot is ctr1 on app:1's manifest.
    let cdir = d.join("containers/ctr1");
    fs::create_dir_all(&cdir).unwrap();
    fs::write(
        cdir.join("config.v2.json"),
        serde_json::to_vec(&serde_json::json!({
            "ID": "ctr1", "Name": "/web", "Driver": "overlayfs",
            "Image": s.targets[APP1],
            "ImageManifest": {"mediaType": "application/vnd.docker.distribution.manifest.v2+json",
                "digest": s.targets[APP1], "size": 1},
            "Config": {"Image": "app:1"},
            "State": {"Running": false, "StartedAt": "2024-01-01T00:00:00Z"},
            "MountPoints": {
                "/data": {"Name": "vol1", "Driver": "local", "Type": "volume",
                    "Destination": "/data", "RW": true},
                "/host": {"Source": "/tmp", "Destination": "/host", "Type": "bind", "RW": true}
            }
        }))
        .unwrap(),
    )
    .unwrap();
    // Volumes as Engine 29 keeps them (as with a graphdriver): vol1 used
    // by the container, vol2 by nothing.
    for (name, len) in [("vol1", 10_000), ("vol2", 3_000)] {
        let data = d.join("volumes").join(name).join("_data");
        fs::create_dir_all(&data).unwrap();
        fs::write(data.join("f"), vec![7u8; len]).unwrap();
    }
    docker
}

#[test]
fn a_docker_root_in_containerd_mode_is_read_through_its_containerd() {
    let s = scenario_or_skip!();
    let docker = docker29_root(s);
    let d = docker.path();
    let out = dockgc()
        .arg("--root")
        .arg(d)
        .args(["df", "--format", "json"])
        .env_remove("DOCKGC_CONTAINERD_ROOT")
        .env_remove("DOCKGC_NAMESPACE")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["store"], "containerd");
    assert_eq!(v["namespace"], "moby");
    assert_eq!(
        v["root"].as_str().unwrap(),
        d.join("containerd/daemon").to_str().unwrap()
    );
    let c = &v["containers"][0];
    assert_eq!(c["names"][0], "web");
    assert_eq!(u(&c["size_rw"]), s.judge["moby"].usage["ctr1"].0);
    let app1 = v["images"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["names"].as_array().unwrap().iter().any(|n| n == APP1))
        .unwrap();
    assert_eq!(app1["containers"], 1);
    // Docker's volumes: `docker system df`'s Local Volumes row, sized by the
    // graphdriver path's rules (judged there by a real dockerd).
    let vols: BTreeMap<String, (u64, u64)> = v["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| {
            (
                x["name"].as_str().unwrap().to_string(),
                (u(&x["links"]), u(&x["size"])),
            )
        })
        .collect();
    assert_eq!(vols.keys().collect::<Vec<_>>(), ["vol1", "vol2"]);
    assert_eq!(vols["vol1"].0, 1, "the container's volume mount links it");
    assert_eq!(vols["vol2"].0, 0);
    assert!(
        vols["vol1"].1 >= 10_000 && vols["vol2"].1 >= 3_000,
        "{vols:?}"
    );
    let row = v["summary"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["type"] == "volumes")
        .expect("a Local Volumes row");
    assert_eq!((u(&row["total"]), u(&row["active"])), (2, 1));
    assert_eq!(u(&row["size"]), vols["vol1"].1 + vols["vol2"].1);
    assert_eq!(u(&row["reclaimable"]), vols["vol2"].1);
    let out = dockgc()
        .arg("--root")
        .arg(d)
        .args(["df", "-v"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("Local Volumes") && text.contains("vol2"),
        "{text}"
    );
    // Without a Docker root there is no volumes row.
    let bare = df(&s.root, "moby");
    assert!(
        bare["summary"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["type"] != "volumes")
    );
}

#[test]
fn metrics_carry_the_store_label() {
    let s = scenario_or_skip!();
    let out = run(&s.root, &["df", "--format", "prometheus"]);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains(r#"dockgc_objects{type="images",namespace="moby",store="containerd"}"#),
        "{text}"
    );
    assert!(text.contains("dockgc_collectable_bytes{"));
    if let Ok(p) = std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
    {
        use std::io::Write;
        let mut p = p;
        p.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
        let o = p.wait_with_output().unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
    let out = run(&s.root, &["verify", "--format", "prometheus"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains(r#"dockgc_verify_errors{store="containerd"} 0"#),
        "{text}"
    );
}

/// Keeps a copy of the scenario for inspection: `cargo test --test
/// containerd_daemon keep_scenario -- --ignored` (writes /tmp/dockgc-ctrd-scenario).
#[test]
#[ignore]
fn keep_scenario() {
    let s = scenario_or_skip!();
    let dst = Path::new("/tmp/dockgc-ctrd-scenario");
    let _ = fs::remove_dir_all(dst);
    let st = std::process::Command::new("cp")
        .arg("-a")
        .arg(&s.root)
        .arg(dst)
        .status()
        .unwrap();
    assert!(st.success());
}

#[test]
fn orphans_go_when_the_next_gc_dirties_their_store_as_containerd_does() {
    let s = scenario_or_skip!();
    let r = tempfile::Builder::new()
        .prefix("dgc-dmg")
        .tempdir_in("/tmp")
        .unwrap();
    let root = r.path().join("root");
    let st = std::process::Command::new("cp")
        .arg("-a")
        .arg(&s.root)
        .arg(&root)
        .status()
        .unwrap();
    assert!(st.success());
    let blobs = root.join("io.containerd.content.v1.content/blobs/sha256");
    let body = b"an orphan blob";
    fs::write(
        blobs.join(sha256_digest(body).trim_start_matches("sha256:")),
        body,
    )
    .unwrap();
    let snaps = root.join("io.containerd.snapshotter.v1.overlayfs/snapshots");
    fs::create_dir_all(snaps.join("999/fs")).unwrap();
    fs::create_dir_all(snaps.join("new-123456789/fs")).unwrap();
    let ing = root
        .join("io.containerd.content.v1.content/ingest")
        .join("0".repeat(64));
    fs::create_dir_all(&ing).unwrap();
    fs::write(ing.join("data"), b"x").unwrap();
    rewrite_bolt(&root.join("io.containerd.metadata.v1.bolt/meta.db"), |t| {
        tree_at(t, &["v1", "moby", "snapshots", "overlayfs"])
            .entries
            .remove(b"view1".as_slice());
    });
    let v = df(&root, "all");
    let (records, paths) = predicted(&v);
    let kinds: BTreeSet<&str> = v["orphans"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["kind"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        ["backend", "blob-file", "ingest-without-ref", "snapshot-dir"]
            .into_iter()
            .collect()
    );
    let mut before = s.judge.clone();
    before.get_mut("moby").unwrap().snapshots.remove("view1");
    let Some(removed) = gc_oracle(&root, &before) else {
        return;
    };
    assert_eq!(records, removed.records);
    assert_eq!(paths, removed.paths, "{:#}", v["orphans"]);
    assert!(
        !removed.paths.iter().any(|p| p.ends_with("0".repeat(64))),
        "an ingest dir without a ref stays"
    );
}

#[test]
fn versions_and_other_snapshotters_are_named() {
    let s = scenario_or_skip!();
    let v = df(&s.root, "moby");
    assert_eq!(v["containerd"]["schema"], 3);
    assert_eq!(v["containerd"]["version"], "1.x");

    // Schema 4 with a mount manager: 2.2+, whose GC matches gc.root by prefix.
    let r = Root::copy(s);
    rewrite_bolt(&r.meta(), |t| {
        tree_at(t, &["v1"]).put("version", [0x08u8]);
    });
    fs::create_dir_all(r.p().join("io.containerd.mount-manager.v1.bolt")).unwrap();
    fs::write(
        r.p().join("io.containerd.mount-manager.v1.bolt/mounts.db"),
        b"",
    )
    .unwrap();
    let v = df(r.p(), "moby");
    assert_eq!(v["containerd"]["schema"], 4);
    assert_eq!(v["containerd"]["version"], "2.2+");

    // An unknown schema is refused by name.
    let r = Root::copy(s);
    rewrite_bolt(&r.meta(), |t| {
        tree_at(t, &["v1"]).put("version", [0x0au8]);
    });
    let out = run(r.p(), &["df"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("version 5") && err.contains("meta.db"),
        "{err}"
    );

    // A snapshotter dockgc does not read, with records: named, not measured.
    let r = Root::copy(s);
    let dir = r.p().join("io.containerd.snapshotter.v1.btrfs");
    fs::create_dir_all(&dir).unwrap();
    let mut t = bbolt::build::Tree::new();
    t.bucket("v1")
        .bucket("snapshots")
        .bucket("moby/1/x")
        .put("id", [1u8]);
    fs::write(
        dir.join("metadata.db"),
        bbolt::build::image(&t, &Default::default()).unwrap(),
    )
    .unwrap();
    let v = df(r.p(), "moby");
    let named = v["anomalies"]
        .as_array()
        .unwrap()
        .iter()
        .any(|a| a["message"].as_str().unwrap().contains("\"btrfs\""));
    assert!(named, "{:#}", v["anomalies"]);
    let (got, _, code) = r.verify(false);
    assert_eq!(got, ids(&["unverifiable"]));
    assert_eq!(code, 0);
}

#[test]
fn a_native_snapshotter_root_is_sized_as_containerd_measures_it() {
    let Some(n) = native_scenario() else { return };
    let v = df(&n.root, "default");
    let mine: BTreeMap<String, (u64, u64)> = v["snapshots"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| {
            assert_eq!(x["snapshotter"], "native", "{x}");
            (
                x["key"].as_str().unwrap().to_string(),
                (u(&x["size"]), u(&x["inodes"])),
            )
        })
        .collect();
    assert_eq!(
        mine, n.judge.usage,
        "ctr snapshots --snapshotter native usage -b"
    );
    assert!(n.judge.usage.len() >= 4, "{:?}", n.judge.usage);
    let kinds: BTreeSet<String> = n
        .judge
        .snapshots
        .values()
        .map(|(_, k)| k.to_lowercase())
        .collect();
    assert!(
        kinds.contains("active") && kinds.contains("committed"),
        "{kinds:?}"
    );
    // Images unpacked in native carry their chains' usage, as on overlayfs.
    for img in v["images"].as_array().unwrap() {
        assert_eq!(img["unpacked"], true, "{img}");
        assert!(u(&img["size"]) > u(&img["blob_size"]), "{img}");
    }
    let names: BTreeSet<&str> = v["images"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|i| {
            i["names"]
                .as_array()
                .unwrap()
                .iter()
                .map(|n| n.as_str().unwrap())
        })
        .collect();
    assert_eq!(names, n.judge.images.keys().map(|k| k.as_str()).collect());
    for deep in [false, true] {
        let mut args = vec!["--namespace", "all", "verify", "--format", "json"];
        if deep {
            args.push("--deep");
        }
        let out = run(&n.root, &args);
        let r: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(r["findings"], serde_json::json!([]), "deep={deep}: {r:#}");
        assert_eq!(out.status.code(), Some(0));
    }
}

#[test]
fn prune_of_a_docker_root_in_containerd_mode_goes_through_a_live_daemon() {
    let s = scenario_or_skip!();
    let docker = docker29_root(s);
    let d = docker.path();
    let ctrd_root = d.join("containerd/daemon");
    let before = tree_hash(&ctrd_root);
    let prune = |extra: &[&str]| {
        dockgc()
            .arg("--root")
            .arg(d)
            .args(["prune", "--yes", "--format", "json"])
            .args(extra)
            .env_remove("DOCKER_HOST")
            .env_remove("DOCKGC_CONTAINERD_ROOT")
            .env_remove("DOCKGC_NAMESPACE")
            .output()
            .unwrap()
    };
    // No daemon: refused, naming what works.
    let out = prune(&[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("docker image prune"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // A live daemon named with --host: its Engine API prunes (here a private
    // dockerd with one dangling image; the routing is the point, so its own
    // store stands in for Docker 29's).
    let droot = tempfile::Builder::new()
        .prefix("dgc-d29live")
        .tempdir_in("/tmp")
        .unwrap();
    let Some(daemon) = Daemon::start(droot.path()) else {
        return;
    };
    let src = droot.path().join("src");
    fs::create_dir_all(&src).unwrap();
    fs::write(src.join("hello"), b"hello\n").unwrap();
    let tar = droot.path().join("hello.tar");
    let st = std::process::Command::new("tar")
        .arg("-C")
        .arg(&src)
        .arg("-cf")
        .arg(&tar)
        .arg(".")
        .status()
        .unwrap();
    assert!(st.success());
    let id = daemon.docker(&["import", tar.to_str().unwrap()]);
    let id = id.trim().to_string();
    let host = format!("unix://{}", daemon.sock.display());
    let out = prune(&["--host", &host]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["mode"], "live", "{v:#}");
    let left = daemon.docker(&["images", "-aq", "--no-trunc"]);
    assert!(!left.contains(&id), "{id} still listed: {left}");
    daemon.stop();
    assert_eq!(
        tree_hash(&ctrd_root),
        before,
        "the containerd root was written"
    );
}
