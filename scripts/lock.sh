#!/usr/bin/env bash
# Regenerate requirements.lock: every package of `pip install -e ".[dev]"`, pinned and hashed, for
# CPython 3.11 on Linux x86_64 (the supported platform). Pins already in the lock are kept; to move
# them, pass uv's flags: `make lock LOCK_ARGS="--upgrade-package torch"` or `LOCK_ARGS=--upgrade`.
# uv comes from PATH, or is installed once into a scratch venv (never into the project's .venv).
set -euo pipefail
cd "$(dirname "$0")/.."
UV=${UV:-$(command -v uv || true)}
if [ -z "$UV" ]; then
  TOOLS=${TMPDIR:-/tmp}/bnstudy-lock-tools
  [ -x "$TOOLS/bin/uv" ] || { python3 -m venv "$TOOLS" && "$TOOLS/bin/python" -m pip install -q uv; }
  UV=$TOOLS/bin/uv
fi
# shellcheck disable=SC2086
"$UV" pip compile pyproject.toml --extra dev --generate-hashes --python-version 3.11 \
  --python-platform x86_64-manylinux_2_28 --custom-compile-command "make lock" -o requirements.lock ${LOCK_ARGS:-}
echo "requirements.lock: $(grep -cE '^[A-Za-z0-9_.-]+==' requirements.lock) packages pinned ($(grep -E '^torch==' requirements.lock | tr -d ' \\'))"
