#!/usr/bin/env bash
# One-time set-up on a fresh machine: Debian packages for the Python peers, npm ci, the Python library in a venv.
# Python workers need /usr/bin/python3 with python3-zmq and python3-msgpack; pip fetches only the build backend from PyPI.
set -euo pipefail
# rustup puts cargo in ~/.cargo/bin, which a non-login shell may not have on PATH.
if ! command -v cargo >/dev/null && [ -x "$HOME/.cargo/bin/cargo" ]; then export PATH="$HOME/.cargo/bin:$PATH"; fi
cd "$(dirname "$0")/.."

source scripts/lib/apt.sh

if ! /usr/bin/python3 -c 'import zmq, msgpack' 2>/dev/null; then
  apt_install setup python3-zmq python3-msgpack
fi
/usr/bin/python3 -c 'import zmq, msgpack; print("python3-zmq", zmq.__version__, "| python3-msgpack", ".".join(map(str, msgpack.version)))'

npm ci --no-audit --no-fund

# Debian's chromium, for the dashboard's browser test (test/dashboard.test.ts, driven by playwright-core).
if ! command -v chromium >/dev/null; then
  apt_install setup chromium || echo "setup: test/dashboard.test.ts needs chromium" >&2
fi

# Debian's etcd-server, for the etcd registry's tests (each starts a throwaway etcd on loopback
# ports; the package's own service is not needed) and iproute2 for the multi-host test's namespaces.
if ! command -v etcd >/dev/null || ! command -v ip >/dev/null; then
  apt_install setup etcd-server iproute2 || echo "setup: test/etcd-registry.test.ts needs etcd-server" >&2
fi
# The package may start its own etcd on 2379 where a service manager runs; ours never use that one.

# The Python worker library, installed the way a user would (pip install ./python into a venv that
# sees Debian's python3-zmq/python3-msgpack); npm test runs its pytest suite with that venv.
bash scripts/setup-python.sh >/dev/null
# …and once more with the current pyzmq/msgpack from PyPI (an isolated venv), so npm test runs the
# library's suite against both; without PyPI that suite is skipped with a warning.
bash scripts/setup-python.sh --pypi >/dev/null || echo "setup: could not make the PyPI venv (python/.venv-pypi): its pytest run is skipped" >&2

# Our Rust v4 peer (test/rust-peer), for the TS↔Rust interop tests; needs cargo (and installs
# Debian's libzmq3-dev when missing).
if command -v cargo >/dev/null; then
  bash scripts/build-rust-peer.sh >/dev/null
else
  echo "setup: cargo not found: test/rust-interop.test.ts will fail until 'bash scripts/build-rust-peer.sh' has run" >&2
fi
