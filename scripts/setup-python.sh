#!/usr/bin/env bash
# Installs the Python worker library (python/) the way a user would: `pip install ./python` into a
# virtual environment, then checks that it imports. Prints the venv's interpreter on the last line.
#
#   bash scripts/setup-python.sh            venv with Debian's python3-zmq/python3-msgpack visible
#                                           (--system-site-packages): what apt-get users run
#   bash scripts/setup-python.sh --pypi     isolated venv, pyzmq and msgpack from PyPI (current versions)
#
# Environment: MULTIFROST_PY_VENV (default python/.venv, or python/.venv-pypi with --pypi),
# MULTIFROST_PYTHON (default /usr/bin/python3, Debian's interpreter).
# As root on Debian, missing python3-venv / python3-pytest / python3-zmq / python3-msgpack are
# installed with apt-get. Then run the library's tests with:
#   <venv>/bin/python -m pytest python/tests
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib/apt.sh

mode=system
if [[ "${1:-}" == "--pypi" ]]; then mode=pypi; fi
python=${MULTIFROST_PYTHON:-/usr/bin/python3}
default_venv=python/.venv
[[ $mode == pypi ]] && default_venv=python/.venv-pypi
venv=${MULTIFROST_PY_VENV:-$default_venv}
mkdir -p "$(dirname "$venv")" && venv="$(cd "$(dirname "$venv")" && pwd)/$(basename "$venv")"

need=()
"$python" -c 'import venv, ensurepip' 2>/dev/null || need+=(python3-venv)
"$python" -c 'import pytest' 2>/dev/null || need+=(python3-pytest)
if [[ $mode == system ]]; then
  "$python" -c 'import zmq' 2>/dev/null || need+=(python3-zmq)
  "$python" -c 'import msgpack' 2>/dev/null || need+=(python3-msgpack)
fi
if ((${#need[@]})); then apt_install setup-python "${need[@]}" || exit 1; fi

if [[ ! -x "$venv/bin/python" ]]; then
  if [[ $mode == pypi ]]; then
    "$python" -m venv "$venv"
  else
    "$python" -m venv --system-site-packages "$venv"
  fi
fi
# --no-build-isolation would skip fetching setuptools; a user's plain `pip install` fetches it, so do the same.
if [[ $mode == pypi ]]; then
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check ./python pytest
else
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check ./python
fi
# Import from the installed copy, not from python/src.
(cd / && "$venv/bin/python" -c 'import multifrost, zmq, msgpack; print("setup-python: multifrost", multifrost.__version__, "from", multifrost.__file__, "| pyzmq", zmq.__version__, "| msgpack", ".".join(map(str, msgpack.version)))' >&2)
echo "$venv/bin/python"
