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
        self.container_dir(id).config()
    }

    /// The files of `containers/<id>/`.
    pub fn container_dir(&self, id: &ContainerId) -> ContainerDir {
        ContainerDir {
            dir: self.container(&id.0),
            id: id.0.clone(),
        }
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

/// One `containers/<id>/` directory: the files dockerd keeps per container
/// (moby `daemon/container/container.go` `ConfigPath`, `HostConfigPath`,
/// `CheckpointDir`, `StartLogger`; `daemon/container/container_unix.go`
/// `MountsResourcePath`; `daemon/container_operations_unix.go`
/// `setupPathsAndSandboxOptions` for hostname, hosts and resolv.conf).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerDir {
    dir: PathBuf,
    id: String,
}

impl ContainerDir {
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn config(&self) -> PathBuf {
        self.dir.join("config.v2.json")
    }

    pub fn hostconfig(&self) -> PathBuf {
        self.dir.join("hostconfig.json")
    }

    pub fn checkpoints(&self) -> PathBuf {
        self.dir.join("checkpoints")
    }

    /// `mounts/`: secrets, configs and shm mounts of a started container.
    pub fn mounts(&self) -> PathBuf {
        self.dir.join("mounts")
    }

    /// The json-file (and local) log driver's file, `<id>-json.log`.
    pub fn json_log(&self) -> PathBuf {
        self.dir.join(format!("{}-json.log", self.id))
    }

    pub fn hostname(&self) -> PathBuf {
        self.dir.join("hostname")
    }

    pub fn hosts(&self) -> PathBuf {
        self.dir.join("hosts")
    }

    pub fn resolv_conf(&self) -> PathBuf {
        self.dir.join("resolv.conf")
    }

    /// `resolv.conf.hash`: libnetwork's record of what it wrote, so a user's
    /// edit is kept.
    pub fn resolv_conf_hash(&self) -> PathBuf {
        self.dir.join("resolv.conf.hash")
    }
}
