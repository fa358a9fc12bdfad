#!/usr/bin/env bash
# `uv tool install .` works from a checkout: the `curator` and `curator-gui` commands land on a
# bin folder, in an environment of their own, and run. Tool dir and bin dir are under build/
# (git-ignored), so nothing of the user's is touched.   make test-tool-install
set -euo pipefail
cd "$(dirname "$0")/../.."
PYTHON="${PYTHON:-python3}"
TOOLS="$(pwd)/build/uv-tools"
start=$(date +%s)
if [ ! -x build/venv-uv/bin/uv ]; then
  "$PYTHON" -m venv build/venv-uv
  build/venv-uv/bin/python -m pip install -q 'uv>=0.4'
fi
export UV_TOOL_DIR="$TOOLS/envs" UV_TOOL_BIN_DIR="$TOOLS/bin"
build/venv-uv/bin/uv tool install -q --force --python "$PYTHON" --reinstall-package curator .
"$TOOLS/bin/curator" --version
"$TOOLS/bin/curator" --help > /dev/null
out="$(QT_QPA_PLATFORM=offscreen "$TOOLS/bin/curator-gui" --help)"
echo "$out" | grep -q "usage: curator-gui"
echo "uv tool install ok: $(( $(date +%s) - start )) s"
