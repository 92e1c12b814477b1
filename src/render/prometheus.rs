//! Prometheus text exposition (format 0.0.4), for node-exporter's textfile
//! collector. Names are `dockgc_*` in base units; labels are bounded sets
//! (types, kinds, checks, categories), never image or container IDs.

use crate::apply::Outcome;
use crate::plan::Plan;
use crate::usage::{SummaryRow, Usage};
use crate::verify::{Report, Severity};
use std::collections::BTreeMap;
use std::fmt::Write;

/// Collects metric families and prints them with HELP and TYPE lines.
#[derive(Default)]
pub struct Metrics {
    families: Vec<Family>,
    /// Added as `store="..."` to every sample but the run pair.
    store: Option<&'static str>,
}

struct Family {
    name: String,
    help: String,
    samples: Vec<(Vec<(&'static str, String)>, f64)>,
}

fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

impl Metrics {
    /// Adds a gauge sample; samples of one name are grouped under one HELP/TYPE.
    pub fn gauge(&mut self, name: &str, help: &str, labels: &[(&'static str, &str)], value: f64) {
        let mut labels: Vec<(&'static str, String)> =
            labels.iter().map(|(k, v)| (*k, v.to_string())).collect();
        if let Some(s) = self.store {
            labels.push(("store", s.to_string()));
        }
        match self.families.iter_mut().find(|f| f.name == name) {
            Some(f) => f.samples.push((labels, value)),
            None => self.families.push(Family {
                name: name.to_string(),
                help: help.to_string(),
                samples: vec![(labels, value)],
            }),
        }
    }

    /// Labels every later sample (but the run pair) with the kind of store
    /// it describes: `graphdriver` or `containerd`.
    pub fn set_store(&mut self, store: &'static str) {
        self.store = Some(store);
    }

    /// The standard pair every command writes: when it ran and for how long.
    /// They carry no store label: one run, one pair, whatever it read.
    pub fn run(&mut self, command: &str, timestamp: f64, seconds: f64) {
        let store = self.store.take();
        self.run_pair(command, timestamp, seconds);
        self.store = store;
    }

    fn run_pair(&mut self, command: &str, timestamp: f64, seconds: f64) {
        self.gauge(
            "dockgc_last_run_timestamp_seconds",
            "Unix time the last dockgc run of this command finished.",
            &[("command", command)],
            timestamp,
        );
        self.gauge(
            "dockgc_last_run_duration_seconds",
            "Wall time of the last dockgc run of this command.",
            &[("command", command)],
            seconds,
        );
    }

    pub fn render(&self) -> String {
        let mut out = String::new();
        for f in &self.families {
            let _ = writeln!(out, "# HELP {} {}", f.name, f.help);
            let _ = writeln!(out, "# TYPE {} gauge", f.name);
            for (labels, v) in &f.samples {
                let _ = write!(out, "{}", f.name);
                if !labels.is_empty() {
                    let l: Vec<String> = labels
                        .iter()
                        .map(|(k, v)| format!("{k}=\"{}\"", escape(v)))
                        .collect();
                    let _ = write!(out, "{{{}}}", l.join(","));
                }
                let _ = writeln!(out, " {v}");
            }
        }
        out
    }
}

fn word<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_value(v)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

/// The `docker system df` rows of either store; `extra` labels each sample.
fn summary_metrics(m: &mut Metrics, rows: &[SummaryRow], extra: &[(&'static str, &str)]) {
    for r in rows {
        let mut t = vec![("type", r.kind)];
        t.extend_from_slice(extra);
        m.gauge(
            "dockgc_objects",
            "Objects per type, as in `docker system df` TOTAL.",
            &t,
            r.total as f64,
        );
        m.gauge(
            "dockgc_active_objects",
            "Active objects per type (ACTIVE).",
            &t,
            r.active as f64,
        );
        m.gauge(
            "dockgc_size_bytes",
            "Bytes per type (SIZE).",
            &t,
            r.size as f64,
        );
        m.gauge(
            "dockgc_reclaimable_bytes",
            "Reclaimable bytes per type (RECLAIMABLE).",
            &t,
            r.reclaimable as f64,
        );
    }
}

/// `df` of a containerd store: the same families as [`df_metrics`] with a
/// `namespace` label, plus collectable items and liveness.
pub fn df_metrics_containerd(m: &mut Metrics, u: &crate::usage::containerd::Usage) {
    m.set_store("containerd");
    let ns = u.namespace.as_str();
    summary_metrics(m, &u.summary, &[("namespace", ns)]);
    let mut coll: BTreeMap<String, (u64, u64)> = BTreeMap::new();
    for i in &u.collectable {
        let e = coll.entry(word(&i.kind)).or_default();
        e.0 += 1;
        e.1 += i.bytes;
    }
    for (kind, (n, bytes)) in &coll {
        let l = [("kind", kind.as_str()), ("namespace", ns)];
        m.gauge(
            "dockgc_collectable_items",
            "Records, files and dirs containerd's next garbage collection deletes, per kind.",
            &l,
            *n as f64,
        );
        m.gauge(
            "dockgc_collectable_bytes",
            "Bytes containerd's next garbage collection frees, per kind.",
            &l,
            *bytes as f64,
        );
    }
    problem_metrics(
        m,
        u.orphans.iter().map(|o| (word(&o.kind), o.bytes)),
        &u.anomalies,
    );
    m.gauge(
        "dockgc_containerd_live",
        "1 when a containerd held the root's databases while dockgc read them (a point-in-time snapshot).",
        &[],
        f64::from(u8::from(u.containerd.live)),
    );
    if let Some(d) = &u.disk {
        for c in &d.categories {
            m.gauge(
                "dockgc_disk_allocated_bytes",
                "Allocated bytes under the root per category (df --disk).",
                &[("category", c.name)],
                c.bytes as f64,
            );
        }
        m.gauge(
            "dockgc_disk_total_bytes",
            "Allocated bytes under the root (du -s -B1).",
            &[],
            d.total_bytes as f64,
        );
    }
}

pub fn df_metrics(m: &mut Metrics, u: &Usage) {
    m.set_store("graphdriver");
    summary_metrics(m, &u.summary, &[]);
    m.gauge(
        "dockgc_layers_size_bytes",
        "Distinct layer bytes of the listed images (Docker's LayersSize).",
        &[],
        u.layers_size as f64,
    );
    build_cache_metrics(m, u);
    volume_metrics(m, u);
    problem_metrics(
        m,
        u.orphans.iter().map(|o| (word(&o.kind), o.bytes)),
        &u.anomalies,
    );
    if let Some(d) = &u.disk {
        for c in &d.categories {
            m.gauge(
                "dockgc_disk_allocated_bytes",
                "Allocated bytes under the root per category (df --disk).",
                &[("category", c.name)],
                c.bytes as f64,
            );
        }
        m.gauge(
            "dockgc_disk_total_bytes",
            "Allocated bytes under the root (du -s -B1).",
            &[],
            d.total_bytes as f64,
        );
    }
}

/// Local volumes per kind: anonymous or named.
fn volume_metrics(m: &mut Metrics, u: &Usage) {
    for anonymous in [false, true] {
        let kind = if anonymous { "anonymous" } else { "named" };
        let v: Vec<_> = u
            .volumes
            .iter()
            .filter(|v| v.anonymous == anonymous)
            .collect();
        m.gauge(
            "dockgc_volumes",
            "Local volumes per kind (anonymous or named), as Local Volumes TOTAL counts them.",
            &[("kind", kind)],
            v.len() as f64,
        );
        m.gauge(
            "dockgc_volume_bytes",
            "Bytes of local volumes per kind (directory.Size of _data).",
            &[("kind", kind)],
            v.iter().filter_map(|v| v.size).sum::<u64>() as f64,
        );
        m.gauge(
            "dockgc_volume_unused_bytes",
            "Bytes of local volumes per kind that no container uses (RECLAIMABLE).",
            &[("kind", kind)],
            v.iter()
                .filter(|v| v.links == 0)
                .filter_map(|v| v.size)
                .sum::<u64>() as f64,
        );
    }
}

/// Orphans and leftovers, and the anomalies met while reading, per kind.
/// Both stores' orphans come as (kind, bytes), their anomalies as one type.
fn problem_metrics(
    m: &mut Metrics,
    items: impl Iterator<Item = (String, u64)>,
    found: &[crate::store::Anomaly],
) {
    let mut orphans: BTreeMap<String, (u64, u64)> = BTreeMap::new();
    for (kind, bytes) in items {
        let e = orphans.entry(kind).or_default();
        e.0 += 1;
        e.1 += bytes;
    }
    for (kind, (n, bytes)) in &orphans {
        m.gauge(
            "dockgc_orphans",
            "Orphaned or leftover items per kind.",
            &[("kind", kind)],
            *n as f64,
        );
        m.gauge(
            "dockgc_orphan_bytes",
            "Bytes of orphaned or leftover items per kind.",
            &[("kind", kind)],
            *bytes as f64,
        );
    }
    let mut anomalies: BTreeMap<String, u64> = BTreeMap::new();
    for a in found {
        *anomalies.entry(word(&a.kind)).or_default() += 1;
    }
    for (kind, n) in &anomalies {
        m.gauge(
            "dockgc_anomalies",
            "Problems met while reading the store, per kind.",
            &[("kind", kind)],
            *n as f64,
        );
    }
}

/// Records and bytes per BuildKit record type (a bounded set: regular,
/// source.local, exec.cachemount, ...), shared with images or not.
fn build_cache_metrics(m: &mut Metrics, u: &Usage) {
    let mut by: BTreeMap<(&str, &'static str), (u64, u64)> = BTreeMap::new();
    for r in &u.build_cache {
        let e = by
            .entry((r.kind.as_str(), if r.shared { "true" } else { "false" }))
            .or_default();
        e.0 += 1;
        e.1 += r.size;
    }
    for ((kind, shared), (n, bytes)) in &by {
        let l = [("type", *kind), ("shared", *shared)];
        m.gauge(
            "dockgc_build_cache_records",
            "BuildKit cache records per record type, as `docker system df -v` lists them.",
            &l,
            *n as f64,
        );
        m.gauge(
            "dockgc_build_cache_bytes",
            "Bytes of BuildKit cache records per record type.",
            &l,
            *bytes as f64,
        );
    }
    m.gauge(
        "dockgc_build_cache_known",
        "1 when BuildKit's databases could be read, 0 when the build cache is unknown.",
        &[],
        f64::from(u8::from(u.build_cache_known)),
    );
}

pub fn verify_metrics(m: &mut Metrics, r: &Report) {
    m.set_store(r.store);
    let mut by: BTreeMap<(String, &'static str), u64> = BTreeMap::new();
    for f in &r.findings {
        let sev = match f.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        *by.entry((f.check.id(), sev)).or_default() += 1;
    }
    for ((check, sev), n) in &by {
        m.gauge(
            "dockgc_verify_findings",
            "Findings of the last verify run per check and severity.",
            &[("check", check), ("severity", sev)],
            *n as f64,
        );
    }
    let s = &r.summary;
    m.gauge(
        "dockgc_verify_errors",
        "Errors found by the last verify run.",
        &[],
        s.errors as f64,
    );
    m.gauge(
        "dockgc_verify_warnings",
        "Warnings found by the last verify run.",
        &[],
        s.warnings as f64,
    );
    m.gauge(
        "dockgc_verify_layers_checked",
        "Layers the last verify run covered.",
        &[],
        s.layers_checked as f64,
    );
    m.gauge(
        "dockgc_verify_images_checked",
        "Images the last verify run covered.",
        &[],
        s.images_checked as f64,
    );
    m.gauge(
        "dockgc_verify_hashed_bytes",
        "Bytes hashed by the last deep verify run.",
        &[],
        s.bytes_hashed as f64,
    );
    m.gauge(
        "dockgc_verify_unverifiable_layers",
        "Layers the last deep verify run could not check offline.",
        &[],
        s.unverifiable as f64,
    );
    m.gauge(
        "dockgc_verify_deep",
        "1 if the last verify run was --deep.",
        &[],
        if r.deep { 1.0 } else { 0.0 },
    );
}

/// `mode`: `offline` or `live` (the mode a dry run would use).
pub fn prune_metrics(m: &mut Metrics, p: &Plan, o: Option<&Outcome>, mode: &str) {
    let cats = |r: &crate::plan::Reclaim| {
        [
            ("images", r.images),
            ("layers", r.layers),
            ("mounts", r.mounts),
            ("orphans", r.orphans),
            ("containers", r.containers),
            ("build_cache", r.build_cache),
            ("volumes", r.volumes),
        ]
    };
    for (cat, v) in cats(&p.reclaim) {
        m.gauge(
            "dockgc_prune_planned_bytes",
            "Bytes the last prune plan would reclaim, per category.",
            &[("category", cat), ("mode", mode)],
            v as f64,
        );
    }
    for (kind, v) in [
        ("containers", p.containers.len()),
        (
            "build_cache_records",
            p.build_cache.as_ref().map_or(0, |b| b.records.len()),
        ),
        ("volumes", p.volumes.len()),
        ("images", p.images.len()),
        ("layers", p.layers.len()),
    ] {
        m.gauge(
            "dockgc_prune_planned",
            "Items the last prune plan would remove, per kind.",
            &[("kind", kind), ("mode", mode)],
            v as f64,
        );
    }
    let Some(o) = o else { return };
    for (cat, v) in cats(&o.reclaimed) {
        m.gauge(
            "dockgc_prune_reclaimed_bytes",
            "Bytes the last prune run reclaimed, per category (live: as the daemon reports).",
            &[("category", cat), ("mode", mode)],
            v as f64,
        );
    }
    let c = &o.removed;
    for (kind, v) in [
        ("references", c.references),
        ("images", c.images),
        ("layers", c.layers),
        ("mounts", c.mounts),
        ("orphans", c.orphans),
        ("containers", c.containers),
        ("build_cache_records", c.build_cache_records),
        ("volumes", c.volumes),
    ] {
        m.gauge(
            "dockgc_prune_removed",
            "Items the last prune run removed, per kind.",
            &[("kind", kind), ("mode", mode)],
            v as f64,
        );
    }
    m.gauge(
        "dockgc_prune_skipped",
        "Items the last prune run left alone because they are in use now.",
        &[("mode", mode)],
        o.skipped.len() as f64,
    );
    m.gauge(
        "dockgc_prune_failures",
        "Items the last prune run could not remove.",
        &[("mode", mode)],
        o.failures.len() as f64,
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families_group_and_labels_escape() {
        let mut m = Metrics::default();
        m.gauge("dockgc_x_bytes", "X.", &[("type", "a\"b")], 1.0);
        m.gauge("dockgc_x_bytes", "X.", &[("type", "c")], 2.5);
        m.run("df", 1.7e9, 0.25);
        let t = m.render();
        assert_eq!(t.matches("# TYPE dockgc_x_bytes gauge").count(), 1);
        assert!(t.contains("dockgc_x_bytes{type=\"a\\\"b\"} 1\n"));
        assert!(t.contains("dockgc_x_bytes{type=\"c\"} 2.5\n"));
        assert!(t.contains("dockgc_last_run_duration_seconds{command=\"df\"} 0.25\n"));
    }
}
