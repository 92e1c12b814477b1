# Shared by scripts/bench*.sh: timing, medians, and a private dockerd.
# Expects WORK and RUN (short: the socket path must stay under 108 bytes) set.

DOCKER=/usr/bin/docker
[ -x "$DOCKER" ] || DOCKER=docker

# Installs what the benchmarks run, from Debian.
bench_need() {
    local need=()
    command -v dockerd >/dev/null 2>&1 || need+=(docker.io)
    command -v curl >/dev/null 2>&1 || need+=(curl)
    [ -x /usr/bin/time ] || need+=(time)
    if [ "${#need[@]}" -gt 0 ]; then
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
    fi
}

# Seconds (wall) of one run of "$@", output discarded; a failing command
# stops the benchmark with its output, instead of timing an error.
secs() {
    local s e
    s=$(date +%s%N)
    if ! "$@" >"$WORK/last.out" 2>&1; then
        echo "bench: failed: $*" >&2
        tail -20 "$WORK/last.out" >&2
        exit 1
    fi
    e=$(date +%s%N)
    awk -v s="$s" -v e="$e" 'BEGIN { printf "%.4f\n", (e - s) / 1e9 }'
}

median() { sort -g | awk '{a[NR]=$1} END {printf "%.3f", a[int((NR+1)/2)]}'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }

dk() { DOCKER_HOST="unix://$RUN/docker.sock" "$DOCKER" "$@"; }

start_daemon() {
    setsid dockerd --data-root "$1" --exec-root "$RUN/exec" -H "unix://$RUN/docker.sock" \
        --pidfile "$RUN/docker.pid" --iptables=false --ip6tables=false --bridge=none \
        >"$WORK/dockerd.log" 2>&1 &
    for _ in $(seq 120); do dk version >/dev/null 2>&1 && return; sleep 0.5; done
    echo "bench: dockerd did not start:" >&2
    tail -20 "$WORK/dockerd.log" >&2
    exit 1
}

stop_daemon() {
    [ -f "$RUN/docker.pid" ] || return 0
    kill "$(cat "$RUN/docker.pid")" 2>/dev/null || true
    for _ in $(seq 120); do [ -f "$RUN/docker.pid" ] || return 0; sleep 0.5; done
}

bench_cleanup() {
    stop_daemon
    rm -rf "$WORK" "$RUN"
}
