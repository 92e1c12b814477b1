#!/usr/bin/env bash
# `dockgc verify` benchmarks, each against its anchor in one run:
#
#   1. `verify --deep` on a large-file root and a small-file root (GB/s, files/s),
#      against `sha256sum` over the same file bytes (parallel, one per core), and
#      against `docker save` of every image (the only way Docker re-reads every
#      layer), on a dockerd serving the same root;
#   2. `dockgc save` of every image of the same roots (to a file, and to a
#      stream read by nobody) against `docker save` of the same images on a
#      running dockerd and against `verify --deep` of the same layers, with
#      dockgc's peak memory; also for one root holding a single 2 GB image;
#   3. quick `verify` on a 10,000-image / 30,000-layer generated root.
#
# Prints a Markdown table for the README. Needs root (for dockerd).
# Usage: scripts/bench-verify.sh [RUNS]   (default 3; the median is reported)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
RUNS=${1:-3}
. scripts/lib/bench-common.sh
bench_need
cargo build --release --quiet --bin dockgc --example synth
BIN=target/release/dockgc
SYNTH=target/release/examples/synth
WORK=$(mktemp -d /tmp/dockgc-benchv.XXXXXX)
RUN=$(mktemp -d /tmp/dgv.XXXX)
trap bench_cleanup EXIT
rate() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b / 1e9 }'; }
per() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.0f", a / b }'; }
field() { sed -n "s/.*\"$1\": \([0-9]*\).*/\1/p" | head -1; }

rows=()
save_rows=()
# Peak RSS (KB) of one run of "$@", output discarded, appended to $WORK/m.
peak() { /usr/bin/time -f %M -o "$WORK/rss" "$@" >/dev/null 2>&1; cat "$WORK/rss" >>"$WORK/m"; }
measure() { # name root [verify-only]
    local name=$1 root=$2 only=${3:-} json bytes files
    json=$("$BIN" --root "$root" verify --deep --format json)
    bytes=$(echo "$json" | field bytes_hashed)
    files=$(echo "$json" | field files_checked)
    : >"$WORK/v"; : >"$WORK/s"; : >"$WORK/d"; : >"$WORK/f"; : >"$WORK/o"; : >"$WORK/m"
    start_daemon "$root"
    ids=$(dk images -aq --no-trunc | sort -u)
    save() { dk save $ids >/dev/null; }
    shas() { find "$root/overlay2" -path '*/diff/*' -type f -print0 | xargs -0 -P "$(nproc)" -n 256 sha256sum; }
    # The real use: an archive file (fsync'd, renamed into place).
    gc_file() { "$BIN" --root "$root" save $ids -o "$WORK/save.tar"; }
    # The rebuild alone: the same archive to a stream nobody stores.
    gc_stream() { "$BIN" --root "$root" save $ids -o - >/dev/null; }
    for _ in $(seq "$RUNS"); do
        secs "$BIN" --root "$root" verify --deep >>"$WORK/v"
        [ -n "$only" ] || secs shas >>"$WORK/s"
        secs save >>"$WORK/d"
        secs gc_file >>"$WORK/f"; rm -f "$WORK/save.tar"
        secs gc_stream >>"$WORK/o"
        peak "$BIN" --root "$root" save $ids -o "$WORK/save.tar"; rm -f "$WORK/save.tar"
    done
    stop_daemon
    local v s d f o m n
    v=$(median <"$WORK/v"); d=$(median <"$WORK/d"); f=$(median <"$WORK/f"); o=$(median <"$WORK/o")
    m=$(sort -n "$WORK/m" | tail -1); n=$(echo $ids | wc -w)
    local size
    size=$(awk -v b="$bytes" 'BEGIN{printf "%.2f GB", b/1e9}')
    if [ -z "$only" ]; then
        s=$(median <"$WORK/s")
        rows+=("| $name: $size, $files files | ${v} s = $(rate "$bytes" "$v") GB/s, $(per "$files" "$v") files/s | ${s} s | ${d} s | $(awk -v a="$s" -v b="$v" 'BEGIN{printf "%.1f", a/b}')x / $(awk -v a="$d" -v b="$v" 'BEGIN{printf "%.1f", a/b}')x |")
    fi
    save_rows+=("| $name: $n images, $size | ${v} s | ${f} s | ${o} s | ${d} s | $(awk -v a="$d" -v b="$f" 'BEGIN{printf "%.1f", a/b}')x / $(awk -v a="$d" -v b="$o" 'BEGIN{printf "%.1f", a/b}')x | $(awk -v a="$f" -v b="$v" 'BEGIN{printf "%.2f", a/b}')x / $(awk -v a="$o" -v b="$v" 'BEGIN{printf "%.2f", a/b}')x | $(awk -v m="$m" 'BEGIN{printf "%.1f MB", m/1024}') |")
}

"$SYNTH" "$WORK/large" 16 16 2 67108864 >/dev/null   # 16 layers x 2 x 64 MiB
"$SYNTH" "$WORK/small" 100 200 1000 2048 >/dev/null  # 200 layers x 1000 x 2 KiB
"$BIN" --root "$WORK/large" verify --deep >/dev/null || true # warm the cache
"$BIN" --root "$WORK/small" verify --deep >/dev/null || true
measure "large files" "$WORK/large"
measure "small files" "$WORK/small"
"$SYNTH" "$WORK/one" 1 32 2 33554432 >/dev/null      # one image: 32 layers x 2 x 32 MiB
"$BIN" --root "$WORK/one" verify --deep >/dev/null || true
measure "one 2 GB image" "$WORK/one" verify-only
rm -rf "$WORK/one"

"$SYNTH" "$WORK/big" 10000 30000 >/dev/null
"$BIN" --root "$WORK/big" verify >/dev/null || true
: >"$WORK/q"
for _ in $(seq "$RUNS"); do secs "$BIN" --root "$WORK/big" verify >>"$WORK/q"; done

cat <<EOT

Machine: $(nproc) cores, $(uname -r); $(date -u +%Y-%m-%d); median of $RUNS runs, warm cache.

| root | \`verify --deep\` | \`sha256sum\` (one per core) | \`docker save\` all images | dockgc faster by (sha256sum / save) |
|---|---|---|---|---|
$(printf '%s\n' "${rows[@]}")

\`save\` of every image of the same roots (in the same runs; the daemon running):

| root | \`verify --deep\` | \`save -o FILE\` | \`save -o -\` (discarded) | \`docker save\` (discarded) | docker save slower by (FILE / stream) | save / verify (FILE / stream) | save peak RSS |
|---|---|---|---|---|---|---|---|
$(printf '%s\n' "${save_rows[@]}")

Quick \`verify\`, 10,000 images / 30,000 layers: $(median <"$WORK/q") s (target < 1 s).
EOT
