//! Integration tests of `dockgc verify` against a data root written by a real
//! Docker daemon (`support::scenario_exotic`: the shared scenario plus two
//! loaded images over layers full of tar edge cases). Every check id of the
//! contract is triggered by one injected damage on a fresh copy of the root,
//! and `verify --deep` is cross-checked against the daemon's own `docker save`,
//! which rebuilds every layer through tar-split and checks its diff ID.
//!
//! Skips (loudly) without a usable dockerd unless `DOCKGC_REQUIRE_DOCKER` or
//! `CI` is set.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsStr;
use std::fs;
use std::io::{Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use support::*;

macro_rules! scenario_or_skip {
    () => {
        match scenario_exotic() {
            Some(s) => s,
            None => return,
        }
    };
}

const ERROR_CHECKS: &[&str] = &[
    "config-digest",
    "config-parse",
    "image-parent",
    "refs",
    "layer-chain",
    "layer-files",
    "chain-id",
    "driver-dir",
    "mounts",
    "container-image",
    "layer-content",
    "tar-split",
];
const WARNING_CHECKS: &[&str] = &[
    "image-removed",
    "buildkit-record",
    "buildkit-snapshot",
    "orphan-dir",
    "orphan-mount",
    "unknown-dir",
    "unreferenced-layer",
    "removing",
    "write-set",
    "dangling-link",
    "size-mismatch",
    "unverifiable",
];
const DEEP_CHECKS: &[&str] = &["layer-content", "tar-split", "unverifiable"];
const SUBJECT_KINDS: &[&str] = &["image", "layer", "container", "mount", "reference", "path"];

// ---------------------------------------------------------------------------
// Running dockgc

/// Runs dockgc with a time limit (a verifier that opens a fifo or loops must
/// fail the test, not hang it).
fn run_dockgc(root: &Path, args: &[&str]) -> Output {
    let mut child = dockgc()
        .arg("--root")
        .arg(root)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn dockgc");
    let mut so = child.stdout.take().unwrap();
    let mut se = child.stderr.take().unwrap();
    let t_out = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = so.read_to_end(&mut v);
        v
    });
    let t_err = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = se.read_to_end(&mut v);
        v
    });
    let deadline = Instant::now() + Duration::from_secs(300);
    let status = loop {
        if let Some(st) = child.try_wait().expect("wait dockgc") {
            break st;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("dockgc {args:?} on {} ran over 300 s", root.display());
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Output {
        status,
        stdout: t_out.join().unwrap(),
        stderr: t_err.join().unwrap(),
    }
}

fn describe(out: &Output) -> String {
    format!(
        "status: {}\nstderr:\n{}\nstdout (first 6000 bytes):\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr[..out.stderr.len().min(4000)]),
        String::from_utf8_lossy(&out.stdout[..out.stdout.len().min(6000)])
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

/// One `verify --format json` run, parsed and checked against the contract's
/// shape and internal consistency.
struct Run {
    args: Vec<String>,
    out: Output,
    json: Value,
}

impl Run {
    fn code(&self) -> Option<i32> {
        self.out.status.code()
    }
    fn findings(&self) -> &Vec<Value> {
        self.json["findings"].as_array().unwrap()
    }
    fn of(&self, check: &str) -> Vec<&Value> {
        self.findings()
            .iter()
            .filter(|f| f["check"] == check)
            .collect()
    }
    fn error_checks(&self) -> BTreeSet<String> {
        self.findings()
            .iter()
            .filter(|f| f["severity"] == "error")
            .map(|f| f["check"].as_str().unwrap().to_string())
            .collect()
    }
    fn sum(&self, key: &str) -> u64 {
        self.json["summary"][key]
            .as_u64()
            .unwrap_or_else(|| panic!("summary.{key} is not a u64"))
    }
    /// The whole output, for assertion messages.
    fn show(&self) -> String {
        format!(
            "dockgc {:?}\n{}\n--- JSON ---\n{:#}",
            self.args,
            describe_status(&self.out),
            self.json
        )
    }
}

fn describe_status(out: &Output) -> String {
    format!(
        "status: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr[..out.stderr.len().min(4000)])
    )
}

fn is_hex64(s: &str) -> bool {
    s.len() == 64
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// `dockgc --root ROOT verify --format json ARGS...`; exit 0 or 1, valid JSON
/// that follows the contract (shapes, severities, counts, exit status).
fn verify(root: &Path, args: &[&str]) -> Run {
    let mut a = vec!["verify", "--format", "json"];
    a.extend_from_slice(args);
    let out = run_dockgc(root, &a);
    assert_no_panic(&out);
    assert!(
        matches!(out.status.code(), Some(0) | Some(1)),
        "dockgc {a:?} could not run\n{}",
        describe(&out)
    );
    let json: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("dockgc {a:?} printed invalid JSON: {e}\n{}", describe(&out)));
    let run = Run {
        args: a.iter().map(|s| s.to_string()).collect(),
        out,
        json,
    };
    let bad = contract_violations(&run, args);
    assert!(
        bad.is_empty(),
        "output breaks the verify contract:\n  {}\n{}",
        bad.join("\n  "),
        run.show()
    );
    run
}

fn contract_violations(run: &Run, args: &[&str]) -> Vec<String> {
    let j = &run.json;
    let deep = args.contains(&"--deep");
    let sizes = args.contains(&"--sizes");
    let strict = args.contains(&"--strict");
    let mut bad = Vec::new();
    if !j["root"].is_string() {
        bad.push("`root` is not a string".into());
    }
    if j["deep"].as_bool() != Some(deep) {
        bad.push(format!("`deep` is {} with deep={deep}", j["deep"]));
    }
    let Some(findings) = j["findings"].as_array() else {
        bad.push("`findings` is not an array".into());
        return bad;
    };
    let (mut errors, mut warnings) = (0u64, 0u64);
    let mut by_check: BTreeMap<String, u64> = BTreeMap::new();
    for f in findings {
        let check = f["check"].as_str().unwrap_or("");
        let sev = f["severity"].as_str().unwrap_or("");
        let want = if ERROR_CHECKS.contains(&check) {
            "error"
        } else if WARNING_CHECKS.contains(&check) {
            "warning"
        } else {
            bad.push(format!("unknown check id {check:?}: {f}"));
            ""
        };
        if !want.is_empty() && sev != want {
            bad.push(format!(
                "{check} has severity {sev:?}, contract says {want}: {f}"
            ));
        }
        match sev {
            "error" => errors += 1,
            "warning" => warnings += 1,
            _ => {}
        }
        *by_check.entry(check.to_string()).or_default() += 1;
        if !deep && DEEP_CHECKS.contains(&check) {
            bad.push(format!("{check} without --deep: {f}"));
        }
        if !sizes && check == "size-mismatch" {
            bad.push(format!("size-mismatch without --sizes: {f}"));
        }
        let kind = f["subject"]["kind"].as_str().unwrap_or("");
        if !SUBJECT_KINDS.contains(&kind) {
            bad.push(format!("bad subject.kind {kind:?}: {f}"));
        }
        if f["subject"]["id"].as_str().is_none_or(str::is_empty) {
            bad.push(format!("subject.id missing or empty: {f}"));
        }
        if !f["path"].is_string() {
            bad.push(format!("`path` is not a string: {f}"));
        }
        if f["message"].as_str().is_none_or(str::is_empty) {
            bad.push(format!("`message` missing or empty: {f}"));
        }
        let imgs = f["impact"]["images"].as_array();
        let ctrs = f["impact"]["containers"].as_array();
        match (imgs, ctrs) {
            (Some(i), Some(c)) => {
                for x in i {
                    let ok = x
                        .as_str()
                        .and_then(|s| s.strip_prefix("sha256:"))
                        .is_some_and(is_hex64);
                    if !ok {
                        bad.push(format!("impact.images entry {x} is not sha256:<64 hex>"));
                    }
                }
                for x in c {
                    if !x.as_str().is_some_and(is_hex64) {
                        bad.push(format!("impact.containers entry {x} is not 64 hex"));
                    }
                }
            }
            _ => bad.push(format!("impact.images/containers not arrays: {f}")),
        }
    }
    let s = &j["summary"];
    for k in [
        "errors",
        "warnings",
        "images_checked",
        "layers_checked",
        "bytes_hashed",
        "files_checked",
        "unverifiable",
    ] {
        if s[k].as_u64().is_none() {
            bad.push(format!("summary.{k} is not a non-negative integer"));
        }
    }
    if s["errors"].as_u64() != Some(errors) {
        bad.push(format!(
            "summary.errors {} but {errors} error findings",
            s["errors"]
        ));
    }
    if s["warnings"].as_u64() != Some(warnings) {
        bad.push(format!(
            "summary.warnings {} but {warnings} warning findings",
            s["warnings"]
        ));
    }
    let got: Option<BTreeMap<String, u64>> = s["by_check"].as_object().map(|m| {
        m.iter()
            .filter(|(_, v)| v.as_u64() != Some(0))
            .map(|(k, v)| (k.clone(), v.as_u64().unwrap_or(u64::MAX)))
            .collect()
    });
    if got.as_ref() != Some(&by_check) {
        bad.push(format!(
            "summary.by_check {} does not count the findings {by_check:?}",
            s["by_check"]
        ));
    }
    let unverifiable = by_check.get("unverifiable").copied().unwrap_or(0);
    if unverifiable > 0 && s["unverifiable"].as_u64() == Some(0) {
        bad.push("unverifiable findings but summary.unverifiable is 0".into());
    }
    let want_code = if errors > 0 || (strict && warnings > 0) {
        1
    } else {
        0
    };
    if run.code() != Some(want_code) {
        bad.push(format!(
            "exit status {:?}, want {want_code} ({errors} errors, {warnings} warnings, strict={strict})",
            run.code()
        ));
    }
    bad
}

// ---------------------------------------------------------------------------
// The store, read independently

fn store(root: &Path) -> PathBuf {
    root.join("image/overlay2")
}

fn hexid(id: &str) -> &str {
    id.strip_prefix("sha256:").unwrap_or(id)
}

fn same_id(a: &str, b: &str) -> bool {
    hexid(a) == hexid(b)
}

fn config_path(root: &Path, id: &str) -> PathBuf {
    store(root).join("imagedb/content/sha256").join(hexid(id))
}

/// Chain IDs of an image's layers, bottom first (§3.1).
fn chains_of(root: &Path, id: &str) -> Vec<String> {
    let cfg: Value = serde_json::from_slice(&fs::read(config_path(root, id)).unwrap()).unwrap();
    let mut chains: Vec<String> = Vec::new();
    for d in cfg["rootfs"]["diff_ids"].as_array().unwrap() {
        let d = d.as_str().unwrap();
        let c = match chains.last() {
            None => d.to_string(),
            Some(p) => sha256_digest(format!("{p} {d}").as_bytes()),
        };
        chains.push(c);
    }
    chains
}

fn image(sc: &Scenario, tag: &str) -> String {
    sc.tags
        .get(tag)
        .unwrap_or_else(|| panic!("no tag {tag} in {:?}", sc.tags))
        .clone()
}

/// The untagged image loaded from the save archive (config label
/// `org.example.untagged`): no tag, no parent, no children, no container, and
/// its only layer is shared with `loaded:2019`.
fn untagged_loaded(sc: &Scenario) -> String {
    sc.images_all
        .iter()
        .find(|id| {
            let cfg: Value =
                serde_json::from_slice(&fs::read(config_path(&sc.root, id)).unwrap()).unwrap();
            cfg["config"]["Labels"]["org.example.untagged"] == "yes"
        })
        .expect("the untagged loaded image")
        .clone()
}

/// A layerdb entry and its overlay2 directory.
struct Layer {
    chain: String,
    db: PathBuf,
    cache_id: String,
    dir: PathBuf,
    link: String,
}

impl Layer {
    fn diff(&self) -> PathBuf {
        self.dir.join("diff")
    }
}

fn layer(root: &Path, chain: &str) -> Layer {
    let db = store(root).join("layerdb/sha256").join(hexid(chain));
    let cache_id = fs::read_to_string(db.join("cache-id"))
        .unwrap()
        .trim()
        .to_string();
    let dir = root.join("overlay2").join(&cache_id);
    let link = fs::read_to_string(dir.join("link"))
        .unwrap()
        .trim()
        .to_string();
    Layer {
        chain: chain.to_string(),
        db,
        cache_id,
        dir,
        link,
    }
}

/// The layer of `id`'s chain whose own `diff/` holds `file`.
fn layer_with(root: &Path, id: &str, file: &str) -> Layer {
    chains_of(root, id)
        .iter()
        .map(|c| layer(root, c))
        .find(|l| fs::symlink_metadata(l.diff().join(file)).is_ok())
        .unwrap_or_else(|| panic!("no layer of {id} holds {file}"))
}

fn top_layer(root: &Path, id: &str) -> Layer {
    layer(root, chains_of(root, id).last().unwrap())
}

/// Every image (of the daemon's list) whose chain holds `chain`, and every
/// container on those images.
fn expected_impact(sc: &Scenario, chain: &str) -> (BTreeSet<String>, BTreeSet<String>) {
    let images: BTreeSet<String> = sc
        .images_all
        .iter()
        .filter(|id| chains_of(&sc.root, id).iter().any(|c| c == chain))
        .cloned()
        .collect();
    let containers = containers_on(sc, &images);
    (images, containers)
}

fn containers_on(sc: &Scenario, images: &BTreeSet<String>) -> BTreeSet<String> {
    sc.containers_json
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| images.contains(c["ImageID"].as_str().unwrap()))
        .map(|c| c["Id"].as_str().unwrap().to_string())
        .collect()
}

fn strings(v: &Value) -> BTreeSet<String> {
    v.as_array()
        .into_iter()
        .flatten()
        .filter_map(|x| x.as_str().map(String::from))
        .collect()
}

fn assert_impact(run: &Run, f: &Value, want: &(BTreeSet<String>, BTreeSet<String>)) {
    let images = strings(&f["impact"]["images"]);
    let containers = strings(&f["impact"]["containers"]);
    assert!(
        images == want.0 && containers == want.1,
        "impact of {f}\n want images {:#?}\n want containers {:#?}\n{}",
        want.0,
        want.1,
        run.show()
    );
}

// ---------------------------------------------------------------------------
// Damage and expectations

/// A fresh copy of the scenario root, damaged by `f`.
fn damaged(sc: &Scenario, f: impl FnOnce(&Path)) -> tempfile::TempDir {
    let copy = copy_root(&sc.root);
    f(copy.path());
    copy
}

type Key = (String, String, String, String);

fn key(f: &Value) -> Key {
    (
        f["check"].as_str().unwrap_or("").into(),
        f["subject"]["kind"].as_str().unwrap_or("").into(),
        hexid(f["subject"]["id"].as_str().unwrap_or("")).into(),
        f["path"].as_str().unwrap_or("").into(),
    )
}

/// Warnings of `run` that the clean run (same arguments, undamaged root) lacks.
/// Paths differ between roots, so they are compared relative to the root.
fn new_warnings<'a>(clean: &Run, run: &'a Run, clean_root: &Path, root: &Path) -> Vec<&'a Value> {
    let rel = |k: Key, r: &Path| -> Key {
        let p = k.3.strip_prefix(r.to_str().unwrap()).unwrap_or(&k.3);
        (k.0, k.1, k.2, p.to_string())
    };
    let old: BTreeSet<Key> = clean
        .findings()
        .iter()
        .filter(|f| f["severity"] == "warning")
        .map(|f| rel(key(f), clean_root))
        .collect();
    run.findings()
        .iter()
        .filter(|f| f["severity"] == "warning" && !old.contains(&rel(key(f), root)))
        .collect()
}

struct Expect<'a> {
    check: &'a str,
    kinds: &'a [&'a str],
    /// Subject id (image/layer IDs with or without `sha256:`); `None`: any.
    id: Option<&'a str>,
    /// Other warnings the damage may legitimately cause.
    also_warn: &'a [&'a str],
    /// Other error checks the damage may legitimately cause, on the same subject.
    also_err: &'a [&'a str],
}

/// Runs `verify ARGS` on the clean scenario root and on `root`, and asserts
/// that the damage shows as exactly `e.check` (the only error check, or for a
/// warning, the only new warning and no errors), on the expected subject, with
/// the contract's exit status; for warnings also that `--strict` exits 1.
/// Returns the damaged run and the index of the findings of `e.check` on the
/// expected subject.
fn expect_only(sc: &Scenario, root: &Path, args: &[&str], e: &Expect) -> (Run, Vec<usize>) {
    let clean = verify(&sc.root, args);
    assert!(
        clean.error_checks().is_empty(),
        "clean root has errors\n{}",
        clean.show()
    );
    let run = verify(root, args);
    let is_error = ERROR_CHECKS.contains(&e.check);
    let errs: BTreeSet<String> = run
        .findings()
        .iter()
        .filter(|f| {
            f["severity"] == "error"
                && !(e.also_err.contains(&f["check"].as_str().unwrap())
                    && e.id
                        .is_some_and(|id| same_id(f["subject"]["id"].as_str().unwrap(), id)))
        })
        .map(|f| f["check"].as_str().unwrap().to_string())
        .collect();
    let want_errs: BTreeSet<String> = if is_error {
        [e.check.to_string()].into()
    } else {
        BTreeSet::new()
    };
    assert_eq!(
        errs,
        want_errs,
        "error checks differ from the injected damage ({})\n{}",
        e.check,
        run.show()
    );
    let fresh: Vec<&Value> = new_warnings(&clean, &run, &sc.root, root)
        .into_iter()
        .filter(|f| f["check"] != e.check && !e.also_warn.contains(&f["check"].as_str().unwrap()))
        .collect();
    assert!(
        fresh.is_empty(),
        "unexpected new warnings for damage {}: {fresh:#?}\n{}",
        e.check,
        run.show()
    );
    assert_eq!(
        run.code(),
        Some(if is_error { 1 } else { 0 }),
        "exit status\n{}",
        run.show()
    );
    let hits: Vec<usize> = run
        .findings()
        .iter()
        .enumerate()
        .filter(|(_, f)| {
            f["check"] == e.check
                && e.kinds
                    .contains(&f["subject"]["kind"].as_str().unwrap_or(""))
                && e.id
                    .is_none_or(|id| same_id(f["subject"]["id"].as_str().unwrap_or(""), id))
        })
        .map(|(i, _)| i)
        .collect();
    assert!(
        !hits.is_empty(),
        "no {} finding on subject {:?} {:?}\n{}",
        e.check,
        e.kinds,
        e.id,
        run.show()
    );
    let mut table = vec!["verify"];
    table.extend_from_slice(args);
    let t = run_dockgc(root, &table);
    assert_no_panic(&t);
    assert_eq!(
        t.status.code(),
        run.code(),
        "table format exits otherwise than JSON\n{}",
        describe(&t)
    );
    assert!(!t.stdout.is_empty(), "table output is empty");
    if !is_error {
        let mut strict = args.to_vec();
        strict.push("--strict");
        let s = verify(root, &strict);
        assert_eq!(
            s.code(),
            Some(1),
            "a warning with --strict must exit 1\n{}",
            s.show()
        );
    }
    (run, hits)
}

fn expect_layer(sc: &Scenario, root: &Path, args: &[&str], check: &str, chain: &str) -> Run {
    expect_layer_also(sc, root, args, check, chain, &[], &[])
}

/// `expect_only` for a damaged layer, plus the impact of every finding on it.
fn expect_layer_also(
    sc: &Scenario,
    root: &Path,
    args: &[&str],
    check: &str,
    chain: &str,
    also_warn: &[&str],
    also_err: &[&str],
) -> Run {
    let (run, hits) = expect_only(
        sc,
        root,
        args,
        &Expect {
            check,
            kinds: &["layer"],
            id: Some(chain),
            also_warn,
            also_err,
        },
    );
    let want = expected_impact(sc, chain);
    assert!(!want.0.is_empty(), "test bug: no image uses {chain}");
    for i in hits {
        assert_impact(&run, &run.findings()[i], &want);
    }
    run
}

fn write_file(p: &Path, data: impl AsRef<[u8]>) {
    if let Some(d) = p.parent() {
        fs::create_dir_all(d).unwrap();
    }
    fs::write(p, data).unwrap_or_else(|e| panic!("write {}: {e}", p.display()));
}

fn missing_digest(what: &str) -> String {
    sha256_digest(format!("dockgc test: no such {what}").as_bytes())
}

/// Writes an image config named by its own sha256; returns its ID.
fn add_config(root: &Path, bytes: &[u8]) -> String {
    let id = sha256_digest(bytes);
    write_file(&config_path(root, &id), bytes);
    id
}

fn flip_byte(p: &Path, at: u64) {
    let mut f = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(p)
        .unwrap();
    use std::io::{Seek, SeekFrom};
    let mut b = [0u8; 1];
    f.seek(SeekFrom::Start(at)).unwrap();
    f.read_exact(&mut b).unwrap();
    b[0] ^= 0x55;
    f.seek(SeekFrom::Start(at)).unwrap();
    f.write_all(&b).unwrap();
}

fn truncate_half(p: &Path) {
    let len = fs::metadata(p).unwrap().len();
    assert!(len > 1, "{} too small to truncate", p.display());
    fs::OpenOptions::new()
        .write(true)
        .open(p)
        .unwrap()
        .set_len(len / 2)
        .unwrap();
}

fn os(b: &[u8]) -> &Path {
    Path::new(OsStr::from_bytes(b))
}

fn container(sc: &Scenario, name: &str) -> String {
    sc.containers[name].clone()
}

fn mount_id(root: &Path, cid: &str) -> String {
    fs::read_to_string(
        store(root)
            .join("layerdb/mounts")
            .join(cid)
            .join("mount-id"),
    )
    .unwrap()
    .trim()
    .to_string()
}

fn link_of(dir: &Path) -> String {
    fs::read_to_string(dir.join("link"))
        .unwrap()
        .trim()
        .to_string()
}

fn any_message_contains(run: &Run, idx: &[usize], needle: &str) -> bool {
    idx.iter().any(|&i| {
        run.findings()[i]["message"]
            .as_str()
            .is_some_and(|m| m.contains(needle))
    })
}

// ---------------------------------------------------------------------------
// 0. The exotic layers landed on disk as intended (test-design check).

#[test]
fn exotic_layers_are_on_disk() {
    let sc = scenario_or_skip!();
    let r = &sc.root;
    let e1 = image(sc, EXOTIC_1);
    let e2 = image(sc, EXOTIC_2);
    let x1 = layer(r, &chains_of(r, &e1)[0]);
    let x2 = layer(r, &chains_of(r, &e2)[1]);
    assert_eq!(chains_of(r, &e2)[0], x1.chain);
    assert_eq!(
        fs::read_to_string(x1.db.join("diff")).unwrap(),
        sha256_digest(&exotic_layer_1())
    );
    assert_eq!(
        fs::read_to_string(x2.db.join("diff")).unwrap(),
        sha256_digest(&exotic_layer_2())
    );
    let d1 = x1.diff();
    for p in [
        exotic_gnu_long(),
        exotic_pax_long(),
        EXOTIC_RAW.to_vec(),
        EXOTIC_RAW_GONE.to_vec(),
        EXOTIC_HTML.as_bytes().to_vec(),
        EXOTIC_NEWLINE.as_bytes().to_vec(),
        EXOTIC_DOT.as_bytes().to_vec(),
        EXOTIC_CLEANED.as_bytes().to_vec(),
        EXOTIC_BIG.as_bytes().to_vec(),
        EXOTIC_SUID.as_bytes().to_vec(),
        b"exotic/fifo".to_vec(),
        b"exotic/sym-long".to_vec(),
    ] {
        assert!(
            fs::symlink_metadata(d1.join(os(&p))).is_ok(),
            "X1 diff lacks {}",
            String::from_utf8_lossy(&p)
        );
    }
    use std::os::unix::fs::MetadataExt;
    let hl = fs::metadata(d1.join(EXOTIC_HL_TARGET)).unwrap();
    assert_eq!(hl.nlink(), 3, "hl-target with two hard links");
    let d2 = x2.diff();
    for p in [exotic_x2_pax_long(), exotic_x2_raw_long()] {
        assert!(
            d2.join(os(&p)).is_file(),
            "X2 diff lacks {}",
            String::from_utf8_lossy(&p)
        );
    }
    let gone = d2.join(os(EXOTIC_RAW_GONE));
    let md = fs::symlink_metadata(&gone).expect("whiteout of raw-gone in X2 diff");
    use std::os::unix::fs::FileTypeExt;
    assert!(md.file_type().is_char_device(), "whiteout is a char device");
    let _ = writeln!(
        std::io::stderr(),
        "exotic: X1 {} ({} bytes), X2 {} ({} bytes); driver status {}",
        x1.chain,
        exotic_layer_1().len(),
        x2.chain,
        exotic_layer_2().len(),
        sc.driver_status
    );
}

// ---------------------------------------------------------------------------
// 2. The clean root

#[test]
fn clean_root_verifies() {
    let sc = scenario_or_skip!();
    let layers = fs::read_dir(store(&sc.root).join("layerdb/sha256"))
        .unwrap()
        .count() as u64;
    let plain = verify(&sc.root, &[]);
    assert_eq!(plain.code(), Some(0), "{}", plain.show());
    assert_eq!(plain.sum("errors"), 0, "{}", plain.show());
    assert_eq!(
        plain.sum("warnings"),
        0,
        "warnings on a clean root (false positives)\n{}",
        plain.show()
    );
    assert!(plain.sum("layers_checked") > 0, "{}", plain.show());
    assert!(
        plain.sum("images_checked") >= sc.images_all.len() as u64,
        "images_checked below the daemon's {} images\n{}",
        sc.images_all.len(),
        plain.show()
    );

    let deep = verify(&sc.root, &["--deep"]);
    assert_eq!(deep.code(), Some(0), "{}", deep.show());
    assert!(
        deep.findings().is_empty(),
        "findings on a clean root with --deep\n{}",
        deep.show()
    );
    assert!(deep.of("layer-content").is_empty() && deep.of("tar-split").is_empty());
    assert_eq!(
        deep.sum("unverifiable"),
        0,
        "nothing here is unverifiable\n{}",
        deep.show()
    );
    assert_eq!(
        deep.sum("layers_checked"),
        layers,
        "--deep checks every layer in layerdb ({layers})\n{}",
        deep.show()
    );
    let min_bytes = (exotic_layer_1().len() + exotic_layer_2().len()) as u64;
    assert!(
        deep.sum("bytes_hashed") > min_bytes,
        "bytes_hashed below the exotic layers alone ({min_bytes})\n{}",
        deep.show()
    );
    assert!(deep.sum("files_checked") > 22, "{}", deep.show());

    // The table format agrees on the exit status.
    for args in [&["verify"][..], &["verify", "--deep"]] {
        let out = run_dockgc(&sc.root, args);
        assert_no_panic(&out);
        assert_eq!(out.status.code(), Some(0), "{args:?}\n{}", describe(&out));
        assert!(!out.stdout.is_empty(), "{args:?} printed nothing");
    }
}

#[test]
fn verify_deep_is_read_only() {
    let sc = scenario_or_skip!();
    let copy = copy_root(&sc.root);
    let root = copy.path();
    let before = tree_hash(root);
    for args in [
        &["verify"][..],
        &["verify", "--deep"],
        &["verify", "--deep", "--sizes", "--format", "json"],
        &["verify", "--deep", "--image", EXOTIC_2, "--strict"],
    ] {
        let out = run_dockgc(root, args);
        assert_no_panic(&out);
        assert_eq!(out.status.code(), Some(0), "{args:?}\n{}", describe(&out));
        assert_eq!(tree_hash(root), before, "dockgc {args:?} changed the root");
    }
    let mounts = fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let r = root.to_str().unwrap();
    assert!(
        !mounts.lines().any(|l| l.contains(r)),
        "verify left a mount under {r}"
    );
}

/// `--sizes` on the clean root: the layerdb `size` files are what the daemon
/// measured; whether a walk of `diff/` agrees depends on native vs naive diff
/// (§5.5), so this only requires no errors and reports the warnings.
#[test]
fn clean_root_with_sizes() {
    let sc = scenario_or_skip!();
    let run = verify(&sc.root, &["--sizes"]);
    assert!(run.error_checks().is_empty(), "{}", run.show());
    let mism = run.of("size-mismatch");
    let _ = writeln!(
        std::io::stderr(),
        "clean --sizes: {} size-mismatch warning(s); driver status {}",
        mism.len(),
        sc.driver_status
    );
    let native = sc
        .driver_status
        .to_string()
        .contains("\"Native Overlay Diff\",\"true\"");
    if native {
        assert!(
            mism.is_empty(),
            "native diff: size files are directory.Size of diff/, yet\n{}",
            run.show()
        );
    }
}

// ---------------------------------------------------------------------------
// 3. Each check, one damage at a time (no --deep)

#[test]
fn config_digest() {
    let sc = scenario_or_skip!();
    let id = untagged_loaded(sc);
    let copy = damaged(sc, |r| {
        let p = config_path(r, &id);
        let s = fs::read_to_string(&p).unwrap();
        assert!(s.contains("\"yes\""));
        fs::write(&p, s.replacen("\"yes\"", "\"yez\"", 1)).unwrap();
    });
    expect_only(
        sc,
        copy.path(),
        &[],
        &Expect {
            check: "config-digest",
            kinds: &["image"],
            id: Some(&id),
            also_warn: &[],
            also_err: &[],
        },
    );
}

#[test]
fn config_parse_invalid_json() {
    let sc = scenario_or_skip!();
    let mut id = String::new();
    let copy = damaged(sc, |r| {
        id = add_config(
            r,
            br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"lay"#,
        );
    });
    expect_only(
        sc,
        copy.path(),
        &[],
        &Expect {
            check: "config-parse",
            kinds: &["image"],
            id: Some(&id),
            also_warn: &[],
            also_err: &[],
        },
    );
}

#[test]
fn config_parse_no_rootfs() {
    let sc = scenario_or_skip!();
    let mut id = String::new();
    let copy = damaged(sc, |r| {
        id = add_config(
            r,
            br#"{"architecture":"amd64","os":"linux","config":{"Cmd":["sh"]},"created":"2020-01-01T00:00:00Z"}"#,
        );
    });
    expect_only(
        sc,
        copy.path(),
        &[],
        &Expect {
            check: "config-parse",
            kinds: &["image"],
            id: Some(&id),
            also_warn: &[],
            also_err: &[],
        },
    );
}

#[test]
fn image_parent_missing() {
    let sc = scenario_or_skip!();
    let id = untagged_loaded(sc);
    let copy = damaged(sc, |r| {
        let p = store(r)
            .join("imagedb/metadata/sha256")
            .join(hexid(&id))
            .join("parent");
        write_file(&p, missing_digest("parent image"));
    });
    expect_only(
        sc,
        copy.path(),
        &[],
        &Expect {
            check: "image-parent",
            kinds: &["image"],
            id: Some(&id),
            also_warn: &[],
            also_err: &[],
        },
    );
}

#[test]
fn refs_malformed_repositories_json() {
    let sc = scenario_or_skip!();
    let copy = damaged(sc, |r| {
        let p = store(r).join("repositories.json");
        let b = fs::read(&p).unwrap();
        fs::write(&p, &b[..b.len() / 2]).unwrap();
    });
    expect_only(
        sc,
        copy.path(),
        &[],
        &Expect {
            check: "refs",
            kinds: SUBJECT_KINDS,
            id: None,
            also_warn: &[],
            also_err: &[],
        },
    );
}

#[test]
fn refs_reference_to_missing_image() {
    let sc = scenario_or_skip!();
    let copy = damaged(sc, |r| {
        let p = store(r).join("repositories.json");
        let mut v: Value = serde_json::from_slice(&fs::read(&p).unwrap()).unwrap();
        v["Repositories"]["ghost"] = serde_json::json!({"ghost:1": missing_digest("image")});
        fs::write(&p, serde_json::to_vec(&v).unwrap()).unwrap();
    });
    expect_only(
        sc,
        copy.path(),
        &[],
        &Expect {
            check: "refs",
            kinds: &["reference"],
            id: Some("ghost:1"),
            also_warn: &[],
            also_err: &[],
        },
    );
}

#[test]
fn layer_chain_missing() {
    let sc = scenario_or_skip!();
    let base = chains_of(&sc.root, &image(sc, "loaded:2019"))[0].clone();
    let mut id = String::new();
    let copy = damaged(sc, |r| {
        let cfg = serde_json::json!({
            "architecture": "amd64",
            "os": "linux",
            "created": "2020-02-02T02:02:02Z",
            "config": {"Cmd": ["sh"]},
            "rootfs": {"type": "layers", "diff_ids": [base, missing_digest("layer")]},
            "history": [{"created_by": "a"}, {"created_by": "b"}],
        });
        id = add_config(r, &serde_json::to_vec(&cfg).unwrap());
    });
    expect_only(
        sc,
        copy.path(),
        &[],
        &Expect {
            check: "layer-chain",
            kinds: &["image"],
            id: Some(&id),
            also_warn: &[],
            also_err: &[],
        },
    );
}

/// A `size` file with a trailing newline (the daemon cannot load the layer) on
/// app:1's COPY layer, shared by app:1, child:1, their intermediate images and
/// two containers.
#[test]
fn layer_files_size_with_newline() {
    let sc = scenario_or_skip!();
    let l = layer_with(&sc.root, &image(sc, "app:1"), "data/b.bin");
    let copy = damaged(sc, |r| {
        let p = layer(r, &l.chain).db.join("size");
        let mut v = fs::read(&p).unwrap();
        v.push(b'\n');
        fs::write(&p, v).unwrap();
    });
    expect_layer(sc, copy.path(), &[], "layer-files", &l.chain);
}

#[test]
fn layer_files_diff_missing() {
    let sc = scenario_or_skip!();
    let chain = top_layer(&sc.root, &sc.dangling_image).chain;
    let copy = damaged(sc, |r| {
        fs::remove_file(layer(r, &chain).db.join("diff")).unwrap()
    });
    expect_layer(sc, copy.path(), &[], "layer-files", &chain);
}

#[test]
fn layer_files_diff_not_a_digest() {
    let sc = scenario_or_skip!();
    let chain = top_layer(&sc.root, &sc.dangling_image).chain;
    let copy = damaged(sc, |r| {
        fs::write(layer(r, &chain).db.join("diff"), "sha256:not-a-digest").unwrap()
    });
    expect_layer(sc, copy.path(), &[], "layer-files", &chain);
}

/// Without `cache-id` the driver dir is unknown: it may show as an orphan.
#[test]
fn layer_files_cache_id_missing() {
    let sc = scenario_or_skip!();
    let chain = top_layer(&sc.root, &sc.dangling_image).chain;
    let copy = damaged(sc, |r| {
        fs::remove_file(layer(r, &chain).db.join("cache-id")).unwrap()
    });
    expect_layer_also(
        sc,
        copy.path(),
        &[],
        "layer-files",
        &chain,
        &["orphan-dir", "unknown-dir"],
        &[],
    );
}

/// app:1's COPY layer gets another (valid) diff ID: its chain ID no longer
/// recomputes to its directory name. The children's chain IDs, computed from
/// their own `parent` files, still hold.
#[test]
fn chain_id_wrong_diff() {
    let sc = scenario_or_skip!();
    let l = layer_with(&sc.root, &image(sc, "app:1"), "data/b.bin");
    let copy = damaged(sc, |r| {
        fs::write(layer(r, &l.chain).db.join("diff"), missing_digest("diff")).unwrap()
    });
    expect_layer(sc, copy.path(), &[], "chain-id", &l.chain);
}

#[test]
fn chain_id_parent_missing() {
    let sc = scenario_or_skip!();
    let chain = top_layer(&sc.root, &sc.dangling_image).chain;
    let copy = damaged(sc, |r| {
        fs::write(
            layer(r, &chain).db.join("parent"),
            missing_digest("parent layer"),
        )
        .unwrap()
    });
    expect_layer(sc, copy.path(), &[], "chain-id", &chain);
}

/// A layer that is its own parent (a cycle would hang the daemon, §3.5).
/// No `lower` can agree with a cyclic parent chain, so a `driver-dir` finding
/// on the `lower` of the same layer is tolerated.
#[test]
fn chain_id_cycle() {
    let sc = scenario_or_skip!();
    let chain = top_layer(&sc.root, &sc.dangling_image).chain;
    let copy = damaged(sc, |r| {
        fs::write(layer(r, &chain).db.join("parent"), &chain).unwrap()
    });
    let run = expect_layer_also(
        sc,
        copy.path(),
        &[],
        "chain-id",
        &chain,
        &[],
        &["driver-dir"],
    );
    report_cycle_message(&run);
}

/// A three-layer cycle inside solo:1's chain (its COPY layer's parent set to
/// its top layer): verify must terminate and report chain-id.
#[test]
fn chain_id_three_layer_cycle() {
    let sc = scenario_or_skip!();
    let solo = image(sc, "solo:1");
    let chains = chains_of(&sc.root, &solo);
    assert_eq!(chains.len(), 4, "solo:1 is base, COPY, RUN, RUN");
    let (copy_layer, top) = (chains[1].clone(), chains[3].clone());
    let copy = damaged(sc, |r| {
        fs::write(layer(r, &copy_layer).db.join("parent"), &top).unwrap()
    });
    let run = expect_layer_also(
        sc,
        copy.path(),
        &[],
        "chain-id",
        &copy_layer,
        &[],
        &["driver-dir"],
    );
    // Layers of the cycle other than the damaged one may be reported too, but
    // only as chain-id (or driver-dir on their lower).
    let cycle: BTreeSet<&str> = chains[1..].iter().map(|c| hexid(c)).collect();
    for f in run.findings() {
        let id = hexid(f["subject"]["id"].as_str().unwrap());
        assert!(
            f["severity"] != "error" || cycle.contains(id),
            "error outside the cycle: {f}\n{}",
            run.show()
        );
    }
    report_cycle_message(&run);
}

fn report_cycle_message(run: &Run) {
    let says = run.of("chain-id").iter().any(|f| {
        f["message"]
            .as_str()
            .is_some_and(|m| m.to_ascii_lowercase().contains("cycle"))
    });
    let _ = writeln!(
        std::io::stderr(),
        "chain-id on a parent cycle: message {} the cycle",
        if says { "names" } else { "does not name" }
    );
}

#[test]
fn driver_dir_missing() {
    let sc = scenario_or_skip!();
    let chain = top_layer(&sc.root, &sc.dangling_image).chain;
    let copy = damaged(sc, |r| {
        let l = layer(r, &chain);
        fs::remove_dir_all(&l.dir).unwrap();
        fs::remove_file(r.join("overlay2/l").join(&l.link)).unwrap();
    });
    expect_layer(sc, copy.path(), &[], "driver-dir", &chain);
}

/// No `diff/`: its `l/` symlink now dangles too.
#[test]
fn driver_dir_without_diff() {
    let sc = scenario_or_skip!();
    let chain = top_layer(&sc.root, &sc.dangling_image).chain;
    let copy = damaged(sc, |r| fs::remove_dir_all(layer(r, &chain).diff()).unwrap());
    expect_layer_also(
        sc,
        copy.path(),
        &[],
        "driver-dir",
        &chain,
        &["dangling-link"],
        &[],
    );
}

/// `link` names an `l/` entry that does not exist (the old one still points
/// at this layer's `diff/`, so it is not dangling).
#[test]
fn driver_dir_link_file_mismatch() {
    let sc = scenario_or_skip!();
    let chain = top_layer(&sc.root, &sc.dangling_image).chain;
    let copy = damaged(sc, |r| {
        fs::write(
            layer(r, &chain).dir.join("link"),
            "DGCNOSUCHLINKAAAAAAAAAAAAA",
        )
        .unwrap()
    });
    expect_layer(sc, copy.path(), &[], "driver-dir", &chain);
}

/// The layer's `l/` symlink points at another layer's `diff/`.
#[test]
fn driver_dir_symlink_not_pointing_back() {
    let sc = scenario_or_skip!();
    let chain = top_layer(&sc.root, &sc.dangling_image).chain;
    let other = top_layer(&sc.root, &image(sc, "solo:1")).cache_id;
    let copy = damaged(sc, |r| {
        let l = layer(r, &chain);
        let p = r.join("overlay2/l").join(&l.link);
        fs::remove_file(&p).unwrap();
        std::os::unix::fs::symlink(format!("../{other}/diff"), &p).unwrap();
    });
    expect_layer(sc, copy.path(), &[], "driver-dir", &chain);
}

/// app:1's COPY layer: a `lower` entry that resolves to nothing.
#[test]
fn driver_dir_lower_not_resolving() {
    let sc = scenario_or_skip!();
    let l = layer_with(&sc.root, &image(sc, "app:1"), "data/b.bin");
    let copy = damaged(sc, |r| {
        let p = layer(r, &l.chain).dir.join("lower");
        let old = fs::read_to_string(&p).expect("COPY layer has a lower file");
        assert!(
            !old.contains(':'),
            "COPY layer sits on the base only: {old}"
        );
        fs::write(&p, "l/DGCNOSUCHLOWERAAAAAAAAAAA").unwrap();
    });
    expect_layer(sc, copy.path(), &[], "driver-dir", &l.chain);
}

fn mount_expect<'a>(cid: &'a str, also: &'a [&'a str]) -> Expect<'a> {
    Expect {
        check: "mounts",
        kinds: &["mount", "container"],
        id: Some(cid),
        also_warn: also,
        also_err: &[],
    }
}

#[test]
fn mounts_mount_dir_missing() {
    let sc = scenario_or_skip!();
    let cid = container(sc, "failed");
    let copy = damaged(sc, |r| {
        let dir = r.join("overlay2").join(mount_id(r, &cid));
        let link = link_of(&dir);
        fs::remove_dir_all(&dir).unwrap();
        fs::remove_file(r.join("overlay2/l").join(link)).unwrap();
    });
    expect_only(sc, copy.path(), &[], &mount_expect(&cid, &[]));
}

#[test]
fn mounts_init_dir_missing() {
    let sc = scenario_or_skip!();
    let cid = container(sc, "failed");
    let copy = damaged(sc, |r| {
        let dir = r
            .join("overlay2")
            .join(format!("{}-init", mount_id(r, &cid)));
        let link = link_of(&dir);
        fs::remove_dir_all(&dir).unwrap();
        fs::remove_file(r.join("overlay2/l").join(link)).unwrap();
    });
    expect_only(sc, copy.path(), &[], &mount_expect(&cid, &[]));
}

/// A container without its `layerdb/mounts` entry; its RW and init dirs are
/// then owned by nothing and may show as orphans.
#[test]
fn mounts_container_without_mount() {
    let sc = scenario_or_skip!();
    let cid = container(sc, "failed");
    let copy = damaged(sc, |r| {
        fs::remove_dir_all(store(r).join("layerdb/mounts").join(&cid)).unwrap()
    });
    expect_only(sc, copy.path(), &[], &mount_expect(&cid, &["orphan-dir"]));
}

/// The image is gone and so are the layers under the container's RW layer:
/// the container cannot start.
#[test]
fn container_image_missing() {
    let sc = scenario_or_skip!();
    let cid = container(sc, "failed");
    let copy = damaged(sc, |r| {
        let p = r.join("containers").join(&cid).join("config.v2.json");
        let mut v: Value = serde_json::from_slice(&fs::read(&p).unwrap()).unwrap();
        v["Image"] = Value::String(missing_digest("container image"));
        fs::write(&p, serde_json::to_vec(&v).unwrap()).unwrap();
        let parent = store(r).join("layerdb/mounts").join(&cid).join("parent");
        fs::write(parent, missing_digest("mount parent")).unwrap();
    });
    expect_only(
        sc,
        copy.path(),
        &[],
        &Expect {
            check: "container-image",
            kinds: &["container"],
            id: Some(&cid),
            also_warn: &[],
            also_err: &["mounts"],
        },
    );
}

// Warnings ------------------------------------------------------------------

#[test]
fn warning_orphan_dir() {
    let sc = scenario_or_skip!();
    let id = "dead".repeat(16);
    let copy = damaged(sc, |r| {
        let dir = r.join("overlay2").join(&id);
        write_file(&dir.join("diff/sub/payload.bin"), vec![7u8; 10_000]);
        fs::write(dir.join("link"), "DGCORPHANLINKAAAAAAAAAAAAA").unwrap();
    });
    let (run, hits) = expect_only(
        sc,
        copy.path(),
        &[],
        &Expect {
            check: "orphan-dir",
            kinds: SUBJECT_KINDS,
            id: None,
            also_warn: &[],
            also_err: &[],
        },
    );
    assert!(
        hits.iter().any(
            |&i| run.findings()[i]["path"].as_str().unwrap().contains(&id)
                || run.findings()[i]["subject"]["id"]
                    .as_str()
                    .unwrap()
                    .contains(&id)
        ),
        "orphan-dir does not name overlay2/{id}\n{}",
        run.show()
    );
}

/// `docker rmi -f` of an image a stopped container uses: the config and
/// references go, the container's RW layer keeps the layers below, and the
/// container starts. A warning naming the image, never an error.
#[test]
fn warning_image_removed() {
    let sc = scenario_or_skip!();
    let cid = container(sc, "failed");
    let copy = damaged(sc, |r| {
        let p = r.join("containers").join(&cid).join("config.v2.json");
        let mut v: Value = serde_json::from_slice(&fs::read(&p).unwrap()).unwrap();
        v["Image"] = Value::String(missing_digest("force-removed image"));
        fs::write(&p, serde_json::to_vec(&v).unwrap()).unwrap();
    });
    expect_only(
        sc,
        copy.path(),
        &[],
        &Expect {
            check: "image-removed",
            kinds: &["container"],
            id: Some(&cid),
            also_warn: &[],
            also_err: &[],
        },
    );
}

/// A container's directory is gone (an interrupted `docker rm`): its RW layer
/// is a leftover no container owns. A warning, like every leftover: the
/// daemon starts, and `prune --orphans` removes it.
#[test]
fn warning_orphan_mount() {
    let sc = scenario_or_skip!();
    let cid = container(sc, "failed");
    let copy = damaged(sc, |r| {
        fs::remove_dir_all(r.join("containers").join(&cid)).unwrap()
    });
    expect_only(
        sc,
        copy.path(),
        &[],
        &Expect {
            check: "orphan-mount",
            kinds: &["mount"],
            id: Some(&cid),
            also_warn: &[],
            also_err: &[],
        },
    );
}

/// The dangling image's config is gone; its top layer is used by nothing.
#[test]
fn warning_unreferenced_layer() {
    let sc = scenario_or_skip!();
    let d = sc.dangling_image.clone();
    let chain = top_layer(&sc.root, &d).chain;
    let copy = damaged(sc, |r| {
        fs::remove_file(config_path(r, &d)).unwrap();
        let _ = fs::remove_dir_all(store(r).join("imagedb/metadata/sha256").join(hexid(&d)));
    });
    expect_only(
        sc,
        copy.path(),
        &[],
        &Expect {
            check: "unreferenced-layer",
            kinds: &["layer"],
            id: Some(&chain),
            also_warn: &[],
            also_err: &[],
        },
    );
}

/// An interrupted `docker rmi` of the dangling image: config gone, top layer
/// renamed `<hex>-<64hex>-removing` with its driver dir still there (§3.7).
#[test]
fn warning_removing() {
    let sc = scenario_or_skip!();
    let d = sc.dangling_image.clone();
    let chain = top_layer(&sc.root, &d).chain;
    let copy = damaged(sc, |r| {
        fs::remove_file(config_path(r, &d)).unwrap();
        let _ = fs::remove_dir_all(store(r).join("imagedb/metadata/sha256").join(hexid(&d)));
        let db = layer(r, &chain).db;
        let to = db.with_file_name(format!("{}-{}-removing", hexid(&chain), "7".repeat(64)));
        fs::rename(&db, &to).unwrap();
    });
    expect_only(
        sc,
        copy.path(),
        &[],
        &Expect {
            check: "removing",
            kinds: SUBJECT_KINDS,
            id: None,
            also_warn: &[],
            also_err: &[],
        },
    );
}

#[test]
fn warning_write_set() {
    let sc = scenario_or_skip!();
    let copy = damaged(sc, |r| {
        let ws = store(r).join("layerdb/tmp/write-set-271828182");
        write_file(&ws.join("diff"), missing_digest("write-set"));
        write_file(&ws.join("tar-split.json.gz"), b"");
    });
    let (run, hits) = expect_only(
        sc,
        copy.path(),
        &[],
        &Expect {
            check: "write-set",
            kinds: SUBJECT_KINDS,
            id: None,
            also_warn: &[],
            also_err: &[],
        },
    );
    assert!(
        hits.iter().any(|&i| run.findings()[i]["path"]
            .as_str()
            .unwrap()
            .contains("write-set-271828182")),
        "{}",
        run.show()
    );
}

#[test]
fn warning_dangling_link() {
    let sc = scenario_or_skip!();
    let name = "DGCDANGLINGLINKAAAAAAAAAAA";
    let copy = damaged(sc, |r| {
        std::os::unix::fs::symlink(
            format!("../{}/diff", "0".repeat(64)),
            r.join("overlay2/l").join(name),
        )
        .unwrap()
    });
    let (run, hits) = expect_only(
        sc,
        copy.path(),
        &[],
        &Expect {
            check: "dangling-link",
            kinds: SUBJECT_KINDS,
            id: None,
            also_warn: &[],
            also_err: &[],
        },
    );
    assert!(
        hits.iter().any(|&i| {
            let f = &run.findings()[i];
            f["path"].as_str().unwrap().contains(name)
                || f["subject"]["id"].as_str().unwrap().contains(name)
        }),
        "{}",
        run.show()
    );
}

/// solo:1's top layer claims one byte more than its `diff/` holds: silent
/// without `--sizes`, a warning with it.
#[test]
fn warning_size_mismatch() {
    let sc = scenario_or_skip!();
    let chain = top_layer(&sc.root, &image(sc, "solo:1")).chain;
    let copy = damaged(sc, |r| {
        let p = layer(r, &chain).db.join("size");
        let n: u64 = fs::read_to_string(&p).unwrap().parse().unwrap();
        fs::write(&p, (n + 1).to_string()).unwrap();
    });
    let plain = verify(copy.path(), &[]);
    let clean = verify(&sc.root, &[]);
    assert_eq!(
        plain.findings().len(),
        clean.findings().len(),
        "a size file that parses is fine without --sizes\n{}",
        plain.show()
    );
    assert_eq!(plain.code(), Some(0));
    expect_only(
        sc,
        copy.path(),
        &["--sizes"],
        &Expect {
            check: "size-mismatch",
            kinds: &["layer"],
            id: Some(&chain),
            also_warn: &[],
            also_err: &[],
        },
    );
}

// ---------------------------------------------------------------------------
// Deep checks: damage in diff/ and tar-split

/// Asserts that damage in `layer`'s files is invisible without `--deep` and
/// shows with it as `check` on that layer (message naming `file` when given),
/// with the layer's impact.
fn deep_case(sc: &Scenario, root: &Path, check: &str, chain: &str, file: Option<&str>) -> Run {
    let plain = verify(root, &[]);
    assert!(
        plain.error_checks().is_empty(),
        "damage inside diff/ or tar-split needs --deep\n{}",
        plain.show()
    );
    let run = expect_layer(sc, root, &["--deep"], check, chain);
    if let Some(file) = file {
        let idx: Vec<usize> = run
            .findings()
            .iter()
            .enumerate()
            .filter(|(_, f)| f["check"] == check)
            .map(|(i, _)| i)
            .collect();
        assert!(
            any_message_contains(&run, &idx, file),
            "no {check} message names {file:?}\n{}",
            run.show()
        );
    }
    run
}

fn app_copy(sc: &Scenario) -> Layer {
    layer_with(&sc.root, &image(sc, "app:1"), "data/b.bin")
}

fn x1(sc: &Scenario) -> Layer {
    layer(&sc.root, &chains_of(&sc.root, &image(sc, EXOTIC_1))[0])
}

fn x2(sc: &Scenario) -> Layer {
    layer(&sc.root, &chains_of(&sc.root, &image(sc, EXOTIC_2))[1])
}

fn in_copy(root: &Path, l: &Layer, rel: &Path) -> PathBuf {
    root.join("overlay2")
        .join(&l.cache_id)
        .join("diff")
        .join(rel)
}

#[test]
fn deep_file_deleted() {
    let sc = scenario_or_skip!();
    let l = app_copy(sc);
    let copy = damaged(sc, |r| {
        fs::remove_file(in_copy(r, &l, Path::new("data/a.txt"))).unwrap()
    });
    deep_case(
        sc,
        copy.path(),
        "layer-content",
        &l.chain,
        Some("data/a.txt"),
    );
}

#[test]
fn deep_file_truncated() {
    let sc = scenario_or_skip!();
    let l = app_copy(sc);
    let copy = damaged(sc, |r| {
        truncate_half(&in_copy(r, &l, Path::new("data/dir/old2.txt")))
    });
    deep_case(
        sc,
        copy.path(),
        "layer-content",
        &l.chain,
        Some("data/dir/old2.txt"),
    );
}

#[test]
fn deep_byte_flipped() {
    let sc = scenario_or_skip!();
    let l = app_copy(sc);
    let copy = damaged(sc, |r| {
        flip_byte(&in_copy(r, &l, Path::new("data/b.bin")), 40_000)
    });
    deep_case(
        sc,
        copy.path(),
        "layer-content",
        &l.chain,
        Some("data/b.bin"),
    );
}

#[test]
fn deep_file_replaced_by_directory() {
    let sc = scenario_or_skip!();
    let l = app_copy(sc);
    let copy = damaged(sc, |r| {
        let p = in_copy(r, &l, Path::new("data/dir/old1.txt"));
        fs::remove_file(&p).unwrap();
        fs::create_dir(&p).unwrap();
    });
    deep_case(
        sc,
        copy.path(),
        "layer-content",
        &l.chain,
        Some("data/dir/old1.txt"),
    );
}

/// A file with a non-UTF-8 name (tar-split `name_raw`) deleted from X1; the
/// message must name it (lossily is fine).
#[test]
fn deep_non_utf8_file_deleted() {
    let sc = scenario_or_skip!();
    let l = x1(sc);
    let copy = damaged(sc, |r| {
        fs::remove_file(in_copy(r, &l, os(EXOTIC_RAW))).unwrap()
    });
    let run = deep_case(sc, copy.path(), "layer-content", &l.chain, Some("raw-"));
    let named = run.of("layer-content").iter().any(|f| {
        let m = f["message"].as_str().unwrap();
        m.contains("-name.dat")
    });
    assert!(
        named,
        "message does not name raw-..-name.dat\n{}",
        run.show()
    );
}

/// A byte flipped in X2's file whose path travels in a PAX header.
#[test]
fn deep_pax_long_name_flipped() {
    let sc = scenario_or_skip!();
    let l = x2(sc);
    let copy = damaged(sc, |r| {
        flip_byte(&in_copy(r, &l, os(&exotic_x2_pax_long())), 10)
    });
    deep_case(
        sc,
        copy.path(),
        "layer-content",
        &l.chain,
        Some("x2-long.bin"),
    );
}

/// X1's GNU long-named file truncated (X2 whites it out; X1 still carries it).
#[test]
fn deep_gnu_long_name_truncated() {
    let sc = scenario_or_skip!();
    let l = x1(sc);
    let copy = damaged(sc, |r| {
        truncate_half(&in_copy(r, &l, os(&exotic_gnu_long())))
    });
    deep_case(
        sc,
        copy.path(),
        "layer-content",
        &l.chain,
        Some("gnu-long-name-"),
    );
}

#[test]
fn deep_big_file_byte_flipped_at_end() {
    let sc = scenario_or_skip!();
    let l = x1(sc);
    let copy = damaged(sc, |r| {
        let p = in_copy(r, &l, Path::new(EXOTIC_BIG));
        let len = fs::metadata(&p).unwrap().len();
        flip_byte(&p, len - 1);
    });
    deep_case(sc, copy.path(), "layer-content", &l.chain, Some("big.bin"));
}

#[test]
fn deep_tar_split_truncated() {
    let sc = scenario_or_skip!();
    let l = top_layer(&sc.root, &image(sc, "solo:1"));
    let copy = damaged(sc, |r| {
        truncate_half(&layer(r, &l.chain).db.join("tar-split.json.gz"))
    });
    deep_case(sc, copy.path(), "tar-split", &l.chain, None);
}

#[test]
fn deep_tar_split_missing() {
    let sc = scenario_or_skip!();
    let l = x2(sc);
    let copy = damaged(sc, |r| {
        fs::remove_file(layer(r, &l.chain).db.join("tar-split.json.gz")).unwrap()
    });
    deep_case(sc, copy.path(), "tar-split", &l.chain, None);
}

/// Valid gzip, not tar-split JSON.
#[test]
fn deep_tar_split_not_json() {
    let sc = scenario_or_skip!();
    let l = app_copy(sc);
    let copy = damaged(sc, |r| {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(b"{\"type\":2,\"payload\":\"AAAA\",\"position\":0}\nnot json at all\n")
            .unwrap();
        fs::write(
            layer(r, &l.chain).db.join("tar-split.json.gz"),
            gz.finish().unwrap(),
        )
        .unwrap();
    });
    deep_case(sc, copy.path(), "tar-split", &l.chain, None);
}

/// Mode and times of files in diff/ are not part of the stream (headers come
/// from tar-split): `--deep` must still pass, as `docker save` does.
#[test]
fn deep_metadata_only_changes_pass() {
    let sc = scenario_or_skip!();
    let (a, b) = (app_copy(sc), x1(sc));
    let copy = damaged(sc, |r| touch_and_chmod(r, &a, &b));
    let run = verify(copy.path(), &["--deep"]);
    assert!(run.findings().is_empty(), "{}", run.show());
    assert_eq!(run.code(), Some(0));
}

fn touch_and_chmod(r: &Path, a: &Layer, b: &Layer) {
    use std::os::unix::fs::PermissionsExt;
    for p in [
        in_copy(r, a, Path::new("data/b.bin")),
        in_copy(r, b, os(EXOTIC_RAW)),
    ] {
        fs::set_permissions(&p, fs::Permissions::from_mode(0o600)).unwrap();
        let f = fs::File::options().write(true).open(&p).unwrap();
        f.set_modified(std::time::SystemTime::UNIX_EPOCH).unwrap();
    }
}

/// A metadata-only copy-up (overlay metacopy): the upper file has the size
/// but no data and carries `trusted.overlay.metacopy`. Unverifiable offline:
/// a warning counted in `summary.unverifiable`, never a pass or an error.
#[test]
fn deep_metacopy_is_unverifiable() {
    let sc = scenario_or_skip!();
    let l = x1(sc);
    let mut xattr_ok = true;
    let copy = damaged(sc, |r| {
        let p = in_copy(r, &l, Path::new(EXOTIC_BIG));
        let len = fs::metadata(&p).unwrap().len();
        fs::remove_file(&p).unwrap();
        let f = fs::File::create(&p).unwrap();
        f.set_len(len).unwrap();
        drop(f);
        let c = std::ffi::CString::new(p.as_os_str().as_bytes()).unwrap();
        let rc = unsafe {
            libc::lsetxattr(
                c.as_ptr(),
                c"trusted.overlay.metacopy".as_ptr(),
                std::ptr::null(),
                0,
                0,
            )
        };
        xattr_ok = rc == 0;
    });
    if !xattr_ok {
        let _ = writeln!(
            std::io::stderr(),
            "SKIPPED deep_metacopy_is_unverifiable: cannot set trusted.* xattrs here"
        );
        return;
    }
    let plain = verify(copy.path(), &[]);
    assert!(plain.findings().is_empty(), "{}", plain.show());
    let (run, _) = expect_only(
        sc,
        copy.path(),
        &["--deep"],
        &Expect {
            check: "unverifiable",
            kinds: &["layer"],
            id: Some(&l.chain),
            also_warn: &[],
            also_err: &[],
        },
    );
    assert!(run.sum("unverifiable") >= 1, "{}", run.show());
}

/// A GNU sparse file in a layer the daemon loaded (on a copy): its tar-split
/// holds the expanded body, so neither dockgc nor `docker save` can rebuild
/// the stream. It must be a warning counted in `summary.unverifiable`, not an
/// error and not a pass; and `docker save` indeed fails on it.
#[test]
fn deep_sparse_is_unverifiable() {
    let sc = scenario_or_skip!();
    let copy = copy_root(&sc.root);
    let root = copy.path();
    let work = tempfile::tempdir().unwrap();
    let archive = write_image_archive(
        work.path(),
        "sparse-save",
        &[("sparse:1", vec![sparse_layer()])],
    );
    let Some(d) = Daemon::start(root) else {
        return;
    };
    d.docker(&["load", "-i", archive.to_str().unwrap()]);
    d.stop();
    let chain = sha256_digest(&sparse_layer());
    let l = layer(root, &chain);
    assert_eq!(
        fs::metadata(l.diff().join("sparse/holes.bin"))
            .unwrap()
            .len(),
        1024 * 1024,
        "the daemon expanded the sparse file"
    );
    let (run, _) = expect_only(
        sc,
        root,
        &["--deep"],
        &Expect {
            check: "unverifiable",
            kinds: &["layer"],
            id: Some(&chain),
            also_warn: &[],
            also_err: &[],
        },
    );
    assert!(run.sum("unverifiable") >= 1, "{}", run.show());
    if let Some((saved, err)) = save_succeeds(root, "sparse:1") {
        assert!(!saved, "docker save of a sparse layer succeeded");
        let _ = writeln!(
            std::io::stderr(),
            "sparse: verify --deep unverifiable / docker save fails ({err})"
        );
    }
}

// ---------------------------------------------------------------------------
// 4. verify --deep against the daemon's own `docker save`

/// Does `verify --deep` find the layers of `image` whole?
fn deep_passes(root: &Path, image: &str) -> (bool, String) {
    let chains: BTreeSet<String> = chains_of(root, image)
        .into_iter()
        .map(|c| hexid(&c).to_string())
        .collect();
    let run = verify(root, &["--deep"]);
    let bad: Vec<&Value> = run
        .findings()
        .iter()
        .filter(|f| {
            f["severity"] == "error"
                && f["subject"]["kind"] == "layer"
                && chains.contains(hexid(f["subject"]["id"].as_str().unwrap()))
        })
        .collect();
    (
        bad.is_empty(),
        format!("{} error(s) on its layers: {bad:?}", bad.len()),
    )
}

/// `docker save` of `image` on a daemon started on `root` (which it changes).
fn save_succeeds(root: &Path, tag: &str) -> Option<(bool, String)> {
    let d = Daemon::start(root)?;
    let out_dir = tempfile::tempdir().unwrap();
    let out_file = out_dir.path().join("img.tar");
    let o = d.docker_output(&["save", "-o", out_file.to_str().unwrap(), tag]);
    d.stop();
    Some((
        o.status.success(),
        String::from_utf8_lossy(&o.stderr).trim().to_string(),
    ))
}

#[test]
fn deep_agrees_with_docker_save() {
    let sc = scenario_or_skip!();
    type Damage = Box<dyn Fn(&Path)>;
    let a = app_copy(sc);
    let (x1l, x2l) = (x1(sc), x2(sc));
    let solo_top = top_layer(&sc.root, &image(sc, "solo:1"));
    let cases: Vec<(&str, &str, bool, Damage)> = vec![
        ("undamaged", "app:1", true, Box::new(|_| {})),
        ("undamaged exotic", EXOTIC_2, true, Box::new(|_| {})),
        ("mode and mtime only", "app:1", true, {
            let (a, b) = (app_copy(sc), x1(sc));
            Box::new(move |r| touch_and_chmod(r, &a, &b))
        }),
        ("byte flipped", "child:1", false, {
            let l = a;
            Box::new(move |r| flip_byte(&in_copy(r, &l, Path::new("data/b.bin")), 123))
        }),
        ("non-UTF-8 file deleted", EXOTIC_1, false, {
            let l = layer(&sc.root, &x1l.chain);
            Box::new(move |r| fs::remove_file(in_copy(r, &l, os(EXOTIC_RAW))).unwrap())
        }),
        ("PAX long-named file truncated", EXOTIC_2, false, {
            let l = x2l;
            Box::new(move |r| truncate_half(&in_copy(r, &l, os(&exotic_x2_pax_long()))))
        }),
        ("GNU long-named file replaced by a dir", EXOTIC_2, false, {
            let l = x1l;
            Box::new(move |r| {
                let p = in_copy(r, &l, os(&exotic_gnu_long()));
                fs::remove_file(&p).unwrap();
                fs::create_dir(&p).unwrap();
            })
        }),
        ("tar-split truncated", "solo:1", false, {
            let c = solo_top.chain.clone();
            Box::new(move |r| truncate_half(&layer(r, &c).db.join("tar-split.json.gz")))
        }),
    ];
    let mut report = Vec::new();
    let mut bad = Vec::new();
    for (what, tag, want, damage) in cases {
        let copy = damaged(sc, |r| damage(r));
        let root = copy.path();
        let id = image(sc, tag);
        let (verified, detail) = deep_passes(root, &id);
        let Some((saved, err)) = save_succeeds(root, tag) else {
            return;
        };
        report.push(format!(
            "{what}: verify --deep {} / docker save {tag} {}{}",
            if verified { "passes" } else { "fails" },
            if saved { "succeeds" } else { "fails" },
            if saved {
                String::new()
            } else {
                format!(" ({err})")
            }
        ));
        if verified != saved {
            bad.push(format!("{what} ({tag}): verify passes={verified}, docker save succeeds={saved}: {err}; {detail}"));
        }
        if saved != want {
            bad.push(format!(
                "{what} ({tag}): test expected docker save success={want}, got {saved}: {err}"
            ));
        }
    }
    let _ = writeln!(std::io::stderr(), "{}", report.join("\n"));
    assert!(bad.is_empty(), "disagreements:\n  {}", bad.join("\n  "));
}

// ---------------------------------------------------------------------------
// 5. --image limits the deep work

fn exotic_body_files(layer: &[u8]) -> u64 {
    let mut n = 0;
    let mut ar = tar::Archive::new(layer);
    for e in ar.entries().unwrap() {
        let e = e.unwrap();
        if e.header().entry_type().is_file() && e.header().size().unwrap() > 0 {
            n += 1;
        }
    }
    n
}

#[test]
fn image_limits_deep_work() {
    let sc = scenario_or_skip!();
    let app = image(sc, "app:1");
    let app_chains = chains_of(&sc.root, &app).len() as u64;
    let run = verify(&sc.root, &["--deep", "--image", "app:1"]);
    assert_eq!(run.code(), Some(0), "{}", run.show());
    assert_eq!(
        run.sum("layers_checked"),
        app_chains,
        "layers_checked with --image app:1\n{}",
        run.show()
    );
    // By full ID, and the union of two images.
    let run = verify(&sc.root, &["--deep", "--image", &app]);
    assert_eq!(run.sum("layers_checked"), app_chains, "{}", run.show());
    let solo = image(sc, "solo:1");
    let union: BTreeSet<String> = chains_of(&sc.root, &app)
        .into_iter()
        .chain(chains_of(&sc.root, &solo))
        .collect();
    let run = verify(
        &sc.root,
        &["--deep", "--image", "app:1", "--image", "solo:1"],
    );
    assert_eq!(
        run.sum("layers_checked"),
        union.len() as u64,
        "{}",
        run.show()
    );

    // The exotic layers: exact stream bytes and file counts.
    let (l1, l2) = (exotic_layer_1(), exotic_layer_2());
    let run = verify(&sc.root, &["--deep", "--image", EXOTIC_1]);
    assert_eq!(run.sum("layers_checked"), 1, "{}", run.show());
    assert_eq!(
        run.sum("bytes_hashed"),
        l1.len() as u64,
        "bytes_hashed is X1's tar length\n{}",
        run.show()
    );
    assert_eq!(
        run.sum("files_checked"),
        exotic_body_files(&l1),
        "files_checked is X1's entries with a body\n{}",
        run.show()
    );
    let run = verify(&sc.root, &["--deep", "--image", EXOTIC_2]);
    assert_eq!(run.sum("layers_checked"), 2, "{}", run.show());
    assert_eq!(
        run.sum("bytes_hashed"),
        (l1.len() + l2.len()) as u64,
        "{}",
        run.show()
    );
    assert_eq!(
        run.sum("files_checked"),
        exotic_body_files(&l1) + exotic_body_files(&l2),
        "{}",
        run.show()
    );
}

#[test]
fn image_excludes_damage_elsewhere() {
    let sc = scenario_or_skip!();
    let l = layer_with(&sc.root, &image(sc, "solo:1"), "opt/big.bin");
    let copy = damaged(sc, |r| {
        flip_byte(&in_copy(r, &l, Path::new("opt/big.bin")), 5)
    });
    let root = copy.path();
    let other = verify(root, &["--deep", "--image", "loaded:2020"]);
    assert!(
        other.of("layer-content").is_empty() && other.code() == Some(0),
        "damage outside loaded:2020's chain reported\n{}",
        other.show()
    );
    let on = verify(root, &["--deep", "--image", "solo:1"]);
    assert_eq!(on.code(), Some(1), "{}", on.show());
    assert!(
        on.of("layer-content")
            .iter()
            .any(|f| same_id(f["subject"]["id"].as_str().unwrap(), &l.chain)),
        "{}",
        on.show()
    );
}

// ---------------------------------------------------------------------------
// 6. Not a Docker root (needs no daemon)

#[test]
fn non_docker_root_exits_2() {
    let empty = tempfile::tempdir().unwrap();
    fs::create_dir_all(empty.path().join("some/thing")).unwrap();
    let missing = empty.path().join("does-not-exist");
    for root in [empty.path(), missing.as_path()] {
        let rs = root.to_str().unwrap();
        for args in [
            vec!["--root", rs, "verify"],
            vec!["verify", "--root", rs, "--deep"],
            vec!["--root", rs, "verify", "--format", "json", "--strict"],
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
