//! `verify` as text: findings grouped by check, then a one-line summary.

use crate::units::human_size;
use crate::verify::{Report, Severity, SubjectKind};
use std::fmt::Write;

pub fn verify_table(r: &Report) -> String {
    let mut out = String::new();
    let mut current = None;
    for f in &r.findings {
        if current != Some(f.check) {
            current = Some(f.check);
            let n = r.summary.by_check.get(&f.check.id()).copied().unwrap_or(0);
            let sev = match f.severity {
                Severity::Error => "error",
                Severity::Warning => "warning",
            };
            let _ = writeln!(
                out,
                "\n{} ({n} {sev}{})",
                f.check.id(),
                if n == 1 { "" } else { "s" }
            );
        }
        // Paths relative to the root keep lines readable; JSON has them in full.
        let rel = |p: &std::path::Path| p.strip_prefix(&r.root).unwrap_or(p).display().to_string();
        if f.subject.kind == SubjectKind::Path {
            let _ = writeln!(out, "  {}: {}", rel(&f.path), f.message);
        } else {
            let kind = serde_json::to_value(f.subject.kind)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default();
            let _ = writeln!(
                out,
                "  {kind} {}: {}\n    at {}",
                f.subject.id,
                f.message,
                rel(&f.path)
            );
        }
        if !f.impact.images.is_empty() || !f.impact.containers.is_empty() {
            let _ = writeln!(
                out,
                "    breaks {} image(s), {} container(s)",
                f.impact.images.len(),
                f.impact.containers.len()
            );
        }
    }
    let s = &r.summary;
    let sep = if r.findings.is_empty() { "" } else { "\n" };
    if r.store == "containerd" {
        let _ = write!(
            out,
            "{sep}{} error(s), {} warning(s); {} image(s), {} blob(s) and {} snapshot(s) checked",
            s.errors, s.warnings, s.images_checked, s.blobs_checked, s.snapshots_checked
        );
    } else {
        let _ = write!(
            out,
            "{sep}{} error(s), {} warning(s); {} image(s) and {} layer(s) checked",
            s.errors, s.warnings, s.images_checked, s.layers_checked
        );
    }
    if r.deep && r.store == "containerd" {
        let _ = write!(out, "; {} hashed", human_size(s.bytes_hashed));
    } else if r.deep {
        let _ = write!(
            out,
            "; {} hashed in {} files; {} layer(s) unverifiable",
            human_size(s.bytes_hashed),
            s.files_checked,
            s.unverifiable
        );
    }
    out.push('\n');
    out
}
