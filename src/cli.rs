//! Commands and flags. Every flag is documented where it is defined.

//!
//! This module is the binary's alone: the library never sees clap types.
//! `options.rs` turns these arguments (and the config file) into the
//! validated option values the library takes.

use clap::{Parser, Subcommand, ValueEnum};
use dockgc::policy::AgeBy;
use dockgc::units::{parse_bytes, parse_duration};
use dockgc::usage::SharedSizeRule;
use dockgc::usage::containerd::EngineVersion;
use std::path::PathBuf;

#[derive(Parser, Debug)]
#[command(
    name = "dockgc",
    version,
    about = "Report, verify and prune Docker's graphdriver data root, offline",
    long_about = "dockgc reads Docker's data root directly (graphdriver mode, overlay2), \
                  with the daemon running or stopped, and reports where the disk went.\n\n\
                  Exit status: 0 success (prune: done or nothing to do), 1 verify found errors \
                  (or warnings with --strict) or prune was partly done, 2 could not run or \
                  refused (unreadable or unsupported root, live daemon, stale plan, no \
                  confirmation, unknown image, bad usage)."
)]
pub struct Cli {
    /// Docker data root to read [default: the config file's `root`, else /var/lib/docker].
    #[arg(long, global = true, env = "DOCKGC_ROOT")]
    pub root: Option<PathBuf>,

    /// containerd root to read (its config's `root`) instead of looking for the
    /// one that serves a Docker root in containerd mode (/var/lib/containerd
    /// or <root>/containerd/daemon).
    #[arg(
        long,
        global = true,
        env = "DOCKGC_CONTAINERD_ROOT",
        value_name = "DIR"
    )]
    pub containerd_root: Option<PathBuf>,

    /// containerd namespace to report: `moby` (Docker 29), `k8s.io`
    /// (Kubernetes), `default` (nerdctl), any other, or `all` [default: moby].
    #[arg(long, global = true, env = "DOCKGC_NAMESPACE", value_name = "NS")]
    pub namespace: Option<String>,

    /// Config file [default: /etc/dockgc/config.toml when it exists].
    #[arg(long, global = true, env = "DOCKGC_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Log lines on stderr as text or as one JSON object per event.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    /// Log errors only.
    #[arg(short, long, global = true)]
    pub quiet: bool,

    /// Storage driver to read, over the daemon's configured one (a live
    /// dockerd's, or /etc/docker/daemon.json's `storage-driver`) and its
    /// prior-driver scan. dockgc reads overlay2 only.
    #[arg(long, global = true, value_name = "NAME")]
    pub driver: Option<String>,

    #[command(subcommand)]
    pub command: Command,
}

// Parsed once per run: the size of the largest variant does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Show where the disk went: images, containers, build cache, logs, orphans.
    Df(DfArgs),
    /// Validate the config file and print the effective settings.
    Config {
        #[command(subcommand)]
        action: ConfigAction,
    },
    /// Check the store's integrity: digests, chain IDs, links, files; --deep rebuilds every layer.
    Verify(VerifyArgs),
    /// Remove images, layers and orphans by policy, with a plan first and a crash-safe order.
    Prune(PruneArgs),
    /// Apply a plan saved with `prune --plan-out`, if the store still matches it.
    Apply(ApplyArgs),
    /// Write images to a `docker save` archive or an OCI layout, straight from the root.
    Save(SaveArgs),
    /// Write an image's flattened root filesystem, as `docker export` of a fresh container.
    Export(ExportArgs),
    /// List, restore or empty what `prune --trash` moved aside.
    Trash {
        #[command(subcommand)]
        action: TrashAction,
    },
    /// Write a small synthetic data root to a temporary directory and report on it.
    Demo(DemoArgs),
    /// Print shell completions (bash, zsh, fish, elvish, powershell) to stdout.
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff) to stdout, or write one page per command into DIR.
    Man {
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
    },
}

#[derive(clap::Args, Debug)]
pub struct DfArgs {
    /// Per-image, per-container and per-orphan detail.
    #[arg(short, long)]
    pub verbose: bool,

    /// With -v: also list untagged intermediate images (like `docker images -a`).
    #[arg(short, long)]
    pub all: bool,

    /// Also write the metrics (Prometheus text format) to FILE, atomically, for
    /// node-exporter's textfile collector.
    #[arg(long, value_name = "FILE")]
    pub textfile: Option<PathBuf>,

    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,

    /// Also walk the real allocated bytes under the root and reconcile them by category.
    #[arg(long)]
    pub disk: bool,

    /// Which images count when deciding a layer is shared: `listed` (Engine 20.10-23)
    /// or `all` (Engine 24+). Default: the rule of the engine that wrote the root.
    #[arg(long, value_enum)]
    pub shared_size: Option<SharedSizeArg>,

    /// containerd stores: the Docker Engine 29 release whose df rules size the
    /// images (29.0 to 29.3, 29.4, 29.5 and 29.6+ differ) [default: the newest].
    #[arg(long, value_name = "VERSION", value_parser = EngineVersion::parse)]
    pub engine_version: Option<EngineVersion>,
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

    /// Also write the metrics (Prometheus text format) to FILE, atomically, for
    /// node-exporter's textfile collector.
    #[arg(long, value_name = "FILE")]
    pub textfile: Option<PathBuf>,

    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
}

#[derive(clap::Args, Debug, Clone)]
pub struct PruneArgs {
    /// Select every image no container uses (default: only dangling images).
    #[arg(short, long)]
    pub all: bool,

    /// Docker's filters: `until=<duration|timestamp>`, `label=k[=v]`, `label!=k[=v]`; repeatable.
    #[arg(long = "filter", value_name = "FILTER")]
    pub filters: Vec<String>,

    /// Only images older than this (e.g. 7d, 12h), measured by --age-by.
    #[arg(long, value_name = "DUR", value_parser = parse_duration)]
    pub older_than: Option<i64>,

    /// What --older-than measures [default: created].
    #[arg(long, value_enum)]
    pub age_by: Option<AgeByArg>,

    /// Never remove images matching this: a glob over `repo:tag`, `repo@digest` or
    /// `repo`, an ID prefix, or `label=k[=v]`; repeatable.
    #[arg(long, value_name = "PATTERN")]
    pub keep: Vec<String>,

    /// In each repository, keep the images of the N most recently created tags.
    #[arg(long, value_name = "N")]
    pub keep_last: Option<usize>,

    /// Disk watermark: act only when the root's filesystem is fuller than PCT percent ...
    #[arg(long, value_name = "PCT", requires = "low")]
    pub high: Option<f64>,

    /// ... then evict least recently used eligible images until it is at most PCT percent full.
    #[arg(long, value_name = "PCT", requires = "high")]
    pub low: Option<f64>,

    /// Evict least recently used eligible images until this much is free (e.g. 20G).
    #[arg(long, value_name = "BYTES", value_parser = parse_bytes, conflicts_with = "high")]
    pub free: Option<u64>,

    /// Never evict images used or tagged more recently than this.
    #[arg(long, value_name = "DUR", value_parser = parse_duration)]
    pub min_age: Option<i64>,

    /// Also remove unreferenced driver dirs, layers and mounts, `-removing`
    /// leftovers, stale write-sets and dangling links (never BuildKit's, never unknown ones).
    #[arg(long)]
    pub orphans: bool,

    /// With --orphans: leave anything modified more recently than this [default: 1h].
    #[arg(long, value_name = "DUR", value_parser = parse_duration)]
    pub grace: Option<i64>,

    /// Also remove stopped containers (exited, dead, created) stopped longer
    /// than --container-age; they go first, so the images only they used go too.
    #[arg(long)]
    pub containers: bool,

    /// With --containers: how long a container must have been stopped
    /// (`FinishedAt`, or `Created` if it never ran) [default: 24h].
    #[arg(long, value_name = "DUR", value_parser = parse_duration)]
    pub container_age: Option<i64>,

    /// With --containers: never remove containers matching this: a glob over
    /// the name, or `label=k[=v]`; repeatable.
    #[arg(long, value_name = "PATTERN")]
    pub keep_container: Vec<String>,

    /// Also prune BuildKit's build cache through the daemon (live only):
    /// unused, unshared records, or every unused one with -a, as `docker
    /// builder prune [-a]`.
    #[arg(long)]
    pub build_cache: bool,

    /// With --build-cache: only records last used longer ago than this.
    #[arg(long, value_name = "DUR", value_parser = parse_duration)]
    pub build_cache_until: Option<i64>,

    /// With --build-cache: keep this much cache, most recently used first
    /// (BuildKit's keep-storage / reserved space).
    #[arg(long, value_name = "BYTES", value_parser = parse_bytes)]
    pub build_cache_keep: Option<u64>,

    /// Also remove dangling anonymous volumes, through the daemon (live
    /// only). Never taken from the config file.
    #[arg(long)]
    pub volumes: bool,

    /// With --volumes: unused named volumes too, as `docker volume prune -a`.
    #[arg(long, requires = "volumes")]
    pub all_volumes: bool,

    #[command(flatten)]
    pub mode: ModeArgs,

    /// Print the plan and change nothing.
    #[arg(long, short = 'n')]
    pub dry_run: bool,

    /// Save the plan as JSON, for `dockgc apply FILE`.
    #[arg(long, value_name = "FILE")]
    pub plan_out: Option<PathBuf>,

    /// Do not ask for confirmation (needed when not on a terminal).
    #[arg(short = 'f', long = "yes", alias = "force")]
    pub yes: bool,

    /// Move everything into <root>/dockgc-trash/<id>/ instead of deleting it.
    #[arg(long)]
    pub trash: bool,

    /// Also write the metrics (Prometheus text format) to FILE, atomically, for
    /// node-exporter's textfile collector.
    #[arg(long, value_name = "FILE")]
    pub textfile: Option<PathBuf>,

    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
}

/// Which executor runs a plan.
#[derive(clap::Args, Debug, Default, Clone)]
pub struct ModeArgs {
    /// Only with the daemon stopped: change the root directly, and refuse
    /// while a dockerd is alive on it.
    #[arg(long, conflicts_with = "live")]
    pub offline: bool,

    /// Only through a running daemon's Engine API; exit 2 when none is alive.
    #[arg(long)]
    pub live: bool,

    /// The daemon's Engine API: `unix:///path` or `tcp://host:port`
    /// [default: the socket of the dockerd alive on the root].
    #[arg(long, env = "DOCKER_HOST", value_name = "HOST")]
    pub host: Option<String>,
}

#[derive(clap::Args, Debug)]
pub struct ApplyArgs {
    /// A plan written by `prune --plan-out`.
    pub plan: PathBuf,

    #[command(flatten)]
    pub mode: ModeArgs,

    /// Do not ask for confirmation (needed when not on a terminal).
    #[arg(short = 'f', long = "yes", alias = "force")]
    pub yes: bool,

    /// Move everything into <root>/dockgc-trash/<id>/ instead of deleting it.
    #[arg(long)]
    pub trash: bool,

    /// Also write the metrics (Prometheus text format) to FILE, atomically, for
    /// node-exporter's textfile collector.
    #[arg(long, value_name = "FILE")]
    pub textfile: Option<PathBuf>,

    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
}

#[derive(clap::Args, Debug)]
#[command(
    after_help = "Exit status: 0 saved; 1 an image is damaged (a layer or config \
                        cannot be rebuilt exactly), nothing written; 2 unknown image, \
                        unusable output or I/O error, nothing written."
)]
pub struct SaveArgs {
    /// Images: ID, short ID, name:tag, name (for name:latest), name@sha256:...
    #[arg(value_name = "IMAGE", required = true)]
    pub images: Vec<String>,

    /// The archive to write (`-` for stdout); it appears only when complete.
    #[arg(short, long, value_name = "FILE")]
    pub output: std::path::PathBuf,

    /// Archive format: `docker-archive` (Engine 20.10-24 `docker save`) or
    /// `oci` (an OCI image layout, as Engine 25+ `docker save` writes it).
    #[arg(long, value_enum, default_value_t = ArchiveFormat::DockerArchive)]
    pub format: ArchiveFormat,

    /// Compress the layers with gzip.
    #[arg(long)]
    pub gzip: bool,

    /// gzip level, 1 (fastest) to 9 (smallest); implies --gzip.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=9))]
    pub gzip_level: Option<u32>,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum ArchiveFormat {
    DockerArchive,
    Oci,
}

#[derive(clap::Args, Debug)]
#[command(
    after_help = "Exit status: 0 exported; 1 the image is damaged (a file cannot be \
                        read back exactly), nothing left at FILE or in DIR; 2 unknown image, \
                        unusable output or I/O error."
)]
pub struct ExportArgs {
    /// The image: ID, short ID, name:tag, name (for name:latest), name@sha256:...
    #[arg(value_name = "IMAGE")]
    pub image: String,

    /// Write a tar to FILE (`-` for stdout); it appears only when complete.
    #[arg(
        short,
        long,
        value_name = "FILE",
        required_unless_present = "dir",
        conflicts_with = "dir"
    )]
    pub output: Option<std::path::PathBuf>,

    /// Extract into DIR instead: an empty directory, or a new one in an existing directory.
    #[arg(long, value_name = "DIR")]
    pub dir: Option<std::path::PathBuf>,

    /// Only the image's layers: leave out what the daemon adds to every container
    /// (/.dockerenv, /etc/hosts, /etc/hostname, /etc/resolv.conf, /etc/mtab,
    /// /dev/console, /dev/pts, /dev/shm, /proc, /sys, a missing WORKDIR).
    #[arg(long)]
    pub image_only: bool,
}

#[derive(Subcommand, Debug)]
pub enum ConfigAction {
    /// Validate the config file; print the effective root and prune policy.
    Check,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand, Debug)]
pub enum TrashAction {
    /// List trash entries.
    List {
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
    },
    /// Move one run's items back, byte-identical.
    Restore { id: String },
    /// Delete trash entries, all or the older ones.
    Empty {
        #[arg(long, value_name = "DUR", value_parser = parse_duration)]
        older_than: Option<i64>,
    },
}

/// `--shared-size`: the library's [`SharedSizeRule`], spelled for the command line.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum SharedSizeArg {
    /// Engines 20.10-23: references counted over the listed images only.
    Listed,
    /// Engine 24 and later: references counted over every image.
    All,
}

impl From<SharedSizeArg> for SharedSizeRule {
    fn from(a: SharedSizeArg) -> Self {
        match a {
            SharedSizeArg::Listed => SharedSizeRule::Listed,
            SharedSizeArg::All => SharedSizeRule::All,
        }
    }
}

/// `--age-by`: the library's [`AgeBy`], spelled for the command line.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum AgeByArg {
    /// The image config's `created`.
    Created,
    /// The latest of its containers' Created/StartedAt/FinishedAt, its last
    /// tag time (`lastUpdated`) and its `created`.
    LastUsed,
}

impl From<AgeByArg> for AgeBy {
    fn from(a: AgeByArg) -> Self {
        match a {
            AgeByArg::Created => AgeBy::Created,
            AgeByArg::LastUsed => AgeBy::LastUsed,
        }
    }
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
    /// Prometheus text exposition format (df, verify, prune, apply).
    Prometheus,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cli_definition_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
