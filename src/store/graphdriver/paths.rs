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
        self.layer(c).join("tar-split.json.gz")
    }

    /// `layerdb/mounts`: RW layers of containers, image mounts and BuildKit.
    pub fn mounts_dir(&self) -> PathBuf {
        self.layerdb().join("mounts")
    }

    pub fn mount(&self, name: &str) -> PathBuf {
        self.mounts_dir().join(name)
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

    /// `l/`: short symlinks to the dirs' `diff/`.
    pub fn links_dir(&self) -> PathBuf {
        self.home().join("l")
    }

    pub fn link(&self, id: &str) -> PathBuf {
        self.links_dir().join(id)
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
    }
}
