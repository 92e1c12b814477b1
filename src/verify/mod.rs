//! `verify`: integrity checks of the whole store. Being written.
pub mod deep;
pub mod tarsplit;
