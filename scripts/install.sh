#!/usr/bin/env bash
# Set up bnstudy: a .venv with the package (editable, dev extras) and the offline Fashion-MNIST data.
# By default every dependency comes from requirements.lock (pinned, hashed: CPython 3.11, Linux x86_64),
# the environment the reference results were made with. LOCK= (empty) installs pyproject's version
# ranges instead (other Pythons and platforms).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
VENV=${VENV:-.venv}
LOCK=${LOCK-requirements.lock}

if [ ! -x "$VENV/bin/python" ]; then
  "$PYTHON" -m venv "$VENV"
fi
# PyPI's torch for Linux x86_64 is a CUDA build: about 5.6 GB in the venv, plus its wheels while pip works.
# Check the space first, so a full disk is a clear message instead of pip's OSError halfway through.
# MIN_FREE_GB=0 skips the check.
MIN_FREE_GB=${MIN_FREE_GB:-7}
if ! "$VENV/bin/python" -c 'import torch' >/dev/null 2>&1; then
  free_gb=$(df -Pk "$VENV" | awk 'NR == 2 {printf "%d", $4 / 1048576}')
  if [ "$free_gb" -lt "$MIN_FREE_GB" ]; then
    echo "error: installing torch needs about $MIN_FREE_GB GB free where $VENV is, and there are $free_gb GB: free some space (old venvs, clones, ~/.cache/pip), or VENV=<a folder on a larger disk> make install (MIN_FREE_GB=0 skips this check)" >&2
    exit 2
  fi
fi
"$VENV/bin/python" -m pip install -q --upgrade pip
if [ -n "$LOCK" ]; then
  where=$("$VENV/bin/python" -c 'import platform, sys; print(f"{platform.python_implementation()} {sys.version_info[0]}.{sys.version_info[1]} {platform.system()} {platform.machine()}")')
  if [ "$where" != "CPython 3.11 Linux x86_64" ]; then
    echo "error: $LOCK is for CPython 3.11 on Linux x86_64, and $VENV has $where: use PYTHON=python3.11, or make install LOCK= to install pyproject's version ranges (not the reference's versions)" >&2
    exit 2
  fi
  "$VENV/bin/python" -m pip install -q --require-hashes -r "$LOCK"
  # bnstudy itself, with the lock's setuptools and nothing else from the index
  "$VENV/bin/python" -m pip install -q --no-deps --no-build-isolation -e .
  echo "installed from $LOCK: $("$VENV/bin/python" -m pip list --format=freeze 2>/dev/null | grep -iE '^(torch|torchvision|hydra-core|numpy|pandas)==' | tr '\n' ' ')"
else
  "$VENV/bin/python" -m pip install -q "torch>=2.4" "torchvision>=0.19"
  "$VENV/bin/python" -m pip install -q -e ".[dev]"
  echo "installed pyproject's version ranges (no lock): $("$VENV/bin/python" -m pip list --format=freeze 2>/dev/null | grep -iE '^(torch|torchvision)==' | tr '\n' ' ')"
fi

# Fashion-MNIST for offline runs: Debian's dataset-fashion-mnist (IDX files in /usr/share/datasets).
FASHION=/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz
if [ -f "$FASHION" ]; then
  echo "Fashion-MNIST: found in /usr/share/datasets/fashion-mnist"
elif command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
  apt-get install -y -q dataset-fashion-mnist >/dev/null || { apt-get update -q >/dev/null && apt-get install -y -q dataset-fashion-mnist >/dev/null; }
elif command -v apt-get >/dev/null 2>&1 && command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
  sudo apt-get install -y -q dataset-fashion-mnist >/dev/null
else
  cat <<'MSG'
Fashion-MNIST is not installed and this script cannot install it (no apt-get or no root). Either:
  - sudo apt-get install dataset-fashion-mnist            (Debian/Ubuntu), or
  - put the four IDX files (train-images-idx3-ubyte.gz, ...) in a folder and pass data.root=<folder>, or
  - with internet: python -m experiments.train data.download=true data.root=~/.cache/bnstudy/data
The tests that need the real data are skipped until then.
MSG
fi
echo "bnstudy installed in $VENV. Next: make test"
