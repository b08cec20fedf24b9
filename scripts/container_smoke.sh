#!/usr/bin/env bash
# Build the Dockerfile on a local Debian base image (no CUDA) and run `geodrain detect` inside the container
# on a generated scene, its GeoPackage written to a mounted folder; then check that file on the host.
#
#   BASE=localhost/bookworm-base ./scripts/container_smoke.sh
#
# Needs podman (or docker: ENGINE=docker). The CPU torch wheel is taken from $PIP_FIND_LINKS when that
# folder holds one (mounted into the build), else from PyPI's CPU index.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
ENGINE="${ENGINE:-podman}"
BASE="${BASE:-localhost/bookworm-base}"
TAG="${TAG:-geodrain:smoke}"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT

args=(--build-arg "BASE=$BASE" --build-arg "ORT=onnxruntime" --build-arg "TORCH_SPEC=torch==2.13.0")
if [ -n "${PIP_FIND_LINKS:-}" ] && ls "$PIP_FIND_LINKS"/torch-*cpu* >/dev/null 2>&1; then
  args+=(-v "$PIP_FIND_LINKS:/wheels:ro" --build-arg "PIP_FIND_LINKS=/wheels")
else
  args+=(--build-arg "TORCH_INDEX=https://download.pytorch.org/whl/cpu")
fi
[ "$ENGINE" = podman ] && args+=(--pull=never)

echo "== build $TAG on $BASE"
"$ENGINE" build "${args[@]}" -t "$TAG" "$ROOT"

echo "== run: synth + detect + evaluate inside the container, output to a mounted folder"
mkdir -p "$WORK/data"
"$ENGINE" run --rm -v "$WORK/data:/data" "$TAG" synth /data/scene --seed 7 --size 1024
"$ENGINE" run --rm -v "$WORK/data:/data" "$TAG" detect /data/scene/naip.tif -o /data/crossings.gpkg
"$ENGINE" run --rm -v "$WORK/data:/data" "$TAG" evaluate /data/crossings.gpkg /data/scene/truth.gpkg

echo "== check the GeoPackage on the host"
python3 - "$WORK/data/crossings.gpkg" <<'PY'
import sqlite3, sys
path = sys.argv[1]
with sqlite3.connect(path) as db:
    n = db.execute("SELECT count(*) FROM crossings").fetchone()[0]
    srs = db.execute("SELECT srs_id FROM gpkg_geometry_columns WHERE table_name='crossings'").fetchone()[0]
    style = db.execute("SELECT count(*) FROM layer_styles").fetchone()[0]
print(f"{path}: {n} crossings, srs_id {srs}, {style} QGIS style")
assert srs == 26914 and style == 1
PY
echo "container smoke test passed"
