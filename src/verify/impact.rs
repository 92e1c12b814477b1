//! Which images and containers each finding breaks.

use super::{Finding, Impact, SubjectKind};
use crate::graph::Graph;
use crate::holds::Holder;
use crate::ids::{ChainId, ContainerId, ImageId};
use std::collections::{BTreeSet, HashMap};

/// Fills each finding's impact: the images built on a damaged layer (their
/// chains contain it, whether or not its entry still loads), and the
/// containers on those images or whose RW layer the holds put on it.
pub fn fill(g: &Graph, findings: &mut [Finding]) {
    let snap = g.snap;
    let needs_layers = findings
        .iter()
        .any(|f| f.subject.kind == SubjectKind::Layer);
    let mut images_on: HashMap<ChainId, Vec<ImageId>> = HashMap::new();
    if needs_layers {
        for id in snap.images.keys() {
            for c in g.chain(id) {
                images_on.entry(c).or_default().push(*id);
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
        let (images, containers): (BTreeSet<ImageId>, BTreeSet<ContainerId>) = match f.subject.kind
        {
            SubjectKind::Layer => {
                let Ok(c) = ChainId::parse(&f.subject.id) else {
                    continue;
                };
                let images: BTreeSet<ImageId> =
                    images_on.get(&c).into_iter().flatten().copied().collect();
                let mut containers = containers_of(&images);
                containers.extend(g.layer_holders(&c).filter_map(|h| match h {
                    Holder::Mount {
                        container: Some(id),
                        ..
                    } => Some(id.clone()),
                    _ => None,
                }));
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
            SubjectKind::Reference
            | SubjectKind::Path
            | SubjectKind::Blob
            | SubjectKind::Snapshot
            | SubjectKind::Ingest => continue,
        };
        f.impact = Impact {
            images: images.into_iter().collect(),
            containers: containers.into_iter().collect(),
        };
    }
}
