//! A layer's tar stream as tar-split records it, plus the stream's sha256
//! (its DiffID), and gzip as Go writes it.
//!
//! Upstream: vbatts/tar-split `tar/storage/packer.go` (`jsonPacker`, one
//! JSON object per line), `tar/storage/entry.go` (Segment = type 2, File =
//! type 1) and `tar/asm/disassemble.go` (a File's payload is the CRC-64/ISO
//! of its body); Go's `compress/gzip` `Writer.Write` (the header) at
//! `DefaultCompression`.

use super::gofmt::go_str;
use crate::ids::{DiffId, Digest};
use crate::tarfmt::{self, END};
use base64::Engine as _;
use sha2::{Digest as _, Sha256};
use std::fmt::Write as _;
use std::io;

/// tar-split's packer (JSON lines) and the sha256 of the stream.
pub(super) struct TarSplit {
    json: Vec<u8>,
    position: u64,
    /// Stream bytes since the last File entry: the next Segment.
    pending: Vec<u8>,
    sha: Sha256,
    legacy: bool,
}

impl TarSplit {
    /// `legacy`: tar-split 0.11 (vendored by Engine 20.10) adds an empty
    /// Segment after the end blocks; 0.12 does not.
    pub(super) fn new(legacy: bool) -> Self {
        TarSplit {
            json: Vec::with_capacity(4096),
            position: 0,
            pending: Vec::with_capacity(2048),
            sha: Sha256::new(),
            legacy,
        }
    }

    fn segment(&mut self) {
        let b64 = base64::engine::general_purpose::STANDARD.encode(&self.pending);
        let _ = writeln!(
            Adapter(&mut self.json),
            "{{\"type\":2,\"payload\":\"{b64}\",\"position\":{}}}",
            self.position
        );
        self.position += 1;
        self.pending.clear();
    }

    /// One tar entry: Segment (previous padding + header), File, then the body.
    pub(super) fn entry(&mut self, header: &[u8; 512], name: &str, body: &[u8]) {
        self.sha.update(header);
        self.pending.extend_from_slice(header);
        self.segment();
        let mut line = String::with_capacity(96);
        line.push_str("{\"type\":1,\"name\":");
        go_str(&mut line, name);
        if body.is_empty() {
            line.push_str(",\"payload\":null");
        } else {
            let mut crc = crc_fast::Digest::new(crc_fast::CrcAlgorithm::Crc64GoIso);
            crc.update(body);
            let b64 =
                base64::engine::general_purpose::STANDARD.encode(crc.finalize().to_be_bytes());
            let _ = write!(line, ",\"size\":{},\"payload\":\"{b64}\"", body.len());
        }
        let _ = writeln!(line, ",\"position\":{}}}", self.position);
        self.position += 1;
        self.json.extend_from_slice(line.as_bytes());
        self.sha.update(body);
        let pad = &END[..tarfmt::padding(body.len() as u64)];
        self.sha.update(pad);
        self.pending.extend_from_slice(pad);
    }

    /// End of archive: padding and two zero blocks in one Segment. Returns
    /// the DiffID and `tar-split.json.gz`.
    pub(super) fn finish(mut self) -> io::Result<(DiffId, Vec<u8>)> {
        self.sha.update(END);
        self.pending.extend_from_slice(&END);
        self.segment();
        if self.legacy {
            let _ = writeln!(
                Adapter(&mut self.json),
                "{{\"type\":2,\"payload\":\"\",\"position\":{}}}",
                self.position
            );
        }
        let diff = DiffId(Digest::from_bytes(self.sha.finalize().into()));
        Ok((diff, gzip(&self.json)?))
    }
}

thread_local! {
    /// One deflate state per thread, reset per use: allocating a fresh
    /// ~300 KB state for each of many thousands of layers fragments glibc's
    /// heap (RSS grows to hundreds of MB although little is live).
    static DEFLATE: std::cell::RefCell<flate2::Compress> =
        std::cell::RefCell::new(flate2::Compress::new(flate2::Compression::default(), false));
}

/// gzip as Go's `gzip.NewWriter` at the default level writes it: a header
/// with no name, zero mtime, XFL 0 and OS 255, then raw deflate, CRC-32, size.
pub(super) fn gzip(data: &[u8]) -> io::Result<Vec<u8>> {
    let mut out = Vec::with_capacity(data.len() / 3 + 64);
    out.extend_from_slice(&[0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff]);
    DEFLATE.with(|cell| -> io::Result<()> {
        let mut c = cell.borrow_mut();
        c.reset();
        loop {
            if out.capacity() - out.len() < 1024 {
                out.reserve(4096 + data.len() / 4);
            }
            let done = c.total_in() as usize;
            let status = c
                .compress_vec(&data[done..], &mut out, flate2::FlushCompress::Finish)
                .map_err(io::Error::other)?;
            if status == flate2::Status::StreamEnd {
                return Ok(());
            }
        }
    })?;
    let mut crc = flate2::Crc::new();
    crc.update(data);
    out.extend_from_slice(&crc.sum().to_le_bytes());
    out.extend_from_slice(&(data.len() as u32).to_le_bytes());
    Ok(out)
}

/// `fmt::Write` into a byte vector.
struct Adapter<'a>(&'a mut Vec<u8>);

impl std::fmt::Write for Adapter<'_> {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        self.0.extend_from_slice(s.as_bytes());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    /// tar-split's File payload is Go's `crc64.MakeTable(crc64.ISO)`, big-endian.
    #[test]
    fn crc64_is_go_iso() {
        let mut crc = crc_fast::Digest::new(crc_fast::CrcAlgorithm::Crc64GoIso);
        crc.update(b"imma hurr til I derp");
        let b64 = base64::engine::general_purpose::STANDARD;
        assert_eq!(b64.encode(crc.finalize().to_be_bytes()), "AnSksavsa04=");
    }

    #[test]
    fn gzip_is_go_shaped_and_round_trips() {
        let data: Vec<u8> = (0..200_000u32).map(|i| (i * 7 % 251) as u8).collect();
        for input in [&b""[..], b"hello", &data] {
            let gz = gzip(input).unwrap();
            assert_eq!(gz[..10], [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff]);
            let mut back = Vec::new();
            flate2::read::GzDecoder::new(&gz[..])
                .read_to_end(&mut back)
                .unwrap();
            assert_eq!(back, input);
        }
    }
}
