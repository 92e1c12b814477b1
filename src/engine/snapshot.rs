//! A snapshot from the Engine API alone, for hosts whose root dockgc cannot
//! read: a remote `--host`, rootless Docker, Docker Desktop, or an Engine 29
//! host whose images live in containerd.
//!
//! It has the images (tags, digests, created, parents, labels, last tag
//! time, layers), the containers with their states and times, and sizes
//! from `/system/df`. It cannot see driver dirs, leftovers or orphans: the
//! snapshot says so ([`Source::Api`]) and plans list them as unseen. The
//! API gives no per-layer size; each image's top new layer carries what
//! its size adds to its deepest listed ancestor's, the others zero, so
//! per-image totals match the daemon's and the daemon reports the rest.

use super::view::View;
use super::{Engine, EngineError};
use crate::buildcache::{BuildCache, BuildRecord};
use crate::ids::{ChainId, ContainerId, DiffId};
use crate::plan::ApiVolume;
use crate::store::graphdriver::{Buildkit, Paths, State};
use crate::store::{Container, ContainerState, Image, Layer, Reference, Snapshot, Source, Store};
use std::collections::{BTreeMap, HashSet};
use std::path::Path;

/// Inspections in flight at once.
const INSPECT_CONCURRENCY: usize = 8;

/// The familiar repository of a reference: `repo` of `repo:tag` or `repo@digest`.
fn repository(r: &str) -> &str {
    if let Some((repo, _)) = r.split_once('@') {
        return repo;
    }
    // A tag follows the last ':' after the last '/' (a registry port is not a tag).
    match (r.rfind(':'), r.rfind('/')) {
        (Some(c), Some(s)) if c > s => &r[..c],
        (Some(c), None) => &r[..c],
        _ => r,
    }
}

pub fn read(engine: &Engine, root: &Path) -> Result<Snapshot, EngineError> {
    let view = View::read(engine)?;
    let mut snap = Snapshot {
        root: root.to_path_buf(),
        engine_id_present: true,
        refs: Vec::new(),
        images: BTreeMap::new(),
        layers: BTreeMap::new(),
        containers: BTreeMap::new(),
        volumes: Vec::new(),
        anomalies: Vec::new(),
        unresolved: Vec::new(),
        store: Store::Graphdriver(State {
            paths: Paths::new(root, &engine.info.driver),
            cache_ids: BTreeMap::new(),
            mounts: BTreeMap::new(),
            dirs: BTreeMap::new(),
            links: BTreeMap::new(),
            removing: Vec::new(),
            broken_layers: Vec::new(),
            write_sets: Vec::new(),
            buildkit: Buildkit::default(),
        }),
        source: Source::Api,
    };
    images(engine, &view, &mut snap)?;
    containers(engine, &view, &mut snap)?;
    Ok(snap)
}

fn images(engine: &Engine, view: &View, snap: &mut Snapshot) -> Result<(), EngineError> {
    let ids: Vec<String> = view.images.keys().map(|i| i.to_string()).collect();
    let calls = ids.iter().map(|id| engine.find_image(id)).collect();
    let inspected = engine.run_all(calls, INSPECT_CONCURRENCY);
    let mut sized: Vec<(Vec<ChainId>, u64)> = Vec::new();
    for ((id, api), r) in view.images.iter().zip(inspected) {
        let Some(i) = r? else { continue }; // removed meanwhile
        let diff_ids: Vec<DiffId> = i
            .root_fs
            .as_ref()
            .and_then(|r| r.layers.as_ref())
            .into_iter()
            .flatten()
            .filter_map(|d| DiffId::parse(d).ok())
            .collect();
        let created = i.created.clone().filter(|c| !c.is_empty());
        snap.images.insert(
            *id,
            Image {
                id: *id,
                created_unix: created
                    .as_deref()
                    .and_then(crate::store::parse_time)
                    .or(Some(api.created)),
                created,
                labels: api.labels.clone().into(),
                diff_ids: diff_ids.clone(),
                os: i.os.clone(),
                parent: api.parent,
                last_updated: i
                    .metadata
                    .and_then(|m| m.last_tag_time)
                    .filter(|t| !t.starts_with("0001-01-01")),
                built_locally: api.parent.is_some(),
                config_bytes: 0,
            },
        );
        for r in &api.refs {
            snap.refs.push(Reference {
                repository: repository(r).to_string(),
                reference: r.clone(),
                image: *id,
            });
        }
        let chain = ChainId::chain(&diff_ids);
        for (n, c) in chain.iter().enumerate() {
            snap.layers.entry(*c).or_insert(Layer {
                chain_id: *c,
                diff_id: diff_ids[n],
                size: 0,
                parent: n.checked_sub(1).map(|p| chain[p]),
            });
        }
        sized.push((chain, api.size));
    }
    estimate_layer_sizes(&mut snap.layers, sized);
    snap.refs.sort_by(|a, b| a.reference.cmp(&b.reference));
    Ok(())
}

/// Shortest chains first: each image's size minus what its chain's sized
/// layers already hold goes to its top layer not sized yet.
fn estimate_layer_sizes(
    layers: &mut BTreeMap<ChainId, Layer>,
    mut sized: Vec<(Vec<ChainId>, u64)>,
) {
    sized.sort_by_key(|(chain, _)| chain.len());
    let mut done: HashSet<ChainId> = HashSet::new();
    for (chain, size) in sized {
        let held: u64 = chain
            .iter()
            .filter(|c| done.contains(*c))
            .map(|c| layers[c].size)
            .sum();
        if let Some(top) = chain.iter().rev().find(|c| !done.contains(*c))
            && let Some(l) = layers.get_mut(top)
        {
            l.size = size.saturating_sub(held);
        }
        done.extend(chain);
    }
}

fn containers(engine: &Engine, view: &View, snap: &mut Snapshot) -> Result<(), EngineError> {
    let ids: Vec<&ContainerId> = view.containers.keys().collect();
    let calls = ids.iter().map(|id| engine.find_container(&id.0)).collect();
    let inspected = engine.run_all(calls, INSPECT_CONCURRENCY);
    for ((id, api), r) in view.containers.iter().zip(inspected) {
        let Some(c) = r? else { continue };
        let st = c.state.clone().unwrap_or_default();
        let zero = |t: Option<String>| t.filter(|t| !t.is_empty() && !t.starts_with("0001-01-01"));
        let started_at = zero(st.started_at);
        let pid = st.pid.unwrap_or(0);
        snap.containers.insert(
            id.clone(),
            Container {
                id: id.clone(),
                name: api.name.clone(),
                image: api.image,
                config_image: c.config.as_ref().and_then(|c| c.image.clone()),
                driver: c.driver.clone(),
                state: ContainerState {
                    running: st.running.unwrap_or(false),
                    paused: st.paused.unwrap_or(false),
                    restarting: st.restarting.unwrap_or(false),
                    dead: st.dead.unwrap_or(false),
                    pid,
                    exit_code: st.exit_code.unwrap_or(0),
                    // Another host's processes are not ours to look at.
                    pid_alive: false,
                    has_started: started_at.is_some(),
                },
                created: zero(c.created.clone()),
                started_at,
                finished_at: zero(st.finished_at),
                image_mounts: Vec::new(),
                log_bytes: 0,
                labels: api.labels.clone(),
                volumes: api.volumes.clone(),
            },
        );
    }
    Ok(())
}

/// The build cache as `/system/df` lists it.
pub fn build_cache(df: &bollard::models::SystemDataUsageResponse) -> BuildCache {
    let Some(list) = &df.build_cache else {
        return BuildCache::default();
    };
    let records = list
        .iter()
        .map(|b| {
            let kind = b.typ.map(|t| t.to_string()).unwrap_or_default();
            BuildRecord {
                id: b.id.clone().unwrap_or_default(),
                parents: b
                    .parents
                    .clone()
                    .or_else(|| b.parent.clone().filter(|p| !p.is_empty()).map(|p| vec![p]))
                    .unwrap_or_default(),
                kind: if kind.is_empty() {
                    "regular".into()
                } else {
                    kind
                },
                description: b.description.clone().unwrap_or_default(),
                in_use: b.in_use,
                shared: b.shared.unwrap_or(false),
                size: b.size.map_or(0, |s| u64::try_from(s).unwrap_or(0)),
                created: b.created_at.clone().unwrap_or_default(),
                last_used: b.last_used_at.clone(),
                usage_count: b.usage_count.map_or(0, |n| u64::try_from(n).unwrap_or(0)),
            }
        })
        .collect();
    BuildCache {
        known: true,
        records,
    }
}

/// Volumes as `/system/df` lists them, with how many containers use each
/// (its `RefCount`, else the container list's mounts).
pub fn volumes(df: &bollard::models::SystemDataUsageResponse, view: &View) -> Vec<ApiVolume> {
    df.volumes
        .iter()
        .flatten()
        .map(|v| {
            let usage = v.usage_data.as_ref();
            let listed = view
                .containers
                .values()
                .filter(|c| c.volumes.contains(&v.name))
                .count();
            ApiVolume {
                name: v.name.clone(),
                driver: v.driver.clone(),
                labels: v.labels.clone().into_iter().collect(),
                size: usage.and_then(|u| u64::try_from(u.size).ok()),
                users: usage
                    .and_then(|u| usize::try_from(u.ref_count).ok())
                    .unwrap_or(0)
                    .max(listed),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repository_of_a_reference() {
        assert_eq!(repository("busybox:1"), "busybox");
        assert_eq!(repository("localhost:5000/app:v1"), "localhost:5000/app");
        assert_eq!(repository("localhost:5000/app"), "localhost:5000/app");
        assert_eq!(repository("app@sha256:abc"), "app");
    }

    #[test]
    fn layer_sizes_add_up_to_each_image() {
        let d = |n: u8| DiffId(crate::ids::Digest::of_bytes(&[n]));
        let base = vec![d(1), d(2)];
        let child = vec![d(1), d(2), d(3)];
        let cb = ChainId::chain(&base);
        let cc = ChainId::chain(&child);
        let mut layers = BTreeMap::new();
        for (chain, diffs) in [(&cc, &child)] {
            for (n, c) in chain.iter().enumerate() {
                layers.insert(
                    *c,
                    Layer {
                        chain_id: *c,
                        diff_id: diffs[n],
                        size: 0,
                        parent: n.checked_sub(1).map(|p| chain[p]),
                    },
                );
            }
        }
        estimate_layer_sizes(&mut layers, vec![(cc.clone(), 130), (cb.clone(), 100)]);
        let sum = |chain: &[ChainId]| chain.iter().map(|c| layers[c].size).sum::<u64>();
        assert_eq!(sum(&cb), 100);
        assert_eq!(sum(&cc), 130);
        assert_eq!(layers[&cc[2]].size, 30);
    }
}
