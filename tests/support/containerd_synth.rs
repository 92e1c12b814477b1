#![allow(dead_code)]
//! A generated containerd root in the exact format containerd 1.6 writes
//! (meta.db schema 3, an overlayfs metastore, `snapshots/<id>/fs` dirs and
//! content-store blobs): `images` images in namespace `moby`, each four
//! layers deep over a pool of shared bases and middles, so a thousand
//! images make 3,000 snapshots. Every blob is real (gzip tars whose diff
//! IDs and chain IDs are right), so `verify --deep` passes and a real
//! containerd accepts the root (tests/containerd_synth.rs). Used by the
//! benchmark (examples/containerd_synth.rs) and the tests; bbolt files come
//! from the bbolt crate's writer.

use bbolt::build::{Options, Tree};
use sha2::{Digest, Sha256};
use std::fs;
use std::io::Write;
use std::path::Path;

/// What was generated.
#[derive(Debug, Default)]
pub struct SynthCounts {
    pub images: usize,
    pub snapshots: usize,
    pub blobs: usize,
    /// Σ of the snapshot sizes stored in the metastore.
    pub snapshot_bytes: u64,
}

fn hexs(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn sha(b: &[u8]) -> String {
    format!("sha256:{}", hexs(&Sha256::digest(b)))
}

/// Go's `binary.PutUvarint`.
pub fn uvarint(mut v: u64) -> Vec<u8> {
    let mut out = Vec::new();
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
    out
}

/// Go's `binary.PutVarint` (zig-zag).
pub fn varint(v: i64) -> Vec<u8> {
    uvarint(((v << 1) ^ (v >> 63)) as u64)
}

/// Go's `time.Time.MarshalBinary` of a UTC instant (version 1).
pub fn go_time(unix: i64, nanos: u32) -> Vec<u8> {
    let mut out = vec![1u8];
    out.extend_from_slice(&(unix + 62_135_596_800).to_be_bytes());
    out.extend_from_slice(&(nanos as i32).to_be_bytes());
    out.extend_from_slice(&(-1i16).to_be_bytes());
    out
}

fn layer_tar(name: &str, body: &[u8]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Regular);
    h.set_size(body.len() as u64);
    h.set_mode(0o644);
    h.set_mtime(1_700_000_000);
    h.set_uid(0);
    h.set_gid(0);
    b.append_data(&mut h, name, body).unwrap();
    b.into_inner().unwrap()
}

fn gzip(b: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(b).unwrap();
    e.finish().unwrap()
}

struct Gen<'a> {
    root: &'a Path,
    ns: &'a str,
    meta_blobs: Tree,
    snap_recs: Tree,
    backends: Tree,
    parents: Tree,
    seq: u64,
    next_id: u64,
    counts: SynthCounts,
    /// chain ID → (key name, backend name, id).
    chains: std::collections::HashMap<String, (String, u64)>,
    t: i64,
}

impl Gen<'_> {
    fn blob(&mut self, bytes: &[u8], labels: &[(&str, String)]) -> String {
        let d = sha(bytes);
        let path = self
            .root
            .join("io.containerd.content.v1.content/blobs/sha256")
            .join(d.trim_start_matches("sha256:"));
        if !path.exists() {
            fs::write(&path, bytes).unwrap();
            let mut p = fs::metadata(&path).unwrap().permissions();
            std::os::unix::fs::PermissionsExt::set_mode(&mut p, 0o444);
            fs::set_permissions(&path, p).unwrap();
            self.counts.blobs += 1;
        }
        let rec = self.meta_blobs.bucket(d.clone());
        rec.put("createdat", go_time(self.t, 1));
        rec.put("updatedat", go_time(self.t, 2));
        rec.put("size", varint(bytes.len() as i64));
        let l = rec.bucket("labels");
        for (k, v) in labels {
            l.put(*k, v.clone());
        }
        d
    }

    /// The snapshot of `chain` on `parent`, committed, unless it exists.
    fn snapshot(&mut self, chain: &str, parent: Option<&str>, body_len: usize) {
        if self.chains.contains_key(chain) {
            return;
        }
        // A prepare and a commit each take a sequence number (`createKey`).
        self.seq += 2;
        let name = format!("{}/{}/{chain}", self.ns, self.seq);
        let id = self.next_id;
        self.next_id += 1;
        let dir = self
            .root
            .join("io.containerd.snapshotter.v1.overlayfs/snapshots")
            .join(id.to_string());
        fs::create_dir_all(dir.join("fs")).unwrap();
        fs::write(dir.join("fs").join("f"), vec![b'x'; body_len]).unwrap();
        let (size, inodes) = du(&dir.join("fs"));
        self.counts.snapshot_bytes += size;
        self.counts.snapshots += 1;
        let b = self.backends.bucket(name.clone());
        b.put("id", uvarint(id));
        b.put("kind", [3u8]);
        b.put("createdat", go_time(self.t, 3));
        b.put("updatedat", go_time(self.t, 4));
        b.put("size", varint(size as i64));
        b.put("inodes", varint(inodes as i64));
        let r = self.snap_recs.bucket(chain.to_string());
        r.put("name", name.clone());
        r.put("createdat", go_time(self.t, 5));
        r.put("updatedat", go_time(self.t, 6));
        if let Some(p) = parent {
            let (pname, pid) = self.chains[p].clone();
            self.backends
                .bucket(name.clone())
                .put("parent", pname.clone());
            self.snap_recs
                .bucket(chain.to_string())
                .put("parent", p.to_string());
            self.snap_recs
                .bucket(p.to_string())
                .bucket("children")
                .put(chain.to_string(), Vec::new());
            let mut k = uvarint(pid);
            k.push(0);
            k.extend(uvarint(id));
            self.parents.put(k, name.clone());
        }
        self.chains.insert(chain.to_string(), (name, id));
    }
}

/// continuity's `DiskUsage` of a fresh tree: allocated bytes and inodes.
fn du(dir: &Path) -> (u64, u64) {
    use std::os::unix::fs::MetadataExt;
    let mut size = 0;
    let mut n = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(p) = stack.pop() {
        let m = fs::symlink_metadata(&p).unwrap();
        size += m.blocks() * 512;
        n += 1;
        if m.is_dir() {
            for e in fs::read_dir(&p).unwrap() {
                stack.push(e.unwrap().path());
            }
        }
    }
    (size, n)
}

/// Writes the root into the empty or missing directory `root`, namespace `moby`.
pub fn generate(root: &Path, images: usize) -> SynthCounts {
    generate_in(root, images, "moby")
}

/// [`generate`] into namespace `ns`.
pub fn generate_in(root: &Path, images: usize, ns: &str) -> SynthCounts {
    let bases = (images / 10).max(1);
    let mids = (images * 9 / 10).max(1);
    for d in [
        "io.containerd.content.v1.content/blobs/sha256",
        "io.containerd.content.v1.content/ingest",
        "io.containerd.metadata.v1.bolt",
        "io.containerd.snapshotter.v1.overlayfs/snapshots",
        "io.containerd.snapshotter.v1.native/snapshots",
    ] {
        fs::create_dir_all(root.join(d)).unwrap();
    }
    let mut g = Gen {
        root,
        ns,
        meta_blobs: Tree::new(),
        snap_recs: Tree::new(),
        backends: Tree::new(),
        parents: Tree::new(),
        seq: 0,
        next_id: 1,
        counts: SynthCounts::default(),
        chains: Default::default(),
        t: 1_700_000_000,
    };
    let mut image_recs = Tree::new();
    for i in 0..images {
        let m = i % mids;
        let b = m % bases;
        let parts = [
            (format!("base-{b}"), 2000 + b % 7 * 4096),
            (format!("mid-{m}"), 500 + m % 5 * 4096),
            (format!("img-{i}-a"), 100 + i % 3 * 4096),
            (format!("img-{i}-b"), 10),
        ];
        let mut diffs = Vec::new();
        let mut layer_descs = Vec::new();
        let mut parent: Option<String> = None;
        for (n, (name, body)) in parts.iter().enumerate() {
            let tar = layer_tar(name, name.as_bytes());
            let diff = sha(&tar);
            let chain = match &parent {
                None => diff.clone(),
                Some(p) => sha(format!("{p} {diff}").as_bytes()),
            };
            let gz = gzip(&tar);
            let ld = g.blob(&gz, &[("containerd.io/uncompressed", diff.clone())]);
            layer_descs.push(serde_json::json!({
                "mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip",
                "digest": ld, "size": gz.len()}));
            g.snapshot(&chain, parent.as_deref(), *body);
            diffs.push(diff);
            parent = Some(chain);
            let _ = n;
        }
        let top = parent.unwrap();
        let cfg = serde_json::to_vec(&serde_json::json!({
            "architecture": "amd64", "os": "linux",
            "created": format!("2024-01-01T00:{:02}:{:02}Z", i / 60 % 60, i % 60),
            "config": {"Cmd": ["/bin/sh"]},
            "rootfs": {"type": "layers", "diff_ids": diffs},
        }))
        .unwrap();
        let cd = g.blob(&cfg, &[("containerd.io/gc.ref.snapshot.overlayfs", top)]);
        let manifest = serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
            "config": {"mediaType": "application/vnd.docker.container.image.v1+json",
                "digest": cd, "size": cfg.len()},
            "layers": layer_descs,
        }))
        .unwrap();
        let mut labels = vec![("containerd.io/gc.ref.content.config", cd.clone())];
        let keys: Vec<String> = (0..layer_descs.len())
            .map(|n| format!("containerd.io/gc.ref.content.l.{n}"))
            .collect();
        for (n, l) in layer_descs.iter().enumerate() {
            labels.push((keys[n].as_str(), l["digest"].as_str().unwrap().to_string()));
        }
        let md = g.blob(&manifest, &labels);
        let mut names = vec![format!("docker.io/library/img-{i}:latest")];
        if i % 10 == 0 {
            names.push(format!("docker.io/library/img-{i}:v1"));
        }
        for name in names {
            let r = image_recs.bucket(name.clone());
            r.put("createdat", go_time(g.t, 7));
            r.put("updatedat", go_time(g.t, 8));
            let t = r.bucket("target");
            t.put("digest", md.clone());
            t.put(
                "mediatype",
                "application/vnd.docker.distribution.manifest.v2+json",
            );
            t.put("size", varint(manifest.len() as i64));
            r.bucket("annotations")
                .put("io.containerd.image.name", name.clone());
        }
        g.counts.images += 1;
    }

    let mut meta = Tree::new();
    let v1 = meta.bucket("v1");
    v1.put("version", varint(3));
    let moby = v1.bucket(ns);
    moby.bucket("labels");
    *moby.bucket("images") = image_recs;
    let content = moby.bucket("content");
    *content.bucket("blob") = std::mem::take(&mut g.meta_blobs);
    content.bucket("ingests");
    moby.bucket("leases");
    let snaps = moby.bucket("snapshots");
    let ovl = snaps.bucket("overlayfs");
    *ovl = std::mem::take(&mut g.snap_recs);
    ovl.set_sequence(g.seq);
    write_bolt(
        &root.join("io.containerd.metadata.v1.bolt/meta.db"),
        &meta,
        0o644,
    );

    let mut ms = Tree::new();
    let v1 = ms.bucket("v1");
    let s = v1.bucket("snapshots");
    *s = std::mem::take(&mut g.backends);
    s.set_sequence(g.next_id - 1);
    *v1.bucket("parents") = std::mem::take(&mut g.parents);
    write_bolt(
        &root.join("io.containerd.snapshotter.v1.overlayfs/metadata.db"),
        &ms,
        0o600,
    );
    let mut native = Tree::new();
    native.bucket("v1").bucket("snapshots");
    native.bucket("v1").bucket("parents");
    write_bolt(
        &root.join("io.containerd.snapshotter.v1.native/metadata.db"),
        &native,
        0o600,
    );
    g.counts
}

fn write_bolt(path: &Path, t: &Tree, mode: u32) {
    let img = bbolt::build::image(
        t,
        &Options {
            page_size: 4096,
            txid: 2,
            first_page: 2,
        },
    )
    .unwrap();
    fs::write(path, img).unwrap();
    let mut p = fs::metadata(path).unwrap().permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut p, mode);
    fs::set_permissions(path, p).unwrap();
}

/// A root of `count` images in namespace `moby`, each one layer of `mb`
/// MiB of incompressible bytes (stored gzip), for `verify --deep`'s
/// throughput on large blobs.
pub fn generate_big(root: &Path, count: usize, mb: usize) -> SynthCounts {
    let mut counts = generate_in(root, 0, "moby");
    let meta_path = root.join("io.containerd.metadata.v1.bolt/meta.db");
    let db = bbolt::Db::open(&meta_path).unwrap();
    let mut meta = tree_of(db.root());
    let blobs = root.join("io.containerd.content.v1.content/blobs/sha256");
    let ns = ns_tree(&mut meta);
    for i in 0..count {
        // xorshift bytes: incompressible, so the blob is as large as the layer.
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15 ^ (i as u64 + 1);
        let mut body = vec![0u8; mb << 20];
        for c in body.chunks_mut(8) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            c.copy_from_slice(&x.to_le_bytes()[..c.len()]);
        }
        let tar = layer_tar(&format!("big-{i}"), &body);
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::none());
        e.write_all(&tar).unwrap();
        let gz = e.finish().unwrap();
        let d = sha(&gz);
        fs::write(blobs.join(d.trim_start_matches("sha256:")), &gz).unwrap();
        let rec = ns.bucket("content").bucket("blob").bucket(d.clone());
        rec.put("size", varint(gz.len() as i64));
        rec.put("createdat", go_time(1_700_000_000, 0));
        rec.put("updatedat", go_time(1_700_000_000, 0));
        // Kept by a gc.root label: no image needs building for a hash benchmark.
        rec.bucket("labels").put("containerd.io/gc.root", "bench");
        counts.blobs += 1;
    }
    write_bolt(&meta_path, &meta, 0o644);
    counts
}

fn tree_of(b: bbolt::Bucket<'_>) -> Tree {
    let mut t = Tree::new();
    t.set_sequence(b.sequence());
    for (k, e) in b.iter() {
        match e {
            bbolt::Entry::Value(v) => {
                t.put(k, v);
            }
            bbolt::Entry::Bucket(c) => {
                t.entries
                    .insert(k.to_vec(), bbolt::build::Node::Bucket(tree_of(c)));
            }
        }
    }
    t
}

fn ns_tree(t: &mut Tree) -> &mut Tree {
    t.bucket("v1").bucket("moby")
}
