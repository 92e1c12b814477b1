//! Engine 29's rules on a hand-built store: a base B, layers L1 and
//! L2; images A = [B, L1], C = [B, L1, L2], D = [B]; a container on A
//! (its RW snapshot walked at 500 bytes); a dangling name on A's
//! target (ignored: A is named) and a dangling-only image E = [B].

use super::*;
use crate::ids::{DiffId, Digest};
use crate::store::containerd::meta::{BlobRec, ContainerRec, ImageRec, Namespace, SnapRec, Target};
use crate::store::containerd::{
    Backend, Descriptor, GcRules, ImageConfig, Liveness, Paths, Scope, Snapshotter, Version,
};
use crate::store::{Snapshot, Store};

fn d(s: &str) -> BlobDigest {
    BlobDigest(Digest::of_bytes(s.as_bytes()))
}

fn desc(mt: &str, digest: BlobDigest, size: i64) -> Descriptor {
    Descriptor {
        media_type: mt.into(),
        digest: Some(digest),
        raw_digest: digest.to_string(),
        size,
        platform: None,
        annotations: BTreeMap::new(),
    }
}

struct Model {
    s: State,
}

impl Model {
    fn new() -> Model {
        let ns = Namespace {
            name: "moby".into(),
            ..Namespace::default()
        };
        Model {
            s: State {
                paths: Paths::new(std::path::Path::new("/nonexistent")),
                docker_root: None,
                scope: Scope::One("moby".into()),
                read_at: Time::from_unix(1_900_000_000, 0),
                live: Liveness::default(),
                version: Some(Version {
                    schema: 4,
                    family: "2.2+",
                    evidence: String::new(),
                    gc: GcRules {
                        images_are_nodes: true,
                        root_prefix: true,
                        back_refs: true,
                        conditional: false,
                    },
                }),
                meta_error: None,
                namespaces: [("moby".to_string(), ns)].into_iter().collect(),
                other_top: Vec::new(),
                snapshotters: [(
                    "overlayfs".to_string(),
                    Snapshotter {
                        name: "overlayfs".into(),
                        ..Snapshotter::default()
                    },
                )]
                .into_iter()
                .collect(),
                other_snapshotters: BTreeMap::new(),
                blobs: BTreeMap::new(),
                ingests: BTreeMap::new(),
                docs: BTreeMap::new(),
                docker_containers: Vec::new(),
                docker_volumes: Vec::new(),
            },
        }
    }

    fn ns(&mut self) -> &mut Namespace {
        self.s.namespaces.get_mut("moby").unwrap()
    }

    fn blob(&mut self, digest: BlobDigest, size: i64) {
        self.ns().blobs.insert(
            digest,
            BlobRec {
                size,
                created: None,
                updated: None,
                labels: BTreeMap::new(),
            },
        );
    }

    /// A snapshot keyed `key` with `size` bytes, committed or active.
    fn snapshot(&mut self, key: &str, parent: Option<&str>, size: u64, committed: bool) {
        let sn = self.s.snapshotters.get_mut("overlayfs").unwrap();
        let id = sn.backends.len() as u64 + 1;
        let name = format!("moby/{id}/{key}");
        let parent_name = parent.map(|p| {
            sn.backends
                .keys()
                .find(|n| n.ends_with(&format!("/{p}")))
                .cloned()
                .unwrap()
        });
        sn.backends.insert(
            name.clone(),
            Backend {
                id,
                kind: if committed {
                    SnapKind::Committed
                } else {
                    SnapKind::Active
                },
                parent: parent_name,
                size: committed.then_some(size as i64),
                inodes: committed.then_some(1),
                created: None,
                labels: BTreeMap::new(),
            },
        );
        if !committed {
            sn.walked
                .insert(name.clone(), SnapUsage { size, inodes: 1 });
        }
        self.ns()
            .snapshots
            .entry("overlayfs".into())
            .or_default()
            .insert(
                SnapshotKey(key.into()),
                SnapRec {
                    name,
                    parent: parent.map(|p| SnapshotKey(p.into())),
                    children: Vec::new(),
                    created: None,
                    updated: None,
                    labels: BTreeMap::new(),
                },
            );
    }

    /// An image over `layers` (name, blob size, snapshot size); returns its target.
    fn image(
        &mut self,
        names: &[&str],
        tag: &str,
        layers: &[(&str, i64)],
        manifest: i64,
        config: i64,
    ) -> BlobDigest {
        let diffs: Vec<DiffId> = layers
            .iter()
            .map(|(l, _)| DiffId(Digest::of_bytes(format!("diff {l}").as_bytes())))
            .collect();
        let cd = d(&format!("config {tag}"));
        let md = d(&format!("manifest {tag}"));
        let lds: Vec<Descriptor> = layers
            .iter()
            .map(|(l, sz)| {
                desc(
                    "application/vnd.oci.image.layer.v1.tar+gzip",
                    d(&format!("blob {l}")),
                    *sz,
                )
            })
            .collect();
        for l in &lds {
            self.blob(l.digest.unwrap(), l.size);
        }
        self.blob(cd, config);
        self.blob(md, manifest);
        self.s.docs.insert(
            md,
            Doc::Manifest {
                config: desc(manifest::OCI_CONFIG, cd, config),
                layers: lds,
            },
        );
        self.s.docs.insert(
            cd,
            Doc::Config(ImageConfig {
                created: Some("2024-01-01T00:00:00Z".into()),
                os: Some("linux".into()),
                architecture: Some(manifest::host_platform().architecture),
                variant: manifest::host_platform().variant,
                diff_ids: diffs,
                labels: BTreeMap::new(),
            }),
        );
        for n in names {
            self.ns().images.insert(
                n.to_string(),
                ImageRec {
                    name: n.to_string(),
                    created: None,
                    updated: None,
                    labels: BTreeMap::new(),
                    annotations: BTreeMap::new(),
                    target: Target {
                        digest: Some(md),
                        raw_digest: md.to_string(),
                        media_type: manifest::OCI_MANIFEST.into(),
                        size: manifest,
                    },
                },
            );
        }
        md
    }

    fn chain(layers: &[&str]) -> Vec<String> {
        let diffs: Vec<DiffId> = layers
            .iter()
            .map(|l| DiffId(Digest::of_bytes(format!("diff {l}").as_bytes())))
            .collect();
        ChainId::chain(&diffs)
            .iter()
            .map(|c| c.to_string())
            .collect()
    }

    fn scenario() -> Model {
        let mut m = Model::new();
        let b = &Model::chain(&["B"]);
        let l1 = &Model::chain(&["B", "L1"]);
        let l2 = &Model::chain(&["B", "L1", "L2"]);
        m.snapshot(&b[0], None, 4000, true);
        m.snapshot(&l1[1], Some(&b[0]), 800, true);
        m.snapshot(&l2[2], Some(&l1[1]), 100, true);
        let a = m.image(&["a:1"], "A", &[("B", 1000), ("L1", 200)], 300, 100);
        m.image(
            &["c:1"],
            "C",
            &[("B", 1000), ("L1", 200), ("L2", 50)],
            310,
            110,
        );
        m.image(&["d:1"], "D", &[("B", 1000)], 290, 90);
        m.image(&["moby-dangling@E"], "E", &[("B", 1000)], 280, 80);
        // A dangling name on A's target: ignored, A is named.
        let rec = m.ns().images["a:1"].clone();
        m.ns().images.insert(
            format!("moby-dangling@{a}"),
            ImageRec {
                name: format!("moby-dangling@{a}"),
                ..rec
            },
        );
        m.snapshot("ctrX", Some(&l1[1]), 500, false);
        m.ns().containers.insert(
            "ctrX".into(),
            ContainerRec {
                image: Some("a:1".into()),
                snapshotter: Some("overlayfs".into()),
                snapshot_key: Some(SnapshotKey("ctrX".into())),
                runtime: None,
                labels: BTreeMap::new(),
                sandbox_id: None,
                created: None,
            },
        );
        m
    }

    fn usage(self, version: Option<&str>) -> Usage {
        let snap = Snapshot {
            root: "/nonexistent".into(),
            engine_id_present: true,
            refs: Vec::new(),
            images: BTreeMap::new(),
            layers: BTreeMap::new(),
            containers: BTreeMap::new(),
            volumes: Vec::new(),
            anomalies: Vec::new(),
            unresolved: Vec::new(),
            source: Default::default(),
            store: Store::Containerd(self.s),
        };
        compute(
            &snap,
            &Options {
                engine: version.map(|v| EngineVersion::parse(v).unwrap()),
            },
        )
        .unwrap()
    }
}

fn img<'u>(u: &'u Usage, name: &str) -> &'u ImageUsage {
    u.images
        .iter()
        .find(|i| i.names.iter().any(|n| n == name))
        .unwrap()
}

fn row<'u>(u: &'u Usage, kind: &str) -> &'u SummaryRow {
    u.summary.iter().find(|r| r.kind == kind).unwrap()
}

#[test]
fn sizes_are_content_plus_unpacked_chains() {
    let u = Model::scenario().usage(None);
    assert_eq!(img(&u, "a:1").size, 300 + 100 + 1000 + 200 + 4000 + 800);
    assert_eq!(img(&u, "c:1").size, 310 + 110 + 1250 + 4900);
    assert_eq!(img(&u, "d:1").size, 290 + 90 + 1000 + 4000);
    assert_eq!(
        u.images.len(),
        4,
        "A's dangling name is not an image of its own"
    );
    assert!(!img(&u, "a:1").dangling);
    assert!(img(&u, "moby-dangling@E").dangling);
    assert_eq!(img(&u, "a:1").containers, 1);
    assert_eq!(u.engine_rules.name, "29.6+");
    assert!(!u.engine_rules.chosen);
}

#[test]
fn shared_size_counts_content_from_29_5() {
    for v in ["29.5", "29.6", "29.9"] {
        let u = Model::scenario().usage(Some(v));
        // A: chains B and L1, blobs B and L1 are in other images too.
        assert_eq!(img(&u, "a:1").shared_size, 4000 + 800 + 1000 + 200, "{v}");
        assert_eq!(img(&u, "d:1").shared_size, 4000 + 1000, "{v}");
        assert_eq!(img(&u, "a:1").unique_size, 400, "{v}");
    }
    for v in ["29.0", "29.3", "29.4"] {
        let u = Model::scenario().usage(Some(v));
        assert_eq!(img(&u, "a:1").shared_size, 4800, "{v}");
        assert_eq!(img(&u, "d:1").shared_size, 4000, "{v}");
    }
}

#[test]
fn total_size_counts_image_chains_from_29_6_and_every_snapshot_before() {
    // Content: four manifests, four configs, three distinct layer blobs.
    let content = (300 + 310 + 290 + 280) + (100 + 110 + 90 + 80) + 1250;
    let u = Model::scenario().usage(None);
    assert_eq!(row(&u, "images").size, 4900 + content);
    let u = Model::scenario().usage(Some("29.5"));
    assert_eq!(row(&u, "images").size, 4900 + 500 + content, "ctrX counts");
}

#[test]
fn active_and_reclaimable_changed_in_29_4() {
    let u = Model::scenario().usage(Some("29.4"));
    let unique_unused: u64 = ["c:1", "d:1", "moby-dangling@E"]
        .iter()
        .map(|n| img(&u, n).unique_size)
        .sum();
    assert_eq!(row(&u, "images").active, 1);
    assert_eq!(row(&u, "images").reclaimable, unique_unused);
    let u = Model::scenario().usage(Some("29.3"));
    assert_eq!(row(&u, "images").active, 1);
    let total = row(&u, "images").size;
    assert_eq!(row(&u, "images").reclaimable, total - unique_unused);
}

#[test]
fn a_missing_snapshot_makes_the_whole_chain_zero() {
    let mut m = Model::scenario();
    let l2 = Model::chain(&["B", "L1", "L2"]);
    m.ns()
        .snapshots
        .get_mut("overlayfs")
        .unwrap()
        .remove(&SnapshotKey(l2[2].clone()));
    let u = m.usage(None);
    assert_eq!(img(&u, "c:1").size, 310 + 110 + 1250, "content only");
    assert!(!img(&u, "c:1").unpacked);
}

#[test]
fn a_missing_manifest_record_drops_its_subtree_and_a_missing_layer_adds_zero() {
    let mut m = Model::scenario();
    let c = m.ns().images["c:1"].target.digest.unwrap();
    m.ns().blobs.remove(&c);
    let l2 = d("blob L2");
    let u = m.usage(None);
    assert_eq!(img(&u, "c:1").size, 0);
    let mut m = Model::scenario();
    m.ns().blobs.remove(&l2);
    let u = m.usage(None);
    assert_eq!(img(&u, "c:1").size, 310 + 110 + 1200 + 4900);
}

#[test]
fn engine_versions_parse_and_older_engines_are_refused() {
    assert_eq!(EngineVersion::parse("29.5.1").unwrap().minor, 5);
    assert_eq!(EngineVersion::parse("docker-v29.7.2").unwrap().minor, 7);
    assert_eq!(EngineVersion::parse("29").unwrap().minor, 0);
    assert!(EngineVersion::parse("28.3").is_err());
    assert!(EngineVersion::parse("new").is_err());
}
