//! A real dockerd (Engine 20.10 from Debian's `docker.io`) started on a root
//! written by `dockgc::synth` must see exactly what the generator wrote, and
//! `dockgc df` must report the same sizes as the daemon's `/system/df`.
//!
//! Skips (loudly) without a usable dockerd unless `DOCKGC_REQUIRE_DOCKER` or
//! `CI` is set; see `tests/support/mod.rs`.

mod support;

use dockgc::synth::{SynthImageKind, SynthSpec, generate};
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;

fn spec() -> SynthSpec {
    let mut spec = SynthSpec::scale(40, 100);
    spec.bases = 3;
    spec.containers = 3;
    spec.dangling = 3;
    spec.files_per_layer = 2;
    spec.file_bytes = 900;
    spec.tags_per_image = 3;
    spec.digest_only_percent = 10;
    spec.orphan_dirs = 2;
    spec.removing = 1;
    spec.write_sets = 1;
    spec.seed = 20_10;
    // Engine 20.10 never writes engine-id; with it dockgc would apply the v24+ shared-size rule.
    spec.engine_id = false;
    spec.legacy_tar_split = true;
    spec
}

fn strings(v: &Value) -> BTreeSet<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn real_dockerd_reads_a_synthetic_root_and_dockgc_agrees() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let root = tmp.path().join("docker");
    let spec = spec();
    let report = generate(&root, &spec).expect("generate");
    assert_eq!(report.images, 40);
    assert_eq!(report.containers, 3);

    let Some(daemon) = support::Daemon::start(&root) else {
        return;
    };

    // Every generated image is loaded, intermediates included.
    let listed: BTreeSet<String> = daemon
        .docker(&["images", "-a", "--no-trunc", "-q"])
        .lines()
        .map(String::from)
        .collect();
    let want: BTreeSet<String> = report.image_list.iter().map(|i| i.id.to_string()).collect();
    assert_eq!(listed, want, "docker images -a");

    // Tags, digests, sizes and parents as generated.
    let by_id: BTreeMap<String, &dockgc::synth::SynthImage> = report
        .image_list
        .iter()
        .map(|i| (i.id.to_string(), i))
        .collect();
    let api_images = daemon.api("/images/json?all=1");
    for img in api_images.as_array().expect("image list") {
        let id = img["Id"].as_str().unwrap();
        let s = by_id[id];
        let (mut digests, mut tags): (BTreeSet<String>, BTreeSet<String>) =
            s.refs.iter().cloned().partition(|r| r.contains('@'));
        if s.refs.is_empty() {
            tags.insert("<none>:<none>".into());
            digests.insert("<none>@<none>".into());
        }
        assert_eq!(strings(&img["RepoTags"]), tags, "RepoTags of {id}");
        assert_eq!(strings(&img["RepoDigests"]), digests, "RepoDigests of {id}");
        assert_eq!(img["Size"].as_u64(), Some(s.size), "Size of {id}");
        let parent = s.parent.map(|p| p.to_string()).unwrap_or_default();
        assert_eq!(
            img["ParentId"].as_str(),
            Some(parent.as_str()),
            "ParentId of {id}"
        );
    }
    let dangling: BTreeSet<String> = daemon
        .docker(&["images", "-q", "--no-trunc", "--filter", "dangling=true"])
        .lines()
        .map(String::from)
        .collect();
    let parents: BTreeSet<_> = report.image_list.iter().filter_map(|i| i.parent).collect();
    let want_dangling: BTreeSet<String> = report
        .image_list
        .iter()
        .filter(|i| {
            matches!(
                i.kind,
                SynthImageKind::Dangling | SynthImageKind::DigestOnly
            )
        })
        .filter(|i| !parents.contains(&i.id))
        .map(|i| i.id.to_string())
        .collect();
    assert_eq!(
        dangling, want_dangling,
        "dangling=true (no tag, no children)"
    );

    // Containers: listed with their names, images and states; logs readable.
    let ps = daemon.docker(&[
        "ps",
        "-a",
        "--no-trunc",
        "--format",
        "{{.ID}} {{.Names}} {{.State}}",
    ]);
    let ps: BTreeSet<String> = ps.lines().map(String::from).collect();
    for c in &report.container_list {
        let state = if c.started { "exited" } else { "created" };
        assert!(
            ps.contains(&format!("{} {} {state}", c.id, c.name)),
            "docker ps -a lacks {} {}: {ps:?}",
            c.id,
            c.name
        );
        let inspect = daemon.docker(&["inspect", "--format", "{{.Image}}", &c.id.0]);
        assert_eq!(inspect.trim(), c.image.to_string());
    }
    assert_eq!(ps.len(), report.containers);
    let first = &report.container_list[0];
    assert!(first.started);
    let logs = daemon.docker(&["logs", &first.name]);
    assert!(logs.contains("synth-0 line 0"), "docker logs: {logs:?}");

    // docker save reassembles every layer from tar-split.json.gz + diff/ and
    // checks it against the layer's DiffID: exports of the deepest image.
    let deepest = report
        .image_list
        .iter()
        .filter(|i| i.kind == SynthImageKind::Tagged)
        .max_by_key(|i| i.chain.len())
        .expect("a tagged image");
    let tar_path = tmp.path().join("save.tar");
    daemon.docker(&["save", "-o", tar_path.to_str().unwrap(), &deepest.refs[0]]);
    let config: Value = serde_json::from_slice(
        &std::fs::read(
            root.join("image/overlay2/imagedb/content/sha256")
                .join(deepest.id.hex()),
        )
        .unwrap(),
    )
    .unwrap();
    let want_diffs: Vec<String> = config["rootfs"]["diff_ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d.as_str().unwrap().to_string())
        .collect();
    let mut layer_digests = BTreeMap::new();
    let mut manifest = Value::Null;
    let mut ar = tar::Archive::new(std::fs::File::open(&tar_path).unwrap());
    for e in ar.entries().unwrap() {
        let mut e = e.unwrap();
        let path = e.path().unwrap().to_string_lossy().into_owned();
        let mut body = Vec::new();
        e.read_to_end(&mut body).unwrap();
        if path.ends_with("/layer.tar") {
            let d = format!("sha256:{}", dockgc::ids::hex(&Sha256::digest(&body)));
            layer_digests.insert(path, d);
        } else if path == "manifest.json" {
            manifest = serde_json::from_slice(&body).unwrap();
        }
    }
    let saved: Vec<String> = manifest[0]["Layers"]
        .as_array()
        .expect("manifest Layers")
        .iter()
        .map(|l| layer_digests[l.as_str().unwrap()].clone())
        .collect();
    assert_eq!(saved, want_diffs, "docker save layer digests");

    // A container on the deepest image: init layer + RW layer mounted over every lower.
    daemon.docker(&[
        "create",
        "--name",
        "synth-probe",
        &deepest.refs[0],
        "/bin/true",
    ]);
    daemon.docker(&["rm", "synth-probe"]);

    // The daemon's disk usage, then stop it (that also finishes the -removing layer).
    let df = daemon.api("/system/df");
    for c in df["Containers"].as_array().unwrap() {
        let id = c["Id"].as_str().unwrap();
        let s = report
            .container_list
            .iter()
            .find(|x| x.id.0 == id)
            .expect("generated container");
        // `SizeRw` is omitempty in the API: absent means 0.
        let size_rw = c.get("SizeRw").and_then(Value::as_u64).unwrap_or(0);
        assert_eq!(size_rw, s.size_rw, "SizeRw of {id}");
    }
    daemon.stop();
    let layerdb = root.join("image/overlay2/layerdb/sha256");
    for name in &report.removing {
        assert!(
            !layerdb.join(name).exists(),
            "dockerd's shutdown cleanup finishes {name}"
        );
    }

    // dockgc reads the stopped root and agrees with the daemon.
    let out = support::dockgc()
        .args(["--root", root.to_str().unwrap(), "df", "--format", "json"])
        .output()
        .expect("run dockgc");
    assert!(
        out.status.success(),
        "dockgc df failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let ours: Value = serde_json::from_slice(&out.stdout).expect("dockgc df JSON");
    let ours_by_id: BTreeMap<&str, &Value> = ours["images"]
        .as_array()
        .expect("images[]")
        .iter()
        .map(|i| (i["id"].as_str().unwrap(), i))
        .collect();
    let theirs = df["Images"].as_array().unwrap();
    assert!(!theirs.is_empty());
    for img in theirs {
        let id = img["Id"].as_str().unwrap();
        let o = ours_by_id
            .get(id)
            .unwrap_or_else(|| panic!("dockgc df lacks {id}"));
        assert_eq!(o["size"].as_u64(), img["Size"].as_u64(), "size of {id}");
        assert_eq!(
            o["shared_size"].as_i64(),
            img["SharedSize"].as_i64(),
            "shared_size of {id}"
        );
    }
    assert_eq!(
        ours["layers_size"].as_u64(),
        df["LayersSize"].as_u64(),
        "layers_size"
    );
}
