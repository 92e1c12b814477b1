//! `df` as tables, laid out like `docker system df [-v]` with dockgc's extra rows.

use super::tabwriter::Table;
use crate::units::{human_duration, human_size};
use crate::usage::Usage;

pub struct TableOptions {
    pub verbose: bool,
    /// Also list untagged intermediate images (like `docker images -a`).
    pub all: bool,
    /// Unix seconds used for "N days ago".
    pub now: i64,
}

fn row_title(kind: &str) -> &'static str {
    match kind {
        "images" => "Images",
        "containers" => "Containers",
        "volumes" => "Local Volumes",
        "build-cache" => "Build Cache",
        "logs" => "Container logs",
        "orphans" => "Orphaned layer data",
        "pending-removal" => "Pending removals",
        "unknown" => "Unclassified",
        _ => "Other",
    }
}

fn reclaimable(size: u64, r: u64) -> String {
    if size == 0 {
        return human_size(r);
    }
    format!("{} ({}%)", human_size(r), r * 100 / size)
}

pub fn df_table(u: &Usage, o: &TableOptions) -> String {
    let mut out = String::new();
    if o.verbose {
        out.push_str(&verbose(u, o));
        out.push('\n');
    }
    let mut t = Table::new(["TYPE", "TOTAL", "ACTIVE", "SIZE", "RECLAIMABLE"]);
    for r in &u.summary {
        if r.kind == "unknown" && r.total == 0 {
            continue;
        }
        t.row([
            row_title(r.kind).to_string(),
            r.total.to_string(),
            r.active.to_string(),
            human_size(r.size),
            reclaimable(r.size, r.reclaimable),
        ]);
    }
    out.push_str(&t.render());
    if let Some(d) = &u.disk {
        out.push_str(&disk_table(d));
    }
    if !o.verbose && !u.anomalies.is_empty() {
        out.push_str(&format!(
            "\n{} problem(s) found in the store; `dockgc df -v` lists them.\n",
            u.anomalies.len()
        ));
    }
    out
}

fn verbose(u: &Usage, o: &TableOptions) -> String {
    let mut out = String::from("Images space usage:\n\n");
    out.push_str(&images(u, o));
    out.push_str("\nContainers space usage:\n\n");
    out.push_str(&containers(u));
    out.push_str("\nLocal Volumes space usage:\n\n");
    out.push_str(&volumes(u));
    out.push_str("\nBuild cache usage:\n\n");
    out.push_str(&build_cache(u, o));
    out.push_str(&format!(
        "\nOrphaned and leftover data under {} (Docker shows none of this):\n\n",
        u.root.display()
    ));
    out.push_str(&orphans(u));
    if !u.anomalies.is_empty() {
        out.push_str("\nProblems found while reading the store:\n\n");
        for a in &u.anomalies {
            out.push_str(&format!("{}: {}\n", a.path.display(), a.message));
        }
    }
    out
}

/// One row per tag, like `docker system df -v`, plus EXCLUSIVE.
fn images(u: &Usage, o: &TableOptions) -> String {
    let mut t = Table::new([
        "REPOSITORY",
        "TAG",
        "IMAGE ID",
        "CREATED",
        "SIZE",
        "SHARED SIZE",
        "UNIQUE SIZE",
        "EXCLUSIVE",
        "CONTAINERS",
    ]);
    for i in u.images.iter().filter(|i| o.all || i.listed) {
        let created = match i.created_unix {
            Some(t) => format!("{} ago", human_duration(o.now - t)),
            None => "N/A".into(),
        };
        let mut names: Vec<(String, String)> = i
            .repo_tags
            .iter()
            .map(|r| match r.rsplit_once(':') {
                Some((repo, tag)) if !tag.contains('/') => (repo.to_string(), tag.to_string()),
                _ => (r.clone(), "<none>".into()),
            })
            .collect();
        if names.is_empty() {
            let repo = i
                .repo_digests
                .first()
                .and_then(|d| d.split('@').next())
                .unwrap_or("<none>");
            names.push((repo.to_string(), "<none>".into()));
        }
        for (repo, tag) in names {
            t.row([
                repo,
                tag,
                i.id.short(),
                created.clone(),
                human_size(i.size),
                human_size(i.shared_size),
                human_size(i.unique_size),
                human_size(i.exclusive_size),
                i.containers.to_string(),
            ]);
        }
    }
    t.render()
}

fn containers(u: &Usage) -> String {
    let mut t = Table::new(["CONTAINER ID", "IMAGE", "STATE", "SIZE", "LOGS", "NAMES"]);
    for c in &u.containers {
        let image = c
            .image_ref
            .clone()
            .or_else(|| c.image.map(|i| i.short()))
            .unwrap_or_else(|| "<none>".into());
        t.row([
            c.id.short().to_string(),
            image,
            c.state.to_string(),
            human_size(c.size_rw),
            human_size(c.log_bytes),
            c.names.join(","),
        ]);
    }
    t.render()
}

/// Like `docker system df -v`'s build cache table.
fn build_cache(u: &Usage, o: &TableOptions) -> String {
    if !u.build_cache_known {
        return "unknown: BuildKit's databases could not be read (see the problems below)\n".into();
    }
    let ago = |t: &str| {
        crate::store::parse_time(t).map_or_else(
            || "N/A".to_string(),
            |t| format!("{} ago", human_duration(o.now - t)),
        )
    };
    let mut t = Table::new([
        "CACHE ID",
        "CACHE TYPE",
        "SIZE",
        "CREATED",
        "LAST USED",
        "USAGE",
        "SHARED",
    ]);
    for r in &u.build_cache {
        t.row([
            r.id.chars().take(12).collect::<String>(),
            r.kind.clone(),
            human_size(r.size),
            ago(&r.created),
            r.last_used.as_deref().map_or_else(String::new, ago),
            r.usage_count.to_string(),
            r.shared.to_string(),
        ]);
    }
    t.render()
}

/// Like `docker system df -v`, plus whether each volume is anonymous.
fn volumes(u: &Usage) -> String {
    let mut t = Table::new(["VOLUME NAME", "LINKS", "SIZE", "KIND"]);
    for v in &u.volumes {
        t.row([
            v.name.clone(),
            v.links.to_string(),
            v.size.map_or_else(|| "N/A".into(), human_size),
            if v.anonymous { "anonymous" } else { "named" }.to_string(),
        ]);
    }
    t.render()
}

fn orphans(u: &Usage) -> String {
    if u.orphans.is_empty() {
        return "none\n".into();
    }
    let mut t = Table::new(["KIND", "SIZE", "PATH", "WHY"]);
    for x in &u.orphans {
        let kind = serde_json::to_value(x.kind)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default();
        // Relative to the root: the table stays readable; JSON has full paths.
        let path = x.path.strip_prefix(&u.root).unwrap_or(&x.path);
        t.row([
            kind,
            human_size(x.bytes),
            path.display().to_string(),
            x.reason.clone(),
        ]);
    }
    t.render()
}

/// `--disk`'s reconciliation, the same for both stores.
pub(super) fn disk_table(d: &crate::reconcile::DiskUsage) -> String {
    let mut out = String::from("\nOn disk (allocated bytes, one filesystem, hard links once):\n");
    let mut t = Table::new(["CATEGORY", "SIZE", "BYTES"]);
    for c in &d.categories {
        t.row([c.name.to_string(), human_size(c.bytes), c.bytes.to_string()]);
    }
    t.row([
        "total".to_string(),
        human_size(d.total_bytes),
        d.total_bytes.to_string(),
    ]);
    out.push_str(&t.render());
    for e in &d.errors {
        out.push_str(&format!(
            "not counted: {}: {}\n",
            e.path.display(),
            e.message
        ));
    }
    for p in &d.other_filesystems {
        out.push_str(&format!("other filesystem, not counted: {}\n", p.display()));
    }
    out
}
