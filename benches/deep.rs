//! Throughput of deep verification (`verify::deep::verify_layer`) on one
//! thread, on two hand-built layers:
//!
//! * `large`: 4 files of 64 MiB (GB/s of rebuilt tar stream);
//! * `small`: 20,000 files of about 2 KB (files/s).
//!
//! Each is compared in the same run with `sha256sum` over the same file bytes
//! (page cache hot for both). `cargo bench --bench deep`; under `cargo test`
//! the binary runs each benchmark once on tiny layers, as a smoke test.

use base64::Engine as _;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use dockgc::ids::{ChainId, DiffId, Digest};
use dockgc::tarfmt;
use dockgc::verify::deep::{Outcome, verify_layer};
use sha2::{Digest as _, Sha256};
use std::fs;
use std::hint::black_box;
use std::io::Write;
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::AtomicU64;
use std::time::{Duration, Instant};

struct Layer {
    _dir: tempfile::TempDir,
    db: PathBuf,
    data: PathBuf,
    diff: DiffId,
    /// Length of the rebuilt tar stream.
    stream: u64,
    /// File names relative to `data`.
    names: Vec<String>,
}

/// splitmix64 bytes: incompressible, deterministic.
fn fill(seed: &mut u64, buf: &mut [u8]) {
    for chunk in buf.chunks_mut(8) {
        *seed = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = *seed;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        chunk.copy_from_slice(&z.to_le_bytes()[..chunk.len()]);
    }
}

fn header(name: &str, flag: u8, size: u64) -> [u8; 512] {
    let mode = if flag == tarfmt::flag::DIR {
        0o755
    } else {
        0o644
    };
    let h = tarfmt::Header::new(name.as_bytes(), flag)
        .mode(mode)
        .size(size)
        .mtime(1_700_000_000);
    h.fits().expect("short name");
    h.encode()
}

/// Writes `diff/` and a layerdb directory with a real tar-split for files
/// `<dir>/<name>` of the given sizes (`per_dir` files per directory).
fn build(sizes: &[usize], per_dir: usize) -> Layer {
    let dir = tempfile::tempdir().expect("temp dir");
    let cache = "5f0c8e3a1b2d4c6e8f0a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f6a";
    let db = dir.path().join("layer");
    let data = dir.path().join(cache).join("diff");
    fs::create_dir_all(&db).expect("mkdir");
    fs::create_dir_all(&data).expect("mkdir");
    fs::write(db.join("cache-id"), cache).expect("cache-id");
    let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
    let mut sha = Sha256::new();
    let mut json = String::new();
    let mut pending: Vec<u8> = Vec::new();
    let mut stream = 0u64;
    let mut seed = 7u64;
    let mut body = Vec::new();
    let mut names = Vec::new();
    let push_segment = |json: &mut String, pending: &mut Vec<u8>| {
        json.push_str(&format!(
            "{{\"type\":2,\"payload\":\"{}\"}}\n",
            b64(pending)
        ));
        pending.clear();
    };
    for (i, &size) in sizes.iter().enumerate() {
        if i % per_dir == 0 {
            let d = format!("d{}/", i / per_dir);
            let h = header(&d, tarfmt::flag::DIR, 0);
            sha.update(h);
            stream += 512;
            pending.extend_from_slice(&h);
            push_segment(&mut json, &mut pending);
            json.push_str(&format!(
                "{{\"type\":1,\"name\":\"{d}\",\"payload\":null}}\n"
            ));
            fs::create_dir(data.join(&d)).expect("mkdir");
        }
        let name = format!("d{}/f{i:06}.bin", i / per_dir);
        body.resize(size, 0);
        fill(&mut seed, &mut body);
        let h = header(&name, tarfmt::flag::REG, size as u64);
        sha.update(h);
        pending.extend_from_slice(&h);
        push_segment(&mut json, &mut pending);
        let crc = dockgc::verify::tarsplit::crc64(&body);
        json.push_str(&format!(
            "{{\"type\":1,\"name\":\"{name}\",\"size\":{size},\"payload\":\"{}\"}}\n",
            b64(&crc.to_be_bytes())
        ));
        sha.update(&body);
        let pad = &tarfmt::END[..tarfmt::padding(size as u64)];
        sha.update(pad);
        pending.extend_from_slice(pad);
        stream += 512 + (size + pad.len()) as u64;
        fs::write(data.join(&name), &body).expect("write file");
        names.push(name);
    }
    sha.update(tarfmt::END);
    pending.extend_from_slice(&tarfmt::END);
    stream += tarfmt::END.len() as u64;
    push_segment(&mut json, &mut pending);
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(json.as_bytes()).expect("gzip");
    fs::write(db.join("tar-split.json.gz"), gz.finish().expect("gzip")).expect("write");
    let diff = DiffId(Digest::from_bytes(sha.finalize().into()));
    Layer {
        _dir: dir,
        db,
        data,
        diff,
        stream,
        names,
    }
}

fn verify(l: &Layer) -> Outcome {
    let chain = ChainId(l.diff.0);
    verify_layer(chain, &l.diff, &l.db, &l.data, &AtomicU64::new(0)).outcome
}

fn thread_cpu() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: valid clock id and out pointer.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

fn children_cpu() -> Duration {
    // SAFETY: getrusage fills the zeroed struct.
    let ru = unsafe {
        let mut ru: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_CHILDREN, &mut ru);
        ru
    };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

/// Best of `runs` (wall, CPU) timings of `f`; `cpu` reads the CPU clock.
fn best(runs: usize, cpu: fn() -> Duration, mut f: impl FnMut()) -> (Duration, Duration) {
    let mut out = (Duration::MAX, Duration::MAX);
    for _ in 0..runs.max(1) {
        let (t, c) = (Instant::now(), cpu());
        f();
        out.0 = out.0.min(t.elapsed());
        out.1 = out.1.min(cpu().saturating_sub(c));
    }
    out
}

/// `sha256sum` over the layer's files (one process, one core), if installed.
fn sha256sum(l: &Layer, runs: usize) -> Option<(Duration, Duration)> {
    let run = || {
        Command::new("sha256sum")
            .args(&l.names)
            .current_dir(&l.data)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|_| ())
    };
    run()?;
    Some(best(runs, children_cpu, || {
        let _ = run();
    }))
}

/// Prints wall-clock and CPU-time rates (CPU time is the fairer figure on a
/// busy machine: it leaves out time spent waiting for a core).
fn report(label: &str, l: &Layer, runs: usize) {
    let bytes: u64 = l
        .names
        .iter()
        .map(|n| fs::metadata(l.data.join(n)).map(|m| m.len()).unwrap_or(0))
        .sum();
    let files = l.names.len() as f64;
    let rates = |d: Duration, b: u64| {
        format!(
            "{:.2} GB/s, {:.0} files/s",
            b as f64 / d.as_secs_f64() / 1e9,
            files / d.as_secs_f64()
        )
    };
    let (wall, cpu) = best(runs, thread_cpu, || {
        black_box(verify(l));
    });
    eprintln!(
        "deep/{label}: verify_layer  wall {} | cpu {}  ({} stream bytes)",
        rates(wall, l.stream),
        rates(cpu, l.stream),
        l.stream
    );
    if let Some((wall, cpu)) = sha256sum(l, runs) {
        eprintln!(
            "deep/{label}: sha256sum     wall {} | cpu {}  ({bytes} file bytes)",
            rates(wall, bytes),
            rates(cpu, bytes)
        );
    }
}

fn deep(c: &mut Criterion) {
    let benching = std::env::args().any(|a| a == "--bench");
    let (big, small_n, runs) = if benching {
        (64 << 20, 20_000, 5)
    } else {
        (64 << 10, 200, 1)
    };
    // Sizes around 2 KB, like a typical /usr tree.
    let small_sizes: Vec<usize> = (0..small_n).map(|i| 1024 + (i * 7919) % 2048).collect();
    let layers = [
        ("large", build(&[big; 4], 4)),
        ("small", build(&small_sizes, 500)),
    ];
    for (label, l) in &layers {
        assert_eq!(verify(l), Outcome::Verified, "{label} layer verifies");
        report(label, l, runs);
    }

    let mut g = c.benchmark_group("deep");
    g.sample_size(10);
    let (_, large) = &layers[0];
    g.throughput(Throughput::Bytes(large.stream));
    g.bench_function("large", |b| b.iter(|| black_box(verify(large))));
    let (_, small) = &layers[1];
    g.throughput(Throughput::Elements(small.names.len() as u64));
    g.bench_function("small", |b| b.iter(|| black_box(verify(small))));
    g.finish();
}

criterion_group!(benches, deep);
criterion_main!(benches);
