//! The graphdriver source: reads `image/<driver>/` and `<root>/<driver>/`
//! (overlay2) into the neutral inventory plus [`State`]. One file per
//! on-disk area; each area reader parallelises over its own entries.

mod buildkit;
mod imagedb;
mod layerdb;
mod overlay2;
mod paths;
mod refs;
mod state;

pub use buildkit::{BuildkitStatus, CacheRecord, SnapshotRecord};
pub use imagedb::parse_time;
pub use layerdb::parse_size;
pub use paths::Paths;
pub use state::*;

use super::{Anomaly, LoadOptions, Snapshot, Source, Store, containers, layout::Layout};
use std::path::Path;

/// Reads a graphdriver root whose layout `detect` established.
pub fn read(root: &Path, layout: Layout, opts: &LoadOptions) -> Snapshot {
    let paths = Paths::new(root, &layout.driver);
    let share = opts.share.as_deref();

    let ((refs, images), (ldb, (containers, home))) = rayon::join(
        || {
            rayon::join(
                || refs::read(&paths.repositories_json()),
                || imagedb::read(&paths, share),
            )
        },
        || {
            rayon::join(
                || layerdb::read(&paths, share),
                || {
                    rayon::join(
                        || containers::read(paths.docker(), share),
                        || overlay2::read(&paths, opts.lower, share),
                    )
                },
            )
        },
    );

    let buildkit = buildkit::read(&paths, || {
        (home.dirs.keys().map(|d| d.to_string()))
            .chain(ldb.cache_ids.values().map(|c| c.0.to_string()))
            .chain(ldb.layers.keys().map(|c| c.hex()))
            .collect()
    });

    // The daemon restores only the containers created with its driver
    // (moby `daemon/daemon.go` `restore`); another driver's containers (of a
    // `dockerd -s vfs` that ran here before) are not its. A container
    // without a `Driver` stays: its mount is protected either way.
    let mut containers = containers;
    containers.0.retain(|_, c| {
        c.driver
            .as_deref()
            .is_none_or(|d| d.is_empty() || d == layout.driver)
    });

    let mut anomalies: Vec<Anomaly> = Vec::new();
    let mut unresolved = ldb.unresolved;
    unresolved.extend(containers.2);
    unresolved.sort();
    anomalies.extend(refs.1);
    anomalies.extend(images.1);
    anomalies.extend(ldb.anomalies);
    anomalies.extend(containers.1);
    anomalies.extend(home.anomalies);
    if let BuildkitStatus::Unreadable { why } = &buildkit.status {
        anomalies.push(Anomaly {
            kind: super::AnomalyKind::Buildkit,
            path: paths.docker().buildkit(),
            message: format!(
                "{why}; BuildKit's records are unknown: everything buildkit/snapshots.db names is kept"
            ),
        });
    }
    anomalies.sort_by(|a, b| (&a.path, a.kind).cmp(&(&b.path, b.kind)));

    Snapshot {
        root: root.to_path_buf(),
        engine_id_present: layout.engine_id_present,
        refs: refs.0,
        images: images.0,
        layers: ldb.layers,
        containers: containers.0,
        volumes: Vec::new(),
        anomalies,
        unresolved,
        store: Store::Graphdriver(State {
            paths,
            cache_ids: ldb.cache_ids,
            mounts: ldb.mounts,
            dirs: home.dirs,
            links: home.links,
            removing: ldb.removing,
            broken_layers: ldb.broken,
            write_sets: ldb.write_sets,
            buildkit,
        }),
        source: Source::Disk,
    }
}
