//! Where things live in a Docker data root, whatever its image store:
//! containers, volumes, BuildKit, the engine ID. The graphdriver's own
//! layout is [`super::graphdriver::Paths`]. No other module joins these
//! names itself (moby: `daemon/daemon.go` `NewDaemon` wires the same paths).

use crate::ids::ContainerId;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
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

    /// `volumes/<name>`: a `local` volume; every directory under `volumes/`
    /// is one (moby `daemon/volume/local/local.go` `New`).
    pub fn volume_dir(&self, name: &str) -> PathBuf {
        self.volumes().join(name)
    }

    /// `volumes/<name>/_data`: the volume's data, its mount point when it has
    /// mount options (`local.go` `volumeDataPathName`).
    pub fn volume_data(&self, name: &str) -> PathBuf {
        self.volume_dir(name).join("_data")
    }

    /// `volumes/<name>/opts.json`: the local driver's own copy of a volume's
    /// mount options (`local.go` `Create`, `saveOpts`).
    pub fn volume_opts(&self, name: &str) -> PathBuf {
        self.volume_dir(name).join("opts.json")
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

    /// The json-file log driver's file, `<id>-json.log` (the `local` driver
    /// writes `local-logs/`: [`is_container_log`]).
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

/// The `local` log driver's directory in a container's directory (moby
/// `daemon/container/container.go` `StartLogger`: `local-logs/container.log`
/// and its rotations, compressed by default).
const LOCAL_LOGS: &str = "local-logs";

/// Whether `name`, an entry of a container's directory, is what a log driver
/// writes there (moby `daemon/container/container.go` `StartLogger`):
/// json-file's `<id>-json.log` and its rotations `.N` and `.N.gz`
/// (`daemon/logger/loggerutils/logfile.go`), the `local` driver's
/// `local-logs/` directory, and the cache that dual logging keeps for
/// drivers that cannot be read back, `container-cached.log` and its
/// rotations (`daemon/logger/loggerutils/cache`). Drivers that send logs
/// elsewhere (`none`, `syslog`, `journald`, ...) write nothing else here.
pub fn is_container_log(name: &OsStr) -> bool {
    let n = name.as_bytes();
    n == LOCAL_LOGS.as_bytes()
        || n.starts_with(b"container-cached.log")
        || n.windows(9).any(|w| w == b"-json.log")
}

/// Whether the log entry `name` is a directory of log files (`local-logs`)
/// rather than a log file.
pub fn is_log_dir(name: &OsStr) -> bool {
    name.as_bytes() == LOCAL_LOGS.as_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_names_of_every_driver_that_writes_under_the_root() {
        let id = "a".repeat(64);
        for yes in [
            format!("{id}-json.log"),
            format!("{id}-json.log.1"),
            format!("{id}-json.log.2.gz"),
            "local-logs".to_string(),
            "container-cached.log".to_string(),
            "container-cached.log.1.gz".to_string(),
        ] {
            assert!(is_container_log(OsStr::new(&yes)), "{yes}");
        }
        for no in [
            "config.v2.json",
            "hostconfig.json",
            "hostname",
            "mounts",
            "checkpoints",
            "resolv.conf",
        ] {
            assert!(!is_container_log(OsStr::new(no)), "{no}");
        }
        assert!(is_log_dir(OsStr::new("local-logs")));
        assert!(!is_log_dir(OsStr::new("container-cached.log")));
    }
}
