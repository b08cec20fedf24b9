#!/usr/bin/env bash
# What scripts/gpu_stride8.sh needs on a bare CUDA machine that has torch but no GDAL and no network, made
# here, under runs/gpu/ (git-ignored; pass it to the device tool as `carry: ["runs/gpu"]`):
#   runs/gpu/whl/        rasterio and its pure-Python dependencies, wheels for CPython 3.12 on x86-64 Linux
#                        (~36 MB: the whole working tree that travels must stay under 64 MiB, so no vector
#                        libraries: the device run reads rasters and writes no GeoPackage)
#   runs/gpu/scene_1024.tif  a 1024² generated scene (seed 9001), tiled there into the 16384² mosaic
# Environment: PY (python3 with geodrain installed), SEED (9001), RASTERIO (1.4.4).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
PY=${PY:-python3}
DEST=runs/gpu
mkdir -p "$DEST/whl"
"$PY" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux2014_x86_64 --platform manylinux1_x86_64 -d "$DEST/whl" \
    "rasterio==${RASTERIO:-1.4.4}" affine cligj click-plugins
if [ ! -f "$DEST/scene_1024.tif" ]; then
    tmp=$(mktemp -d "$ROOT/runs/.gpu-scene.XXXX")
    "$PY" -c "import sys; from geodrain.synth import generate_scene; generate_scene(sys.argv[1], seed=int(sys.argv[2]), size=1024, overwrite=True)" \
        "$tmp/scene" "${SEED:-9001}"
    mv "$tmp/scene/naip.tif" "$DEST/scene_1024.tif"
    rm -rf "$tmp"
fi
du -sh "$DEST" "$DEST/whl"/*.whl
