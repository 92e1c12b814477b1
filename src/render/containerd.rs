//! `df` of a containerd store as tables: a `docker system df`-like summary
//! with the rows containerd adds, and with `-v` every image, container,
//! snapshot, lease, ingest, collectable item and orphan.

use super::tabwriter::Table;
use crate::units::{human_duration, human_size};
use crate::usage::containerd::Usage;
use std::path::Path;

fn title(kind: &str) -> &'static str {
    match kind {
        "images" => "Images",
        "containers" => "Containers",
        "volumes" => "Local Volumes",
        "content" => "Content store (blobs)",
        "compressed-and-unpacked" => "Blobs also unpacked",
        "snapshots-committed" => "Snapshots committed",
        "snapshots-active" => "Snapshots active",
        "snapshots-view" => "Snapshots view",
        "leases" => "Leases",
        "ingests" => "Ingests",
        "collectable" => "Collectable (next GC)",
        "orphans" => "Orphaned data",
        _ => "Other",
    }
}

fn reclaimable(size: u64, r: u64) -> String {
    if size == 0 {
        return human_size(r);
    }
    format!("{} ({}%)", human_size(r), r * 100 / size)
}

/// `docker.io/library/app:1` → (`app`, `1`), as the docker CLI shows names.
pub fn familiar(name: &str) -> (String, String) {
    let (repo, tag) = match name.split_once('@') {
        Some((repo, _)) => (repo, "<none>"),
        None => match name.rsplit_once(':') {
            Some((repo, tag)) if !tag.contains('/') => (repo, tag),
            _ => (name, "<none>"),
        },
    };
    let repo = repo
        .strip_prefix("docker.io/library/")
        .or_else(|| repo.strip_prefix("docker.io/"))
        .unwrap_or(repo);
    (repo.to_string(), tag.to_string())
}

fn rel<'p>(root: &Path, p: &'p Path) -> std::borrow::Cow<'p, str> {
    p.strip_prefix(root).unwrap_or(p).to_string_lossy()
}

pub fn df_table(u: &Usage, verbose: bool, now: i64) -> String {
    let mut out = String::new();
    let c = &u.containerd;
    out.push_str(&format!(
        "containerd store {} (containerd {}), namespace {}; image sizes by Engine {} rules{}\n",
        u.root.display(),
        c.version.unwrap_or("unknown"),
        u.namespace,
        u.engine_rules.name,
        if u.engine_rules.chosen {
            ""
        } else {
            " (the newest; --engine-version chooses)"
        }
    ));
    if c.live {
        out.push_str(&format!(
            "containerd is running on this root: these figures are a point-in-time snapshot \
             read at {}\n",
            c.read_at
        ));
    }
    out.push('\n');
    if verbose {
        out.push_str(&details(u, now));
        out.push('\n');
    }
    let mut t = Table::new(["TYPE", "TOTAL", "ACTIVE", "SIZE", "RECLAIMABLE"]);
    for r in &u.summary {
        t.row([
            title(r.kind).to_string(),
            r.total.to_string(),
            r.active.to_string(),
            human_size(r.size),
            reclaimable(r.size, r.reclaimable),
        ]);
    }
    out.push_str(&t.render());
    if let Some(d) = &u.disk {
        out.push_str(&super::table::disk_table(d));
    }
    if !u.collectable.is_empty() {
        out.push_str(&format!(
            "\ncontainerd deletes {} item(s) ({}) at its next garbage collection; \
             `dockgc prune --dry-run` lists them.\n",
            u.collectable.len(),
            human_size(u.collectable.iter().map(|i| i.bytes).sum())
        ));
    }
    if !verbose && !u.anomalies.is_empty() {
        out.push_str(&format!(
            "\n{} problem(s) found in the store; `dockgc df -v` lists them.\n",
            u.anomalies.len()
        ));
    }
    out
}

fn details(u: &Usage, now: i64) -> String {
    let mut out = images_section(u, now);
    out.push_str(&containers_section(u));
    out.push_str(&snapshots_section(u));
    out.push_str(&leases_section(u));
    out.push_str(&leftovers_section(u));
    out
}

/// `-v`: the images, as `docker system df -v` lists them.
fn images_section(u: &Usage, now: i64) -> String {
    let all = u.namespaces.len() > 1 || u.namespace == "all";
    let mut out = String::from("Images space usage:\n\n");
    let mut head = vec![];
    if all {
        head.push("NAMESPACE");
    }
    head.extend([
        "REPOSITORY",
        "TAG",
        "IMAGE ID",
        "CREATED",
        "SIZE",
        "SHARED SIZE",
        "UNIQUE SIZE",
        "CONTAINERS",
    ]);
    let mut t = Table::new(head.clone());
    for i in &u.images {
        let created = i.created_unix.map_or_else(
            || "N/A".to_string(),
            |t| format!("{} ago", human_duration(now - t)),
        );
        let mut names: Vec<(String, String)> = i.repo_tags.iter().map(|n| familiar(n)).collect();
        if names.is_empty() {
            names.push(match i.repo_digests.first() {
                Some(d) => familiar(d),
                None => ("<none>".into(), "<none>".into()),
            });
        }
        for (repo, tag) in names {
            let mut row = Vec::new();
            if all {
                row.push(i.namespace.clone());
            }
            row.extend([
                repo,
                tag,
                i.id.short(),
                created.clone(),
                human_size(i.size),
                human_size(i.shared_size),
                human_size(i.unique_size),
                i.containers.to_string(),
            ]);
            t.row(row);
        }
    }
    out.push_str(&t.render());
    out
}

/// `-v`: containers with their RW snapshot usage, and Docker's volumes.
fn containers_section(u: &Usage) -> String {
    let mut out = String::new();
    out.push_str("\nContainers space usage:\n\n");
    let mut t = Table::new(["CONTAINER ID", "IMAGE", "STATE", "SIZE", "NAMES"]);
    for c in &u.containers {
        t.row([
            c.id.chars().take(12).collect::<String>(),
            c.image.clone().unwrap_or_else(|| "<none>".into()),
            c.state.to_string(),
            human_size(c.size_rw),
            c.names.join(","),
        ]);
    }
    out.push_str(&t.render());
    if u.docker_root.is_some() {
        out.push_str("\nLocal Volumes space usage:\n\n");
        let mut t = Table::new(["VOLUME NAME", "LINKS", "SIZE"]);
        for v in &u.volumes {
            t.row([
                v.name.clone(),
                v.links.to_string(),
                v.size.map_or("N/A".into(), human_size),
            ]);
        }
        out.push_str(&t.render());
    }
    out
}

/// `-v`: every snapshot with its usage, directory and holders.
fn snapshots_section(u: &Usage) -> String {
    let mut out = String::new();
    out.push_str("\nSnapshots (sizes as `ctr snapshots usage` prints them):\n\n");
    let mut t = Table::new([
        "NAMESPACE",
        "KEY",
        "KIND",
        "SIZE",
        "INODES",
        "DIR",
        "KEPT BY",
    ]);
    for s in &u.snapshots {
        t.row([
            s.namespace.clone(),
            s.key.0.clone(),
            s.kind.word().to_string(),
            s.size.to_string(),
            s.inodes.to_string(),
            s.dir.clone().unwrap_or_else(|| "-".into()),
            match s.holders.len() {
                0 => "nothing (collectable)".to_string(),
                1..=3 => s.holders.join("; "),
                n => format!("{} and {} more", s.holders[..2].join("; "), n - 2),
            },
        ]);
    }
    out.push_str(&t.render());
    out
}

/// `-v`: leases and unfinished ingests.
fn leases_section(u: &Usage) -> String {
    let mut out = String::new();
    out.push_str("\nLeases:\n\n");
    let mut t = Table::new(["NAMESPACE", "ID", "EXPIRES", "RESOURCES", "KEEPS ALONE"]);
    for l in &u.leases {
        t.row([
            l.namespace.clone(),
            l.id.clone(),
            match (&l.expires, l.expired) {
                (Some(e), true) => format!("{e} (expired)"),
                (Some(e), false) => e.clone(),
                (None, _) => "never".into(),
            },
            format!(
                "{} blob(s), {} snapshot(s), {} ingest(s){}{}",
                l.content,
                l.snapshots,
                l.ingests,
                if l.images > 0 {
                    format!(", {} image(s)", l.images)
                } else {
                    String::new()
                },
                if l.flat { ", flat" } else { "" }
            ),
            human_size(l.exclusive_bytes),
        ]);
    }
    out.push_str(&t.render());

    out.push_str("\nIngests (unfinished writes):\n\n");
    let mut t = Table::new(["REF", "RECEIVED", "TOTAL", "STARTED", "EXPIRES"]);
    for i in &u.ingests {
        t.row([
            i.backend_ref
                .clone()
                .unwrap_or_else(|| format!("? ({})", i.dir)),
            i.offset.map_or("-".into(), |o| o.to_string()),
            i.total.map_or("-".into(), |o| o.to_string()),
            i.started_at.clone().unwrap_or_else(|| "-".into()),
            i.expire_at.map_or("-".into(), |e| e.to_string()),
        ]);
    }
    out.push_str(&t.render());
    out
}

/// `-v`: what the next GC deletes, orphans, and problems met while reading.
fn leftovers_section(u: &Usage) -> String {
    let mut out = String::new();
    out.push_str("\nCollectable: what containerd deletes at its next garbage collection:\n\n");
    out.push_str(&collectable_table(u));

    out.push_str("\nOrphaned data (no record holds it):\n\n");
    if u.orphans.is_empty() {
        out.push_str("none\n");
    } else {
        let mut t = Table::new(["KIND", "SIZE", "PATH", "WHY"]);
        for o in &u.orphans {
            t.row([
                word(&o.kind),
                human_size(o.bytes),
                rel(&u.root, &o.path).into_owned(),
                format!(
                    "{}{}",
                    o.reason,
                    if o.removed_at_next_gc {
                        "; the next GC removes it"
                    } else {
                        ""
                    }
                ),
            ]);
        }
        out.push_str(&t.render());
    }
    if !u.anomalies.is_empty() {
        out.push_str("\nProblems found while reading the store:\n\n");
        for a in &u.anomalies {
            out.push_str(&format!("{}: {}\n", a.path.display(), a.message));
        }
    }
    out
}

fn word<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_value(v)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

/// The collectable items with their reasons (also `prune --dry-run`).
pub fn collectable_table(u: &Usage) -> String {
    if u.collectable.is_empty() {
        return "none\n".into();
    }
    let mut t = Table::new(["KIND", "ID", "SIZE", "PATH", "WHY"]);
    for i in &u.collectable {
        t.row([
            word(&i.kind),
            i.id.clone(),
            human_size(i.bytes),
            rel(&u.root, &i.path).into_owned(),
            i.reason.clone(),
        ]);
    }
    t.render()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_shown_in_their_familiar_form() {
        assert_eq!(
            familiar("docker.io/library/app:1"),
            ("app".into(), "1".into())
        );
        assert_eq!(
            familiar("ghcr.io/o/x:2"),
            ("ghcr.io/o/x".into(), "2".into())
        );
        assert_eq!(
            familiar("docker.io/library/app@sha256:00"),
            ("app".into(), "<none>".into())
        );
        assert_eq!(
            familiar("localhost:5000/x"),
            ("localhost:5000/x".into(), "<none>".into())
        );
    }
}
