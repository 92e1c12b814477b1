//! imagedb configs and metadata, and `repositories.json` (moby
//! `daemon/internal/image/fs.go`, `daemon/internal/image/store.go`,
//! `daemon/internal/refstore/store.go`).

use super::SynthImageKind;
use super::fs::Ctx;
use super::gofmt::{go_map, go_str, go_str_list, rfc3339nano};
use super::layers::LayerDone;
use super::plan::{Plan, team, tier};
use super::rng::{Rng, STREAM_IMAGE, STREAM_LAYER};
use crate::ids::{DiffId, Digest, ImageId};
use rayon::prelude::*;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io;

pub(super) struct ImageDone {
    pub(super) id: ImageId,
    pub(super) refs: Vec<String>,
}

pub(super) const PATH_ENV: &str =
    "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Configs in order (a child's config names its parent's ID), in chunks
/// whose files are written in parallel.
pub(super) fn write_images(
    ctx: &Ctx,
    plan: &Plan,
    layers: &[Option<LayerDone>],
) -> io::Result<Vec<ImageDone>> {
    const CHUNK: usize = 1024;
    let n = plan.images.len();
    let mut done: Vec<ImageDone> = Vec::with_capacity(n);
    for start in (0..n).step_by(CHUNK) {
        let end = (start + CHUNK).min(n);
        let batch: Vec<ImageFiles> = (start..end)
            .map(|i| {
                let (im, files) = make_image(plan, layers, &done, i);
                done.push(im);
                files
            })
            .collect();
        batch
            .par_iter()
            .try_for_each(|files| write_image(ctx, plan, files))?;
    }
    Ok(done)
}

/// What goes to disk for one image.
struct ImageFiles {
    index: usize,
    id: ImageId,
    config: String,
    /// `parent` metadata: set for a locally built child.
    meta_parent: Option<ImageId>,
}

fn make_image(
    plan: &Plan,
    layers: &[Option<LayerDone>],
    done: &[ImageDone],
    i: usize,
) -> (ImageDone, ImageFiles) {
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
    let files = ImageFiles {
        index: i,
        id,
        config,
        meta_parent: parent_id.filter(|_| im.meta_parent),
    };
    (ImageDone { id, refs }, files)
}

/// The config, and the metadata dir when there is `parent` or `lastUpdated` to say.
fn write_image(ctx: &Ctx, plan: &Plan, f: &ImageFiles) -> io::Result<()> {
    let p = &ctx.paths;
    let im = &plan.images[f.index];
    ctx.file(&p.image_config(&f.id), f.config.as_bytes(), 0o600)?;
    let last_updated = match im.kind {
        SynthImageKind::Tagged => true,
        SynthImageKind::Dangling => im.keeps_last_updated,
        _ => false,
    };
    if f.meta_parent.is_none() && !last_updated {
        return Ok(());
    }
    ctx.dir(&p.image_metadata(&f.id), 0o700)?;
    if let Some(parent) = f.meta_parent {
        ctx.file(&p.image_parent(&f.id), parent.to_string().as_bytes(), 0o600)?;
    }
    if last_updated {
        let t = rfc3339nano(im.created.0 + 120, im.created.1 / 7 + 1);
        ctx.file(&p.image_last_updated(&f.id), t.as_bytes(), 0o600)?;
    }
    Ok(())
}

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
                "/bin/sh -c #(nop)  LABEL synth.team={} synth.tier={}",
                team(i),
                tier(i)
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

/// A `container.Config` (moby `api/types/container/config.go`) as
/// `json.Marshal` writes it: Go field order.
pub(super) fn container_config(
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

/// `repositories.json`: repository → reference → image ID.
pub(super) fn write_references(ctx: &Ctx, images: &[ImageDone]) -> io::Result<usize> {
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
    ctx.file(&ctx.paths.repositories_json(), body.as_bytes(), 0o600)?;
    Ok(count)
}

#[cfg(test)]
mod tests {
    use super::super::testutil::{image_ids, make_root, mode, read};
    use super::super::{SynthImageKind, SynthSpec};
    use crate::ids::{ChainId, DiffId, Digest, ImageId};
    use std::collections::{BTreeMap, BTreeSet};
    use std::fs;

    /// Every config hashes to its name and is a loadable image, with the
    /// chain and `parent` the report gives it.
    #[test]
    fn demo_configs_are_loadable_images() {
        let spec = SynthSpec::demo();
        let (_tmp, root, report) = make_root(&spec);
        let img = root.join("image/overlay2");
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
            tops.insert(name, ChainId::chain(&diffs).last().copied());
        }
        let ids = image_ids(&root);
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
    }

    /// repositories.json: compact, sorted, no newline, 0600, targets exist.
    #[test]
    fn demo_repositories_json_is_go_shaped() {
        let (_tmp, root, report) = make_root(&SynthSpec::demo());
        let ids = image_ids(&root);
        let rj = root.join("image/overlay2/repositories.json");
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
    }
}
