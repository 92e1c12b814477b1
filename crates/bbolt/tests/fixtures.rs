//! Real files written by Go bbolt (dockerd 20.10.24 and containerd 1.6.20,
//! see fixtures/make-fixtures.sh), checked against what those daemons
//! reported about their own contents just before they were stopped.

mod common;

use std::collections::{BTreeMap, BTreeSet};

use bbolt::{Bucket, Db, Entry, LockProbe};
use common::{fixture, fixture_bytes, fixture_text};
use serde_json::Value;

fn names(b: Bucket<'_>) -> BTreeSet<String> {
    b.iter()
        .map(|(k, _)| String::from_utf8(k.to_vec()).unwrap())
        .collect()
}

fn lines(rel: &str) -> BTreeSet<String> {
    fixture_text(rel).lines().map(str::to_owned).collect()
}

/// Every value in the file, recursively (to look for empty values).
fn all_values<'a>(b: Bucket<'a>, out: &mut Vec<&'a [u8]>) {
    for (_, e) in b.iter() {
        match e {
            Entry::Value(v) => out.push(v),
            Entry::Bucket(sub) => all_values(sub, out),
        }
    }
}

fn empty_buckets(b: Bucket<'_>) -> usize {
    b.buckets()
        .map(|(_, sub)| usize::from(sub.iter().next().is_none()) + empty_buckets(sub))
        .sum()
}

#[test]
fn every_fixture_passes_the_integrity_check() {
    for rel in common::ALL {
        let db = fixture(rel);
        assert_eq!(db.page_size(), 4096, "{rel}");
        let r = db.check().unwrap_or_else(|e| panic!("{e}"));
        assert!(r.freelist_persisted, "{rel}");
        assert!(r.leaked.is_empty(), "{rel}: leaked {:?}", r.leaked);
        assert_eq!(
            r.pages,
            2 + r.reachable + r.free + r.freelist_pages,
            "{rel}"
        );
        assert!(
            r.free > 0,
            "{rel}: a file the daemon has rewritten has free pages"
        );
    }
}

#[test]
fn volumes_match_docker_volume_ls_and_inspect() {
    let db = fixture("docker/metadata.db.gz");
    let volumes = db.bucket("volumes").expect("volumes bucket");
    assert_eq!(names(volumes), lines("docker/volumes.txt"));
    assert!(names(volumes).len() > 150);

    let inspect: BTreeMap<String, Value> =
        serde_json::from_str(&fixture_text("docker/volumes.json")).unwrap();
    // The API sometimes renders a null map as {}; the file keeps null (§5.1).
    let map = |v: &Value| {
        if v.is_null() {
            Value::Object(Default::default())
        } else {
            v.clone()
        }
    };
    let mut nulls = 0;
    for (name, json) in volumes.values() {
        let name = std::str::from_utf8(name).unwrap();
        let v: Value = serde_json::from_slice(json).unwrap();
        let want = &inspect[name];
        assert_eq!(v["Name"], name);
        assert_eq!(v["Driver"], want["Driver"], "{name}");
        assert_eq!(map(&v["Labels"]), map(&want["Labels"]), "{name}");
        assert_eq!(map(&v["Options"]), map(&want["Options"]), "{name}");
        nulls += usize::from(v["Labels"].is_null());
    }
    assert!(
        nulls >= 2,
        "volumes made by run -v and --mount have Labels null"
    );
    let big = volumes.get("bigvol").unwrap();
    assert!(big.len() > 9000);
    let tmp: Value = serde_json::from_slice(volumes.get("tmpvol").unwrap()).unwrap();
    assert_eq!(tmp["Options"]["type"], "tmpfs");

    let s = db.stats();
    assert!(
        s.branch_pages >= 1,
        "over 150 volumes need a branch page: {s:?}"
    );
    assert!(
        s.overflow_pages >= 2,
        "the 9 KB label needs overflow pages: {s:?}"
    );
    assert!(!volumes.is_inline());
    // Point lookups go through the branch page.
    for name in lines("docker/volumes.txt") {
        assert!(volumes.get(&name).is_some(), "{name}");
    }
    assert!(
        volumes.get("vol-000").is_none()
            && volumes.get("zzz").is_none()
            && volumes.get("").is_none()
    );
    let from: Vec<_> = volumes
        .iter_from("vol-15")
        .take(2)
        .map(|(k, _)| k.to_vec())
        .collect();
    assert_eq!(from, [b"vol-150".to_vec(), b"vol-151".to_vec()]);
}

#[test]
fn buildkit_records_match_system_df() {
    let db = fixture("docker/metadata_v2.db.gz");
    assert_eq!(
        names(db.root()),
        ["_external", "_index", "_main"].map(String::from).into()
    );
    let main = db.bucket("_main").unwrap();
    let records = names(main);
    let df = lines("docker/buildcache-ids.txt");
    assert!(df.len() >= 10);
    assert!(df.is_subset(&records), "every df ID is a _main record");
    // df hides the "twins" (records with a non-empty cache.equalMutable).
    let twins = main
        .buckets()
        .filter(|(_, r)| r.get("cache.equalMutable").is_some_and(|v| !v.is_empty()))
        .map(|(k, _)| String::from_utf8(k.to_vec()).unwrap())
        .collect::<BTreeSet<_>>();
    assert!(!twins.is_empty());
    assert!(twins.is_disjoint(&df));
    assert_eq!(records.len(), df.len() + twins.len());
    // Each record's keys hold {"value": ...} JSON, or nothing when cleared.
    let mut cleared = 0;
    for (_, r) in main.buckets() {
        for (k, v) in r.values() {
            if v.is_empty() {
                cleared += 1;
                continue;
            }
            let j: Value = serde_json::from_slice(v).unwrap_or_else(|e| panic!("{k:?}: {e}"));
            assert!(j.get("value").is_some(), "{k:?}");
        }
    }
    assert!(cleared > 0, "cleared keys are empty values");
    let index = db.bucket("_index").unwrap();
    assert!(index.values().all(|(_, v)| v.is_empty()));
    assert!(
        index
            .iter_from("cache-dir:")
            .next()
            .unwrap()
            .0
            .starts_with(b"cache-dir:/fixcache::")
    );
    let s = db.stats();
    assert!(
        s.inline_buckets > 20 && s.buckets > s.inline_buckets,
        "{s:?}"
    );
}

#[test]
fn buildkit_snapshots_name_overlay2_dirs() {
    let db = fixture("docker/snapshots.db.gz");
    let dirs = lines("docker/overlay2-dirs.txt");
    let mut checked = 0;
    for (key, snap) in db.root().buckets() {
        let key = String::from_utf8(key.to_vec()).unwrap();
        if snap.get("parent").is_some() || snap.get("iscommitted").is_some() {
            assert!(
                dirs.contains(&key),
                "{key} was created by Prepare, so it is an overlay2 dir"
            );
            checked += 1;
        }
        if let Some(c) = snap.get("committed") {
            assert!(dirs.contains(std::str::from_utf8(c).unwrap()));
            checked += 1;
        }
        assert_eq!(snap.get("iscommitted").map(<[u8]>::len).unwrap_or(0), 0);
    }
    assert!(checked >= 10);
}

#[test]
fn buildkit_solver_cache_links_both_ways() {
    let db = fixture("docker/cache.db.gz");
    assert_eq!(
        names(db.root()),
        ["_backlinks", "_byresult", "_links", "_result"]
            .map(String::from)
            .into()
    );
    let byresult = db.bucket("_byresult").unwrap();
    let mut n = 0;
    for (key, results) in db.bucket("_result").unwrap().buckets() {
        for (result, json) in results.values() {
            let j: Value = serde_json::from_slice(json).unwrap();
            assert_eq!(j["ID"].as_str().unwrap().as_bytes(), result);
            let back = byresult.bucket(result).expect("_byresult mirrors _result");
            assert_eq!(back.get(key), Some(&b""[..]));
            // Result ids are <worker>::<record id>; the record may be gone.
            let record = std::str::from_utf8(result)
                .unwrap()
                .strip_prefix("moby::")
                .unwrap();
            assert_eq!(record.len(), 25, "{record}");
            n += 1;
        }
    }
    assert!(n >= 5);
    assert!(db.stats().branch_pages >= 1);
}

#[test]
fn buildkit_leases_are_records() {
    let db = fixture("docker/containerdmeta.db.gz");
    let records = names(fixture("docker/metadata_v2.db.gz").bucket("_main").unwrap());
    let leases = db.bucket_path(["v1", "buildkit", "leases"]).unwrap();
    assert!(!names(leases).is_empty());
    for (id, lease) in leases.buckets() {
        let id = std::str::from_utf8(id).unwrap();
        assert!(records.contains(id), "lease {id} is a record");
        // Go time.MarshalBinary: version 1, 15 bytes, UTC zone -1.
        let created = lease.get("createdat").unwrap();
        assert_eq!(
            (created.len(), created[0], &created[13..]),
            (15, 1, &[0xff, 0xff][..])
        );
        assert!(
            lease.bucket_path(["snapshots", "default"]).is_some(),
            "{id}"
        );
    }
    assert!(
        db.stats().max_depth >= 6,
        "v1/buildkit/leases/ID/snapshots/default is deep"
    );
}

#[test]
fn libnetwork_store_lists_the_networks() {
    let db = fixture("docker/local-kv.db.gz");
    let kv = db.bucket("libnetwork").unwrap();
    let nets = lines("docker/networks.txt");
    assert!(!nets.is_empty());
    for line in &nets {
        let (id, name) = line.split_once(' ').unwrap();
        let v = kv
            .get(format!("docker/network/v1.0/network/{id}/"))
            .unwrap_or_else(|| panic!("{id}"));
        // An 8-byte little-endian index, then JSON.
        let j: Value = serde_json::from_slice(&v[8..]).unwrap();
        assert_eq!(
            (j["id"].as_str(), j["name"].as_str()),
            (Some(id), Some(name))
        );
    }
}

fn uvarint(b: &[u8]) -> u64 {
    let (mut v, mut shift) = (0u64, 0);
    for &byte in b {
        v |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            break;
        }
        shift += 7;
    }
    v
}

#[test]
fn containerd_images_and_snapshots_match_ctr() {
    let meta = fixture("containerd/meta.db.gz");
    let store = fixture("containerd/metadata.db.gz");
    assert_eq!(
        meta.bucket("v1").unwrap().get("version"),
        Some(&[6u8][..]),
        "schema version 3 as a varint"
    );
    let mut backend_names = BTreeSet::new();
    for ns in ["moby", "k8s.io", "default"] {
        let nsb = meta.bucket_path(["v1", ns]).unwrap();
        assert_eq!(
            names(nsb.bucket("images").unwrap()),
            lines(&format!("containerd/images.{ns}.txt")),
            "{ns}"
        );
        let snaps = nsb.bucket_path(["snapshots", "overlayfs"]).unwrap();
        assert_eq!(
            names(snaps),
            lines(&format!("containerd/snapshots.{ns}.txt")),
            "{ns}"
        );
        let mut max_seq = 0;
        for (key, s) in snaps.buckets() {
            let name = std::str::from_utf8(s.get("name").unwrap())
                .unwrap()
                .to_owned();
            let mut parts = name.splitn(3, '/');
            assert_eq!(parts.next(), Some(ns));
            max_seq = max_seq.max(parts.next().unwrap().parse::<u64>().unwrap());
            assert_eq!(parts.next().unwrap().as_bytes(), key);
            backend_names.insert(name);
        }
        // The namespace's snapshotter bucket sequence is the last one handed out.
        assert_eq!(snaps.sequence(), max_seq, "{ns}");
        for (_, image) in nsb.bucket("images").unwrap().buckets() {
            let target = image.bucket("target").unwrap();
            assert!(target.get("digest").unwrap().starts_with(b"sha256:"));
        }
    }
    // The snapshotter's own store holds exactly those backend snapshots, and
    // its sequence is the highest id it handed out.
    let snapshots = store.bucket_path(["v1", "snapshots"]).unwrap();
    assert_eq!(names(snapshots), backend_names);
    let max_id = snapshots
        .buckets()
        .map(|(_, s)| uvarint(s.get("id").unwrap()))
        .max()
        .unwrap();
    assert_eq!(snapshots.sequence(), max_id);
    let mut empty = Vec::new();
    all_values(meta.root(), &mut empty);
    assert!(meta.stats().buckets > 100 && empty.iter().any(|v| v.is_empty()));
    assert!(
        empty_buckets(meta.root()) + empty_buckets(store.root()) > 0,
        "empty label buckets"
    );
}

#[test]
fn open_from_disk_equals_from_bytes_and_takes_no_lock() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("metadata.db");
    std::fs::write(&path, fixture_bytes("docker/metadata.db.gz")).unwrap();
    let a = Db::open(&path).unwrap();
    let b = fixture("docker/metadata.db.gz");
    assert_eq!(a.meta(), b.meta());
    assert_eq!(a.as_bytes(), b.as_bytes());
    assert_eq!(a.file(), path);
    assert_eq!(bbolt::probe_lock(&path).unwrap(), LockProbe::Free);
    // A writer's exclusive lock is seen, and open still reads the file.
    let writer = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&path)
        .unwrap();
    writer.try_lock().unwrap();
    assert_eq!(bbolt::probe_lock(&path).unwrap(), LockProbe::HeldExclusive);
    assert_eq!(Db::open(&path).unwrap().txid(), a.txid());
    writer.unlock().unwrap();
    assert_eq!(bbolt::probe_lock(&path).unwrap(), LockProbe::Free);
    assert!(bbolt::probe_lock(dir.path().join("missing")).is_err());
}
