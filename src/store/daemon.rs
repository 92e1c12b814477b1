//! Is a daemon alive on this root? Being written.
