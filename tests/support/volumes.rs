//! Volumes and log drivers for the modern scenario: named volumes with and
//! without labels, one in use by a running container and by a stopped one,
//! an anonymous volume, a dangling named volume, a volume with tmpfs options
//! (which `/system/df` never lists), and containers logging through
//! json-file (rotated and compressed), `local` and `none`.

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
}
