//! Dev tool: write a synthetic Docker data root for tests and benchmarks.
//!
//! `cargo run --release --example synth -- OUT [IMAGES] [LAYERS] [FILES_PER_LAYER] [FILE_BYTES]
//! [--records N] [--volumes N] [--seed N] [--engine-20]`
//!
//! `--records N` adds N BuildKit build-cache records (as `docker system df`
//! counts them) and `--volumes N` N local volumes (see `dockgc::synth`);
//! `--engine-20` writes no `engine-id`, as Engine 20.10 does.

use std::path::PathBuf;
use std::time::Instant;

fn usage() -> ! {
    eprintln!(
        "usage: synth OUT [IMAGES] [LAYERS] [FILES_PER_LAYER] [FILE_BYTES] \
         [--records N] [--volumes N] [--seed N] [--engine-20]"
    );
    std::process::exit(2);
}

fn main() {
    let mut positional = Vec::new();
    let mut flags = std::collections::BTreeMap::new();
    let mut engine_20 = false;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--records" | "--volumes" | "--seed" => {
                let v: u64 = args
                    .next()
                    .and_then(|v| v.parse().ok())
                    .unwrap_or_else(|| usage());
                flags.insert(a, v);
            }
            "--engine-20" => engine_20 = true,
            s if s.starts_with("--") => usage(),
            _ => positional.push(a),
        }
    }
    let Some(out) = positional.first().map(PathBuf::from) else {
        usage()
    };
    let num = |i: usize, d: usize| {
        positional
            .get(i)
            .map_or(d, |s| s.parse().unwrap_or_else(|_| usage()))
    };
    let mut spec = dockgc::synth::SynthSpec::scale(num(1, 10_000), num(2, 30_000));
    spec.files_per_layer = num(3, spec.files_per_layer);
    spec.file_bytes = num(4, spec.file_bytes);
    spec.build_records = flags.get("--records").copied().unwrap_or(0) as usize;
    spec.volumes = flags.get("--volumes").copied().unwrap_or(0) as usize;
    spec.seed = flags.get("--seed").copied().unwrap_or(spec.seed);
    spec.engine_id = !engine_20;
    let t = Instant::now();
    match dockgc::synth::generate(&out, &spec) {
        Ok(r) => println!(
            "wrote {} images, {} layers, {} containers, {} build-cache records (+{} twins), \
             {} volumes ({} bytes) to {} in {:.2}s",
            r.images,
            r.layers,
            r.containers,
            r.build_cache.len(),
            r.twins,
            r.volume_list.len(),
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
