#!/usr/bin/env bash
# Run the whole test suite. On a fresh Debian 12 machine this first installs
# what the real-daemon tests need: Debian's docker.io (dockerd 20.10, run
# privately by the tests on their own data roots) and a static busybox (the
# shell inside the test images), Debian's containerd and runc (containerd
# 1.6, run privately by tests/containerd_*.rs on their own roots, and its
# runtime), and Prometheus's promtool (the metrics linter). Extra arguments
# go to `cargo test`.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

missing=()
command -v dockerd >/dev/null 2>&1 || [ -x /usr/sbin/dockerd ] || missing+=(docker.io)
static_busybox() {
    local b
    for b in /bin/busybox /usr/bin/busybox; do
        # Dynamic executables name their loader near the start of the file.
        if [ -x "$b" ] && [ "$(head -c 8192 "$b" | grep -ac -e ld-linux -e ld-musl)" = 0 ]; then
            return 0
        fi
    done
    return 1
}
static_busybox || missing+=(busybox-static)
# The containerd judge (tests/containerd_daemon.rs, tests/containerd_synth.rs).
command -v containerd >/dev/null 2>&1 || [ -x /usr/bin/containerd ] || missing+=(containerd)
command -v runc >/dev/null 2>&1 || [ -x /usr/sbin/runc ] || missing+=(runc)
# promtool lints the Prometheus output (tests/metrics.rs); systemd-analyze,
# dpkg-shlibdeps and PyYAML check the packaging (tests/packaging.rs).
command -v promtool >/dev/null 2>&1 || missing+=(prometheus)
command -v systemd-analyze >/dev/null 2>&1 || missing+=(systemd)
command -v dpkg-shlibdeps >/dev/null 2>&1 || missing+=(dpkg-dev)
python3 -c 'import yaml' >/dev/null 2>&1 || missing+=(python3-yaml)
# Also used, and Essential on Debian: coreutils (cp -a, du), tar, util-linux.

if [ "${#missing[@]}" -gt 0 ]; then
    if ! command -v apt-get >/dev/null 2>&1; then
        echo "test.sh: missing ${missing[*]} and no apt-get to install them" >&2
        exit 1
    fi
    sudo=()
    if [ "$(id -u)" -ne 0 ]; then
        sudo=(sudo)
    fi
    echo "test.sh: installing ${missing[*]}" >&2
    "${sudo[@]}" apt-get update
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y "${missing[@]}"
fi

# cargo-deb builds the .deb the packaging test installs (pinned: the test
# packages a dev profile, which later versions refuse).
if ! cargo deb --version 2>/dev/null | grep -q '^cargo-deb 3\.8\.0'; then
    echo "test.sh: installing cargo-deb 3.8.0" >&2
    cargo install cargo-deb --locked --version 3.8.0
fi

# In CI a missing or broken Docker or containerd must fail the real-daemon
# tests, not skip them.
if [ -n "${CI:-}" ]; then
    export DOCKGC_REQUIRE_DOCKER=1
fi

# --workspace: the bbolt reader crate (crates/bbolt) has its own tests.
exec cargo test --workspace --all-targets "$@"
