#!/usr/bin/env bash
# Run the built bundle the way a user without Python would: `make test-package`.
#   1. `curator --version` from the bundle;
#   2. `curator demo` on a small generated corpus (scan, classic embeddings, groups);
#   3. the desktop app started offscreen on that project for a few seconds: it must open the
#      project and show no error (CURATOR_GUI_EXIT_AFTER makes it quit and say so).
# The bundle runs with an empty environment for Python (no PYTHONPATH, no venv on PATH) and
# its settings and caches in a temporary folder.
set -euo pipefail
cd "$(dirname "$0")/../.."
FLAVOUR="${FLAVOUR:-lite}"
BUNDLE="$(pwd)/build/package/$FLAVOUR/dist/Curator"
[ -x "$BUNDLE/curator" ] || { echo "no bundle at $BUNDLE; run make package" >&2; exit 1; }
WORK="$(pwd)/build/package/$FLAVOUR/smoke"
rm -rf "$WORK"
mkdir -p "$WORK/home"
start=$(date +%s)
run() {
  env -i PATH=/usr/bin:/bin HOME="$WORK/home" LANG=C.UTF-8 XDG_RUNTIME_DIR="$WORK/home" \
      CURATOR_CONFIG="$WORK/home/config.toml" QT_QPA_PLATFORM=offscreen "$@"
}

echo "== curator --version"
run "$BUNDLE/curator" --version | tee "$WORK/version.txt"
grep -q "^curator" "$WORK/version.txt"

echo "== curator demo"
run "$BUNDLE/curator" demo "$WORK/demo" --items "${SMOKE_ITEMS:-60}" 2>&1 | tee "$WORK/demo.txt"
grep -q "^cluster " "$WORK/demo.txt"
[ -f "$WORK/demo/project/catalog.db" ]

echo "== curator-gui on the demo project (offscreen, ${SMOKE_GUI_SECONDS:-8} s)"
set +e
run CURATOR_GUI_EXIT_AFTER="${SMOKE_GUI_SECONDS:-8}" timeout 120 \
    "$BUNDLE/curator-gui" "$WORK/demo/project" > "$WORK/gui.txt" 2>&1
rc=$?
set -e
cat "$WORK/gui.txt"
if [ $rc -ne 0 ] || grep -q "Traceback" "$WORK/gui.txt" \
   || ! grep -q "curator-gui smoke: ok" "$WORK/gui.txt"; then
  echo "bundle smoke FAILED: the app exited with $rc" >&2
  exit 1
fi
echo "bundle smoke ok ($FLAVOUR): $(( $(date +%s) - start )) s"
