#!/usr/bin/env bash
# Build the one-folder desktop bundle (PyInstaller) for this OS: `make package [FLAVOUR=lite|full]`.
#
# lite: no torch, open_clip or transformers; the weight-free `classic` embedder only.
# full: torch + open_clip + transformers (CLIP and CLAP).
#
# Everything goes under build/package/<flavour>/ (git-ignored): the build venv (the bundle's
# own dependencies, never the dev venv), PyInstaller's work folder, and dist/Curator/ with the
# `curator` CLI and the `curator-gui` app side by side. The result is also packed as
# dist/curator-<version>-linux-<arch>-<flavour>.tar.gz.
set -euo pipefail
cd "$(dirname "$0")/.."
FLAVOUR="${FLAVOUR:-lite}"
PYTHON="${PYTHON:-python3}"
case "$FLAVOUR" in lite|full) ;; *) echo "FLAVOUR must be lite or full, not '$FLAVOUR'" >&2; exit 2;; esac
OUT="build/package/$FLAVOUR"
VENV="$OUT/venv"
start=$(date +%s)

if [ ! -x "$VENV/bin/python" ]; then
  "$PYTHON" -m venv "$VENV"
fi
"$VENV/bin/python" -m pip install -q --upgrade pip 'uv>=0.4'
UV=("$VENV/bin/uv" pip install -q --python "$VENV/bin/python")
# The project's own dependencies, less the ML runtimes for lite (read from pyproject.toml).
"$VENV/bin/python" packaging/requirements.py "$FLAVOUR" > "$OUT/requirements.txt"
if [ "$FLAVOUR" = full ]; then
  # torch and torchvision go in first, together, so the two builds match (a torchvision built
  # for another torch build fails at import: "operator torchvision::nms does not exist").
  # The CPU build keeps the bundle near 2 GB instead of ~6 GB of CUDA libraries: take it from
  # the PyTorch CPU index when that answers within TORCH_INDEX_TIMEOUT seconds. Set TORCH_INDEX
  # to another index (a CUDA one), or to nothing to go straight to the fallback.
  TORCH_INDEX="${TORCH_INDEX-https://download.pytorch.org/whl/cpu}"
  if [ -n "$TORCH_INDEX" ] && "$VENV/bin/python" - "$TORCH_INDEX/torch/" \
       "${TORCH_INDEX_TIMEOUT:-15}" <<'PY'
import sys, urllib.request
try:
    urllib.request.urlopen(sys.argv[1], timeout=float(sys.argv[2])).close()
except Exception as exc:  # noqa: BLE001 - any failure means: use the fallback
    sys.exit(f"torch index {sys.argv[1]} not reachable ({exc})")
PY
  then
    "${UV[@]}" torch torchvision --index-url "$TORCH_INDEX"
    echo "torch: from $TORCH_INDEX"
  else
    # Fallback: pip, not uv, because pip applies this machine's own configuration (find-links,
    # local mirrors, constraints); with none, this is PyPI's CUDA build (~4 GB more).
    echo "torch: falling back to pip's default sources (PyPI: the CUDA build)"
    "$VENV/bin/python" -m pip install -q torch torchvision
  fi
  "$VENV/bin/python" -c 'import torch, torchvision; print("torch", torch.__version__,
      "torchvision", torchvision.__version__)' \
    || { echo "torch and torchvision do not import together; see docs/packaging.md" >&2; exit 1; }
fi
"${UV[@]}" -r "$OUT/requirements.txt" -r packaging/requirements-build.txt
"${UV[@]}" --no-deps --reinstall-package curator .
echo "build venv ready: $(( $(date +%s) - start )) s"

"$VENV/bin/python" packaging/icons/make_icons.py --out "$OUT/icons"
FLAVOUR="$FLAVOUR" CURATOR_ICONS="$OUT/icons" "$VENV/bin/pyinstaller" --noconfirm --clean \
  --log-level WARN --workpath "$OUT/work" --distpath "$OUT/dist" packaging/curator.spec
# Desktop integration for the unpacked folder: ./install-desktop-entry.sh adds the menu entry.
BUNDLE="$OUT/dist/Curator"
mkdir -p "$BUNDLE/share/icons"
cp packaging/linux/curator.desktop "$BUNDLE/share/curator.desktop"
cp "$OUT"/icons/curator-*.png "$BUNDLE/share/icons/"
install -m 755 packaging/linux/install-desktop-entry.sh "$BUNDLE/install-desktop-entry.sh"
cp LICENSE "$BUNDLE/LICENSE"
echo "bundle built: $(( $(date +%s) - start )) s"

version=$("$VENV/bin/python" -c 'import curator; print(curator.__version__)')
arch=$(uname -m)
archive="dist/curator-$version-linux-$arch-$FLAVOUR.tar.gz"
if [ "${ARCHIVE:-1}" = "0" ]; then
  # CI runs the bundle from its folder; compressing ~1 GB would only cost minutes there.
  echo "$OUT/dist/Curator: $(du -sh "$OUT/dist/Curator" | cut -f1) on disk (no archive:" \
       "ARCHIVE=0); total $(( $(date +%s) - start )) s"
  exit 0
fi
mkdir -p dist
tar -C "$OUT/dist" -czf "$archive" Curator
echo "$OUT/dist/Curator: $(du -sh "$OUT/dist/Curator" | cut -f1) on disk;" \
     "$archive: $(du -h "$archive" | cut -f1); total $(( $(date +%s) - start )) s"
