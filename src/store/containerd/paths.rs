//! Where things live in a containerd root. Each plugin keeps its data in
//! `<root>/<plugin type>.<plugin id>` (containerd `cmd/containerd/server`
//! `server.New`, the plugin `InitContext.Root`); no other module joins these
//! names itself.

use crate::ids::BlobDigest;
use std::path::{Path, PathBuf};

/// The content store plugin (`plugins/content/local/store.go`).
const CONTENT: &str = "io.containerd.content.v1.content";
/// The metadata plugin (`plugins/metadata/plugin.go`, 1.6 `services/server/server.go`).
const METADATA: &str = "io.containerd.metadata.v1.bolt";
/// The mount manager's bbolt file (2.2+, `plugins/mount/manager.go`).
const MOUNT_MANAGER: &str = "io.containerd.mount-manager.v1.bolt";
/// Every snapshotter plugin's directory starts with this.
pub const SNAPSHOTTER_PREFIX: &str = "io.containerd.snapshotter.v1.";

/// The default root of a system containerd (`defaults.DefaultRootDir`).
pub const SYSTEM_ROOT: &str = "/var/lib/containerd";

/// Files of an ingest directory (`plugins/content/local/writer.go`, `store.go` `writer`).
pub const INGEST_REF: &str = "ref";
pub const INGEST_DATA: &str = "data";
pub const INGEST_STARTED: &str = "startedat";
pub const INGEST_UPDATED: &str = "updatedat";
pub const INGEST_TOTAL: &str = "total";

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Paths {
    root: PathBuf,
}

impl Paths {
    pub fn new(root: &Path) -> Paths {
        Paths {
            root: root.to_path_buf(),
        }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn content(&self) -> PathBuf {
        self.root.join(CONTENT)
    }

    /// `blobs/`: one directory per digest algorithm.
    pub fn blobs(&self) -> PathBuf {
        self.content().join("blobs")
    }

    /// `blobs/sha256/`.
    pub fn sha256_blobs(&self) -> PathBuf {
        self.blobs().join("sha256")
    }

    /// A blob's file (`store.go` `blobPath`).
    pub fn blob(&self, d: &BlobDigest) -> PathBuf {
        self.sha256_blobs().join(d.hex())
    }

    /// `ingest/`: one directory per unfinished write, named by sha256 of its ref.
    pub fn ingests(&self) -> PathBuf {
        self.content().join("ingest")
    }

    pub fn ingest(&self, dir: &str) -> PathBuf {
        self.ingests().join(dir)
    }

    /// One of the `INGEST_*` files of an ingest directory.
    pub fn ingest_file(&self, dir: &str, file: &str) -> PathBuf {
        self.ingest(dir).join(file)
    }

    pub fn metadata_dir(&self) -> PathBuf {
        self.root.join(METADATA)
    }

    /// `meta.db`: namespaces, images, blob and snapshot records, leases, containers.
    pub fn meta_db(&self) -> PathBuf {
        self.metadata_dir().join("meta.db")
    }

    pub fn mount_manager_db(&self) -> PathBuf {
        self.root.join(MOUNT_MANAGER).join("mounts.db")
    }

    /// A snapshotter's plugin directory (`io.containerd.snapshotter.v1.<name>`).
    pub fn snapshotter(&self, name: &str) -> PathBuf {
        self.root.join(format!("{SNAPSHOTTER_PREFIX}{name}"))
    }

    /// A snapshotter's metastore (`core/snapshots/storage/metastore.go` `NewMetaStore`).
    pub fn metastore(&self, name: &str) -> PathBuf {
        self.snapshotter(name).join("metadata.db")
    }

    /// `snapshots/`: one directory per backend snapshot id.
    pub fn snapshot_dirs(&self, name: &str) -> PathBuf {
        self.snapshotter(name).join("snapshots")
    }

    pub fn snapshot_dir(&self, name: &str, dir: &str) -> PathBuf {
        self.snapshot_dirs(name).join(dir)
    }

    /// The directory holding a snapshot's own files, the one `Usage` walks:
    /// `<id>/fs` for overlayfs (`overlay.go` `upperPath`), `<id>` itself for
    /// native (`native.go` `getSnapshotDir`) and other snapshotters.
    pub fn snapshot_data(&self, name: &str, dir: &str) -> PathBuf {
        let d = self.snapshot_dir(name, dir);
        if name == "overlayfs" { d.join("fs") } else { d }
    }

    /// `p` relative to the root (unchanged if it is not below it).
    pub fn rel<'p>(&self, p: &'p Path) -> &'p Path {
        p.strip_prefix(&self.root).unwrap_or(p)
    }
}

/// The containerd root that serves a Docker root in containerd mode: a
/// containerd that dockerd runs itself keeps it at `<docker root>/containerd/daemon`
/// (moby `cmd/dockerd/daemon.go` `initContainerd` starts it under
/// `<root>/containerd`, and `libcontainerd/supervisor/remote_daemon.go`
/// `Start` roots it in `daemon/` there); otherwise a system containerd
/// serves Docker from its own root.
pub fn for_docker_root(docker_root: &Path) -> PathBuf {
    let managed = crate::store::paths::DockerRoot::new(docker_root).managed_containerd_root();
    if Paths::new(&managed).meta_db().exists() {
        managed
    } else {
        PathBuf::from(SYSTEM_ROOT)
    }
}

/// Whether `dir` is itself a containerd root (it has a meta.db).
pub fn is_containerd_root(dir: &Path) -> bool {
    Paths::new(dir).meta_db().is_file()
}
