//! The graphdriver layout of a data root (overlay2): `image/<driver>/`
//! (references, imagedb, layerdb, distribution) and the driver home
//! `<root>/<driver>/` (layer dirs and `l/` links). Every path dockgc reads or
//! changes in them is spelled here, once (moby: `daemon/daemon.go`
//! `NewDaemon`; `daemon/internal/layer/filestore.go`;
//! `daemon/graphdriver/overlay2/overlay.go`).

use crate::ids::{ChainId, ImageId};
use crate::store::paths::DockerRoot;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Paths {
    docker: DockerRoot,
    driver: String,
}

impl Paths {
    pub fn new(root: &Path, driver: &str) -> Paths {
        Paths {
            docker: DockerRoot::new(root),
            driver: driver.to_string(),
        }
    }

    pub fn root(&self) -> &Path {
        self.docker.root()
    }

    /// The Docker-level layout (containers, volumes, BuildKit) of this root.
    pub fn docker(&self) -> &DockerRoot {
        &self.docker
    }

    /// The graphdriver's name, e.g. `overlay2`.
    pub fn driver(&self) -> &str {
        &self.driver
    }

    // -- image/<driver>/ ------------------------------------------------

    pub fn image_dir(&self) -> PathBuf {
        self.root().join("image").join(&self.driver)
    }

    pub fn repositories_json(&self) -> PathBuf {
        self.image_dir().join("repositories.json")
    }

    pub fn imagedb(&self) -> PathBuf {
        self.image_dir().join("imagedb")
    }

    /// `imagedb/content/sha256`: one config per image, named by its sha256.
    /// The directories the metadata load lists (before any of their
    /// contents): the ones a concurrent disk walk can take its listings
    /// from.
    pub fn listed_by_load(&self) -> Vec<PathBuf> {
        vec![
            self.image_configs(),
            self.layers_dir(),
            self.layerdb_tmp(),
            self.mounts_dir(),
            self.home(),
            self.links_dir(),
            self.docker().containers(),
            self.docker().volumes(),
        ]
    }

    pub fn image_configs(&self) -> PathBuf {
        self.imagedb().join("content/sha256")
    }

    pub fn image_config(&self, id: &ImageId) -> PathBuf {
        self.image_configs().join(id.hex())
    }

    /// `imagedb/metadata/sha256`: `parent`, `lastUpdated`, `builtLocally` per image.
    pub fn image_metadata_dir(&self) -> PathBuf {
        self.imagedb().join("metadata/sha256")
    }

    pub fn image_metadata(&self, id: &ImageId) -> PathBuf {
        self.image_metadata_dir().join(id.hex())
    }

    /// `metadata/sha256/<id>/parent`: the image it was built on (moby
    /// `daemon/internal/image/store.go` `SetParent`).
    pub fn image_parent(&self, id: &ImageId) -> PathBuf {
        self.image_metadata(id).join("parent")
    }

    /// `metadata/sha256/<id>/lastUpdated`: when a tag last moved to it
    /// (moby `daemon/internal/image/store.go` `SetLastUpdated`).
    pub fn image_last_updated(&self, id: &ImageId) -> PathBuf {
        self.image_metadata(id).join("lastUpdated")
    }

    pub fn layerdb(&self) -> PathBuf {
        self.image_dir().join("layerdb")
    }

    /// `layerdb/sha256`: one dir per layer, named by its chain ID.
    pub fn layers_dir(&self) -> PathBuf {
        self.layerdb().join("sha256")
    }

    pub fn layer(&self, c: &ChainId) -> PathBuf {
        self.layers_dir().join(c.hex())
    }

    /// Where a layer entry goes while it is deleted (`<hex>-<64 hex>-removing`).
    pub fn removing_layer(&self, c: &ChainId, random_hex: &str) -> PathBuf {
        self.layers_dir()
            .join(format!("{}-{random_hex}-removing", c.hex()))
    }

    pub fn tar_split(&self, c: &ChainId) -> PathBuf {
        self.layer_entry(c).tar_split()
    }

    /// The files of `layer(c)`.
    pub fn layer_entry(&self, c: &ChainId) -> LayerEntry {
        LayerEntry(self.layer(c))
    }

    /// The files of `removing_layer(c, random_hex)`.
    pub fn removing_entry(&self, c: &ChainId, random_hex: &str) -> LayerEntry {
        LayerEntry(self.removing_layer(c, random_hex))
    }

    /// `layerdb/tmp/write-set-<suffix>`: a registration in flight (moby
    /// `daemon/internal/layer/filestore.go` `StartTransaction`, Go's
    /// `os.MkdirTemp` with a decimal suffix).
    pub fn write_set(&self, suffix: &str) -> LayerEntry {
        LayerEntry(self.layerdb_tmp().join(format!("write-set-{suffix}")))
    }

    /// `layerdb/mounts`: RW layers of containers, image mounts and BuildKit.
    pub fn mounts_dir(&self) -> PathBuf {
        self.layerdb().join("mounts")
    }

    pub fn mount(&self, name: &str) -> PathBuf {
        self.mounts_dir().join(name)
    }

    /// The files of `mount(name)`.
    pub fn mount_entry(&self, name: &str) -> MountEntry {
        MountEntry(self.mount(name))
    }

    /// `layerdb/tmp`: write-sets of layer registrations in flight.
    pub fn layerdb_tmp(&self) -> PathBuf {
        self.layerdb().join("tmp")
    }

    // -- <root>/<driver>/ ------------------------------------------------

    /// The driver home, e.g. `<root>/overlay2`.
    pub fn home(&self) -> PathBuf {
        self.root().join(&self.driver)
    }

    /// A driver dir (a layer's `cache-id`, a mount's `mount-id` or `init-id`).
    pub fn dir(&self, name: &str) -> PathBuf {
        self.home().join(name)
    }

    pub fn diff(&self, name: &str) -> PathBuf {
        self.dir(name).join("diff")
    }

    /// `<dir>/link`: the dir's short link ID.
    pub fn link_file(&self, name: &str) -> PathBuf {
        self.dir(name).join("link")
    }

    /// `<dir>/lower`: `l/<link>` of every dir below, nearest first.
    pub fn lower_file(&self, name: &str) -> PathBuf {
        self.dir(name).join("lower")
    }

    /// `<dir>/work`: overlayfs' workdir, made with `lower` for a child.
    pub fn work_dir(&self, name: &str) -> PathBuf {
        self.dir(name).join("work")
    }

    /// `<dir>/work/work`: made by the kernel at the first mount.
    pub fn kernel_work_dir(&self, name: &str) -> PathBuf {
        self.work_dir(name).join("work")
    }

    /// `<dir>/committed`: the dir has a child, so it is never mounted
    /// read-write again (moby `daemon/graphdriver/overlay2/overlay.go` `create` of the child).
    pub fn committed_file(&self, name: &str) -> PathBuf {
        self.dir(name).join("committed")
    }

    /// `l/`: short symlinks to the dirs' `diff/`.
    pub fn links_dir(&self) -> PathBuf {
        self.home().join("l")
    }

    pub fn link(&self, id: &str) -> PathBuf {
        self.links_dir().join(id)
    }

    /// One entry of a `lower` file: `l/<link>`, relative to the driver home.
    pub fn lower_entry(link: &str) -> String {
        format!("l/{link}")
    }

    /// What `l/<link>` of `dir` points to: `../<dir>/diff`, relative.
    pub fn link_target(dir: &str) -> PathBuf {
        Path::new("..").join(dir).join("diff")
    }

    /// `p` relative to the root (unchanged if it is not below it).
    pub fn rel<'p>(&self, p: &'p Path) -> &'p Path {
        self.docker.rel(p)
    }

    /// The store directories a prune changes (relative to the root), so
    /// `trash restore` can give back their times.
    pub fn touched_dirs(&self) -> Vec<PathBuf> {
        let img = PathBuf::from("image").join(&self.driver);
        vec![
            PathBuf::new(),
            img.clone(),
            img.join("imagedb/content/sha256"),
            img.join("imagedb/metadata/sha256"),
            img.join("layerdb/sha256"),
            img.join("layerdb/mounts"),
            img.join("layerdb/tmp"),
            PathBuf::from(&self.driver),
            PathBuf::from(&self.driver).join("l"),
        ]
    }
}

/// One layerdb entry directory: a chain-ID dir, a `-removing` one or a
/// write-set. One file per field (moby `daemon/internal/layer/filestore.go`
/// `fileMetadataTransaction`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerEntry(PathBuf);

impl LayerEntry {
    pub fn dir(&self) -> &Path {
        &self.0
    }

    pub fn diff(&self) -> PathBuf {
        self.0.join("diff")
    }

    pub fn size(&self) -> PathBuf {
        self.0.join("size")
    }

    pub fn cache_id(&self) -> PathBuf {
        self.0.join("cache-id")
    }

    pub fn parent(&self) -> PathBuf {
        self.0.join("parent")
    }

    pub fn tar_split(&self) -> PathBuf {
        self.0.join("tar-split.json.gz")
    }
}

/// One `layerdb/mounts/<container>` directory (moby
/// `daemon/internal/layer/filestore.go` `SetMountID`, `SetInitID`,
/// `SetMountParent`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountEntry(PathBuf);

impl MountEntry {
    pub fn dir(&self) -> &Path {
        &self.0
    }

    pub fn mount_id(&self) -> PathBuf {
        self.0.join("mount-id")
    }

    pub fn init_id(&self) -> PathBuf {
        self.0.join("init-id")
    }

    pub fn parent(&self) -> PathBuf {
        self.0.join("parent")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_layout_of_an_overlay2_root() {
        let p = Paths::new(Path::new("/r"), "overlay2");
        let c = ChainId::from_hex(&"a".repeat(64)).unwrap();
        assert_eq!(
            p.layer(&c),
            Path::new("/r/image/overlay2/layerdb/sha256").join("a".repeat(64))
        );
        assert_eq!(p.diff("x"), Path::new("/r/overlay2/x/diff"));
        assert_eq!(p.link("L"), Path::new("/r/overlay2/l/L"));
        assert_eq!(Paths::link_target("x"), Path::new("../x/diff"));
        assert_eq!(p.home().join(Paths::lower_entry("L")), p.link("L"));
        assert_eq!(
            p.repositories_json(),
            Path::new("/r/image/overlay2/repositories.json")
        );
        assert_eq!(
            p.rel(&p.mount("m")),
            Path::new("image/overlay2/layerdb/mounts/m")
        );
        assert_eq!(
            p.docker()
                .container_config(&crate::ids::ContainerId("c".into())),
            Path::new("/r/containers/c/config.v2.json")
        );
        let sha = Path::new("/r/image/overlay2/layerdb/sha256");
        assert_eq!(
            p.tar_split(&c),
            sha.join("a".repeat(64)).join("tar-split.json.gz")
        );
        assert_eq!(
            p.removing_entry(&c, "b").cache_id(),
            sha.join(format!("{}-b-removing/cache-id", "a".repeat(64)))
        );
        assert_eq!(
            p.write_set("7").parent(),
            Path::new("/r/image/overlay2/layerdb/tmp/write-set-7/parent")
        );
        assert_eq!(
            p.mount_entry("m").init_id(),
            Path::new("/r/image/overlay2/layerdb/mounts/m/init-id")
        );
        assert_eq!(p.kernel_work_dir("x"), Path::new("/r/overlay2/x/work/work"));
    }
}
