#!/usr/bin/env bash
# The prepared GPU check: on a machine with one NVIDIA GPU (no network), install what this
# project needs beside the machine's torch/torchvision/transformers/timm/numpy/Pillow/scikit-learn
# from the wheels in bench/.whl/ (bench/fetch_gpu_wheels.sh), run the tests marked gpu, then
# measure (bench/gpu_bench.py). Everything is written to one file. Budget: 8 minutes.
#
#   bench/gpu_check.sh [--out FILE]              # the check
#   bench/gpu_check.sh --dry-run                 # say what would be installed and run
#   bench/gpu_check.sh --smoke --device cpu      # tiny sizes on CPU: proves the script here
#   bench/gpu_check.sh ... -- --images 8         # anything after -- goes to bench/gpu_bench.py
#
# Time limits: 120 s for the tests, BENCH_TIMEOUT (default 330 s) for the figures; the figures
# file is rewritten after every measurement, so a limit reached still leaves what was measured.
# Packages go to a private folder (.gpu-site/, git-ignored) on PYTHONPATH, never into the
# machine's own Python.
set -uo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(dirname "$HERE")
PY=${PYTHON:-python3}
OUT="$ROOT/gpu_check_results.md"
DEVICE=cuda
DRY=0
SMOKE=""
EXTRA=()
while [ $# -gt 0 ]; do
  case "$1" in
    --) shift; EXTRA=("$@"); break ;;
    --out) OUT="$2"; shift ;;
    --device) DEVICE="$2"; shift ;;
    --dry-run) DRY=1 ;;
    --smoke) SMOKE="--smoke" ;;
    *) echo "usage: $0 [--out FILE] [--device cuda|cpu] [--smoke] [--dry-run]" >&2; exit 2 ;;
  esac
  shift
done
WHEELS=${WHEELS:-$HERE/.whl}
SITE=${SITE:-$ROOT/.gpu-site}
export PYTHONPATH="$SITE:$ROOT${PYTHONPATH:+:$PYTHONPATH}"
export CURATOR_OFFLINE=1 HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
LOG="${OUT%.*}.log"
mkdir -p "$(dirname "$OUT")"
: > "$LOG"
say() { echo "$*" | tee -a "$LOG"; }

# 1. What the machine must already have.
missing_base=$($PY - <<'PY'
import importlib.util
need = ["torch", "torchvision", "transformers", "timm", "numpy", "PIL", "sklearn"]
print(" ".join(m for m in need if importlib.util.find_spec(m) is None))
PY
)
if [ -n "$missing_base" ]; then
  say "error: this Python lacks $missing_base (the check expects them installed)"
  [ "$DRY" = 1 ] || exit 1
fi

# 2. What we bring: module -> wheel name, installed only where the module is missing.
need=$($PY - <<'PY'
import importlib.util
wheels = {"open_clip": "open_clip_torch", "ftfy": "ftfy", "wcwidth": "wcwidth",
          "sqlite_utils": "sqlite_utils", "click": "click",
          "click_default_group": "click_default_group", "sqlite_fts4": "sqlite_fts4",
          "tabulate": "tabulate", "dateutil": "python_dateutil", "six": "six",
          "pluggy": "pluggy", "platformdirs": "platformdirs", "faiss": "faiss",
          "pytest": "pytest", "iniconfig": "iniconfig", "pygments": "pygments"}
import sys
if sys.version_info < (3, 11):
    wheels.update({"exceptiongroup": "exceptiongroup", "tomli": "tomli"})
print(" ".join(w for m, w in wheels.items() if importlib.util.find_spec(m) is None))
PY
)
files=""
for name in $need; do
  f=$(ls "$WHEELS"/${name}-*.whl "$WHEELS"/${name}_*.whl 2>/dev/null | head -1)
  if [ -z "$f" ]; then
    say "warning: no wheel for $name in $WHEELS (run bench/fetch_gpu_wheels.sh where there is network)"
  else
    files="$files $f"
  fi
done
say "bringing:${need:- nothing (all present)}"
if [ "$DRY" = 1 ]; then
  [ -n "$files" ] && say "would run: $PY -m pip install --no-index --no-deps --target $SITE$files"
  say "would run: $PY -m pytest -m gpu tests/indexing/test_gpu_paths.py"
  say "would run: $PY bench/gpu_bench.py --device $DEVICE $SMOKE --out $OUT ${EXTRA[*]}"
  exit 0
fi
if [ -n "$files" ]; then
  mkdir -p "$SITE"
  if $PY -m pip --version >/dev/null 2>&1; then
    $PY -m pip install -q --no-index --no-deps --target "$SITE" $files >>"$LOG" 2>&1 \
      || say "warning: some wheels did not install (see $LOG)"
  else
    # No pip here: a wheel is a zip whose top level goes on the path as it is.
    say "no pip in this Python: unpacking the wheels into $SITE"
    for f in $files; do
      $PY -m zipfile -e "$f" "$SITE" >>"$LOG" 2>&1 || say "warning: cannot unpack $f"
    done
  fi
fi
$PY -c "import faiss" >>"$LOG" 2>&1 || say "warning: faiss does not import here (faiss-gpu-cu12 \
needs numpy >= 2 and CUDA 12 libraries; fetch with --cpu-faiss for this machine): \
\`curator embed\` cannot sync its index, faiss figures will be missing"
command -v nvidia-smi >/dev/null && nvidia-smi -L | tee -a "$LOG"

# 3. The tests marked gpu (they skip without CUDA, so on CPU this proves only collection).
cd "$ROOT"
timeout 120 $PY -m pytest -q -p no:cacheprovider -m gpu -o addopts="--import-mode=importlib" \
  tests/indexing/test_gpu_paths.py >>"$LOG" 2>&1
status=$?
tests=$(tail -1 "$LOG")
say "tests marked gpu: $tests (exit $status)"

# 4. The figures.
timeout "${BENCH_TIMEOUT:-330}" $PY bench/gpu_bench.py --device "$DEVICE" $SMOKE --out "$OUT" "${EXTRA[@]}" 2>&1 \
  | tee -a "$LOG"
{ echo; echo "tests marked gpu: $tests (exit $status)"; } >> "$OUT"
say "figures: $OUT (log: $LOG)"
