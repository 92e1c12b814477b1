//! `image/<driver>/imagedb`: image configs (named by their sha256) and metadata
//! (moby `daemon/internal/image/fs.go`, `store.go`).

use super::Paths;
use crate::ids::{BadDigest, DiffId, Digest, ImageId};
use crate::store::fsread::{Dir, EntryFiles, SharedListings, open_listed};
use crate::store::{Anomaly, AnomalyKind, Image};
use rayon::prelude::*;
use serde::Deserialize;
use std::cell::RefCell;
use std::collections::BTreeMap;

/// The fields of an image config the daemon's restore and `df` use; the
/// rest (history, env, ...) is skipped unparsed.
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
    diff_ids: Option<Vec<RawDiffId>>,
}

/// A `diff_ids` entry, parsed as it is read (no string kept): a digest, or
/// the text that is not one.
struct RawDiffId(Result<DiffId, BadDigest>);

impl<'de> Deserialize<'de> for RawDiffId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = RawDiffId;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a string")
            }
            fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<RawDiffId, E> {
                Ok(RawDiffId(DiffId::parse(s)))
            }
        }
        d.deserialize_str(V)
    }
}

/// Reads every config in `imagedb/content/sha256` and its metadata, in parallel.
pub fn read(
    paths: &Paths,
    share: Option<&SharedListings>,
) -> (BTreeMap<ImageId, Image>, Vec<Anomaly>) {
    let content = paths.image_configs();
    let (listing, dir) = match open_listed(&content, share) {
        Ok(x) => x,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return (BTreeMap::new(), Vec::new());
        }
        Err(e) => return (BTreeMap::new(), vec![unlisted(content, &e.to_string())]),
    };
    let meta_path = paths.image_metadata_dir();
    let meta = Dir::open(&meta_path).ok();
    // Like the daemon's Walk: names that are not 64-hex (temp files) are skipped.
    let results: Vec<(Option<Image>, Vec<Anomaly>)> = listing
        .names
        .par_iter()
        .filter_map(|n| Some((n, ImageId::from_hex(n)?)))
        .map(|(name, id)| {
            let (img, mut anomalies) = read_config(&dir.entry(""), name, id);
            let img = img.map(|mut img| {
                let hex = id.hex();
                let by_path = meta_path.join(&hex);
                let files = match &meta {
                    Some(m) => m.entry(&hex),
                    None => EntryFiles::by_path(&by_path),
                };
                read_metadata(&files, &mut img, &mut anomalies);
                img
            });
            (img, anomalies)
        })
        .collect();
    assemble(results)
}

/// `imagedb/content/sha256` could not be listed.
pub fn unlisted(content: std::path::PathBuf, e: &str) -> Anomaly {
    Anomaly {
        kind: AnomalyKind::Unreadable,
        path: content,
        message: format!("cannot list image configs: {e}; the daemon will not start"),
    }
}

/// The images and anomalies of each config read, in name order.
pub fn assemble(
    results: Vec<(Option<Image>, Vec<Anomaly>)>,
) -> (BTreeMap<ImageId, Image>, Vec<Anomaly>) {
    let mut anomalies = Vec::new();
    // Collected, not inserted one by one: a map built from an iterator packs
    // its nodes full, where in-order inserts leave each about 60% used.
    let images = results
        .into_iter()
        .filter_map(|(img, mut a)| {
            anomalies.append(&mut a);
            img.map(|i| (i.id, i))
        })
        .collect();
    (images, anomalies)
}

thread_local! {
    /// Configs are read into this buffer and parsed from it: one
    /// allocation per thread, not one per image.
    static CONFIG: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// Reads config `name` (file `name` of `dir`) and checks it the way the
/// daemon's restore does: the image without its metadata, or the anomaly
/// that makes it no image.
pub fn read_config(dir: &EntryFiles<'_>, name: &str, id: ImageId) -> (Option<Image>, Vec<Anomaly>) {
    CONFIG.with(|b| match b.try_borrow_mut() {
        Ok(mut buf) => parse_config(dir, name, id, &mut buf),
        Err(_) => parse_config(dir, name, id, &mut Vec::new()),
    })
}

fn parse_config(
    dir: &EntryFiles<'_>,
    name: &str,
    id: ImageId,
    bytes: &mut Vec<u8>,
) -> (Option<Image>, Vec<Anomaly>) {
    let bad = |kind, message: String| {
        let a = Anomaly {
            kind,
            path: dir.file(name),
            message,
        };
        (None, vec![a])
    };
    match dir.read(name, bytes) {
        Ok(true) => {}
        Ok(false) => return (None, Vec::new()), // raced with a delete
        Err(e) => return bad(AnomalyKind::Unreadable, format!("cannot read: {e}")),
    }
    let actual = Digest::of_bytes(bytes);
    if actual != id.0 {
        return bad(
            AnomalyKind::ConfigDigest,
            format!("content hashes to {actual}, not its name; the daemon skips this image"),
        );
    }
    let raw: RawConfig = match serde_json::from_slice(bytes) {
        Ok(r) => r,
        Err(e) => return bad(AnomalyKind::ConfigParse, format!("invalid JSON: {e}")),
    };
    let Some(rootfs) = raw.rootfs else {
        return bad(
            AnomalyKind::ConfigParse,
            "no \"rootfs\" key; the daemon rejects this image".into(),
        );
    };
    let raw_ids = rootfs.diff_ids.unwrap_or_default();
    let mut diff_ids = Vec::with_capacity(raw_ids.len());
    for d in raw_ids {
        match d.0 {
            Ok(d) => diff_ids.push(d),
            Err(e) => return bad(AnomalyKind::ConfigParse, format!("rootfs.diff_ids: {e}")),
        }
    }
    let created_unix = raw.created.as_deref().and_then(parse_time);
    let img = Image {
        id,
        created: raw.created,
        created_unix,
        labels: raw.config.and_then(|c| c.labels).unwrap_or_default().into(),
        diff_ids,
        os: raw.os,
        parent: None,
        last_updated: None,
        built_locally: false,
        config_bytes: bytes.len() as u64,
    };
    (Some(img), Vec::new())
}

/// `imagedb/metadata/sha256/<id>/`: `parent`, `lastUpdated`, `builtLocally`,
/// into `img`.
pub fn read_metadata(files: &EntryFiles<'_>, img: &mut Image, anomalies: &mut Vec<Anomaly>) {
    let mut bad = |file: &str, message: String| {
        anomalies.push(Anomaly {
            kind: AnomalyKind::ImageMetadata,
            path: files.file(file),
            message,
        })
    };
    img.parent = match files.read_text("parent") {
        Ok(None) => None,
        Ok(Some(s)) if s.is_empty() => None,
        Ok(Some(s)) => match ImageId::parse(s.trim()) {
            Ok(p) => Some(p),
            Err(e) => {
                bad("parent", e.to_string());
                None
            }
        },
        Err(e) => {
            bad("parent", e);
            None
        }
    };
    img.last_updated = match files.read_text("lastUpdated") {
        Ok(s) => s.filter(|s| !s.is_empty()),
        Err(e) => {
            bad("lastUpdated", e);
            None
        }
    };
    img.built_locally = matches!(files.read_opt("builtLocally"), Ok(Some(_)));
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

        let (images, anomalies) = read(&p, None);
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
        let (images, anomalies) = read(&p, None);
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
