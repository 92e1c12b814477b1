//! The [`SynthReport`]: what was written, for tests to compare with what
//! dockgc and a daemon read back.

use super::containers::ContainerDone;
use super::fs::Ctx;
use super::images::ImageDone;
use super::layers::LayerDone;
use super::plan::{LayerKind, Plan};
use super::{SynthContainer, SynthImage, SynthLayer, SynthReport};
use crate::ids::ContainerId;

pub(super) fn report(
    ctx: &Ctx,
    plan: &Plan,
    layers: Vec<Option<LayerDone>>,
    images: Vec<ImageDone>,
    references: usize,
    containers: Vec<ContainerDone>,
) -> SynthReport {
    let mut r = SynthReport {
        images: images.len(),
        containers: containers.len(),
        references,
        ..Default::default()
    };
    for (i, lp) in plan.layers.iter().enumerate() {
        let d = layers[i].as_ref().expect("layer written");
        let synth_layer = || SynthLayer {
            chain_id: d.chain,
            diff_id: d.diff,
            parent: lp
                .parent
                .map(|p| layers[p as usize].as_ref().expect("layer").chain),
            cache_id: plan.cache_ids[i].clone(),
            size: d.size,
        };
        match lp.kind {
            LayerKind::Image => {
                r.layers += 1;
                r.layers_size += d.size;
                r.layer_list.push(synth_layer());
            }
            LayerKind::Held => r.held_layers.push(synth_layer()),
            LayerKind::Removing => r.removing.push(d.db_name.clone()),
            LayerKind::WriteSet => {
                r.write_sets.push(d.db_name.clone());
                r.orphan_dirs.push(plan.cache_ids[i].clone());
            }
            LayerKind::Orphan => r.orphan_dirs.push(plan.cache_ids[i].clone()),
        }
    }
    let mut users = vec![0usize; images.len()];
    for cp in &plan.containers {
        users[cp.image as usize] += 1;
    }
    for (i, im) in images.iter().enumerate() {
        let ip = &plan.images[i];
        let mut chain = Vec::new();
        let mut size = 0;
        for l in plan.image_layers(i) {
            let d = layers[l as usize].as_ref().expect("layer written");
            chain.push(d.chain);
            size += d.size;
        }
        r.image_list.push(SynthImage {
            id: im.id,
            kind: ip.kind,
            refs: im.refs.clone(),
            parent: ip
                .base
                .filter(|_| ip.meta_parent)
                .map(|b| images[b as usize].id),
            chain,
            size,
            containers: users[i],
        });
    }
    for (cp, cd) in plan.containers.iter().zip(containers) {
        r.container_list.push(SynthContainer {
            id: ContainerId(cd.id),
            name: format!("synth-{}", r.container_list.len()),
            image: images[cp.image as usize].id,
            mount_id: cd.mount_id,
            size_rw: cd.size_rw,
            started: cp.started,
        });
    }
    r.bytes_written = ctx.bytes_written();
    r
}
