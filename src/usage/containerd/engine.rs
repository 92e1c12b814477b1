//! Docker Engine 29's image sizes on containerd's objects, per engine
//! version (moby `daemon/containerd/image_list.go` `Images`,
//! `multiPlatformSummary`, `walkReachableImageManifests`,
//! `computeSharedSize`; `image_manifest.go` `SnapshotUsage`;
//! `daemon/containerd/service.go` `ImageDiskUsage`), and `ctr images ls`'s
//! SIZE (`core/images/image.go` `Image.Size`).

use super::*;
use crate::store::containerd::{Doc, ImageRec, Namespace, State, manifest};

/// Docker 29 names untagged images `moby-dangling@<digest>`
/// (`daemon/containerd/soft_delete.go`).
pub const DANGLING_PREFIX: &str = "moby-dangling@";

/// An Engine 29 release, for the rules that changed between them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct EngineVersion {
    pub major: u32,
    pub minor: u32,
}

impl EngineVersion {
    /// `29.5`, `29.5.1`, `v29.5.0`, `docker-v29.5.0`.
    pub fn parse(s: &str) -> Result<EngineVersion, String> {
        let t = s
            .trim()
            .trim_start_matches("docker-")
            .trim_start_matches('v');
        let mut it = t.split(['.', '-', '+']);
        let major: u32 = it
            .next()
            .and_then(|m| m.parse().ok())
            .ok_or_else(|| format!("{s:?} is not an engine version like 29.5"))?;
        let minor: u32 = it.next().and_then(|m| m.parse().ok()).unwrap_or(0);
        if major != 29 {
            return Err(format!(
                "engine {major}.{minor}: dockgc knows the containerd store's df rules of \
                 Engine 29 (29.0 and later)"
            ));
        }
        Ok(EngineVersion { major, minor })
    }
}

/// The rules of one engine version (doc'd per field with the moby commit
/// that changed it).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Rules {
    /// The name reports show: `29.6+`, `29.5`, `29.4`, `29.0-29.3`.
    pub name: &'static str,
    /// 29.5+: SharedSize also counts content shared between images
    /// (moby commit 9f195211).
    pub shared_content: bool,
    /// 29.6+: Images TotalSize counts the chains of unpacked image
    /// manifests only, not every snapshot of the namespace (moby PR #52901).
    pub total_chains_only: bool,
    /// 29.4+: Active counts images with containers, Reclaimable sums the
    /// unique sizes of images without (moby commit 46dba49e).
    pub active_with_containers: bool,
    /// Whether the version was given (`--engine-version`) or the newest assumed.
    pub chosen: bool,
}

impl Rules {
    pub fn for_version(v: Option<EngineVersion>) -> Rules {
        let minor = v.map_or(u32::MAX, |v| v.minor);
        Rules {
            name: match minor {
                6.. => "29.6+",
                5 => "29.5",
                4 => "29.4",
                _ => "29.0-29.3",
            },
            shared_content: minor >= 5,
            total_chains_only: minor >= 6,
            active_with_containers: minor >= 4,
            chosen: v.is_some(),
        }
    }
}

/// One manifest visited for an image group.
struct Visited {
    digest: BlobDigest,
    content: u64,
    unpacked: u64,
    /// Chain IDs of its config (empty for pseudo manifests).
    chains: Vec<ChainId>,
    /// Content digests counted.
    digests: Vec<(BlobDigest, u64)>,
    platform: Option<manifest::Platform>,
    host: bool,
    pseudo: bool,
    created: Option<String>,
}

fn visit_manifest(
    n: &Ns<'_>,
    d: &manifest::Descriptor,
    host: &manifest::Platform,
    out: &mut Vec<Visited>,
) {
    let Some(md) = d.digest else { return };
    // A manifest without a record drops its subtree (`presentChildrenHandler`).
    if !n.has_record(&md) {
        return;
    }
    let size = u64::try_from(d.size).unwrap_or(0);
    let pseudo = manifest::is_pseudo(d);
    let mut v = Visited {
        digest: md,
        content: size,
        unpacked: 0,
        chains: Vec::new(),
        digests: vec![(md, size)],
        platform: d.platform.clone(),
        host: manifest::matches_host(d.platform.as_ref(), host),
        pseudo,
        created: None,
    };
    if let Some(Doc::Manifest { config, layers }) = n.s.doc(&md) {
        for c in std::iter::once(config).chain(layers) {
            if let Some(cd) = c.digest
                && n.has_record(&cd)
            {
                let sz = u64::try_from(c.size).unwrap_or(0);
                v.content += sz;
                v.digests.push((cd, sz));
            }
        }
        if !pseudo
            && let Some(cd) = config.digest
            && let Some(Doc::Config(cfg)) = n.s.doc(&cd)
        {
            v.chains = ChainId::chain(&cfg.diff_ids);
            v.created = cfg.created.clone();
            if v.platform.is_none() {
                v.platform = cfg.os.as_ref().map(|os| manifest::Platform {
                    os: os.clone(),
                    architecture: cfg.architecture.clone().unwrap_or_default(),
                    variant: cfg.variant.clone(),
                });
                v.host = manifest::matches_host(v.platform.as_ref(), host);
            }
            // One missing snapshot makes the whole chain 0
            // (`image_snapshot.go` `calculateSnapshotTotalUsage`).
            let mut total = 0u64;
            for c in &v.chains {
                match n.usage(&c.to_string()) {
                    Some(u) => total += u.size,
                    None => {
                        total = 0;
                        break;
                    }
                }
            }
            v.unpacked = total;
        }
    }
    out.push(v);
}

/// Every reachable platform manifest under `target` (`walkReachableImageManifests`).
fn visit(n: &Ns<'_>, target: &ImageRec, host: &manifest::Platform) -> Vec<Visited> {
    let mut out = Vec::new();
    let Some(td) = target.target.digest else {
        return out;
    };
    let desc = manifest::Descriptor {
        media_type: target.target.media_type.clone(),
        digest: Some(td),
        raw_digest: target.target.raw_digest.clone(),
        size: target.target.size,
        platform: None,
        annotations: BTreeMap::new(),
    };
    let mut stack = vec![(desc, 0usize)];
    while let Some((d, depth)) = stack.pop() {
        let Some(dd) = d.digest else { continue };
        match n.s.doc(&dd) {
            Some(Doc::Index { manifests }) if depth < 4 && n.has_record(&dd) => {
                for m in manifests.iter().rev() {
                    stack.push((m.clone(), depth + 1));
                }
            }
            Some(Doc::Index { .. }) => {}
            _ if manifest::is_index(&d.media_type) => {}
            _ => visit_manifest(n, &d, host, &mut out),
        }
    }
    out
}

pub(super) struct Group<'s> {
    target: BlobDigest,
    recs: Vec<&'s ImageRec>,
    visited: Vec<Visited>,
}

fn groups(ns: &Namespace) -> Vec<(BlobDigest, Vec<&ImageRec>)> {
    let mut by: BTreeMap<BlobDigest, Vec<&ImageRec>> = BTreeMap::new();
    for img in ns.images.values() {
        if let Some(t) = img.target.digest {
            by.entry(t).or_default().push(img);
        }
    }
    by.into_iter()
        .map(|(t, mut recs)| {
            // A dangling record counts only when no named record has this target.
            if recs.iter().any(|r| !r.name.starts_with(DANGLING_PREFIX)) {
                recs.retain(|r| !r.name.starts_with(DANGLING_PREFIX));
            }
            (t, recs)
        })
        .collect()
}

fn platform_word(p: &manifest::Platform) -> String {
    match &p.variant {
        Some(v) => format!("{}/{}/{v}", p.os, p.architecture),
        None => format!("{}/{}", p.os, p.architecture),
    }
}

/// Every image group of a namespace with the manifests it reaches.
pub(super) fn visited_groups<'s>(n: &Ns<'s>, host: &manifest::Platform) -> Vec<Group<'s>> {
    groups(n.ns)
        .into_iter()
        .map(|(target, recs)| {
            let visited = visit(n, recs[0], host);
            Group {
                target,
                recs,
                visited,
            }
        })
        .collect()
}

/// RepoTags and RepoDigests of an image's names: `moby-dangling@` names
/// and bare digests (the CRI's config-digest name) are neither.
fn repo_names(names: &[String]) -> (Vec<String>, Vec<String>) {
    let (mut repo_tags, mut repo_digests) = (Vec::new(), Vec::new());
    for x in names {
        if x.starts_with(DANGLING_PREFIX) {
            continue;
        }
        if x.contains('@') {
            repo_digests.push(x.clone());
        } else if !x.starts_with("sha256:") {
            repo_tags.push(x.clone());
        }
    }
    (repo_tags, repo_digests)
}

/// The images of one namespace with Docker 29's sizes.
pub(super) fn images(
    n: &Ns<'_>,
    groups: &[Group<'_>],
    rules: &Rules,
    containers: &[ContainerUsage],
) -> Vec<ImageUsage> {
    let host = manifest::host_platform();
    // computeSharedSize: chain IDs per occurrence, content digests once per group.
    let mut chain_count: HashMap<ChainId, u32> = HashMap::new();
    let mut digest_count: HashMap<BlobDigest, u32> = HashMap::new();
    for g in groups {
        let mut mine = BTreeSet::new();
        for v in &g.visited {
            for c in &v.chains {
                *chain_count.entry(*c).or_default() += 1;
            }
            for (d, _) in &v.digests {
                mine.insert(*d);
            }
        }
        for d in mine {
            *digest_count.entry(d).or_default() += 1;
        }
    }
    groups
        .iter()
        .map(|g| {
            let size: u64 = g.visited.iter().map(|v| v.content + v.unpacked).sum();
            let mut shared: u64 = 0;
            let mut seen_digest = BTreeSet::new();
            for v in &g.visited {
                for c in &v.chains {
                    if chain_count.get(c).copied().unwrap_or(0) > 1 {
                        shared += n.usage(&c.to_string()).map_or(0, |u| u.size);
                    }
                }
                if rules.shared_content {
                    for (d, sz) in &v.digests {
                        if digest_count.get(d).copied().unwrap_or(0) > 1 && seen_digest.insert(*d) {
                            shared += sz;
                        }
                    }
                }
            }
            let best = g
                .visited
                .iter()
                .find(|v| v.host)
                .or_else(|| g.visited.iter().find(|v| !v.pseudo));
            let manifests: BTreeSet<BlobDigest> = g.visited.iter().map(|v| v.digest).collect();
            let names: Vec<String> = g.recs.iter().map(|r| r.name.clone()).collect();
            let dangling = names.iter().all(|x| x.starts_with(DANGLING_PREFIX));
            let containers_n = if g.visited.iter().any(|v| v.host) {
                containers
                    .iter()
                    .filter(|c| {
                        c.image.as_deref().is_some_and(|i| {
                            names.iter().any(|x| x == i)
                                || i == g.target.to_string()
                                || BlobDigest::parse(i).is_ok_and(|d| manifests.contains(&d))
                        })
                    })
                    .count() as i64
            } else {
                -1
            };
            let (repo_tags, repo_digests) = repo_names(&names);
            let created = best.and_then(|b| b.created.clone());
            let blob_size = ctr_size(n.s, g.recs[0], &host);
            ImageUsage {
                blob_size,
                namespace: n.ns.name.clone(),
                id: g.target,
                media_type: g.recs[0].target.media_type.clone(),
                names,
                repo_tags,
                repo_digests,
                dangling,
                created_unix: created
                    .as_deref()
                    .and_then(|c| c.parse::<jiff::Timestamp>().ok())
                    .map(|t| t.as_second()),
                created,
                size,
                shared_size: shared,
                unique_size: size.saturating_sub(shared),
                containers: containers_n,
                platforms: g
                    .visited
                    .iter()
                    .filter(|v| !v.pseudo)
                    .filter_map(|v| v.platform.as_ref().map(platform_word))
                    .collect(),
                unpacked: best.is_some_and(|b| {
                    b.chains
                        .last()
                        .is_some_and(|top| n.usage(&top.to_string()).is_some())
                }),
            }
        })
        .collect()
}

/// `ctr images ls` SIZE: a walk from the target that keeps the host's
/// platform and one manifest (`LimitManifests(FilterPlatforms(...), 1)`),
/// adding every descriptor's size; any unreadable document fails it.
pub(super) fn ctr_size(s: &State, img: &ImageRec, host: &manifest::Platform) -> Option<u64> {
    let mut total = u64::try_from(img.target.size).ok()?;
    let mut d = img.target.digest?;
    for _ in 0..4 {
        match s.doc(&d)? {
            Doc::Index { manifests } => {
                let m = manifests
                    .iter()
                    .find(|m| manifest::matches_host(m.platform.as_ref(), host))?;
                total += u64::try_from(m.size).ok()?;
                d = m.digest?;
            }
            Doc::Manifest { config, layers } => {
                for x in std::iter::once(config).chain(layers) {
                    total += u64::try_from(x.size).ok()?;
                }
                return Some(total);
            }
            _ => return None,
        }
    }
    None
}

/// Images TotalSize (`ImageDiskUsage`): chains of unpacked manifests (29.6+)
/// or every snapshot of the namespace (before), plus the present blobs
/// reachable from each target, index included, each digest once.
pub(super) fn images_total(n: &Ns<'_>, groups: &[Group<'_>], rules: &Rules) -> u64 {
    let mut chains: BTreeSet<ChainId> = BTreeSet::new();
    let mut digests: BTreeMap<BlobDigest, u64> = BTreeMap::new();
    for g in groups {
        let (t, rec) = (g.target, g.recs[0]);
        if n.has_record(&t) {
            digests.insert(t, u64::try_from(rec.target.size).unwrap_or(0));
        }
        for v in &g.visited {
            for (d, sz) in &v.digests {
                digests.insert(*d, *sz);
            }
            if v.unpacked > 0
                || v.chains
                    .last()
                    .is_some_and(|c| n.usage(&c.to_string()).is_some())
            {
                chains.extend(v.chains.iter().copied());
            }
        }
    }
    let snaps: u64 = if rules.total_chains_only {
        chains
            .iter()
            .filter_map(|c| n.usage(&c.to_string()))
            .map(|u| u.size)
            .sum()
    } else {
        n.ns.snapshots
            .get(n.snapshotter())
            .map(|recs| {
                recs.keys()
                    .filter_map(|k| n.usage(&k.0))
                    .map(|u| u.size)
                    .sum()
            })
            .unwrap_or(0)
    };
    snaps + digests.values().sum::<u64>()
}
