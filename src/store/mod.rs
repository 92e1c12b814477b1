//! Reading a data root into a [`Snapshot`]. One file per on-disk area.
//! Everything here only reads; every malformed item becomes an [`Anomaly`].

mod model;
pub use model::*;
