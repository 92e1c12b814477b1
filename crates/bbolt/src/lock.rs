//! Probing whether a writer holds a file's lock, without ever waiting.

use std::fs::{File, TryLockError};
use std::io;
use std::path::Path;

/// Result of [`probe_lock`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LockProbe {
    /// No process holds an exclusive lock: no bbolt writer has the file open.
    Free,
    /// Another open file description holds an exclusive `flock`: a bbolt
    /// writer (a running daemon) has the file open.
    HeldExclusive,
}

/// Tries `flock(LOCK_SH | LOCK_NB)` on a read-only descriptor and releases it
/// at once. bbolt writers take `LOCK_EX` for their whole life, and a daemon
/// that starts while someone holds `LOCK_SH` waits or fails, so the shared
/// lock is held only for the instant of the probe. Reading never needs it.
pub fn probe_lock(path: impl AsRef<Path>) -> io::Result<LockProbe> {
    let file = File::open(path)?;
    match file.try_lock_shared() {
        Ok(()) => {
            file.unlock()?;
            Ok(LockProbe::Free)
        }
        Err(TryLockError::WouldBlock) => Ok(LockProbe::HeldExclusive),
        Err(TryLockError::Error(e)) => Err(e),
    }
}
