//! `save` and `export`: images out of a data root without the daemon.
//!
//! Both only read the root. `save` writes the images as `docker save` does
//! (a docker-archive, or an OCI image layout as Engine 25+ writes it), each
//! layer the exact stream whose sha256 is its diff ID, rebuilt and checked
//! by the same code as `verify --deep` ([`crate::verify::deep::stream_layer`]).
//! `export` writes an image's flattened root filesystem as `docker export` of
//! a fresh container of it does, as a tar or into a directory.
//!
//! What they read of the store goes through [`Store`] (file locations) and
//! [`choose`] (images, tags, configs, layer chains), so that both are easy
//! to re-point.

mod docker_archive;
pub mod export;
mod oci;
mod output;
pub mod save;
pub mod tarw;

pub use export::{ExportOptions, ExportReport, ExportTarget, export};
pub use save::{Format, SaveOptions, SaveReport, save};

use crate::graph::Graph;
use crate::ids::{CacheId, ChainId, DiffId, Digest, ImageId};
use crate::store::graphdriver::Paths;
use crate::verify::deep::Outcome;
use crate::verify::select::{self, SelectError};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// Where an archive goes: a file (written under a temporary name in the
/// same directory and renamed when complete), or a stream such as stdout.
pub enum Target<'a> {
    File(&'a Path),
    Stream(&'a mut (dyn Write + Send)),
}

#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    /// An unknown or ambiguous image reference.
    #[error(transparent)]
    Select(#[from] SelectError),
    /// The output cannot be used (its directory is missing, it is a
    /// directory, `--dir` is not empty, ...). Nothing was read.
    #[error("{}: {reason}", path.display())]
    Output { path: PathBuf, reason: String },
    /// Something stored is damaged or cannot be rebuilt exactly (the
    /// message names the layer and file, or the image and its config).
    #[error("{0}")]
    Damaged(String),
    /// Reading or writing failed.
    #[error("{}: {cause}", path.display())]
    Io { path: PathBuf, cause: io::Error },
}

impl ArchiveError {
    /// A problem of the stored images, rather than of the request or the output.
    pub fn is_damage(&self) -> bool {
        matches!(self, ArchiveError::Damaged(_))
    }

    pub(crate) fn io(path: &Path, cause: io::Error) -> Self {
        ArchiveError::Io {
            path: path.to_path_buf(),
            cause,
        }
    }
}

/// A member of an archive other than a layer: a directory, or a file held
/// in memory (configs, manifests; small).
#[derive(Clone, Debug)]
pub(crate) struct Member {
    pub name: String,
    /// `None` for a directory.
    pub data: Option<Vec<u8>>,
}

impl Member {
    pub(crate) fn file(name: String, data: Vec<u8>) -> Self {
        Member {
            name,
            data: Some(data),
        }
    }

    pub(crate) fn dir(name: String) -> Self {
        Member { name, data: None }
    }

    /// Header, body and padding, appended to `out`. Member times are the
    /// epoch, so the same images give the same archive bytes.
    pub(crate) fn write(&self, out: &mut Vec<u8>) {
        use tarw::{Header, Kind, padding, write_header};
        match &self.data {
            None => write_header(&Header::plain(self.name.as_bytes(), Kind::Dir, 0, 0), out),
            Some(d) => {
                let size = d.len() as u64;
                write_header(
                    &Header::plain(self.name.as_bytes(), Kind::File, size, 0),
                    out,
                );
                out.extend_from_slice(d);
                out.resize(out.len() + padding(size), 0);
            }
        }
    }
}

/// The bytes of `members`, in order.
pub(crate) fn members_bytes(members: &[Member]) -> Vec<u8> {
    let mut out = Vec::new();
    for m in members {
        m.write(&mut out);
    }
    out
}

/// File locations in the data root: the graphdriver's layout.
pub(crate) struct Store<'s> {
    paths: &'s Paths,
}

impl<'s> Store<'s> {
    pub(crate) fn new(g: &'s Graph) -> Self {
        Store { paths: &g.gd.paths }
    }

    pub(crate) fn config(&self, id: &ImageId) -> PathBuf {
        self.paths.image_config(id)
    }

    /// `layerdb/sha256/<chain hex>`.
    pub(crate) fn layer_dir(&self, chain: &ChainId) -> PathBuf {
        self.paths.layer(chain)
    }

    /// `<driver home>/<cache-id>/diff`.
    pub(crate) fn diff_dir(&self, cache: &CacheId) -> PathBuf {
        self.paths.diff(&cache.0)
    }
}

/// One layer of an image: its diff ID and where its data is.
#[derive(Clone, Debug)]
pub(crate) struct LayerRef {
    pub diff_id: DiffId,
    pub chain_id: ChainId,
    pub layer_dir: PathBuf,
    pub diff_dir: PathBuf,
}

/// An image chosen by reference, read and checked.
#[derive(Clone, Debug)]
pub(crate) struct Chosen {
    pub id: ImageId,
    /// The reference it was first named by (for messages).
    pub named: String,
    /// Familiar `name:tag` of every reference naming it by tag.
    pub tags: Vec<String>,
    /// The config file, exactly as stored (its sha256 is the ID).
    pub config: Vec<u8>,
    /// Bottom layer first.
    pub layers: Vec<LayerRef>,
    /// imagedb `parent` metadata.
    pub parent: Option<ImageId>,
}

/// Resolves `refs` as `verify --image` does and reads each image's config
/// and layer chain. An image named twice is chosen once, with the tags of
/// both names. A tag is kept when the image was named by it (`name:tag`,
/// or `name` for `name:latest`), as `docker save` keeps it; an image named
/// by ID or digest has none.
pub(crate) fn choose(g: &Graph, refs: &[String]) -> Result<Vec<Chosen>, ArchiveError> {
    let snap = g.snap;
    let store = Store::new(g);
    let mut out: Vec<Chosen> = Vec::new();
    for r in refs {
        let id = select::resolve(g, r)?;
        let tag = select::tag_of(r).filter(|t| {
            snap.refs
                .iter()
                .any(|x| &x.reference == t && x.image == id && !x.is_digest())
        });
        if let Some(c) = out.iter_mut().find(|c| c.id == id) {
            if let Some(t) = tag
                && !c.tags.contains(&t)
            {
                c.tags.push(t);
            }
            continue;
        }
        let Some(img) = snap.images.get(&id) else {
            return Err(SelectError::NotFound(r.clone()).into());
        };
        let path = store.config(&id);
        let config = std::fs::read(&path).map_err(|e| {
            ArchiveError::Damaged(format!(
                "image {r} ({id}): cannot read its config {}: {e}",
                path.display()
            ))
        })?;
        let got = Digest::of_bytes(&config);
        if got != id.0 {
            return Err(ArchiveError::Damaged(format!(
                "image {r} ({id}): config {} hashes to {got}, not to the image ID (damaged)",
                path.display()
            )));
        }
        let mut layers = Vec::with_capacity(img.diff_ids.len());
        for (diff_id, chain_id) in img.diff_ids.iter().zip(&g.chain(&id)) {
            let Some(cache_id) = snap
                .layers
                .get(chain_id)
                .and_then(|_| g.gd.cache_id(chain_id))
            else {
                return Err(ArchiveError::Damaged(format!(
                    "image {r} ({id}): layer {chain_id} (diff ID {diff_id}) is missing from \
                     layerdb or cannot be loaded ({})",
                    store.layer_dir(chain_id).display()
                )));
            };
            layers.push(LayerRef {
                diff_id: *diff_id,
                chain_id: *chain_id,
                layer_dir: store.layer_dir(chain_id),
                diff_dir: store.diff_dir(cache_id),
            });
        }
        out.push(Chosen {
            id,
            named: r.clone(),
            tags: tag.into_iter().collect(),
            config,
            layers,
            parent: img.parent,
        });
    }
    Ok(out)
}

/// The error for a layer whose stream cannot be rebuilt exactly: the check
/// ID of `verify --deep`, the file at fault and what is wrong with it.
pub(crate) fn layer_error(image: &str, l: &LayerRef, outcome: &Outcome) -> ArchiveError {
    let (check, path, message) = match outcome {
        Outcome::Verified => unreachable!("a verified layer is not an error"),
        Outcome::Damaged { file, message } => match file {
            Some(f) if plain_name(f) => (
                "layer-content",
                l.diff_dir
                    .join(f.trim_start_matches("./").trim_start_matches('/')),
                message.clone(),
            ),
            Some(f) => (
                "layer-content",
                l.diff_dir.clone(),
                format!("{f}: {message}"),
            ),
            None => ("layer-content", l.diff_dir.clone(), message.clone()),
        },
        Outcome::TarSplit { message } => (
            "tar-split",
            l.layer_dir.join("tar-split.json.gz"),
            message.clone(),
        ),
        Outcome::Unverifiable { reason } => ("unverifiable", l.diff_dir.clone(), reason.clone()),
    };
    ArchiveError::Damaged(format!(
        "layer {} (diff ID {}) of {image} cannot be rebuilt exactly ({check}): {}: {message}",
        l.chain_id,
        l.diff_id,
        path.display()
    ))
}

/// A tar name that maps to a path under `diff/` as written (display names
/// escape raw bytes as `\xNN`).
fn plain_name(f: &str) -> bool {
    !f.contains("\\x") && f.split('/').all(|c| c != "..")
}

/// `name:tag` split into repository and tag.
pub(crate) fn split_tag(t: &str) -> (&str, &str) {
    let slash = t.rfind('/').map_or(0, |i| i + 1);
    match t[slash..].rfind(':') {
        Some(i) => (&t[..slash + i], &t[slash + i + 1..]),
        None => (t, "latest"),
    }
}

/// The fully qualified form of a familiar name (`app` →
/// `docker.io/library/app`, `me/app` → `docker.io/me/app`).
pub(crate) fn qualified(repo: &str) -> String {
    let first = repo.split('/').next().unwrap_or(repo);
    let has_domain =
        repo.contains('/') && (first.contains('.') || first.contains(':') || first == "localhost");
    if has_domain {
        repo.to_string()
    } else if repo.contains('/') {
        format!("docker.io/{repo}")
    } else {
        format!("docker.io/library/{repo}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_split_and_qualify() {
        assert_eq!(split_tag("app:1"), ("app", "1"));
        assert_eq!(
            split_tag("example.com:5000/team/app:v1"),
            ("example.com:5000/team/app", "v1")
        );
        assert_eq!(
            split_tag("example.com:5000/app"),
            ("example.com:5000/app", "latest")
        );
        assert_eq!(qualified("app"), "docker.io/library/app");
        assert_eq!(qualified("me/app"), "docker.io/me/app");
        assert_eq!(qualified("example.com/team/app"), "example.com/team/app");
        assert_eq!(qualified("localhost/app"), "localhost/app");
    }
}
