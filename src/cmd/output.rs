//! Writing results: stdout that tolerates a closed pipe, streamed JSON,
//! Prometheus textfiles written atomically, and a progress spinner.

use dockgc::disk::Progress;
use dockgc::render::{self, prometheus::Metrics};
use std::io::{IsTerminal, Write};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// Writes to stdout, treating a closed pipe (`dockgc df | head`) as success.
pub fn stdout(text: &str) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|_| out.flush()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => Ok(other?),
    }
}

/// Streams JSON to stdout (a 10,000-image report is megabytes; no need to
/// hold it twice), treating a closed pipe as success.
pub fn json<T: serde::Serialize>(value: &T) -> anyhow::Result<()> {
    let out = std::io::BufWriter::new(std::io::stdout().lock());
    match render::json_to(out, value) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => Ok(other?),
    }
}

/// Stdout as a plain file: archives are binary, and `io::Stdout` would
/// flush at every newline byte in them.
pub fn stdout_file() -> Result<std::fs::File, dockgc::archive::ArchiveError> {
    use std::os::fd::AsFd;
    std::io::stdout()
        .as_fd()
        .try_clone_to_owned()
        .map(std::fs::File::from)
        .map_err(|e| dockgc::archive::ArchiveError::Io {
            path: "-".into(),
            cause: e,
        })
}

/// Writes a file atomically: temp file in the same directory, fsync, rename,
/// so node-exporter never reads half a file.
pub fn atomic_write(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let at_path = |e: std::io::Error| {
        anyhow::anyhow!("{}: {}", path.display(), dockgc::errtext::io_cause(&e))
    };
    let mut tmp = tempfile::Builder::new()
        .prefix(".dockgc-")
        .tempfile_in(dir)
        .map_err(at_path)?;
    tmp.write_all(bytes).map_err(at_path)?;
    tmp.as_file().sync_all().map_err(at_path)?;
    std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o644))
        .map_err(at_path)?;
    tmp.persist(path).map_err(|e| at_path(e.error))?;
    Ok(())
}

/// Metrics for one run: to stdout (`--format prometheus`) and/or a textfile.
pub fn metrics(
    m: &mut Metrics,
    command: &str,
    started: std::time::Instant,
    to_stdout: bool,
    textfile: Option<&Path>,
) -> anyhow::Result<()> {
    let now = jiff::Timestamp::now();
    m.run(
        command,
        now.as_second() as f64 + f64::from(now.subsec_nanosecond()) / 1e9,
        started.elapsed().as_secs_f64(),
    );
    let text = m.render();
    if let Some(p) = textfile {
        atomic_write(p, text.as_bytes())?;
    }
    if to_stdout {
        stdout(&text)?;
    }
    Ok(())
}

/// Runs `work`, showing a spinner on stderr if it takes over a second and
/// stderr is a terminal.
pub fn with_progress<T: Send>(work: impl FnOnce(&Progress) -> T + Send) -> T {
    with_progress_as("hashing", work)
}

/// [`with_progress`], the byte count shown as `<verb>: <bytes> (<rate>/s)`.
pub fn with_progress_as<T: Send>(verb: &str, work: impl FnOnce(&Progress) -> T + Send) -> T {
    let progress = Progress::default();
    let done = AtomicBool::new(false);
    std::thread::scope(|s| {
        if std::io::stderr().is_terminal() {
            s.spawn(|| {
                for _ in 0..10 {
                    std::thread::sleep(Duration::from_millis(100));
                    if done.load(Ordering::Relaxed) {
                        return;
                    }
                }
                let bar = indicatif::ProgressBar::new_spinner();
                let start = std::time::Instant::now();
                while !done.load(Ordering::Relaxed) {
                    let bytes = progress.bytes.load(Ordering::Relaxed);
                    let rate = bytes as f64 / start.elapsed().as_secs_f64().max(0.001);
                    let entries = progress.entries.load(Ordering::Relaxed);
                    bar.set_message(if entries > 0 {
                        format!(
                            "walking: {entries} entries, {}",
                            dockgc::units::human_size(bytes)
                        )
                    } else {
                        format!(
                            "{verb}: {} ({}/s)",
                            dockgc::units::human_size(bytes),
                            dockgc::units::human_size(rate as u64)
                        )
                    });
                    bar.tick();
                    std::thread::sleep(Duration::from_millis(100));
                }
                bar.finish_and_clear();
            });
        }
        let out = work(&progress);
        done.store(true, Ordering::Relaxed);
        out
    })
}
