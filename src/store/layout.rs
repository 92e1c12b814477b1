//! Which layout a root has. Layouts dockgc does not handle are named, not guessed at.

use super::StoreError;
use super::paths::DockerRoot;
use std::fs;
use std::path::{Path, PathBuf};

/// Graph drivers the daemon scans for prior state, in its priority order
/// (`driver_linux.go`), plus the ones it knows but never auto-selects.
const KNOWN_DRIVERS: &[&str] = &[
    "overlay2",
    "fuse-overlayfs",
    "btrfs",
    "zfs",
    "vfs",
    "aufs",
    "overlay",
    "devicemapper",
];

pub struct Layout {
    pub driver: String,
    pub engine_id_present: bool,
}

pub fn detect(root: &Path) -> Result<Layout, StoreError> {
    let meta = fs::metadata(root).map_err(|source| StoreError::Unreadable {
        path: root.to_path_buf(),
        source,
    })?;
    if !meta.is_dir() {
        return Err(StoreError::Unreadable {
            path: root.to_path_buf(),
            source: std::io::Error::other("not a directory"),
        });
    }
    fs::read_dir(root).map_err(|source| StoreError::Unreadable {
        path: root.to_path_buf(),
        source,
    })?;
    if is_rootless_default(root) {
        return Err(StoreError::Rootless {
            path: root.to_path_buf(),
        });
    }

    let docker = DockerRoot::new(root);
    let image_dir = docker.image_root();
    let mut drivers: Vec<String> = match fs::read_dir(&image_dir) {
        Ok(rd) => rd
            .filter_map(|e| e.ok())
            .filter(|e| e.file_type().map(|t| t.is_dir()).unwrap_or(false))
            .filter_map(|e| e.file_name().into_string().ok())
            .collect(),
        Err(_) => Vec::new(),
    };
    drivers.sort();

    // containerd-store roots keep no image/<driver>/ but have these traces (moby
    // `daemon/image_store_choice.go`, `daemon/snapshotter/mount.go`).
    let containerd_traces =
        image_dir.join("identity-cache.db").exists() || docker.containerd_rootfs().exists();

    if drivers.is_empty() {
        if containerd_traces {
            return Err(StoreError::ContainerdStore {
                path: root.to_path_buf(),
            });
        }
        if let Some(remapped) = userns_child(root) {
            return Err(StoreError::UsernsParent {
                path: root.to_path_buf(),
                remapped,
            });
        }
        return Err(StoreError::NotDockerRoot {
            path: root.to_path_buf(),
        });
    }

    // Drivers with prior state: image/<d>/ and a non-empty <root>/<d>/ (moby
    // `daemon/graphdriver/driver.go` `scanPriorDrivers`).
    let with_state: Vec<&String> = drivers
        .iter()
        .filter(|d| non_empty_dir(&root.join(d)))
        .collect();
    let chosen = match with_state.as_slice() {
        [one] => (*one).clone(),
        [] => {
            if containerd_traces {
                return Err(StoreError::ContainerdStore {
                    path: root.to_path_buf(),
                });
            }
            // A fresh root whose daemon never created a layer: image/<d>/ alone.
            drivers[0].clone()
        }
        many => {
            return Err(StoreError::AmbiguousDriver {
                path: root.to_path_buf(),
                drivers: many
                    .iter()
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
            });
        }
    };
    if chosen != "overlay2" {
        let driver = if KNOWN_DRIVERS.contains(&chosen.as_str()) {
            chosen
        } else {
            format!("{chosen} (unknown)")
        };
        return Err(StoreError::UnsupportedDriver {
            path: root.to_path_buf(),
            driver,
        });
    }
    Ok(Layout {
        driver: chosen,
        engine_id_present: docker.engine_id().exists(),
    })
}

/// Which store a root is.
pub enum Store {
    Graphdriver(Layout),
    /// A containerd store: a Docker root in containerd mode (`docker_root`),
    /// or a containerd root itself (`None`).
    Containerd {
        docker_root: Option<PathBuf>,
    },
}

/// [`detect`], with a containerd store returned instead of refused.
pub fn detect_store(root: &Path) -> Result<Store, StoreError> {
    if super::containerd::paths::is_containerd_root(root) {
        return Ok(Store::Containerd { docker_root: None });
    }
    match detect(root) {
        Err(StoreError::ContainerdStore { path }) => Ok(Store::Containerd {
            docker_root: Some(path),
        }),
        other => other.map(Store::Graphdriver),
    }
}

fn non_empty_dir(p: &Path) -> bool {
    fs::read_dir(p)
        .map(|mut rd| rd.next().is_some())
        .unwrap_or(false)
}

/// `--userns-remap` roots live in `<root>/<uid>.<gid>` (`setupRemappedRoot`).
fn userns_child(root: &Path) -> Option<PathBuf> {
    let rd = fs::read_dir(root).ok()?;
    rd.filter_map(|e| e.ok())
        .filter(|e| {
            let n = e.file_name();
            let n = n.to_string_lossy();
            let mut parts = n.split('.');
            matches!((parts.next(), parts.next(), parts.next()),
                (Some(a), Some(b), None) if !a.is_empty() && !b.is_empty()
                    && a.bytes().all(|c| c.is_ascii_digit()) && b.bytes().all(|c| c.is_ascii_digit()))
        })
        .map(|e| e.path())
        .find(|p| DockerRoot::new(p).image_root().is_dir())
}

fn is_rootless_default(root: &Path) -> bool {
    let s = root.to_string_lossy();
    s.trim_end_matches('/').ends_with(".local/share/docker")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_dir_is_not_a_docker_root() {
        let t = tempfile::tempdir().unwrap();
        let e = detect(t.path()).err().unwrap();
        assert!(matches!(e, StoreError::NotDockerRoot { .. }));
        assert!(e.to_string().contains(&t.path().display().to_string()));
    }

    #[test]
    fn missing_root_is_unreadable() {
        let e = detect(Path::new("/nonexistent/dockgc-root")).err().unwrap();
        assert!(matches!(e, StoreError::Unreadable { .. }));
    }

    #[test]
    fn detects_other_layouts_by_name() {
        let t = tempfile::tempdir().unwrap();
        fs::create_dir_all(t.path().join("image/vfs")).unwrap();
        fs::create_dir_all(t.path().join("vfs/dir/x")).unwrap();
        assert!(matches!(
            detect(t.path()),
            Err(StoreError::UnsupportedDriver { .. })
        ));

        let t = tempfile::tempdir().unwrap();
        fs::create_dir_all(t.path().join("image")).unwrap();
        fs::write(t.path().join("image/identity-cache.db"), b"").unwrap();
        assert!(matches!(
            detect(t.path()),
            Err(StoreError::ContainerdStore { .. })
        ));

        let t = tempfile::tempdir().unwrap();
        fs::create_dir_all(t.path().join("100000.100000/image/overlay2")).unwrap();
        match detect(t.path()) {
            Err(StoreError::UsernsParent { remapped, .. }) => {
                assert!(remapped.ends_with("100000.100000"))
            }
            other => panic!("{:?}", other.err()),
        }

        let t = tempfile::tempdir().unwrap();
        for d in ["overlay2", "btrfs"] {
            fs::create_dir_all(t.path().join("image").join(d)).unwrap();
            fs::create_dir_all(t.path().join(d).join("x")).unwrap();
        }
        assert!(matches!(
            detect(t.path()),
            Err(StoreError::AmbiguousDriver { .. })
        ));

        let t = tempfile::tempdir().unwrap();
        fs::create_dir_all(t.path().join("image/overlay2")).unwrap();
        fs::create_dir_all(t.path().join("overlay2/l")).unwrap();
        let l = detect(t.path()).unwrap();
        assert_eq!(l.driver, "overlay2");
        assert!(!l.engine_id_present);
    }
}
