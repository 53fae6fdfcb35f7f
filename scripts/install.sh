#!/usr/bin/env bash
# Set up bnstudy: a .venv with the package (editable, dev extras) and the offline Fashion-MNIST data.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
VENV=${VENV:-.venv}

if [ ! -x "$VENV/bin/python" ]; then
  "$PYTHON" -m venv "$VENV"
fi
"$VENV/bin/python" -m pip install -q --upgrade pip
# torch 2.14.1 / torchvision 0.29.1 are the pair known to import together here; newer pairs work too.
"$VENV/bin/python" -m pip install -q "torch>=2.4" "torchvision>=0.19"
"$VENV/bin/python" -m pip install -q -e ".[dev]"

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
