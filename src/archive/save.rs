//! `dockgc save`: a `docker save` archive of images, read from the root.
//!
//! Every layer is rebuilt by [`deep::stream_layer`] straight into its place
//! in the archive while it is hashed, and the save fails (nothing is left at
//! the destination) unless the stream hashes to the layer's diff ID. A layer
//! shared by several images is written once. Layers are never held in
//! memory; the output is written in one of three ways:
//!
//! * to a file, uncompressed: the stream lengths are read from the
//!   tar-splits first, so every layer's offset is known; a disk without
//!   room for the whole archive fails at once, and the layers are written
//!   in parallel, each at its offset (`pwrite`);
//! * to a stream (stdout), uncompressed: the same lengths, then one layer
//!   after the other;
//! * gzip: layers are compressed in parallel into unnamed temporary files
//!   (next to the output, or in `$TMPDIR` for a stream), since a tar header
//!   needs the compressed length first, and appended in order. At most two
//!   per thread wait to be appended.
//!
//! Layers come first, then configs and manifests: an archive cut short is
//! never one that looks complete.

use super::oci::Blob;
use super::output::{AtomicFile, Counting, WriteAt, check_space, is_cancelled};
use super::tarw::{self, END, Header, Kind};
use super::{ArchiveError, Chosen, LayerRef, Member, Target, choose, docker_archive, layer_error};
use super::{members_bytes, oci};
use crate::graph::Graph;
use crate::ids::{DiffId, ImageId};
use crate::verify::deep::{self, Outcome};
use flate2::Compression;
use flate2::write::GzEncoder;
use rayon::prelude::*;
use serde::Serialize;
use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::io::{self, BufWriter, Seek, Write};
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Condvar, Mutex};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Format {
    /// `manifest.json`, `repositories`, `<id>.json`, `<diff ID>/layer.tar`.
    DockerArchive,
    /// An OCI image layout (with `manifest.json`, as Engine 25+ writes it).
    Oci,
}

#[derive(Clone, Debug)]
pub struct SaveOptions {
    /// Image references, as `verify --image` takes them.
    pub images: Vec<String>,
    pub format: Format,
    /// Compress layers with gzip at this level (1-9).
    pub gzip: Option<u32>,
}

#[derive(Debug, Serialize)]
pub struct SavedImage {
    pub id: ImageId,
    /// The reference it was named by first.
    pub named: String,
    /// The tags written into the archive.
    pub tags: Vec<String>,
    pub layers: usize,
}

#[derive(Debug, Serialize)]
pub struct SaveReport {
    pub format: Format,
    pub images: Vec<SavedImage>,
    /// Distinct layers written.
    pub layers: usize,
    /// Their uncompressed stream bytes.
    pub layer_bytes: u64,
    /// Bytes of the whole archive.
    pub archive_bytes: u64,
}

/// Buffer between `stream_layer` and a file written at an offset.
const WRITE_BUF: usize = 256 << 10;

/// A stream path in error messages.
const STREAM: &str = "-";

/// One distinct layer to write.
struct Job {
    layer: LayerRef,
    /// The first image that has it, for messages.
    image: String,
}

/// How one layer job ended.
enum Fail {
    /// Stopped because another one failed.
    Cancelled,
    Error(ArchiveError),
}

impl From<ArchiveError> for Fail {
    fn from(e: ArchiveError) -> Self {
        Fail::Error(e)
    }
}

/// Saves the images `opts.images` names to `target`. `hashed` counts the
/// layer bytes rebuilt so far (progress).
pub fn save(
    g: &Graph,
    opts: &SaveOptions,
    target: Target<'_>,
    hashed: &AtomicU64,
) -> Result<SaveReport, ArchiveError> {
    let images = choose(g, &opts.images)?;
    let mut seen = HashSet::new();
    let jobs: Vec<Job> = images
        .iter()
        .flat_map(|c| c.layers.iter().map(move |l| (c, l)))
        .filter(|(_, l)| seen.insert(l.diff_id))
        .map(|(c, l)| Job {
            layer: l.clone(),
            image: c.named.clone(),
        })
        .collect();
    let plan = Plan {
        images: &images,
        jobs: &jobs,
        format: opts.format,
        gzip: opts.gzip.is_some(),
    };
    let (layer_bytes, archive_bytes) = match (opts.gzip, target) {
        (None, Target::File(dest)) => positioned(&plan, dest, hashed)?,
        (None, Target::Stream(w)) => sequential(&plan, w, hashed)?,
        (Some(level), target) => spooled(&plan, target, level, hashed)?,
    };
    Ok(SaveReport {
        format: opts.format,
        images: images
            .iter()
            .map(|c| SavedImage {
                id: c.id,
                named: c.named.clone(),
                tags: c.tags.clone(),
                layers: c.layers.len(),
            })
            .collect(),
        layers: jobs.len(),
        layer_bytes,
        archive_bytes,
    })
}

struct Plan<'a> {
    images: &'a [Chosen],
    jobs: &'a [Job],
    format: Format,
    gzip: bool,
}

impl Plan<'_> {
    /// Members before the first layer.
    fn head(&self) -> Vec<Member> {
        match self.format {
            Format::DockerArchive => Vec::new(),
            Format::Oci => vec![
                Member::dir("blobs/".into()),
                Member::dir("blobs/sha256/".into()),
            ],
        }
    }

    /// The header block(s) of a layer member: its directory (docker-archive)
    /// and its own header. `blob` is what the layer is stored as.
    fn layer_header(&self, diff: &DiffId, blob: &Blob) -> Vec<u8> {
        let mut out = Vec::with_capacity(1024);
        let name = match self.format {
            Format::DockerArchive => {
                Member::dir(docker_archive::layer_dir(diff)).write(&mut out);
                docker_archive::layer_member(diff, self.gzip)
            }
            Format::Oci => oci::blob_path(&blob.digest),
        };
        tarw::write_header(
            &Header::plain(name.as_bytes(), Kind::File, blob.size, 0),
            &mut out,
        );
        out
    }

    fn metadata(&self, blobs: &HashMap<DiffId, Blob>) -> Vec<Member> {
        match self.format {
            Format::DockerArchive => docker_archive::metadata(self.images, self.gzip),
            Format::Oci => oci::metadata(self.images, blobs, self.gzip),
        }
    }

    /// Every layer's uncompressed stream length, from the tar-splits (in
    /// parallel; cheap next to reading the files).
    fn stream_lengths(&self) -> Result<Vec<u64>, ArchiveError> {
        self.jobs
            .par_iter()
            .map(|j| {
                deep::stream_len(&j.layer.layer_dir)
                    .map_err(|o| layer_error(&j.image, &j.layer, &o))
            })
            .collect()
    }

    /// Blobs of uncompressed layers: the digest is the diff ID.
    fn plain_blobs(&self, lengths: &[u64]) -> HashMap<DiffId, Blob> {
        self.jobs
            .iter()
            .zip(lengths)
            .map(|(j, &size)| {
                (
                    j.layer.diff_id,
                    Blob {
                        digest: j.layer.diff_id.0,
                        size,
                    },
                )
            })
            .collect()
    }
}

/// Rebuilds one layer into `sink` and checks it: the stream hashes to the
/// diff ID and has the expected length (when known).
fn stream_into<W: Write>(
    job: &Job,
    sink: &mut W,
    expect_len: Option<u64>,
    hashed: &AtomicU64,
    out_path: &Path,
) -> Result<u64, Fail> {
    let l = &job.layer;
    let check = deep::stream_layer(
        l.chain_id,
        &l.diff_id,
        &l.layer_dir,
        &l.diff_dir,
        hashed,
        sink,
    )
    .map_err(|e| sink_error(e, out_path))?;
    if check.outcome != Outcome::Verified {
        return Err(layer_error(&job.image, l, &check.outcome).into());
    }
    if let Some(want) = expect_len
        && check.bytes != want
    {
        return Err(ArchiveError::Damaged(format!(
            "layer {} (diff ID {}) of {}: its stream is {} bytes, its tar-split said {want} \
             (did the layer change during the save?)",
            l.chain_id, l.diff_id, job.image, check.bytes
        ))
        .into());
    }
    Ok(check.bytes)
}

fn sink_error(e: io::Error, out_path: &Path) -> Fail {
    if is_cancelled(&e) {
        Fail::Cancelled
    } else {
        Fail::Error(ArchiveError::io(out_path, e))
    }
}

/// The error to report: the first real one in archive order.
fn first_error(results: Vec<(usize, Result<(), Fail>)>) -> Result<(), ArchiveError> {
    let mut errors: Vec<(usize, ArchiveError)> = results
        .into_iter()
        .filter_map(|(i, r)| match r {
            Err(Fail::Error(e)) => Some((i, e)),
            _ => None,
        })
        .collect();
    errors.sort_by_key(|(i, _)| *i);
    match errors.into_iter().next() {
        Some((_, e)) => Err(e),
        None => Ok(()),
    }
}

/// Uncompressed, to a file: every offset known up front, layers in parallel.
fn positioned(
    plan: &Plan<'_>,
    dest: &Path,
    hashed: &AtomicU64,
) -> Result<(u64, u64), ArchiveError> {
    let lengths = plan.stream_lengths()?;
    let blobs = plan.plain_blobs(&lengths);
    let head = members_bytes(&plan.head());
    // (header offset, header bytes, body offset) of each layer.
    let mut slots = Vec::with_capacity(plan.jobs.len());
    let mut pos = head.len() as u64;
    for (j, &len) in plan.jobs.iter().zip(&lengths) {
        let header = plan.layer_header(&j.layer.diff_id, &blobs[&j.layer.diff_id]);
        let body = pos + header.len() as u64;
        slots.push((pos, header, body));
        pos = body + len + tarw::padding(len) as u64;
    }
    let mut tail = members_bytes(&plan.metadata(&blobs));
    tail.extend_from_slice(&END);
    let total = pos + tail.len() as u64;

    let out = AtomicFile::create(dest)?;
    let file = out.file();
    check_space(file, total, dest)?;
    file.write_all_at(&head, 0)
        .map_err(|e| ArchiveError::io(dest, e))?;

    let cancel = AtomicBool::new(false);
    // Largest first, so one big layer does not start last and run alone.
    let mut order: Vec<usize> = (0..plan.jobs.len()).collect();
    order.sort_by_key(|&i| std::cmp::Reverse(lengths[i]));
    let results: Vec<(usize, Result<(), Fail>)> = order
        .par_iter()
        .map(|&i| {
            let r = if cancel.load(Ordering::Relaxed) {
                Err(Fail::Cancelled)
            } else {
                let (at, header, body) = &slots[i];
                write_layer_at(
                    file,
                    *at,
                    header,
                    *body,
                    &plan.jobs[i],
                    lengths[i],
                    hashed,
                    &cancel,
                    dest,
                )
            };
            if r.is_err() {
                cancel.store(true, Ordering::Relaxed);
            }
            (i, r)
        })
        .collect();
    first_error(results)?;
    file.write_all_at(&tail, pos)
        .map_err(|e| ArchiveError::io(dest, e))?;
    out.commit()?;
    Ok((lengths.iter().sum(), total))
}

#[allow(clippy::too_many_arguments)]
fn write_layer_at(
    file: &File,
    at: u64,
    header: &[u8],
    body: u64,
    job: &Job,
    len: u64,
    hashed: &AtomicU64,
    cancel: &AtomicBool,
    dest: &Path,
) -> Result<(), Fail> {
    let io = |e| Fail::Error(ArchiveError::io(dest, e));
    file.write_all_at(header, at).map_err(io)?;
    let mut w = BufWriter::with_capacity(
        WRITE_BUF,
        WriteAt {
            file,
            pos: body,
            cancel,
        },
    );
    stream_into(job, &mut w, Some(len), hashed, dest)?;
    w.flush().map_err(|e| sink_error(e, dest))?;
    let pad = [0u8; 512];
    file.write_all_at(&pad[..tarw::padding(len)], body + len)
        .map_err(io)?;
    Ok(())
}

/// Uncompressed, to a stream: one layer after the other.
fn sequential(
    plan: &Plan<'_>,
    w: &mut (dyn Write + Send),
    hashed: &AtomicU64,
) -> Result<(u64, u64), ArchiveError> {
    let lengths = plan.stream_lengths()?;
    let blobs = plan.plain_blobs(&lengths);
    let path = Path::new(STREAM);
    let io = |e| ArchiveError::io(path, e);
    let mut out = Counting::new(BufWriter::with_capacity(1 << 20, w), false, None);
    out.write_all(&members_bytes(&plan.head())).map_err(io)?;
    for (j, &len) in plan.jobs.iter().zip(&lengths) {
        out.write_all(&plan.layer_header(&j.layer.diff_id, &blobs[&j.layer.diff_id]))
            .map_err(io)?;
        stream_into(j, &mut out, Some(len), hashed, path).map_err(|f| match f {
            Fail::Error(e) => e,
            Fail::Cancelled => unreachable!("nothing cancels a sequential save"),
        })?;
        out.write_all(&[0u8; 512][..tarw::padding(len)])
            .map_err(io)?;
    }
    out.write_all(&members_bytes(&plan.metadata(&blobs)))
        .map_err(io)?;
    out.write_all(&END).map_err(io)?;
    out.flush().map_err(io)?;
    Ok((lengths.iter().sum(), out.len))
}

/// A layer compressed into an unnamed temporary file.
struct Spooled {
    file: File,
    blob: Blob,
    stream: u64,
}

struct Shared {
    /// Next job to start.
    next: usize,
    /// Jobs appended to the output so far.
    appended: usize,
    done: Vec<Option<Result<Spooled, Fail>>>,
}

/// gzip: compressed in parallel into spool files, appended in order.
fn spooled(
    plan: &Plan<'_>,
    target: Target<'_>,
    level: u32,
    hashed: &AtomicU64,
) -> Result<(u64, u64), ArchiveError> {
    let (atomic, stream) = match target {
        Target::File(p) => (Some((AtomicFile::create(p)?, p)), None),
        Target::Stream(w) => (None, Some(w)),
    };
    let out_path = atomic.as_ref().map_or(Path::new(STREAM), |(_, p)| *p);
    let spool_dir = atomic
        .as_ref()
        .map_or_else(std::env::temp_dir, |(a, _)| a.dir().to_path_buf());
    let threads = rayon::current_num_threads().max(1);
    let window = 2 * threads;
    let n = plan.jobs.len();
    let shared = Mutex::new(Shared {
        next: 0,
        appended: 0,
        done: (0..n).map(|_| None).collect(),
    });
    let changed = Condvar::new();
    let cancel = AtomicBool::new(false);

    let writer: Box<dyn Write + Send + '_> = match (&atomic, stream) {
        (Some((a, _)), _) => Box::new(a.file()),
        (None, Some(w)) => Box::new(w),
        (None, None) => unreachable!("a target is a file or a stream"),
    };
    let result = std::thread::scope(|s| {
        for _ in 0..threads.min(n) {
            s.spawn(|| {
                loop {
                    let i = {
                        let mut st = shared.lock().unwrap_or_else(|p| p.into_inner());
                        while st.next < n
                            && st.next >= st.appended + window
                            && !cancel.load(Ordering::Relaxed)
                        {
                            st = changed.wait(st).unwrap_or_else(|p| p.into_inner());
                        }
                        if st.next >= n || cancel.load(Ordering::Relaxed) {
                            return;
                        }
                        st.next += 1;
                        st.next - 1
                    };
                    let r = spool(&plan.jobs[i], &spool_dir, level, hashed, &cancel);
                    if r.is_err() {
                        cancel.store(true, Ordering::Relaxed);
                    }
                    shared.lock().unwrap_or_else(|p| p.into_inner()).done[i] = Some(r);
                    changed.notify_all();
                }
            });
        }
        let r = append_all(plan, writer, &shared, &changed, out_path);
        if r.is_err() {
            cancel.store(true, Ordering::Relaxed);
            changed.notify_all();
        }
        r
    });
    let (stream_bytes, total) = match result {
        Ok(x) => x,
        Err(Fail::Error(e)) => return Err(e),
        Err(Fail::Cancelled) => {
            // A worker failed: report the first real error, in archive order.
            let st = shared.into_inner().unwrap_or_else(|p| p.into_inner());
            let results = st
                .done
                .into_iter()
                .enumerate()
                .filter_map(|(i, r)| r.map(|r| (i, r.map(|_| ()))))
                .collect();
            first_error(results)?;
            unreachable!("a cancelled save has a failed layer");
        }
    };
    if let Some((a, _)) = atomic {
        a.commit()?;
    }
    Ok((stream_bytes, total))
}

/// The appending side of [`spooled`]: each layer in order as soon as it
/// is compressed, then the metadata.
fn append_all(
    plan: &Plan<'_>,
    writer: Box<dyn Write + Send + '_>,
    shared: &Mutex<Shared>,
    changed: &Condvar,
    out_path: &Path,
) -> Result<(u64, u64), Fail> {
    let io = |e| Fail::Error(ArchiveError::io(out_path, e));
    let mut out = Counting::new(BufWriter::with_capacity(1 << 20, writer), false, None);
    out.write_all(&members_bytes(&plan.head())).map_err(io)?;
    let mut blobs = HashMap::new();
    let mut stream_bytes = 0;
    for (i, j) in plan.jobs.iter().enumerate() {
        let r = {
            let mut st = shared.lock().unwrap_or_else(|p| p.into_inner());
            loop {
                if let Some(r) = st.done[i].take() {
                    break r;
                }
                st = changed.wait(st).unwrap_or_else(|p| p.into_inner());
            }
        };
        let mut sp = match r {
            Ok(sp) => sp,
            Err(f) => {
                // Put it back for the caller's report.
                shared.lock().unwrap_or_else(|p| p.into_inner()).done[i] = Some(Err(f));
                return Err(Fail::Cancelled);
            }
        };
        out.write_all(&plan.layer_header(&j.layer.diff_id, &sp.blob))
            .map_err(io)?;
        sp.file.rewind().map_err(io)?;
        let copied = io::copy(&mut sp.file, &mut out).map_err(io)?;
        if copied != sp.blob.size {
            return Err(Fail::Error(ArchiveError::io(
                out_path,
                io::Error::other(format!(
                    "spooled layer {} is {copied} bytes, {} were written",
                    j.layer.diff_id, sp.blob.size
                )),
            )));
        }
        out.write_all(&[0u8; 512][..tarw::padding(sp.blob.size)])
            .map_err(io)?;
        stream_bytes += sp.stream;
        blobs.insert(j.layer.diff_id, sp.blob);
        shared.lock().unwrap_or_else(|p| p.into_inner()).appended = i + 1;
        changed.notify_all();
    }
    out.write_all(&members_bytes(&plan.metadata(&blobs)))
        .map_err(io)?;
    out.write_all(&END).map_err(io)?;
    out.flush().map_err(io)?;
    Ok((stream_bytes, out.len))
}

/// Compresses one layer into an unnamed temporary file in `dir`.
fn spool(
    job: &Job,
    dir: &Path,
    level: u32,
    hashed: &AtomicU64,
    cancel: &AtomicBool,
) -> Result<Spooled, Fail> {
    if cancel.load(Ordering::Relaxed) {
        return Err(Fail::Cancelled);
    }
    let file = tempfile::tempfile_in(dir).map_err(|e| Fail::Error(ArchiveError::io(dir, e)))?;
    let counted = Counting::new(
        BufWriter::with_capacity(WRITE_BUF, &file),
        true,
        Some(cancel),
    );
    let mut gz = GzEncoder::new(counted, Compression::new(level));
    let stream = stream_into(job, &mut gz, None, hashed, dir)?;
    let mut counted = gz.finish().map_err(|e| sink_error(e, dir))?;
    counted.flush().map_err(|e| sink_error(e, dir))?;
    let digest = counted.digest().expect("hashing was asked for");
    let size = counted.len;
    drop(counted);
    if cancel.load(Ordering::Relaxed) {
        return Err(Fail::Cancelled);
    }
    Ok(Spooled {
        file,
        blob: Blob { digest, size },
        stream,
    })
}
