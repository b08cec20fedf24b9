# geodrain on a CUDA machine:
#   docker build -t geodrain .
#   docker run --rm --gpus all -v "$PWD/data:/data" geodrain detect /data/watershed.tif -o /data/crossings.gpkg
#
# BASE is the CUDA runtime image (Ubuntu 24.04, Python 3.12). TORCH_INDEX selects torch's CUDA build and ORT the
# ONNX Runtime package; a CPU image for smoke tests (scripts/container_smoke.sh) passes a CPU base, the CPU
# torch wheel and `onnxruntime`. Never install onnxruntime and onnxruntime-gpu together.
ARG BASE=nvidia/cuda:12.8.1-cudnn-runtime-ubuntu24.04
FROM ${BASE}

ARG TORCH_SPEC="torch>=2.4"
ARG TORCH_INDEX=https://download.pytorch.org/whl/cu128
ARG ORT=onnxruntime-gpu
ARG PIP_FIND_LINKS=""

ENV DEBIAN_FRONTEND=noninteractive \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PATH=/opt/venv/bin:$PATH

RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 python3-venv python3-pip ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && python3 -m venv /opt/venv

# torch first (the largest layer, changes least), from the chosen index or local wheels
RUN if [ -n "$PIP_FIND_LINKS" ]; then pip install --find-links "$PIP_FIND_LINKS" "$TORCH_SPEC"; \
    else pip install --extra-index-url "$TORCH_INDEX" "$TORCH_SPEC"; fi \
 && pip install "$ORT"

# a regular (not editable) install: the deployed model in models/ ships inside the package
WORKDIR /opt/geodrain
COPY pyproject.toml setup.py README.md ./
COPY geodrain ./geodrain
COPY models ./models
RUN pip install . && cd / && rm -rf /opt/geodrain

# files are read and written under /data (mount a host folder there)
WORKDIR /data
ENTRYPOINT ["geodrain"]
CMD ["--help"]
