//! BuildKit's footprint in a graphdriver root (§12). dockgc does not parse bbolt:
//! following the format doc's conservative rule, any driver dir name or chain ID
//! that occurs as a byte substring of `buildkit/snapshots.db` is BuildKit's.

use super::Buildkit;
use std::collections::HashSet;
use std::path::Path;

/// `candidates` are driver dir names and chain-ID hex strings worth asking about.
pub fn read<'a>(dir: &Path, candidates: impl Iterator<Item = &'a str>) -> Buildkit {
    let present = dir.is_dir();
    let db = dir.join("snapshots.db");
    let Ok(bytes) = std::fs::read(&db) else {
        return Buildkit {
            present,
            snapshots_db: false,
            referenced_names: Vec::new(),
        };
    };
    let mut referenced_names: Vec<String> = {
        let idx = SubstringIndex::new(&bytes);
        candidates
            .filter(|c| idx.contains(c))
            .map(str::to_string)
            .collect()
    };
    referenced_names.sort();
    referenced_names.dedup();
    Buildkit {
        present,
        snapshots_db: true,
        referenced_names,
    }
}

/// Answers "does this 25- or 64-char name occur in the bytes?" in O(1) after
/// one pass: every window of those lengths inside runs of name characters is
/// indexed. Other lengths fall back to a linear search.
struct SubstringIndex<'b> {
    bytes: &'b [u8],
    windows: HashSet<&'b [u8]>,
}

const INDEXED: [usize; 2] = [25, 64];

impl<'b> SubstringIndex<'b> {
    fn new(bytes: &'b [u8]) -> Self {
        let mut windows = HashSet::new();
        let is_name = |c: u8| c.is_ascii_alphanumeric() || c == b'-';
        let mut i = 0;
        while i < bytes.len() {
            if !is_name(bytes[i]) {
                i += 1;
                continue;
            }
            let start = i;
            while i < bytes.len() && is_name(bytes[i]) {
                i += 1;
            }
            let run = &bytes[start..i];
            for w in INDEXED {
                if run.len() >= w {
                    windows.extend(run.windows(w));
                }
            }
        }
        SubstringIndex { bytes, windows }
    }

    fn contains(&self, name: &str) -> bool {
        let n = name.as_bytes();
        if INDEXED.contains(&n.len()) {
            return self.windows.contains(n);
        }
        !n.is_empty() && self.bytes.windows(n.len()).any(|w| w == n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_names_packed_between_other_bytes() {
        let t = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(t.path().join("buildkit")).unwrap();
        let key = "k2x9v0q8w7e6r5t4y3u2i1o0p";
        let chain = "a".repeat(64);
        let mut db = b"\x00\x01committed".to_vec();
        db.extend_from_slice(key.as_bytes());
        db.extend_from_slice(b"\x07chainidsha256:");
        db.extend_from_slice(chain.as_bytes());
        db.extend_from_slice(b"\xff");
        std::fs::write(t.path().join("buildkit/snapshots.db"), db).unwrap();
        let other = "b".repeat(64);
        let bk = read(
            &t.path().join("buildkit"),
            [
                key,
                chain.as_str(),
                other.as_str(),
                "zzzzzzzzzzzzzzzzzzzzzzzzz",
            ]
            .into_iter(),
        );
        assert!(bk.present && bk.snapshots_db);
        assert_eq!(bk.referenced_names, vec![chain.clone(), key.to_string()]);
    }

    #[test]
    fn absent_buildkit() {
        let t = tempfile::tempdir().unwrap();
        let bk = read(&t.path().join("buildkit"), std::iter::empty());
        assert!(!bk.present && !bk.snapshots_db);
    }
}
