//! `/etc/dockgc/config.toml`: the root and the prune policy, with the same
//! names as the flags (kebab-case). Flags override it (`options.rs` merges
//! the two). Unknown keys and bad values are errors naming the key and the line.

use dockgc::policy::{AgeBy, Filters, KeepPattern};
use dockgc::units::{parse_bytes, parse_duration};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use toml::Spanned;

pub const DEFAULT_PATH: &str = "/etc/dockgc/config.toml";

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{path}: {cause}")]
    Read {
        path: PathBuf,
        cause: std::io::Error,
    },
    #[error("{path}: line {line}: {message}")]
    Invalid {
        path: PathBuf,
        line: usize,
        message: String,
    },
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Config {
    pub root: Option<PathBuf>,
    /// The Engine API address (`--host`).
    pub host: Option<Spanned<String>>,
    #[serde(default)]
    pub prune: PruneConfig,
}

/// The prune policy; each key is the flag of the same name.
#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct PruneConfig {
    pub all: Option<bool>,
    pub filter: Option<Vec<Spanned<String>>>,
    pub older_than: Option<Spanned<String>>,
    pub age_by: Option<AgeBy>,
    pub keep: Option<Vec<Spanned<String>>>,
    pub keep_last: Option<usize>,
    pub high: Option<Spanned<f64>>,
    pub low: Option<Spanned<f64>>,
    pub free: Option<Spanned<String>>,
    pub min_age: Option<Spanned<String>>,
    pub orphans: Option<bool>,
    pub grace: Option<Spanned<String>>,
    pub trash: Option<bool>,
    pub containers: Option<bool>,
    pub container_age: Option<Spanned<String>>,
    pub keep_container: Option<Vec<Spanned<String>>>,
    pub build_cache: Option<bool>,
    pub build_cache_until: Option<Spanned<String>>,
    pub build_cache_keep: Option<Spanned<String>>,
    /// Refused: removing volumes loses data, so it is asked for on the
    /// command line each time (`--volumes`).
    #[serde(skip_serializing)]
    pub volumes: Option<Spanned<toml::Value>>,
}

fn line_of(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())]
        .bytes()
        .filter(|b| *b == b'\n')
        .count()
        + 1
}

/// Reads `path`, or the default path when it exists; none at all is an empty config.
pub fn load(path: Option<&Path>) -> Result<(Option<PathBuf>, Config), ConfigError> {
    let (path, required) = match path {
        Some(p) => (p.to_path_buf(), true),
        None => (PathBuf::from(DEFAULT_PATH), false),
    };
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if !required && e.kind() == std::io::ErrorKind::NotFound => {
            return Ok((None, Config::default()));
        }
        Err(cause) => return Err(ConfigError::Read { path, cause }),
    };
    let cfg = parse(&text, &path)?;
    Ok((Some(path), cfg))
}

/// Parses and validates every value, so `config check` catches what a later
/// unattended run would trip on.
pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
    let invalid = |offset: usize, message: String| ConfigError::Invalid {
        path: path.to_path_buf(),
        line: line_of(text, offset),
        message,
    };
    let cfg: Config = toml::from_str(text).map_err(|e| {
        let msg = e.message().to_string();
        invalid(e.span().map_or(0, |s| s.start), msg)
    })?;
    let p = &cfg.prune;
    let check_dur = |key: &str, v: &Option<Spanned<String>>| -> Result<(), ConfigError> {
        if let Some(v) = v {
            parse_duration(v.get_ref())
                .map_err(|m| invalid(v.span().start, format!("{key}: {m}")))?;
        }
        Ok(())
    };
    check_dur("older-than", &p.older_than)?;
    check_dur("min-age", &p.min_age)?;
    check_dur("grace", &p.grace)?;
    if let Some(v) = &p.volumes {
        return Err(invalid(
            v.span().start,
            "volumes: never taken from the config file (removing volumes loses data); \
             pass --volumes to the run that should remove them"
                .into(),
        ));
    }
    check_dur("container-age", &p.container_age)?;
    check_dur("build-cache-until", &p.build_cache_until)?;
    if let Some(v) = &p.build_cache_keep {
        parse_bytes(v.get_ref())
            .map_err(|m| invalid(v.span().start, format!("build-cache-keep: {m}")))?;
    }
    for k in p.keep_container.iter().flatten() {
        dockgc::policy::ContainerKeep::parse(k.get_ref())
            .map_err(|e| invalid(k.span().start, format!("keep-container: {e}")))?;
    }
    if let Some(h) = &cfg.host {
        dockgc::engine::Host::parse(h.get_ref())
            .map_err(|m| invalid(h.span().start, format!("host: {m}")))?;
    }
    if let Some(v) = &p.free {
        parse_bytes(v.get_ref()).map_err(|m| invalid(v.span().start, format!("free: {m}")))?;
    }
    for f in p.filter.iter().flatten() {
        Filters::parse(std::slice::from_ref(f.get_ref()), 0)
            .map_err(|e| invalid(f.span().start, format!("filter: {e}")))?;
    }
    for k in p.keep.iter().flatten() {
        KeepPattern::parse(k.get_ref())
            .map_err(|e| invalid(k.span().start, format!("keep: {e}")))?;
    }
    for (key, v) in [("high", &p.high), ("low", &p.low)] {
        if let Some(v) = v
            && !(0.0..=100.0).contains(v.get_ref())
        {
            return Err(invalid(
                v.span().start,
                format!("{key}: {} is not a percentage", v.get_ref()),
            ));
        }
    }
    if let (Some(f), true) = (&p.free, p.high.is_some() || p.low.is_some()) {
        return Err(invalid(
            f.span().start,
            "free: use either free or high and low, not both".into(),
        ));
    }
    if p.high.is_some() != p.low.is_some() {
        let at = p
            .high
            .as_ref()
            .or(p.low.as_ref())
            .map_or(0, |v| v.span().start);
        return Err(invalid(at, "high and low go together".into()));
    }
    Ok(cfg)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(text: &str) -> String {
        parse(text, Path::new("/etc/dockgc/config.toml"))
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn a_full_config_parses() {
        let c = parse(
            r#"root = "/srv/docker"
[prune]
all = true
filter = ["until=24h", "label=env=ci"]
older-than = "7d"
age-by = "last-used"
keep = ["myorg/*", "label=keep"]
keep-last = 3
high = 85
low = 70.5
min-age = "1h"
orphans = true
grace = "2h"
trash = false
containers = true
container-age = "48h"
keep-container = ["db-*", "label=keep"]
build-cache = true
build-cache-until = "72h"
build-cache-keep = "5G"
"#,
            Path::new("c.toml"),
        )
        .unwrap();
        assert_eq!(c.root.as_deref(), Some(Path::new("/srv/docker")));
        assert_eq!(c.prune.keep_last, Some(3));
        assert_eq!(c.prune.age_by, Some(AgeBy::LastUsed));
        assert_eq!(c.prune.filter.unwrap().len(), 2);
        assert_eq!(c.prune.containers, Some(true));
        assert_eq!(c.prune.keep_container.unwrap().len(), 2);
    }

    #[test]
    fn volumes_are_never_taken_from_the_file() {
        let e = err("[prune]\nall = true\nvolumes = true\n");
        assert!(e.contains("line 3") && e.contains("--volumes"), "{e}");
        let e = err("host = \"ssh://x\"\n");
        assert!(e.contains("line 1") && e.contains("host"), "{e}");
        let e = err("[prune]\nkeep-container = [\"[\"]\n");
        assert!(e.contains("line 2") && e.contains("keep-container"), "{e}");
    }

    #[test]
    fn errors_name_the_key_and_line() {
        let e = err("[prune]\nall = true\nolder_than = \"7d\"\n");
        assert!(e.contains("line 3") && e.contains("older_than"), "{e}");
        let e = err("[prune]\n\nolder-than = \"a week\"\n");
        assert!(e.contains("line 3") && e.contains("older-than"), "{e}");
        let e = err("[prune]\nfree = \"lots\"\n");
        assert!(e.contains("line 2") && e.contains("free"), "{e}");
        let e = err("[prune]\nfilter = [\"dangling=true\"]\n");
        assert!(e.contains("line 2") && e.contains("filter"), "{e}");
        let e = err("[prune]\nhigh = 150\nlow = 10\n");
        assert!(e.contains("line 2") && e.contains("high"), "{e}");
        let e = err("[prune]\nhigh = 90\nlow = 80\nfree = \"1G\"\n");
        assert!(e.contains("line 4") && e.contains("not both"), "{e}");
        let e = err("[prune]\nhigh = 90\n");
        assert!(e.contains("go together"), "{e}");
        let e = err("[prune]\nage-by = \"yesterday\"\n");
        assert!(e.contains("line 2"), "{e}");
        let e = err("rooot = \"/x\"\n");
        assert!(e.contains("line 1") && e.contains("rooot"), "{e}");
        assert!(e.starts_with("/etc/dockgc/config.toml: "), "{e}");
    }

    #[test]
    fn a_missing_default_file_is_no_config() {
        let (p, c) = load(None).unwrap_or((None, Config::default()));
        if p.is_none() {
            assert!(c.root.is_none());
        }
        assert!(load(Some(Path::new("/nonexistent/dockgc.toml"))).is_err());
    }
}
