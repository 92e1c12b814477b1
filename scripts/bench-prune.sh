#!/usr/bin/env bash
# `dockgc prune` benchmarks, each against its anchor in one run, on copies of
# one generated root (IMAGES images over 3x as many layers):
#   1. `dockgc prune -a --yes` (whole process: load, plan, apply);
#   2. `rm -rf` of exactly the paths that plan removes (from its --dry-run JSON);
#   3. `docker image prune -a -f` through a dockerd on the same root.
# Prints a Markdown table for the README. Needs root (for dockerd).
# Usage: scripts/bench-prune.sh [IMAGES] [RUNS]   (defaults 2000, 3)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
IMAGES=${1:-2000}
RUNS=${2:-3}
. scripts/lib/bench-common.sh
bench_need
cargo build --release --quiet --bin dockgc --example synth
BIN=$PWD/target/release/dockgc
WORK=$(mktemp -d /tmp/dockgc-benchp.XXXXXX)
RUN=$(mktemp -d /tmp/dgp.XXXX)
trap bench_cleanup EXIT

target/release/examples/synth "$WORK/gen" "$IMAGES" $((IMAGES * 3)) 4 4096 >/dev/null
# The paths one plan removes, relative to the root.
"$BIN" --root "$WORK/gen" prune -a --dry-run --format json | python3 -c '
import json, sys
p = json.load(sys.stdin)["plan"]; d = p["driver"]
out = []
for i in p["images"]:
    h = i["id"][7:]
    out += [f"image/{d}/imagedb/metadata/sha256/{h}", f"image/{d}/imagedb/content/sha256/{h}"]
for l in p["layers"]:
    chain, cache = l["chain_id"][7:], l["cache_id"]
    out += [f"image/{d}/layerdb/sha256/{chain}", f"{d}/{cache}"]
print("\n".join(out))' >"$WORK/paths"
images_planned=$("$BIN" --root "$WORK/gen" prune -a --dry-run --format json | grep -c '"config_bytes"' || true)

: >"$WORK/g"; : >"$WORK/r"; : >"$WORK/d"
for i in $(seq "$RUNS"); do
    cp -a "$WORK/gen" "$WORK/a$i"; cp -a "$WORK/gen" "$WORK/b$i"; cp -a "$WORK/gen" "$WORK/c$i"
    sync
    secs "$BIN" --root "$WORK/a$i" prune -a --yes >>"$WORK/g"
    secs sh -c "cd '$WORK/b$i' && xargs rm -rf <'$WORK/paths'" >>"$WORK/r"
    start_daemon "$WORK/c$i"
    secs dk image prune -a -f >>"$WORK/d"
    stop_daemon
    rm -rf "$WORK/a$i" "$WORK/b$i" "$WORK/c$i"
done
g=$(median <"$WORK/g"); r=$(median <"$WORK/r"); d=$(median <"$WORK/d")
cat <<EOT

Machine: $(nproc) cores, $(uname -r); $(date -u +%Y-%m-%d); median of $RUNS runs; root of $IMAGES images, $((IMAGES * 3)) layers; the plan removes $images_planned images ($(wc -l <"$WORK/paths") paths).

| \`dockgc prune -a --yes\` (whole process) | \`rm -rf\` of the same paths | \`docker image prune -a -f\` | vs rm -rf (target ≤ 1.3x) | vs daemon (target ≥ 5x faster) |
|---|---|---|---|---|
| ${g} s | ${r} s | ${d} s | $(awk -v a="$g" -v b="$r" 'BEGIN{printf "%.2fx", a/b}') | $(awk -v a="$d" -v b="$g" 'BEGIN{printf "%.1fx faster", a/b}') |
EOT
