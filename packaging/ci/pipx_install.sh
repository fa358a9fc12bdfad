#!/usr/bin/env bash
# `pipx install .` works from a checkout: the `curator` and `curator-gui` commands land on a bin
# folder, in a venv of their own, and run. pipx itself comes from PyPI into build/venv-pipx, and
# its home, bin and man folders are under build/pipx (git-ignored), so nothing of the user's is
# touched.   make test-pipx-install
#
# pipx installs with pip, so pip's configuration on the machine applies (an index mirror,
# find-links, constraints); on a plain machine torch is PyPI's CUDA build (several GB).
set -euo pipefail
cd "$(dirname "$0")/../.."
PYTHON="${PYTHON:-python3}"
PIPX_ROOT="$(pwd)/build/pipx"
start=$(date +%s)
if [ ! -x build/venv-pipx/bin/pipx ]; then
  "$PYTHON" -m venv build/venv-pipx
  build/venv-pipx/bin/python -m pip install -q 'pipx>=1.5'
fi
export PIPX_HOME="$PIPX_ROOT/home" PIPX_BIN_DIR="$PIPX_ROOT/bin" PIPX_MAN_DIR="$PIPX_ROOT/man"
build/venv-pipx/bin/pipx --version
build/venv-pipx/bin/pipx install --force --python "$PYTHON" .
# Both commands are exposed (pipx lists the package's console and GUI scripts) and run.
build/venv-pipx/bin/pipx list --short | tee "$PIPX_ROOT/list.txt"
grep -q "^curator " "$PIPX_ROOT/list.txt"
[ -x "$PIPX_ROOT/bin/curator" ] && [ -x "$PIPX_ROOT/bin/curator-gui" ]
"$PIPX_ROOT/bin/curator" --version
"$PIPX_ROOT/bin/curator" --help > /dev/null
out="$(QT_QPA_PLATFORM=offscreen "$PIPX_ROOT/bin/curator-gui" --help)"
echo "$out" | grep -q "usage: curator-gui"
# A real command end to end in the pipx venv: a project on a few generated files, scanned.
work="$PIPX_ROOT/smoke"
rm -rf "$work"
"$PIPX_ROOT/bin/curator" sample-corpus "$work/media" --items 30 > /dev/null
"$PIPX_ROOT/bin/curator" init "$work/project" --source "$work/media" > /dev/null
"$PIPX_ROOT/bin/curator" scan "$work/project" --workers 0 | tee "$PIPX_ROOT/scan.txt"
"$PIPX_ROOT/bin/curator" status "$work/project" | tee "$PIPX_ROOT/status.txt"
grep -Eq "^image +[1-9]" "$PIPX_ROOT/status.txt"
echo "pipx install ok: $(( $(date +%s) - start )) s"
