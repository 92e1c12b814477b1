//! Commands and flags. Every flag is documented where it is defined.

use crate::usage::SharedSizeRule;
use clap::{Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

#[derive(Parser, Debug)]
#[command(
    name = "dockgc",
    version,
    about = "Report, verify and prune Docker's graphdriver data root, offline",
    long_about = "dockgc reads Docker's data root directly (graphdriver mode, overlay2), \
                  with the daemon running or stopped, and reports where the disk went.\n\n\
                  Exit status: 0 success, 1 verify found errors (or warnings with --strict), \
                  2 could not run (unreadable or unsupported root, unknown image, bad usage)."
)]
pub struct Cli {
    /// Docker data root to read.
    #[arg(
        long,
        global = true,
        env = "DOCKGC_ROOT",
        default_value = "/var/lib/docker"
    )]
    pub root: PathBuf,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Show where the disk went: images, containers, build cache, logs, orphans.
    Df(DfArgs),
    /// Check the store's integrity: digests, chain IDs, links, files; --deep rebuilds every layer.
    Verify(VerifyArgs),
    /// Write a small synthetic data root to a temporary directory and report on it.
    Demo(DemoArgs),
}

#[derive(clap::Args, Debug)]
pub struct DfArgs {
    /// Per-image, per-container and per-orphan detail.
    #[arg(short, long)]
    pub verbose: bool,

    /// With -v: also list untagged intermediate images (like `docker images -a`).
    #[arg(short, long)]
    pub all: bool,

    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,

    /// Also walk the real allocated bytes under the root and reconcile them by category.
    #[arg(long)]
    pub disk: bool,

    /// Which images count when deciding a layer is shared: `listed` (Engine 20.10-23)
    /// or `all` (Engine 24+). Default: the rule of the engine that wrote the root.
    #[arg(long, value_enum)]
    pub shared_size: Option<SharedSizeRule>,
}

#[derive(clap::Args, Debug)]
pub struct VerifyArgs {
    /// Rebuild every layer's tar stream from tar-split and diff/ and compare it with its diff ID.
    #[arg(long)]
    pub deep: bool,

    /// Only the layer chains of these images (ID, short ID, name:tag, name@digest); repeatable.
    #[arg(long = "image", value_name = "REF")]
    pub images: Vec<String>,

    /// Also walk each layer's diff/ and compare it with the layer's size file (warnings).
    #[arg(long)]
    pub sizes: bool,

    /// Exit 1 on warnings too.
    #[arg(long)]
    pub strict: bool,

    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
}

#[derive(clap::Args, Debug)]
pub struct DemoArgs {
    /// Write the demo root here (must not exist) and keep it, instead of a temp dir.
    #[arg(long)]
    pub dir: Option<PathBuf>,

    /// Show the verbose report.
    #[arg(short, long)]
    pub verbose: bool,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Table,
    Json,
}
