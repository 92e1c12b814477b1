//! The daemon's own lists of images and containers, and where they
//! disagree with a snapshot read from disk. A plan made from disk on a live
//! host leaves alone whatever the two disagree on, with the reason: the
//! daemon may know something the files do not show yet (a container created
//! a moment ago), or the files something the daemon ignores.

use super::{Engine, EngineError};
use crate::ids::{ContainerId, ImageId};
use crate::plan::Disagreement;
use crate::store::Snapshot;
use std::collections::{BTreeMap, BTreeSet};

#[derive(Debug, Clone, Default)]
pub struct View {
    pub images: BTreeMap<ImageId, ApiImage>,
    pub containers: BTreeMap<ContainerId, ApiContainer>,
}

#[derive(Debug, Clone, Default)]
pub struct ApiImage {
    /// `RepoTags` and `RepoDigests`, without the `<none>` placeholders.
    pub refs: BTreeSet<String>,
    pub parent: Option<ImageId>,
    /// Unix seconds.
    pub created: i64,
    pub labels: BTreeMap<String, String>,
    /// `Size`, as the daemon computes it.
    pub size: u64,
}

#[derive(Debug, Clone, Default)]
pub struct ApiContainer {
    /// The image ID it runs (`ImageID`).
    pub image: Option<ImageId>,
    /// `State`: created, running, paused, restarting, removing, exited, dead.
    pub state: String,
    /// Without the leading `/`.
    pub name: String,
    pub labels: BTreeMap<String, String>,
    /// Unix seconds.
    pub created: i64,
    /// Names of the volumes it mounts.
    pub volumes: Vec<String>,
}

impl ApiContainer {
    /// Running, paused or restarting (or being removed): never a candidate.
    pub fn is_active(&self) -> bool {
        matches!(
            self.state.as_str(),
            "running" | "paused" | "restarting" | "removing"
        )
    }
}

/// Placeholders the daemon lists for images without tags or digests.
fn real_ref(r: &str) -> bool {
    r != "<none>:<none>" && r != "<none>@<none>"
}

impl View {
    /// `GET /images/json?all=1` and `GET /containers/json?all=1`.
    pub fn read(e: &Engine) -> Result<View, EngineError> {
        let mut v = View::default();
        for i in e.images()? {
            let Ok(id) = ImageId::parse(&i.id) else {
                continue;
            };
            v.images.insert(
                id,
                ApiImage {
                    refs: i
                        .repo_tags
                        .iter()
                        .chain(&i.repo_digests)
                        .filter(|r| real_ref(r))
                        .cloned()
                        .collect(),
                    parent: ImageId::parse(&i.parent_id).ok(),
                    created: i.created,
                    labels: i.labels.into_iter().collect(),
                    size: u64::try_from(i.size).unwrap_or(0),
                },
            );
        }
        for c in e.containers()? {
            let Some(id) = c.id.as_deref().and_then(ContainerId::parse) else {
                continue;
            };
            let name = c
                .names
                .iter()
                .flatten()
                .next()
                .map(|n| n.trim_start_matches('/').to_string())
                .unwrap_or_default();
            v.containers.insert(
                id,
                ApiContainer {
                    image: c.image_id.as_deref().and_then(|i| ImageId::parse(i).ok()),
                    state: c.state.map(|s| s.to_string()).unwrap_or_default(),
                    name,
                    labels: c.labels.unwrap_or_default().into_iter().collect(),
                    created: c.created.unwrap_or(0),
                    volumes: c
                        .mounts
                        .iter()
                        .flatten()
                        .filter(|m| {
                            m.typ
                                .is_some_and(|t| t == bollard::models::MountPointTypeEnum::VOLUME)
                        })
                        .filter_map(|m| m.name.clone())
                        .collect(),
                },
            );
        }
        Ok(v)
    }

    /// The images any container uses, by the daemon's account.
    pub fn images_in_use(&self) -> BTreeMap<ImageId, &ApiContainer> {
        self.containers
            .values()
            .filter_map(|c| c.image.map(|i| (i, c)))
            .collect()
    }
}

/// Where the snapshot read from disk and the daemon disagree: the images
/// and containers to leave alone, with the reason for each.
#[derive(Debug, Default)]
pub struct Disagreements {
    pub images: BTreeMap<ImageId, String>,
    pub containers: BTreeMap<ContainerId, String>,
}

impl Disagreements {
    pub fn is_empty(&self) -> bool {
        self.images.is_empty() && self.containers.is_empty()
    }

    /// For the plan's reader.
    pub fn list(&self) -> Vec<Disagreement> {
        let images = self.images.iter().map(|(id, why)| Disagreement {
            kind: "image".into(),
            id: id.to_string(),
            reason: why.clone(),
        });
        let containers = self.containers.iter().map(|(id, why)| Disagreement {
            kind: "container".into(),
            id: id.0.clone(),
            reason: why.clone(),
        });
        images.chain(containers).collect()
    }
}

/// `snap`'s refs as the daemon lists them: familiar names (`busybox:1`),
/// tags and digests together.
fn disk_refs(snap: &Snapshot, id: &ImageId) -> BTreeSet<String> {
    snap.refs
        .iter()
        .filter(|r| r.image == *id)
        .map(|r| r.reference.clone())
        .collect()
}

pub fn crosscheck(snap: &Snapshot, v: &View) -> Disagreements {
    let mut d = Disagreements::default();
    for id in snap.images.keys() {
        let Some(api) = v.images.get(id) else {
            d.images.insert(
                *id,
                "the daemon does not list it (it may be loading, or the daemon ignores it)".into(),
            );
            continue;
        };
        let disk = disk_refs(snap, id);
        if disk != api.refs {
            d.images.insert(
                *id,
                format!(
                    "its references differ: on disk [{}], the daemon [{}]",
                    disk.into_iter().collect::<Vec<_>>().join(", "),
                    api.refs.iter().cloned().collect::<Vec<_>>().join(", ")
                ),
            );
        }
    }
    for (id, c) in &v.containers {
        match snap.containers.get(id) {
            None => {
                d.containers.insert(
                    id.clone(),
                    "the root does not show it yet (created a moment ago?)".into(),
                );
                if let Some(img) = c.image {
                    d.images.entry(img).or_insert_with(|| {
                        format!(
                            "container {} uses it, which the root does not show yet",
                            c.name
                        )
                    });
                }
            }
            Some(disk) => {
                if disk.image != c.image {
                    d.containers.insert(
                        id.clone(),
                        "the root and the daemon name different images for it".into(),
                    );
                    for img in disk.image.iter().chain(c.image.iter()) {
                        d.images.entry(*img).or_insert_with(|| {
                            format!("container {} names it on one side only", c.name)
                        });
                    }
                }
                if c.is_active() && !disk.state.is_active() {
                    d.containers
                        .insert(id.clone(), format!("the daemon says it is {}", c.state));
                }
            }
        }
    }
    for id in snap.containers.keys() {
        if !v.containers.contains_key(id) {
            d.containers.insert(
                id.clone(),
                "the daemon does not list it (removed a moment ago, or not loaded)".into(),
            );
        }
    }
    d
}
