#!/usr/bin/env bash
# One-time set-up on a fresh machine: Debian packages for the Python peers, npm ci, the Python library in a venv.
# Python workers need /usr/bin/python3 with python3-zmq and python3-msgpack; pip fetches only the build backend from PyPI.
set -euo pipefail
# rustup puts cargo in ~/.cargo/bin, which a non-login shell may not have on PATH.
if ! command -v cargo >/dev/null && [ -x "$HOME/.cargo/bin/cargo" ]; then export PATH="$HOME/.cargo/bin:$PATH"; fi
cd "$(dirname "$0")/.."

if ! /usr/bin/python3 -c 'import zmq, msgpack' 2>/dev/null; then
  if [ "$(id -u)" -eq 0 ]; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq python3-zmq python3-msgpack
  else
    echo "setup: run as root, or install python3-zmq and python3-msgpack with apt-get" >&2
    exit 1
  fi
fi
/usr/bin/python3 -c 'import zmq, msgpack; print("python3-zmq", zmq.__version__, "| python3-msgpack", ".".join(map(str, msgpack.version)))'

npm ci --no-audit --no-fund

# Debian's chromium, for the dashboard's browser test (test/dashboard.test.ts, driven by playwright-core).
if ! command -v chromium >/dev/null; then
  if [ "$(id -u)" -eq 0 ]; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq chromium
  else
    echo "setup: run as root, or install chromium with apt-get: test/dashboard.test.ts is skipped without it" >&2
  fi
fi

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
