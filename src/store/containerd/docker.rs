//! The Docker side of a Docker root in containerd mode: its containers
//! (`containers/<id>/config.v2.json`), whose RW layers are snapshots named
//! by the container ID in namespace `moby` (moby `daemon/containerd/
//! image_snapshot.go` `createLayer`), and which count toward an image
//! through `ImageManifest` (`daemon/containerd/image_list.go`).

use crate::ids::BlobDigest;
use crate::store::fsread::{list_dir_opt, read_opt};
use crate::store::paths::DockerRoot;
use crate::store::{Anomaly, AnomalyKind};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize)]
pub struct DockerContainer {
    pub id: String,
    pub name: String,
    /// `Image`: the image ID, which in containerd mode is the target digest.
    pub image: Option<String>,
    /// `Config.Image`: what the user asked for.
    pub image_ref: Option<String>,
    /// `ImageManifest.digest`: the platform manifest the container runs.
    pub image_manifest: Option<BlobDigest>,
    /// `Driver`: the snapshotter (`overlayfs`).
    pub driver: Option<String>,
    pub state: &'static str,
    pub active: bool,
    pub created: Option<String>,
    /// The volumes its mount points hold a reference on, by name.
    pub volumes: Vec<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Raw {
    #[serde(rename = "ID")]
    id: Option<String>,
    name: Option<String>,
    image: Option<String>,
    image_manifest: Option<RawDesc>,
    driver: Option<String>,
    created: Option<String>,
    config: Option<RawConfig>,
    #[serde(default)]
    state: RawState,
    mount_points: Option<std::collections::BTreeMap<String, RawMount>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct RawMount {
    name: Option<String>,
    driver: Option<String>,
}

#[derive(Deserialize)]
struct RawDesc {
    digest: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct RawConfig {
    image: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
struct RawState {
    running: bool,
    paused: bool,
    restarting: bool,
    dead: bool,
    started_at: Option<String>,
}

pub fn read(root: &DockerRoot) -> (Vec<DockerContainer>, Vec<Anomaly>) {
    let mut out = Vec::new();
    let mut anomalies = Vec::new();
    let names = match list_dir_opt(&root.containers()) {
        Ok(l) => l.names,
        Err(e) => {
            anomalies.push(Anomaly {
                kind: AnomalyKind::Unreadable,
                path: root.containers(),
                message: format!("cannot list containers: {e}"),
            });
            return (out, anomalies);
        }
    };
    for n in names {
        let path = root.container(&n).join("config.v2.json");
        let raw: Raw = match read_opt(&path) {
            Ok(Some(b)) => match serde_json::from_slice(&b) {
                Ok(r) => r,
                Err(e) => {
                    anomalies.push(Anomaly {
                        kind: AnomalyKind::Container,
                        path,
                        message: format!("malformed: {e}"),
                    });
                    continue;
                }
            },
            Ok(None) => continue,
            Err(e) => {
                anomalies.push(Anomaly {
                    kind: AnomalyKind::Container,
                    path,
                    message: e,
                });
                continue;
            }
        };
        let s = &raw.state;
        let state = if s.running {
            if s.paused {
                "paused"
            } else if s.restarting {
                "restarting"
            } else {
                "running"
            }
        } else if s.dead {
            "dead"
        } else if s
            .started_at
            .as_deref()
            .is_some_and(|t| !t.starts_with("0001-01-01"))
        {
            "exited"
        } else {
            "created"
        };
        out.push(DockerContainer {
            id: raw.id.unwrap_or(n),
            name: raw
                .name
                .map(|n| n.trim_start_matches('/').to_string())
                .unwrap_or_default(),
            image: raw.image,
            image_ref: raw.config.and_then(|c| c.image),
            image_manifest: raw
                .image_manifest
                .and_then(|m| m.digest)
                .and_then(|d| BlobDigest::parse(&d).ok()),
            driver: raw.driver,
            state,
            active: s.running || s.paused || s.restarting,
            created: raw.created,
            volumes: volume_refs(raw.mount_points.unwrap_or_default()),
        });
    }
    (out, anomalies)
}

/// A mount point with a driver holds a reference on the volume of its name;
/// bind mounts have none (moby `daemon/mounts.go` `prepareMountPoints`), as
/// for graphdriver roots.
fn volume_refs(mounts: std::collections::BTreeMap<String, RawMount>) -> Vec<String> {
    let mut v: Vec<String> = mounts
        .into_values()
        .filter(|m| m.driver.as_deref().is_some_and(|d| !d.is_empty()))
        .filter_map(|m| m.name.filter(|n| !n.is_empty()))
        .collect();
    v.sort();
    v.dedup();
    v
}
