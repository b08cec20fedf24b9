#!/usr/bin/env bash
# Create (or reuse) .venv and install geodrain (editable, with the research extra the tests need) and its CPU
# dependencies. Sourced by test.sh and demo.sh.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${GEODRAIN_VENV:-$ROOT/.venv}"
if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV"
fi
# shellcheck disable=SC1091
. "$VENV/bin/activate"
if ! python -c "import geodrain, torch, onnxruntime, optuna, sklearn, pytest, pyflwdir, pystac, dask.distributed" >/dev/null 2>&1; then
  python -m pip install -q --upgrade pip
  python -m pip install -q -r "$ROOT/requirements/cpu.txt" -e "$ROOT[research]"
fi
