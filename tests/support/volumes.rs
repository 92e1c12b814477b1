//! Volumes and log drivers for the modern scenario: named volumes with and
//! without labels, one in use by a running container and by a stopped one,
//! an anonymous volume, a dangling named volume, a volume with tmpfs options
//! (which `/system/df` never lists), and containers logging through
//! json-file (rotated and compressed), `local` and `none`.
//!
//! Also: 80 labelled volumes and one with a 9 KB label (so `metadata.db`
//! has branch and overflow pages), an anonymous volume its removed
//! container left behind, a volume `--mount` created (`Labels: null`, yet
//! named), a volume holding a hard link, a symlink and an empty file, a
//! `local` log that rotated, and dual logging's cache for a `syslog`
//! container.

use super::*;

pub fn add_volumes_and_logs(d: &Daemon, _work: &Path) {
    d.docker(&[
        "volume",
        "create",
        "--label",
        "team=a",
        "--label",
        "purpose=doc",
        "data1",
    ]);
    d.docker(&["volume", "create", "dangling1"]);
    d.docker(&[
        "volume",
        "create",
        "--opt",
        "type=tmpfs",
        "--opt",
        "device=tmpfs",
        "--opt",
        "o=size=1m",
        "tmpvol",
    ]);
    // In use by a running and a stopped container (RefCount 2).
    d.docker(&[
        "run",
        "-d",
        "--network",
        "none",
        "--name",
        "vol-running",
        "-v",
        "data1:/data",
        "base:1",
        "sh",
        "-c",
        "dd if=/dev/zero of=/data/blob bs=1024 count=120 2>/dev/null; sleep 3600",
    ]);
    d.docker(&[
        "run",
        "--network",
        "none",
        "--name",
        "vol-stopped",
        "-v",
        "data1:/data",
        "-v",
        "/anon",
        "base:1",
        "sh",
        "-c",
        "echo anon > /anon/a; echo seen > /data/seen",
    ]);
    // json-file with rotation and compression: several files, some .gz.
    d.docker(&[
        "run",
        "--network",
        "none",
        "--name",
        "log-json",
        "--log-driver",
        "json-file",
        "--log-opt",
        "max-size=10k",
        "--log-opt",
        "max-file=3",
        "--log-opt",
        "compress=true",
        "base:1",
        "sh",
        "-c",
        "i=0; while [ $i -lt 3000 ]; do echo json log line $i padding padding; i=$((i+1)); done",
    ]);
    d.docker(&[
        "run",
        "--network",
        "none",
        "--name",
        "log-local",
        "--log-driver",
        "local",
        "base:1",
        "sh",
        "-c",
        "i=0; while [ $i -lt 2000 ]; do echo local log line $i; i=$((i+1)); done",
    ]);
    d.docker(&[
        "run",
        "--network",
        "none",
        "--name",
        "log-none",
        "--log-driver",
        "none",
        "base:1",
        "sh",
        "-c",
        "echo nobody keeps this",
    ]);
    add_more_volumes_and_logs(d);
}

fn add_more_volumes_and_logs(d: &Daemon) {
    for i in 0..80 {
        let label = format!("idx={i}");
        d.docker(&[
            "volume",
            "create",
            "--label",
            &label,
            &format!("bulk-{i:02}"),
        ]);
    }
    let long = format!("long={}", "l".repeat(9 * 1024));
    d.docker(&["volume", "create", "--label", &long, "long-label"]);
    // An anonymous volume whose container is gone (`docker rm` without -v).
    d.docker(&[
        "run",
        "--network",
        "none",
        "--name",
        "anon-left",
        "-v",
        "/left",
        "base:1",
        "sh",
        "-c",
        "echo left > /left/x",
    ]);
    d.docker(&["rm", "anon-left"]);
    // Created by --mount: no labels at all (null), but named.
    d.docker(&[
        "run",
        "--rm",
        "--network",
        "none",
        "--mount",
        "type=volume,src=data3,dst=/m",
        "base:1",
        "sh",
        "-c",
        "echo m > /m/m",
    ]);
    // directory.Size counts a hard-linked inode once, a symlink by its
    // target's length, and no empty file or directory.
    d.docker(&[
        "run",
        "--rm",
        "--network",
        "none",
        "-v",
        "links:/v",
        "base:1",
        "sh",
        "-c",
        "echo 0123456789 > /v/f; ln /v/f /v/g; ln -s f /v/s; touch /v/empty; mkdir /v/sub; \
         echo abc > /v/sub/x",
    ]);
    // `local` with rotation: compressed `container.log.N.gz` files.
    d.docker(&[
        "run",
        "--network",
        "none",
        "--name",
        "log-local-rot",
        "--log-driver",
        "local",
        "--log-opt",
        "max-size=10k",
        "--log-opt",
        "max-file=3",
        "base:1",
        "sh",
        "-c",
        "i=0; while [ $i -lt 3000 ]; do echo local rotated line $i; i=$((i+1)); done",
    ]);
    // A driver that cannot be read back: dual logging keeps a local cache
    // (`container-cached.log`). UDP needs no listener.
    d.docker(&[
        "run",
        "--network",
        "none",
        "--name",
        "log-syslog",
        "--log-driver",
        "syslog",
        "--log-opt",
        "syslog-address=udp://127.0.0.1:5514",
        "base:1",
        "sh",
        "-c",
        "i=0; while [ $i -lt 500 ]; do echo syslog line $i; i=$((i+1)); done",
    ]);
}
