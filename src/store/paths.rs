//! Where things live in a Docker data root, whatever its image store:
//! containers, volumes, BuildKit, the engine ID. The graphdriver's own
//! layout is [`super::graphdriver::Paths`]. No other module joins these
//! names itself (moby: `daemon/daemon.go` `NewDaemon` wires the same paths).

use crate::ids::ContainerId;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct DockerRoot {
    root: PathBuf,
}

impl DockerRoot {
    pub fn new(root: &Path) -> DockerRoot {
        DockerRoot {
            root: root.to_path_buf(),
        }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// `image/`: one `image/<driver>/` per graphdriver that ran here, and
    /// (containerd image store) `identity-cache.db`.
    pub fn image_root(&self) -> PathBuf {
        self.root.join("image")
    }

    /// `rootfs/overlayfs`: container mountpoints of the containerd image store.
    pub fn containerd_rootfs(&self) -> PathBuf {
        self.root.join("rootfs").join("overlayfs")
    }

    /// `containerd/daemon`: the root of a containerd that dockerd runs itself
    /// (containerd image store without a system containerd).
    pub fn managed_containerd_root(&self) -> PathBuf {
        self.root.join("containerd").join("daemon")
    }

    /// `engine-id`, written by Engine 23 and later.
    pub fn engine_id(&self) -> PathBuf {
        self.root.join("engine-id")
    }

    pub fn containers(&self) -> PathBuf {
        self.root.join("containers")
    }

    pub fn container(&self, id: &str) -> PathBuf {
        self.containers().join(id)
    }

    pub fn container_config(&self, id: &ContainerId) -> PathBuf {
        self.container(&id.0).join("config.v2.json")
    }

    pub fn buildkit(&self) -> PathBuf {
        self.root.join("buildkit")
    }

    pub fn volumes(&self) -> PathBuf {
        self.root.join("volumes")
    }

    /// `volumes/metadata.db`: the volume store's bbolt file, flock-held while dockerd runs.
    pub fn volume_db(&self) -> PathBuf {
        self.volumes().join("metadata.db")
    }

    /// `p` relative to the root (unchanged if it is not below it).
    pub fn rel<'p>(&self, p: &'p Path) -> &'p Path {
        p.strip_prefix(&self.root).unwrap_or(p)
    }
}
