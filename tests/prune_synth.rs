//! Prune on generated roots through the library, no daemon needed: crash
//! safety at every step (as failures; the real-daemon tests also kill the
//! process) and the trash round trip.

mod support;

use dockgc::graph::Graph;
use dockgc::ids::ImageId;
use dockgc::{apply, plan, policy, store, synth, verify};
use std::collections::BTreeSet;
use std::path::Path;

fn options() -> policy::Options {
    policy::Options::all(jiff::Timestamp::now().as_second())
}

fn make_plan(root: &Path) -> plan::Plan {
    let snap = store::load(root).unwrap();
    let g = Graph::build(&snap);
    let sel = policy::select(&g, &options());
    plan::build(
        &g,
        &sel,
        &plan::OrphanOptions {
            enabled: true,
            grace: 0,
            now: i64::MAX / 2,
            live: false,
        },
        "test".into(),
    )
}

fn run(root: &Path, fault: Option<apply::Fault>, trash: bool) -> apply::Outcome {
    let p = make_plan(root);
    let snap = store::load(root).unwrap();
    let g = Graph::build(&snap);
    apply::validate(&g, &p).unwrap();
    apply::apply(
        &g,
        &p,
        &apply::Options {
            trash,
            fault,
            mounts: vec![],
        },
    )
}

fn errors(root: &Path) -> Vec<String> {
    let snap = store::load(root).unwrap();
    let g = Graph::build(&snap);
    let r = verify::run(
        &g,
        &verify::Options {
            deep: false,
            sizes: false,
            images: vec![],
        },
        &Default::default(),
    )
    .unwrap();
    r.findings
        .iter()
        .filter(|f| f.severity == verify::Severity::Error)
        .map(|f| format!("{:?} {}: {}", f.check, f.subject.id, f.message))
        .collect()
}

fn loaded_images(root: &Path) -> BTreeSet<ImageId> {
    let snap = store::load(root).unwrap();
    Graph::build(&snap).loaded.clone()
}

fn copy(src: &Path) -> tempfile::TempDir {
    let t = tempfile::tempdir().unwrap();
    let st = std::process::Command::new("cp")
        .arg("-a")
        .arg(src)
        .arg(t.path().join("root"))
        .status()
        .unwrap();
    assert!(st.success());
    t
}

#[test]
fn a_failure_at_any_step_leaves_a_consistent_store_and_a_rerun_finishes() {
    let base = tempfile::tempdir().unwrap();
    let root = base.path().join("root");
    synth::generate(&root, &synth::SynthSpec::demo()).unwrap();
    assert!(
        errors(&root).is_empty(),
        "the generated root verifies clean"
    );

    let full = copy(&root);
    let full_root = full.path().join("root");
    let out = run(&full_root, None, false);
    assert!(out.complete(), "{:?}", out.failures);
    assert!(out.steps > 10, "a real amount of work: {} steps", out.steps);
    let kept = loaded_images(&full_root);
    assert!(errors(&full_root).is_empty());

    for n in 1..=out.steps {
        let t = copy(&root);
        let r = t.path().join("root");
        let partial = run(
            &r,
            Some(apply::Fault {
                at: n,
                abort: false,
            }),
            false,
        );
        assert!(!partial.complete(), "step {n} failed");
        let errs = errors(&r);
        assert!(errs.is_empty(), "after a failure at step {n}: {errs:?}");
        assert!(
            kept.is_subset(&loaded_images(&r)),
            "a kept image went missing after a failure at step {n}"
        );
        let again = run(&r, None, false);
        assert!(
            again.complete(),
            "rerun after step {n}: {:?}",
            again.failures
        );
        assert_eq!(
            loaded_images(&r),
            kept,
            "rerun after step {n} ends where a clean run does"
        );
        assert!(errors(&r).is_empty());
        let leftover = make_plan(&r);
        assert!(
            leftover.is_empty(),
            "nothing left to do after step {n}: {leftover:?}"
        );
    }
}

#[test]
fn trash_restore_is_byte_identical() {
    let base = tempfile::tempdir().unwrap();
    let root = base.path().join("root");
    synth::generate(&root, &synth::SynthSpec::demo()).unwrap();
    let before = support::tree_hash_restorable(&root);
    let out = run(&root, None, true);
    assert!(out.complete(), "{:?}", out.failures);
    let id = out.trash_id.clone().unwrap();
    assert!(out.removed.images > 0 && out.removed.layers > 0);
    assert_ne!(support::tree_hash_restorable(&root), before);
    assert_eq!(dockgc::trash::list(&root).unwrap().len(), 1);
    let n = dockgc::trash::restore(&root, &id).unwrap();
    assert!(n as u64 >= out.removed.images + out.removed.layers);
    assert_eq!(
        support::tree_hash_restorable(&root),
        before,
        "restore puts the store back byte-identical"
    );
    assert!(dockgc::trash::list(&root).unwrap().is_empty());
}
