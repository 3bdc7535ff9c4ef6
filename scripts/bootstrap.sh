#!/usr/bin/env bash
# Installs everything the platform and its tests need, from nothing but Python 3.11+.
# Idempotent: a second run only checks that the environment matches the lock file.
set -euo pipefail
cd "$(dirname "$0")/.."

UV_VERSION="0.13.9"
PYTHON="${PYTHON:-python3}"

if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
  echo "error: Python 3.11 or newer is required (found: $("$PYTHON" --version 2>&1))" >&2
  exit 1
fi

if command -v uv >/dev/null 2>&1 && uv --version | grep -q "^uv ${UV_VERSION}"; then
  UV=uv
else
  if [ ! -x .tools/bin/uv ] || ! .tools/bin/uv --version | grep -q "^uv ${UV_VERSION}"; then
    echo "installing uv ${UV_VERSION} into .tools/"
    "$PYTHON" -m venv .tools
    .tools/bin/python -m pip install --quiet --disable-pip-version-check "uv==${UV_VERSION}"
  fi
  UV=.tools/bin/uv
fi

# One lock file for the whole workspace; --locked fails if pyproject and lock disagree.
"$UV" sync --locked --all-packages --python "$PYTHON" --quiet
echo "environment ready: .venv ($(.venv/bin/python --version))"
