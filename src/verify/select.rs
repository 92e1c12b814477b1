//! `--image REF`: which images (and so which layers) a verify run covers.

use crate::graph::Graph;
use crate::ids::{ChainId, ImageId};
use std::collections::BTreeSet;

#[derive(Debug, thiserror::Error)]
pub enum SelectError {
    #[error("no image matches {0:?}")]
    NotFound(String),
    #[error("{0:?} matches {1} images; give more of the ID")]
    Ambiguous(String, usize),
}

/// The images and layers a run covers.
pub struct Scope {
    pub all: bool,
    pub images: BTreeSet<ImageId>,
    pub layers: BTreeSet<ChainId>,
}

/// Every image and every layerdb layer, or the chains of the given images.
pub fn scope(g: &Graph, refs: &[String]) -> Result<Scope, SelectError> {
    let snap = g.snap;
    if refs.is_empty() {
        return Ok(Scope {
            all: true,
            images: snap.images.keys().copied().collect(),
            layers: snap.layers.keys().copied().collect(),
        });
    }
    let mut images = BTreeSet::new();
    for r in refs {
        images.insert(resolve(g, r)?);
    }
    let layers = images
        .iter()
        .flat_map(|i| g.chain(i))
        .filter(|c| snap.layers.contains_key(c))
        .collect();
    Ok(Scope {
        all: false,
        images,
        layers,
    })
}

/// An image by full or short ID (`sha256:` optional), `name:tag`, `name`
/// (meaning `name:latest`) or `name@sha256:...`, with Docker Hub's
/// `docker.io/library/` prefix accepted.
pub fn resolve(g: &Graph, r: &str) -> Result<ImageId, SelectError> {
    let snap = g.snap;
    let hexpart = r.strip_prefix("sha256:").unwrap_or(r);
    if !hexpart.is_empty()
        && hexpart.len() <= 64
        && hexpart
            .bytes()
            .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
    {
        let hits: Vec<ImageId> = snap
            .images
            .keys()
            .filter(|id| id.hex().starts_with(hexpart))
            .copied()
            .collect();
        match hits.len() {
            1 => return Ok(hits[0]),
            0 => {}
            n => return Err(SelectError::Ambiguous(r.to_string(), n)),
        }
    }
    let candidate = reference_of(r);
    snap.refs
        .iter()
        .find(|x| x.reference == candidate)
        .map(|x| x.image)
        .ok_or_else(|| SelectError::NotFound(r.to_string()))
}

/// The `repositories.json` reference `r` names when it is not an ID: the
/// familiar `name:tag` (`name:latest` for a bare name) or `name@digest`.
fn reference_of(r: &str) -> String {
    let familiar = r
        .strip_prefix("docker.io/library/")
        .or_else(|| r.strip_prefix("docker.io/"))
        .unwrap_or(r);
    let last = familiar.rsplit('/').next().unwrap_or(familiar);
    if familiar.contains('@') || last.contains(':') {
        familiar.to_string()
    } else {
        format!("{familiar}:latest")
    }
}

/// The tag `r` names, in familiar `name:tag` form, if it names one (not
/// for a digest reference); whether that tag exists is the caller's check.
pub fn tag_of(r: &str) -> Option<String> {
    Some(reference_of(r)).filter(|t| !t.contains('@'))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph::tests::*;

    #[test]
    fn resolves_ids_tags_and_digests() {
        let mut s = empty_snapshot();
        let a = add_image(&mut s, &[1], 1, None);
        let b = add_image(&mut s, &[1, 2], 1, None);
        tag(&mut s, "app:latest", a);
        tag(&mut s, "ghcr.io/x/y:2", b);
        let g = Graph::build(&s);
        assert_eq!(resolve(&g, "app").unwrap(), a);
        assert_eq!(resolve(&g, "docker.io/library/app:latest").unwrap(), a);
        assert_eq!(resolve(&g, "ghcr.io/x/y:2").unwrap(), b);
        assert_eq!(resolve(&g, &a.to_string()).unwrap(), a);
        assert_eq!(resolve(&g, &a.hex()[..12]).unwrap(), a);
        assert!(matches!(resolve(&g, "nope"), Err(SelectError::NotFound(_))));
        assert!(matches!(resolve(&g, ""), Err(SelectError::NotFound(_))));
        assert_eq!(
            tag_of("docker.io/library/app").as_deref(),
            Some("app:latest")
        );
        assert_eq!(tag_of("ghcr.io/x/y:2").as_deref(), Some("ghcr.io/x/y:2"));
        assert_eq!(tag_of("app@sha256:00"), None);
        let sc = scope(&g, &["ghcr.io/x/y:2".to_string()]).unwrap();
        assert_eq!(sc.layers.len(), 2);
        assert!(!sc.all);
    }
}
