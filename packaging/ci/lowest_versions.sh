#!/usr/bin/env bash
# Install the LOWEST versions that pyproject.toml allows for every direct dependency into a
# separate venv (build/venv-lowest, git-ignored) and run a smoke subset of the tests there, so
# the `>=` floors we declare are versions the code really works with.
#
#   packaging/ci/lowest_versions.sh            # from the repository root (make test-lowest)
#
# Transitive dependencies resolve to their newest compatible versions (uv's lowest-direct);
# the same Python as the main venv is used.
set -euo pipefail
cd "$(dirname "$0")/../.."
PYTHON="${PYTHON:-python3}"
VENV="${LOWEST_VENV:-build/venv-lowest}"
start=$(date +%s)

if [ ! -x "$VENV/bin/python" ]; then
  "$PYTHON" -m venv "$VENV"
fi
"$VENV/bin/python" -m pip install -q --upgrade pip
"$VENV/bin/python" -m pip install -q 'uv>=0.4'
VIRTUAL_ENV="$VENV" "$VENV/bin/uv" pip install -q --python "$VENV/bin/python" \
  --resolution lowest-direct --upgrade -e '.[dev]'
VIRTUAL_ENV="$VENV" "$VENV/bin/uv" pip freeze --python "$VENV/bin/python" \
  > "$VENV/lowest-freeze.txt"
echo "lowest direct versions installed (see $VENV/lowest-freeze.txt):"
"$VENV/bin/python" - <<'PY'
from importlib.metadata import version
for name in ("pyside6", "faiss-cpu", "open-clip-torch", "transformers", "torch", "numpy",
             "scipy", "scikit-learn", "umap-learn", "hdbscan", "sqlite-utils", "pillow", "av",
             "pyarrow", "click"):
    print(f"  {name:<16} {version(name)}")
PY

# The smoke subset: the catalog and its migrations, the CLI, scanning, the weight-free and the
# CLIP/CLAP embedders on tiny random models (open_clip's create_model arguments, transformers),
# FAISS clustering (AFK-MC2 init) and the index, the map, and the app on a small project.
QT_QPA_PLATFORM=offscreen "$VENV/bin/python" -m pytest -q -p no:cacheprovider -x \
  tests/curator/test_catalog.py tests/curator/test_cli.py tests/curator/test_scan.py \
  tests/curator/test_upgrade.py \
  tests/indexing/test_classic.py tests/indexing/test_clip.py tests/indexing/test_clap.py \
  tests/indexing/test_cluster.py tests/indexing/test_vector_index.py \
  tests/indexing/test_map2d.py tests/ui/test_about.py
echo "lowest-versions smoke: $(( $(date +%s) - start )) s"
