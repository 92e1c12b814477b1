//! A prune plan and its outcome as text a person reads before saying yes.

use super::tabwriter::Table;
use crate::apply::Outcome;
use crate::plan::Plan;
use crate::units::human_size;
use std::fmt::Write;

fn kind_word<T: serde::Serialize>(k: &T) -> String {
    serde_json::to_value(k)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

pub fn plan_table(p: &Plan, verbose: bool) -> String {
    let mut out = String::new();
    if p.is_empty() {
        let _ = writeln!(out, "Nothing to remove in {}.", p.root.display());
        if let Some(n) = &p.note {
            let _ = writeln!(out, "({n})");
        }
        return out;
    }
    source(p, &mut out);
    containers(p, verbose, &mut out);
    images(p, &mut out);
    untagged(p, &mut out);
    if verbose {
        layers(p, &mut out);
    }
    leftovers(p, &mut out);
    build_cache(p, verbose, &mut out);
    volumes(p, &mut out);
    if verbose && !p.kept.is_empty() {
        out.push_str("\nKept by rule:\n");
        for k in &p.kept {
            let _ = writeln!(out, "  {}: {}", k.id.short(), k.reason);
        }
    }
    totals(p, &mut out);
    out
}

/// Where the plan's facts came from, when that is not the root alone.
fn source(p: &Plan, out: &mut String) {
    if p.source == "api" {
        let _ = writeln!(
            out,
            "Planned from the daemon's API alone: {} are not visible, so none are planned.\n",
            p.unseen.join(" and ")
        );
    }
    if !p.disagreements.is_empty() {
        out.push_str("Left alone, the root and the daemon disagree on them:\n");
        for d in &p.disagreements {
            let _ = writeln!(out, "  {} {}: {}", d.kind, short(&d.id), d.reason);
        }
        out.push('\n');
    }
}

fn short(id: &str) -> &str {
    let hex = id.strip_prefix("sha256:").unwrap_or(id);
    &hex[..hex.len().min(12)]
}

fn containers(p: &Plan, verbose: bool, out: &mut String) {
    if !p.containers.is_empty() {
        let mut t = Table::new(["CONTAINER", "NAME", "STATE", "SIZE", "WHY"]);
        for c in &p.containers {
            t.row([
                short(&c.id.0).to_string(),
                c.name.clone(),
                c.state.clone(),
                human_size(c.bytes),
                c.reason.clone(),
            ]);
        }
        out.push_str("Containers to remove (first):\n");
        out.push_str(&t.render());
        out.push('\n');
    }
    if verbose && !p.kept_containers.is_empty() {
        out.push_str("Containers kept:\n");
        for k in &p.kept_containers {
            let _ = writeln!(out, "  {}: {}", k.name, k.reason);
        }
        out.push('\n');
    }
}

fn build_cache(p: &Plan, verbose: bool, out: &mut String) {
    let Some(b) = &p.build_cache else { return };
    let mut how = vec![
        if b.all {
            "every unused record"
        } else {
            "unused, unshared records"
        }
        .to_string(),
    ];
    if let Some(u) = b.until {
        how.push(format!(
            "last used over {} ago",
            crate::units::human_duration(u)
        ));
    }
    if let Some(k) = b.keep_bytes {
        how.push(format!("keeping {}", human_size(k)));
    }
    let estimate = if b.known {
        format!(
            "{} record(s), {} by BuildKit's databases",
            b.records.len(),
            human_size(b.bytes)
        )
    } else {
        "records unknown (BuildKit's databases could not be read)".into()
    };
    let _ = writeln!(
        out,
        "\nBuild cache to prune through the daemon ({}): {estimate}; the daemon decides.",
        how.join(", ")
    );
    if verbose && !b.records.is_empty() {
        let mut t = Table::new(["CACHE ID", "TYPE", "SIZE", "LAST USED"]);
        for r in &b.records {
            t.row([
                short(&r.id).to_string(),
                r.kind.clone(),
                human_size(r.bytes),
                r.last_used.clone().unwrap_or_default(),
            ]);
        }
        out.push_str(&t.render());
    }
}

fn volumes(p: &Plan, out: &mut String) {
    if p.volumes.is_empty() {
        return;
    }
    let mut t = Table::new(["VOLUME", "KIND", "SIZE", "LABELS"]);
    for v in &p.volumes {
        let labels: Vec<String> = v.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
        t.row([
            v.name.clone(),
            if v.anonymous { "anonymous" } else { "named" }.to_string(),
            v.bytes.map_or("N/A".into(), human_size),
            labels.join(","),
        ]);
    }
    out.push_str("\nVolumes to remove (last):\n");
    out.push_str(&t.render());
}

fn images(p: &Plan, out: &mut String) {
    if p.images.is_empty() {
        return;
    }
    let mut t = Table::new(["IMAGE ID", "TAGS", "WHY"]);
    for i in &p.images {
        let tags = if i.repo_tags.is_empty() {
            "<none>".into()
        } else {
            i.repo_tags.join(",")
        };
        t.row([i.id.short(), tags, i.reason.clone()]);
    }
    out.push_str("Images to remove:\n");
    out.push_str(&t.render());
}

/// References of images that stay.
fn untagged(p: &Plan, out: &mut String) {
    let untag: Vec<_> = p
        .references
        .iter()
        .filter(|r| !p.images.iter().any(|i| i.id == r.image))
        .collect();
    if untag.is_empty() {
        return;
    }
    out.push_str("\nReferences to remove (the images stay: images built on them stay):\n");
    let mut t = Table::new(["REFERENCE", "IMAGE ID"]);
    for r in untag {
        t.row([r.reference.clone(), r.image.short()]);
    }
    out.push_str(&t.render());
}

fn layers(p: &Plan, out: &mut String) {
    if p.layers.is_empty() {
        return;
    }
    let mut t = Table::new(["LAYER", "SIZE", "WHY"]);
    for l in &p.layers {
        t.row([l.chain_id.short(), human_size(l.size), l.reason.clone()]);
    }
    out.push_str("\nLayers to remove (children first):\n");
    out.push_str(&t.render());
}

fn leftovers(p: &Plan, out: &mut String) {
    if !p.mounts.is_empty() || !p.orphans.is_empty() {
        let mut t = Table::new(["KIND", "SIZE", "PATH", "WHY"]);
        for m in &p.mounts {
            t.row([
                "mount".to_string(),
                human_size(m.bytes),
                format!("image/{}/layerdb/mounts/{}", p.driver, m.name),
                m.reason.clone(),
            ]);
        }
        for o in &p.orphans {
            t.row([
                kind_word(&o.kind),
                human_size(o.bytes),
                o.path.display().to_string(),
                o.reason.clone(),
            ]);
        }
        out.push_str("\nOrphans and leftovers to remove:\n");
        out.push_str(&t.render());
    }
    if !p.untouched.is_empty() {
        out.push_str("\nLeft alone (dockgc cannot tell what these are):\n");
        for u in &p.untouched {
            let _ = writeln!(
                out,
                "  {} ({}): {}",
                u.path.display(),
                human_size(u.bytes),
                u.reason
            );
        }
    }
}

fn totals(p: &Plan, out: &mut String) {
    let r = &p.reclaim;
    let _ = writeln!(
        out,
        "\nTotal: {} reference(s), {} image(s), {} layer(s), {} mount(s), {} orphan(s); {} to reclaim \
         (layers {}, mounts {}, orphans {}, image configs {}).",
        p.references.len(),
        p.images.len(),
        p.layers.len(),
        p.mounts.len(),
        p.orphans.len(),
        human_size(r.total),
        human_size(r.layers),
        human_size(r.mounts),
        human_size(r.orphans),
        human_size(r.images),
    );
    if !p.containers.is_empty() || p.build_cache.is_some() || !p.volumes.is_empty() {
        let _ = writeln!(
            out,
            "Also: {} container(s) ({}), build cache ({}), {} volume(s) ({}).",
            p.containers.len(),
            human_size(r.containers),
            human_size(r.build_cache),
            p.volumes.len(),
            human_size(r.volumes),
        );
    }
    if let Some(n) = &p.note {
        let _ = writeln!(out, "Note: {n}");
    }
}

pub fn outcome_table(o: &Outcome) -> String {
    let mut out = String::new();
    let c = &o.removed;
    let _ = writeln!(
        out,
        "Removed {} reference(s), {} image(s), {} layer(s), {} mount(s), {} orphan(s); reclaimed {}.",
        c.references,
        c.images,
        c.layers,
        c.mounts,
        c.orphans,
        human_size(o.reclaimed.total)
    );
    if c.containers + c.build_cache_records + c.volumes > 0 {
        let _ = writeln!(
            out,
            "Also removed {} container(s), {} build cache record(s), {} volume(s).",
            c.containers, c.build_cache_records, c.volumes
        );
    }
    if o.mode == "live" {
        let _ = writeln!(
            out,
            "Live, through the daemon: it reports {} reclaimed; the plan estimated {}.",
            human_size(o.reclaimed.total),
            human_size(o.estimated.total)
        );
    }
    if let Some(id) = &o.trash_id {
        let _ = writeln!(
            out,
            "Moved to the trash as {id}: `dockgc trash restore {id}` undoes it."
        );
    }
    if !o.skipped.is_empty() {
        let _ = writeln!(out, "\n{} item(s) left alone, in use now:", o.skipped.len());
        for s in &o.skipped {
            let _ = writeln!(out, "  {}: {}", s.item, s.reason);
        }
    }
    if !o.failures.is_empty() {
        let _ = writeln!(out, "\n{} item(s) could not be removed:", o.failures.len());
        for f in &o.failures {
            let _ = writeln!(out, "  {}: {}: {}", f.item, f.path.display(), f.error);
        }
        out.push_str("The store is consistent; running prune again retries them.\n");
    }
    out
}
