//! BuildKit's build cache as the daemon's embedded BuildKit leaves it after
//! builds (Engine 20.10, BuildKit 0.8, graphdriver mode; checked against the
//! files of a real root, `buildkit/*.db` and the driver dirs):
//!
//! * `metadata_v2.db` (BuildKit `cache/metadata/metadata.go`): `_main`, one
//!   bucket per record with `{"value":…}` JSON keys; `_index` (`chainid:`,
//!   `blobchainid:`, `cache-dir:`, `local.sharedKey:`); `_external` (the
//!   content-hash cache of local sources, written empty: a later build only
//!   rehashes its context).
//! * `snapshots.db` (moby's snapshot adapter,
//!   `builder-next/adapters/snapshot/snapshot.go`): `<record>` with
//!   `chainid` and `committed` for a record exported as a layer (its driver
//!   dir is that layer's cache-id), `<dir>` with `iscommitted` and `parent`
//!   for the dir a step ran in, `<record>` with `parent` (and `size`) for a
//!   mutable record, `<record>` with `chainid` and an empty `sha256:<chain>`
//!   bucket for a blob-only record of a local or pulled image's layer.
//! * `containerdmeta.db`: a lease per record (twins have none), as BuildKit
//!   keeps them in containerd's metadata schema.
//!
//! The records are those of BuildKit builds of some of the generated images
//! (`docker build` of an image whose base is another generated image):
//! blob-only "from local" records for every prefix of the base's layers, one
//! regular record per layer the build added (exported: `shared`), the build
//! context as three `source.local` mutable records and their immutable
//! twins, cache mounts (`exec.cachemount`, their own dirs; a cached size
//! that went stale), builder stages (committed, never exported; a last step
//! left mutable), the export of an older build whose image is gone (a
//! layerdb layer no image has), a failed build's step, and pulled frontend
//! and internal images (blob-only chains on layers of their own). Some
//! records have their size cached (a `docker system df` ran after them),
//! the others leave it to be computed, as on a real host.
//!
//! Not written: `cache.db` (the solver's cache keys, which `/system/df`
//! never reads: a daemon starts with an empty one, and the records are
//! then no cache hits for later builds) and `history.db` (Engine 24+).

use super::fs::Ctx;
use super::gofmt::{go_str, rfc3339nano};
use super::layers::LayerDone;
use super::plan::{LayerKind, Plan};
use super::rng::{Rng, STREAM_BUILDKIT};
use super::{SynthRecord, SynthSpec};
use crate::ids::{ChainId, Digest};
use bbolt::build::{Options, Tree, image};
use std::collections::{BTreeSet, HashMap, HashSet};
use std::io;
use std::path::Path;

/// Where a record's data is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Snap {
    /// Blob-only: an image layer (`cache.snapshot` = `sha256:<chain>`).
    Blob(u32),
    /// Committed and exported as this layer; the layer's dir is the step's.
    Layer(u32),
    /// Committed, not a layer: the dir it ran in.
    Dir(usize),
    /// Mutable: its own dir, named by the record ID.
    Mutable(usize),
    /// The immutable twin of that mutable record: no snapshot of its own.
    Twin(usize),
}

#[derive(Debug, Clone)]
struct Rec {
    id: String,
    parent: Option<usize>,
    kind: Option<&'static str>,
    description: String,
    /// Unix nanoseconds.
    created: i64,
    last_used: i64,
    usage: u32,
    snap: Snap,
    /// A df ran after it: its size is cached.
    sized: bool,
    /// `cache.cachePolicy` 1 (retain), which builds set and df's twins lack.
    policy: bool,
    /// Extra metadata keys (`cache-dir:…`, `local.sharedKey:…`), all indexed.
    keys: Vec<String>,
    /// Has a content-hash cache in `_external` (local sources).
    contenthash: bool,
    twin: Option<usize>,
}

/// Files of a dir's `diff/`: path and contents.
type Files = Vec<(String, Vec<u8>)>;

/// A driver dir only BuildKit has (no layerdb entry).
#[derive(Debug, Clone)]
struct DirPlan {
    name: String,
    link: String,
    /// `lower` (none for a dir without parent: a mutable record's own).
    lower: Option<String>,
    files: Files,
    /// Another dir sits on it.
    committed: bool,
    /// The size a df cached, when the files changed since (a cache mount).
    stale: Option<u64>,
}

impl DirPlan {
    /// `directory.Size` of the dir's `diff/` (regular files only here).
    fn size(&self) -> u64 {
        self.files.iter().map(|(_, b)| b.len() as u64).sum()
    }

    /// What `Usage` reports: the cached size if any, else the files'.
    fn reported(&self) -> u64 {
        self.stale.unwrap_or_else(|| self.size())
    }
}

/// Everything the BuildKit stage writes, decided before any file is written.
pub(super) struct BkPlan {
    recs: Vec<Rec>,
    dirs: Vec<DirPlan>,
    /// Image and held layers whose dirs a build step mounted (`work/work`).
    mounted: Vec<u32>,
    txid: u64,
}

/// Cost of the cheapest build: a base record, one step, a new context.
const MIN_BUILD: usize = 5;

pub(super) fn plan(spec: &SynthSpec, plan: &mut Plan) -> BkPlan {
    let mut p = Planner {
        rng: Rng::new(spec.seed, STREAM_BUILDKIT, 0),
        plan,
        recs: Vec::new(),
        dirs: Vec::new(),
        ids: HashSet::new(),
        blob_of: HashMap::new(),
        contexts: Vec::new(),
        mounts: Vec::new(),
        mounted: Vec::new(),
        listed: 0,
        budget: spec.build_records,
        clock: 0,
    };
    if p.budget == 0 {
        return p.finish();
    }
    if p.budget >= 30 {
        p.pull("docker.io/docker/dockerfile:1.4", 2, "frontend");
        p.pull("docker.io/docker/dockerfile-copy:v0.1.9", 1, "internal");
    }
    for i in p.candidates() {
        if p.budget - p.listed < MIN_BUILD {
            break;
        }
        p.build(i);
    }
    while p.listed < p.budget {
        p.filler();
    }
    p.finish()
}

struct Planner<'p> {
    rng: Rng,
    plan: &'p mut Plan,
    recs: Vec<Rec>,
    dirs: Vec<DirPlan>,
    ids: HashSet<String>,
    /// The blob-only record of each image layer prefix (by its top layer).
    blob_of: HashMap<u32, usize>,
    /// The three local-source records of each build context.
    contexts: Vec<[usize; 3]>,
    mounts: Vec<usize>,
    mounted: Vec<u32>,
    /// Records `/system/df` lists (all but twins).
    listed: usize,
    budget: usize,
    /// Unix nanoseconds of the step being planned.
    clock: i64,
}

impl Planner<'_> {
    fn left(&self) -> usize {
        self.budget - self.listed
    }

    fn new_id(&mut self) -> String {
        loop {
            let id = self.rng.buildkit_id();
            if self.ids.insert(id.clone()) {
                return id;
            }
        }
    }

    /// The clock moves on by a step's duration.
    fn tick(&mut self) -> i64 {
        self.clock += 40_000_000 + self.rng.below(400_000_000) as i64;
        self.clock
    }

    fn push(&mut self, mut r: Rec) -> usize {
        if !matches!(r.snap, Snap::Twin(_)) {
            self.listed += 1;
        }
        r.last_used = r.last_used.max(r.created);
        self.recs.push(r);
        self.recs.len() - 1
    }

    fn rec(&mut self, snap: Snap, parent: Option<usize>, description: String) -> Rec {
        let t = self.tick();
        Rec {
            id: String::new(),
            parent,
            kind: None,
            description,
            created: t,
            last_used: t + self.rng.below(50_000_000) as i64,
            usage: 1,
            snap,
            sized: self.rng.percent(70),
            policy: true,
            keys: Vec::new(),
            contenthash: false,
            twin: None,
        }
    }

    /// A record used again: one more use, now.
    fn reuse(&mut self, r: usize) {
        let t = self.tick();
        let rec = &mut self.recs[r];
        rec.usage += 1;
        rec.last_used = t;
        if let Some(tw) = rec.twin {
            self.recs[tw].created = t;
            self.recs[tw].last_used = t + 1_000_000;
        }
    }

    /// Images built with BuildKit: children of another image that added
    /// layers and carry no legacy `parent` metadata, shallow bases first
    /// (hosts pull bases of a few layers), in creation order.
    fn candidates(&mut self) -> Vec<usize> {
        let plan = &*self.plan;
        let mut c: Vec<(usize, usize)> = (0..plan.images.len())
            .filter(|&i| {
                let im = &plan.images[i];
                im.base.is_some() && im.own > 0 && !im.meta_parent
            })
            .map(|i| {
                let base = plan.images[i].base.unwrap() as usize;
                (plan.image_layers(base).len(), i)
            })
            .collect();
        self.rng.shuffle(&mut c);
        c.sort_by_key(|&(depth, _)| depth.min(12) / 4);
        let mut out: Vec<usize> = c.into_iter().map(|(_, i)| i).collect();
        // Take what the budget allows, then build them in time order.
        let take = (self.budget / 6).max(1).min(out.len());
        out.truncate(take);
        out.sort_by_key(|&i| plan.images[i].created);
        out
    }

    /// The blob-only records of a layer chain (one per prefix, each on the
    /// one below), as BuildKit's `GetByBlob` makes them for a local image
    /// (`from local`) or a pull; an existing one is used again.
    fn blobs(&mut self, chain: &[u32], description: &str) -> Option<usize> {
        let mut parent = None;
        for &l in chain {
            parent = Some(match self.blob_of.get(&l) {
                Some(&r) => {
                    self.reuse(r);
                    r
                }
                None => {
                    let mut r = self.rec(Snap::Blob(l), parent, description.to_string());
                    r.id = self.new_id();
                    let r = self.push(r);
                    self.blob_of.insert(l, r);
                    r
                }
            });
        }
        parent
    }

    /// A pulled image BuildKit keeps for itself (a frontend, or an image it
    /// runs internally): `layers` layerdb layers no image has, and their
    /// blob-only records, the top one typed.
    fn pull(&mut self, reference: &str, layers: usize, kind: &'static str) {
        self.clock = self.clock.max(super::plan::T0 * 1_000_000_000);
        let mut chain = Vec::new();
        let mut parent = None;
        for _ in 0..layers {
            let l = self
                .plan
                .push_layer(parent, LayerKind::Held, self.clock / 1_000_000_000);
            chain.push(l);
            parent = Some(l);
        }
        let digest = self.rng.hex64();
        let top = self
            .blobs(&chain, &format!("pulled from {reference}@sha256:{digest}"))
            .expect("a layer");
        self.recs[top].kind = Some(kind);
    }

    fn build(&mut self, image: usize) {
        let plan = &*self.plan;
        let base = plan.images[image].base.expect("a child") as usize;
        let base_layers = plan.image_layers(base);
        let all = plan.image_layers(image);
        let own: Vec<u32> = all[base_layers.len()..].to_vec();
        let created = plan.images[image].created;
        let new_blobs = base_layers
            .iter()
            .filter(|l| !self.blob_of.contains_key(l))
            .count();
        let new_context = self.contexts.is_empty() || self.rng.percent(60);
        let cost = new_blobs + own.len() + if new_context { 3 } else { 0 };
        if cost > self.left() {
            return;
        }
        self.clock = (created.0 - 120) * 1_000_000_000 + i64::from(created.1);
        let family = plan.images[image].family;

        // The context is sent first: Dockerfile, .dockerignore, files.
        if new_context {
            self.new_context(image, family);
        } else {
            let c = self.contexts[self.rng.index(self.contexts.len())];
            for r in c {
                self.reuse(r);
            }
        }
        let top = self.blobs(&base_layers, "from local ");
        let base_top = *base_layers.last().expect("a base layer");

        // A builder stage, its output copied with COPY --from.
        if self.left() >= own.len() + 3 && self.rng.percent(30) {
            self.builder_stage(top, base_top);
        }
        if self.left() > own.len() && self.rng.percent(35) {
            self.cache_mount();
        }

        let mut parent = top;
        let mut prev_layer = base_top;
        let mut exported = Vec::new();
        for &l in &own {
            let description = step_description(self.plan.layers[l as usize].number);
            let mut r = self.rec(Snap::Layer(l), parent, description);
            r.id = self.new_id();
            let r = self.push(r);
            exported.push((parent, prev_layer, r));
            self.rename(l);
            parent = Some(r);
            prev_layer = l;
        }
        // An older build of the same Dockerfile whose last step differed:
        // its export is still a layer, but no image's.
        if self.left() >= 1 && self.rng.percent(15) {
            let (under, under_layer, last) = *exported.last().expect("own layers");
            let t = self.plan.layers[own[own.len() - 1] as usize].created - 86_400;
            let h = self.plan.push_layer(Some(under_layer), LayerKind::Held, t);
            let description = self.recs[last].description.clone();
            let mut r = self.rec(Snap::Layer(h), under, description);
            r.id = self.new_id();
            r.created -= 86_400_000_000_000;
            r.last_used = r.created + 30_000_000;
            self.push(r);
            self.rename(h);
        }
    }

    /// The layer `l` was a BuildKit step's output: its dir is named as
    /// BuildKit names them, and was mounted.
    fn rename(&mut self, l: u32) {
        let name = self.new_id();
        self.plan.cache_ids[l as usize] = name;
        self.mounted.push(l);
    }

    /// A build context: the Dockerfile, the .dockerignore pass (nothing)
    /// and the files, each a mutable `source.local` record with its twin.
    fn new_context(&mut self, image: usize, family: u32) {
        let shared_key = self.rng.hex64();
        let dockerfile = format!(
            "FROM synth/app-{family}\nCOPY src /src\nRUN --mount=type=cache,target=/cache make -C /src build-{image}\n"
        );
        let mut src = Vec::new();
        for f in 0..1 + self.rng.index(3) {
            let mut body = vec![0u8; 16 + self.rng.index(3000)];
            self.rng.fill(&mut body);
            src.push((format!("src/f{f}.txt"), body));
        }
        let parts: [(&str, &str, Files); 3] = [
            (
                "dockerfile",
                "dockerfile:dockerfile",
                vec![("Dockerfile".into(), dockerfile.into_bytes())],
            ),
            ("context", "context:context-.dockerignore", Vec::new()),
            ("context", "context:context", src),
        ];
        let mut recs = [0; 3];
        for (k, (what, key, files)) in parts.into_iter().enumerate() {
            let id = self.new_id();
            let d = self.dir(id.clone(), None, files);
            let mut r = self.rec(Snap::Mutable(d), None, format!("local source for {what}"));
            r.id = id;
            r.kind = Some("source.local");
            r.keys.push(format!("local.sharedKey:{key}:{shared_key}"));
            r.contenthash = true;
            let sized = r.sized;
            let m = self.push(r);
            // The build used an immutable view of it.
            self.twin(m, sized, true);
            recs[k] = m;
        }
        self.contexts.push(recs);
    }

    /// The immutable twin (`cache.equalMutable`) of mutable record `m`.
    fn twin(&mut self, m: usize, sized: bool, policy: bool) {
        let mut t = self.rec(Snap::Twin(m), None, self.recs[m].description.clone());
        t.id = self.new_id();
        t.sized = sized;
        t.policy = policy;
        let t = self.push(t);
        self.recs[m].twin = Some(t);
    }

    /// A driver dir of BuildKit's own: on layer or dir `parent`, or none.
    fn dir(&mut self, name: String, parent: Option<Parent>, files: Files) -> usize {
        let link = self.rng.link_id();
        let lower = parent.map(|p| match p {
            Parent::Layer(l) => {
                self.plan.layers[l as usize].committed = true;
                self.plan.lower_from(l)
            }
            Parent::Dir(d) => {
                self.dirs[d].committed = true;
                let pd = &self.dirs[d];
                match &pd.lower {
                    Some(lower) => format!("l/{}:{lower}", pd.link),
                    None => format!("l/{}", pd.link),
                }
            }
        });
        self.dirs.push(DirPlan {
            name,
            link,
            lower,
            files,
            committed: false,
            stale: None,
        });
        self.dirs.len() - 1
    }

    fn payload(&mut self, name: &str, max: usize) -> Files {
        let mut body = vec![0u8; 1 + self.rng.index(max)];
        self.rng.fill(&mut body);
        vec![(name.to_string(), body)]
    }

    /// A `RUN --mount=type=cache`: the cache of an earlier build again, or
    /// a new one.
    fn cache_mount(&mut self) {
        if !self.mounts.is_empty() && self.rng.percent(50) {
            let m = self.mounts[self.rng.index(self.mounts.len())];
            self.reuse(m);
        } else {
            self.new_cache_mount();
        }
    }

    /// A cache mount's mutable record, with its own dir; with a cached size
    /// (and the twin df made to size it), sometimes stale.
    fn new_cache_mount(&mut self) {
        let n = self.mounts.len();
        let id = self.new_id();
        let files = self.payload("blob", 48 * 1024);
        let d = self.dir(id.clone(), None, files);
        let mut r = self.rec(
            Snap::Mutable(d),
            None,
            format!("cached mount /cache/{n} from exec /bin/sh -c make -j2 -C /src cache-{n}"),
        );
        r.id = id;
        r.kind = Some("exec.cachemount");
        r.keys.push(format!("cache-dir:/cache-{n}"));
        let sized = r.sized;
        let m = self.push(r);
        if sized {
            if self.rng.percent(30) {
                let now = self.dirs[d].size();
                self.dirs[d].stale = Some(now / 2);
            }
            self.twin(m, true, false);
        }
        self.mounts.push(m);
    }

    /// A builder stage's steps on the base: committed records in dirs of
    /// their own, never exported; the last one left mutable at times (an
    /// output only `COPY --from` read).
    fn builder_stage(&mut self, base: Option<usize>, base_layer: u32) {
        let steps = 1 + self.rng.index(3);
        let mut parent_rec = base;
        let mut parent_dir = Parent::Layer(base_layer);
        for s in 0..steps {
            let last = s + 1 == steps;
            let files = self.payload(&format!("out/stage-{s}.o"), 6000);
            if last && self.rng.percent(40) {
                let id = self.new_id();
                let d = self.dir(id.clone(), Some(parent_dir), files);
                let mut r = self.rec(
                    Snap::Mutable(d),
                    parent_rec,
                    format!("mount / from exec /bin/sh -c make -C /src stage-{s}"),
                );
                r.id = id;
                let sized = r.sized;
                let m = self.push(r);
                if sized {
                    self.twin(m, true, false);
                }
                return;
            }
            let name = self.new_id();
            let d = self.dir(name, Some(parent_dir), files);
            let mut r = self.rec(Snap::Dir(d), parent_rec, step_description(s as u32));
            r.id = self.new_id();
            parent_rec = Some(self.push(r));
            parent_dir = Parent::Dir(d);
        }
    }

    /// One more record: a failed build's first step on some base, or a
    /// cache mount of its own.
    fn filler(&mut self) {
        if !self.blob_of.is_empty() && self.rng.percent(50) {
            let mut bases: Vec<(u32, usize)> = self.blob_of.iter().map(|(&l, &r)| (l, r)).collect();
            bases.sort_unstable();
            let (l, r) = bases[self.rng.index(bases.len())];
            self.clock = self.recs[r].created + 3_600_000_000_000;
            let files = self.payload("x.txt", 300);
            let name = self.new_id();
            let d = self.dir(name, Some(Parent::Layer(l)), files);
            let mut rec = self.rec(Snap::Dir(d), Some(r), "fileop target".into());
            rec.id = self.new_id();
            self.push(rec);
        } else {
            self.clock += 3_600_000_000_000;
            self.new_cache_mount();
        }
    }

    fn finish(self) -> BkPlan {
        self.plan.relevel();
        BkPlan {
            txid: 20 + 3 * self.recs.len() as u64,
            recs: self.recs,
            dirs: self.dirs,
            mounted: self.mounted,
        }
    }
}

#[derive(Debug, Clone, Copy)]
enum Parent {
    Layer(u32),
    Dir(usize),
}

/// COPY steps are "fileop target"s, RUN steps mounts of an exec.
fn step_description(n: u32) -> String {
    if n.is_multiple_of(2) {
        "fileop target".to_string()
    } else {
        format!(
            "mount / from exec /bin/sh -c make -C /src step-{n} > /out/{n}.log && rm -rf /tmp/*"
        )
    }
}

/// Writes BuildKit's dirs and databases; returns the records `/system/df`
/// should list and the number of twins.
pub(super) fn write(
    ctx: &Ctx,
    plan: &Plan,
    bk: &BkPlan,
    layers: &[Option<LayerDone>],
) -> io::Result<(Vec<SynthRecord>, usize)> {
    if bk.recs.is_empty() {
        return Ok((Vec::new(), 0));
    }
    for d in &bk.dirs {
        write_dir(ctx, d)?;
    }
    for &l in &bk.mounted {
        ctx.dir(
            &ctx.paths.kernel_work_dir(&plan.cache_ids[l as usize]),
            0o000,
        )?;
    }
    let w = Writer { plan, bk, layers };
    let dir = ctx.paths.docker().buildkit();
    ctx.dir(&dir, 0o711)?;
    let opts = |txid| Options {
        txid,
        ..Options::default()
    };
    let db = |t: &Tree, txid| image(t, &opts(txid)).map_err(io::Error::other);
    ctx.file(
        &dir.join("metadata_v2.db"),
        &db(&w.metadata(), bk.txid)?,
        0o600,
    )?;
    ctx.file(
        &dir.join("snapshots.db"),
        &db(&w.snapshots(), bk.txid / 2)?,
        0o600,
    )?;
    ctx.file(
        &dir.join("containerdmeta.db"),
        &db(&w.leases(), bk.txid / 3 + 1)?,
        0o644,
    )?;
    ctx.dir(&dir.join("executor"), 0o711)?;
    ctx.file(
        &dir.join("executor/resolv.conf"),
        b"nameserver 192.0.2.53\noptions ndots:0\n",
        0o644,
    )?;
    ctx.file(&dir.join("executor/runc-log.json"), b"", 0o644)?;
    ctx.dir(&dir.join("content"), 0o755)?;
    ctx.dir(&dir.join("content/ingest"), 0o755)?;
    let twins = bk
        .recs
        .iter()
        .filter(|r| matches!(r.snap, Snap::Twin(_)))
        .count();
    Ok((w.expected(), twins))
}

/// overlay2's dir (a child's with `work/` and `lower`, mounted once so
/// `work/work` exists) and the files the step left in `diff/`.
fn write_dir(ctx: &Ctx, d: &DirPlan) -> io::Result<()> {
    let diff = ctx.driver_dir(&d.name, &d.link, d.lower.as_deref())?;
    if d.lower.is_some() {
        ctx.dir(&ctx.paths.kernel_work_dir(&d.name), 0o000)?;
    }
    if d.committed {
        ctx.commit(&d.name)?;
    }
    let mut made = BTreeSet::new();
    for (path, body) in &d.files {
        let mut sub = Path::new(path).parent();
        let mut missing = Vec::new();
        while let Some(s) = sub.filter(|s| !s.as_os_str().is_empty()) {
            if made.insert(s.to_path_buf()) {
                missing.push(s);
            }
            sub = s.parent();
        }
        for s in missing.into_iter().rev() {
            ctx.dir(&diff.join(s), 0o755)?;
        }
        ctx.file(&diff.join(path), body, 0o644)?;
    }
    Ok(())
}

struct Writer<'a> {
    plan: &'a Plan,
    bk: &'a BkPlan,
    layers: &'a [Option<LayerDone>],
}

fn int(v: i64) -> String {
    format!(r#"{{"value":{v}}}"#)
}

fn string(v: &str) -> String {
    let mut s = String::from(r#"{"value":"#);
    go_str(&mut s, v);
    s.push('}');
    s
}

fn indexed(v: &str) -> String {
    let mut s = String::from(r#"{"value":"#);
    go_str(&mut s, v);
    s.push_str(r#","index":"#);
    go_str(&mut s, v);
    s.push('}');
    s
}

/// `ChainID([a, b])` of the OCI image spec: `sha256(a + " " + b)`.
fn chain2(a: &str, b: &str) -> String {
    Digest::of_bytes(format!("{a} {b}").as_bytes()).to_string()
}

/// Go's `time.Time.MarshalBinary` (version 1, UTC): seconds since year 1,
/// nanoseconds, zone offset -1 (UTC).
fn go_time_binary(ns: i64) -> Vec<u8> {
    let secs = ns.div_euclid(1_000_000_000) + 62_135_596_800;
    let nanos = ns.rem_euclid(1_000_000_000) as u32;
    let mut b = vec![1u8];
    b.extend_from_slice(&secs.to_be_bytes());
    b.extend_from_slice(&nanos.to_be_bytes());
    b.extend_from_slice(&(-1i16).to_be_bytes());
    b
}

fn rfc3339(ns: i64) -> String {
    rfc3339nano(
        ns.div_euclid(1_000_000_000),
        ns.rem_euclid(1_000_000_000) as u32,
    )
}

impl Writer<'_> {
    fn layer(&self, l: u32) -> &LayerDone {
        self.layers[l as usize].as_ref().expect("layer written")
    }

    fn chain(&self, l: u32) -> ChainId {
        self.layer(l).chain
    }

    /// The snapshot key of record `r` (BuildKit `getSnapshotID`).
    fn key(&self, r: usize) -> String {
        let rec = &self.bk.recs[r];
        match rec.snap {
            Snap::Blob(l) => self.chain(l).to_string(),
            Snap::Twin(m) => self.key(m),
            _ => rec.id.clone(),
        }
    }

    fn parent_key(&self, r: usize) -> String {
        self.bk.recs[r]
            .parent
            .map(|p| self.key(p))
            .unwrap_or_default()
    }

    /// `blobChainID` of a blob-only record of layer chain prefix `l`: a
    /// local image's layers have no blob digest, so each level is
    /// `ChainID(["", diffID])`, chained on the parent's.
    fn blob_chain(&self, r: usize) -> String {
        let rec = &self.bk.recs[r];
        let Snap::Blob(l) = rec.snap else {
            unreachable!("blob records only")
        };
        let own = chain2("", &self.layer(l).diff.to_string());
        match rec.parent {
            Some(p) => chain2(&self.blob_chain(p), &own),
            None => own,
        }
    }

    fn size(&self, r: usize) -> u64 {
        let rec = &self.bk.recs[r];
        match rec.snap {
            Snap::Blob(_) => 0,
            Snap::Layer(l) => self.layer(l).size,
            Snap::Dir(d) | Snap::Mutable(d) => self.bk.dirs[d].reported(),
            Snap::Twin(m) => self.size(m),
        }
    }

    fn metadata(&self) -> Tree {
        let mut root = Tree::new();
        let mut index = Vec::new();
        let mut external = Vec::new();
        let mut main = Tree::new();
        for (i, r) in self.bk.recs.iter().enumerate() {
            let b = main.bucket(r.id.as_str());
            if r.policy {
                b.put("cache.cachePolicy", int(1));
            }
            b.put("cache.createdAt", int(r.created));
            b.put("cache.description", string(&r.description));
            b.put("cache.lastUsedAt", int(r.last_used));
            b.put("cache.usageCount", int(i64::from(r.usage)));
            if let Some(k) = r.kind {
                b.put("cache.recordType", string(k));
            }
            if let Some(p) = r.parent {
                b.put("cache.parent", string(&self.bk.recs[p].id));
            }
            for k in &r.keys {
                b.put(k.as_str(), indexed(k));
                index.push(format!("{k}::{}", r.id));
            }
            if r.contenthash {
                external.push(r.id.clone());
            }
            let committed = !matches!(r.snap, Snap::Mutable(_));
            if committed {
                b.put("snapshot.committed", r#"{"value":true}"#);
            }
            match r.snap {
                Snap::Layer(_) | Snap::Dir(_) => {
                    b.put("cache.equalMutable", "");
                }
                Snap::Twin(m) => {
                    b.put("cache.equalMutable", string(&self.bk.recs[m].id));
                }
                Snap::Blob(l) => {
                    let chain = self.chain(l).to_string();
                    let blob_chain = self.blob_chain(i);
                    b.put(
                        "cache.blobChainID",
                        format!(r#"{{"value":"{blob_chain}","index":"blobchainid:{blob_chain}"}}"#),
                    );
                    b.put("cache.blobonly", r#"{"value":true}"#);
                    b.put("cache.blobsize", int(0));
                    b.put(
                        "cache.chainID",
                        format!(r#"{{"value":"{chain}","index":"chainid:{chain}"}}"#),
                    );
                    b.put("cache.diffID", string(&self.layer(l).diff.to_string()));
                    b.put("cache.snapshot", string(&chain));
                    index.push(format!("blobchainid:{blob_chain}::{}", r.id));
                    index.push(format!("chainid:{chain}::{}", r.id));
                }
                Snap::Mutable(_) => {}
            }
            if r.sized && committed {
                b.put("snapshot.size", int(self.size(i) as i64));
            }
        }
        root.entries
            .insert(b"_main".to_vec(), bbolt::build::Node::Bucket(main));
        let ib = root.bucket("_index");
        for k in index {
            ib.put(k, "");
        }
        let eb = root.bucket("_external");
        for id in external {
            eb.bucket(id).put("buildkit.contenthash.v0", "");
        }
        root
    }

    fn snapshots(&self) -> Tree {
        let mut root = Tree::new();
        for (i, r) in self.bk.recs.iter().enumerate() {
            match r.snap {
                Snap::Blob(l) => {
                    let chain = self.chain(l).to_string();
                    root.bucket(r.id.as_str()).put("chainid", chain.as_str());
                    root.bucket(chain);
                }
                Snap::Layer(l) => {
                    let dir = &self.plan.cache_ids[l as usize];
                    root.bucket(r.id.as_str())
                        .put("chainid", self.chain(l).to_string())
                        .put("committed", dir.as_str());
                    root.bucket(dir.as_str())
                        .put("iscommitted", "")
                        .put("parent", self.parent_key(i));
                }
                Snap::Dir(d) => {
                    let dir = &self.bk.dirs[d].name;
                    let b = root.bucket(r.id.as_str());
                    b.put("committed", dir.as_str());
                    if r.sized {
                        b.put("size", self.size(i).to_string());
                    }
                    root.bucket(dir.as_str())
                        .put("iscommitted", "")
                        .put("parent", self.parent_key(i));
                }
                Snap::Mutable(_) => {
                    let b = root.bucket(r.id.as_str());
                    b.put("parent", self.parent_key(i));
                    let twin_sized = r.twin.is_some_and(|t| self.bk.recs[t].sized);
                    if twin_sized {
                        b.put("size", self.size(i).to_string());
                    }
                }
                Snap::Twin(_) => {}
            }
        }
        root
    }

    /// `v1/buildkit/leases/<record>`: every record but twins holds a lease
    /// on its snapshot.
    fn leases(&self) -> Tree {
        let mut root = Tree::new();
        let leases = root.bucket("v1").bucket("buildkit").bucket("leases");
        for (i, r) in self.bk.recs.iter().enumerate() {
            if matches!(r.snap, Snap::Twin(_)) {
                continue;
            }
            let b = leases.bucket(r.id.as_str());
            b.put("createdat", go_time_binary(r.created));
            b.bucket("labels")
                .put("containerd.io/gc.flat", rfc3339(r.created));
            b.bucket("snapshots").bucket("default").put(self.key(i), "");
        }
        root
    }

    /// The records df lists: all but twins, shared when their layer is an
    /// image's (every image layer is some image's prefix) or a descendant's.
    fn expected(&self) -> Vec<SynthRecord> {
        let recs = &self.bk.recs;
        let mut shared = vec![false; recs.len()];
        for (i, r) in recs.iter().enumerate() {
            let layer = match r.snap {
                Snap::Blob(l) | Snap::Layer(l) => Some(l),
                _ => None,
            };
            if layer.is_some_and(|l| self.plan.layers[l as usize].kind == LayerKind::Image) {
                let mut cur = Some(i);
                while let Some(c) = cur {
                    if shared[c] {
                        break;
                    }
                    shared[c] = true;
                    cur = recs[c].parent;
                }
            }
        }
        let mut out: Vec<SynthRecord> = recs
            .iter()
            .enumerate()
            .filter(|(_, r)| !matches!(r.snap, Snap::Twin(_)))
            .map(|(i, r)| SynthRecord {
                id: r.id.clone(),
                parent: r.parent.map(|p| recs[p].id.clone()),
                kind: r.kind.unwrap_or("regular").to_string(),
                mutable: matches!(r.snap, Snap::Mutable(_)),
                shared: shared[i],
                size: self.size(i),
            })
            .collect();
        out.sort_by(|a, b| a.id.cmp(&b.id));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::super::testutil::make_root;
    use super::super::{SynthReport, SynthSpec};
    use super::*;
    use std::collections::BTreeMap;

    fn spec(records: usize) -> SynthSpec {
        let mut spec = SynthSpec::scale(60, 180);
        spec.build_records = records;
        spec.containers = 4;
        spec
    }

    /// dockgc's own reading of the generated root (store, graph, build
    /// cache) lists exactly the records the generator meant, with their
    /// parents, types, sizes and shared flags.
    fn assert_dockgc_reads(root: &Path, report: &SynthReport) {
        let snap = crate::store::load(root).unwrap();
        assert!(
            snap.anomalies.is_empty(),
            "anomalies: {:#?}",
            snap.anomalies
        );
        let g = crate::graph::Graph::build(&snap);
        let bc = crate::buildcache::compute(&g);
        assert!(bc.known);
        let got: BTreeMap<&str, _> = bc.records.iter().map(|r| (r.id.as_str(), r)).collect();
        let want: BTreeMap<&str, _> = report
            .build_cache
            .iter()
            .map(|r| (r.id.as_str(), r))
            .collect();
        assert_eq!(
            got.keys().collect::<Vec<_>>(),
            want.keys().collect::<Vec<_>>()
        );
        for (id, w) in &want {
            let g = got[id];
            assert_eq!(g.parents.first(), w.parent.as_ref(), "{id} parent");
            assert_eq!(g.kind, w.kind, "{id} type");
            assert_eq!(g.shared, w.shared, "{id} shared");
            assert_eq!(g.size, w.size, "{id} size");
        }
    }

    #[test]
    fn the_record_count_is_exact_and_every_kind_is_there() {
        for n in [1, 7, 64, 150] {
            let (_t, root, r) = make_root(&spec(n));
            assert_eq!(r.build_cache.len(), n, "{n} records");
            assert_dockgc_reads(&root, &r);
        }
        let (_t, _root, r) = make_root(&spec(150));
        let kinds: BTreeSet<&str> = r.build_cache.iter().map(|r| r.kind.as_str()).collect();
        for k in [
            "regular",
            "source.local",
            "exec.cachemount",
            "frontend",
            "internal",
        ] {
            assert!(kinds.contains(k), "{k} in {kinds:?}");
        }
        assert!(r.twins > 0);
        assert!(r.build_cache.iter().any(|r| r.shared));
        assert!(
            r.build_cache
                .iter()
                .any(|r| !r.shared && r.kind == "regular")
        );
        assert!(
            r.build_cache
                .iter()
                .any(|r| r.mutable && r.kind == "regular")
        );
        assert!(!r.held_layers.is_empty());
    }

    #[test]
    fn no_records_no_buildkit_and_the_same_root() {
        let (_a, ra, a) = make_root(&spec(0));
        assert!(!ra.join("buildkit").exists());
        assert!(a.build_cache.is_empty() && a.held_layers.is_empty());
        // The images do not depend on the records (only some cache IDs do).
        let (_b, _rb, b) = make_root(&spec(80));
        let ids = |r: &SynthReport| r.image_list.iter().map(|i| i.id).collect::<Vec<_>>();
        assert_eq!(ids(&a), ids(&b));
    }

    #[test]
    fn exported_layers_live_in_buildkit_dirs() {
        let (_t, root, r) = make_root(&spec(100));
        let snaps = bbolt::Db::open(root.join("buildkit/snapshots.db")).unwrap();
        let mut exported = 0;
        for l in r.layer_list.iter().chain(&r.held_layers) {
            if l.cache_id.len() != 25 {
                continue;
            }
            exported += 1;
            // The record that became this layer names the dir as `committed`.
            let found = snaps.root().buckets().any(|(_, b)| {
                b.get("chainid") == Some(l.chain_id.to_string().as_bytes())
                    && b.get("committed") == Some(l.cache_id.as_bytes())
            });
            assert!(found, "no record exported {}", l.chain_id);
            let dir = snaps.bucket(&l.cache_id).expect("the dir's bucket");
            assert_eq!(dir.get("iscommitted"), Some(&b""[..]));
            assert!(
                root.join("overlay2")
                    .join(&l.cache_id)
                    .join("work/work")
                    .is_dir()
            );
        }
        assert!(exported > 5);
    }

    #[test]
    fn lease_times_are_go_binary() {
        // 2026-12-01T11:17:28.351193658Z, as a real containerdmeta.db has it.
        let ns = 1_796_123_848_351_193_658;
        assert_eq!(
            crate::ids::hex(&go_time_binary(ns)),
            // Its seconds as the real lease of that time has them.
            "010000000ee2a0a3c814eeca3affff"
        );
    }
}
