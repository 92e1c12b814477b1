//! Deterministic randomness: one independent stream per entity, so that
//! writing in parallel never changes the output.

use crate::ids::hex;

pub(super) const STREAM_PLAN: u64 = 1;
pub(super) const STREAM_LAYER: u64 = 2;
pub(super) const STREAM_IMAGE: u64 = 3;
pub(super) const STREAM_CONTAINER: u64 = 4;
pub(super) const STREAM_ENGINE: u64 = 5;
pub(super) const STREAM_EXTRA: u64 = 6;
#[cfg(feature = "synth-bbolt")]
pub(super) const STREAM_BUILDKIT: u64 = 7;
#[cfg(feature = "synth-bbolt")]
pub(super) const STREAM_VOLUME: u64 = 8;

/// splitmix64: tiny, fast and good enough.
pub(super) struct Rng(u64);

impl Rng {
    pub(super) fn new(seed: u64, stream: u64, index: u64) -> Self {
        let mut r = Rng(seed ^ stream.wrapping_mul(0xA076_1D64_78BD_642F));
        r.0 ^= r
            .next()
            .wrapping_add(index.wrapping_mul(0xE703_7ED1_A0B4_28DB));
        r.next();
        r
    }

    pub(super) fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (0 when `n == 0`).
    pub(super) fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next()) * u128::from(n)) >> 64) as u64
    }

    pub(super) fn index(&mut self, n: usize) -> usize {
        self.below(n as u64) as usize
    }

    pub(super) fn percent(&mut self, p: u32) -> bool {
        self.below(100) < u64::from(p)
    }

    pub(super) fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }

    pub(super) fn fill(&mut self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(8) {
            let v = self.next().to_le_bytes();
            chunk.copy_from_slice(&v[..chunk.len()]);
        }
    }

    fn bytes32(&mut self) -> [u8; 32] {
        let mut b = [0u8; 32];
        self.fill(&mut b);
        b
    }

    /// 64 lowercase hex, like moby `pkg/stringid` `GenerateRandomID`.
    pub(super) fn hex64(&mut self) -> String {
        hex(&self.bytes32())
    }

    /// 26 characters of `A-Z2-7`, like moby
    /// `daemon/graphdriver/overlayutils` `GenerateID`.
    pub(super) fn link_id(&mut self) -> String {
        const B32: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
        (0..26)
            .map(|_| B32[(self.next() & 31) as usize] as char)
            .collect()
    }

    /// 25 characters of `0-9a-z`, like BuildKit `identity.NewID` (record
    /// IDs and the driver dirs its snapshots get).
    #[cfg(feature = "synth-bbolt")]
    pub(super) fn buildkit_id(&mut self) -> String {
        const B36: &[u8; 36] = b"0123456789abcdefghijklmnopqrstuvwxyz";
        (0..25).map(|_| B36[self.index(36)] as char).collect()
    }

    /// A version-4 UUID, as `engine-id` holds one.
    pub(super) fn uuid4(&mut self) -> String {
        let mut b = [0u8; 16];
        self.fill(&mut b);
        b[6] = (b[6] & 0x0f) | 0x40;
        b[8] = (b[8] & 0x3f) | 0x80;
        let h = hex(&b);
        format!(
            "{}-{}-{}-{}-{}",
            &h[0..8],
            &h[8..12],
            &h[12..16],
            &h[16..20],
            &h[20..32]
        )
    }

    /// Fisher–Yates.
    pub(super) fn shuffle<T>(&mut self, v: &mut [T]) {
        for i in (1..v.len()).rev() {
            let j = self.index(i + 1);
            v.swap(i, j);
        }
    }
}
