//! Synthetic data roots in the exact on-disk format of Docker's graphdriver
//! store (overlay2), at any scale.
//!
//! [`generate`] writes what a real dockerd 20.10 (and later, in graphdriver
//! mode) leaves on disk after pulls, builds, tags and `docker create`/`run`:
//! imagedb configs and metadata, layerdb entries with real tar-split data,
//! overlay2 directories with `diff/`, `link`, `lower`, `work/`, `committed` and
//! the `l/` symlinks, `repositories.json`, containers with their RW and init
//! layers, plus the leftovers of crashes (orphan driver directories, a
//! `-removing` layer, a `layerdb/tmp/write-set-*`). A daemon started on the
//! result lists the same images, and `docker save` reproduces every layer's
//! DiffID from `tar-split.json.gz` plus `diff/`.
//!
//! Formats were checked against files written by dockerd 20.10.24 on this
//! machine (see `docs/docker-store.md` §1–6, 9, 12). Everything is a pure
//! function of the [`SynthSpec`] (including `seed`): two runs give the same
//! IDs and bytes, except the absolute root path inside container configs.
//!
//! Shape of the generated store:
//! * a forest of layers: `bases` root images, every other image extends an
//!   earlier image by 0..n layers (the count is chosen so the total comes out
//!   near `layers`); a share of the children carry `parent` metadata (locally
//!   built), which makes untagged parents "intermediate" images;
//! * each layer is a real tar stream (ustar headers as Go's `archive/tar`
//!   writes them, two zero end blocks): `srv/`, `srv/<n>/`, regular files, a
//!   symlink on every third layer and a hard link on every fifth;
//! * `size` is `directory.Size` of the extracted `diff/` (apparent sizes,
//!   symlinks count their target length, hard links once).

use crate::ids::{ChainId, ContainerId, DiffId, Digest, ImageId, hex};
use base64::Engine as _;
use rayon::prelude::*;
use sha2::{Digest as _, Sha256};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs::{self, DirBuilder, File, FileTimes, OpenOptions, Permissions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, UNIX_EPOCH};

/// What to generate. Counts are exact unless documented as approximate.
#[derive(Debug, Clone)]
pub struct SynthSpec {
    /// Images in imagedb: tagged, digest-only, dangling and intermediate together.
    pub images: usize,
    /// Distinct image layers in layerdb (approximate; at least one per base image).
    pub layers: usize,
    /// Images built from nothing (roots of the layer forest); 0 picks `images / 20`.
    pub bases: usize,
    /// Deepest allowed layer chain (Docker refuses more than 125).
    pub max_depth: usize,
    /// Regular files per layer.
    pub files_per_layer: usize,
    /// Average size of a regular file; each is between 0.5x and 1.5x of it.
    pub file_bytes: usize,
    /// Most tags a tagged image carries (each has 1..=this; at least 1).
    pub tags_per_image: usize,
    /// Percent of tagged images that also carry a digest reference.
    pub digest_percent: u32,
    /// Percent of would-be tagged images that carry only a digest reference.
    pub digest_only_percent: u32,
    /// Percent of child images recorded with `parent` metadata (locally built).
    pub built_percent: u32,
    /// Percent of images with metadata children that stay untagged ("intermediate").
    pub intermediate_percent: u32,
    /// Percent of images with their own `config.Labels` (children inherit them).
    pub labels_percent: u32,
    /// Stopped containers (three in four have run and exited, the rest are "Created").
    pub containers: usize,
    /// Untagged images without children (`<none>:<none>` in `docker images`).
    pub dangling: usize,
    /// overlay2 directories with an `l/` link but no layerdb entry (crashed pulls).
    pub orphan_dirs: usize,
    /// `layerdb/sha256/<hex>-<64hex>-removing` leftovers, each with its driver dir.
    pub removing: usize,
    /// `layerdb/tmp/write-set-*` leftovers, each with its (orphan) driver dir.
    pub write_sets: usize,
    pub seed: u64,
    /// Write `<root>/engine-id` (Engine 23 and later). Leave it off to look
    /// like a root written by 20.10, whose shared-size rule differs.
    pub engine_id: bool,
    /// tar-split as Engine 20.10 writes it (vendored tar-split 0.11): a final
    /// empty Segment `{"type":2,"payload":"",...}` after the end blocks.
    /// Newer engines (tar-split 0.12) omit it. Both reassemble identically.
    pub legacy_tar_split: bool,
}

impl SynthSpec {
    /// A small root with one of everything: 8 images (tagged, multi-tagged,
    /// digest, intermediate, dangling), 3 containers, 2 orphan directories,
    /// one `-removing` layer and one write-set.
    pub fn demo() -> Self {
        SynthSpec {
            images: 8,
            layers: 14,
            bases: 2,
            max_depth: 40,
            files_per_layer: 3,
            file_bytes: 1500,
            tags_per_image: 3,
            digest_percent: 30,
            digest_only_percent: 0,
            built_percent: 60,
            intermediate_percent: 100,
            labels_percent: 40,
            containers: 3,
            dangling: 1,
            orphan_dirs: 2,
            removing: 1,
            write_sets: 1,
            seed: 1,
            engine_id: false,
            legacy_tar_split: true,
        }
    }

    /// A large root: `images` images over about `layers` layers, one small file per layer.
    pub fn scale(images: usize, layers: usize) -> Self {
        SynthSpec {
            images,
            layers,
            bases: 0,
            max_depth: 60,
            files_per_layer: 1,
            file_bytes: 64,
            tags_per_image: 2,
            digest_percent: 20,
            digest_only_percent: 3,
            built_percent: 40,
            intermediate_percent: 60,
            labels_percent: 30,
            containers: images / 100,
            dangling: images / 50,
            orphan_dirs: 8,
            removing: 2,
            write_sets: 2,
            seed: 42,
            engine_id: true,
            legacy_tar_split: true,
        }
    }
}

impl Default for SynthSpec {
    fn default() -> Self {
        Self::demo()
    }
}

/// How an image is referenced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SynthImageKind {
    /// One or more tags (maybe digest references too); `lastUpdated` written.
    Tagged,
    /// Only a digest reference (`repo@sha256:...`).
    DigestOnly,
    /// No reference and no children.
    Dangling,
    /// No reference, but children recorded through `parent` metadata.
    Intermediate,
}

#[derive(Debug, Clone)]
pub struct SynthImage {
    pub id: ImageId,
    pub kind: SynthImageKind,
    /// Inner keys of `repositories.json` pointing at this image.
    pub refs: Vec<String>,
    /// `imagedb/metadata/sha256/<id>/parent`.
    pub parent: Option<ImageId>,
    /// Every prefix chain ID of `rootfs.diff_ids`, base first.
    pub chain: Vec<ChainId>,
    /// Σ layerdb `size` over `chain` (Docker's image `Size`).
    pub size: u64,
    /// Containers whose `Image` is this image.
    pub containers: usize,
}

#[derive(Debug, Clone)]
pub struct SynthLayer {
    pub chain_id: ChainId,
    pub diff_id: DiffId,
    pub parent: Option<ChainId>,
    pub cache_id: String,
    pub size: u64,
}

#[derive(Debug, Clone)]
pub struct SynthContainer {
    pub id: ContainerId,
    /// `Name` without the leading `/`.
    pub name: String,
    pub image: ImageId,
    pub mount_id: String,
    /// `directory.Size` of the RW layer's `diff/` (Docker's `SizeRw`).
    pub size_rw: u64,
    pub started: bool,
}

#[derive(Debug, Clone, Default)]
pub struct SynthReport {
    pub images: usize,
    /// Image layers in layerdb (not counting `-removing` and write-set leftovers).
    pub layers: usize,
    pub containers: usize,
    /// Entries in `repositories.json`.
    pub references: usize,
    /// Bytes of every regular file written.
    pub bytes_written: u64,
    /// Σ `size` over all image layers.
    pub layers_size: u64,
    pub image_list: Vec<SynthImage>,
    pub layer_list: Vec<SynthLayer>,
    pub container_list: Vec<SynthContainer>,
    /// overlay2 directory names with no layerdb entry (orphans and write-set layers).
    pub orphan_dirs: Vec<String>,
    /// `layerdb/sha256/*-removing` directory names.
    pub removing: Vec<String>,
    /// `layerdb/tmp/write-set-*` directory names.
    pub write_sets: Vec<String>,
}

/// Writes a complete data root at `root` (created if missing; it must not
/// already hold an `image/` or `overlay2/` directory).
pub fn generate(root: &Path, spec: &SynthSpec) -> io::Result<SynthReport> {
    for existing in ["image", "overlay2", "containers"] {
        if root.join(existing).exists() {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!("{} already has {existing}/", root.display()),
            ));
        }
    }
    let plan = Plan::new(spec);
    let ctx = Ctx::new(root)?;
    let layers = write_layers(&ctx, &plan)?;
    let images = write_images(&ctx, &plan, &layers)?;
    let references = write_references(&ctx, &images)?;
    let containers = write_containers(&ctx, &plan, &layers, &images)?;
    if spec.engine_id {
        let mut rng = Rng::new(spec.seed, STREAM_ENGINE, 0);
        ctx.file(
            &ctx.root.join("engine-id"),
            uuid4(&mut rng).as_bytes(),
            0o600,
        )?;
    }
    Ok(report(&ctx, &plan, layers, images, references, containers))
}

// ---------------------------------------------------------------------------
// Deterministic randomness

const STREAM_PLAN: u64 = 1;
const STREAM_LAYER: u64 = 2;
const STREAM_IMAGE: u64 = 3;
const STREAM_CONTAINER: u64 = 4;
const STREAM_ENGINE: u64 = 5;
const STREAM_EXTRA: u64 = 6;

/// splitmix64: tiny, fast, good enough, and independent per entity so that
/// parallel writing never changes the output.
struct Rng(u64);

impl Rng {
    fn new(seed: u64, stream: u64, index: u64) -> Self {
        let mut r = Rng(seed ^ stream.wrapping_mul(0xA076_1D64_78BD_642F));
        r.0 ^= r
            .next()
            .wrapping_add(index.wrapping_mul(0xE703_7ED1_A0B4_28DB));
        r.next();
        r
    }

    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (0 when `n == 0`).
    fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next()) * u128::from(n)) >> 64) as u64
    }

    fn index(&mut self, n: usize) -> usize {
        self.below(n as u64) as usize
    }

    fn percent(&mut self, p: u32) -> bool {
        self.below(100) < u64::from(p)
    }

    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }

    fn fill(&mut self, buf: &mut [u8]) {
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

    /// 64 lowercase hex, like `stringid.GenerateRandomID`.
    fn hex64(&mut self) -> String {
        hex(&self.bytes32())
    }

    /// 26 characters of `A-Z2-7`, like `overlayutils.GenerateID`.
    fn link_id(&mut self) -> String {
        const B32: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
        (0..26)
            .map(|_| B32[(self.next() & 31) as usize] as char)
            .collect()
    }
}

fn uuid4(rng: &mut Rng) -> String {
    let mut b = [0u8; 16];
    rng.fill(&mut b);
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

// ---------------------------------------------------------------------------
// Time formatting (Go's RFC3339Nano in UTC: trailing zeros of the fraction trimmed)

/// 2021-01-01T00:00:00Z: the generated history starts here and spans three years.
const T0: i64 = 1_609_459_200;
const SPAN: i64 = 3 * 365 * 86_400;

fn rfc3339nano(secs: i64, nanos: u32) -> String {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    let mut s = format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    );
    if nanos > 0 {
        let frac = format!("{nanos:09}");
        s.push('.');
        s.push_str(frac.trim_end_matches('0'));
    }
    s.push('Z');
    s
}

/// Howard Hinnant's `civil_from_days`.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

// ---------------------------------------------------------------------------
// Go encoding/json string escaping (HTML-safe, as json.Marshal and json.Encoder do)

fn go_str(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '<' | '>' | '&' | '\u{2028}' | '\u{2029}' => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

fn go_str_list(out: &mut String, items: &[String]) {
    out.push('[');
    for (i, s) in items.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        go_str(out, s);
    }
    out.push(']');
}

fn go_map(out: &mut String, map: &BTreeMap<String, String>) {
    out.push('{');
    for (i, (k, v)) in map.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        go_str(out, k);
        out.push(':');
        go_str(out, v);
    }
    out.push('}');
}

// ---------------------------------------------------------------------------
// The plan: every structural decision, made sequentially and cheaply up front

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LayerKind {
    Image,
    Removing,
    WriteSet,
    Orphan,
}

#[derive(Debug, Clone)]
struct LayerPlan {
    parent: Option<u32>,
    depth: u32,
    /// Header mtime and history time (Unix seconds).
    created: i64,
    kind: LayerKind,
    /// Some driver directory has this one as its parent (`committed` exists).
    committed: bool,
    /// Global layer index; names its directory in the tar (`srv/<n>/`, `var/<n>/`).
    number: u32,
}

#[derive(Debug, Clone)]
struct ImagePlan {
    /// The image whose layers this one extends (its `FROM`).
    base: Option<u32>,
    /// Record `base` as `parent` metadata (built locally).
    meta_parent: bool,
    /// Top layer (every image has at least one: base images add one or more).
    top: Option<u32>,
    /// Layers this image added on top of `base`.
    own: u32,
    created: (i64, u32),
    kind: SynthImageKind,
    /// The root image of its family (names the repository).
    family: u32,
    own_labels: bool,
    tags: u32,
    digest: bool,
    /// Newest tagged image of its family: also tagged `latest`.
    latest: bool,
    /// Dangling images once were tagged: half of them keep `lastUpdated`.
    keeps_last_updated: bool,
}

#[derive(Debug, Clone)]
struct ContainerPlan {
    image: u32,
    started: bool,
    exit_code: i32,
    created: (i64, u32),
}

struct Plan {
    seed: u64,
    legacy_tar_split: bool,
    files_per_layer: usize,
    file_bytes: usize,
    layers: Vec<LayerPlan>,
    cache_ids: Vec<String>,
    links: Vec<String>,
    /// Layer indices by depth (index 0 = base layers).
    levels: Vec<Vec<u32>>,
    images: Vec<ImagePlan>,
    containers: Vec<ContainerPlan>,
}

impl Plan {
    fn new(spec: &SynthSpec) -> Plan {
        let mut rng = Rng::new(spec.seed, STREAM_PLAN, 0);
        let n = spec.images;
        let max_depth = spec.max_depth.clamp(1, 125) as u32;
        let bases = if n == 0 {
            0
        } else if spec.bases == 0 {
            (n / 20).max(1)
        } else {
            spec.bases.min(n)
        };
        let target = spec.layers.max(bases);
        let step = (SPAN / n.max(1) as i64).max(1);

        let mut layers: Vec<LayerPlan> = Vec::with_capacity(target + 16);
        let mut images: Vec<ImagePlan> = Vec::with_capacity(n);
        let mut depth_of_image: Vec<u32> = Vec::with_capacity(n);

        for i in 0..n {
            let created = (
                T0 + i as i64 * step + rng.below(step as u64) as i64,
                rng.below(1_000_000_000) as u32,
            );
            let remaining_images = (n - i) as f64;
            let remaining_layers = target.saturating_sub(layers.len()) as f64;
            let avg = remaining_layers / remaining_images;
            // Own layer count: the running average, jittered by ±1.
            let jitter = match rng.below(4) {
                0 => -1,
                3 => 1,
                _ => 0,
            };
            let k = avg.floor() as i64 + i64::from(rng.unit() < avg.fract()) + jitter;
            let (base, min_k) = if i < bases {
                (None, 1)
            } else {
                (Some(rng.index(i) as u32), 0)
            };
            let mut k = k.max(min_k) as u32;
            let mut base = base;
            if let Some(b) = base {
                // Stay under the depth cap: fall back to a base image.
                let mut tries = 0;
                let mut b = b;
                while depth_of_image[b as usize] + k > max_depth && tries < 8 {
                    b = rng.index(i) as u32;
                    tries += 1;
                }
                if depth_of_image[b as usize] + k > max_depth {
                    b = rng.index(bases) as u32;
                    k = k.min(max_depth - depth_of_image[b as usize]);
                }
                base = Some(b);
            }
            k = k.min(max_depth);
            let mut top = base.and_then(|b| images[b as usize].top);
            let mut depth = base.map_or(0, |b| depth_of_image[b as usize]);
            for j in 0..k {
                depth += 1;
                layers.push(LayerPlan {
                    parent: top,
                    depth,
                    created: created.0 - i64::from(k - j),
                    kind: LayerKind::Image,
                    committed: false,
                    number: layers.len() as u32,
                });
                top = Some(layers.len() as u32 - 1);
            }
            let family = base.map_or(i as u32, |b| images[b as usize].family);
            let meta_parent = base.is_some() && rng.percent(spec.built_percent);
            images.push(ImagePlan {
                base,
                meta_parent,
                top,
                own: k,
                created,
                kind: SynthImageKind::Tagged,
                family,
                own_labels: rng.percent(spec.labels_percent),
                tags: 1 + rng.below(spec.tags_per_image.max(1) as u64) as u32,
                digest: false,
                latest: false,
                keeps_last_updated: rng.percent(50),
            });
            depth_of_image.push(depth);
        }

        // At least one locally built child when asked for any.
        if spec.built_percent > 0 && n > bases && !images.iter().any(|im| im.meta_parent) {
            images[bases].meta_parent = true;
        }
        let mut has_meta_children = vec![false; n];
        for im in &images {
            if let (true, Some(b)) = (im.meta_parent, im.base) {
                has_meta_children[b as usize] = true;
            }
        }

        // Categories: intermediates, then dangling among the leaves, then the rest.
        let mut any_intermediate = false;
        for (i, im) in images.iter_mut().enumerate() {
            if has_meta_children[i] && rng.percent(spec.intermediate_percent) {
                im.kind = SynthImageKind::Intermediate;
                any_intermediate = true;
            }
        }
        if spec.intermediate_percent > 0
            && !any_intermediate
            && let Some(i) = has_meta_children.iter().position(|&h| h)
        {
            images[i].kind = SynthImageKind::Intermediate;
        }
        let mut leaves: Vec<u32> = (0..n as u32)
            .filter(|&i| !has_meta_children[i as usize])
            .collect();
        shuffle(&mut rng, &mut leaves);
        for &i in leaves.iter().take(spec.dangling) {
            images[i as usize].kind = SynthImageKind::Dangling;
        }
        let mut any_digest = false;
        for im in images.iter_mut() {
            if im.kind == SynthImageKind::Tagged {
                if rng.percent(spec.digest_only_percent) {
                    im.kind = SynthImageKind::DigestOnly;
                    im.digest = true;
                } else if rng.percent(spec.digest_percent) {
                    im.digest = true;
                    any_digest = true;
                }
            }
        }
        if spec.digest_percent > 0
            && !any_digest
            && let Some(im) = images
                .iter_mut()
                .rev()
                .find(|im| im.kind == SynthImageKind::Tagged)
        {
            im.digest = true;
        }
        let mut newest: BTreeMap<u32, usize> = BTreeMap::new();
        for (i, im) in images.iter().enumerate() {
            if im.kind == SynthImageKind::Tagged {
                newest.insert(im.family, i);
            }
        }
        for &i in newest.values() {
            images[i].latest = true;
        }

        // Containers: mostly on tagged images, every fourth on a dangling one.
        let tagged: Vec<u32> = (0..n as u32)
            .filter(|&i| {
                matches!(
                    images[i as usize].kind,
                    SynthImageKind::Tagged | SynthImageKind::DigestOnly
                )
            })
            .collect();
        let dangling: Vec<u32> = (0..n as u32)
            .filter(|&i| images[i as usize].kind == SynthImageKind::Dangling)
            .collect();
        let mut containers = Vec::new();
        if n > 0 {
            for c in 0..spec.containers {
                let image = if c % 4 == 1 && !dangling.is_empty() {
                    dangling[(c / 4) % dangling.len()]
                } else if !tagged.is_empty() {
                    tagged[rng.index(tagged.len())]
                } else {
                    rng.index(n) as u32
                };
                let ic = images[image as usize].created.0;
                let created = (
                    ic + 3600 + rng.below(30 * 86_400) as i64,
                    rng.below(1_000_000_000) as u32,
                );
                containers.push(ContainerPlan {
                    image,
                    started: c % 4 != 2,
                    exit_code: [0, 0, 1, 137, 2][rng.index(5)],
                    created,
                });
            }
        }

        // Crash leftovers: real layers too, some on top of image layers.
        let image_layers = layers.len();
        let extra_time = T0 + SPAN + 86_400;
        let extras = [
            (LayerKind::Removing, spec.removing),
            (LayerKind::WriteSet, spec.write_sets),
            (LayerKind::Orphan, spec.orphan_dirs),
        ];
        for (kind, count) in extras {
            for x in 0..count {
                let parent = if image_layers > 0 && x % 2 == 0 {
                    Some(rng.index(image_layers) as u32)
                } else {
                    None
                };
                let parent = parent.filter(|&p| layers[p as usize].depth < max_depth);
                let depth = parent.map_or(1, |p| layers[p as usize].depth + 1);
                layers.push(LayerPlan {
                    parent,
                    depth,
                    created: extra_time + layers.len() as i64,
                    kind,
                    committed: false,
                    number: layers.len() as u32,
                });
            }
        }

        for i in 0..layers.len() {
            if let Some(p) = layers[i].parent {
                layers[p as usize].committed = true;
            }
        }
        for c in &containers {
            if let Some(t) = images[c.image as usize].top {
                layers[t as usize].committed = true;
            }
        }

        let mut cache_ids = Vec::with_capacity(layers.len());
        let mut links = Vec::with_capacity(layers.len());
        let mut levels: Vec<Vec<u32>> = Vec::new();
        for (i, l) in layers.iter().enumerate() {
            let mut r = Rng::new(spec.seed, STREAM_LAYER, i as u64);
            cache_ids.push(r.hex64());
            links.push(r.link_id());
            let d = l.depth as usize - 1;
            if levels.len() <= d {
                levels.resize(d + 1, Vec::new());
            }
            levels[d].push(i as u32);
        }

        Plan {
            seed: spec.seed,
            legacy_tar_split: spec.legacy_tar_split,
            files_per_layer: spec.files_per_layer,
            file_bytes: spec.file_bytes,
            layers,
            cache_ids,
            links,
            levels,
            images,
            containers,
        }
    }

    /// `lower` of a directory whose parent is layer `parent`: `l/<parent link>`
    /// followed by the parent's own `lower` entries.
    fn lower_from(&self, parent: u32) -> String {
        let mut s = String::new();
        let mut cur = Some(parent);
        while let Some(p) = cur {
            if !s.is_empty() {
                s.push(':');
            }
            s.push_str("l/");
            s.push_str(&self.links[p as usize]);
            cur = self.layers[p as usize].parent;
        }
        s
    }

    /// Layer indices of an image, base first.
    fn image_layers(&self, image: usize) -> Vec<u32> {
        let mut out = Vec::new();
        let mut cur = self.images[image].top;
        while let Some(l) = cur {
            out.push(l);
            cur = self.layers[l as usize].parent;
        }
        out.reverse();
        out
    }

    /// Image indices from the family root down to `image`.
    fn image_ancestry(&self, image: usize) -> Vec<usize> {
        let mut out = vec![image];
        let mut cur = self.images[image].base;
        while let Some(b) = cur {
            out.push(b as usize);
            cur = self.images[b as usize].base;
        }
        out.reverse();
        out
    }

    fn labels(&self, image: usize) -> BTreeMap<String, String> {
        const TIERS: [&str; 3] = ["web", "db", "batch"];
        let mut labels = BTreeMap::new();
        for i in self.image_ancestry(image) {
            if self.images[i].own_labels {
                labels.insert("synth.team".to_string(), format!("team-{}", i % 7));
                labels.insert("synth.tier".to_string(), TIERS[i % 3].to_string());
            }
        }
        labels
    }

    fn repo(&self, image: usize) -> String {
        format!("synth/app-{}", self.images[image].family)
    }
}

fn shuffle<T>(rng: &mut Rng, v: &mut [T]) {
    for i in (1..v.len()).rev() {
        let j = rng.index(i + 1);
        v.swap(i, j);
    }
}

// ---------------------------------------------------------------------------
// File-system writing with exact modes

struct Ctx {
    root: PathBuf,
    home: PathBuf,
    imagedb: PathBuf,
    layerdb: PathBuf,
    /// Bits the process umask clears; a chmod is needed only when a mode has any.
    umask: u32,
    bytes: AtomicU64,
}

impl Ctx {
    fn new(root: &Path) -> io::Result<Ctx> {
        let umask = current_umask();
        if !root.exists() {
            fs::create_dir_all(root)?;
            fs::set_permissions(root, Permissions::from_mode(0o710))?;
        }
        let root = std::path::absolute(root)?;
        let image = root.join("image").join("overlay2");
        let ctx = Ctx {
            home: root.join("overlay2"),
            imagedb: image.join("imagedb"),
            layerdb: image.join("layerdb"),
            root,
            umask,
            bytes: AtomicU64::new(0),
        };
        ctx.dir(&ctx.root.join("image"), 0o700)?;
        ctx.dir(&image, 0o700)?;
        ctx.dir(&ctx.imagedb, 0o700)?;
        for sub in ["content", "metadata"] {
            ctx.dir(&ctx.imagedb.join(sub), 0o700)?;
            ctx.dir(&ctx.imagedb.join(sub).join("sha256"), 0o700)?;
        }
        ctx.dir(&ctx.layerdb, 0o700)?;
        for sub in ["sha256", "mounts", "tmp"] {
            ctx.dir(&ctx.layerdb.join(sub), 0o755)?;
        }
        ctx.dir(&ctx.home, 0o710)?;
        ctx.dir(&ctx.home.join("l"), 0o700)?;
        ctx.dir(&ctx.root.join("containers"), 0o710)?;
        Ok(ctx)
    }

    fn dir(&self, path: &Path, mode: u32) -> io::Result<()> {
        DirBuilder::new().mode(mode).create(path)?;
        if mode & self.umask != 0 {
            fs::set_permissions(path, Permissions::from_mode(mode))?;
        }
        Ok(())
    }

    fn open(&self, path: &Path, data: &[u8], mode: u32) -> io::Result<File> {
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(path)?;
        f.write_all(data)?;
        if mode & self.umask != 0 {
            f.set_permissions(Permissions::from_mode(mode))?;
        }
        self.bytes.fetch_add(data.len() as u64, Ordering::Relaxed);
        Ok(f)
    }

    fn file(&self, path: &Path, data: &[u8], mode: u32) -> io::Result<()> {
        self.open(path, data, mode).map(drop)
    }

    /// overlay2 `create()`: `<id>/`, `diff/`, `link`, `l/<link>`, and for a
    /// child `work/` and `lower`. Returns the `diff/` path.
    fn driver_dir(&self, id: &str, link: &str, lower: Option<&str>) -> io::Result<PathBuf> {
        let dir = self.home.join(id);
        self.dir(&dir, 0o710)?;
        let diff = dir.join("diff");
        self.dir(&diff, 0o755)?;
        std::os::unix::fs::symlink(format!("../{id}/diff"), self.home.join("l").join(link))?;
        self.file(&dir.join("link"), link.as_bytes(), 0o644)?;
        if let Some(lower) = lower {
            self.dir(&dir.join("work"), 0o700)?;
            self.file(&dir.join("lower"), lower.as_bytes(), 0o644)?;
        }
        Ok(diff)
    }
}

/// The process umask, read without changing it (Linux ≥ 4.7 shows it in
/// /proc). When unknown, assume every bit is masked, so every mode is set explicitly.
fn current_umask() -> u32 {
    fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Umask:"))
                .and_then(|v| u32::from_str_radix(v.trim(), 8).ok())
        })
        .unwrap_or(0o777)
}

fn set_mtime(file: &File, secs: i64) -> io::Result<()> {
    let t = UNIX_EPOCH + Duration::from_secs(secs.max(0) as u64);
    file.set_times(FileTimes::new().set_accessed(t).set_modified(t))
}

// ---------------------------------------------------------------------------
// Tar stream + tar-split, built while the files are extracted

const ZEROS: [u8; 1024] = [0u8; 1024];

/// A ustar header exactly as Go's `archive/tar` writes it for Docker's layer
/// tars: octal fields zero-padded with a NUL, `root` owner names, device
/// numbers present, checksum as 6 digits, NUL, space.
fn ustar_header(
    name: &str,
    kind: tar::EntryType,
    mode: u32,
    size: u64,
    mtime: i64,
    link: Option<&str>,
) -> io::Result<[u8; 512]> {
    let nb = name.as_bytes();
    if nb.len() > 100 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "tar name too long",
        ));
    }
    let mut h = tar::Header::new_ustar();
    h.as_ustar_mut().expect("ustar header").name[..nb.len()].copy_from_slice(nb);
    h.set_mode(mode);
    h.set_uid(0);
    h.set_gid(0);
    h.set_size(size);
    h.set_mtime(mtime.max(0) as u64);
    h.set_entry_type(kind);
    if let Some(link) = link {
        h.set_link_name_literal(link)?;
    }
    h.set_username("root")?;
    h.set_groupname("root")?;
    h.set_device_major(0)?;
    h.set_device_minor(0)?;
    h.set_cksum();
    let sum = h.cksum()?;
    let bytes = h.as_mut_bytes();
    bytes[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
    Ok(*bytes)
}

/// Go tar-split's `storage.Packer` (JSON lines) plus the sha256 of the stream.
struct TarSplit {
    json: Vec<u8>,
    position: u64,
    pending: Vec<u8>,
    sha: Sha256,
    legacy: bool,
}

impl TarSplit {
    fn new(legacy: bool) -> Self {
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
    fn entry(&mut self, header: &[u8; 512], name: &str, body: &[u8]) {
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
        let pad = (512 - body.len() % 512) % 512;
        self.sha.update(&ZEROS[..pad]);
        self.pending.extend_from_slice(&ZEROS[..pad]);
    }

    /// End of archive: padding and two zero blocks in one Segment.
    fn finish(mut self) -> io::Result<(DiffId, Vec<u8>)> {
        self.sha.update(ZEROS);
        self.pending.extend_from_slice(&ZEROS);
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
fn gzip(data: &[u8]) -> io::Result<Vec<u8>> {
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

/// Extracts entries into a `diff/` directory exactly as Docker's untar would,
/// while producing the tar stream's digest and tar-split, and the
/// `directory.Size` of the result.
struct Extract<'a> {
    ctx: &'a Ctx,
    diff: PathBuf,
    ts: TarSplit,
    size: u64,
    mtime: i64,
    dirs: Vec<PathBuf>,
}

impl<'a> Extract<'a> {
    fn new(ctx: &'a Ctx, diff: PathBuf, mtime: i64, legacy: bool) -> Self {
        Extract {
            ctx,
            diff,
            ts: TarSplit::new(legacy),
            size: 0,
            mtime,
            dirs: Vec::new(),
        }
    }

    fn dir(&mut self, name: &str) -> io::Result<()> {
        let h = ustar_header(
            name,
            tar::EntryType::Directory,
            0o40755,
            0,
            self.mtime,
            None,
        )?;
        self.ts.entry(&h, name, &[]);
        let path = self.diff.join(name.trim_end_matches('/'));
        self.ctx.dir(&path, 0o755)?;
        self.dirs.push(path);
        Ok(())
    }

    fn file(&mut self, name: &str, perm: u32, body: &[u8]) -> io::Result<()> {
        let size = body.len() as u64;
        let h = ustar_header(
            name,
            tar::EntryType::Regular,
            0o100000 | perm,
            size,
            self.mtime,
            None,
        )?;
        self.ts.entry(&h, name, body);
        let f = self.ctx.open(&self.diff.join(name), body, perm)?;
        set_mtime(&f, self.mtime)?;
        self.size += size;
        Ok(())
    }

    fn symlink(&mut self, name: &str, target: &str) -> io::Result<()> {
        let h = ustar_header(
            name,
            tar::EntryType::Symlink,
            0o120777,
            0,
            self.mtime,
            Some(target),
        )?;
        self.ts.entry(&h, name, &[]);
        std::os::unix::fs::symlink(target, self.diff.join(name))?;
        self.size += target.len() as u64;
        Ok(())
    }

    /// A hard link to an earlier entry: same inode, so it adds nothing to the size.
    fn hardlink(&mut self, name: &str, target: &str) -> io::Result<()> {
        let h = ustar_header(
            name,
            tar::EntryType::Link,
            0o100644,
            0,
            self.mtime,
            Some(target),
        )?;
        self.ts.entry(&h, name, &[]);
        fs::hard_link(self.diff.join(target), self.diff.join(name))
    }

    /// Directory mtimes last (creating entries changes them), like Docker's untar.
    fn finish(self) -> io::Result<(DiffId, Vec<u8>, u64)> {
        for d in self.dirs.iter().rev() {
            set_mtime(&File::open(d)?, self.mtime)?;
        }
        let (diff, gz) = self.ts.finish()?;
        Ok((diff, gz, self.size))
    }
}

// ---------------------------------------------------------------------------
// Layers

#[derive(Debug, Clone)]
struct LayerDone {
    diff: DiffId,
    chain: ChainId,
    size: u64,
    /// The layerdb directory actually written (`-removing` and write-set names too).
    db_name: String,
}

fn write_layers(ctx: &Ctx, plan: &Plan) -> io::Result<Vec<Option<LayerDone>>> {
    let mut done: Vec<Option<LayerDone>> = vec![None; plan.layers.len()];
    for level in &plan.levels {
        let out: Vec<(u32, LayerDone)> = level
            .par_iter()
            .map(|&i| {
                let parent_chain = plan.layers[i as usize]
                    .parent
                    .map(|p| done[p as usize].as_ref().expect("parent written").chain);
                write_layer(ctx, plan, i, parent_chain).map(|d| (i, d))
            })
            .collect::<io::Result<_>>()?;
        for (i, d) in out {
            done[i as usize] = Some(d);
        }
    }
    Ok(done)
}

fn write_layer(
    ctx: &Ctx,
    plan: &Plan,
    idx: u32,
    parent_chain: Option<ChainId>,
) -> io::Result<LayerDone> {
    let lp = &plan.layers[idx as usize];
    let cache_id = &plan.cache_ids[idx as usize];
    let lower = lp.parent.map(|p| plan.lower_from(p));
    let diff_dir = ctx.driver_dir(cache_id, &plan.links[idx as usize], lower.as_deref())?;
    if lp.committed {
        ctx.file(&ctx.home.join(cache_id).join("committed"), b"", 0o600)?;
    }

    let mut rng = Rng::new(plan.seed, STREAM_LAYER, u64::from(idx) | 1 << 40);
    let mut x = Extract::new(ctx, diff_dir, lp.created, plan.legacy_tar_split);
    let top = match lp.kind {
        LayerKind::Image => "srv",
        _ => "var",
    };
    let dir = format!("{top}/{}", lp.number);
    x.dir(&format!("{top}/"))?;
    x.dir(&format!("{dir}/"))?;
    let mut body = Vec::new();
    for j in 0..plan.files_per_layer {
        let fb = plan.file_bytes;
        let len = if fb == 0 {
            0
        } else {
            fb / 2 + rng.index(fb + 1)
        };
        body.clear();
        let head = format!("synth layer {} file {j}\n", lp.number);
        body.extend_from_slice(&head.as_bytes()[..head.len().min(len)]);
        let start = body.len();
        body.resize(len, 0);
        rng.fill(&mut body[start..]);
        let perm = if j % 4 == 3 { 0o755 } else { 0o644 };
        x.file(&format!("{dir}/f{j}.bin"), perm, &body)?;
    }
    if plan.files_per_layer > 0 {
        if lp.number.is_multiple_of(5) {
            x.hardlink(&format!("{dir}/f0.link"), &format!("{dir}/f0.bin"))?;
        }
        if lp.number.is_multiple_of(3) {
            x.symlink(&format!("{dir}/current"), "f0.bin")?;
        }
    }
    let (diff, gz, size) = x.finish()?;
    let chain = ChainId::child(parent_chain.as_ref(), &diff);

    let mut meta_rng = Rng::new(plan.seed, STREAM_EXTRA, u64::from(idx));
    let db_dir = match lp.kind {
        LayerKind::Image => Some(ctx.layerdb.join("sha256").join(chain.hex())),
        LayerKind::Removing => Some(ctx.layerdb.join("sha256").join(format!(
            "{}-{}-removing",
            chain.hex(),
            meta_rng.hex64()
        ))),
        LayerKind::WriteSet => Some(
            ctx.layerdb
                .join("tmp")
                .join(format!("write-set-{}", meta_rng.next() as u32)),
        ),
        LayerKind::Orphan => None,
    };
    let mut db_name = String::new();
    if let Some(db) = db_dir {
        db_name = db
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned();
        ctx.dir(&db, 0o700)?;
        ctx.file(&db.join("tar-split.json.gz"), &gz, 0o644)?;
        ctx.file(&db.join("diff"), diff.to_string().as_bytes(), 0o644)?;
        ctx.file(&db.join("size"), size.to_string().as_bytes(), 0o644)?;
        ctx.file(&db.join("cache-id"), cache_id.as_bytes(), 0o644)?;
        if let (Some(p), false) = (parent_chain, lp.kind == LayerKind::WriteSet) {
            ctx.file(&db.join("parent"), p.to_string().as_bytes(), 0o644)?;
        }
    }
    Ok(LayerDone {
        diff,
        chain,
        size,
        db_name,
    })
}

// ---------------------------------------------------------------------------
// Images

struct ImageDone {
    id: ImageId,
    refs: Vec<String>,
}

const PATH_ENV: &str = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Own history entries of image `i`, as (created, created_by, empty_layer).
fn own_history(plan: &Plan, i: usize) -> Vec<(String, String, bool)> {
    let im = &plan.images[i];
    let mut out = Vec::new();
    let layers = plan.image_layers(i);
    let own = &layers[layers.len() - im.own as usize..];
    for &l in own {
        let lp = &plan.layers[l as usize];
        let mut r = Rng::new(plan.seed, STREAM_LAYER, u64::from(l) | 2 << 40);
        let by = if lp.parent.is_none() {
            format!("/bin/sh -c #(nop) ADD file:{} in / ", r.hex64())
        } else {
            format!(
                "/bin/sh -c #(nop) COPY dir:{} in /srv/{} ",
                r.hex64(),
                lp.number
            )
        };
        out.push((rfc3339nano(lp.created, 0), by, false));
    }
    let t = rfc3339nano(im.created.0, im.created.1);
    if im.own_labels {
        out.push((
            t.clone(),
            format!(
                "/bin/sh -c #(nop)  LABEL synth.team=team-{} synth.tier={}",
                i % 7,
                ["web", "db", "batch"][i % 3]
            ),
            true,
        ));
    }
    out.push((
        t.clone(),
        format!("/bin/sh -c #(nop)  ENV SYNTH_BUILD={i}"),
        true,
    ));
    if im.base.is_none() {
        out.push((t, "/bin/sh -c #(nop)  CMD [\"/bin/sh\"]".to_string(), true));
    }
    out
}

fn container_config(
    out: &mut String,
    hostname: &str,
    env: &[String],
    cmd: &[String],
    image: &str,
    labels: &BTreeMap<String, String>,
    attach: bool,
) {
    out.push_str("{\"Hostname\":");
    go_str(out, hostname);
    let _ = write!(
        out,
        ",\"Domainname\":\"\",\"User\":\"\",\"AttachStdin\":false,\"AttachStdout\":{attach},\"AttachStderr\":{attach},\"Tty\":false,\"OpenStdin\":false,\"StdinOnce\":false,\"Env\":"
    );
    go_str_list(out, env);
    out.push_str(",\"Cmd\":");
    go_str_list(out, cmd);
    out.push_str(",\"Image\":");
    go_str(out, image);
    out.push_str(
        ",\"Volumes\":null,\"WorkingDir\":\"\",\"Entrypoint\":null,\"OnBuild\":null,\"Labels\":",
    );
    if labels.is_empty() {
        out.push_str("null");
    } else {
        go_map(out, labels);
    }
    out.push('}');
}

/// The image config as the legacy builder writes it: top-level keys sorted
/// (`Image.MarshalJSON` goes through a map), nested objects in Go field order.
fn image_config(plan: &Plan, i: usize, diff_ids: &[DiffId], parent_id: Option<&ImageId>) -> String {
    let im = &plan.images[i];
    let labels = plan.labels(i);
    let env = vec![PATH_ENV.to_string(), format!("SYNTH_BUILD={i}")];
    let from = parent_id.map(ToString::to_string).unwrap_or_default();
    let mut history = Vec::new();
    for a in plan.image_ancestry(i) {
        history.extend(own_history(plan, a));
    }
    let last_by = history.last().map(|h| h.1.clone()).unwrap_or_default();

    let mut s = String::with_capacity(2048);
    s.push_str("{\"architecture\":\"amd64\",\"config\":");
    container_config(
        &mut s,
        "",
        &env,
        &["/bin/sh".to_string()],
        &from,
        &labels,
        false,
    );
    s.push_str(",\"container_config\":");
    let build_cmd = vec![
        "/bin/sh".to_string(),
        "-c".to_string(),
        last_by.trim_start_matches("/bin/sh -c ").to_string(),
    ];
    container_config(&mut s, "", &env, &build_cmd, &from, &labels, false);
    s.push_str(",\"created\":");
    go_str(&mut s, &rfc3339nano(im.created.0, im.created.1));
    s.push_str(",\"docker_version\":\"20.10.24\",\"history\":[");
    for (k, (created, by, empty)) in history.iter().enumerate() {
        if k > 0 {
            s.push(',');
        }
        s.push_str("{\"created\":");
        go_str(&mut s, created);
        s.push_str(",\"created_by\":");
        go_str(&mut s, by);
        if *empty {
            s.push_str(",\"empty_layer\":true");
        }
        s.push('}');
    }
    s.push_str("],\"os\":\"linux\",\"rootfs\":{\"type\":\"layers\",\"diff_ids\":[");
    for (k, d) in diff_ids.iter().enumerate() {
        if k > 0 {
            s.push(',');
        }
        let _ = write!(s, "\"{d}\"");
    }
    s.push_str("]}}");
    s
}

fn image_refs(plan: &Plan, i: usize) -> Vec<String> {
    let im = &plan.images[i];
    let repo = plan.repo(i);
    let mut refs = Vec::new();
    if im.kind == SynthImageKind::Tagged {
        refs.push(format!("{repo}:v{i}"));
        for j in 1..im.tags {
            if j == 1 && i.is_multiple_of(4) {
                refs.push(format!("registry.example.com:5000/{repo}:v{i}"));
            } else {
                refs.push(format!("synth/mirror-{j}:v{i}"));
            }
        }
        if im.latest {
            refs.push(format!("{repo}:latest"));
        }
    }
    if im.digest {
        let mut r = Rng::new(plan.seed, STREAM_IMAGE, i as u64);
        refs.push(format!("{repo}@sha256:{}", r.hex64()));
    }
    refs
}

fn write_images(
    ctx: &Ctx,
    plan: &Plan,
    layers: &[Option<LayerDone>],
) -> io::Result<Vec<ImageDone>> {
    let mut done: Vec<ImageDone> = Vec::with_capacity(plan.images.len());
    let n = plan.images.len();
    const CHUNK: usize = 1024;
    let mut start = 0;
    while start < n {
        let end = (start + CHUNK).min(n);
        // Configs in order (a child names its parent's ID), files in parallel.
        let mut batch = Vec::with_capacity(end - start);
        for i in start..end {
            let im = &plan.images[i];
            let diff_ids: Vec<DiffId> = plan
                .image_layers(i)
                .iter()
                .map(|&l| layers[l as usize].as_ref().expect("layer written").diff)
                .collect();
            let parent_id = im.base.map(|b| done[b as usize].id);
            let config = image_config(plan, i, &diff_ids, parent_id.as_ref());
            let id = ImageId(Digest::of_bytes(config.as_bytes()));
            let refs = image_refs(plan, i);
            done.push(ImageDone { id, refs });
            batch.push((i, id, config, parent_id.filter(|_| im.meta_parent)));
        }
        batch
            .par_iter()
            .try_for_each(|(i, id, config, meta_parent)| -> io::Result<()> {
                let im = &plan.images[*i];
                let content = ctx.imagedb.join("content/sha256").join(id.hex());
                ctx.file(&content, config.as_bytes(), 0o600)?;
                let last_updated = match im.kind {
                    SynthImageKind::Tagged => true,
                    SynthImageKind::Dangling => im.keeps_last_updated,
                    _ => false,
                };
                if meta_parent.is_some() || last_updated {
                    let meta = ctx.imagedb.join("metadata/sha256").join(id.hex());
                    ctx.dir(&meta, 0o700)?;
                    if let Some(p) = meta_parent {
                        ctx.file(&meta.join("parent"), p.to_string().as_bytes(), 0o600)?;
                    }
                    if last_updated {
                        let t = rfc3339nano(im.created.0 + 120, im.created.1 / 7 + 1);
                        ctx.file(&meta.join("lastUpdated"), t.as_bytes(), 0o600)?;
                    }
                }
                Ok(())
            })?;
        start = end;
    }
    Ok(done)
}

fn write_references(ctx: &Ctx, images: &[ImageDone]) -> io::Result<usize> {
    let mut repos: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    let mut count = 0;
    for im in images {
        for r in &im.refs {
            let repo = r
                .split_once('@')
                .map(|(n, _)| n)
                .unwrap_or_else(|| &r[..r.rfind(':').unwrap_or(r.len())]);
            repos
                .entry(repo.to_string())
                .or_default()
                .insert(r.clone(), im.id.to_string());
            count += 1;
        }
    }
    // json.Marshal of the store: compact, keys sorted, no trailing newline.
    let body = serde_json::to_string(&BTreeMap::from([("Repositories", repos)]))
        .map_err(io::Error::other)?;
    let path = ctx.root.join("image/overlay2/repositories.json");
    ctx.file(&path, body.as_bytes(), 0o600)?;
    Ok(count)
}

// ---------------------------------------------------------------------------
// Containers

struct ContainerDone {
    id: String,
    mount_id: String,
    size_rw: u64,
}

const HOSTCONFIG: &str = r#"{"Binds":null,"ContainerIDFile":"","LogConfig":{"Type":"json-file","Config":{}},"NetworkMode":"default","PortBindings":{},"RestartPolicy":{"Name":"no","MaximumRetryCount":0},"AutoRemove":false,"VolumeDriver":"","VolumesFrom":null,"CapAdd":null,"CapDrop":null,"CgroupnsMode":"host","Dns":[],"DnsOptions":[],"DnsSearch":[],"ExtraHosts":null,"GroupAdd":null,"IpcMode":"private","Cgroup":"","Links":null,"OomScoreAdj":0,"PidMode":"","Privileged":false,"PublishAllPorts":false,"ReadonlyRootfs":false,"SecurityOpt":null,"UTSMode":"","UsernsMode":"","ShmSize":67108864,"Runtime":"runc","ConsoleSize":[0,0],"Isolation":"","CpuShares":0,"Memory":0,"NanoCpus":0,"CgroupParent":"","BlkioWeight":0,"BlkioWeightDevice":[],"BlkioDeviceReadBps":[],"BlkioDeviceWriteBps":[],"BlkioDeviceReadIOps":[],"BlkioDeviceWriteIOps":[],"CpuPeriod":0,"CpuQuota":0,"CpuRealtimePeriod":0,"CpuRealtimeRuntime":0,"CpusetCpus":"","CpusetMems":"","Devices":[],"DeviceCgroupRules":null,"DeviceRequests":null,"KernelMemory":0,"KernelMemoryTCP":0,"MemoryReservation":0,"MemorySwap":0,"MemorySwappiness":null,"OomKillDisable":false,"PidsLimit":null,"Ulimits":[],"CpuCount":0,"CpuPercent":0,"IOMaximumIOps":0,"IOMaximumBandwidth":0,"MaskedPaths":["/proc/asound","/proc/acpi","/proc/kcore","/proc/keys","/proc/latency_stats","/proc/timer_list","/proc/timer_stats","/proc/sched_debug","/proc/scsi","/sys/firmware"],"ReadonlyPaths":["/proc/bus","/proc/fs","/proc/irq","/proc/sys","/proc/sysrq-trigger"]}"#;

const NETWORK_SETTINGS: &str = r#"{"Bridge":"","SandboxID":"","HairpinMode":false,"LinkLocalIPv6Address":"","LinkLocalIPv6PrefixLen":0,"Networks":{"bridge":{"IPAMConfig":null,"Links":null,"Aliases":null,"NetworkID":"","EndpointID":"","Gateway":"","IPAddress":"","IPPrefixLen":0,"IPv6Gateway":"","GlobalIPv6Address":"","GlobalIPv6PrefixLen":0,"MacAddress":"","DriverOpts":null,"IPAMOperational":false}},"Service":null,"Ports":null,"SandboxKey":"","SecondaryIPAddresses":null,"SecondaryIPv6Addresses":null,"IsAnonymousEndpoint":false,"HasSwarmEndpoint":false}"#;

const HOSTS: &str = "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\nfe00::0\tip6-localnet\nff00::0\tip6-mcastprefix\nff02::1\tip6-allnodes\nff02::2\tip6-allrouters\n";

const RESOLV: &str = "nameserver 192.0.2.53\noptions ndots:0\n";

fn write_containers(
    ctx: &Ctx,
    plan: &Plan,
    layers: &[Option<LayerDone>],
    images: &[ImageDone],
) -> io::Result<Vec<ContainerDone>> {
    plan.containers
        .par_iter()
        .enumerate()
        .map(|(c, cp)| write_container(ctx, plan, layers, images, c, cp))
        .collect()
}

fn write_container(
    ctx: &Ctx,
    plan: &Plan,
    layers: &[Option<LayerDone>],
    images: &[ImageDone],
    c: usize,
    cp: &ContainerPlan,
) -> io::Result<ContainerDone> {
    let mut rng = Rng::new(plan.seed, STREAM_CONTAINER, c as u64);
    let id = rng.hex64();
    let mount_id = rng.hex64();
    let init_id = format!("{mount_id}-init");
    let init_link = rng.link_id();
    let rw_link = rng.link_id();
    let image = &images[cp.image as usize];
    let ip = &plan.images[cp.image as usize];
    let top = ip.top;
    let started_at = cp.created.0 + 1 + rng.below(60) as i64;
    let finished_at = started_at + 1 + rng.below(86_400) as i64;

    // Init layer: what daemon/initlayer creates, then committed (the RW layer sits on it).
    let init_lower = top.map(|t| plan.lower_from(t));
    let diff = ctx.driver_dir(&init_id, &init_link, init_lower.as_deref())?;
    ctx.file(&ctx.home.join(&init_id).join("committed"), b"", 0o600)?;
    if init_lower.is_some() {
        // Created by the kernel at the first mount (dockerd mounts it to populate it).
        ctx.dir(&ctx.home.join(&init_id).join("work/work"), 0o000)?;
    }
    for d in ["dev", "dev/pts", "dev/shm", "etc", "proc", "sys"] {
        ctx.dir(&diff.join(d), 0o755)?;
    }
    for f in [
        ".dockerenv",
        "dev/console",
        "etc/hostname",
        "etc/hosts",
        "etc/resolv.conf",
    ] {
        ctx.file(&diff.join(f), b"", 0o755)?;
    }
    std::os::unix::fs::symlink("/proc/mounts", diff.join("etc/mtab"))?;

    // RW layer.
    let rw_lower = match &init_lower {
        Some(l) => format!("l/{init_link}:{l}"),
        None => format!("l/{init_link}"),
    };
    let rw_diff = ctx.driver_dir(&mount_id, &rw_link, Some(&rw_lower))?;
    // `docker create` already mounts the RW layer once, so the kernel's work/work exists.
    ctx.dir(&ctx.home.join(&mount_id).join("work/work"), 0o000)?;
    let mut size_rw = 0u64;
    if cp.started {
        ctx.dir(&rw_diff.join("data"), 0o755)?;
        let mut body = vec![0u8; 64 + rng.index(4000)];
        rng.fill(&mut body);
        ctx.file(&rw_diff.join(format!("data/out-{c}.bin")), &body, 0o644)?;
        size_rw += body.len() as u64;
        ctx.dir(&rw_diff.join("tmp"), 0o1777)?;
        let note = format!("synth container {c}\n");
        ctx.file(&rw_diff.join("tmp/note.txt"), note.as_bytes(), 0o644)?;
        size_rw += note.len() as u64;
    }

    // layerdb/mounts/<id>.
    let mdir = ctx.layerdb.join("mounts").join(&id);
    ctx.dir(&mdir, 0o755)?;
    ctx.file(&mdir.join("init-id"), init_id.as_bytes(), 0o644)?;
    ctx.file(&mdir.join("mount-id"), mount_id.as_bytes(), 0o644)?;
    if let Some(t) = top {
        let chain = layers[t as usize].as_ref().expect("layer written").chain;
        ctx.file(&mdir.join("parent"), chain.to_string().as_bytes(), 0o644)?;
    }

    // containers/<id>.
    let cdir = ctx.root.join("containers").join(&id);
    ctx.dir(&cdir, 0o710)?;
    ctx.dir(&cdir.join("checkpoints"), 0o700)?;
    let cpath = |name: &str| cdir.join(name).to_string_lossy().into_owned();
    let (log_path, hostname_path, hosts_path, resolv_path) = if cp.started {
        ctx.dir(&cdir.join("mounts"), 0o710)?;
        ctx.file(
            &cdir.join("hostname"),
            format!("{}\n", &id[..12]).as_bytes(),
            0o644,
        )?;
        ctx.file(&cdir.join("hosts"), HOSTS.as_bytes(), 0o644)?;
        ctx.file(&cdir.join("resolv.conf"), RESOLV.as_bytes(), 0o644)?;
        let hash = Digest::of_bytes(RESOLV.as_bytes()).to_string();
        ctx.file(&cdir.join("resolv.conf.hash"), hash.as_bytes(), 0o644)?;
        let mut log = String::new();
        for k in 0..3 + rng.index(8) {
            let (stream, text) = if k % 3 == 2 {
                (
                    "stderr",
                    format!("warn: step {k} took <{}ms> & retried\n", rng.below(900)),
                )
            } else {
                ("stdout", format!("synth-{c} line {k}\n"))
            };
            log.push_str("{\"log\":");
            go_str(&mut log, &text);
            let _ = writeln!(
                log,
                ",\"stream\":\"{stream}\",\"time\":\"{}\"}}",
                rfc3339nano(started_at, (k as u32 + 1) * 1_000_003)
            );
        }
        let name = format!("{id}-json.log");
        ctx.file(&cdir.join(&name), log.as_bytes(), 0o640)?;
        (
            cpath(&name),
            cpath("hostname"),
            cpath("hosts"),
            cpath("resolv.conf"),
        )
    } else {
        Default::default()
    };

    let zero = "0001-01-01T00:00:00Z".to_string();
    let (start_s, finish_s, exit) = if cp.started {
        (
            rfc3339nano(started_at, rng.below(1_000_000_000) as u32),
            rfc3339nano(finished_at, rng.below(1_000_000_000) as u32),
            cp.exit_code,
        )
    } else {
        (zero.clone(), zero, 0)
    };
    let config_image = match ip.kind {
        SynthImageKind::Tagged => image.refs[0].clone(),
        SynthImageKind::Dangling => format!("{}:old", plan.repo(cp.image as usize)),
        _ => image.id.hex()[..12].to_string(),
    };
    let args = vec![
        "-c".to_string(),
        format!("synth-job {c} > /data/out-{c}.bin"),
    ];
    let mut cmd = vec!["sh".to_string()];
    cmd.extend(args.iter().cloned());
    let env = vec![PATH_ENV.to_string(), format!("SYNTH_BUILD={}", cp.image)];

    let mut s = String::with_capacity(3072);
    let _ = write!(
        s,
        "{{\"StreamConfig\":{{}},\"State\":{{\"Running\":false,\"Paused\":false,\"Restarting\":false,\"OOMKilled\":false,\"RemovalInProgress\":false,\"Dead\":false,\"Pid\":0,\"ExitCode\":{exit},\"Error\":\"\",\"StartedAt\":\"{start_s}\",\"FinishedAt\":\"{finish_s}\",\"Health\":null}},\"ID\":\"{id}\",\"Created\":\"{}\",\"Managed\":false,\"Path\":\"sh\",\"Args\":",
        rfc3339nano(cp.created.0, cp.created.1)
    );
    go_str_list(&mut s, &args);
    s.push_str(",\"Config\":");
    container_config(
        &mut s,
        &id[..12],
        &env,
        &cmd,
        &config_image,
        &plan.labels(cp.image as usize),
        true,
    );
    let _ = write!(
        s,
        ",\"Image\":\"{}\",\"NetworkSettings\":{NETWORK_SETTINGS},\"LogPath\":",
        image.id
    );
    go_str(&mut s, &log_path);
    let _ = write!(
        s,
        ",\"Name\":\"/synth-{c}\",\"Driver\":\"overlay2\",\"OS\":\"linux\",\"MountLabel\":\"\",\"ProcessLabel\":\"\",\"RestartCount\":0,\"HasBeenStartedBefore\":{},\"HasBeenManuallyStopped\":false,\"MountPoints\":{{}},\"SecretReferences\":null,\"ConfigReferences\":null,\"AppArmorProfile\":\"\",\"HostnamePath\":",
        cp.started
    );
    go_str(&mut s, &hostname_path);
    s.push_str(",\"HostsPath\":");
    go_str(&mut s, &hosts_path);
    s.push_str(",\"ShmPath\":\"\",\"ResolvConfPath\":");
    go_str(&mut s, &resolv_path);
    s.push_str(",\"SeccompProfile\":\"\",\"NoNewPrivileges\":false,\"LocalLogCacheMeta\":{\"HaveNotifyEnabled\":false}}\n");
    ctx.file(&cdir.join("config.v2.json"), s.as_bytes(), 0o600)?;
    ctx.file(
        &cdir.join("hostconfig.json"),
        format!("{HOSTCONFIG}\n").as_bytes(),
        0o644,
    )?;

    Ok(ContainerDone {
        id,
        mount_id,
        size_rw,
    })
}

// ---------------------------------------------------------------------------
// Report

fn report(
    ctx: &Ctx,
    plan: &Plan,
    layers: Vec<Option<LayerDone>>,
    images: Vec<ImageDone>,
    references: usize,
    containers: Vec<ContainerDone>,
) -> SynthReport {
    let mut r = SynthReport {
        images: images.len(),
        containers: containers.len(),
        references,
        ..Default::default()
    };
    for (i, lp) in plan.layers.iter().enumerate() {
        let d = layers[i].as_ref().expect("layer written");
        match lp.kind {
            LayerKind::Image => {
                r.layers += 1;
                r.layers_size += d.size;
                r.layer_list.push(SynthLayer {
                    chain_id: d.chain,
                    diff_id: d.diff,
                    parent: lp
                        .parent
                        .map(|p| layers[p as usize].as_ref().expect("layer").chain),
                    cache_id: plan.cache_ids[i].clone(),
                    size: d.size,
                });
            }
            LayerKind::Removing => r.removing.push(d.db_name.clone()),
            LayerKind::WriteSet => {
                r.write_sets.push(d.db_name.clone());
                r.orphan_dirs.push(plan.cache_ids[i].clone());
            }
            LayerKind::Orphan => r.orphan_dirs.push(plan.cache_ids[i].clone()),
        }
    }
    let mut users = vec![0usize; images.len()];
    for cp in &plan.containers {
        users[cp.image as usize] += 1;
    }
    for (i, im) in images.iter().enumerate() {
        let ip = &plan.images[i];
        let mut chain = Vec::new();
        let mut size = 0;
        for l in plan.image_layers(i) {
            let d = layers[l as usize].as_ref().expect("layer written");
            chain.push(d.chain);
            size += d.size;
        }
        r.image_list.push(SynthImage {
            id: im.id,
            kind: ip.kind,
            refs: im.refs.clone(),
            parent: ip
                .base
                .filter(|_| ip.meta_parent)
                .map(|b| images[b as usize].id),
            chain,
            size,
            containers: users[i],
        });
    }
    for (cp, cd) in plan.containers.iter().zip(containers) {
        r.container_list.push(SynthContainer {
            id: ContainerId(cd.id),
            name: format!("synth-{}", r.container_list.len()),
            image: images[cp.image as usize].id,
            mount_id: cd.mount_id,
            size_rw: cd.size_rw,
            started: cp.started,
        });
    }
    r.bytes_written = ctx.bytes.load(Ordering::Relaxed);
    r
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::{BTreeSet, HashSet};
    use std::io::Read;
    use std::os::unix::fs::MetadataExt;

    fn read(p: &Path) -> String {
        fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
    }

    fn mode(p: &Path) -> u32 {
        fs::symlink_metadata(p).unwrap().mode() & 0o7777
    }

    /// Docker's `directory.Size`: apparent sizes of non-directories with
    /// size > 0 (symlinks count their target length), each inode once.
    fn directory_size(dir: &Path) -> u64 {
        fn walk(d: &Path, seen: &mut HashSet<u64>, total: &mut u64) {
            for e in fs::read_dir(d).unwrap() {
                let p = e.unwrap().path();
                let m = fs::symlink_metadata(&p).unwrap();
                if m.is_dir() {
                    walk(&p, seen, total);
                } else if m.len() > 0 && seen.insert(m.ino()) {
                    *total += m.len();
                }
            }
        }
        let mut seen = HashSet::new();
        let mut total = 0;
        walk(dir, &mut seen, &mut total);
        total
    }

    /// tar-split's `WriteOutputTarStream` with a path file getter rooted at
    /// `diff/`: Segments verbatim, size > 0 files from disk with a CRC check.
    /// Returns the stream and the parsed lines.
    fn reassemble(tar_split_gz: &Path, diff: &Path) -> (Vec<u8>, Vec<serde_json::Value>) {
        let mut json = String::new();
        flate2::read::GzDecoder::new(File::open(tar_split_gz).unwrap())
            .read_to_string(&mut json)
            .unwrap();
        let b64 = base64::engine::general_purpose::STANDARD;
        let mut out = Vec::new();
        let mut lines = Vec::new();
        for (k, line) in json.split_terminator('\n').enumerate() {
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            assert_eq!(v["position"], k as u64, "position counts every entry");
            match v["type"].as_u64().unwrap() {
                2 => out.extend(b64.decode(v["payload"].as_str().unwrap()).unwrap()),
                1 => {
                    let size = v.get("size").and_then(|s| s.as_u64()).unwrap_or(0);
                    if size == 0 {
                        assert!(v["payload"].is_null(), "size 0 → payload null: {line}");
                        lines.push(v);
                        continue;
                    }
                    let name = v["name"].as_str().unwrap();
                    let body = fs::read(diff.join(name)).unwrap();
                    let mut crc = crc_fast::Digest::new(crc_fast::CrcAlgorithm::Crc64GoIso);
                    crc.update(&body);
                    let want = b64.decode(v["payload"].as_str().unwrap()).unwrap();
                    assert_eq!(want, crc.finalize().to_be_bytes(), "CRC of {name}");
                    assert_eq!(body.len() as u64, size);
                    out.extend(body);
                }
                t => panic!("unknown tar-split entry type {t}"),
            }
            lines.push(v);
        }
        (out, lines)
    }

    fn make_root(spec: &SynthSpec) -> (tempfile::TempDir, PathBuf, SynthReport) {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("docker");
        let report = generate(&root, spec).unwrap();
        (tmp, root, report)
    }

    #[test]
    fn go_formats() {
        let mut crc = crc_fast::Digest::new(crc_fast::CrcAlgorithm::Crc64GoIso);
        crc.update(b"imma hurr til I derp");
        let b64 = base64::engine::general_purpose::STANDARD;
        assert_eq!(b64.encode(crc.finalize().to_be_bytes()), "AnSksavsa04=");
        assert_eq!(rfc3339nano(0, 0), "1970-01-01T00:00:00Z");
        assert_eq!(
            rfc3339nano(1_795_703_280, 951_078_436),
            "2026-11-26T14:28:00.951078436Z"
        );
        assert_eq!(
            rfc3339nano(1_709_164_800, 120_000_000),
            "2024-02-29T00:00:00.12Z"
        );
        let mut s = String::new();
        go_str(&mut s, "a<b>&\"\\\n\u{1}");
        assert_eq!(s, r#""a\u003cb\u003e\u0026\"\\\n\u0001""#);
        let h = ustar_header(
            "etc/df",
            tar::EntryType::Regular,
            0o100644,
            84,
            1_795_703_282,
            None,
        )
        .unwrap();
        // Field layout as Go writes it (compare a header written by dockerd 20.10).
        assert_eq!(&h[100..108], b"0100644\0");
        assert_eq!(&h[124..136], b"00000000124\0");
        assert_eq!(&h[257..265], b"ustar\x0000");
        assert_eq!(&h[265..269], b"root");
        assert_eq!(&h[329..345], b"0000000\x000000000\0");
        assert_eq!(h[154..156], [0, b' ']);
        let sum: u32 = h
            .iter()
            .enumerate()
            .map(|(i, &b)| {
                if (148..156).contains(&i) {
                    32
                } else {
                    u32::from(b)
                }
            })
            .sum();
        assert_eq!(&h[148..154], format!("{sum:06o}").as_bytes());
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

    #[test]
    fn demo_root_is_exactly_consistent() {
        let spec = SynthSpec::demo();
        let (_tmp, root, report) = make_root(&spec);
        let img = root.join("image/overlay2");
        let home = root.join("overlay2");

        // imagedb: every config hashes to its name and is a loadable image.
        let mut ids = BTreeSet::new();
        let mut tops = BTreeMap::new();
        for e in fs::read_dir(img.join("imagedb/content/sha256")).unwrap() {
            let e = e.unwrap();
            let name = e.file_name().into_string().unwrap();
            let bytes = fs::read(e.path()).unwrap();
            assert_eq!(Digest::of_bytes(&bytes).hex(), name);
            assert_eq!(mode(&e.path()), 0o600);
            let v: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
            assert_eq!(v["os"], "linux");
            assert_eq!(v["architecture"], "amd64");
            assert_eq!(v["rootfs"]["type"], "layers");
            let diffs: Vec<DiffId> = v["rootfs"]["diff_ids"]
                .as_array()
                .unwrap()
                .iter()
                .map(|d| DiffId::parse(d.as_str().unwrap()).unwrap())
                .collect();
            let non_empty = v["history"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|h| h.get("empty_layer").is_none())
                .count();
            assert_eq!(non_empty, diffs.len());
            let chain = ChainId::chain(&diffs);
            tops.insert(name.clone(), chain.last().copied());
            ids.insert(name);
        }
        assert_eq!(ids.len(), spec.images);
        let reported: BTreeSet<String> = report.image_list.iter().map(|i| i.id.hex()).collect();
        assert_eq!(ids, reported);
        for im in &report.image_list {
            assert_eq!(tops[&im.id.hex()], im.chain.last().copied());
            if let Some(p) = im.parent {
                let meta = img.join("imagedb/metadata/sha256").join(im.id.hex());
                assert_eq!(read(&meta.join("parent")), p.to_string());
                assert!(ids.contains(&p.hex()));
            }
        }
        let kinds: BTreeSet<_> = report.image_list.iter().map(|i| i.kind).collect();
        assert!(kinds.contains(&SynthImageKind::Tagged));
        assert!(kinds.contains(&SynthImageKind::Dangling));
        assert!(kinds.contains(&SynthImageKind::Intermediate));
        assert!(report.image_list.iter().any(|i| i.refs.len() > 1));
        assert!(
            report
                .image_list
                .iter()
                .any(|i| i.refs.iter().any(|r| r.contains('@')))
        );

        // layerdb: chain IDs, sizes, tar-split reassembly, driver directories.
        let mut layer_count = 0;
        let mut removing = 0;
        let mut cache_ids = BTreeSet::new();
        for e in fs::read_dir(img.join("layerdb/sha256")).unwrap() {
            let e = e.unwrap();
            let name = e.file_name().into_string().unwrap();
            let dir = e.path();
            assert_eq!(mode(&dir), 0o700);
            if name.ends_with("-removing") {
                removing += 1;
                let hexes: Vec<&str> = name.split('-').collect();
                assert_eq!(hexes.len(), 3);
                assert!(crate::ids::is_hex64(hexes[0]) && crate::ids::is_hex64(hexes[1]));
                assert!(home.join(read(&dir.join("cache-id"))).join("diff").is_dir());
                continue;
            }
            layer_count += 1;
            let diff = DiffId::parse(&read(&dir.join("diff"))).unwrap();
            let parent = dir
                .join("parent")
                .exists()
                .then(|| ChainId::parse(&read(&dir.join("parent"))).unwrap());
            if let Some(p) = parent {
                assert!(img.join("layerdb/sha256").join(p.hex()).is_dir());
            }
            assert_eq!(ChainId::child(parent.as_ref(), &diff).hex(), name);
            let cache = read(&dir.join("cache-id"));
            assert!(cache_ids.insert(cache.clone()), "cache-id shared");
            let ddir = home.join(&cache);
            let size: u64 = read(&dir.join("size")).parse().unwrap();
            assert_eq!(size, directory_size(&ddir.join("diff")), "size of {name}");
            let (stream, lines) = reassemble(&dir.join("tar-split.json.gz"), &ddir.join("diff"));
            assert_eq!(Digest::of_bytes(&stream), diff.0, "reassembled {name}");
            assert_eq!(&stream[stream.len() - 1024..], &[0u8; 1024][..]);
            let last = lines.last().unwrap();
            assert_eq!(last["payload"], "", "legacy trailing empty Segment");
            // The stream is a tar archive whose entries are the File entries.
            let mut ar = tar::Archive::new(&stream[..]);
            let names: Vec<String> = ar
                .entries()
                .unwrap()
                .map(|en| String::from_utf8(en.unwrap().path_bytes().to_vec()).unwrap())
                .collect();
            let files: Vec<String> = lines
                .iter()
                .filter(|l| l["type"] == 1)
                .map(|l| l["name"].as_str().unwrap().to_string())
                .collect();
            assert_eq!(names, files);
            for f in ["diff", "size", "cache-id", "tar-split.json.gz"] {
                assert_eq!(mode(&dir.join(f)), 0o644);
            }
            // overlay2 create(): link, l/ symlink, lower = l/<parent link>:<parent lower>.
            assert_eq!(mode(&ddir), 0o710);
            let link = read(&ddir.join("link"));
            assert_eq!(link.len(), 26);
            assert!(
                link.bytes()
                    .all(|c| c.is_ascii_uppercase() || (b'2'..=b'7').contains(&c))
            );
            assert_eq!(
                fs::read_link(home.join("l").join(&link)).unwrap(),
                PathBuf::from(format!("../{cache}/diff"))
            );
            match parent {
                None => {
                    assert!(!ddir.join("lower").exists() && !ddir.join("work").exists());
                }
                Some(p) => {
                    let pdir = img.join("layerdb/sha256").join(p.hex());
                    let pcache = home.join(read(&pdir.join("cache-id")));
                    let mut want = format!("l/{}", read(&pcache.join("link")));
                    if pcache.join("lower").exists() {
                        want = format!("{want}:{}", read(&pcache.join("lower")));
                    }
                    assert_eq!(read(&ddir.join("lower")), want);
                    assert!(pcache.join("committed").is_file());
                    assert_eq!(mode(&ddir.join("work")), 0o700);
                }
            }
        }
        assert_eq!(layer_count, report.layers);
        assert_eq!(removing, spec.removing);
        assert_eq!(
            report.layers_size,
            report.layer_list.iter().map(|l| l.size).sum::<u64>()
        );
        for im in &report.image_list {
            let sum: u64 = im
                .chain
                .iter()
                .map(|c| {
                    read(&img.join("layerdb/sha256").join(c.hex()).join("size"))
                        .parse::<u64>()
                        .unwrap()
                })
                .sum();
            assert_eq!(sum, im.size);
        }

        // Every l/ link resolves to a directory's diff/, and every directory has one.
        let mut links = BTreeSet::new();
        for e in fs::read_dir(home.join("l")).unwrap() {
            let e = e.unwrap();
            assert!(e.path().join(".").is_dir(), "dangling l/ link");
            links.insert(e.file_name().into_string().unwrap());
        }
        let mut dirs = 0;
        for e in fs::read_dir(&home).unwrap() {
            let name = e.unwrap().file_name().into_string().unwrap();
            if name == "l" {
                continue;
            }
            dirs += 1;
            assert!(links.contains(&read(&home.join(&name).join("link"))));
            if let Ok(lower) = fs::read_to_string(home.join(&name).join("lower")) {
                for part in lower.split(':') {
                    assert!(home.join(part).join(".").is_dir(), "{name}: lower {part}");
                }
            }
        }
        assert_eq!(links.len(), dirs);
        let unreferenced: BTreeSet<String> = fs::read_dir(&home)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|n| n != "l" && !cache_ids.contains(n))
            .filter(|n| {
                !report
                    .container_list
                    .iter()
                    .any(|c| n.starts_with(&c.mount_id))
            })
            .filter(|n| {
                // -removing layers still own their driver directory.
                !fs::read_dir(img.join("layerdb/sha256")).unwrap().any(|e| {
                    let p = e.unwrap().path();
                    p.to_string_lossy().ends_with("-removing") && read(&p.join("cache-id")) == *n
                })
            })
            .collect();
        assert_eq!(
            unreferenced,
            report.orphan_dirs.iter().cloned().collect::<BTreeSet<_>>()
        );
        assert_eq!(unreferenced.len(), spec.orphan_dirs + spec.write_sets);

        // Write-sets.
        let ws: Vec<String> = fs::read_dir(img.join("layerdb/tmp"))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(ws.len(), spec.write_sets);
        assert!(ws.iter().all(|w| w.starts_with("write-set-")));

        // repositories.json: compact, sorted, no newline, 0600, targets exist.
        let rj = img.join("repositories.json");
        let body = read(&rj);
        assert_eq!(mode(&rj), 0o600);
        assert!(!body.ends_with('\n') && !body.contains(' '));
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        let mut nrefs = 0;
        for (repo, refs) in v["Repositories"].as_object().unwrap() {
            for (r, id) in refs.as_object().unwrap() {
                assert!(r.starts_with(&format!("{repo}:")) || r.starts_with(&format!("{repo}@")));
                assert!(ids.contains(&ImageId::parse(id.as_str().unwrap()).unwrap().hex()));
                nrefs += 1;
            }
        }
        assert_eq!(nrefs, report.references);

        // Containers: config names the directory, the mount's parent is the image top.
        assert_eq!(report.container_list.len(), spec.containers);
        for c in &report.container_list {
            let cdir = root.join("containers").join(&c.id.0);
            let raw = read(&cdir.join("config.v2.json"));
            assert!(raw.ends_with("}\n"));
            let v: serde_json::Value = serde_json::from_str(&raw).unwrap();
            assert_eq!(v["ID"], c.id.0);
            assert_eq!(v["Name"], format!("/{}", c.name));
            assert_eq!(v["Driver"], "overlay2");
            assert_eq!(v["Image"], c.image.to_string());
            assert_eq!(mode(&cdir.join("config.v2.json")), 0o600);
            let m = img.join("layerdb/mounts").join(&c.id.0);
            assert_eq!(read(&m.join("mount-id")), c.mount_id);
            assert_eq!(read(&m.join("init-id")), format!("{}-init", c.mount_id));
            let im = report.image_list.iter().find(|i| i.id == c.image).unwrap();
            assert_eq!(
                read(&m.join("parent")),
                im.chain.last().unwrap().to_string()
            );
            assert_eq!(
                directory_size(&home.join(&c.mount_id).join("diff")),
                c.size_rw
            );
            let init = home.join(format!("{}-init", c.mount_id));
            assert!(init.join("committed").is_file());
            assert_eq!(
                directory_size(&init.join("diff")),
                12,
                "etc/mtab → /proc/mounts"
            );
            let init_link = read(&init.join("link"));
            assert!(
                read(&home.join(&c.mount_id).join("lower")).starts_with(&format!("l/{init_link}:"))
            );
            if c.started {
                let log = read(&cdir.join(format!("{}-json.log", c.id.0)));
                for line in log.lines() {
                    serde_json::from_str::<serde_json::Value>(line).unwrap();
                }
                assert_eq!(
                    v["LogPath"],
                    cdir.join(format!("{}-json.log", c.id.0)).to_str().unwrap()
                );
            }
        }
        assert!(
            report
                .image_list
                .iter()
                .any(|i| i.kind == SynthImageKind::Dangling && i.containers > 0)
        );
        assert!(!root.join("engine-id").exists());
        assert!(report.bytes_written > 0);
    }

    #[test]
    fn deterministic_for_a_seed() {
        let mut spec = SynthSpec::demo();
        spec.engine_id = true;
        let (_a, ra, a) = make_root(&spec);
        let (_b, rb, b) = make_root(&spec);
        let ids = |r: &SynthReport| r.image_list.iter().map(|i| i.id).collect::<Vec<_>>();
        assert_eq!(ids(&a), ids(&b));
        let rj = "image/overlay2/repositories.json";
        assert_eq!(
            fs::read(ra.join(rj)).unwrap(),
            fs::read(rb.join(rj)).unwrap()
        );
        assert_eq!(read(&ra.join("engine-id")), read(&rb.join("engine-id")));
        assert_eq!(read(&ra.join("engine-id")).len(), 36);
        let layers = |r: &SynthReport| {
            r.layer_list
                .iter()
                .map(|l| (l.chain_id, l.cache_id.clone(), l.size))
                .collect::<Vec<_>>()
        };
        assert_eq!(layers(&a), layers(&b));
        let cids = |r: &SynthReport| {
            r.container_list
                .iter()
                .map(|c| c.id.clone())
                .collect::<Vec<_>>()
        };
        assert_eq!(cids(&a), cids(&b));
        // Same bytes (container configs hold the root path; both temp roots are equally long).
        assert_eq!(a.bytes_written, b.bytes_written);

        spec.seed = 2;
        let (_c, _rc, c) = make_root(&spec);
        assert_ne!(ids(&a), ids(&c));
    }

    #[test]
    fn refuses_an_existing_store() {
        let (_tmp, root, _) = make_root(&SynthSpec::demo());
        let err = generate(&root, &SynthSpec::demo()).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::AlreadyExists);
    }

    #[test]
    fn modern_tar_split_has_no_trailing_empty_segment() {
        let mut spec = SynthSpec::demo();
        spec.legacy_tar_split = false;
        spec.containers = 0;
        let (_tmp, root, report) = make_root(&spec);
        let l = &report.layer_list[0];
        let dir = root
            .join("image/overlay2/layerdb/sha256")
            .join(l.chain_id.hex());
        let diff = root.join("overlay2").join(&l.cache_id).join("diff");
        let (stream, lines) = reassemble(&dir.join("tar-split.json.gz"), &diff);
        assert_eq!(Digest::of_bytes(&stream), l.diff_id.0);
        assert_eq!(lines.last().unwrap()["type"], 2);
        assert_ne!(lines.last().unwrap()["payload"], "");
    }

    #[test]
    fn scale_plan_hits_its_targets() {
        let spec = SynthSpec::scale(10_000, 30_000);
        let plan = Plan::new(&spec);
        let image_layers = plan
            .layers
            .iter()
            .filter(|l| l.kind == LayerKind::Image)
            .count();
        assert!(
            (29_000..=31_000).contains(&image_layers),
            "{image_layers} layers"
        );
        assert_eq!(plan.images.len(), 10_000);
        assert!(
            plan.layers
                .iter()
                .all(|l| l.depth as usize <= spec.max_depth)
        );
        let count = |k| plan.images.iter().filter(|i| i.kind == k).count();
        assert_eq!(count(SynthImageKind::Dangling), spec.dangling);
        assert!(count(SynthImageKind::Intermediate) > 100);
        assert!(count(SynthImageKind::DigestOnly) > 10);
        assert_eq!(plan.containers.len(), spec.containers);
        // Sharing: far fewer layers than the sum of image chain lengths.
        let total: usize = (0..plan.images.len())
            .map(|i| plan.image_layers(i).len())
            .sum();
        assert!(
            total > 3 * image_layers,
            "chains {total} vs layers {image_layers}"
        );
    }

    /// `cargo test --release -- --ignored synth_scale_timing --nocapture`
    #[test]
    #[ignore]
    fn synth_scale_timing() {
        let spec = SynthSpec::scale(10_000, 30_000);
        let t = std::time::Instant::now();
        let (_tmp, _root, r) = make_root(&spec);
        eprintln!(
            "10,000 images / {} layers / {} containers: {:.2}s, {} bytes",
            r.layers,
            r.containers,
            t.elapsed().as_secs_f64(),
            r.bytes_written
        );
    }
}
