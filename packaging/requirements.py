"""Print the app's run-time requirements for one bundle flavour, read from pyproject.toml.

lite drops the ML runtimes (torch arrives through open-clip-torch; transformers for CLAP), so the
bundle has only the weight-free `classic` embedder; full keeps everything.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]
# Distributions that pull in torch (or only make sense with it).
ML_RUNTIMES = {"open-clip-torch", "transformers", "torch", "torchvision", "timm"}


def requirements(flavour: str) -> list[str]:
    """The dependency strings of pyproject.toml, less the ML runtimes for lite."""
    data = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    deps = list(data["project"]["dependencies"])
    if flavour == "lite":
        deps = [d for d in deps if _name(d) not in ML_RUNTIMES]
    return deps


def _name(requirement: str) -> str:
    return re.split(r"[\s<>=!~;\[]", requirement, maxsplit=1)[0].strip().lower().replace("_", "-")


if __name__ == "__main__":
    flavour = sys.argv[1] if len(sys.argv) > 1 else "lite"
    if flavour not in ("lite", "full"):
        sys.exit(f"unknown flavour {flavour!r}; lite or full")
    print("\n".join(requirements(flavour)))
