#!/usr/bin/env bash
# The main job: build dockgc and run `dockgc df` on the Docker data root
# (/var/lib/docker, or --root DIR / $DOCKGC_ROOT). Extra arguments go to `df`.
# On a machine with no Docker root at all it says so and runs `dockgc demo`,
# which reports on a small synthetic root, so the command works anywhere.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
cargo build --release --quiet --bin dockgc
bin=target/release/dockgc

root=${DOCKGC_ROOT:-/var/lib/docker}
args=("$@")
for ((i = 0; i < ${#args[@]}; i++)); do
    case "${args[i]}" in
        --root) root=${args[i + 1]:-} ;;
        --root=*) root=${args[i]#--root=} ;;
    esac
done

if [ ! -e "$root" ]; then
    echo "run.sh: no Docker data root at $root; showing \`dockgc demo\` instead" >&2
    exec "$bin" demo
fi
exec "$bin" df "$@"
