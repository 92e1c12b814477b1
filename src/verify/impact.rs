//! Which images and containers each finding breaks.

use super::{Finding, Impact, SubjectKind};
use crate::graph::Graph;
use crate::ids::{ChainId, ContainerId, ImageId};
use std::collections::{BTreeSet, HashMap};

pub fn fill(g: &Graph, findings: &mut [Finding]) {
    let snap = g.snap;
    let needs_layers = findings
        .iter()
        .any(|f| f.subject.kind == SubjectKind::Layer);
    let mut images_on: HashMap<ChainId, Vec<ImageId>> = HashMap::new();
    let mut mounts_on: HashMap<ChainId, Vec<&str>> = HashMap::new();
    if needs_layers {
        for (id, chain) in &g.chains {
            for c in chain {
                images_on.entry(*c).or_default().push(*id);
            }
        }
        for m in g.gd.mounts.values() {
            let chain = snap.layer_chain(m.parent);
            for c in chain.take(snap.layers.len() + 1) {
                mounts_on.entry(c).or_default().push(&m.name);
            }
        }
    }
    let containers_of = |images: &BTreeSet<ImageId>| -> BTreeSet<ContainerId> {
        snap.containers
            .values()
            .filter(|c| {
                c.image.is_some_and(|i| images.contains(&i))
                    || c.image_mounts.iter().any(|(i, _)| images.contains(i))
            })
            .map(|c| c.id.clone())
            .collect()
    };
    for f in findings.iter_mut() {
        let (images, mut containers): (BTreeSet<ImageId>, BTreeSet<ContainerId>) =
            match f.subject.kind {
                SubjectKind::Layer => {
                    let Ok(c) = ChainId::parse(&f.subject.id) else {
                        continue;
                    };
                    let images: BTreeSet<ImageId> =
                        images_on.get(&c).into_iter().flatten().copied().collect();
                    let mut containers = containers_of(&images);
                    for name in mounts_on.get(&c).into_iter().flatten() {
                        if let Some(id) =
                            ContainerId::parse(name).filter(|id| snap.containers.contains_key(id))
                        {
                            containers.insert(id);
                        }
                    }
                    (images, containers)
                }
                SubjectKind::Image => {
                    let Ok(i) = ImageId::parse(&f.subject.id) else {
                        continue;
                    };
                    let images = BTreeSet::from([i]);
                    let containers = containers_of(&images);
                    (images, containers)
                }
                SubjectKind::Container => (
                    BTreeSet::new(),
                    ContainerId::parse(&f.subject.id).into_iter().collect(),
                ),
                SubjectKind::Mount => (
                    BTreeSet::new(),
                    ContainerId::parse(&f.subject.id)
                        .filter(|id| snap.containers.contains_key(id))
                        .into_iter()
                        .collect(),
                ),
                SubjectKind::Reference | SubjectKind::Path => continue,
            };
        containers.retain(|_| true);
        f.impact = Impact {
            images: images.into_iter().collect(),
            containers: containers.into_iter().collect(),
        };
    }
}
