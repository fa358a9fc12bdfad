#!/usr/bin/env bash
# Download, here (with network), the wheels bench/gpu_check.sh installs on a GPU machine without
# network whose Python already has torch, torchvision, transformers, timm, numpy, Pillow and
# scikit-learn. They land in bench/.whl/ (git-ignored); copy the repository with that folder.
#
#   bench/fetch_gpu_wheels.sh [PYTHON_VERSION] [--cpu-faiss]
#
# PYTHON_VERSION is the GPU machine's (e.g. 3.11; default: this Python's). faiss-gpu-cu12 is built
# per Python version (its CUDA libraries come from the nvidia-* packages a CUDA torch already
# has); --cpu-faiss takes the abi3 faiss-cpu instead (19 MB, no GPU figures for faiss).
#
# The wheels (about 53 MB with faiss-gpu-cu12, 24 MB with faiss-cpu; limit 60 MB):
#   faiss-gpu-cu12 (48 MB) or faiss-cpu (19 MB)  - the vector index (`curator embed` syncs it)
#   open_clip_torch (1.5 MB), ftfy, wcwidth      - the CLIP models and their tokenizer
#   sqlite-utils, click, click-default-group, sqlite-fts4, tabulate, python-dateutil, six,
#   pluggy, platformdirs                          - the catalog and the CLI
#   pytest, iniconfig, pygments (exceptiongroup, tomli on Python 3.10) - the tests marked gpu
# faiss-gpu-cu12 needs numpy >= 2 and CUDA 12 runtime libraries (the nvidia-cublas-cu12 and
# nvidia-cuda-runtime-cu12 packages a CUDA 12 torch brings); with another torch use --cpu-faiss.
# Left out (not needed for the check): PySide6, umap-learn, hdbscan, pyarrow, av (the check's
# corpus is JPEG only), ray.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
DEST="$HERE/.whl"
PYVER=""
FAISS="faiss-gpu-cu12"
for arg in "$@"; do
  case "$arg" in
    --cpu-faiss) FAISS="faiss-cpu" ;;
    [0-9].[0-9]*) PYVER="$arg" ;;
    *) echo "usage: $0 [PYTHON_VERSION] [--cpu-faiss]" >&2; exit 2 ;;
  esac
done
PY=${PYTHON:-python3}
PYVER=${PYVER:-$($PY -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')}
mkdir -p "$DEST"
rm -f "$DEST"/*.whl
PURE="open_clip_torch ftfy sqlite-utils click click-default-group sqlite-fts4 tabulate
      python-dateutil six pluggy platformdirs pytest iniconfig pygments exceptiongroup tomli"
$PY -m pip download -q --no-deps --only-binary=:all: -d "$DEST" $PURE
$PY -m pip download -q --no-deps --only-binary=:all: -d "$DEST" --python-version "$PYVER" \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
  --platform manylinux2014_x86_64 "$FAISS" wcwidth
total=$(du -cb "$DEST"/*.whl | tail -1 | cut -f1)
ls -la "$DEST"
echo "total $((total / 1000000)) MB for Python $PYVER in $DEST"
if [ "$total" -gt 60000000 ]; then
  echo "error: over the 60 MB budget; use --cpu-faiss" >&2
  exit 1
fi
