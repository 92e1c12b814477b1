//! Dev tool: write a synthetic Docker data root for tests and benchmarks.
//!
//! `cargo run --release --example synth -- OUT [IMAGES] [LAYERS] [FILES_PER_LAYER] [FILE_BYTES]`

use std::path::PathBuf;
use std::time::Instant;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(out) = args.first().map(PathBuf::from) else {
        eprintln!("usage: synth OUT [IMAGES] [LAYERS] [FILES_PER_LAYER] [FILE_BYTES]");
        std::process::exit(2);
    };
    let num = |i: usize, d: usize| args.get(i).map_or(d, |s| s.parse().expect("a number"));
    let mut spec = dockgc::synth::SynthSpec::scale(num(1, 10_000), num(2, 30_000));
    spec.files_per_layer = num(3, spec.files_per_layer);
    spec.file_bytes = num(4, spec.file_bytes);
    let t = Instant::now();
    match dockgc::synth::generate(&out, &spec) {
        Ok(r) => println!(
            "wrote {} images, {} layers, {} containers ({} bytes) to {} in {:.2}s",
            r.images,
            r.layers,
            r.containers,
            r.bytes_written,
            out.display(),
            t.elapsed().as_secs_f64()
        ),
        Err(e) => {
            eprintln!("synth: {}: {e}", out.display());
            std::process::exit(1);
        }
    }
}
