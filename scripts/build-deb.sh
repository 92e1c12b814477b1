#!/usr/bin/env bash
# Build the Debian package of dockgc and print its path
# (target/debian/dockgc_<version>-1_<arch>.deb).
#
#   scripts/build-deb.sh [--profile PROFILE] [--no-build] [--output DIR]
#
# Installs cargo-deb from crates.io when it is missing, builds the binary
# (profile `release` unless told otherwise; with --no-build, uses the one
# already built: tests/packaging.rs packages the dev binary of its own run),
# generates the man pages and shell completions into
# target/man and target/completions with the binary itself, and runs
# `cargo deb --no-build` with the [package.metadata.deb] table of Cargo.toml,
# writing the package into DIR (default target/debian).
# Needs dpkg-dev (dpkg-shlibdeps computes the package's Depends).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

profile=release
build=1
output=target/debian
while [ "$#" -gt 0 ]; do
    case "$1" in
    --profile)
        profile=${2:?--profile needs a value}
        shift 2
        ;;
    --profile=*)
        profile=${1#--profile=}
        shift
        ;;
    --no-build)
        build=
        shift
        ;;
    --output)
        output=${2:?--output needs a directory}
        shift 2
        ;;
    *)
        echo "usage: $0 [--profile PROFILE] [--no-build] [--output DIR]" >&2
        exit 2
        ;;
    esac
done

if ! command -v dpkg-shlibdeps >/dev/null 2>&1; then
    echo "build-deb.sh: dpkg-shlibdeps is missing: apt-get install dpkg-dev" >&2
    exit 1
fi
if ! cargo deb --version >/dev/null 2>&1; then
    echo "build-deb.sh: installing cargo-deb 3.8.0 from crates.io" >&2
    cargo install cargo-deb --locked --version 3.8.0
fi

if [ -n "$build" ]; then
    echo "build-deb.sh: building dockgc (profile $profile)" >&2
    cargo build --profile "$profile" --bin dockgc >&2
fi
case "$profile" in
dev) outdir=debug ;;
*) outdir=$profile ;;
esac
bin=${CARGO_TARGET_DIR:-target}/$outdir/dockgc
if [ ! -x "$bin" ]; then
    echo "build-deb.sh: $bin is missing (build it, or drop --no-build)" >&2
    exit 1
fi

# One page per command, one file per shell; cargo-deb gzips the pages.
rm -rf target/man target/completions
mkdir -p target/man target/completions
"$bin" man --dir target/man
"$bin" completions bash >target/completions/dockgc.bash
"$bin" completions zsh >target/completions/_dockgc
"$bin" completions fish >target/completions/dockgc.fish

# Only this build's package in the output directory (the Dockerfile copies
# dockgc_*.deb from it).
mkdir -p "$output"
rm -f "$output"/dockgc_*.deb
cargo deb --no-build --profile "$profile" --output "$output" >&2
deb=$(ls "$output"/dockgc_*.deb)
case "$deb" in
/*) echo "$deb" ;;
*) echo "$PWD/$deb" ;;
esac
