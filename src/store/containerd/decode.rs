//! The value encodings of containerd's bbolt files: Go's `time.Time`
//! binary form, Go varints, and RFC 3339 label values.

use serde::{Serialize, Serializer};
use std::fmt;

/// A point in time with nanoseconds, as containerd stores it (UTC).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Time {
    /// Seconds since the Unix epoch.
    pub secs: i64,
    pub nanos: u32,
}

/// Seconds from 0001-01-01T00:00:00Z to the Unix epoch (Go `time.go`
/// `unixToInternal`).
const UNIX_TO_INTERNAL: i64 = 62_135_596_800;

impl Time {
    pub fn from_unix(secs: i64, nanos: u32) -> Time {
        Time { secs, nanos }
    }

    /// Now, from the system clock.
    pub fn now() -> Time {
        let t = jiff::Timestamp::now();
        Time {
            secs: t.as_second(),
            nanos: u32::try_from(t.subsec_nanosecond()).unwrap_or(0),
        }
    }

    /// Go's `Time.MarshalBinary` (`src/time/time.go` `AppendBinary`): version
    /// byte (1, or 2 with an extra seconds-of-offset byte), seconds since
    /// year 1 as big-endian i64, nanoseconds as big-endian i32, zone offset
    /// in minutes as big-endian i16 (-1 for UTC). containerd writes these
    /// through `boltutil.WriteTimestamps` (`core/metadata/boltutil/helpers.go`).
    /// The instant does not depend on the offset, which only names a zone.
    pub fn from_go_binary(b: &[u8]) -> Result<Time, String> {
        let want = match b.first() {
            Some(1) => 15,
            Some(2) => 16,
            Some(v) => return Err(format!("time encoding version {v} (Go writes 1 or 2)")),
            None => return Err("empty time value".into()),
        };
        if b.len() != want {
            return Err(format!(
                "time value of {} bytes (version {} has {want})",
                b.len(),
                b[0]
            ));
        }
        let mut sec = [0u8; 8];
        sec.copy_from_slice(&b[1..9]);
        let mut nsec = [0u8; 4];
        nsec.copy_from_slice(&b[9..13]);
        let internal = i64::from_be_bytes(sec);
        let nanos = i32::from_be_bytes(nsec);
        if !(0..1_000_000_000).contains(&nanos) {
            return Err(format!("time value with {nanos} nanoseconds"));
        }
        Ok(Time {
            secs: internal.wrapping_sub(UNIX_TO_INTERNAL),
            nanos: nanos as u32,
        })
    }

    /// An RFC 3339 text as Go's `time.Parse(time.RFC3339, v)` accepts it
    /// (containerd's `gc.expire` labels; content-store `startedat` files).
    pub fn parse_rfc3339(s: &str) -> Result<Time, String> {
        let t: jiff::Timestamp = s
            .trim()
            .parse()
            .map_err(|e| format!("{s:?} is not an RFC 3339 time: {e}"))?;
        Ok(Time {
            secs: t.as_second(),
            nanos: u32::try_from(t.subsec_nanosecond()).unwrap_or(0),
        })
    }

    /// Nanoseconds since the epoch, for comparisons and arithmetic.
    pub fn unix_nanos(&self) -> i128 {
        i128::from(self.secs) * 1_000_000_000 + i128::from(self.nanos)
    }
}

impl fmt::Display for Time {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match jiff::Timestamp::new(self.secs, self.nanos as i32) {
            Ok(t) => write!(f, "{t}"),
            Err(_) => write!(f, "@{}.{:09}", self.secs, self.nanos),
        }
    }
}

impl Serialize for Time {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// Go's `binary.Uvarint`: base-128, little-endian groups, at most 10 bytes.
/// The whole value must be the varint (containerd stores nothing after it).
pub fn uvarint(b: &[u8]) -> Result<u64, String> {
    let mut x: u64 = 0;
    let mut shift = 0u32;
    for (i, &byte) in b.iter().enumerate() {
        if i == 10 || (i == 9 && byte > 1) {
            return Err("varint overflows 64 bits".into());
        }
        x |= u64::from(byte & 0x7f) << shift;
        if byte < 0x80 {
            if i + 1 != b.len() {
                return Err(format!(
                    "{} stray byte(s) after the varint",
                    b.len() - i - 1
                ));
            }
            return Ok(x);
        }
        shift += 7;
    }
    Err(if b.is_empty() {
        "empty varint".into()
    } else {
        "truncated varint".into()
    })
}

/// Go's `binary.Varint` (zig-zag over `Uvarint`), as containerd's
/// `encodeInt` (`core/metadata/images.go`) and the metastore's `encodeSize`
/// (`core/snapshots/storage/bolt.go`) write sizes.
pub fn varint(b: &[u8]) -> Result<i64, String> {
    let ux = uvarint(b)?;
    let x = (ux >> 1) as i64;
    Ok(if ux & 1 != 0 { !x } else { x })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unhex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    #[test]
    fn go_binary_times_decode() {
        // Observed on containerd 1.6.20: 2026-12-01T08:44:43.028092560Z.
        let t = Time::from_go_binary(&unhex("010000000ee2a07ffb01aca890ffff")).unwrap();
        assert_eq!(t.to_string(), "2026-12-01T08:44:43.02809256Z");
        assert_eq!(t.nanos, 28_092_560);
        // Version 2 carries one more byte; the instant is the same.
        let mut v2 = unhex("020000000ee2a07ffb01aca8900000");
        v2.push(0);
        assert_eq!(Time::from_go_binary(&v2).unwrap(), t);
        assert!(Time::from_go_binary(&[]).is_err());
        assert!(Time::from_go_binary(&unhex("010000")).is_err());
        assert!(Time::from_go_binary(&unhex("030000000ee2a07ffb01aca890ffff")).is_err());
    }

    #[test]
    fn varints_decode_as_go_writes_them() {
        assert_eq!(varint(&unhex("d606")).unwrap(), 427);
        assert_eq!(varint(&unhex("80c0f401")).unwrap(), 2_002_944);
        assert_eq!(varint(&[0x06]).unwrap(), 3);
        assert_eq!(varint(&[0x01]).unwrap(), -1);
        assert_eq!(uvarint(&[0x07]).unwrap(), 7);
        assert_eq!(uvarint(&unhex("ffffffffffffffffff01")).unwrap(), u64::MAX);
        assert!(uvarint(&[]).is_err());
        assert!(uvarint(&[0x80]).is_err());
        assert!(uvarint(&[0x07, 0x00]).is_err());
        assert!(uvarint(&unhex("ffffffffffffffffff02")).is_err());
    }

    #[test]
    fn rfc3339_labels_parse() {
        let t = Time::parse_rfc3339("2026-12-02T08:44:44Z").unwrap();
        assert_eq!(t.to_string(), "2026-12-02T08:44:44Z");
        assert!(Time::parse_rfc3339("tomorrow").is_err());
        let f = Time::parse_rfc3339("2026-12-01T11:40:16.807893935Z").unwrap();
        assert_eq!(f.nanos, 807_893_935);
    }
}
