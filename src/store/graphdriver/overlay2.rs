//! The overlay2 home `<root>/overlay2`: layer directories and the `l/` links
//! (moby `daemon/graphdriver/overlay2/overlay.go`).

use super::{DriverDir, Link, LinkTarget, Lower, Paths};
use crate::ids::{DirName, LinkName};
use crate::store::fsread::{Dir, EntryFiles, SharedListings, open_listed};
use crate::store::{Anomaly, AnomalyKind};
use rayon::prelude::*;
use std::collections::BTreeMap;
use std::path::Path;

#[derive(Default)]
pub struct Home {
    pub dirs: BTreeMap<DirName, DriverDir>,
    pub links: BTreeMap<LinkName, Link>,
    pub anomalies: Vec<Anomaly>,
}

pub fn read(paths: &Paths, with_lower: bool, share: Option<&SharedListings>) -> Home {
    let home = paths.home();
    let (listing, dir) = match open_listed(&home, share) {
        Ok(x) => x,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Home::default(),
        Err(e) => return Home::unlisted(&home, &e.to_string()),
    };
    let entries: Vec<(DirName, DriverDir, Option<Anomaly>)> = listing
        .names
        .par_iter()
        .zip(listing.is_dir.par_iter())
        .filter(|(n, _)| n.as_str() != "l")
        .map(|(n, is_dir)| {
            let (d, a) = read_dir_entry(&dir.entry(n), n, *is_dir, with_lower);
            (DirName::from(n.as_str()), d, a)
        })
        .collect();
    let links = match open_listed(&paths.links_dir(), share) {
        Ok((l, d)) => Ok(l
            .names
            .par_iter()
            .map(|name| {
                let link = read_link(&d, name);
                (LinkName::from(name.as_str()), link)
            })
            .collect()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(e.to_string()),
    };
    assemble(paths, &listing.odd_names, entries, links)
}

impl Home {
    /// The driver home could not be listed.
    pub fn unlisted(home: &Path, e: &str) -> Home {
        Home {
            anomalies: vec![Anomaly {
                kind: AnomalyKind::Unreadable,
                path: home.to_path_buf(),
                message: format!("cannot list the driver home: {e}"),
            }],
            ..Home::default()
        }
    }
}

/// The home from what was read of it: its non-UTF-8 names, its entries
/// (but `l`) in name order, and the links of `l/` (or why `l/` could not be
/// listed).
pub fn assemble(
    paths: &Paths,
    odd_names: &[std::ffi::OsString],
    entries: Vec<(DirName, DriverDir, Option<Anomaly>)>,
    links: Result<Vec<(LinkName, Link)>, String>,
) -> Home {
    let home = paths.home();
    let mut anomalies = Vec::new();
    for odd in odd_names {
        anomalies.push(Anomaly {
            kind: AnomalyKind::DriverDir,
            path: home.join(odd),
            message: "entry name is not UTF-8".into(),
        });
    }
    // Collected, not inserted one by one: a map built from an iterator packs
    // its nodes full, where in-order inserts leave each about 60% used.
    let dirs: BTreeMap<DirName, DriverDir> = entries
        .into_iter()
        .map(|(name, d, a)| {
            anomalies.extend(a);
            (name, d)
        })
        .collect();
    let mut links: BTreeMap<LinkName, Link> = match links {
        Ok(l) => l.into_iter().collect(),
        Err(e) => {
            anomalies.push(Anomaly {
                kind: AnomalyKind::Unreadable,
                path: paths.links_dir(),
                message: e,
            });
            BTreeMap::new()
        }
    };
    // A canonical link resolves iff its target dir has diff/: known already,
    // which saves a stat per link (tens of thousands on big hosts).
    for l in links.values_mut() {
        if let LinkTarget::DriverDir(d) = &l.target {
            l.resolves = dirs.get(d.as_str()).is_some_and(|d| d.has_diff);
        }
    }
    Home {
        dirs,
        links,
        anomalies,
    }
}

/// One entry of the driver home; `files` reads inside it.
pub fn read_dir_entry(
    files: &EntryFiles<'_>,
    name: &str,
    is_dir: bool,
    with_lower: bool,
) -> (DriverDir, Option<Anomaly>) {
    let mut d = DriverDir {
        is_dir,
        has_diff: false,
        link: None,
        lower: None,
    };
    if !is_dir {
        return (d, None);
    }
    let mut anomaly = None;
    d.has_diff = files.is_dir("diff");
    match files.read_text("link") {
        Ok(l) => d.link = l.map(|s| s.trim().into()),
        Err(e) => {
            anomaly = Some(Anomaly {
                kind: AnomalyKind::DriverDir,
                path: files.file("link"),
                message: e,
            })
        }
    }
    // BuildKit stacks its dirs on its own copies of parent dirs, which only
    // `lower` reveals; its dirs are few, so their `lower` is always read.
    let buildkit_dir = crate::ids::is_buildkit_key(name);
    if (with_lower || buildkit_dir)
        && let Ok(Some(lower)) = files.read_text("lower")
    {
        d.lower = Some(Box::new(Lower::parse(lower.trim())));
    }
    (d, anomaly)
}

/// `l/<name>`, read relative to the open `l/`.
pub fn read_link(l: &Dir, name: &str) -> Link {
    let target = match rustix::fs::readlinkat(l.fd(), name, Vec::new()) {
        Err(_) => LinkTarget::NotSymlink,
        Ok(t) => {
            let t = String::from_utf8_lossy(t.as_bytes());
            match t
                .strip_prefix("../")
                .and_then(|x| x.strip_suffix("/diff"))
                .filter(|d| !d.is_empty() && !d.contains('/'))
            {
                Some(dir) => LinkTarget::DriverDir(dir.into()),
                None => LinkTarget::Other(t.into_owned()),
            }
        }
    };
    // Canonical targets are resolved by the caller from the dir listing.
    let resolves = matches!(target, LinkTarget::Other(_))
        && rustix::fs::statat(l.fd(), name, rustix::fs::AtFlags::empty()).is_ok();
    Link { target, resolves }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
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

        let home = read(&p, true, None);
        assert!(home.anomalies.is_empty());
        assert_eq!(home.dirs.len(), 2);
        assert!(home.dirs["aaa"].has_diff);
        assert!(read(&p, false, None).dirs["bbb"].lower.is_none());
        assert_eq!(
            home.dirs["bbb"].lower.as_deref(),
            Some(&Lower::parse("l/LINKA"))
        );
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
