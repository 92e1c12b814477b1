//! A read-only reader of bbolt (`go.etcd.io/bbolt`, format version 2) files,
//! as written by Docker, BuildKit and containerd.
//!
//! * It reads the file whole into memory and never writes or locks it, so it
//!   can read a database a live daemon holds ([`Db::open`] retries until it
//!   has one consistent snapshot) and never delays a daemon's start.
//! * [`Db::open`] and [`Db::from_bytes`] validate every page reachable from the
//!   chosen meta page once; afterwards lookups and iteration cannot fail. A
//!   damaged file gives an [`Error`] naming the file, the page and what is
//!   wrong, never a panic.
//! * [`Db::check`] adds the freelist cross-check; [`probe_lock`] tells whether
//!   a writer holds the file.
//!
//! ```no_run
//! let db = bbolt::Db::open("/var/lib/docker/volumes/metadata.db")?;
//! if let Some(volumes) = db.bucket("volumes") {
//!     for (name, json) in volumes.values() {
//!         println!("{} {}", String::from_utf8_lossy(name), json.len());
//!     }
//! }
//! # Ok::<(), bbolt::Error>(())
//! ```
//!
//! Validation rules, checked at open for every page reached: page ids in
//! `2..high_water_mark` and their overflow runs too; the header id equals the
//! id followed; flags exactly branch or leaf; the element array and every
//! key and value inside the page span (inline buckets: inside their value);
//! keys strictly ascending within a bucket and within the range their branch
//! key promises; no page reached twice anywhere (bbolt trees never share
//! pages, so this also catches every cycle); nesting at most 256 levels; and
//! no more elements than the file has room for (so overlapping inline buckets
//! cannot make the work grow beyond the file size).

#![forbid(unsafe_code)]

mod bucket;
#[cfg(feature = "writer")]
pub mod build;
mod check;
mod db;
mod error;
mod lock;
mod meta;
mod page;
mod walk;

pub use bucket::{Bucket, Entry, Iter};
pub use check::CheckReport;
pub use db::{Db, Retry};
pub use error::{Damage, Error};
pub use lock::{LockProbe, probe_lock};
pub use meta::Meta;
pub use walk::Stats;
