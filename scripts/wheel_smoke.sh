#!/usr/bin/env bash
# Install geodrain as a user would and run it away from the source: build the wheel, install it (not
# editable) into a fresh virtual environment outside the checkout, then, from outside the checkout, generate a
# small scene and detect its crossings with the deployed model that ships inside the wheel, with no network
# where the machine allows it (unshare -rn), and score them against the truth.
#
#   ./scripts/wheel_smoke.sh [WORK]        # WORK: a scratch folder outside the checkout (default: a new temp one)
#
# torch is pinned to the CPU build of requirements/cpu.txt (an unpinned torch pulls a CUDA build); ONNX Runtime
# (an optional extra) is not installed, so `detect --backend onnx` must say which extra to install and saving a
# bundle must skip its ONNX check with a note in the manifest.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
WORK="${1:-}"
if [ -z "$WORK" ]; then
    WORK="$(mktemp -d "${TMPDIR:-/tmp}/geodrain-wheel.XXXXXX")"
    trap 'rm -rf "$WORK"' EXIT
fi
PY="${PYTHON:-python3}"
case "$(cd "$WORK" 2>/dev/null && pwd || echo "$WORK")/" in
    "$ROOT"/*) echo "wheel_smoke: WORK must be outside the checkout ($ROOT)" >&2; exit 2 ;;
esac
mkdir -p "$WORK"
WORK="$(cd "$WORK" && pwd)"
TORCH="$(grep -E '^torch==' "$ROOT/requirements/cpu.txt")"
step() { echo; echo "== $*"; }

step "a fresh venv outside the checkout"
rm -rf "$WORK/dist" "$WORK/venv" "$WORK/run"
"$PY" -m venv "$WORK/venv"
# shellcheck disable=SC1091
. "$WORK/venv/bin/activate"
python -m pip install -q --upgrade pip
python --version

step "build the wheel (pip wheel, isolated build)"
python -m pip wheel --no-deps -q -w "$WORK/dist" "$ROOT"
rm -rf "$ROOT/build" "$ROOT"/*.egg-info
WHEEL="$(ls "$WORK"/dist/geodrain-*.whl)"
ls -l "$WHEEL"
python -m zipfile -l "$WHEEL" | grep "geodrain/deployed/"

step "install it, not editable ($TORCH, the CPU build)"
python -m pip install -q "$TORCH"
python -m pip install -q "$WHEEL"
python -m pip list 2>/dev/null | grep -iE "^(geodrain|torch|onnxruntime|optuna) " || true
python -c "import onnxruntime" 2>/dev/null && { echo "wheel_smoke: onnxruntime must not be installed" >&2; exit 1; }

step "run it from outside the checkout"
mkdir -p "$WORK/run"
cd "$WORK/run"
unset GEODRAIN_MODEL
python - <<'EOF'
import geodrain, sys
from geodrain.model.bundle import default_bundle_path
print("geodrain", geodrain.__version__, "from", geodrain.__file__)
print("deployed model:", default_bundle_path())
assert sys.prefix in geodrain.__file__, "not the installed package"
assert sys.prefix in str(default_bundle_path()), "the deployed model does not come from the installed package"
EOF
geodrain --version
OFFLINE=()
if unshare -rn true 2>/dev/null; then OFFLINE=(unshare -rn); echo "detect runs without network (unshare -rn)"; fi
geodrain synth scene --seed 7 --size 1024 -q
"${OFFLINE[@]}" geodrain detect scene/naip.tif -o crossings.gpkg
geodrain evaluate crossings.gpkg scene/truth.gpkg
set +e
msg="$(geodrain detect scene/naip.tif -o onnx.gpkg --backend onnx -q 2>&1)"
rc=$?
set -e
echo "detect --backend onnx without onnxruntime: exit $rc: $msg"
if [ "$rc" -eq 0 ] || [ "$(printf '%s\n' "$msg" | wc -l)" -ne 1 ] || ! printf '%s' "$msg" | grep -q "geodrain\[cpu\]"; then
    echo "wheel_smoke: expected a one-line error naming the geodrain[cpu] extra" >&2
    exit 1
fi
[ ! -e onnx.gpkg ]
python - <<'EOF'
from geodrain.model import build_model, resolve_arch, save_bundle
b = save_bundle(build_model(resolve_arch("k1-s1-f128"), 16), "bundle")
print("save_bundle without onnxruntime:", b.manifest["onnx_parity_max_abs"], "-", b.manifest["onnx_parity_note"])
assert b.manifest["onnx_parity_max_abs"] is None and (b.path / "model.onnx").is_file()
EOF
echo
echo "wheel smoke test passed"
