//! Presentation: the computed structs become tables or JSON. Computing never
//! formats; this module never decides.

mod table;
pub mod tabwriter;

pub use table::{TableOptions, df_table};

use serde::Serialize;

/// Pretty JSON with a trailing newline: the documented, stable contract.
pub fn json<T: Serialize>(value: &T) -> String {
    let mut s =
        serde_json::to_string_pretty(value).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"));
    s.push('\n');
    s
}
