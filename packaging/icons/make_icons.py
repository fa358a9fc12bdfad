"""Render the app icon (packaging/icons/curator.svg) to the PNG, ICO and ICNS files bundles need.

    python packaging/icons/make_icons.py [--out DIR] [--app-resources]

Writes curator-<size>.png for the freedesktop sizes, curator.ico (Windows: 16-256) and
curator.icns (macOS) into DIR (default build/icons). --app-resources also refreshes the PNGs
the desktop app loads at run time (ui/resources/, committed). Renders with Qt's SVG renderer
(PySide6, already a dependency) and packs ICO/ICNS with Pillow.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
SVG = HERE / "curator.svg"
PNG_SIZES = (16, 24, 32, 48, 64, 128, 256, 512)
APP_RESOURCE_SIZES = (16, 32, 64, 128, 256)
ICO_SIZES = (16, 24, 32, 48, 64, 128, 256)


def render(svg: Path, size: int, out: Path) -> Path:
    """One square PNG of the SVG at `size` pixels, antialiased, on a transparent background."""
    from PySide6.QtCore import Qt
    from PySide6.QtGui import QImage, QPainter
    from PySide6.QtSvg import QSvgRenderer

    renderer = QSvgRenderer(str(svg))
    if not renderer.isValid():
        raise SystemExit(f"{svg}: not a valid SVG")
    image = QImage(size, size, QImage.Format_ARGB32)
    image.fill(Qt.transparent)
    painter = QPainter(image)
    painter.setRenderHint(QPainter.Antialiasing)
    painter.setRenderHint(QPainter.SmoothPixmapTransform)
    renderer.render(painter)
    painter.end()
    out.parent.mkdir(parents=True, exist_ok=True)
    if not image.save(str(out), "PNG"):
        raise SystemExit(f"could not write {out}")
    return out


def make_icons(out: Path, app_resources: bool = False) -> list[Path]:
    """Write every icon file; returns their paths."""
    from PIL import Image

    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6.QtGui import QGuiApplication

    _app = QGuiApplication.instance() or QGuiApplication(["make_icons"])
    written = [render(SVG, s, out / f"curator-{s}.png") for s in PNG_SIZES]
    big = Image.open(out / "curator-512.png").convert("RGBA")
    big.save(out / "curator.ico", sizes=[(s, s) for s in ICO_SIZES])
    big.save(out / "curator.icns")
    written += [out / "curator.ico", out / "curator.icns"]
    if app_resources:
        res = ROOT / "ui" / "resources"
        written += [render(SVG, s, res / f"curator-{s}.png") for s in APP_RESOURCE_SIZES]
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "build" / "icons")
    parser.add_argument("--app-resources", action="store_true",
                        help="also refresh ui/resources/curator-*.png")
    args = parser.parse_args(argv)
    for path in make_icons(args.out, args.app_resources):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
