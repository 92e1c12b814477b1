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
//! machine; each module names the upstream code that writes its part (moby
//! `daemon/internal/image/fs.go`, `daemon/internal/layer/filestore.go`,
//! `daemon/graphdriver/overlay2/overlay.go`, `daemon/internal/refstore/store.go`,
//! `daemon/container/container.go`; vbatts/tar-split; Go's `archive/tar`).
//! Every path comes from [`crate::store::graphdriver::Paths`] and
//! [`crate::store::paths::DockerRoot`]. Everything is a pure function of the
//! [`SynthSpec`] (including `seed`): two runs give the same IDs and bytes,
//! except the absolute root path inside container configs.
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
//!
//! Stages, each in its module: `plan` decides everything up front from
//! one random stream (`rng`); `layers` (through `extract` and
//! `tarsplit`), `images` and `containers` write in parallel through
//! `fs`; `report` says what was written.
//!
//! With the `synth-bbolt` feature (on in tests, examples and benches, off
//! in a normal build: they write bbolt files, which needs bbolt's writer)
//! two more stages add what today's hosts also have: `buildkit`, the build
//! cache BuildKit leaves after builds ([`SynthSpec::build_records`]), and
//! `volumes`, local volumes some containers mount ([`SynthSpec::volumes`]).

#[cfg(feature = "synth-bbolt")]
mod buildkit;
mod containers;
mod extract;
mod fs;
mod gofmt;
mod images;
mod layers;
mod plan;
mod report;
mod rng;
mod tarsplit;
#[cfg(test)]
mod testutil;
#[cfg(feature = "synth-bbolt")]
mod volumes;

use crate::ids::{ChainId, ContainerId, DiffId, ImageId};
use crate::store::graphdriver::Paths;
use rng::{Rng, STREAM_ENGINE};
use std::io;
use std::path::Path;

/// The graphdriver whose layout is written.
const DRIVER: &str = "overlay2";

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
    /// BuildKit build-cache records `docker system df` lists (twins, which
    /// it hides, come on top): the records of BuildKit builds of some
    /// images, of their build contexts, cache mounts, builder stages, older
    /// builds and pulled frontends, in `buildkit/*.db` with their driver
    /// dirs and layers. Needs the `synth-bbolt` feature when non-zero.
    pub build_records: usize,
    /// Local volumes, named and anonymous, some mounted by containers, in
    /// `volumes/` and `volumes/metadata.db`. Needs the `synth-bbolt`
    /// feature when non-zero.
    pub volumes: usize,
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
            build_records: 0,
            volumes: 0,
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
            build_records: 0,
            volumes: 0,
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
    /// Layers in layerdb that no image has: those BuildKit pulled for
    /// frontends and those of builds whose image is gone.
    pub held_layers: Vec<SynthLayer>,
    /// The build-cache records `/system/df` lists, by ID.
    pub build_cache: Vec<SynthRecord>,
    /// Records hidden from df: immutable twins of mutable records.
    pub twins: usize,
    pub volume_list: Vec<SynthVolume>,
}

/// A build-cache record, with what `/system/df` should say of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SynthRecord {
    pub id: String,
    pub parent: Option<String>,
    /// `Type`: regular, source.local, exec.cachemount, frontend, internal.
    pub kind: String,
    pub mutable: bool,
    /// A layer of some image (or an ancestor of one).
    pub shared: bool,
    pub size: u64,
}

/// A local volume.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SynthVolume {
    pub name: String,
    pub anonymous: bool,
    /// Created with mount options (tmpfs): `/system/df` leaves it out.
    pub options: bool,
    /// Containers that mount it.
    pub links: usize,
    /// `directory.Size` of `_data`.
    pub size: u64,
}

/// Writes a complete data root at `root` (created if missing; it must not
/// already hold an `image/`, `overlay2/` or `containers/` directory).
pub fn generate(root: &Path, spec: &SynthSpec) -> io::Result<SynthReport> {
    refuse_existing(root)?;
    #[allow(unused_mut)]
    let mut plan = plan::Plan::new(spec);
    #[cfg(feature = "synth-bbolt")]
    let (bk, vols) = (
        buildkit::plan(spec, &mut plan),
        volumes::plan(spec, &mut plan),
    );
    #[cfg(not(feature = "synth-bbolt"))]
    if spec.build_records > 0 || spec.volumes > 0 {
        return Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "build records and volumes need dockgc built with the synth-bbolt feature",
        ));
    }
    let ctx = fs::Ctx::new(root)?;
    let layers = layers::write_layers(&ctx, &plan)?;
    let images = images::write_images(&ctx, &plan, &layers)?;
    let references = images::write_references(&ctx, &images)?;
    let containers = containers::write_containers(&ctx, &plan, &layers, &images)?;
    if spec.engine_id {
        let mut rng = Rng::new(spec.seed, STREAM_ENGINE, 0);
        let engine_id = ctx.paths.docker().engine_id();
        ctx.file(&engine_id, rng.uuid4().as_bytes(), 0o600)?;
    }
    #[cfg(feature = "synth-bbolt")]
    let (build_cache, twins) = buildkit::write(&ctx, &plan, &bk, &layers)?;
    #[cfg(feature = "synth-bbolt")]
    let volume_list = volumes::write(&ctx, &plan, &vols)?;
    #[allow(unused_mut)]
    let mut r = report::report(&ctx, &plan, layers, images, references, containers);
    #[cfg(feature = "synth-bbolt")]
    {
        r.build_cache = build_cache;
        r.twins = twins;
        r.volume_list = volume_list;
    }
    Ok(r)
}

fn refuse_existing(root: &Path) -> io::Result<()> {
    let paths = Paths::new(root, DRIVER);
    let docker = paths.docker();
    for existing in [docker.image_root(), paths.home(), docker.containers()] {
        if existing.exists() {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!(
                    "{} already has {}/",
                    root.display(),
                    paths.rel(&existing).display()
                ),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::testutil::{make_root, read};
    use super::*;
    use std::fs;

    #[test]
    fn demo_writes_no_engine_id() {
        let (_tmp, root, report) = make_root(&SynthSpec::demo());
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
