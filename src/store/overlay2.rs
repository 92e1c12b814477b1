//! The overlay2 home `<root>/overlay2`: layer directories and the `l/` links (§5).

use super::fsread::{list_dir, mtime, read_text_opt};
use super::{Anomaly, AnomalyKind, DriverDir, Link};
use rayon::prelude::*;
use std::collections::BTreeMap;
use std::fs;
use std::path::Path;

pub struct Home {
    pub dirs: BTreeMap<String, DriverDir>,
    pub links: BTreeMap<String, Link>,
    pub anomalies: Vec<Anomaly>,
}

pub fn read(home: &Path) -> Home {
    let mut anomalies = Vec::new();
    let listing = match list_dir(home) {
        Ok(l) => l,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Home {
                dirs: BTreeMap::new(),
                links: BTreeMap::new(),
                anomalies,
            };
        }
        Err(e) => {
            anomalies.push(Anomaly {
                kind: AnomalyKind::Unreadable,
                path: home.to_path_buf(),
                message: format!("cannot list the driver home: {e}"),
            });
            return Home {
                dirs: BTreeMap::new(),
                links: BTreeMap::new(),
                anomalies,
            };
        }
    };
    for odd in &listing.odd_names {
        anomalies.push(Anomaly {
            kind: AnomalyKind::DriverDir,
            path: home.join(odd),
            message: "entry name is not UTF-8".into(),
        });
    }
    let results: Vec<(DriverDir, Option<Anomaly>)> = listing
        .names
        .par_iter()
        .filter(|n| n.as_str() != "l")
        .map(|n| read_dir_entry(home, n))
        .collect();
    let mut dirs = BTreeMap::new();
    for (d, a) in results {
        anomalies.extend(a);
        dirs.insert(d.name.clone(), d);
    }
    let links = read_links(&home.join("l"), &mut anomalies);
    Home {
        dirs,
        links,
        anomalies,
    }
}

fn read_dir_entry(home: &Path, name: &str) -> (DriverDir, Option<Anomaly>) {
    let path = home.join(name);
    let meta = fs::symlink_metadata(&path);
    let (is_dir, mtime) = match &meta {
        Ok(m) => (m.is_dir(), mtime(m)),
        Err(_) => (false, 0),
    };
    let mut d = DriverDir {
        name: name.to_string(),
        is_dir,
        has_diff: false,
        link: None,
        lower: None,
        committed: false,
        mtime,
    };
    if let Err(e) = meta {
        let a = Anomaly {
            kind: AnomalyKind::Unreadable,
            path,
            message: e.to_string(),
        };
        return (d, Some(a));
    }
    if !is_dir {
        return (d, None);
    }
    let mut anomaly = None;
    d.has_diff = fs::symlink_metadata(path.join("diff"))
        .map(|m| m.is_dir())
        .unwrap_or(false);
    match read_text_opt(&path.join("link")) {
        Ok(l) => d.link = l.map(|s| s.trim().to_string()),
        Err(e) => {
            anomaly = Some(Anomaly {
                kind: AnomalyKind::DriverDir,
                path: path.join("link"),
                message: e,
            })
        }
    }
    if let Ok(Some(lower)) = read_text_opt(&path.join("lower")) {
        d.lower = Some(lower.trim().split(':').map(str::to_string).collect());
    }
    d.committed = path.join("committed").exists();
    (d, anomaly)
}

fn read_links(l_dir: &Path, anomalies: &mut Vec<Anomaly>) -> BTreeMap<String, Link> {
    let names = match list_dir(l_dir) {
        Ok(l) => l.names,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return BTreeMap::new(),
        Err(e) => {
            anomalies.push(Anomaly {
                kind: AnomalyKind::Unreadable,
                path: l_dir.to_path_buf(),
                message: e.to_string(),
            });
            return BTreeMap::new();
        }
    };
    names
        .par_iter()
        .map(|name| {
            let p = l_dir.join(name);
            let target = fs::read_link(&p)
                .ok()
                .map(|t| t.to_string_lossy().into_owned());
            // `../<dir>/diff` is the only shape overlay2 writes.
            let target_dir = target.as_deref().and_then(|t| {
                let inner = t.strip_prefix("../")?.strip_suffix("/diff")?;
                (!inner.is_empty() && !inner.contains('/')).then(|| inner.to_string())
            });
            let resolves = target.is_some() && fs::metadata(&p).is_ok();
            (
                name.clone(),
                Link {
                    name: name.clone(),
                    target,
                    target_dir,
                    resolves,
                },
            )
        })
        .collect::<Vec<_>>()
        .into_iter()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn reads_dirs_and_links() {
        let t = tempfile::tempdir().unwrap();
        let h = t.path();
        fs::create_dir_all(h.join("aaa/diff")).unwrap();
        fs::write(h.join("aaa/link"), "LINKA").unwrap();
        fs::write(h.join("aaa/committed"), "").unwrap();
        fs::create_dir_all(h.join("bbb/diff")).unwrap();
        fs::write(h.join("bbb/link"), "LINKB").unwrap();
        fs::write(h.join("bbb/lower"), "l/LINKA").unwrap();
        fs::create_dir_all(h.join("l")).unwrap();
        symlink("../aaa/diff", h.join("l/LINKA")).unwrap();
        symlink("../gone/diff", h.join("l/DANGLING")).unwrap();
        symlink("LOOP", h.join("l/LOOP")).unwrap();

        let home = read(h);
        assert!(home.anomalies.is_empty());
        assert_eq!(home.dirs.len(), 2);
        assert!(home.dirs["aaa"].committed && home.dirs["aaa"].has_diff);
        assert_eq!(
            home.dirs["bbb"].lower.as_deref(),
            Some(&["l/LINKA".to_string()][..])
        );
        assert!(home.links["LINKA"].resolves);
        assert_eq!(home.links["LINKA"].target_dir.as_deref(), Some("aaa"));
        assert!(!home.links["DANGLING"].resolves);
        assert_eq!(home.links["DANGLING"].target_dir.as_deref(), Some("gone"));
        assert!(!home.links["LOOP"].resolves);
        assert_eq!(home.links["LOOP"].target_dir, None);
    }
}
