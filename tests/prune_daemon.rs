//! `dockgc prune`, `apply` and `trash` against copies of a data root written
//! by a real dockerd (see `support::scenario`), judged by a daemon started on
//! the result: it must list exactly the images the plan keeps, `docker save`
//! each of them (which rebuilds every layer through tar-split and checks its
//! diff ID), and start every container. Also: the same removals as
//! `docker image prune`, crash safety at every filesystem change, refusals
//! that leave the tree untouched, and a trash that restores byte for byte.
//!
//! Every test works on its own fresh copy of the scenario root; dockgc runs
//! only while no daemon runs on that copy. These tests skip (with a loud
//! SKIPPED message) when no daemon can be started, unless
//! `DOCKGC_REQUIRE_DOCKER` or `CI` is set.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::CString;
use std::fs;
use std::io::{BufRead, BufReader, Read};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use dockgc::ids::hex;
use serde_json::Value;
use sha2::{Digest, Sha256};
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
// Running dockgc

/// `dockgc --root ROOT ARGS...` with stdin closed (never a terminal) and no
/// fault injected unless `env` says so.
fn run_dockgc(root: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut c = dockgc();
    c.arg("--root")
        .arg(root)
        .args(args)
        .stdin(Stdio::null())
        .env_remove("DOCKGC_TEST_FAULT")
        .env_remove("DOCKGC_ROOT");
    for (k, v) in env {
        c.env(k, v);
    }
    c.output().expect("run dockgc")
}

/// `prune ARGS... --yes --format json`, which must exit 0; its report.
fn prune_ok(root: &Path, args: &[&str]) -> Value {
    let mut a = vec!["prune"];
    a.extend_from_slice(args);
    a.extend_from_slice(&["--yes", "--format", "json"]);
    let out = run_dockgc(root, &a, &[]);
    assert_no_panic(&out);
    assert_eq!(
        out.status.code(),
        Some(0),
        "dockgc {a:?} did not exit 0\n{}",
        describe(&out)
    );
    let v = parse_json(&out, "prune");
    assert_eq!(v["dry_run"], Value::Bool(false), "{v:#}");
    if !is_empty_plan(&v["plan"]) {
        let o = &v["outcome"];
        assert!(o.is_object(), "a real run reports an outcome: {v:#}");
        assert_eq!(
            o["failures"].as_array().map(Vec::len),
            Some(0),
            "failures in a complete run: {v:#}"
        );
        assert_eq!(
            o["removed"]["images"].as_u64(),
            Some(arr(&v["plan"], "images").len() as u64),
            "{v:#}"
        );
        assert_eq!(
            o["removed"]["layers"].as_u64(),
            Some(arr(&v["plan"], "layers").len() as u64),
            "{v:#}"
        );
        assert_eq!(
            o["removed"]["orphans"].as_u64(),
            Some(arr(&v["plan"], "orphans").len() as u64),
            "{v:#}"
        );
    }
    v
}

fn is_empty_plan(p: &Value) -> bool {
    ["references", "images", "layers", "mounts", "orphans"]
        .iter()
        .all(|k| arr(p, k).is_empty())
}

/// `plan.references[].reference`.
fn plan_refs(report: &Value) -> BTreeSet<String> {
    arr(&report["plan"], "references")
        .iter()
        .map(|r| r["reference"].as_str().expect("reference").to_string())
        .collect()
}

/// `dockgc verify --format json` (exit 0 or 1).
fn verify_json(root: &Path) -> Value {
    let out = run_dockgc(root, &["verify", "--format", "json"], &[]);
    assert_no_panic(&out);
    assert!(
        matches!(out.status.code(), Some(0 | 1)),
        "verify could not run\n{}",
        describe(&out)
    );
    parse_json(&out, "verify")
}

/// Verify reports zero errors and, when `no_leftovers`, none of the leftover
/// warnings a `--orphans` run removes.
fn assert_verifies(root: &Path, no_leftovers: bool, when: &str) {
    assert_verifies_but(root, no_leftovers, when, &[]);
}

/// As [`assert_verifies`], but errors about the subjects in `allow` (an
/// injected orphan mount, an error before dockgc ran) are accepted.
fn assert_verifies_but(root: &Path, no_leftovers: bool, when: &str, allow: &[&str]) {
    let v = verify_json(root);
    let findings = arr(&v, "findings");
    let errors: Vec<&Value> = findings
        .iter()
        .filter(|f| f["severity"] == "error")
        .filter(|f| !allow.contains(&f["subject"]["id"].as_str().unwrap_or("")))
        .collect();
    assert!(
        errors.is_empty(),
        "{when}: verify found errors:\n{}",
        serde_json::to_string_pretty(&errors).unwrap()
    );
    if allow.is_empty() {
        assert_eq!(v["summary"]["errors"].as_u64(), Some(0), "{when}: {v:#}");
    }
    if no_leftovers {
        let left: Vec<&Value> = findings
            .iter()
            .filter(|f| {
                matches!(
                    f["check"].as_str(),
                    Some("orphan-dir" | "write-set" | "removing" | "dangling-link")
                )
            })
            .collect();
        assert!(
            left.is_empty(),
            "{when}: leftovers remain after --orphans:\n{}",
            serde_json::to_string_pretty(&left).unwrap()
        );
    }
}

/// Image IDs `dockgc df` lists (the daemon's restore rules, offline).
fn df_images(root: &Path) -> BTreeSet<String> {
    df_state(root).into_keys().collect()
}

/// Image ID → its tags, as `dockgc df` lists them.
fn df_state(root: &Path) -> BTreeMap<String, Vec<String>> {
    let out = run_dockgc(root, &["df", "--format", "json"], &[]);
    assert_no_panic(&out);
    assert_eq!(out.status.code(), Some(0), "df\n{}", describe(&out));
    arr(&parse_json(&out, "df"), "images")
        .iter()
        .map(|i| {
            let mut tags: Vec<String> = i["repo_tags"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|t| t.as_str().unwrap().to_string())
                .collect();
            tags.sort();
            (i["id"].as_str().unwrap().to_string(), tags)
        })
        .collect()
}

// ---------------------------------------------------------------------------
// The daemon as judge

fn view(d: &Daemon) -> View {
    let images = d
        .docker(&["images", "-a", "--no-trunc", "-q"])
        .lines()
        .map(|l| l.trim().to_string())
        .filter(|l| !l.is_empty())
        .collect();
    let json = d.api("/images/json?all=1");
    View {
        images,
        tags: refs_of(&json, "RepoTags"),
        digests: refs_of(&json, "RepoDigests"),
    }
}

fn scenario_view(sc: &Scenario) -> View {
    View {
        images: sc.images_all.iter().cloned().collect(),
        tags: sc.tags.clone(),
        digests: refs_of(&sc.images_json_all, "RepoDigests"),
    }
}

/// Every container starts, or fails only at exec inside a rootfs that was
/// mounted (an image without the command: the scenario's `created` on a
/// loaded image without a shell); and `docker export`, which mounts every
/// layer of it, succeeds for each.
fn assert_containers_start(d: &Daemon, expect: &BTreeSet<String>, when: &str) {
    let listed: BTreeSet<String> = d
        .docker(&["ps", "-a", "--format", "{{.Names}}"])
        .lines()
        .map(|l| l.trim().to_string())
        .filter(|l| !l.is_empty())
        .collect();
    assert_eq!(&listed, expect, "{when}: docker ps -a");
    for name in expect {
        let out = d.docker_output(&["start", name]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success() || err.contains("executable file not found"),
            "{when}: docker start {name} failed: {err}"
        );
        let ex = d.docker_output(&["export", name]);
        assert!(
            ex.status.success() && !ex.stdout.is_empty(),
            "{when}: docker export {name} failed: {}",
            String::from_utf8_lossy(&ex.stderr)
        );
    }
}

// ---------------------------------------------------------------------------
// Names of the scenario's images

// ---------------------------------------------------------------------------
// Leftovers to inject

fn bytes(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u32).wrapping_mul(2654435761).to_le_bytes()[1] ^ seed)
        .collect()
}

fn set_times(p: &Path, secs: i64) {
    let c = CString::new(p.as_os_str().as_bytes()).unwrap();
    let ts = [
        libc::timespec {
            tv_sec: secs,
            tv_nsec: 0,
        },
        libc::timespec {
            tv_sec: secs,
            tv_nsec: 0,
        },
    ];
    let r = unsafe {
        libc::utimensat(
            libc::AT_FDCWD,
            c.as_ptr(),
            ts.as_ptr(),
            libc::AT_SYMLINK_NOFOLLOW,
        )
    };
    assert_eq!(r, 0, "utimensat {}", p.display());
}

/// A driver dir with `diff/`, `work/`, `link`, and its `l/` symlink.
fn driver_dir(home: &Path, name: &str, link: &str, seed: u8) {
    let d = home.join(name);
    fs::create_dir_all(d.join("diff/opt")).unwrap();
    fs::create_dir_all(d.join("work")).unwrap();
    fs::write(d.join("diff/opt/data.bin"), bytes(20_000, seed)).unwrap();
    fs::write(d.join("link"), link).unwrap();
    std::os::unix::fs::symlink(format!("../{name}/diff"), home.join("l").join(link)).unwrap();
}

/// Injects what crashes and partial operations leave: an overlay2 dir nothing
/// references (with its `l/` link), a stale `layerdb/tmp/write-set-*`, a
/// `-removing` layerdb entry whose driver dir is still there (a deletion
/// interrupted after its rename), and a dangling `l/` link. With `age`, their
/// times are set three days back so the default grace (1h) lets them go.
/// Returns (path relative to the root, plan orphan kind).
fn inject_leftovers(root: &Path, age: bool) -> Vec<(PathBuf, &'static str)> {
    let home = root.join("overlay2");
    let layerdb = root.join("image/overlay2/layerdb");
    let orphan = hex_of("dockgc-test orphan dir");
    driver_dir(&home, &orphan, "DGCORPHANLINK0000000000000", 1);

    let rm_cache = hex_of("dockgc-test removing cache");
    driver_dir(&home, &rm_cache, "DGCREMOVINGLINK00000000000", 2);
    let rm = layerdb.join("sha256").join(format!(
        "{}-{}-removing",
        hex_of("dockgc-test removing chain"),
        hex_of("random")
    ));
    fs::create_dir_all(&rm).unwrap();
    fs::write(
        rm.join("diff"),
        format!("sha256:{}", hex_of("dockgc-test removing diff")),
    )
    .unwrap();
    fs::write(rm.join("size"), "20000").unwrap();
    fs::write(rm.join("cache-id"), &rm_cache).unwrap();

    let ws = layerdb.join("tmp/write-set-918273645");
    fs::create_dir_all(&ws).unwrap();
    fs::write(ws.join("diff"), "partial").unwrap();

    let dangling = home.join("l/DGCDANGLINGLINK00000000000");
    std::os::unix::fs::symlink(format!("../{}/diff", hex_of("gone")), &dangling).unwrap();

    let out: Vec<(PathBuf, &'static str)> = vec![
        (home.join(&orphan), "driver-dir"),
        (rm, "pending-removal"),
        (ws, "write-set"),
        (dangling, "dangling-link"),
    ];
    if age {
        let t = now() - 3 * 86_400;
        for (p, _) in &out {
            set_times(p, t);
        }
    }
    out.into_iter()
        .map(|(p, k)| (p.strip_prefix(root).unwrap().to_path_buf(), k))
        .collect()
}

/// Removes `containers/<id>` of the scenario container `name` offline, so
/// its `layerdb/mounts/<id>` (and RW and init dirs) are owned by nothing;
/// with `age`, the mount entry's times go three days back. Returns the ID.
fn orphan_a_mount(root: &Path, sc: &Scenario, name: &str, age: bool) -> String {
    let id = sc.containers[name].clone();
    fs::remove_dir_all(root.join("containers").join(&id)).unwrap();
    let m = root.join("image/overlay2/layerdb/mounts").join(&id);
    assert!(m.is_dir(), "{} has no mount", name);
    if age {
        set_times(&m, now() - 3 * 86_400);
    }
    id
}

/// `layerdb/mounts/<id>`'s `mount-id` and `init-id` driver dirs.
fn mount_dirs(root: &Path, id: &str) -> Vec<PathBuf> {
    let m = root.join("image/overlay2/layerdb/mounts").join(id);
    ["mount-id", "init-id"]
        .iter()
        .filter_map(|f| fs::read_to_string(m.join(f)).ok())
        .map(|d| root.join("overlay2").join(d.trim()))
        .collect()
}

fn assert_orphans_planned(report: &Value, injected: &[(PathBuf, &str)]) {
    let planned: BTreeMap<String, String> = arr(&report["plan"], "orphans")
        .iter()
        .map(|o| {
            (
                o["path"].as_str().unwrap().to_string(),
                o["kind"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    for (p, kind) in injected {
        let p = p.to_str().unwrap();
        assert_eq!(
            planned.get(p).map(String::as_str),
            Some(*kind),
            "injected {p} ({kind}) is not planned as such: {planned:#?}"
        );
    }
}

// ---------------------------------------------------------------------------
// A tree manifest: tree_hash's fields per path, so a mismatch names the path

/// Per path: type, mode, owner, size, mtime, inode, link count, rdev, xattrs,
/// symlink target, content hash; ctime too when `ctime` (no atime ever).
fn manifest(root: &Path, ctime: bool) -> BTreeMap<PathBuf, String> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(p) = stack.pop() {
        let md = fs::symlink_metadata(&p).unwrap();
        let ft = md.file_type();
        let kind = support::file_kind(&ft);
        let mut s = format!(
            "{kind} mode={:o} uid={} gid={} size={} mtime={}.{} ino={} nlink={} rdev={}",
            md.mode(),
            md.uid(),
            md.gid(),
            md.size(),
            md.mtime(),
            md.mtime_nsec(),
            md.ino(),
            md.nlink(),
            md.rdev()
        );
        if ctime {
            s += &format!(" ctime={}.{}", md.ctime(), md.ctime_nsec());
        }
        for (k, v) in support::xattrs(&p) {
            s += &format!(" x:{}={}", String::from_utf8_lossy(&k), hex(&v));
        }
        if ft.is_symlink() {
            s += &format!(" -> {}", fs::read_link(&p).unwrap().display());
        } else if ft.is_file() {
            let mut h = Sha256::new();
            let mut f = fs::File::open(&p).unwrap();
            let mut buf = vec![0u8; 1 << 16];
            loop {
                let n = f.read(&mut buf).unwrap();
                if n == 0 {
                    break;
                }
                h.update(&buf[..n]);
            }
            s += &format!(" sha256={}", hex(&h.finalize()));
        } else if ft.is_dir() {
            for e in fs::read_dir(&p).unwrap() {
                stack.push(e.unwrap().path());
            }
        }
        out.insert(p.strip_prefix(root).unwrap().to_path_buf(), s);
    }
    out
}

/// The entries that differ between two manifests, for a readable failure.
fn manifest_diff(a: &BTreeMap<PathBuf, String>, b: &BTreeMap<PathBuf, String>) -> Vec<String> {
    let mut d = Vec::new();
    for (p, x) in a {
        match b.get(p) {
            None => d.push(format!("only before: {} {x}", p.display())),
            Some(y) if x != y => {
                d.push(format!("{}:\n    before {x}\n    after  {y}", p.display()))
            }
            _ => {}
        }
    }
    for (p, y) in b {
        if !a.contains_key(p) {
            d.push(format!("only after: {} {y}", p.display()));
        }
    }
    d
}

/// What dockgc may touch, hashed (the parts an idle daemon leaves alone).
fn store_hash(root: &Path) -> String {
    format!(
        "{} {} {} {}",
        tree_hash(&root.join("image")),
        tree_hash(&root.join("overlay2")),
        tree_hash(&root.join("containers")),
        root.join("dockgc-trash").exists()
    )
}

// ---------------------------------------------------------------------------
// 1. Each policy, judged by a daemon

struct Case<'a> {
    name: &'a str,
    args: Vec<String>,
    /// Changes made through a daemon on the copy before the prune.
    prep: Option<fn(&Daemon, &Names)>,
    /// Inject leftovers (aged), expect them planned and gone.
    leftovers: bool,
    /// Remove this container's directory offline first (aged): its mount
    /// is an orphan for `--orphans`.
    drop_container: Option<&'static str>,
    expect_removed: BTreeSet<String>,
}

fn policy_case(sc: &Scenario, c: Case) {
    let n = names(sc);
    let tmp = copy_root(&sc.root);
    let root = tmp.path();
    let before = match c.prep {
        Some(prep) => {
            let d = must_start(root, "prep");
            prep(&d, &n);
            let v = view(&d);
            d.stop();
            v
        }
        None => scenario_view(sc),
    };
    let injected = if c.leftovers {
        inject_leftovers(root, true)
    } else {
        Vec::new()
    };
    let mut containers: BTreeSet<String> = sc.containers.keys().cloned().collect();
    let dropped = c.drop_container.map(|name| {
        containers.remove(name);
        let id = orphan_a_mount(root, sc, name, true);
        let dirs = mount_dirs(root, &id);
        assert_eq!(dirs.len(), 2, "a mount has an RW and an init dir");
        (id, dirs)
    });
    let args: Vec<&str> = c.args.iter().map(String::as_str).collect();
    let report = prune_ok(root, &args);
    if let Some((id, dirs)) = &dropped {
        let planned: Vec<&str> = arr(&report["plan"], "mounts")
            .iter()
            .map(|m| m["name"].as_str().unwrap())
            .collect();
        assert_eq!(planned, vec![id.as_str()], "{}: plan.mounts", c.name);
        let m = root.join("image/overlay2/layerdb/mounts").join(id);
        for p in dirs.iter().chain([&m]) {
            assert!(!p.exists(), "{}: {} still there", c.name, p.display());
        }
    }
    let removed = plan_images(&report);
    assert_eq!(
        removed, c.expect_removed,
        "{}: plan.images is not the expected set\n{report:#}",
        c.name
    );
    if c.leftovers {
        assert_orphans_planned(&report, &injected);
        for (p, _) in &injected {
            assert!(
                fs::symlink_metadata(root.join(p)).is_err(),
                "{}: {} still there",
                c.name,
                p.display()
            );
        }
    }
    let refs = plan_refs(&report);
    let expected = View {
        images: before.images.difference(&removed).cloned().collect(),
        tags: before
            .tags
            .iter()
            .filter(|(t, _)| !refs.contains(*t))
            .map(|(t, i)| (t.clone(), i.clone()))
            .collect(),
        digests: before
            .digests
            .iter()
            .filter(|(t, _)| !refs.contains(*t))
            .map(|(t, i)| (t.clone(), i.clone()))
            .collect(),
    };
    // Every removed image's tags went with it.
    for (t, i) in &expected.tags {
        assert!(
            !removed.contains(i),
            "{}: tag {t} left on removed {i}",
            c.name
        );
    }
    assert_eq!(df_images(root), expected.images, "{}: dockgc df", c.name);

    let when = format!("after prune {:?}", c.args);
    let d = must_start(root, &when);
    let got = view(&d);
    assert_eq!(got.images, expected.images, "{when}: docker images -a");
    assert_eq!(got.tags, expected.tags, "{when}: tags");
    assert_eq!(got.digests, expected.digests, "{when}: digests");
    assert_saves(&d, &expected.images, &when);
    assert_containers_start(&d, &containers, &when);
    d.stop();
    assert_verifies(root, c.leftovers, &when);
}

#[test]
fn prune_default_removes_dangling_images() {
    let sc = scenario_or_skip!();
    let n = names(sc);
    policy_case(
        sc,
        Case {
            name: "default",
            args: vec![],
            prep: None,
            leftovers: false,
            drop_container: None,
            expect_removed: set(&[&n.dang_old, &n.l2018]),
        },
    );
}

#[test]
fn prune_all_removes_every_unused_image() {
    let sc = scenario_or_skip!();
    let n = names(sc);
    let mut expect = set(&[&n.dang_old, &n.l2018, &n.l2019, &n.dang1]);
    expect.extend(n.solo.iter().cloned());
    policy_case(
        sc,
        Case {
            name: "-a",
            args: strings(&["-a"]),
            prep: None,
            leftovers: false,
            drop_container: None,
            expect_removed: expect,
        },
    );
}

#[test]
fn prune_until_keeps_newer_images() {
    let sc = scenario_or_skip!();
    let n = names(sc);
    policy_case(
        sc,
        Case {
            name: "until (dangling)",
            args: strings(&["--filter", UNTIL]),
            prep: None,
            leftovers: false,
            drop_container: None,
            expect_removed: set(&[&n.l2018]),
        },
    );
    policy_case(
        sc,
        Case {
            name: "-a until",
            args: strings(&["-a", "--filter", UNTIL]),
            prep: None,
            leftovers: false,
            drop_container: None,
            expect_removed: set(&[&n.l2018, &n.l2019]),
        },
    );
}

#[test]
fn prune_label_filters() {
    let sc = scenario_or_skip!();
    let n = names(sc);
    policy_case(
        sc,
        Case {
            name: "-a label=",
            args: strings(&["-a", "--filter", "label=org.example.vintage"]),
            prep: None,
            leftovers: false,
            drop_container: None,
            expect_removed: set(&[&n.l2019]),
        },
    );
    let mut expect = set(&[&n.dang_old, &n.l2018, &n.dang1]);
    expect.extend(n.solo.iter().cloned());
    policy_case(
        sc,
        Case {
            name: "-a label!=",
            args: strings(&["-a", "--filter", "label!=org.example.vintage=2019"]),
            prep: None,
            leftovers: false,
            drop_container: None,
            expect_removed: expect,
        },
    );
}

#[test]
fn prune_keep_patterns_protect_images() {
    let sc = scenario_or_skip!();
    let n = names(sc);
    let mut expect = set(&[&n.l2018, &n.dang1]);
    expect.extend(n.solo.iter().cloned());
    let prefix = n.dang_old.trim_start_matches("sha256:")[..12].to_string();
    policy_case(
        sc,
        Case {
            name: "--keep",
            args: vec![
                "-a".into(),
                "--keep".into(),
                "loaded:*".into(),
                "--keep".into(),
                prefix,
            ],
            prep: None,
            leftovers: false,
            drop_container: None,
            expect_removed: expect,
        },
    );
}

#[test]
fn prune_keep_of_an_untagged_parent_keeps_its_ancestors() {
    // solo:1 goes; its build parent is kept by ID prefix, and with it the
    // grandparent (never remove a parent of an image that stays).
    let sc = scenario_or_skip!();
    let n = names(sc);
    let solo = &sc.tags["solo:1"];
    let parent = sc
        .images_json_all
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["Id"] == solo.as_str())
        .unwrap()["ParentId"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(n.solo.contains(&parent));
    let prefix = parent.trim_start_matches("sha256:")[..16].to_string();
    policy_case(
        sc,
        Case {
            name: "--keep <untagged parent>",
            args: vec!["-a".into(), "--keep".into(), prefix],
            prep: None,
            leftovers: false,
            drop_container: None,
            expect_removed: set(&[&n.dang_old, &n.l2018, &n.l2019, &n.dang1, solo]),
        },
    );
}

#[test]
fn prune_keep_last_keeps_the_newest_tag_per_repository() {
    let sc = scenario_or_skip!();
    let n = names(sc);
    // Repository `loaded` gets three images: 2018 (tagged here), 2019, 2020;
    // 2019 keeps only that tag.
    fn prep(d: &Daemon, n: &Names) {
        d.docker(&["tag", &n.l2018, "loaded:2018"]);
        d.docker(&["rmi", "vintage/app:old"]);
    }
    policy_case(
        sc,
        Case {
            name: "--keep-last 1",
            args: strings(&["-a", "--keep-last", "1"]),
            prep: Some(prep),
            leftovers: false,
            drop_container: None,
            expect_removed: set(&[&n.dang_old, &n.l2018, &n.l2019]),
        },
    );
}

#[test]
fn prune_orphans_removes_leftovers_past_the_grace_period() {
    let sc = scenario_or_skip!();
    let n = names(sc);
    policy_case(
        sc,
        Case {
            name: "--orphans",
            args: strings(&["--orphans"]),
            prep: None,
            leftovers: true,
            drop_container: Some("failed"),
            expect_removed: set(&[&n.dang_old, &n.l2018]),
        },
    );
}

#[test]
fn prune_all_orphans_untags_a_parent_no_container_uses() {
    // Without `failed`, nothing uses base:1: -a takes its tag, and the image
    // stays for the images built on it.
    let sc = scenario_or_skip!();
    let n = names(sc);
    let mut expect = set(&[&n.dang_old, &n.l2018, &n.l2019, &n.dang1]);
    expect.extend(n.solo.iter().cloned());
    policy_case(
        sc,
        Case {
            name: "-a --orphans",
            args: strings(&["-a", "--orphans"]),
            prep: None,
            leftovers: true,
            drop_container: Some("failed"),
            expect_removed: expect,
        },
    );
}

#[test]
fn prune_older_than_by_created() {
    let sc = scenario_or_skip!();
    let n = names(sc);
    policy_case(
        sc,
        Case {
            name: "-a --older-than 365d",
            args: strings(&["-a", "--older-than", "365d"]),
            prep: None,
            leftovers: false,
            drop_container: None,
            expect_removed: set(&[&n.l2018, &n.l2019]),
        },
    );
}

#[test]
fn prune_orphans_grace_spares_fresh_leftovers() {
    let sc = scenario_or_skip!();
    let tmp = copy_root(&sc.root);
    let root = tmp.path();
    let injected = inject_leftovers(root, false);
    let out = run_dockgc(
        root,
        &["prune", "--orphans", "--dry-run", "--format", "json"],
        &[],
    );
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    let v = parse_json(&out, "prune --dry-run");
    let planned: BTreeSet<&str> = arr(&v["plan"], "orphans")
        .iter()
        .map(|o| o["path"].as_str().unwrap())
        .collect();
    for (p, _) in &injected {
        assert!(
            !planned.contains(p.to_str().unwrap()),
            "{} is minutes old but planned under the 1h grace: {v:#}",
            p.display()
        );
    }
}

// ---------------------------------------------------------------------------
// 2. The same removals as `docker image prune`

fn equivalence(sc: &Scenario, filters: &[&str], all: bool) {
    equivalence_after(sc, filters, all, None, None);
}

/// `offline` changes both copies first, then `prep` runs through a daemon
/// on both.
fn equivalence_after(
    sc: &Scenario,
    filters: &[&str],
    all: bool,
    offline: Option<fn(&Path, &Scenario)>,
    prep: Option<fn(&Daemon)>,
) -> (View, View) {
    let what = format!("all={all} filters={filters:?}");
    // A: Docker's own prune.
    let a = copy_root(&sc.root);
    if let Some(o) = offline {
        o(a.path(), sc);
    }
    let d = must_start(a.path(), "docker prune");
    if let Some(p) = prep {
        p(&d);
    }
    let before = view(&d);
    let mut args = vec!["image", "prune", "-f"];
    if all {
        args.push("-a");
    }
    for f in filters {
        args.extend_from_slice(&["--filter", f]);
    }
    d.docker(&args);
    let docker_after = view(&d);
    d.stop();
    let docker_removed: BTreeSet<String> = before
        .images
        .difference(&docker_after.images)
        .cloned()
        .collect();

    // B: dockgc with the same policy.
    let b = copy_root(&sc.root);
    if let Some(o) = offline {
        o(b.path(), sc);
    }
    if let Some(p) = prep {
        let d = must_start(b.path(), "prep");
        p(&d);
        d.stop();
    }
    let mut args = Vec::new();
    if all {
        args.push("-a");
    }
    for f in filters {
        args.extend_from_slice(&["--filter", f]);
    }
    let report = prune_ok(b.path(), &args);
    let removed = plan_images(&report);
    assert_eq!(
        removed, docker_removed,
        "{what}: dockgc removes other images than docker image prune\n{report:#}"
    );
    let d = must_start(b.path(), &what);
    let after = view(&d);
    d.stop();
    assert_eq!(after.images, docker_after.images, "{what}: images -a");
    assert_eq!(after.digests, docker_after.digests, "{what}: digests");
    // Tags: equal, but for one known difference. Docker's prune untags an
    // image a container uses as long as it is not down to a "single
    // reference" (`isSingleReference` in image_delete.go), so such an image
    // keeps one tag of several; dockgc leaves images containers use alone.
    let used: BTreeSet<&str> = sc
        .containers_json
        .as_array()
        .expect("containers json")
        .iter()
        .filter_map(|c| c["ImageID"].as_str())
        .collect();
    let all_tags: BTreeSet<&String> = after.tags.keys().chain(docker_after.tags.keys()).collect();
    let mut mismatches = Vec::new();
    let mut quirk = Vec::new();
    for t in all_tags {
        let (ours, docker) = (after.tags.get(t), docker_after.tags.get(t));
        if ours == docker {
            continue;
        }
        match (ours, docker) {
            (Some(i), None)
                if used.contains(i.as_str()) && docker_after.tags.values().any(|x| x == i) =>
            {
                quirk.push(t.clone())
            }
            _ => mismatches.push(format!("{t}: dockgc {ours:?}, docker {docker:?}")),
        }
    }
    assert!(
        mismatches.is_empty(),
        "{what}: remaining tags differ:\n  {}\ndockgc: {:#?}\ndocker: {:#?}",
        mismatches.join("\n  "),
        after.tags,
        docker_after.tags
    );
    if !quirk.is_empty() {
        note(format!(
            "{what}: docker untagged {quirk:?} of images containers use; dockgc kept them"
        ));
    }
    (before, docker_after)
}

#[test]
fn equivalent_to_docker_prune_default() {
    let sc = scenario_or_skip!();
    equivalence(sc, &[], false);
}

#[test]
fn equivalent_to_docker_prune_all() {
    let sc = scenario_or_skip!();
    equivalence(sc, &[], true);
}

#[test]
fn equivalent_to_docker_prune_all_untagging_a_parent() {
    // With `failed` gone nothing uses base:1: Docker's -a untags it and
    // keeps the image for its children.
    let sc = scenario_or_skip!();
    equivalence_after(
        sc,
        &[],
        true,
        None,
        Some(|d| {
            d.docker(&["rm", "failed"]);
        }),
    );
}

#[test]
fn equivalent_to_docker_prune_all_removing_a_tagged_parent() {
    // With every container gone, Docker's -a removes everything: a tagged
    // image with children (base:1, app:1) is untagged first and then goes
    // with its last child (PruneChildren), whichever order prune takes.
    let sc = scenario_or_skip!();
    let (_, after) = equivalence_after(
        sc,
        &[],
        true,
        None,
        Some(|d| {
            d.docker(&["rm", "-f", "running", "exited", "failed", "created"]);
        }),
    );
    assert!(after.images.is_empty(), "{after:#?}");
}

/// Adds digest references offline (as a pull would): `loaded@` to the
/// untagged 2018 image (now digest-only), `base@` to base:1, and `solo@`
/// to solo:1.
fn add_digest_refs(root: &Path, sc: &Scenario) {
    let n = names(sc);
    let p = root.join("image/overlay2/repositories.json");
    let mut v: Value = serde_json::from_slice(&fs::read(&p).unwrap()).unwrap();
    let repos = v["Repositories"].as_object_mut().unwrap();
    for (repo, id) in [
        ("loaded", &n.l2018),
        ("base", &sc.tags["base:1"]),
        ("solo", &sc.tags["solo:1"]),
    ] {
        let r = format!("{repo}@sha256:{}", hex_of(&format!("manifest of {repo}")));
        repos
            .entry(repo)
            .or_insert_with(|| Value::Object(Default::default()))
            .as_object_mut()
            .unwrap()
            .insert(r, Value::String(id.clone()));
    }
    fs::write(&p, serde_json::to_vec(&v).unwrap()).unwrap();
}

#[test]
fn equivalent_to_docker_prune_with_digest_references() {
    let sc = scenario_or_skip!();
    let n = names(sc);
    let (before, after) = equivalence_after(sc, &[], false, Some(add_digest_refs), None);
    assert_eq!(before.digests.len(), 3, "{before:#?}");
    assert!(
        before.images.contains(&n.l2018) && !after.images.contains(&n.l2018),
        "the digest-only image is dangling"
    );
    assert_eq!(after.digests.len(), 2, "{after:#?}");
    let (_, after) = equivalence_after(
        sc,
        &[],
        true,
        Some(add_digest_refs),
        Some(|d| {
            d.docker(&["rm", "failed"]);
        }),
    );
    assert!(after.digests.is_empty(), "{after:#?}");
    assert!(after.images.contains(&sc.tags["base:1"]));
    assert!(!after.tags.contains_key("base:1"));
}

#[test]
fn equivalent_to_docker_prune_until() {
    let sc = scenario_or_skip!();
    equivalence(sc, &[UNTIL], false);
    equivalence(sc, &[UNTIL], true);
}

#[test]
fn equivalent_to_docker_prune_label() {
    let sc = scenario_or_skip!();
    equivalence(sc, &["label=org.example.vintage"], true);
    equivalence(sc, &["label=org.example.untagged=yes"], false);
    equivalence(sc, &["label!=org.example.vintage=2019"], true);
    equivalence(
        sc,
        &["label=org.example.vintage", "label!=org.example.team=qa"],
        true,
    );
}

// ---------------------------------------------------------------------------
// 3. Crash safety

const CRASH_POLICY: &[&str] = &["-a", "--orphans", "--grace", "0s"];

fn crash_args() -> Vec<&'static str> {
    let mut a = vec!["prune"];
    a.extend_from_slice(CRASH_POLICY);
    a.extend_from_slice(&["--yes", "--format", "json"]);
    a
}

/// A fresh copy with leftovers and an orphan mount (of `failed`, which
/// leaves base:1 to be untagged), ready for the crash policy.
fn crash_copy(sc: &Scenario) -> tempfile::TempDir {
    let tmp = copy_root(&sc.root);
    inject_leftovers(tmp.path(), false);
    orphan_a_mount(tmp.path(), sc, "failed", false);
    tmp
}

/// What the full run leaves: its report, the images it keeps, and `df`'s
/// image → tags afterwards.
struct Full {
    steps: u64,
    kept: BTreeSet<String>,
    state: BTreeMap<String, Vec<String>>,
}

fn full_run(sc: &Scenario, extra: &[&str]) -> Full {
    let tmp = crash_copy(sc);
    let mut args = CRASH_POLICY.to_vec();
    args.extend_from_slice(extra);
    let report = prune_ok(tmp.path(), &args);
    let removed = plan_images(&report);
    let kept: BTreeSet<String> = sc
        .images_all
        .iter()
        .filter(|i| !removed.contains(*i))
        .cloned()
        .collect();
    let state = df_state(tmp.path());
    assert_eq!(
        state.keys().cloned().collect::<BTreeSet<_>>(),
        kept,
        "full run: df"
    );
    assert!(
        state[&sc.tags["base:1"]].is_empty(),
        "base:1 is untagged by the full run: {state:#?}"
    );
    assert_eq!(arr(&report["plan"], "mounts").len(), 1, "{report:#}");
    assert_verifies(tmp.path(), true, "full run");
    let steps = report["outcome"]["steps"].as_u64().expect("outcome.steps");
    assert!(steps > 10, "a real plan makes many changes: {report:#}");
    Full { steps, kept, state }
}

/// Every N up to 60 steps; past that, 1..=20, then every k-th, and the last.
fn fault_points(steps: u64) -> Vec<u64> {
    if steps <= 60 {
        (1..=steps).collect()
    } else {
        let k = (steps - 20).div_ceil(40);
        (1..=20)
            .chain((21..steps).step_by(k as usize))
            .chain([steps])
            .collect()
    }
}

/// After an interruption: rerun (exit 0), verify (zero errors, no leftovers),
/// and the same images and tags as the full run.
fn finish_and_check(root: &Path, full: &Full, when: &str) {
    let out = run_dockgc(root, &crash_args(), &[]);
    assert_no_panic(&out);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{when}: rerun did not complete\n{}",
        describe(&out)
    );
    assert_verifies(root, true, &format!("{when}, after the rerun"));
    assert_eq!(
        df_state(root),
        full.state,
        "{when}, after the rerun: images and tags differ from the full run's"
    );
}

fn abort_at(root: &Path, n: u64, extra: &[&str], when: &str) {
    let mut args = crash_args();
    args.extend_from_slice(extra);
    let fault = format!("{n}:abort");
    let out = run_dockgc(root, &args, &[("DOCKGC_TEST_FAULT", &fault)]);
    assert_eq!(
        out.status.signal(),
        Some(libc::SIGABRT),
        "{when}: expected the process to die by SIGABRT\n{}",
        describe(&out)
    );
}

fn note(msg: String) {
    let _ = std::io::Write::write_all(&mut std::io::stderr(), (msg + "\n").as_bytes());
}

#[test]
fn crash_at_every_step_leaves_a_store_the_daemon_loads() {
    let sc = scenario_or_skip!();
    let full = full_run(sc, &[]);
    let steps = full.steps;
    let ns = fault_points(steps);
    for &n in &ns {
        let when = format!("abort at step {n} of {steps}");
        // (a) the daemon comes up on what the crash left, then dockgc finishes.
        let tmp = crash_copy(sc);
        let root = tmp.path();
        abort_at(root, n, &[], &when);
        // What a crash leaves must already be a consistent store.
        let allow = [sc.containers["failed"].as_str()];
        assert_verifies_but(root, false, &format!("{when}, right after"), &allow);
        let d = must_start(root, &when);
        let listed = view(&d).images;
        let missing: Vec<&String> = full.kept.difference(&listed).collect();
        assert!(
            missing.is_empty(),
            "{when}: the daemon lost images the full run keeps: {missing:?}"
        );
        assert_saves(&d, &full.kept, &when);
        d.stop();
        finish_and_check(root, &full, &when);

        // (b) dockgc finishes its own leftovers, no daemon in between (the
        // daemon's shutdown Cleanup would finish `-removing` entries itself).
        let tmp = crash_copy(sc);
        let root = tmp.path();
        abort_at(root, n, &[], &when);
        finish_and_check(root, &full, &format!("{when}, rerun at once"));
    }
    note(format!(
        "crash safety: aborted at {} of {steps} steps ({ns:?})",
        ns.len()
    ));
}

#[test]
fn crash_with_trash_then_restore_gives_the_store_back() {
    let sc = scenario_or_skip!();
    let full = full_run(sc, &["--trash"]);
    let steps = full.steps;
    let ns = fault_points(steps);
    for &n in &ns {
        let when = format!("--trash, abort at step {n} of {steps}");
        let tmp = crash_copy(sc);
        let root = tmp.path();
        let before = manifest(root, false);
        abort_at(root, n, &["--trash"], &when);
        let allow = [sc.containers["failed"].as_str()];
        assert_verifies_but(root, false, &format!("{when}, right after"), &allow);
        let list = trash_list(root);
        assert_eq!(list.len(), 1, "{when}: {list:#?}");
        let id = list[0]["id"].as_str().unwrap().to_string();
        let out = run_dockgc(root, &["trash", "restore", &id], &[]);
        assert_no_panic(&out);
        assert_eq!(out.status.code(), Some(0), "{when}: {}", describe(&out));
        let diff = manifest_diff(&before, &manifest(root, false));
        assert!(
            diff.is_empty(),
            "{when}: restore is not exact: {} difference(s):\n{}",
            diff.len(),
            diff.join("\n")
        );
    }
    note(format!(
        "crash safety with --trash: aborted and restored at {} of {steps} steps",
        ns.len()
    ));
}

#[test]
fn injected_failures_exit_1_and_a_rerun_completes() {
    let sc = scenario_or_skip!();
    let full = full_run(sc, &[]);
    let steps = full.steps;
    let mut ns: BTreeSet<u64> = [1, 2, 3, steps / 2, steps - 1, steps].into();
    ns.retain(|n| (1..=steps).contains(n));
    for n in ns {
        let when = format!("failure at step {n} of {steps}");
        let tmp = crash_copy(sc);
        let root = tmp.path();
        let fault = n.to_string();
        let out = run_dockgc(root, &crash_args(), &[("DOCKGC_TEST_FAULT", &fault)]);
        assert_no_panic(&out);
        assert_eq!(out.status.code(), Some(1), "{when}\n{}", describe(&out));
        let v = parse_json(&out, &when);
        let failures = arr(&v["outcome"], "failures");
        assert!(
            failures
                .iter()
                .any(|f| f["error"].as_str().unwrap_or("").contains("injected fault")),
            "{when}: the failure is not listed: {v:#}"
        );
        let allow = [sc.containers["failed"].as_str()];
        assert_verifies_but(root, false, &when, &allow);
        let d = must_start(root, &when);
        assert_saves(&d, &full.kept, &when);
        d.stop();
        finish_and_check(root, &full, &when);
    }
}

// ---------------------------------------------------------------------------
// 4. Refusals change nothing

/// `--offline` keeps the daemon-stopped-only behaviour (without it a live
/// daemon is pruned through its API: `tests/live_daemon.rs`).
#[test]
fn offline_refuses_while_a_daemon_runs_on_the_root() {
    let sc = scenario_or_skip!();
    let tmp = copy_root(&sc.root);
    let root = tmp.path();
    let d = must_start(root, "live daemon");
    let h = store_hash(root);
    let out = run_dockgc(root, &["prune", "-a", "--yes", "--offline"], &[]);
    assert_no_panic(&out);
    assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
    assert!(stderr(&out).contains("dockerd"), "{}", describe(&out));
    assert_eq!(store_hash(root), h, "a refused prune changed the store");
    // A dry run still plans, warns, and changes nothing.
    let out = run_dockgc(root, &["prune", "-a", "--dry-run", "--offline"], &[]);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    assert!(stderr(&out).contains("warning"), "{}", describe(&out));
    assert_eq!(store_hash(root), h, "a dry run changed the store");
    // `apply` is guarded the same way.
    let out = run_dockgc(
        root,
        &["apply", "/nonexistent/plan.json", "--yes", "--offline"],
        &[],
    );
    assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
    assert!(stderr(&out).contains("dockerd"), "{}", describe(&out));
    for args in [
        &["trash", "empty"][..],
        &["trash", "restore", "20200101T000000Z-1"],
    ] {
        let out = run_dockgc(root, args, &[]);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", describe(&out));
        assert!(stderr(&out).contains("dockerd"), "{}", describe(&out));
    }
    assert_eq!(store_hash(root), h);
    d.stop();
}

#[test]
fn refuses_while_the_root_lock_is_held() {
    let sc = scenario_or_skip!();
    let tmp = copy_root(&sc.root);
    let root = tmp.path();
    let h = tree_hash(root);
    let mut child = match Command::new("flock")
        .arg("-x")
        .arg(root)
        .args(["sh", "-c", "echo locked; exec cat"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
    {
        Ok(c) => c,
        Err(e) => {
            eprintln!("SKIPPED refuses_while_the_root_lock_is_held: no flock(1): {e}");
            return;
        }
    };
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(line.trim(), "locked");
    let out = run_dockgc(root, &["prune", "-a", "--orphans", "--yes"], &[]);
    drop(child.stdin.take());
    let _ = child.wait();
    assert_no_panic(&out);
    assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
    assert!(stderr(&out).contains("lock"), "{}", describe(&out));
    assert_eq!(tree_hash(root), h, "a refused prune changed the tree");
}

#[test]
fn apply_refuses_a_stale_plan() {
    let sc = scenario_or_skip!();
    let n = names(sc);
    let work = tempfile::tempdir().unwrap();

    // Control: an unchanged store takes the saved plan, even after a daemon
    // came and went.
    let tmp = copy_root(&sc.root);
    let root = tmp.path();
    let plan = work.path().join("control.json");
    let out = run_dockgc(
        root,
        &[
            "prune",
            "-a",
            "--dry-run",
            "--plan-out",
            plan.to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    must_start(root, "control").stop();
    let out = run_dockgc(
        root,
        &["apply", plan.to_str().unwrap(), "--yes", "--format", "json"],
        &[],
    );
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    let v = parse_json(&out, "apply");
    let mut expect = set(&[&n.dang_old, &n.l2018, &n.l2019, &n.dang1]);
    expect.extend(n.solo.iter().cloned());
    assert_eq!(plan_images(&v), expect);

    // Changes made through a daemon after the plan was saved.
    type Change = fn(&Daemon, &Names);
    let changes: [(&str, Change, &str); 2] = [
        (
            "tag",
            |d, n| {
                d.docker(&["tag", n.solo.iter().next().unwrap(), "late:1"]);
            },
            "references changed",
        ),
        (
            "container",
            |d, n| {
                d.docker(&[
                    "create",
                    "--network",
                    "none",
                    "--name",
                    "late",
                    &n.dang1,
                    "sh",
                ]);
            },
            "used by a container",
        ),
    ];
    for (what, change, why) in changes {
        let tmp = copy_root(&sc.root);
        let root = tmp.path();
        let plan = work.path().join(format!("{what}.json"));
        let out = run_dockgc(
            root,
            &[
                "prune",
                "-a",
                "--dry-run",
                "--plan-out",
                plan.to_str().unwrap(),
            ],
            &[],
        );
        assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
        let d = must_start(root, what);
        change(&d, &n);
        d.stop();
        let h = tree_hash(root);
        let out = run_dockgc(root, &["apply", plan.to_str().unwrap(), "--yes"], &[]);
        assert_no_panic(&out);
        assert_eq!(out.status.code(), Some(2), "{what}: {}", describe(&out));
        let err = stderr(&out);
        assert!(
            err.contains("changed") && err.contains(why),
            "{what}: {}",
            describe(&out)
        );
        assert_eq!(
            tree_hash(root),
            h,
            "{what}: a refused apply changed the tree"
        );
    }

    // An orphan touched after the plan: stale too.
    let tmp = copy_root(&sc.root);
    let root = tmp.path();
    let injected = inject_leftovers(root, true);
    let plan = work.path().join("orphan.json");
    let out = run_dockgc(
        root,
        &[
            "prune",
            "--orphans",
            "--dry-run",
            "--plan-out",
            plan.to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    set_times(&root.join(&injected[0].0), now());
    let h = tree_hash(root);
    let out = run_dockgc(root, &["apply", plan.to_str().unwrap(), "--yes"], &[]);
    assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
    assert!(stderr(&out).contains("changed"), "{}", describe(&out));
    assert_eq!(tree_hash(root), h);
}

#[test]
fn no_confirmation_and_dry_run_change_nothing() {
    let sc = scenario_or_skip!();
    let tmp = copy_root(&sc.root);
    let root = tmp.path();
    inject_leftovers(root, false);
    let h = tree_hash(root);

    // Not a terminal, no --yes.
    let out = run_dockgc(root, &["prune", "-a", "--orphans", "--grace", "0s"], &[]);
    assert_no_panic(&out);
    assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
    assert!(stderr(&out).contains("--yes"), "{}", describe(&out));
    assert_eq!(
        tree_hash(root),
        h,
        "prune without confirmation changed the tree"
    );

    // --dry-run, in both formats, with a plan file outside the root.
    let work = tempfile::tempdir().unwrap();
    let plan = work.path().join("plan.json");
    for format in ["table", "json"] {
        let out = run_dockgc(
            root,
            &[
                "prune",
                "-a",
                "--orphans",
                "--grace",
                "0s",
                "--dry-run",
                "--plan-out",
                plan.to_str().unwrap(),
                "--format",
                format,
            ],
            &[],
        );
        assert_no_panic(&out);
        assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
        assert_eq!(tree_hash(root), h, "--dry-run ({format}) changed the tree");
    }
    let v = parse_json(
        &run_dockgc(
            root,
            &[
                "prune",
                "-a",
                "--orphans",
                "--grace",
                "0s",
                "-n",
                "--format",
                "json",
            ],
            &[],
        ),
        "dry run",
    );
    assert_eq!(v["dry_run"], Value::Bool(true));
    assert!(v["outcome"].is_null(), "{v:#}");
    assert!(!plan_images(&v).is_empty());

    // `apply` without --yes.
    let out = run_dockgc(root, &["apply", plan.to_str().unwrap()], &[]);
    assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
    assert_eq!(
        tree_hash(root),
        h,
        "apply without confirmation changed the tree"
    );
}

// ---------------------------------------------------------------------------
// 5. Trash

fn trash_list(root: &Path) -> Vec<Value> {
    let out = run_dockgc(root, &["trash", "list", "--format", "json"], &[]);
    assert_no_panic(&out);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    parse_json(&out, "trash list")
        .as_array()
        .expect("trash list is an array")
        .clone()
}

#[test]
fn trash_restores_the_store_exactly() {
    let sc = scenario_or_skip!();
    let tmp = copy_root(&sc.root);
    let root = tmp.path();
    inject_leftovers(root, false);
    let before = manifest(root, false);
    let before_ctime = tree_hash(root);

    let mut args = CRASH_POLICY.to_vec();
    args.push("--trash");
    let report = prune_ok(root, &args);
    let id = report["outcome"]["trash_id"]
        .as_str()
        .unwrap_or_else(|| panic!("no trash_id: {report:#}"))
        .to_string();
    let removed = plan_images(&report);
    assert!(!removed.is_empty());
    let kept: BTreeSet<String> = sc
        .images_all
        .iter()
        .filter(|i| !removed.contains(*i))
        .cloned()
        .collect();
    assert_eq!(df_images(root), kept, "while in the trash: df");
    assert_verifies(root, true, "while in the trash");

    let list = trash_list(root);
    assert_eq!(list.len(), 1, "{list:#?}");
    assert_eq!(list[0]["id"].as_str(), Some(id.as_str()));
    assert!(list[0]["items"].as_u64().unwrap_or(0) > 0, "{list:#?}");

    let out = run_dockgc(root, &["trash", "restore", &id], &[]);
    assert_no_panic(&out);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    let after = manifest(root, false);
    let diff = manifest_diff(&before, &after);
    assert!(
        diff.is_empty(),
        "trash restore is not byte-identical (ctime aside): {} difference(s):\n{}",
        diff.len(),
        diff.join("\n")
    );
    if tree_hash(root) != before_ctime {
        // Renames update ctime and nothing can set it back: expected.
        note("trash: restored tree equal except ctimes (as expected)".into());
    }
    assert!(trash_list(root).is_empty());

    let d = must_start(root, "after restore");
    let v = view(&d);
    assert_eq!(v, scenario_view(sc), "after restore: the daemon's images");
    assert_saves(&d, &v.images, "after restore");
    d.stop();

    // Into the trash again; the daemon ignores the trash; `empty` deletes it.
    let report = prune_ok(root, &args);
    assert!(report["outcome"]["trash_id"].is_string());
    let d = must_start(root, "with a full trash");
    let v = view(&d);
    assert_eq!(v.images, kept, "with a full trash: images -a");
    assert_saves(&d, &kept, "with a full trash");
    d.stop();
    let out = run_dockgc(root, &["trash", "empty", "--older-than", "1h"], &[]);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    assert_eq!(
        trash_list(root).len(),
        1,
        "--older-than 1h keeps a new entry"
    );
    let out = run_dockgc(root, &["trash", "empty"], &[]);
    assert_no_panic(&out);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    assert!(trash_list(root).is_empty());
    assert!(!root.join("dockgc-trash").exists(), "trash dir left behind");
    assert_verifies(root, true, "after trash empty");
    let d = must_start(root, "after trash empty");
    assert_eq!(view(&d).images, kept);
    d.stop();
}

#[test]
fn trash_restore_after_the_daemon_ran_gives_the_images_back() {
    // Prune into the trash, run the daemon on the pruned store, stop it,
    // change your mind: restore brings every image back, usable.
    let sc = scenario_or_skip!();
    let tmp = copy_root(&sc.root);
    let root = tmp.path();
    let report = prune_ok(root, &["-a", "--trash"]);
    let id = report["outcome"]["trash_id"].as_str().unwrap().to_string();
    let removed = plan_images(&report);
    let d = must_start(root, "pruned into the trash");
    let v = view(&d);
    assert!(v.images.is_disjoint(&removed), "{v:#?}");
    d.stop();
    let out = run_dockgc(root, &["trash", "restore", &id], &[]);
    assert_no_panic(&out);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    assert_verifies(root, false, "restored after the daemon ran");
    let d = must_start(root, "restored after the daemon ran");
    let v = view(&d);
    assert_eq!(v, scenario_view(sc), "restored after the daemon ran");
    assert_saves(&d, &v.images, "restored after the daemon ran");
    assert_containers_start(
        &d,
        &sc.containers.keys().cloned().collect(),
        "restored after the daemon ran",
    );
    d.stop();
}
