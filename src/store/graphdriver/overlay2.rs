//! The overlay2 home `<root>/overlay2`: layer directories and the `l/` links
//! (moby `daemon/graphdriver/overlay2/overlay.go`).

use super::{DriverDir, Link, LinkTarget, Lower, Paths};
use crate::store::fsread::{list_dir, read_text_opt};
use crate::store::{Anomaly, AnomalyKind};
use rayon::prelude::*;
use std::collections::BTreeMap;
use std::fs;
use std::path::Path;

pub struct Home {
    pub dirs: BTreeMap<String, DriverDir>,
    pub links: BTreeMap<String, Link>,
    pub anomalies: Vec<Anomaly>,
}

pub fn read(paths: &Paths, with_lower: bool) -> Home {
    let home = &paths.home();
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
    let results: Vec<(String, DriverDir, Option<Anomaly>)> = listing
        .names
        .par_iter()
        .zip(listing.is_dir.par_iter())
        .filter(|(n, _)| n.as_str() != "l")
        .map(|(n, is_dir)| read_dir_entry(paths, n, *is_dir, with_lower))
        .collect();
    let mut dirs = BTreeMap::new();
    for (name, d, a) in results {
        anomalies.extend(a);
        dirs.insert(name, d);
    }
    let mut links = read_links(&paths.links_dir(), &mut anomalies);
    // A canonical link resolves iff its target dir has diff/: known already,
    // which saves a stat per link (tens of thousands on big hosts).
    for l in links.values_mut() {
        if let LinkTarget::DriverDir(d) = &l.target {
            l.resolves = dirs.get(d).is_some_and(|d| d.has_diff);
        }
    }
    Home {
        dirs,
        links,
        anomalies,
    }
}

fn read_dir_entry(
    paths: &Paths,
    name: &str,
    is_dir: bool,
    with_lower: bool,
) -> (String, DriverDir, Option<Anomaly>) {
    let path = paths.dir(name);
    let mut d = DriverDir {
        is_dir,
        has_diff: false,
        link: None,
        lower: None,
    };
    if !is_dir {
        return (name.to_string(), d, None);
    }
    let mut anomaly = None;
    d.has_diff = fs::symlink_metadata(paths.diff(name))
        .map(|m| m.is_dir())
        .unwrap_or(false);
    match read_text_opt(&paths.link_file(name)) {
        Ok(l) => d.link = l.map(|s| s.trim().to_string()),
        Err(e) => {
            anomaly = Some(Anomaly {
                kind: AnomalyKind::DriverDir,
                path: paths.link_file(name),
                message: e,
            })
        }
    }
    // BuildKit stacks its dirs on its own copies of parent dirs, which only
    // `lower` reveals; its dirs are few, so their `lower` is always read.
    let buildkit_dir = crate::ids::is_buildkit_key(name);
    if (with_lower || buildkit_dir)
        && let Ok(Some(lower)) = read_text_opt(&path.join("lower"))
    {
        d.lower = Some(Lower::parse(lower.trim()));
    }
    (name.to_string(), d, anomaly)
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
            let target = match fs::read_link(&p) {
                Err(_) => LinkTarget::NotSymlink,
                Ok(t) => {
                    let t = t.to_string_lossy();
                    match t
                        .strip_prefix("../")
                        .and_then(|x| x.strip_suffix("/diff"))
                        .filter(|d| !d.is_empty() && !d.contains('/'))
                    {
                        Some(dir) => LinkTarget::DriverDir(dir.to_string()),
                        None => LinkTarget::Other(t.into_owned()),
                    }
                }
            };
            // Canonical targets are resolved by the caller from the dir listing.
            let resolves = matches!(target, LinkTarget::Other(_)) && fs::metadata(&p).is_ok();
            (name.clone(), Link { target, resolves })
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
        let p = Paths::new(t.path(), "overlay2");
        let h = &p.home();
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

        let home = read(&p, true);
        assert!(home.anomalies.is_empty());
        assert_eq!(home.dirs.len(), 2);
        assert!(home.dirs["aaa"].has_diff);
        assert!(read(&p, false).dirs["bbb"].lower.is_none());
        assert_eq!(home.dirs["bbb"].lower, Some(Lower::parse("l/LINKA")));
        assert!(home.links["LINKA"].resolves);
        assert_eq!(
            home.links["LINKA"].target,
            LinkTarget::DriverDir("aaa".into())
        );
        assert!(!home.links["DANGLING"].resolves);
        assert_eq!(
            home.links["DANGLING"].target,
            LinkTarget::DriverDir("gone".into())
        );
        assert!(!home.links["LOOP"].resolves);
        assert_eq!(home.links["LOOP"].target, LinkTarget::Other("LOOP".into()));
    }
}
