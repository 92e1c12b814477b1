//! Flags and the config file, checked once into the option values the
//! library takes (ripgrep's shape: low-level args in, one validated value
//! out). Nothing past this module looks at a clap type or the config file.
//!
//! Precedence: a flag given on the command line wins; a list flag given on
//! the command line replaces the file's list; boolean flags can only switch
//! a setting on, so the file's `true` stands unless the flag says so too.

use crate::cli::{ApplyArgs, Format, ModeArgs, PruneArgs};
use crate::config::{Config, PruneConfig};
use dockgc::apply::mode::Want;
use dockgc::engine::Host;
use dockgc::units::{parse_bytes, parse_duration};
use dockgc::{plan, policy};
use std::path::{Path, PathBuf};

/// Where a command's report goes.
pub struct Output {
    pub format: Format,
    /// Also write the metrics atomically here (node-exporter's textfile collector).
    pub textfile: Option<PathBuf>,
}

/// Everything `prune` needs, validated.
pub struct Prune {
    pub policy: policy::Options,
    pub orphans: plan::OrphanOptions,
    /// `--build-cache`, with its options.
    pub build_cache: Option<plan::BuildCacheOptions>,
    /// `--volumes`: `Some(all)`, never from the config file.
    pub volumes: Option<bool>,
    pub dry_run: bool,
    pub plan_out: Option<PathBuf>,
    pub run: RunPlan,
}

/// What running a plan needs, shared by `prune` and `apply`.
pub struct RunPlan {
    pub yes: bool,
    pub trash: bool,
    pub out: Output,
    pub mode: ModeChoice,
}

/// `--offline`/`--live` and the daemon's address.
pub struct ModeChoice {
    pub want: Want,
    /// `--host`, `DOCKER_HOST`, else the config file's `host`.
    pub host: Option<Host>,
}

fn mode(m: &ModeArgs, config: &Config, cfg_path: Option<&Path>) -> anyhow::Result<ModeChoice> {
    let want = match (m.offline, m.live) {
        (true, _) => Want::Offline,
        (_, true) => Want::Live,
        _ => Want::Auto,
    };
    let host = match (&m.host, &config.host) {
        (Some(h), _) if !h.is_empty() => {
            Some(Host::parse(h).map_err(|e| anyhow::anyhow!("--host: {e}"))?)
        }
        (_, Some(h)) => Some(Host::parse(h.get_ref()).map_err(|e| cfg_err(cfg_path, e))?),
        _ => None,
    };
    Ok(ModeChoice { want, host })
}

/// The default grace period of `--orphans`.
const DEFAULT_GRACE: i64 = 3600;

/// A config value that failed to parse after `config::parse` accepted it
/// cannot happen; if it does, name the file.
fn cfg_err(cfg_path: Option<&Path>, e: String) -> anyhow::Error {
    anyhow::anyhow!("{}: {e}", cfg_path.unwrap_or(Path::new("config")).display())
}

/// The command line's value, else the file's (parsed with `parse`).
fn either<T>(
    flag: Option<T>,
    file: Option<&toml::Spanned<String>>,
    parse: fn(&str) -> Result<T, String>,
    cfg_path: Option<&Path>,
) -> anyhow::Result<Option<T>> {
    match (flag, file) {
        (Some(v), _) => Ok(Some(v)),
        (None, Some(v)) => parse(v.get_ref())
            .map(Some)
            .map_err(|e| cfg_err(cfg_path, e)),
        (None, None) => Ok(None),
    }
}

fn list(flag: &[String], file: &Option<Vec<toml::Spanned<String>>>) -> Vec<String> {
    if !flag.is_empty() {
        return flag.to_vec();
    }
    file.iter().flatten().map(|s| s.get_ref().clone()).collect()
}

pub fn prune(
    root: &Path,
    a: &PruneArgs,
    config: &Config,
    cfg_path: Option<&Path>,
    now: i64,
) -> anyhow::Result<Prune> {
    let c: &PruneConfig = &config.prune;
    let watermark = watermark(root, a, c, cfg_path)?;
    let filters = list(&a.filters, &c.filter);
    let keep = list(&a.keep, &c.keep);
    let policy = policy::Options {
        all: a.all || c.all.unwrap_or(false),
        filters: policy::Filters::parse(&filters, now)?,
        older_than: either(
            a.older_than,
            c.older_than.as_ref(),
            parse_duration,
            cfg_path,
        )?,
        age_by: a
            .age_by
            .map(policy::AgeBy::from)
            .or(c.age_by)
            .unwrap_or(policy::AgeBy::Created),
        keep: keep
            .iter()
            .map(|k| policy::KeepPattern::parse(k))
            .collect::<Result<_, _>>()?,
        keep_last: a.keep_last.or(c.keep_last),
        watermark,
        min_age: either(a.min_age, c.min_age.as_ref(), parse_duration, cfg_path)?,
        now,
        containers: containers(a, c, cfg_path, now)?,
        pinned: Default::default(),
        pinned_containers: Default::default(),
    };
    let orphans = plan::OrphanOptions {
        enabled: a.orphans || c.orphans.unwrap_or(false),
        grace: either(a.grace, c.grace.as_ref(), parse_duration, cfg_path)?
            .unwrap_or(DEFAULT_GRACE),
        now,
        live: false, // set once the mode is known
    };
    let build_cache = (a.build_cache || c.build_cache.unwrap_or(false))
        .then(|| -> anyhow::Result<plan::BuildCacheOptions> {
            Ok(plan::BuildCacheOptions {
                all: policy.all,
                until: either(
                    a.build_cache_until,
                    c.build_cache_until.as_ref(),
                    parse_duration,
                    cfg_path,
                )?,
                keep_bytes: either(
                    a.build_cache_keep,
                    c.build_cache_keep.as_ref(),
                    parse_bytes,
                    cfg_path,
                )?,
                now,
            })
        })
        .transpose()?;
    Ok(Prune {
        policy,
        orphans,
        build_cache,
        volumes: a.volumes.then_some(a.all_volumes),
        dry_run: a.dry_run,
        plan_out: a.plan_out.clone(),
        run: RunPlan {
            yes: a.yes,
            trash: a.trash || c.trash.unwrap_or(false),
            out: Output {
                format: a.format,
                textfile: a.textfile.clone(),
            },
            mode: mode(&a.mode, config, cfg_path)?,
        },
    })
}

/// `--containers` and its rules, from the flags, else the file.
fn containers(
    a: &PruneArgs,
    c: &PruneConfig,
    cfg_path: Option<&Path>,
    now: i64,
) -> anyhow::Result<policy::ContainerOptions> {
    let keep = list(&a.keep_container, &c.keep_container);
    Ok(policy::ContainerOptions {
        enabled: a.containers || c.containers.unwrap_or(false),
        age: either(
            a.container_age,
            c.container_age.as_ref(),
            parse_duration,
            cfg_path,
        )?
        .unwrap_or(policy::containers::DEFAULT_AGE),
        keep: keep
            .iter()
            .map(|k| policy::ContainerKeep::parse(k))
            .collect::<Result<_, _>>()?,
        now,
    })
}

/// `--high/--low` or `--free`, from the flags when any is given, else from
/// the file; the filesystem figures are read only when a watermark applies.
fn watermark(
    root: &Path,
    a: &PruneArgs,
    c: &PruneConfig,
    cfg_path: Option<&Path>,
) -> anyhow::Result<Option<(policy::Watermark, policy::FsStats)>> {
    let (high, low, free) = if a.high.is_some() || a.low.is_some() || a.free.is_some() {
        (a.high, a.low, a.free)
    } else {
        let free = c
            .free
            .as_ref()
            .map(|v| parse_bytes(v.get_ref()))
            .transpose()
            .map_err(|e| cfg_err(cfg_path, e))?;
        (
            c.high.as_ref().map(|v| *v.get_ref()),
            c.low.as_ref().map(|v| *v.get_ref()),
            free,
        )
    };
    let w = match (high, low, free) {
        (Some(high), Some(low), _) => {
            if !(0.0..=100.0).contains(&low) || !(0.0..=100.0).contains(&high) || low > high {
                anyhow::bail!("--high and --low are percentages with --low <= --high");
            }
            policy::Watermark::Percent { high, low }
        }
        (_, _, Some(free)) => policy::Watermark::Free(free),
        _ => return Ok(None),
    };
    let fs =
        dockgc::disk::fs_stats(root).map_err(|e| anyhow::anyhow!("{}: {e}", root.display()))?;
    Ok(Some((w, fs)))
}

pub fn apply(a: &ApplyArgs, config: &Config, cfg_path: Option<&Path>) -> anyhow::Result<RunPlan> {
    Ok(RunPlan {
        yes: a.yes,
        trash: a.trash || config.prune.trash.unwrap_or(false),
        out: Output {
            format: a.format,
            textfile: a.textfile.clone(),
        },
        mode: mode(&a.mode, config, cfg_path)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn prune_of(args: &[&str], file: &str) -> Prune {
        let cli =
            crate::cli::Cli::parse_from(["dockgc", "prune"].iter().chain(args.iter()).copied());
        let crate::cli::Command::Prune(a) = cli.command else {
            unreachable!()
        };
        let cfg = crate::config::parse(file, Path::new("c.toml")).unwrap();
        prune(
            Path::new("/"),
            &a,
            &cfg,
            Some(Path::new("c.toml")),
            1_000_000,
        )
        .unwrap()
    }

    #[test]
    fn flags_override_the_file_and_lists_replace() {
        let file = "[prune]\nall = true\nkeep = [\"a/*\"]\nolder-than = \"7d\"\ngrace = \"2h\"\ntrash = true\n";
        let p = prune_of(&[], file);
        assert!(p.policy.all && p.run.trash && !p.orphans.enabled);
        assert_eq!(p.policy.older_than, Some(7 * 86400));
        assert_eq!(p.orphans.grace, 7200);
        assert_eq!(p.policy.keep.len(), 1);

        let p = prune_of(
            &[
                "--older-than",
                "1h",
                "--keep",
                "b",
                "--keep",
                "c",
                "--orphans",
            ],
            file,
        );
        assert_eq!(p.policy.older_than, Some(3600));
        assert_eq!(
            p.policy.keep.len(),
            2,
            "the command line's list replaces the file's"
        );
        assert!(p.orphans.enabled && p.policy.all);

        let p = prune_of(&[], "");
        assert!(!p.policy.all);
        assert_eq!(p.orphans.grace, DEFAULT_GRACE);
        assert_eq!(p.policy.age_by, policy::AgeBy::Created);
    }

    #[test]
    fn a_watermark_comes_from_one_place() {
        let p = prune_of(&["--free", "1G"], "[prune]\nhigh = 90\nlow = 80\n");
        assert!(matches!(
            p.policy.watermark,
            Some((policy::Watermark::Free(1_000_000_000), _))
        ));
        let p = prune_of(&[], "[prune]\nhigh = 90\nlow = 80\n");
        assert!(matches!(
            p.policy.watermark,
            Some((policy::Watermark::Percent { .. }, _))
        ));
    }
}
