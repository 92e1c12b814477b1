//! Identifiers of the store. Each kind of ID is its own type so that a chain ID
//! can never be passed where a diff ID belongs (the classic mix-up of this store).

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::{Digest as _, Sha256};
use std::fmt;

/// A `sha256:<64 lowercase hex>` digest, parsed and printed in this one place.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest([u8; 32]);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a sha256 digest: {0:?}")]
pub struct BadDigest(pub String);

impl Digest {
    /// Parses `sha256:<64 lowercase hex>`, the only form the daemon writes.
    pub fn parse(s: &str) -> Result<Self, BadDigest> {
        s.strip_prefix("sha256:")
            .and_then(Self::from_hex)
            .ok_or_else(|| BadDigest(s.to_string()))
    }

    /// Parses bare 64 lowercase hex (directory and file names in the store).
    pub fn from_hex(hex: &str) -> Option<Self> {
        let b = hex.as_bytes();
        if b.len() != 64 {
            return None;
        }
        let mut out = [0u8; 32];
        for (i, pair) in b.chunks_exact(2).enumerate() {
            out[i] = (nibble(pair[0])? << 4) | nibble(pair[1])?;
        }
        Some(Digest(out))
    }

    pub fn of_bytes(data: &[u8]) -> Self {
        Digest(Sha256::digest(data).into())
    }

    pub fn from_bytes(raw: [u8; 32]) -> Self {
        Digest(raw)
    }

    pub fn hex(&self) -> String {
        hex(&self.0)
    }

    /// The 12-character short form Docker prints in tables.
    pub fn short(&self) -> String {
        self.hex()[..12].to_string()
    }
}

fn nibble(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    }
}

/// Lowercase hex of any byte string (sha2 0.11 digests have no `LowerHex`).
pub fn hex(bytes: &[u8]) -> String {
    const H: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(H[(b >> 4) as usize] as char);
        s.push(H[(b & 15) as usize] as char);
    }
    s
}

/// The length of `sha256:<64 hex>`.
const TEXT_LEN: usize = 7 + 64;

impl Digest {
    /// `sha256:<64 hex>` in a buffer of its own (no allocation: chain IDs
    /// hash this text 100,000s of times on big hosts).
    fn text(&self) -> [u8; TEXT_LEN] {
        const H: &[u8; 16] = b"0123456789abcdef";
        let mut out = [0u8; TEXT_LEN];
        out[..7].copy_from_slice(b"sha256:");
        for (i, b) in self.0.iter().enumerate() {
            out[7 + 2 * i] = H[(b >> 4) as usize];
            out[8 + 2 * i] = H[(b & 15) as usize];
        }
        out
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = self.text();
        f.write_str(std::str::from_utf8(&text).map_err(|_| fmt::Error)?)
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sha256:{}", &self.hex()[..12])
    }
}

impl Serialize for Digest {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Digest {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Digest::parse(&s).map_err(serde::de::Error::custom)
    }
}

macro_rules! digest_id {
    ($(#[$m:meta])* $name:ident) => {
        $(#[$m])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub Digest);

        impl $name {
            pub fn parse(s: &str) -> Result<Self, BadDigest> {
                Digest::parse(s).map($name)
            }
            pub fn from_hex(hex: &str) -> Option<Self> {
                Digest::from_hex(hex).map($name)
            }
            pub fn hex(&self) -> String {
                self.0.hex()
            }
            pub fn short(&self) -> String {
                self.0.short()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(&self.0, f)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({:?})", stringify!($name), self.0)
            }
        }
    };
}

digest_id!(
    /// sha256 of an image config file; also its file name in imagedb.
    ImageId
);
digest_id!(
    /// sha256 of one layer's uncompressed tar stream (`rootfs.diff_ids`, layerdb `diff`).
    DiffId
);
digest_id!(
    /// Identity of a layer *with all its parents*; the layerdb directory name.
    ChainId
);

digest_id!(
    /// A containerd content-store blob, named by the sha256 of its bytes
    /// (`blobs/sha256/<hex>`, meta.db `content/blob/<digest>`).
    BlobDigest
);

/// A containerd snapshot key, unique within one namespace and snapshotter
/// (meta.db `snapshots/<snapshotter>/<key>`): the chain ID for an image
/// layer, any string for a container's or a lease's snapshot.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Debug, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SnapshotKey(pub String);

impl fmt::Display for SnapshotKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl ChainId {
    /// `ChainID([d0..dn])` exactly as image-spec's `identity.ChainID`: the base
    /// layer's chain ID is its diff ID; each next one hashes `"<parent> <diff>"`.
    pub fn child(parent: Option<&ChainId>, diff: &DiffId) -> ChainId {
        match parent {
            None => ChainId(diff.0),
            Some(p) => {
                let mut text = [b' '; 2 * TEXT_LEN + 1];
                text[..TEXT_LEN].copy_from_slice(&p.0.text());
                text[TEXT_LEN + 1..].copy_from_slice(&diff.0.text());
                ChainId(Digest::of_bytes(&text))
            }
        }
    }

    /// Every prefix chain ID of `diff_ids`, base first. Empty input, empty output.
    pub fn chain(diff_ids: &[DiffId]) -> Vec<ChainId> {
        let mut out: Vec<ChainId> = Vec::with_capacity(diff_ids.len());
        for d in diff_ids {
            let next = ChainId::child(out.last(), d);
            out.push(next);
        }
        out
    }
}

/// A 64-hex container ID (`containers/<id>`, `layerdb/mounts/<id>`).
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Debug, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ContainerId(pub String);

impl ContainerId {
    pub fn parse(s: &str) -> Option<Self> {
        is_hex64(s).then(|| ContainerId(s.to_string()))
    }
    pub fn short(&self) -> &str {
        &self.0[..12.min(self.0.len())]
    }
}

impl fmt::Display for ContainerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A graphdriver dir name, kept inline: 64 hex (every ID the daemon
/// generates) fits; a longer one (`<64 hex>-init`) goes to the heap.
pub type DirName = smallstr::SmallString<[u8; 64]>;

/// An overlay2 link ID (`l/<name>`, 26 characters), kept inline.
pub type LinkName = smallstr::SmallString<[u8; 32]>;

/// The graphdriver directory name of a layer (`cache-id`). Any string is allowed
/// by the daemon: 64 hex for pulled and loaded layers, 25-char base36 for BuildKit.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Debug, Serialize, Deserialize)]
#[serde(transparent)]
pub struct CacheId(pub DirName);

/// The graphdriver directory of a RW layer (`mount-id`, `init-id`): `^[0-9a-f]{64}(-init)?$`.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Debug, Serialize, Deserialize)]
#[serde(transparent)]
pub struct MountId(pub String);

impl MountId {
    /// The daemon's `isValidID` rule; a mount with another value fails to load.
    pub fn parse(s: &str) -> Option<Self> {
        let base = s.strip_suffix("-init").unwrap_or(s);
        is_hex64(base).then(|| MountId(s.to_string()))
    }
}

impl fmt::Display for CacheId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Display for MountId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

pub fn is_hex64(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|c| nibble(c).is_some())
}

/// BuildKit snapshot keys: 25 characters of `[0-9a-z]` (`identity.NewID`).
pub fn is_buildkit_key(s: &str) -> bool {
    s.len() == 25
        && s.bytes()
            .all(|c| c.is_ascii_digit() || c.is_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "sha256:5f70bf18a086007016e948b04aed3b82103a36bea41755b6cddfaf10ace3c6ef";
    const B: &str = "sha256:2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824";

    #[test]
    fn chain_id_vectors_from_the_format_doc() {
        let a = DiffId::parse(A).unwrap();
        let b = DiffId::parse(B).unwrap();
        let chain = ChainId::chain(&[a, b, a]);
        assert_eq!(chain[0].to_string(), A);
        assert_eq!(
            chain[1].to_string(),
            "sha256:4f7d145b49775d3f8b9ae2dabf2e4d368e748f6695e12cd5902305eff78f2447"
        );
        assert_eq!(
            chain[2].to_string(),
            "sha256:a825bba9bc96c88cecdb24c11b428e987441a3e8bc6426163d53581ad1fedd43"
        );
        assert!(ChainId::chain(&[]).is_empty());
    }

    #[test]
    fn empty_tar_digest_is_1024_nul_bytes() {
        assert_eq!(Digest::of_bytes(&[0u8; 1024]).to_string(), A);
        assert_eq!(Digest::of_bytes(b"hello").to_string(), B);
    }

    #[test]
    fn digest_parse_rejects_malformed() {
        assert!(Digest::parse(A).is_ok());
        assert!(Digest::parse(&A.to_uppercase()).is_err());
        assert!(Digest::parse(&A[7..]).is_err());
        assert!(Digest::parse(&format!("{A}\n")).is_err());
        assert!(Digest::parse("sha512:00").is_err());
        assert!(Digest::from_hex(&"g".repeat(64)).is_none());
        assert_eq!(Digest::parse(A).unwrap().short(), "5f70bf18a086");
    }

    #[test]
    fn mount_ids_follow_is_valid_id() {
        let h = "a".repeat(64);
        assert!(MountId::parse(&h).is_some());
        assert!(MountId::parse(&format!("{h}-init")).is_some());
        assert!(MountId::parse(&format!("{h}-x")).is_none());
        assert!(MountId::parse("abc").is_none());
        assert!(is_buildkit_key("0123456789abcdefghijklmno"));
        assert!(!is_buildkit_key("0123456789ABCDEFGHIJKLMNO"));
    }
}
