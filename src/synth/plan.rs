//! The plan: every structural decision, made sequentially and cheaply up
//! front from one random stream, so that the writing stages can run in
//! parallel and still give the same bytes.

use super::rng::{Rng, STREAM_LAYER, STREAM_PLAN};
use super::{SynthImageKind, SynthSpec};
use crate::store::graphdriver::Paths;
use std::collections::BTreeMap;

/// 2021-01-01T00:00:00Z: the generated history starts here and spans three years.
pub(super) const T0: i64 = 1_609_459_200;
pub(super) const SPAN: i64 = 3 * 365 * 86_400;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum LayerKind {
    Image,
    Removing,
    WriteSet,
    Orphan,
    /// In layerdb, but in no image: held by BuildKit (a pulled frontend's
    /// layer, the export of a build whose image is gone).
    #[cfg_attr(not(feature = "synth-bbolt"), allow(dead_code))]
    Held,
}

#[derive(Debug, Clone)]
pub(super) struct LayerPlan {
    pub(super) parent: Option<u32>,
    pub(super) depth: u32,
    /// Header mtime and history time (Unix seconds).
    pub(super) created: i64,
    pub(super) kind: LayerKind,
    /// Some driver directory has this one as its parent (`committed` exists).
    pub(super) committed: bool,
    /// Global layer index; names its directory in the tar (`srv/<n>/`, `var/<n>/`).
    pub(super) number: u32,
}

#[derive(Debug, Clone)]
pub(super) struct ImagePlan {
    /// The image whose layers this one extends (its `FROM`).
    pub(super) base: Option<u32>,
    /// Record `base` as `parent` metadata (built locally).
    pub(super) meta_parent: bool,
    /// Top layer (every image has at least one: base images add one or more).
    pub(super) top: Option<u32>,
    /// Layers this image added on top of `base`.
    pub(super) own: u32,
    pub(super) created: (i64, u32),
    pub(super) kind: SynthImageKind,
    /// The root image of its family (names the repository).
    pub(super) family: u32,
    pub(super) own_labels: bool,
    pub(super) tags: u32,
    pub(super) digest: bool,
    /// Newest tagged image of its family: also tagged `latest`.
    pub(super) latest: bool,
    /// Dangling images once were tagged: half of them keep `lastUpdated`.
    pub(super) keeps_last_updated: bool,
}

#[derive(Debug, Clone)]
pub(super) struct ContainerPlan {
    pub(super) image: u32,
    pub(super) started: bool,
    pub(super) exit_code: i32,
    pub(super) created: (i64, u32),
    /// Volumes it mounts, by destination.
    pub(super) mounts: Vec<MountPlan>,
}

/// A volume mount of a container (`MountPoints` of `config.v2.json`).
#[derive(Debug, Clone)]
pub(super) struct MountPlan {
    pub(super) destination: String,
    pub(super) volume: String,
    /// `-v /dest` (an anonymous volume) rather than `-v name:/dest`.
    pub(super) anonymous: bool,
}

pub(super) struct Plan {
    pub(super) seed: u64,
    pub(super) legacy_tar_split: bool,
    pub(super) files_per_layer: usize,
    pub(super) file_bytes: usize,
    pub(super) layers: Vec<LayerPlan>,
    pub(super) cache_ids: Vec<String>,
    pub(super) links: Vec<String>,
    /// Layer indices by depth (index 0 = base layers).
    pub(super) levels: Vec<Vec<u32>>,
    pub(super) images: Vec<ImagePlan>,
    pub(super) containers: Vec<ContainerPlan>,
}

/// The numbers every stage of [`Plan::new`] works to.
struct Shape {
    images: usize,
    max_depth: u32,
    bases: usize,
    /// Image layers to aim for.
    target: usize,
    /// Seconds between consecutive images.
    step: i64,
}

impl Shape {
    fn of(spec: &SynthSpec) -> Shape {
        let n = spec.images;
        let bases = if n == 0 {
            0
        } else if spec.bases == 0 {
            (n / 20).max(1)
        } else {
            spec.bases.min(n)
        };
        Shape {
            images: n,
            max_depth: spec.max_depth.clamp(1, 125) as u32,
            bases,
            target: spec.layers.max(bases),
            step: (SPAN / n.max(1) as i64).max(1),
        }
    }
}

impl Plan {
    /// The stages draw from one stream in this order; changing the order
    /// changes every generated ID.
    pub(super) fn new(spec: &SynthSpec) -> Plan {
        let mut rng = Rng::new(spec.seed, STREAM_PLAN, 0);
        let shape = Shape::of(spec);
        let mut forest = Forest::with_capacity(&shape);
        for i in 0..shape.images {
            forest.grow(spec, &shape, &mut rng, i);
        }
        let Forest {
            mut layers,
            mut images,
            ..
        } = forest;
        ensure_a_built_child(spec, &shape, &mut images);
        let has_meta_children = meta_children(&images);
        mark_intermediates(spec, &mut rng, &mut images, &has_meta_children);
        mark_dangling(spec, &mut rng, &mut images, &has_meta_children);
        mark_digests(spec, &mut rng, &mut images);
        mark_latest(&mut images);
        let containers = plan_containers(spec, &mut rng, &images);
        add_leftovers(spec, &shape, &mut rng, &mut layers);
        mark_committed(&mut layers, &images, &containers);
        let (cache_ids, links) = name_layers(spec.seed, &layers);
        Plan {
            seed: spec.seed,
            legacy_tar_split: spec.legacy_tar_split,
            files_per_layer: spec.files_per_layer,
            file_bytes: spec.file_bytes,
            levels: levels(&layers),
            layers,
            cache_ids,
            links,
            images,
            containers,
        }
    }

    /// `lower` of a directory whose parent is layer `parent`: `l/<parent link>`
    /// followed by the parent's own `lower` entries.
    pub(super) fn lower_from(&self, parent: u32) -> String {
        let mut s = String::new();
        let mut cur = Some(parent);
        while let Some(p) = cur {
            if !s.is_empty() {
                s.push(':');
            }
            s.push_str(&Paths::lower_entry(&self.links[p as usize]));
            cur = self.layers[p as usize].parent;
        }
        s
    }

    /// Layer indices of an image, base first.
    pub(super) fn image_layers(&self, image: usize) -> Vec<u32> {
        let mut out = Vec::new();
        let mut cur = self.images[image].top;
        while let Some(l) = cur {
            out.push(l);
            cur = self.layers[l as usize].parent;
        }
        out.reverse();
        out
    }

    /// Adds a layer after planning (the BuildKit stage's): named from its
    /// own stream, marking its parent committed. Call [`Plan::relevel`]
    /// when done.
    #[cfg_attr(not(feature = "synth-bbolt"), allow(dead_code))]
    pub(super) fn push_layer(&mut self, parent: Option<u32>, kind: LayerKind, created: i64) -> u32 {
        let idx = self.layers.len() as u32;
        let depth = parent.map_or(1, |p| self.layers[p as usize].depth + 1);
        if let Some(p) = parent {
            self.layers[p as usize].committed = true;
        }
        self.layers.push(LayerPlan {
            parent,
            depth,
            created,
            kind,
            committed: false,
            number: idx,
        });
        let mut r = Rng::new(self.seed, STREAM_LAYER, u64::from(idx));
        self.cache_ids.push(r.hex64());
        self.links.push(r.link_id());
        idx
    }

    #[cfg_attr(not(feature = "synth-bbolt"), allow(dead_code))]
    pub(super) fn relevel(&mut self) {
        self.levels = levels(&self.layers);
    }

    /// Image indices from the family root down to `image`.
    pub(super) fn image_ancestry(&self, image: usize) -> Vec<usize> {
        let mut out = vec![image];
        let mut cur = self.images[image].base;
        while let Some(b) = cur {
            out.push(b as usize);
            cur = self.images[b as usize].base;
        }
        out.reverse();
        out
    }

    /// `config.Labels`: those of every ancestor that set its own.
    pub(super) fn labels(&self, image: usize) -> BTreeMap<String, String> {
        let mut labels = BTreeMap::new();
        for i in self.image_ancestry(image) {
            if self.images[i].own_labels {
                labels.insert("synth.team".to_string(), team(i));
                labels.insert("synth.tier".to_string(), tier(i).to_string());
            }
        }
        labels
    }

    pub(super) fn repo(&self, image: usize) -> String {
        format!("synth/app-{}", self.images[image].family)
    }
}

/// The `synth.team` label image `i` sets.
pub(super) fn team(i: usize) -> String {
    format!("team-{}", i % 7)
}

/// The `synth.tier` label image `i` sets.
pub(super) fn tier(i: usize) -> &'static str {
    ["web", "db", "batch"][i % 3]
}

/// The images in creation order and the layers they add.
struct Forest {
    layers: Vec<LayerPlan>,
    images: Vec<ImagePlan>,
    /// Chain length of each image.
    depth: Vec<u32>,
}

impl Forest {
    fn with_capacity(shape: &Shape) -> Forest {
        Forest {
            layers: Vec::with_capacity(shape.target + 16),
            images: Vec::with_capacity(shape.images),
            depth: Vec::with_capacity(shape.images),
        }
    }

    /// Image `i`: its time, a base among the earlier images (none for the
    /// first `bases`), and its own layers on top of the base's.
    fn grow(&mut self, spec: &SynthSpec, shape: &Shape, rng: &mut Rng, i: usize) {
        let created = (
            T0 + i as i64 * shape.step + rng.below(shape.step as u64) as i64,
            rng.below(1_000_000_000) as u32,
        );
        let k = self.own_layer_count(shape, rng, i);
        let (base, k) = self.pick_base(shape, rng, i, k);
        let mut top = base.and_then(|b| self.images[b as usize].top);
        let mut depth = base.map_or(0, |b| self.depth[b as usize]);
        for j in 0..k {
            depth += 1;
            self.layers.push(LayerPlan {
                parent: top,
                depth,
                created: created.0 - i64::from(k - j),
                kind: LayerKind::Image,
                committed: false,
                number: self.layers.len() as u32,
            });
            top = Some(self.layers.len() as u32 - 1);
        }
        let family = base.map_or(i as u32, |b| self.images[b as usize].family);
        let meta_parent = base.is_some() && rng.percent(spec.built_percent);
        self.images.push(ImagePlan {
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
        self.depth.push(depth);
    }

    /// The layers still to place per image still to come, jittered by ±1,
    /// so that the total comes out near the target.
    fn own_layer_count(&self, shape: &Shape, rng: &mut Rng, i: usize) -> i64 {
        let remaining_images = (shape.images - i) as f64;
        let remaining_layers = shape.target.saturating_sub(self.layers.len()) as f64;
        let avg = remaining_layers / remaining_images;
        let jitter = match rng.below(4) {
            0 => -1,
            3 => 1,
            _ => 0,
        };
        avg.floor() as i64 + i64::from(rng.unit() < avg.fract()) + jitter
    }

    /// A random earlier image to build on (base images have none and add at
    /// least one layer), and the own layer count, both kept under the depth
    /// cap: after 8 tries the base falls back to a base image.
    fn pick_base(&self, shape: &Shape, rng: &mut Rng, i: usize, k: i64) -> (Option<u32>, u32) {
        let max_depth = shape.max_depth;
        let (base, min_k) = if i < shape.bases {
            (None, 1)
        } else {
            (Some(rng.index(i) as u32), 0)
        };
        let mut k = k.max(min_k) as u32;
        let mut base = base;
        if let Some(mut b) = base {
            let mut tries = 0;
            while self.depth[b as usize] + k > max_depth && tries < 8 {
                b = rng.index(i) as u32;
                tries += 1;
            }
            if self.depth[b as usize] + k > max_depth {
                b = rng.index(shape.bases) as u32;
                k = k.min(max_depth - self.depth[b as usize]);
            }
            base = Some(b);
        }
        (base, k.min(max_depth))
    }
}

/// At least one locally built child when asked for any.
fn ensure_a_built_child(spec: &SynthSpec, shape: &Shape, images: &mut [ImagePlan]) {
    if spec.built_percent > 0
        && shape.images > shape.bases
        && !images.iter().any(|im| im.meta_parent)
    {
        images[shape.bases].meta_parent = true;
    }
}

/// Which images some child names in its `parent` metadata.
fn meta_children(images: &[ImagePlan]) -> Vec<bool> {
    let mut has = vec![false; images.len()];
    for im in images {
        if let (true, Some(b)) = (im.meta_parent, im.base) {
            has[b as usize] = true;
        }
    }
    has
}

/// Untagged parents of locally built children (at least one when asked for any).
fn mark_intermediates(
    spec: &SynthSpec,
    rng: &mut Rng,
    images: &mut [ImagePlan],
    has_meta_children: &[bool],
) {
    let mut any = false;
    for (i, im) in images.iter_mut().enumerate() {
        if has_meta_children[i] && rng.percent(spec.intermediate_percent) {
            im.kind = SynthImageKind::Intermediate;
            any = true;
        }
    }
    if spec.intermediate_percent > 0
        && !any
        && let Some(i) = has_meta_children.iter().position(|&h| h)
    {
        images[i].kind = SynthImageKind::Intermediate;
    }
}

/// `spec.dangling` random images that no child names.
fn mark_dangling(
    spec: &SynthSpec,
    rng: &mut Rng,
    images: &mut [ImagePlan],
    has_meta_children: &[bool],
) {
    let mut leaves: Vec<u32> = (0..images.len() as u32)
        .filter(|&i| !has_meta_children[i as usize])
        .collect();
    rng.shuffle(&mut leaves);
    for &i in leaves.iter().take(spec.dangling) {
        images[i as usize].kind = SynthImageKind::Dangling;
    }
}

/// Digest-only images, and digest references beside tags (at least one
/// when asked for any).
fn mark_digests(spec: &SynthSpec, rng: &mut Rng, images: &mut [ImagePlan]) {
    let mut any = false;
    for im in images.iter_mut() {
        if im.kind == SynthImageKind::Tagged {
            if rng.percent(spec.digest_only_percent) {
                im.kind = SynthImageKind::DigestOnly;
                im.digest = true;
            } else if rng.percent(spec.digest_percent) {
                im.digest = true;
                any = true;
            }
        }
    }
    if spec.digest_percent > 0
        && !any
        && let Some(im) = images
            .iter_mut()
            .rev()
            .find(|im| im.kind == SynthImageKind::Tagged)
    {
        im.digest = true;
    }
}

fn mark_latest(images: &mut [ImagePlan]) {
    let mut newest: BTreeMap<u32, usize> = BTreeMap::new();
    for (i, im) in images.iter().enumerate() {
        if im.kind == SynthImageKind::Tagged {
            newest.insert(im.family, i);
        }
    }
    for &i in newest.values() {
        images[i].latest = true;
    }
}

/// Containers: mostly on tagged images, every fourth on a dangling one;
/// three in four have run.
fn plan_containers(spec: &SynthSpec, rng: &mut Rng, images: &[ImagePlan]) -> Vec<ContainerPlan> {
    let n = images.len();
    let of_kind = |pred: fn(SynthImageKind) -> bool| -> Vec<u32> {
        (0..n as u32)
            .filter(|&i| pred(images[i as usize].kind))
            .collect()
    };
    let tagged = of_kind(|k| matches!(k, SynthImageKind::Tagged | SynthImageKind::DigestOnly));
    let dangling = of_kind(|k| k == SynthImageKind::Dangling);
    let mut containers = Vec::new();
    if n == 0 {
        return containers;
    }
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
            mounts: Vec::new(),
        });
    }
    containers
}

/// Crash leftovers: real layers too, every other one on top of an image layer.
fn add_leftovers(spec: &SynthSpec, shape: &Shape, rng: &mut Rng, layers: &mut Vec<LayerPlan>) {
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
            let parent = parent.filter(|&p| layers[p as usize].depth < shape.max_depth);
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
}

/// A layer with a child directory (a layer or a container's init layer) is committed.
fn mark_committed(layers: &mut [LayerPlan], images: &[ImagePlan], containers: &[ContainerPlan]) {
    for i in 0..layers.len() {
        if let Some(p) = layers[i].parent {
            layers[p as usize].committed = true;
        }
    }
    for c in containers {
        if let Some(t) = images[c.image as usize].top {
            layers[t as usize].committed = true;
        }
    }
}

/// Each layer's cache ID and link ID, from a stream of its own.
fn name_layers(seed: u64, layers: &[LayerPlan]) -> (Vec<String>, Vec<String>) {
    (0..layers.len())
        .map(|i| {
            let mut r = Rng::new(seed, STREAM_LAYER, i as u64);
            let cache_id = r.hex64();
            (cache_id, r.link_id())
        })
        .unzip()
}

/// Layer indices by depth: each level can be written in parallel once the
/// one below is done.
fn levels(layers: &[LayerPlan]) -> Vec<Vec<u32>> {
    let mut levels: Vec<Vec<u32>> = Vec::new();
    for (i, l) in layers.iter().enumerate() {
        let d = l.depth as usize - 1;
        if levels.len() <= d {
            levels.resize(d + 1, Vec::new());
        }
        levels[d].push(i as u32);
    }
    levels
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
