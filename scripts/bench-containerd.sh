#!/usr/bin/env bash
# Whole-process benchmark of `dockgc df` on a containerd store:
#
#   1. a generated containerd root (examples/containerd_synth.rs: 1,000 images
#      over 3,000 snapshots, the format tests/containerd_synth.rs proves a real
#      containerd accepts), containerd stopped: `dockgc df` (target < 0.5 s);
#   2. the same root served by a private containerd: `dockgc df` (a live,
#      point-in-time read) against `ctr snapshots usage` plus `ctr content ls`
#      (target: dockgc at most 0.5x their time);
#   3. `dockgc verify --deep` (sha256 of every blob) on a root of eight
#      256 MiB blobs, warm cache (target: at least 2 GB/s on both cores).
#
# Uses hyperfine (apt-get install hyperfine); prints a Markdown table for the
# README. Needs root and Debian's containerd for part 2.
# Usage: scripts/bench-containerd.sh [RUNS]   (default 10; medians reported)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

RUNS=${1:-10}
need=()
command -v hyperfine >/dev/null 2>&1 || need+=(hyperfine)
command -v containerd >/dev/null 2>&1 || need+=(containerd)
command -v runc >/dev/null 2>&1 || need+=(runc)
command -v python3 >/dev/null 2>&1 || need+=(python3)
if [ "${#need[@]}" -gt 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi

cargo build --release --quiet --bin dockgc --example containerd_synth
BIN=$PWD/target/release/dockgc
SYNTH=$PWD/target/release/examples/containerd_synth

WORK=$(mktemp -d /tmp/dgc-cbench.XXXXXX) # short: the socket path must stay under 108 bytes
PID=
cleanup() {
    if [ -n "$PID" ]; then
        kill "$PID" 2>/dev/null || true
        wait "$PID" 2>/dev/null || true
    fi
    rm -rf "$WORK"
}
trap cleanup EXIT

"$SYNTH" "$WORK/root" 1000
ROOT=$WORK/root
"$SYNTH" "$WORK/big" --big 8 256

median() { # hyperfine JSON -> median seconds of command $2
    python3 -c 'import json,sys; r=json.load(open(sys.argv[1]))["results"][int(sys.argv[2])]; print("%.3f" % r["median"])' "$1" "$2"
}

# --- 1. stopped ---------------------------------------------------------------
hyperfine -N -w 3 -r "$RUNS" --export-json "$WORK/stopped.json" \
    "$BIN --containerd-root $ROOT df" \
    "$BIN --containerd-root $ROOT df --format json" >/dev/null

# --- 3. verify --deep on large blobs -------------------------------------------
cat "$WORK"/big/io.containerd.content.v1.content/blobs/sha256/* >/dev/null # warm
hyperfine -N -w 1 -r "$RUNS" --export-json "$WORK/deep.json" \
    "$BIN --containerd-root $WORK/big verify --deep" >/dev/null
big_bytes=$(du -sb "$WORK/big/io.containerd.content.v1.content/blobs" | cut -f1)

# --- 2. served by a private containerd ----------------------------------------
cat >"$WORK/config.toml" <<EOT
version = 2
root = "$ROOT"
state = "$WORK/state"
disabled_plugins = ["io.containerd.grpc.v1.cri", "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.aufs"]
[grpc]
  address = "$WORK/state/containerd.sock"
EOT
containerd --config "$WORK/config.toml" >"$WORK/containerd.log" 2>&1 &
PID=$!
CTR="ctr --address $WORK/state/containerd.sock -n moby"
for _ in $(seq 100); do $CTR version >/dev/null 2>&1 && break; sleep 0.1; done
$CTR snapshots usage >/dev/null
hyperfine -w 3 -r "$RUNS" --export-json "$WORK/live.json" \
    "$BIN --containerd-root $ROOT df" \
    "$CTR snapshots usage >/dev/null && $CTR content ls >/dev/null" \
    "$CTR snapshots usage" \
    "$CTR content ls" >/dev/null
kill "$PID"
wait "$PID" 2>/dev/null || true
PID=

s1=$(median "$WORK/stopped.json" 0)
s2=$(median "$WORK/stopped.json" 1)
l_d=$(median "$WORK/live.json" 0)
l_c=$(median "$WORK/live.json" 1)
l_u=$(median "$WORK/live.json" 2)
l_l=$(median "$WORK/live.json" 3)
ratio=$(awk -v a="$l_d" -v b="$l_c" 'BEGIN { printf "%.2f", a / b }')
deep=$(median "$WORK/deep.json" 0)
rate=$(awk -v b="$big_bytes" -v s="$deep" 'BEGIN { printf "%.2f", b / s / 1e9 }')

echo
echo "Measured $(date -u +%Y-%m-%d) on $(nproc) vCPU $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//'), load $(cut -d' ' -f1-3 /proc/loadavg); medians of $RUNS runs."
echo
echo "| what | dockgc | anchor | ratio | target |"
echo "|---|---|---|---|---|"
echo "| \`df\`, generated root (1,000 images, 3,000 snapshots), containerd stopped | $s1 s (json: $s2 s) | | | < 0.5 s |"
echo "| \`df\`, same root served by containerd 1.6 | $l_d s | \`ctr snapshots usage\` + \`ctr content ls\` $l_c s ($l_u s + $l_l s) | ${ratio}x | <= 0.5x |"
echo "| \`verify --deep\`, 8 blobs of 256 MiB ($big_bytes bytes), warm cache | $deep s = $rate GB/s | | | >= 2 GB/s |"
