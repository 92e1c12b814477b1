#!/usr/bin/env bash
# Whole-process benchmarks for `dockgc df`, each against its named anchor, in
# one run with the runs interleaved (this machine is shared and noisy):
#
#   1. `dockgc df` vs the daemon's warm `/system/df`, on a root a real dockerd
#      serves (a few hundred images);
#   2. `dockgc df` on a 10,000-image / 30,000-layer generated root vs a bare
#      parallel read of the same metadata files (examples/bare_read.rs), and
#      its peak memory;
#   3. `dockgc df --disk` vs `du -s -B1` on the same tree, in entries/s.
#
# Prints a Markdown table for the README. Needs root (for dockerd).
# Usage: scripts/bench.sh [RUNS]   (default 5; the median is reported)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

RUNS=${1:-5}
need=()
command -v dockerd >/dev/null 2>&1 || need+=(docker.io)
[ -x /usr/bin/time ] || need+=(time)
command -v curl >/dev/null 2>&1 || need+=(curl)
if [ "${#need[@]}" -gt 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi

cargo build --release --quiet --bin dockgc --example synth --example bare_read
BIN=target/release/dockgc
SYNTH=target/release/examples/synth
BARE=target/release/examples/bare_read

WORK=$(mktemp -d /tmp/dockgc-bench.XXXXXX)
RUN=$(mktemp -d /tmp/dgb.XXXX) # short: the socket path must stay under 108 bytes
cleanup() {
    if [ -f "$RUN/docker.pid" ]; then
        kill "$(cat "$RUN/docker.pid")" 2>/dev/null || true
        for _ in $(seq 60); do [ -f "$RUN/docker.pid" ] || break; sleep 0.5; done
    fi
    rm -rf "$WORK" "$RUN"
}
trap cleanup EXIT

# Seconds (wall) of one run of "$@", output discarded.
secs() {
    local s e
    s=$(date +%s%N)
    "$@" >/dev/null 2>&1
    e=$(date +%s%N)
    awk -v s="$s" -v e="$e" 'BEGIN { printf "%.4f\n", (e - s) / 1e9 }'
}
median() { sort -g | awk '{a[NR]=$1} END {m=a[int((NR+1)/2)]; printf "%.3f", m}'; }

# --- 1. against the daemon's warm /system/df ---------------------------------
"$SYNTH" "$WORK/real" 300 900 >/dev/null
setsid dockerd --data-root "$WORK/real" --exec-root "$RUN/exec" \
    -H "unix://$RUN/docker.sock" --pidfile "$RUN/docker.pid" \
    --iptables=false --ip6tables=false --bridge=none >"$WORK/dockerd.log" 2>&1 &
for _ in $(seq 60); do
    curl -sf --unix-socket "$RUN/docker.sock" http://x/_ping >/dev/null 2>&1 && break
    sleep 0.5
done
curl -sf --unix-socket "$RUN/docker.sock" http://x/_ping >/dev/null ||
    { echo "bench: dockerd did not start:"; tail -20 "$WORK/dockerd.log"; exit 1; }
api_df() { curl -sf --unix-socket "$RUN/docker.sock" http://x/system/df; }
images_real=$(curl -sf --unix-socket "$RUN/docker.sock" 'http://x/images/json?all=1' | grep -o '"Id"' | wc -l)
api_df >/dev/null; api_df >/dev/null # warm the daemon
: >"$WORK/d1"; : >"$WORK/a1"
for _ in $(seq "$RUNS"); do
    secs "$BIN" --root "$WORK/real" df --format json >>"$WORK/d1"
    secs api_df >>"$WORK/a1"
done
kill "$(cat "$RUN/docker.pid")"
for _ in $(seq 60); do [ -f "$RUN/docker.pid" ] || break; sleep 0.5; done

# --- 2. 10,000 images against a bare parallel read ---------------------------
"$SYNTH" "$WORK/big" 10000 30000 >/dev/null
"$BIN" --root "$WORK/big" df --format json >/dev/null # warm the cache
"$BARE" "$WORK/big" >/dev/null
: >"$WORK/d2"; : >"$WORK/b2"; : >"$WORK/m2"
for _ in $(seq "$RUNS"); do
    secs "$BIN" --root "$WORK/big" df --format json >>"$WORK/d2"
    secs "$BARE" "$WORK/big" >>"$WORK/b2"
    /usr/bin/time -f %M "$BIN" --root "$WORK/big" df --format json 2>>"$WORK/m2" >/dev/null
done

# --- 3. --disk against du ------------------------------------------------------
entries=$("$BIN" --root "$WORK/big" df --disk --format json | sed -n 's/.*"entries": \([0-9]*\).*/\1/p' | head -1)
: >"$WORK/d3"; : >"$WORK/u3"
for _ in $(seq "$RUNS"); do
    secs "$BIN" --root "$WORK/big" df --disk --format json >>"$WORK/d3"
    secs du -s -B1 "$WORK/big" >>"$WORK/u3"
done

d1=$(median <"$WORK/d1"); a1=$(median <"$WORK/a1")
d2=$(median <"$WORK/d2"); b2=$(median <"$WORK/b2"); m2=$(median <"$WORK/m2")
d3=$(median <"$WORK/d3"); u3=$(median <"$WORK/u3")
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
rate() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.0f", a / b }'; }

cat <<EOF

Machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(uname -r); $(date -u +%Y-%m-%d); median of $RUNS runs, warm cache.

| what | dockgc | anchor | ratio | target |
|---|---|---|---|---|
| \`df\`, real dockerd root ($images_real images) | ${d1} s | warm \`/system/df\` ${a1} s | $(ratio "$d1" "$a1")x | ≤ 0.5x |
| \`df\`, 10,000 images / 30,000 layers | ${d2} s | bare parallel read ${b2} s | $(ratio "$d2" "$b2")x | < 1 s, ≤ 1.5x |
| \`df\` peak memory, same root | $((m2 / 1024)) MB | | | < 100 MB |
| \`df --disk\`, $entries entries | $(rate "$entries" "$d3") entries/s (${d3} s) | \`du -s -B1\` $(rate "$entries" "$u3") entries/s (${u3} s) | $(ratio "$u3" "$d3")x faster | ≥ 2x |
EOF
