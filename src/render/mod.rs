//! Presentation: the computed structs become tables or JSON. Computing never
//! formats; this module never decides.

pub mod containerd;
mod plan;
pub mod prometheus;
mod table;
pub mod tabwriter;
mod verify;

pub use plan::{outcome_table, plan_table};
pub use table::{TableOptions, df_table};
pub use verify::verify_table;

use serde::Serialize;

/// Pretty JSON and a newline, streamed to `w`: the documented, stable contract.
pub fn json_to<W: std::io::Write, T: Serialize>(mut w: W, value: &T) -> std::io::Result<()> {
    serde_json::to_writer_pretty(&mut w, value)?;
    w.write_all(b"\n")?;
    w.flush()
}
