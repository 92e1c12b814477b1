#!/usr/bin/env bash
# Whole-process benchmarks for `dockgc df`, each against its named anchor, in
# one run with the runs interleaved (this machine is shared and noisy):
#
#   1. `dockgc df` vs the daemon's warm `/system/df`, on a root a real dockerd
#      serves (a few hundred images);
#   2. `dockgc df` and quick `dockgc verify` on a 10,000-image / 30,000-layer
#      generated root vs a bare parallel read of the same metadata files
#      (examples/bare_read.rs), and df's peak memory;
#   3. `dockgc df --disk` vs `diskus` (the fastest plain du, from crates.io;
#      installed if missing) and `du -s -B1` on the same tree.
#
# Prints a Markdown table for the README. Needs root (for dockerd).
# Usage: scripts/bench.sh [RUNS]   (default 5; the median is reported)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

RUNS=${1:-5}
. scripts/lib/bench-common.sh
bench_need
command -v diskus >/dev/null 2>&1 || cargo install --quiet --locked diskus

cargo build --release --quiet --bin dockgc --example synth --example bare_read
BIN=target/release/dockgc
SYNTH=target/release/examples/synth
BARE=target/release/examples/bare_read

WORK=$(mktemp -d /tmp/dockgc-bench.XXXXXX)
RUN=$(mktemp -d /tmp/dgb.XXXX) # short: the socket path must stay under 108 bytes
trap bench_cleanup EXIT
LOAD=$(cut -d' ' -f1-3 /proc/loadavg)

# --- 1. against the daemon's warm /system/df ---------------------------------
"$SYNTH" "$WORK/real" 300 900 >/dev/null
start_daemon "$WORK/real"
api_df() { curl -sf --unix-socket "$RUN/docker.sock" http://x/system/df; }
images_real=$(curl -sf --unix-socket "$RUN/docker.sock" 'http://x/images/json?all=1' | grep -o '"Id"' | wc -l)
api_df >/dev/null; api_df >/dev/null # warm the daemon
: >"$WORK/d1"; : >"$WORK/a1"
for _ in $(seq "$RUNS"); do
    secs "$BIN" --root "$WORK/real" df --format json >>"$WORK/d1"
    secs api_df >>"$WORK/a1"
done
stop_daemon

# --- 2. 10,000 images against a bare parallel read ---------------------------
"$SYNTH" "$WORK/big" 10000 30000 >/dev/null
"$BIN" --root "$WORK/big" df --format json >/dev/null # warm the cache
"$BARE" "$WORK/big" >/dev/null
: >"$WORK/d2"; : >"$WORK/b2"; : >"$WORK/m2"; : >"$WORK/v2"
for _ in $(seq "$RUNS"); do
    secs "$BIN" --root "$WORK/big" df --format json >>"$WORK/d2"
    secs "$BARE" "$WORK/big" >>"$WORK/b2"
    secs "$BIN" --root "$WORK/big" verify >>"$WORK/v2"
    /usr/bin/time -f %M "$BIN" --root "$WORK/big" df --format json 2>>"$WORK/m2" >/dev/null
done

# --- 3. --disk against diskus and du --------------------------------------------
entries=$("$BIN" --root "$WORK/big" df --disk --format json | sed -n 's/.*"entries": \([0-9]*\).*/\1/p' | head -1)
: >"$WORK/d3"; : >"$WORK/u3"; : >"$WORK/k3"
for _ in $(seq "$RUNS"); do
    secs "$BIN" --root "$WORK/big" df --disk --format json >>"$WORK/d3"
    secs diskus "$WORK/big" >>"$WORK/k3"
    secs du -s -B1 "$WORK/big" >>"$WORK/u3"
done

d1=$(median <"$WORK/d1"); a1=$(median <"$WORK/a1")
d2=$(median <"$WORK/d2"); b2=$(median <"$WORK/b2"); m2=$(median <"$WORK/m2")
v2=$(median <"$WORK/v2")
d3=$(median <"$WORK/d3"); u3=$(median <"$WORK/u3"); k3=$(median <"$WORK/k3")
mb=$(awk -v k="$m2" 'BEGIN { printf "%.0f", k / 1024 }')
# met / **not met**: each condition "value op limit" must hold.
met() {
    awk -v c="$*" 'BEGIN {
        n = split(c, w, " "); ok = 1
        for (i = 1; i + 2 <= n; i += 3) {
            a = w[i] + 0; b = w[i + 2] + 0
            if (w[i + 1] == "<=" && !(a <= b)) ok = 0
            if (w[i + 1] == "<" && !(a < b)) ok = 0
            if (w[i + 1] == ">=" && !(a >= b)) ok = 0
        }
        print ok ? "met" : "**not met**"
    }'
}

cat <<EOF

Machine: $(nproc) cores ($(sed -n 's/^model name[^:]*: //p' /proc/cpuinfo | head -1)), $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(uname -r); $(date -u +%Y-%m-%d); median of $RUNS runs, warm cache; load average before the runs: $LOAD.

| what | dockgc | anchor | ratio | target |
|---|---|---|---|---|
| \`df\`, real dockerd root ($images_real images) | ${d1} s | warm \`/system/df\` ${a1} s | $(ratio "$d1" "$a1")x | ≤ 0.5x: $(met "$(ratio "$d1" "$a1")" "<=" 0.5) |
| \`df\`, 10,000 images / 30,000 layers | ${d2} s | bare parallel read ${b2} s | $(ratio "$d2" "$b2")x | ≤ 1.25x and < 1 s: $(met "$(ratio "$d2" "$b2")" "<=" 1.25 "$d2" "<" 1) |
| quick \`verify\`, same root | ${v2} s | bare parallel read ${b2} s | $(ratio "$v2" "$b2")x | ≤ 1.5x and < 1 s: $(met "$(ratio "$v2" "$b2")" "<=" 1.5 "$v2" "<" 1) |
| \`df\` peak memory, same root | ${mb} MB | | | < 60 MB: $(met "$mb" "<" 60) |
| \`df --disk\`, $entries entries | ${d3} s | \`diskus\` ${k3} s | $(ratio "$d3" "$k3")x | ≤ 1.0x: $(met "$(ratio "$d3" "$k3")" "<=" 1.0) |
| \`df --disk\`, same | ${d3} s | \`du -s -B1\` ${u3} s | $(ratio "$u3" "$d3")x faster | ≥ 2x: $(met "$(ratio "$u3" "$d3")" ">=" 2) |
EOF
