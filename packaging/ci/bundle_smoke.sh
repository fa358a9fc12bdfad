#!/usr/bin/env bash
# Run the built bundle the way a user without Python would: `make test-package`.
#   1. `curator --version` from the bundle;
#   2. `curator demo` on a small generated corpus (scan, classic embeddings, groups);
#   3. full only: CLIP and CLAP embeddings of that project with tiny random models written by
#      packaging/ci/tiny_models.py, and a text search through both text towers;
#   4. the desktop app started offscreen on that project for a few seconds: it must open the
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

if [ "$FLAVOUR" = full ]; then
  # CLIP (open_clip from an hf-hub: config) and CLAP (transformers, a local folder) inside the
  # bundle, on tiny random models that the build venv's torch writes (no weights exist in CI).
  echo "== full: CLIP and CLAP embeddings and a text search (tiny random models, offline)"
  models="$WORK/models"
  py="${MODELS_PYTHON:-build/package/full/venv/bin/python}"  # only writes models and reads JSON
  "$py" packaging/ci/tiny_models.py "$models"
  hub=(HF_HUB_CACHE="$models/hub" HF_HUB_OFFLINE=1)
  run "${hub[@]}" "$BUNDLE/curator" embed "$WORK/demo/project" --workers 0 --device cpu \
      --offline --model hf-hub:curator-smoke/tiny-clip --audio-model "$models/tiny-clap" \
      --json > "$WORK/embed.json"
  "$py" - "$WORK/embed.json" <<'PY'
import json, sys
report = json.load(open(sys.argv[1]))
spaces = report["spaces"]
clip = spaces["clip:hf-hub:curator-smoke/tiny-clip"]
clap = next(v for k, v in spaces.items() if k.startswith("clap:tiny-clap@weights:"))
assert not report["unavailable"], report["unavailable"]
for name, space in (("CLIP", clip), ("CLAP", clap)):
    assert space["embedded"] > 0 and space["errors"] == 0, (name, space)
    print(f"{name}: {space['embedded']} items embedded, dim {space['dim']}, {space['embedder']}")
PY
  for modality in image audio; do
    run "${hub[@]}" "$BUNDLE/curator" search "$WORK/demo/project" --text "a red square" \
        --modality "$modality" --k 2 --json > "$WORK/search-$modality.json"
    cat "$WORK/search-$modality.json"
  done
  grep -q '"space": "clip:hf-hub:curator-smoke/tiny-clip"' "$WORK/search-image.json"
  grep -q '"space": "clap:tiny-clap@weights:' "$WORK/search-audio.json"
fi

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
