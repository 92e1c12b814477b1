//! Local volumes as the daemon's `local` driver and volume store leave them
//! (moby `daemon/volume/local/local.go` `Create`, `daemon/volume/service/db.go`
//! `setMeta`; modes and JSON checked against a real root):
//! `volumes/<name>/_data/` with small contents, `opts.json` for a volume
//! made with mount options, and the record of each in `volumes/metadata.db`
//! (bucket `volumes`, `{"Name","Driver","Labels","Options"}`).
//!
//! Named volumes come from `docker volume create` (`Labels` and `Options`
//! `{}`, some labels) or were created by `-v name:/dest` (both `null`);
//! anonymous ones are 64-hex names (`-v /dest`), labelled
//! `com.docker.volume.anonymous` by Engine 23 and later (a root with
//! `engine-id`). About one in fifty is a tmpfs volume, which `/system/df`
//! leaves out. Containers mount some of them (`MountPoints`, and
//! `HostConfig.Binds` or `Config.Volumes`); some anonymous volumes outlived
//! their container.

use super::SynthSpec;
use super::SynthVolume;
use super::fs::Ctx;
use super::gofmt::{go_map, go_str};
use super::plan::{MountPlan, Plan};
use super::rng::{Rng, STREAM_VOLUME};
use bbolt::build::{Options, Tree, image};
use std::collections::BTreeMap;
use std::io;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Kind {
    /// `docker volume create [--label …] NAME`.
    Created(BTreeMap<String, String>),
    /// Made by a container's `-v NAME:/dest`.
    ByMount,
    /// `-v /dest`.
    Anonymous,
    /// `docker volume create --opt type=tmpfs …`.
    Tmpfs,
}

#[derive(Debug, Clone)]
struct VolumePlan {
    name: String,
    kind: Kind,
    /// Files of `_data`: (path, bytes); a `None` body is a symlink to `f0`,
    /// an empty body an empty file (neither adds bytes, but a symlink
    /// counts its target's length).
    files: Vec<(String, Entry)>,
    links: usize,
}

#[derive(Debug, Clone)]
enum Entry {
    File(Vec<u8>),
    Symlink(&'static str),
    HardLink(&'static str),
}

pub(super) struct VolPlan {
    volumes: Vec<VolumePlan>,
    engine_id: bool,
}

const TMPFS_OPTS: &str =
    r#"{"MountType":"tmpfs","MountOpts":"size=1m","MountDevice":"tmpfs","Quota":{"Size":0}}"#;

pub(super) fn plan(spec: &SynthSpec, plan: &mut Plan) -> VolPlan {
    let mut rng = Rng::new(spec.seed, STREAM_VOLUME, 0);
    let containers = plan.containers.len();
    let mut volumes = Vec::with_capacity(spec.volumes);
    for i in 0..spec.volumes {
        let roll = rng.below(100);
        let kind = if spec.volumes >= 20 && roll < 2 {
            Kind::Tmpfs
        } else if roll < 32 {
            Kind::Anonymous
        } else if roll < 52 && containers > 0 {
            Kind::ByMount
        } else {
            let mut labels = BTreeMap::new();
            if rng.percent(40) {
                labels.insert("synth.team".to_string(), super::plan::team(i));
                if rng.percent(30) {
                    labels.insert("synth.purpose".into(), "cache".into());
                }
            }
            Kind::Created(labels)
        };
        let name = match kind {
            Kind::Anonymous => rng.hex64(),
            Kind::Tmpfs => format!("scratch-{i}"),
            _ => format!("{}-{i}", ["data", "cache", "db", "uploads"][i % 4]),
        };
        let files = if kind == Kind::Tmpfs {
            Vec::new()
        } else {
            contents(&mut rng, i)
        };
        // Who mounts it: anonymous volumes their one container (unless it
        // was removed), volumes a mount made one or two, created ones 0–2.
        let users = match kind {
            Kind::Anonymous => usize::from(rng.percent(70)),
            Kind::ByMount => 1 + usize::from(rng.percent(30)),
            Kind::Created(_) => [0, 0, 0, 1, 1, 2][rng.index(6)],
            Kind::Tmpfs => 0,
        };
        let mut links = 0;
        if containers > 0 {
            let mut used = Vec::new();
            for _ in 0..users {
                let c = rng.index(containers);
                if used.contains(&c) {
                    continue;
                }
                used.push(c);
                plan.containers[c].mounts.push(MountPlan {
                    destination: format!("/mnt/v{i}"),
                    volume: name.clone(),
                    anonymous: kind == Kind::Anonymous,
                });
                links += 1;
            }
        }
        volumes.push(VolumePlan {
            name,
            kind,
            files,
            links,
        });
    }
    VolPlan {
        volumes,
        engine_id: spec.engine_id,
    }
}

/// What a container left in the volume: a few small files, at times a
/// subdirectory, an empty file, a symlink and a hard link (which
/// `directory.Size` counts by the link's length, not at all and once).
fn contents(rng: &mut Rng, i: usize) -> Vec<(String, Entry)> {
    let mut files = Vec::new();
    for f in 0..rng.index(4) {
        let mut body = vec![0u8; 1 + rng.index(2048)];
        rng.fill(&mut body);
        let path = if f == 2 {
            format!("sub/f{f}")
        } else {
            format!("f{f}")
        };
        files.push((path, Entry::File(body)));
    }
    if !files.is_empty() {
        match i % 5 {
            1 => files.push(("empty".into(), Entry::File(Vec::new()))),
            2 => files.push(("current".into(), Entry::Symlink("f0"))),
            3 => files.push(("f0.link".into(), Entry::HardLink("f0"))),
            _ => {}
        }
    }
    files
}

impl VolumePlan {
    /// `directory.Size` of `_data`.
    fn size(&self) -> u64 {
        self.files
            .iter()
            .map(|(_, e)| match e {
                Entry::File(b) => b.len() as u64,
                Entry::Symlink(t) => t.len() as u64,
                Entry::HardLink(_) => 0,
            })
            .sum()
    }

    /// The volume store's record (`volumeMetadata`, Go field order).
    fn record(&self, engine_id: bool) -> String {
        let mut s = String::from("{\"Name\":");
        go_str(&mut s, &self.name);
        s.push_str(",\"Driver\":\"local\",\"Labels\":");
        let map = |s: &mut String, m: &BTreeMap<String, String>| go_map(s, m);
        match &self.kind {
            Kind::Created(labels) => {
                map(&mut s, labels);
                s.push_str(",\"Options\":{}");
            }
            Kind::ByMount => s.push_str("null,\"Options\":null"),
            Kind::Anonymous => {
                if engine_id {
                    s.push_str("{\"com.docker.volume.anonymous\":\"\"}");
                } else {
                    s.push_str("null");
                }
                s.push_str(",\"Options\":null");
            }
            Kind::Tmpfs => s.push_str(
                "{},\"Options\":{\"device\":\"tmpfs\",\"o\":\"size=1m\",\"type\":\"tmpfs\"}",
            ),
        }
        s.push('}');
        s
    }
}

pub(super) fn write(ctx: &Ctx, _plan: &Plan, vp: &VolPlan) -> io::Result<Vec<SynthVolume>> {
    if vp.volumes.is_empty() {
        return Ok(Vec::new());
    }
    let docker = ctx.paths.docker();
    ctx.dir(&docker.volumes(), 0o701)?;
    let mut tree = Tree::new();
    let bucket = tree.bucket("volumes");
    let mut out = Vec::with_capacity(vp.volumes.len());
    for v in &vp.volumes {
        ctx.dir(&docker.volume_dir(&v.name), 0o701)?;
        let data = docker.volume_data(&v.name);
        ctx.dir(&data, 0o755)?;
        if v.kind == Kind::Tmpfs {
            ctx.file(&docker.volume_opts(&v.name), TMPFS_OPTS.as_bytes(), 0o600)?;
        }
        for (path, e) in &v.files {
            let p = data.join(path);
            if let Some(parent) = p.parent().filter(|d| !d.exists()) {
                ctx.dir(parent, 0o755)?;
            }
            match e {
                Entry::File(b) => ctx.file(&p, b, 0o644)?,
                Entry::Symlink(t) => std::os::unix::fs::symlink(t, &p)?,
                Entry::HardLink(t) => std::fs::hard_link(data.join(t), &p)?,
            }
        }
        bucket.put(v.name.as_str(), v.record(vp.engine_id));
        out.push(SynthVolume {
            name: v.name.clone(),
            anonymous: v.kind == Kind::Anonymous,
            options: v.kind == Kind::Tmpfs,
            links: v.links,
            size: v.size(),
        });
    }
    let opts = Options {
        txid: 2 + vp.volumes.len() as u64,
        ..Options::default()
    };
    let db = image(&tree, &opts).map_err(io::Error::other)?;
    ctx.file(&docker.volume_db(), &db, 0o600)?;
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::super::SynthSpec;
    use super::super::testutil::make_root;
    use std::collections::BTreeMap;

    /// dockgc reads the volumes as the generator wrote them: names,
    /// anonymous or named, options (left out of df), links and sizes.
    #[test]
    fn dockgc_reads_the_generated_volumes() {
        let mut spec = SynthSpec::scale(30, 80);
        spec.containers = 6;
        spec.volumes = 60;
        let (_t, root, r) = make_root(&spec);
        assert_eq!(r.volume_list.len(), 60);
        assert!(r.volume_list.iter().any(|v| v.anonymous && v.links > 0));
        assert!(r.volume_list.iter().any(|v| v.anonymous && v.links == 0));
        assert!(r.volume_list.iter().any(|v| !v.anonymous && v.links > 1));
        assert!(r.volume_list.iter().any(|v| v.options));
        let snap = crate::store::load(&root).unwrap();
        assert!(snap.anomalies.is_empty(), "{:#?}", snap.anomalies);
        let g = crate::graph::Graph::build(&snap);
        let u = crate::usage::compute(&g, &crate::usage::Options { shared_size: None });
        let got: BTreeMap<&str, _> = u.volumes.iter().map(|v| (v.name.as_str(), v)).collect();
        let want: Vec<_> = r.volume_list.iter().filter(|v| !v.options).collect();
        assert_eq!(got.len(), want.len());
        for w in want {
            let v = got[w.name.as_str()];
            assert_eq!(v.links, w.links as u64, "{} links", w.name);
            assert_eq!(v.size, Some(w.size), "{} size", w.name);
            assert_eq!(v.anonymous, w.anonymous, "{} anonymous", w.name);
        }
    }
}
