//! Which images a prune removes, and why. Pure: a function of the graph, the
//! options, the clock and (for watermarks) the filesystem figures passed in.
//!
//! An image goes only if the selecting rules choose it and no keep rule
//! protects it; images containers use and parents of images that stay are
//! always kept (Docker's own conflicts: moby `daemon/images/image_prune.go`,
//! `image_delete.go`).

use crate::graph::Graph;
use crate::ids::{ContainerId, ImageId};
use crate::store::parse_time;
use globset::{Glob, GlobMatcher};
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};

#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    #[error("--filter {0:?}: {1}")]
    Filter(String, String),
    #[error("--keep {0:?}: {1}")]
    Keep(String, String),
    #[error("{0}")]
    Usage(String),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AgeBy {
    /// The image config's `created`.
    Created,
    /// The latest of its containers' Created/StartedAt/FinishedAt, its last tag
    /// time (`lastUpdated`) and its `created`.
    LastUsed,
}

/// Docker's `image prune --filter` set (`until`, `label`, `label!`).
#[derive(Debug, Default, Clone)]
pub struct Filters {
    /// Unix seconds; images created after it (or with no `created`) are kept.
    pub until: Option<i64>,
    pub labels: Vec<(String, Option<String>)>,
    pub not_labels: Vec<(String, Option<String>)>,
}

impl Filters {
    /// Parses `until=...`, `label=k[=v]`, `label!=k[=v]` with Docker's semantics.
    pub fn parse(specs: &[String], now: i64) -> Result<Filters, PolicyError> {
        let mut f = Filters::default();
        for s in specs {
            let bad = |m: &str| PolicyError::Filter(s.clone(), m.to_string());
            let (key, value) = s.split_once('=').ok_or_else(|| bad("expected key=value"))?;
            match key {
                "until" => {
                    if f.until.is_some() {
                        return Err(bad("only one until filter is allowed"));
                    }
                    f.until = Some(parse_until(value, now).map_err(|m| bad(&m))?);
                }
                "label" => f.labels.push(split_label(value)),
                "label!" => f.not_labels.push(split_label(value)),
                "dangling" => return Err(bad("use -a/--all instead of a dangling filter")),
                _ => return Err(bad("supported filters are until, label and label!")),
            }
        }
        Ok(f)
    }
}

fn split_label(v: &str) -> (String, Option<String>) {
    match v.split_once('=') {
        Some((k, v)) => (k.to_string(), Some(v.to_string())),
        None => (v.to_string(), None),
    }
}

/// `label` (`key`, or `key=value`) against labels read through `get`
/// (images and containers keep them in different shapes).
fn label_matches<'a>(
    get: impl Fn(&str) -> Option<&'a String>,
    (k, v): &(String, Option<String>),
) -> bool {
    match v {
        None => get(k).is_some(),
        Some(v) => get(k) == Some(v),
    }
}

/// Docker's `until`: a duration before now (`24h`, `90m`), an RFC 3339 time
/// (with or without zone; a date alone is midnight local time), or Unix
/// seconds with optional fraction.
pub fn parse_until(v: &str, now: i64) -> Result<i64, String> {
    if let Ok(d) = humantime::parse_duration(v) {
        return Ok(now - d.as_secs() as i64);
    }
    if let Some(t) = parse_time(v) {
        return Ok(t);
    }
    if let Some(secs) = v.split('.').next().and_then(|s| s.parse::<i64>().ok())
        && v.bytes().all(|c| c.is_ascii_digit() || c == b'.')
    {
        return Ok(secs);
    }
    let local = |dt: jiff::civil::DateTime| {
        jiff::tz::TimeZone::system()
            .to_timestamp(dt)
            .map(|t| t.as_second())
            .ok()
    };
    if let Some(t) = v.parse::<jiff::civil::DateTime>().ok().and_then(local) {
        return Ok(t);
    }
    if let Some(t) = v
        .parse::<jiff::civil::Date>()
        .ok()
        .and_then(|d| local(d.to_datetime(jiff::civil::Time::midnight())))
    {
        return Ok(t);
    }
    Err("not a duration (24h), a timestamp (2024-05-01T12:00:00Z) or Unix seconds".into())
}

/// `--keep PATTERN`.
#[derive(Debug, Clone)]
pub enum KeepPattern {
    Label(String, Option<String>),
    IdPrefix(String),
    Glob(String, GlobMatcher),
}

impl KeepPattern {
    pub fn parse(p: &str) -> Result<KeepPattern, PolicyError> {
        if let Some(l) = p.strip_prefix("label=") {
            let (k, v) = split_label(l);
            return Ok(KeepPattern::Label(k, v));
        }
        let hex = p.strip_prefix("sha256:").unwrap_or(p);
        if !hex.is_empty()
            && hex.len() <= 64
            && hex
                .bytes()
                .all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c))
        {
            return Ok(KeepPattern::IdPrefix(hex.to_string()));
        }
        let g = Glob::new(p).map_err(|e| PolicyError::Keep(p.to_string(), e.to_string()))?;
        Ok(KeepPattern::Glob(p.to_string(), g.compile_matcher()))
    }

    fn matches(&self, g: &Graph, id: &ImageId) -> bool {
        match self {
            KeepPattern::Label(k, v) => g
                .snap
                .images
                .get(id)
                .is_some_and(|i| label_matches(|k| i.labels.get(k), &(k.clone(), v.clone()))),
            KeepPattern::IdPrefix(h) => id.hex().starts_with(h.as_str()),
            // `repo:tag`, `repo@digest`, and the bare repository name, so
            // `--keep 'myorg/*'` keeps every tag of those repositories.
            KeepPattern::Glob(_, m) => g
                .refs(id)
                .any(|r| m.is_match(&r.reference) || m.is_match(&r.repository)),
        }
    }
}

/// Disk watermarks, as kubelet's image GC: above `high`, evict least recently
/// used eligible images until usage is at or below `low`.
#[derive(Debug, Clone, Copy)]
pub enum Watermark {
    Percent {
        high: f64,
        low: f64,
    },
    /// Free space to reach, in bytes.
    Free(u64),
}

/// The filesystem holding the root.
pub use crate::disk::FsStats;

pub mod containers;
pub use containers::{ContainerKeep, ContainerOptions, ContainerSelection};

#[derive(Debug, Clone)]
pub struct Options {
    pub all: bool,
    pub filters: Filters,
    pub older_than: Option<i64>,
    pub age_by: AgeBy,
    pub keep: Vec<KeepPattern>,
    pub keep_last: Option<usize>,
    pub watermark: Option<(Watermark, FsStats)>,
    pub min_age: Option<i64>,
    pub now: i64,
    /// `--containers`: stopped containers go first, so the images only
    /// they used can go in the same run.
    pub containers: ContainerOptions,
    /// Images and containers that stay whatever the rules say, with the
    /// reason (the daemon and the disk disagree on them).
    pub pinned: BTreeMap<ImageId, String>,
    pub pinned_containers: BTreeMap<ContainerId, String>,
}

impl Options {
    /// `prune -a` with no filter and no keep rule: what df calls reclaimable.
    pub fn all(now: i64) -> Options {
        Options {
            all: true,
            filters: Filters::default(),
            older_than: None,
            age_by: AgeBy::Created,
            keep: Vec::new(),
            keep_last: None,
            watermark: None,
            min_age: None,
            now,
            containers: ContainerOptions::off(now),
            pinned: BTreeMap::new(),
            pinned_containers: BTreeMap::new(),
        }
    }
}

#[derive(Debug, Default, Serialize)]
pub struct Selection {
    /// Images whose config, metadata and references go, with the rule that chose each.
    pub remove: BTreeMap<ImageId, String>,
    /// Images that lose their references but stay, because images built on
    /// them stay (Docker's `prune -a` does the same).
    pub untag: BTreeMap<ImageId, String>,
    /// Candidates a keep rule protected, with the rule.
    pub kept: BTreeMap<ImageId, String>,
    /// Why nothing was selected by the watermark rule, when it applied.
    pub note: Option<String>,
    /// Containers to remove first, and those a rule kept.
    pub containers: ContainerSelection,
}

/// The latest offline sign of use: its containers' times, its last tag time, its creation.
pub fn last_used(g: &Graph, id: &ImageId) -> Option<i64> {
    let img = g.snap.images.get(id)?;
    let mut t = img.created_unix;
    let mut bump = |v: Option<i64>| {
        if let Some(v) = v {
            t = Some(t.map_or(v, |t| t.max(v)));
        }
    };
    bump(img.last_updated.as_deref().and_then(parse_time));
    for c in g.containers_by_image.get(id).into_iter().flatten() {
        let c = &g.snap.containers[c];
        for s in [&c.created, &c.started_at, &c.finished_at] {
            bump(s.as_deref().and_then(parse_time));
        }
    }
    t
}

pub fn select(g: &Graph, o: &Options) -> Selection {
    let mut sel = Selection {
        containers: containers::select(g.snap, &o.containers, &o.pinned_containers),
        ..Selection::default()
    };
    let protect = Protector::new(g, o, &sel.containers);
    let mut candidates = candidates(g, o);
    candidates.retain(|id| match protect.why(id) {
        Some(why) => {
            sel.kept.insert(*id, why);
            false
        }
        None => true,
    });
    let base_reason = if o.all { "unused (-a)" } else { "dangling" };
    let chosen = match o.watermark {
        None => candidates
            .into_iter()
            .map(|id| (id, base_reason.to_string()))
            .collect(),
        Some((w, fs)) => evict(g, candidates, w, fs, &mut sel.note),
    };

    // Tagged images with children lose their tags and stay for their
    // children (Docker's -a does this) ...
    let (mut untag, mut remove): (BTreeMap<_, _>, BTreeMap<_, _>) =
        chosen.into_iter().partition(|(id, _)| g.has_children(id));
    keep_parents_of_staying_images(g, &mut remove);
    // ... until their last child goes: then the child's PruneChildren
    // removes them too, as it does untagged parents.
    loop {
        add_untagged_parents(g, &mut remove, &|p| {
            untag.contains_key(p) || (!g.refs_by_image.contains_key(p) && protect.why(p).is_none())
        });
        let freed: Vec<ImageId> = untag
            .keys()
            .filter(|p| g.children[p].iter().all(|c| remove.contains_key(c)))
            .copied()
            .collect();
        if freed.is_empty() {
            break;
        }
        for p in freed {
            let why = untag.remove(&p).unwrap_or_default();
            remove.insert(p, format!("{why}; its children go too"));
        }
    }
    sel.untag = untag;
    sel.remove = remove;
    sel
}

/// What `docker rmi` of `ids` (with its default PruneChildren) removes: each
/// image unless a container uses it or it has children, and the untagged,
/// unused parents that are left without children.
pub fn select_only(g: &Graph, ids: &[ImageId]) -> Selection {
    let mut sel = Selection::default();
    let mut remove = BTreeMap::new();
    for id in ids.iter().filter(|i| g.loaded.contains(i)) {
        if g.used_by_containers.contains(id) {
            sel.kept.insert(*id, "used by a container".into());
        } else if g.has_children(id) {
            sel.kept.insert(*id, "has child images".into());
        } else {
            remove.insert(*id, "selected".to_string());
        }
    }
    add_untagged_parents(g, &mut remove, &|p| {
        !g.refs_by_image.contains_key(p) && !g.used_by_containers.contains(p)
    });
    sel.remove = remove;
    sel
}

/// The keep rules, with the reason each shows in the plan.
struct Protector<'a> {
    g: &'a Graph<'a>,
    o: &'a Options,
    keep_last: HashMap<ImageId, String>,
    /// Containers this run removes first: they hold nothing.
    going: &'a ContainerSelection,
}

impl<'a> Protector<'a> {
    fn new(g: &'a Graph<'a>, o: &'a Options, going: &'a ContainerSelection) -> Self {
        Protector {
            g,
            o,
            keep_last: keep_last_set(g, o.keep_last),
            going,
        }
    }

    fn why(&self, id: &ImageId) -> Option<String> {
        let (g, o) = (self.g, self.o);
        if let Some(why) = o.pinned.get(id) {
            return Some(why.clone());
        }
        let mut users = g.image_users.get(id).into_iter().flatten();
        if let Some(c) = users.find(|c| !self.going.remove.contains_key(*c)) {
            let name = g.snap.containers.get(c).map_or("", |c| c.name.as_str());
            return Some(format!("used by container {name}"));
        }
        if let Some(p) = o.keep.iter().find(|p| p.matches(g, id)) {
            let name = match p {
                KeepPattern::Label(k, Some(v)) => format!("label={k}={v}"),
                KeepPattern::Label(k, None) => format!("label={k}"),
                KeepPattern::IdPrefix(h) => h.clone(),
                KeepPattern::Glob(s, _) => s.clone(),
            };
            return Some(format!("--keep {name}"));
        }
        if let Some(repo) = self.keep_last.get(id) {
            return Some(format!(
                "--keep-last {} in {repo}",
                o.keep_last.unwrap_or(0)
            ));
        }
        if let (Some(min), Some(t)) = (o.min_age, last_used(g, id))
            && o.now - t < min
        {
            return Some("younger than --min-age".into());
        }
        None
    }
}

/// Dangling images, or with -a every image (an untagged image with children
/// is never a candidate: it goes with its children), that pass the filters.
fn candidates(g: &Graph, o: &Options) -> Vec<ImageId> {
    let snap = g.snap;
    g.loaded
        .iter()
        .filter(|id| {
            if o.all {
                g.refs_by_image.contains_key(id) || !g.has_children(id)
            } else {
                g.is_dangling(id)
            }
        })
        .filter(|id| {
            let img = &snap.images[id];
            if let Some(until) = o.filters.until
                && img.created_unix.is_none_or(|c| c > until)
            {
                return false;
            }
            if !o
                .filters
                .labels
                .iter()
                .all(|l| label_matches(|k| img.labels.get(k), l))
            {
                return false;
            }
            if !o.filters.not_labels.is_empty()
                && o.filters
                    .not_labels
                    .iter()
                    .all(|l| label_matches(|k| img.labels.get(k), l))
            {
                return false;
            }
            if let Some(age) = o.older_than {
                let t = match o.age_by {
                    AgeBy::Created => img.created_unix,
                    AgeBy::LastUsed => last_used(g, id),
                };
                if t.is_none_or(|t| o.now - t <= age) {
                    return false;
                }
            }
            true
        })
        .copied()
        .collect()
}

/// Watermarks: least recently used candidates first, until what the holds
/// say their removal frees reaches what the watermark asks for.
fn evict(
    g: &Graph,
    mut candidates: Vec<ImageId>,
    w: Watermark,
    fs: FsStats,
    note: &mut Option<String>,
) -> BTreeMap<ImageId, String> {
    let mut chosen = BTreeMap::new();
    let used = fs.total.saturating_sub(fs.available);
    let (over, need, why) = match w {
        Watermark::Percent { high, low } => {
            let pct = used as f64 * 100.0 / fs.total.max(1) as f64;
            let target = (low / 100.0 * fs.total as f64) as u64;
            (
                pct > high,
                used.saturating_sub(target),
                format!("LRU: filesystem {pct:.1}% used > --high {high}%"),
            )
        }
        Watermark::Free(want) => (
            fs.available < want,
            want.saturating_sub(fs.available),
            format!("LRU: {} bytes free < --free {want}", fs.available),
        ),
    };
    if !over {
        *note = Some("below the high watermark: nothing to evict".into());
        return chosen;
    }
    candidates.sort_by_key(|id| (last_used(g, id), *id));
    let mut freer = g.holds.freer();
    let mut freed = 0u64;
    for id in candidates {
        if freed >= need {
            break;
        }
        if let Some(h) = g.holders.images.get(&id) {
            freed += freer
                .remove(*h)
                .iter()
                .filter_map(|n| g.edges.chain_id(*n))
                .map(|c| g.snap.layers.get(&c).map_or(0, |l| l.size))
                .sum::<u64>();
        }
        chosen.insert(id, why.clone());
    }
    if freed < need {
        *note = Some(format!(
            "evicting every eligible image frees {freed} of the {need} bytes asked for"
        ));
    }
    chosen
}

/// Never remove a parent of an image that stays (Docker: "has children").
fn keep_parents_of_staying_images(g: &Graph, remove: &mut BTreeMap<ImageId, String>) {
    let snap = g.snap;
    let stays: Vec<ImageId> = g
        .loaded
        .iter()
        .filter(|i| !remove.contains_key(i))
        .copied()
        .collect();
    for id in stays {
        let mut cur = snap.images[&id].parent;
        while let Some(p) = cur {
            if remove.remove(&p).is_none() && !g.loaded.contains(&p) {
                break;
            }
            cur = snap.images.get(&p).and_then(|i| i.parent);
        }
    }
}

/// `docker rmi` also removes untagged parents that are left without
/// children (`imageDeleteHelper` with PruneChildren), when `may_go` allows.
/// `may_go` decides for parents with references too: prune may already
/// have taken a parent's tags.
fn add_untagged_parents(
    g: &Graph,
    remove: &mut BTreeMap<ImageId, String>,
    may_go: &dyn Fn(&ImageId) -> bool,
) {
    let snap = g.snap;
    let mut changed = true;
    while changed {
        changed = false;
        let parents: Vec<(ImageId, ImageId)> = remove
            .keys()
            .filter_map(|c| snap.images[c].parent.map(|p| (p, *c)))
            .collect();
        for (p, child) in parents {
            if remove.contains_key(&p) || !g.loaded.contains(&p) {
                continue;
            }
            let all_children_go = g
                .children
                .get(&p)
                .is_some_and(|ch| ch.iter().all(|c| remove.contains_key(c)));
            if all_children_go && may_go(&p) {
                remove.insert(p, format!("untagged parent of {}", child.short()));
                changed = true;
            }
        }
    }
}

/// In each repository, the images of its N most recently created tags.
fn keep_last_set(g: &Graph, n: Option<usize>) -> HashMap<ImageId, String> {
    let Some(n) = n else { return HashMap::new() };
    let mut by_repo: BTreeMap<&str, Vec<ImageId>> = BTreeMap::new();
    for r in g.snap.refs.iter().filter(|r| !r.is_digest()) {
        by_repo.entry(&r.repository).or_default().push(r.image);
    }
    let mut out = HashMap::new();
    for (repo, mut ids) in by_repo {
        ids.sort_by_key(|id| {
            std::cmp::Reverse((g.snap.images.get(id).and_then(|i| i.created_unix), *id))
        });
        ids.dedup();
        for id in ids.into_iter().take(n) {
            out.insert(id, repo.to_string());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph::tests::*;

    fn opts() -> Options {
        Options {
            all: false,
            ..Options::all(2_000_000_000)
        }
    }

    fn created(s: &mut crate::store::Snapshot, id: ImageId, t: i64) {
        let img = s.images.get_mut(&id).unwrap();
        img.created_unix = Some(t);
    }

    #[test]
    fn default_removes_dangling_images_and_their_untagged_parents() {
        let mut s = empty_snapshot();
        let base = add_image(&mut s, &[1], 10, None);
        let mid = add_image(&mut s, &[1, 2], 10, Some(base));
        let old = add_image(&mut s, &[1, 2, 3], 10, Some(mid));
        let app = add_image(&mut s, &[1, 9], 10, Some(base));
        tag(&mut s, "base:1", base);
        tag(&mut s, "app:1", app);
        let digest_only = add_image(&mut s, &[5], 10, None);
        tag(&mut s, &format!("d@sha256:{}", "1".repeat(64)), digest_only);
        let g = Graph::build(&s);
        let sel = select(&g, &opts());
        let got: Vec<&ImageId> = sel.remove.keys().collect();
        assert!(sel.remove.contains_key(&old));
        assert!(
            sel.remove.contains_key(&mid),
            "untagged parent goes with it"
        );
        assert!(
            sel.remove.contains_key(&digest_only),
            "digest-only is dangling"
        );
        assert_eq!(got.len(), 3);
        assert!(sel.remove[&mid].starts_with("untagged parent"));
    }

    #[test]
    fn all_keeps_used_images_and_parents_of_kept_images() {
        let mut s = empty_snapshot();
        let base = add_image(&mut s, &[1], 10, None);
        let app = add_image(&mut s, &[1, 2], 10, Some(base));
        let other = add_image(&mut s, &[7], 10, None);
        tag(&mut s, "base:1", base);
        tag(&mut s, "app:1", app);
        tag(&mut s, "other:1", other);
        add_container(&mut s, 4, app, false);
        let g = Graph::build(&s);
        let sel = select(
            &g,
            &Options {
                all: true,
                ..opts()
            },
        );
        assert_eq!(sel.remove.keys().collect::<Vec<_>>(), vec![&other]);
        assert_eq!(sel.kept[&app], "used by container c4");
        // base is tagged with a child that stays: untagged, not removed
        assert!(sel.untag.contains_key(&base));
    }

    #[test]
    fn all_removes_a_tagged_parent_whose_children_all_go() {
        // Docker's -a untags base:1, then its last child's PruneChildren
        // removes it; with a child that stays, it stays untagged.
        let mut s = empty_snapshot();
        let base = add_image(&mut s, &[1], 10, None);
        let app = add_image(&mut s, &[1, 2], 10, Some(base));
        tag(&mut s, "base:1", base);
        tag(&mut s, "app:1", app);
        let all = Options {
            all: true,
            ..opts()
        };
        let sel = select(&Graph::build(&s), &all);
        assert!(sel.remove.contains_key(&base) && sel.remove.contains_key(&app));
        assert!(sel.untag.is_empty());
        add_container(&mut s, 3, app, false);
        let sel = select(&Graph::build(&s), &all);
        assert!(sel.remove.is_empty());
        assert!(sel.untag.contains_key(&base));
    }

    #[test]
    fn filters_follow_docker() {
        let mut s = empty_snapshot();
        let a = add_image(&mut s, &[1], 10, None);
        let b = add_image(&mut s, &[2], 10, None);
        created(&mut s, a, 1_000);
        created(&mut s, b, 5_000);
        s.images
            .get_mut(&a)
            .unwrap()
            .labels
            .insert("env".into(), "ci".into());
        let g = Graph::build(&s);
        let f = |specs: &[&str]| {
            let specs: Vec<String> = specs.iter().map(|s| s.to_string()).collect();
            let o = Options {
                filters: Filters::parse(&specs, 10_000).unwrap(),
                ..opts()
            };
            select(&g, &o).remove.into_keys().collect::<Vec<_>>()
        };
        assert_eq!(f(&["until=2000"]), vec![a]);
        assert_eq!(f(&["label=env=ci"]), vec![a]);
        assert_eq!(f(&["label=env"]), vec![a]);
        assert_eq!(f(&["label!=env"]), vec![b]);
        // now - 2h = 2800: a (created 1000) qualifies, b (5000) is too young.
        assert_eq!(f(&["until=2h"]), vec![a]);
        assert!(Filters::parse(&["until=1h".into(), "until=2h".into()], 0).is_err());
        assert!(Filters::parse(&["bogus=1".into()], 0).is_err());
    }

    #[test]
    fn keep_patterns_and_keep_last() {
        let mut s = empty_snapshot();
        let a1 = add_image(&mut s, &[1], 10, None);
        let a2 = add_image(&mut s, &[2], 10, None);
        let a3 = add_image(&mut s, &[3], 10, None);
        let b = add_image(&mut s, &[4], 10, None);
        created(&mut s, a1, 100);
        created(&mut s, a2, 200);
        created(&mut s, a3, 300);
        tag(&mut s, "org/a:1", a1);
        tag(&mut s, "org/a:2", a2);
        tag(&mut s, "org/a:3", a3);
        tag(&mut s, "b:1", b);
        let g = Graph::build(&s);
        let all = |keep: &[&str], last: Option<usize>| {
            let o = Options {
                all: true,
                keep: keep
                    .iter()
                    .map(|p| KeepPattern::parse(p).unwrap())
                    .collect(),
                keep_last: last,
                ..opts()
            };
            select(&g, &o).remove.into_keys().collect::<BTreeSet<_>>()
        };
        use std::collections::BTreeSet;
        assert_eq!(all(&["org/*"], None), BTreeSet::from([b]));
        assert_eq!(all(&["b:1"], None), BTreeSet::from([a1, a2, a3]));
        assert_eq!(
            all(&["org/a"], None),
            BTreeSet::from([b]),
            "bare repository name"
        );
        assert_eq!(all(&[&b.hex()[..8]], None), BTreeSet::from([a1, a2, a3]));
        assert_eq!(
            all(&[], Some(2)),
            BTreeSet::from([a1]),
            "keeps a3, a2 and b's only tag"
        );
    }

    #[test]
    fn older_than_by_created_and_last_used() {
        let mut s = empty_snapshot();
        let a = add_image(&mut s, &[1], 10, None);
        created(&mut s, a, 1_000);
        s.images.get_mut(&a).unwrap().last_updated = Some("2033-05-18T03:33:20Z".into()); // 2e9
        let g = Graph::build(&s);
        let o = |by| Options {
            older_than: Some(3600),
            age_by: by,
            ..opts()
        };
        assert_eq!(select(&g, &o(AgeBy::Created)).remove.len(), 1);
        assert_eq!(
            select(&g, &o(AgeBy::LastUsed)).remove.len(),
            0,
            "tagged just now"
        );
    }

    #[test]
    fn watermarks_evict_least_recently_used_until_low() {
        let mut s = empty_snapshot();
        let ids: Vec<ImageId> = (1..=4u8)
            .map(|n| add_image(&mut s, &[n], 100, None))
            .collect();
        for (i, id) in ids.iter().enumerate() {
            created(&mut s, *id, 1_000 + i as i64);
            tag(&mut s, &format!("r:{i}"), *id);
        }
        let g = Graph::build(&s);
        let fs = FsStats {
            total: 1000,
            available: 100,
        }; // 90% used
        let o = |high, low| Options {
            all: true,
            watermark: Some((Watermark::Percent { high, low }, fs)),
            ..opts()
        };
        // need 900 - 750 = 150 bytes: the two oldest images
        let sel = select(&g, &o(85.0, 75.0));
        assert_eq!(sel.remove.keys().copied().collect::<Vec<_>>().len(), 2);
        assert!(sel.remove.contains_key(&ids[0]) && sel.remove.contains_key(&ids[1]));
        assert!(select(&g, &o(95.0, 75.0)).remove.is_empty(), "below high");
        let free = Options {
            all: true,
            watermark: Some((Watermark::Free(350), fs)),
            ..opts()
        };
        assert_eq!(select(&g, &free).remove.len(), 3);
    }

    #[test]
    fn until_parses_docker_forms() {
        assert_eq!(parse_until("1h", 10_000), Ok(6_400));
        assert_eq!(parse_until("1700000000", 0), Ok(1_700_000_000));
        assert_eq!(parse_until("1700000000.5", 0), Ok(1_700_000_000));
        assert_eq!(parse_until("2024-01-01T00:00:00Z", 0), Ok(1_704_067_200));
        assert!(parse_until("2024-01-01", 0).is_ok());
        assert!(parse_until("soon", 0).is_err());
    }
}
