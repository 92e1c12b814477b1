//! Volumes: the `local` driver's directories under `volumes/` and the
//! records of `volumes/metadata.db`, read the way the daemon's volume
//! service assembles them at start (moby `daemon/volume/local/local.go`
//! `New`; `daemon/volume/service/store.go` `restore` and `list`; `db.go`).
//!
//! * Every directory under `volumes/` is a `local` volume, with or without
//!   a record.
//! * A record (bucket `volumes`, key = name, value =
//!   `{"Name","Driver","Labels","Options"}`) gives the labels and options
//!   of the volume of that name. A `local` record without a directory is
//!   dropped by the daemon at start, so it is no volume here either; a
//!   record of another driver (a plugin) is kept as that driver's volume.
//!
//! `metadata.db` is read with the bbolt crate, which never locks, so a
//! running daemon is not held up. A file that cannot be read or is damaged is
//! an anomaly naming it (and the page); the volumes are then listed from
//! their directories, with the options the local driver keeps in
//! `opts.json`, and without labels.

use super::fsread::{SharedListings, list_dir_opt_shared, read_opt};
use super::paths::DockerRoot;
use super::{Anomaly, AnomalyKind, Volume};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::Path;

/// The bucket the volume store keeps its records in (`db.go` `volumeBucketName`).
const BUCKET: &str = "volumes";

/// The `local` driver's name (`daemon/volume/volume.go` `DefaultDriverName`).
const LOCAL: &str = "local";

/// One record of `metadata.db` (`db.go` `volumeMetadata`).
#[derive(Deserialize)]
struct Record {
    #[serde(rename = "Driver", default)]
    driver: Option<String>,
    #[serde(rename = "Labels", default)]
    labels: Option<BTreeMap<String, String>>,
    #[serde(rename = "Options", default)]
    options: Option<BTreeMap<String, String>>,
}

/// `opts.json` of a local volume (`local.go` `optsConfig`).
#[derive(Deserialize, Default)]
struct Opts {
    #[serde(rename = "MountType", default)]
    mount_type: String,
    #[serde(rename = "MountOpts", default)]
    mount_opts: String,
    #[serde(rename = "MountDevice", default)]
    mount_device: String,
}

/// The volumes, sorted by name, and the anomalies met.
pub fn read(root: &DockerRoot, share: Option<&SharedListings>) -> (Vec<Volume>, Vec<Anomaly>) {
    let mut anomalies = Vec::new();
    let dirs: Vec<String> = match list_dir_opt_shared(&root.volumes(), share) {
        Ok(l) => l
            .names
            .iter()
            .zip(&l.is_dir)
            .filter(|(_, is_dir)| **is_dir)
            .map(|(n, _)| n.clone())
            .collect(),
        Err(e) => {
            anomalies.push(Anomaly {
                kind: AnomalyKind::Unreadable,
                path: root.volumes(),
                message: format!("cannot list volumes: {e}"),
            });
            Vec::new()
        }
    };
    let records = records(&root.volume_db(), &mut anomalies);

    let mut volumes: Vec<Volume> = dirs
        .iter()
        .map(|name| {
            let (labels, options) = match &records {
                Some(r) => r
                    .get(name)
                    .map_or((None, None), |r| (r.labels.clone(), r.options.clone())),
                None => (None, local_opts(root, name)),
            };
            Volume {
                name: name.clone(),
                driver: LOCAL.to_string(),
                labels,
                options,
            }
        })
        .collect();
    for (name, r) in records.iter().flatten() {
        let driver = r.driver.as_deref().unwrap_or("");
        if driver.is_empty() || driver == LOCAL || dirs.binary_search(name).is_ok() {
            continue;
        }
        volumes.push(Volume {
            name: name.clone(),
            driver: driver.to_string(),
            labels: r.labels.clone(),
            options: r.options.clone(),
        });
    }
    volumes.sort_by(|a, b| a.name.cmp(&b.name));
    (volumes, anomalies)
}

/// The records of `metadata.db` by name: `Some(empty)` when there is no such
/// file (no volume was ever created), `None` when it cannot be read.
fn records(db_path: &Path, anomalies: &mut Vec<Anomaly>) -> Option<BTreeMap<String, Record>> {
    if !db_path.exists() {
        return Some(BTreeMap::new());
    }
    let db = match bbolt::Db::open(db_path) {
        Ok(db) => db,
        Err(e) => {
            // The error names the file; the anomaly's path does already.
            let text = e.to_string();
            let prefix = format!("{}: ", e.file().display());
            let cause = text.strip_prefix(&prefix).unwrap_or(&text);
            anomalies.push(Anomaly {
                kind: AnomalyKind::Volumes,
                path: db_path.to_path_buf(),
                message: format!(
                    "{cause}; volumes are listed from their directories, without labels"
                ),
            });
            return None;
        }
    };
    let mut out = BTreeMap::new();
    let Some(bucket) = db.bucket(BUCKET) else {
        return Some(out);
    };
    for (key, value) in bucket.values() {
        let Ok(name) = std::str::from_utf8(key) else {
            anomalies.push(Anomaly {
                kind: AnomalyKind::Volumes,
                path: db_path.to_path_buf(),
                message: format!("record {key:?}: the volume name is not UTF-8; skipped"),
            });
            continue;
        };
        match serde_json::from_slice::<Record>(value) {
            Ok(r) => {
                out.insert(name.to_string(), r);
            }
            Err(e) => anomalies.push(Anomaly {
                kind: AnomalyKind::Volumes,
                path: db_path.to_path_buf(),
                message: format!(
                    "record {name:?}: invalid JSON ({e}); the volume is listed without labels"
                ),
            }),
        }
    }
    Some(out)
}

/// The mount options the local driver keeps in `opts.json`, in the keys
/// `docker volume create --opt` uses (`type`, `o`, `device`); `None` without
/// the file or when it holds none (`local.go` `New` ignores an empty one).
fn local_opts(root: &DockerRoot, name: &str) -> Option<BTreeMap<String, String>> {
    let bytes = read_opt(&root.volume_opts(name)).ok()??;
    let o: Opts = serde_json::from_slice(&bytes).unwrap_or_default();
    let map: BTreeMap<String, String> = [
        ("type", o.mount_type),
        ("o", o.mount_opts),
        ("device", o.mount_device),
    ]
    .into_iter()
    .filter(|(_, v)| !v.is_empty())
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    (!map.is_empty()).then_some(map)
}

#[cfg(test)]
mod tests {
    use super::*;
    use bbolt::build::{Options, Tree, image};
    use std::fs;

    fn root_with(records: &[(&str, &str)], dirs: &[&str]) -> (tempfile::TempDir, DockerRoot) {
        let t = tempfile::tempdir().unwrap();
        let root = DockerRoot::new(t.path());
        fs::create_dir_all(root.volumes()).unwrap();
        for d in dirs {
            fs::create_dir_all(root.volume_data(d)).unwrap();
        }
        let mut tree = Tree::new();
        let b = tree.bucket(BUCKET);
        for (k, v) in records {
            b.put(*k, *v);
        }
        fs::write(root.volume_db(), image(&tree, &Options::default()).unwrap()).unwrap();
        (t, root)
    }

    #[test]
    fn directories_are_local_volumes_and_records_add_labels_and_options() {
        let anon = "6b".repeat(32);
        let anon_rec =
            format!(r#"{{"Name":"{anon}","Driver":"local","Labels":null,"Options":null}}"#);
        let (_t, root) = root_with(
            &[
                (
                    "data1",
                    r#"{"Name":"data1","Driver":"local","Labels":{"team":"a"},"Options":{}}"#,
                ),
                (anon.as_str(), anon_rec.as_str()),
                (
                    "tmpvol",
                    r#"{"Name":"tmpvol","Driver":"local","Labels":{},"Options":{"type":"tmpfs"}}"#,
                ),
                (
                    "gone",
                    r#"{"Name":"gone","Driver":"local","Labels":{},"Options":{}}"#,
                ),
                (
                    "remote",
                    r#"{"Name":"remote","Driver":"nfsplugin","Labels":null,"Options":null}"#,
                ),
            ],
            &["data1", &anon, "tmpvol", "nodb"],
        );
        // Not directories: not volumes (`backingFsBlockDev`, files).
        fs::write(root.volumes().join("stray-file"), "x").unwrap();
        let (v, a) = read(&root, None);
        assert!(a.is_empty(), "{a:?}");
        let names: Vec<&str> = v.iter().map(|v| v.name.as_str()).collect();
        assert_eq!(
            names,
            vec![anon.as_str(), "data1", "nodb", "remote", "tmpvol"]
        );
        let by = |n: &str| v.iter().find(|v| v.name == n).unwrap();
        assert_eq!(by("data1").labels.as_ref().unwrap()["team"], "a");
        assert_eq!(by("data1").options, Some(BTreeMap::new()));
        assert!(by("data1").in_system_df() && !by("data1").is_anonymous());
        assert!(by(&anon).labels.is_none() && by(&anon).is_anonymous());
        assert!(!by("tmpvol").in_system_df());
        assert!(by("nodb").labels.is_none() && by("nodb").in_system_df());
        assert!(!by("nodb").is_anonymous(), "not a 64-hex name");
        assert_eq!(by("remote").driver, "nfsplugin");
        assert!(!by("remote").in_system_df());
    }

    #[test]
    fn anonymous_by_label_or_by_unlabelled_random_name() {
        let v = |name: &str, labels: Option<&[(&str, &str)]>| Volume {
            name: name.into(),
            driver: "local".into(),
            labels: labels.map(|l| {
                l.iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect()
            }),
            options: None,
        };
        let hex = "0123456789abcdef".repeat(4);
        assert!(v("x", Some(&[(Volume::ANONYMOUS_LABEL, "")])).is_anonymous());
        assert!(v(&hex, None).is_anonymous());
        // `docker volume create <64 hex>` stores `{}`: named.
        assert!(!v(&hex, Some(&[])).is_anonymous());
        assert!(!v(&hex.to_uppercase(), None).is_anonymous());
        assert!(!v("data3", None).is_anonymous());
    }

    #[test]
    fn malformed_record_is_an_anomaly_naming_file_and_key() {
        let (_t, root) = root_with(&[("bad", "{\"Name\":"), ("ok", "{}")], &["bad", "ok"]);
        let (v, a) = read(&root, None);
        assert_eq!(v.len(), 2);
        assert_eq!(a.len(), 1, "{a:?}");
        assert_eq!(a[0].kind, AnomalyKind::Volumes);
        assert_eq!(a[0].path, root.volume_db());
        assert!(a[0].message.contains("\"bad\""), "{}", a[0].message);
    }

    #[test]
    fn damaged_db_is_an_anomaly_and_directories_still_count() {
        let (_t, root) = root_with(
            &[("data1", r#"{"Labels":{"a":"b"}}"#)],
            &["data1", "tmpvol"],
        );
        fs::write(
            root.volume_opts("tmpvol"),
            r#"{"MountType":"tmpfs","MountOpts":"size=1m","MountDevice":"tmpfs","Quota":{"Size":0}}"#,
        )
        .unwrap();
        let db = root.volume_db();
        let good = fs::read(&db).unwrap();
        // Truncated, zeroed metas, a damaged leaf page.
        let mut zeroed = good.clone();
        zeroed[..8192].fill(0);
        let leaf = leaf_damage(&good);
        for (what, bytes) in [
            ("truncated", good[..100].to_vec()),
            ("zeroed metas", zeroed),
            ("damaged page", leaf),
        ] {
            fs::write(&db, &bytes).unwrap();
            let (v, a) = read(&root, None);
            assert_eq!(a.len(), 1, "{what}: {a:?}");
            assert_eq!(a[0].kind, AnomalyKind::Volumes);
            assert_eq!(a[0].path, db);
            assert!(
                !a[0].message.contains(&db.display().to_string()),
                "{what}: the path is named once: {}",
                a[0].message
            );
            let names: Vec<&str> = v.iter().map(|v| v.name.as_str()).collect();
            assert_eq!(names, vec!["data1", "tmpvol"], "{what}");
            assert!(v[0].labels.is_none(), "{what}");
            let tmp = &v[1];
            assert_eq!(
                tmp.options.as_ref().map(|o| o["type"].as_str()),
                Some("tmpfs"),
                "{what}: options from opts.json"
            );
            assert!(!tmp.in_system_df());
        }
        fs::write(&db, &good[..100]).unwrap();
        let (_, a) = read(&root, None);
        assert!(a[0].message.contains("100 bytes"), "{}", a[0].message);
        fs::write(&db, leaf_damage(&good)).unwrap();
        let (_, a) = read(&root, None);
        assert!(
            a[0].message.starts_with("page "),
            "names the page: {}",
            a[0].message
        );
    }

    /// The root page's flags made neither branch nor leaf.
    fn leaf_damage(good: &[u8]) -> Vec<u8> {
        let meta = bbolt::Db::from_bytes(good.to_vec(), "x").unwrap().meta();
        let page = (meta.root * u64::from(meta.page_size)) as usize;
        let mut b = good.to_vec();
        b[page + 8..page + 10].copy_from_slice(&0x7777u16.to_le_bytes());
        b
    }

    #[test]
    fn no_volumes_dir_and_no_db_are_nothing() {
        let t = tempfile::tempdir().unwrap();
        let (v, a) = read(&DockerRoot::new(t.path()), None);
        assert!(v.is_empty() && a.is_empty());
    }
}
