//! Writes a generated containerd root for the benchmark
//! (scripts/bench-containerd.sh): `containerd_synth DIR [IMAGES]`
//! (default 1,000 images over 3,000 snapshots), or `containerd_synth DIR
//! --big COUNT MIB` (COUNT blobs of MIB MiB each, for `verify --deep`). The
//! generator is the one the tests prove a real containerd accepts
//! (tests/containerd_synth.rs).

#[path = "../tests/support/containerd_synth.rs"]
mod containerd_synth;

fn main() {
    let mut args = std::env::args().skip(1);
    let Some(dir) = args.next() else {
        eprintln!("usage: containerd_synth DIR [IMAGES]");
        std::process::exit(2);
    };
    let first = args.next();
    let dir = std::path::PathBuf::from(dir);
    if dir.exists() && std::fs::read_dir(&dir).map_or(true, |mut d| d.next().is_some()) {
        eprintln!("{}: must be missing or empty", dir.display());
        std::process::exit(2);
    }
    let c = if first.as_deref() == Some("--big") {
        let n = |a: Option<String>| a.and_then(|n| n.parse().ok());
        let (Some(count), Some(mib)) = (n(args.next()), n(args.next())) else {
            eprintln!("usage: containerd_synth DIR --big COUNT MIB");
            std::process::exit(2);
        };
        containerd_synth::generate_big(&dir, count, mib)
    } else {
        let images = first.and_then(|n| n.parse().ok()).unwrap_or(1000);
        containerd_synth::generate(&dir, images)
    };
    println!(
        "{}: {} images, {} snapshots ({} bytes), {} blobs",
        dir.display(),
        c.images,
        c.snapshots,
        c.snapshot_bytes,
        c.blobs
    );
}
