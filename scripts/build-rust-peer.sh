#!/usr/bin/env bash
# Builds the Rust comlink_ipc_v4 test peer (test/rust-peer, binary mf_rust_peer) that
# test/rust-interop.test.ts runs. Prints the binary's path on the last line.
#
#   bash scripts/build-rust-peer.sh
#
# It links the system libzmq through pkg-config. As root on Debian, missing libzmq3-dev /
# pkg-config are installed with apt-get; otherwise install them yourself. Needs cargo (rustup);
# crates come from crates.io, pinned by test/rust-peer/Cargo.lock (--locked).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib/apt.sh

need=()
command -v pkg-config >/dev/null || need+=(pkg-config)
if ! pkg-config --exists libzmq 2>/dev/null; then need+=(libzmq3-dev); fi
if ((${#need[@]})); then apt_install build-rust-peer "${need[@]}" || exit 1; fi
if ! command -v cargo >/dev/null; then
  echo "build-rust-peer: cargo not found (install Rust, e.g. with rustup: https://rustup.rs)" >&2
  exit 1
fi

echo "build-rust-peer: $(cargo --version), libzmq $(pkg-config --modversion libzmq)" >&2
started=$SECONDS
(cd test/rust-peer && cargo build --release --locked)
binary="$PWD/test/rust-peer/target/release/mf_rust_peer"
[[ -x $binary ]] || { echo "build-rust-peer: cargo finished but $binary is missing" >&2; exit 1; }
echo "build-rust-peer: built in $((SECONDS - started)) s" >&2
echo "$binary"
