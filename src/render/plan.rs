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
    images(p, &mut out);
    untagged(p, &mut out);
    if verbose {
        layers(p, &mut out);
    }
    leftovers(p, &mut out);
    if verbose && !p.kept.is_empty() {
        out.push_str("\nKept by rule:\n");
        for k in &p.kept {
            let _ = writeln!(out, "  {}: {}", k.id.short(), k.reason);
        }
    }
    totals(p, &mut out);
    out
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
    if let Some(id) = &o.trash_id {
        let _ = writeln!(
            out,
            "Moved to the trash as {id}: `dockgc trash restore {id}` undoes it."
        );
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
