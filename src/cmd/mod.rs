//! The binary's command handlers: each loads, calls the library, renders,
//! logs and returns an exit status. Only this side prints.

pub mod config;
pub mod demo;
pub mod df;
pub mod export;
pub mod log;
pub mod output;
pub mod prune;
pub mod save;
pub mod trash;
pub mod verify;

use crate::config::Config;
use std::path::PathBuf;

/// Exit statuses (README, "Exit status").
pub const EXIT_OK: u8 = 0;
pub const EXIT_FOUND: u8 = 1;
pub const EXIT_CANNOT_RUN: u8 = 2;

/// What every handler gets: the effective root, the storage driver asked
/// for (`--driver`), and the config it came from.
pub struct Ctx {
    pub root: PathBuf,
    /// `--containerd-root` and `--namespace`.
    pub containerd: dockgc::store::ContainerdOptions,
    pub driver: Option<String>,
    pub config: Config,
    pub config_path: Option<PathBuf>,
}

impl Ctx {
    /// How commands that only need what df needs load the root.
    pub fn load_options(&self, lower: bool) -> dockgc::store::LoadOptions {
        dockgc::store::LoadOptions {
            lower,
            driver: self.driver.clone(),
            share: None,
        }
    }
}

/// A refusal: reported as is, exit status 2.
#[derive(Debug)]
pub struct Refused(pub String);

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Refused {}

/// Read-only commands share the root lock that prune holds exclusively, so
/// they never report a store half-way through a prune: they wait for it.
/// Locking changes nothing on disk. Returns the held lock (None: could not
/// open the root, which the reader then reports properly).
pub fn read_lock(root: &std::path::Path) -> Option<std::fs::File> {
    let f = std::fs::File::open(root).ok()?;
    match f.try_lock_shared() {
        Ok(()) => Some(f),
        Err(std::fs::TryLockError::WouldBlock) => {
            log::info(
                "lock.wait",
                &format!(
                    "another dockgc run holds {}; waiting for it to finish",
                    root.display()
                ),
                serde_json::json!({"root": root}),
            );
            f.lock_shared().ok().map(|_| f)
        }
        Err(_) => None,
    }
}

pub fn now() -> i64 {
    jiff::Timestamp::now().as_second()
}
