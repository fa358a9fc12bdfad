# Curator: `make demo` and `make test` set everything up on a fresh Debian/Ubuntu machine.

PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
STAMP  := $(VENV)/.installed
# Debian packages the app needs at run time: QtMultimedia needs libpulse0; the Qt xcb platform
# (screenshots under Xvfb) needs the xcb/wayland helper libraries; xvfb + xauth for xvfb-run.
SYSTEM_PACKAGES := libpulse0 libxcb-icccm4 libxcb-keysyms1 libxcb-cursor0 libwayland-cursor0 \
                   libwayland-egl1 libxkbcommon-x11-0 libegl1 libgl1 libfontconfig1 libdbus-1-3 \
                   xvfb xauth

# The desktop bundle's flavour: lite (no torch: the classic embedder) or full (CLIP and CLAP).
FLAVOUR ?= lite
# ARCHIVE=0 leaves the bundle as a folder (CI runs it from there) instead of a .tar.gz too.
ARCHIVE ?= 1

.PHONY: help setup system-packages demo test lint bench screenshots clean package appimage \
        test-package test-lowest test-tool-install test-pipx-install consumers gpu-check

help:
	@echo "make demo   - set up, then run the main job on a generated sample corpus (./demo)"
	@echo "make test   - set up, then run the import-layering check and the test suite"
	@echo "make bench  - run every benchmark in bench/ (about an hour; figures in docs/benchmarks.md)"
	@echo "make screenshots - run the desktop app under Xvfb on the sample corpus, write docs/*.png"
	@echo "make package [FLAVOUR=lite|full] - build the one-folder desktop bundle (docs/packaging.md)"
	@echo "make appimage [FLAVOUR=lite|full] - the bundle as an AppImage (needs appimagetool)"
	@echo "make test-package - build the lite bundle and run its CLI, demo and app (CI step)"
	@echo "make test-lowest - the lowest allowed dependency versions pass a smoke subset (CI step)"
	@echo "make test-tool-install - \`uv tool install .\` gives working curator commands (CI step)"
	@echo "make test-pipx-install - \`pipx install .\` gives working curator commands (CI step)"

system-packages:
	@missing=""; for p in $(SYSTEM_PACKAGES); do \
	  dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = "0" ]; then \
	    echo "installing system packages:$$missing"; \
	    DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
	    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	  else \
	    echo "missing system packages; run:  sudo apt-get install -y$$missing"; \
	  fi; \
	fi

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip setuptools wheel
	$(PIP) install -q -e '.[dev]'
	touch $(STAMP)

setup: system-packages $(STAMP)

demo: setup
	$(VENV)/bin/curator demo demo

lint: setup
	$(VENV)/bin/lint-imports
	$(VENV)/bin/ruff check .

test: setup lint consumers
	QT_QPA_PLATFORM=offscreen $(PY) -m pytest -q -p no:cacheprovider

# Consumer tools that load our exports in tests/consumers/, each in its own venv so their pins
# never meet the app's. Built once and rebuilt only when a requirements file changes; pip's
# cache makes a rebuild cheap. Cold install times are in docs/exports.md.
CONSUMERS := consumers datasets3 fiftyone labelstudio
consumers: $(foreach c,$(CONSUMERS),.venv-$(c)/.installed)

.venv-%/.installed: tests/consumers/requirements/%.txt
	test -x .venv-$*/bin/python || $(PYTHON) -m venv .venv-$*
	.venv-$*/bin/pip install -q -r $<
	touch $@

bench: setup
	$(PY) bench/scan.py
	$(PY) bench/embed.py
	$(PY) bench/cluster.py --sizes 100k,1M
	$(PY) bench/search.py --n 1000000
	$(PY) bench/search_index.py --n 1000000
	$(PY) bench/suggest.py
	$(PY) bench/map.py --n 1000000
	$(PY) bench/labels.py
	QT_QPA_PLATFORM=offscreen $(PY) bench/gui.py
	$(PY) bench/ray_embed.py --items 300

# On a machine with one NVIDIA GPU (no network needed once bench/fetch_gpu_wheels.sh has run).
gpu-check:
	PYTHON=$(PYTHON) bench/gpu_check.sh

screenshots: setup
	xvfb-run -a -s "-screen 0 1600x1000x24" $(PY) -m ui.screenshots docs

package: system-packages
	FLAVOUR=$(FLAVOUR) PYTHON=$(PYTHON) ARCHIVE=$(ARCHIVE) packaging/build.sh

appimage: package
	FLAVOUR=$(FLAVOUR) packaging/linux/appimage.sh

test-package: package
	FLAVOUR=$(FLAVOUR) packaging/ci/bundle_smoke.sh

test-lowest: system-packages
	PYTHON=$(PYTHON) packaging/ci/lowest_versions.sh

test-tool-install:
	PYTHON=$(PYTHON) packaging/ci/tool_install.sh

test-pipx-install:
	PYTHON=$(PYTHON) packaging/ci/pipx_install.sh

clean:
	rm -rf demo .pytest_cache build *.egg-info
	rm -rf $(foreach c,$(CONSUMERS),.venv-$(c))
