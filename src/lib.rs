//! dockgc: report, verify and prune Docker's graphdriver data root offline.
//!
//! Flow: `store::load` (reads only) → `Snapshot` → `graph::Graph` (pure) →
//! `usage` (df numbers) → `render` (table / json). Library code never prints
//! and never exits; `main.rs` maps outcomes to exit codes.

pub mod apply;
pub mod archive;
pub mod buildcache;
pub mod disk;
pub mod engine;
pub mod errtext;
pub mod graph;
pub mod holds;
pub mod ids;
pub mod leftovers;
pub mod plan;
pub mod policy;
pub mod reach;
pub mod reconcile;
pub mod render;
pub mod store;
pub mod synth;
pub mod tarfmt;
pub mod units;
pub mod usage;
pub mod verify;

/// `prune --trash` and `dockgc trash`: [`apply::trash`].
pub use apply::trash;
