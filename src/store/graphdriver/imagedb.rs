//! `image/<driver>/imagedb`: image configs (named by their sha256) and metadata
//! (moby `daemon/internal/image/fs.go`, `store.go`).

use super::Paths;
use crate::ids::{DiffId, Digest, ImageId};
use crate::store::fsread::{list_dir_opt, read_opt, read_text_opt};
use crate::store::{Anomaly, AnomalyKind, Image};
use rayon::prelude::*;
use serde::Deserialize;
use std::collections::BTreeMap;

#[derive(Deserialize)]
struct RawConfig {
    created: Option<String>,
    os: Option<String>,
    config: Option<RawRunConfig>,
    rootfs: Option<RawRootFs>,
}

#[derive(Deserialize)]
struct RawRunConfig {
    #[serde(rename = "Labels")]
    labels: Option<BTreeMap<String, String>>,
}

#[derive(Deserialize)]
struct RawRootFs {
    diff_ids: Option<Vec<String>>,
}

/// Reads every config in `imagedb/content/sha256` and its metadata, in parallel.
pub fn read(paths: &Paths) -> (BTreeMap<ImageId, Image>, Vec<Anomaly>) {
    let content = paths.image_configs();
    let mut anomalies = Vec::new();
    let listing = match list_dir_opt(&content) {
        Ok(l) => l,
        Err(e) => {
            anomalies.push(Anomaly {
                kind: AnomalyKind::Unreadable,
                path: content,
                message: format!("cannot list image configs: {e}; the daemon will not start"),
            });
            return (BTreeMap::new(), anomalies);
        }
    };
    // Like the daemon's Walk: names that are not 64-hex (temp files) are skipped.
    let results: Vec<(Option<Image>, Vec<Anomaly>)> = listing
        .names
        .par_iter()
        .filter_map(|n| ImageId::from_hex(n))
        .map(|id| read_one(paths, id))
        .collect();
    let mut images = BTreeMap::new();
    for (img, mut a) in results {
        anomalies.append(&mut a);
        if let Some(img) = img {
            images.insert(img.id, img);
        }
    }
    (images, anomalies)
}

fn read_one(paths: &Paths, id: ImageId) -> (Option<Image>, Vec<Anomaly>) {
    let mut anomalies = Vec::new();
    let path = paths.image_config(&id);
    let bad = |kind, message: String| Anomaly {
        kind,
        path: path.clone(),
        message,
    };
    let bytes = match read_opt(&path) {
        Ok(Some(b)) => b,
        Ok(None) => return (None, anomalies), // raced with a delete
        Err(e) => {
            anomalies.push(bad(AnomalyKind::Unreadable, format!("cannot read: {e}")));
            return (None, anomalies);
        }
    };
    let actual = Digest::of_bytes(&bytes);
    if actual != id.0 {
        anomalies.push(bad(
            AnomalyKind::ConfigDigest,
            format!("content hashes to {actual}, not its name; the daemon skips this image"),
        ));
        return (None, anomalies);
    }
    let raw: RawConfig = match serde_json::from_slice(&bytes) {
        Ok(r) => r,
        Err(e) => {
            anomalies.push(bad(AnomalyKind::ConfigParse, format!("invalid JSON: {e}")));
            return (None, anomalies);
        }
    };
    let Some(rootfs) = raw.rootfs else {
        anomalies.push(bad(
            AnomalyKind::ConfigParse,
            "no \"rootfs\" key; the daemon rejects this image".into(),
        ));
        return (None, anomalies);
    };
    let mut diff_ids = Vec::new();
    for d in rootfs.diff_ids.unwrap_or_default() {
        match DiffId::parse(&d) {
            Ok(d) => diff_ids.push(d),
            Err(e) => {
                anomalies.push(bad(
                    AnomalyKind::ConfigParse,
                    format!("rootfs.diff_ids: {e}"),
                ));
                return (None, anomalies);
            }
        }
    }
    let created_unix = raw.created.as_deref().and_then(parse_time);

    let meta = read_metadata(paths, &id, &mut anomalies);
    let img = Image {
        id,
        created: raw.created,
        created_unix,
        labels: raw.config.and_then(|c| c.labels).unwrap_or_default(),
        diff_ids,
        os: raw.os,
        parent: meta.parent,
        last_updated: meta.last_updated,
        built_locally: meta.built_locally,
        config_bytes: bytes.len() as u64,
    };
    (Some(img), anomalies)
}

/// `imagedb/metadata/sha256/<id>/`: `parent`, `lastUpdated`, `builtLocally`.
struct Metadata {
    parent: Option<ImageId>,
    last_updated: Option<String>,
    built_locally: bool,
}

fn read_metadata(paths: &Paths, id: &ImageId, anomalies: &mut Vec<Anomaly>) -> Metadata {
    let meta = paths.image_metadata(id);
    let parent = match read_text_opt(&meta.join("parent")) {
        Ok(None) => None,
        Ok(Some(s)) if s.is_empty() => None,
        Ok(Some(s)) => match ImageId::parse(s.trim()) {
            Ok(p) => Some(p),
            Err(e) => {
                anomalies.push(Anomaly {
                    kind: AnomalyKind::ImageMetadata,
                    path: meta.join("parent"),
                    message: e.to_string(),
                });
                None
            }
        },
        Err(e) => {
            anomalies.push(Anomaly {
                kind: AnomalyKind::ImageMetadata,
                path: meta.join("parent"),
                message: e,
            });
            None
        }
    };
    let last_updated = match read_text_opt(&meta.join("lastUpdated")) {
        Ok(s) => s.filter(|s| !s.is_empty()),
        Err(e) => {
            anomalies.push(Anomaly {
                kind: AnomalyKind::ImageMetadata,
                path: meta.join("lastUpdated"),
                message: e,
            });
            None
        }
    };
    let built_locally = matches!(read_opt(&meta.join("builtLocally")), Ok(Some(_)));
    Metadata {
        parent,
        last_updated,
        built_locally,
    }
}

/// RFC3339 (with any fraction) to Unix seconds. Go's zero time parses too.
pub fn parse_time(s: &str) -> Option<i64> {
    s.parse::<jiff::Timestamp>().ok().map(|t| t.as_second())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::path::Path;

    /// A root's paths and its imagedb dir.
    fn setup(t: &tempfile::TempDir) -> (Paths, std::path::PathBuf) {
        let p = Paths::new(&t.path().join("r"), "overlay2");
        let db = p.imagedb();
        fs::create_dir_all(&db).unwrap();
        (p, db)
    }

    fn put(db: &Path, json: &str) -> ImageId {
        let id = ImageId(Digest::of_bytes(json.as_bytes()));
        fs::create_dir_all(db.join("content/sha256")).unwrap();
        fs::write(db.join("content/sha256").join(id.hex()), json).unwrap();
        id
    }

    #[test]
    fn reads_configs_and_metadata() {
        let t = tempfile::tempdir().unwrap();
        let (p, db) = setup(&t);
        let db = db.as_path();
        let d = format!("sha256:{}", "a".repeat(64));
        let parent = put(db, r#"{"rootfs":{"type":"layers","diff_ids":[]}}"#);
        let id = put(
            db,
            &format!(
                r#"{{"created":"2019-01-02T03:04:05.123456789Z","os":"linux","config":{{"Labels":{{"a":"b"}}}},"rootfs":{{"type":"layers","diff_ids":["{d}"]}}}}"#
            ),
        );
        let meta = db.join("metadata/sha256").join(id.hex());
        fs::create_dir_all(&meta).unwrap();
        fs::write(meta.join("parent"), parent.to_string()).unwrap();
        fs::write(meta.join("lastUpdated"), "2024-01-01T00:00:00+01:00").unwrap();
        fs::write(meta.join("builtLocally"), [1u8]).unwrap();
        fs::write(db.join("content/sha256/.tmp-x123"), "junk").unwrap();

        let (images, anomalies) = read(&p);
        assert!(anomalies.is_empty(), "{anomalies:?}");
        assert_eq!(images.len(), 2);
        let img = &images[&id];
        assert_eq!(img.parent, Some(parent));
        assert_eq!(img.labels["a"], "b");
        assert_eq!(img.diff_ids.len(), 1);
        assert_eq!(img.created_unix, Some(1546398245));
        assert!(img.built_locally);
        assert!(img.last_updated.is_some());
    }

    #[test]
    fn bad_configs_become_anomalies() {
        let t = tempfile::tempdir().unwrap();
        let (p, db) = setup(&t);
        let db = db.as_path();
        put(db, r#"{"rootfs":{"type":"layers","diff_ids":["#); // truncated
        put(db, r#"{"os":"linux"}"#); // no rootfs
        let wrong = "b".repeat(64);
        fs::write(db.join("content/sha256").join(&wrong), "{}").unwrap();
        let (images, anomalies) = read(&p);
        assert!(images.is_empty());
        let kinds: Vec<_> = anomalies.iter().map(|a| a.kind).collect();
        assert_eq!(anomalies.len(), 3, "{anomalies:?}");
        assert!(kinds.contains(&AnomalyKind::ConfigDigest));
        assert_eq!(
            kinds
                .iter()
                .filter(|k| **k == AnomalyKind::ConfigParse)
                .count(),
            2
        );
        assert!(anomalies.iter().all(|a| a.path.starts_with(db)));
    }

    #[test]
    fn go_zero_time_parses() {
        assert_eq!(parse_time("0001-01-01T00:00:00Z"), Some(-62135596800));
        assert_eq!(
            parse_time("2024-05-01T12:00:00.123456789+02:00"),
            Some(1714557600)
        );
        assert_eq!(parse_time("yesterday"), None);
    }
}
