#!/usr/bin/env bash
# Live-prune benchmarks, each against its anchor in one run:
#   1. `dockgc prune -a --yes` through a running dockerd (live: plan from the
#      root cross-checked against the API, then the daemon deletes) against
#      `docker image prune -a -f` on a copy of the same root, the same daemon
#      binary removing the same set (IMAGES images, default 2000);
#   2. planning on a live 10,000-image root: `dockgc prune -a --dry-run`
#      (load, API cross-check, plan), against the daemon's own
#      `GET /images/json?all=1` alone.
# Prints a Markdown table for the README. Needs root (for dockerd).
# Usage: scripts/bench-live.sh [IMAGES] [RUNS]   (defaults 2000, 3)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
IMAGES=${1:-2000}
RUNS=${2:-3}
. scripts/lib/bench-common.sh
bench_need
cargo build --release --quiet --bin dockgc --example synth
BIN=$PWD/target/release/dockgc
WORK=$(mktemp -d /tmp/dockgc-benchl.XXXXXX)
RUN=$(mktemp -d /tmp/dgl.XXXX)
trap bench_cleanup EXIT

target/release/examples/synth "$WORK/gen" "$IMAGES" $((IMAGES * 3)) 4 4096 >/dev/null
images_planned=$("$BIN" --root "$WORK/gen" prune -a --dry-run --offline --format json | grep -c '"config_bytes"' || true)

: >"$WORK/l"; : >"$WORK/d"
for i in $(seq "$RUNS"); do
    cp -a "$WORK/gen" "$WORK/a$i"; cp -a "$WORK/gen" "$WORK/b$i"
    sync
    start_daemon "$WORK/a$i"
    secs "$BIN" --root "$WORK/a$i" prune -a --yes >>"$WORK/l"
    left_l=$(dk images -aq --no-trunc | sort -u | wc -l)
    stop_daemon
    start_daemon "$WORK/b$i"
    secs dk image prune -a -f >>"$WORK/d"
    left_d=$(dk images -aq --no-trunc | sort -u | wc -l)
    stop_daemon
    if [ "$left_l" != "$left_d" ]; then
        echo "bench: live prune left $left_l images, docker image prune $left_d" >&2
        exit 1
    fi
    rm -rf "$WORK/a$i" "$WORK/b$i"
done
l=$(median <"$WORK/l"); d=$(median <"$WORK/d")

# --- 2. planning on a live 10,000-image root ---------------------------------
rm -rf "$WORK/gen"
target/release/examples/synth "$WORK/big" 10000 30000 >/dev/null
start_daemon "$WORK/big"
api_images() { curl -sf --unix-socket "$RUN/docker.sock" 'http://x/images/json?all=1' >/dev/null; }
api_images # warm the daemon
: >"$WORK/p"; : >"$WORK/a"
for _ in $(seq "$RUNS"); do
    secs "$BIN" --root "$WORK/big" prune -a --dry-run --format json >>"$WORK/p"
    secs api_images >>"$WORK/a"
done
mode=$("$BIN" --root "$WORK/big" prune -a --dry-run --format json | sed -n 's/^  "mode": "\(.*\)",/\1/p')
stop_daemon
p=$(median <"$WORK/p"); a=$(median <"$WORK/a")

cat <<EOT

Machine: $(nproc) cores, $(uname -r); $(date -u +%Y-%m-%d); median of $RUNS runs; dockerd $(dockerd --version | sed 's/Docker version //; s/,.*//').

| what | dockgc | anchor | ratio | target |
|---|---|---|---|---|
| live \`prune -a --yes\`, $IMAGES images ($images_planned removed) | ${l} s | \`docker image prune -a -f\` ${d} s | $(ratio "$l" "$d")x | ≤ 1.0x |
| planning, live 10,000-image root (\`prune -a --dry-run\`, mode $mode) | ${p} s | \`GET /images/json?all=1\` ${a} s | $(ratio "$p" "$a")x | < 1.5 s |
EOT
