"""Drawing a 2-D map of up to millions of points as an RGBA raster, with NumPy only (no Qt here).

At overview the map is a density raster: every point is binned into its pixel with `bincount`,
pixel colour is the mean colour of its points and opacity grows with the log of their count. Zoomed
in, when few enough points are visible, the visible ones (found through a uniform grid index, not a
scan) are drawn as dots. Both run on a worker thread; the canvas only blits the finished image.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np

POINT_LIMIT = 60_000  # draw dots below this many visible points, a density raster above


@dataclass(frozen=True)
class View:
    """The data rectangle on screen: x0..x1 left to right, y0..y1 bottom to top."""

    x0: float
    y0: float
    x1: float
    y1: float

    @property
    def width(self) -> float:
        return self.x1 - self.x0

    @property
    def height(self) -> float:
        return self.y1 - self.y0

    def key(self, digits: int = 6) -> tuple:
        return tuple(round(v, digits) for v in (self.x0, self.y0, self.x1, self.y1))


class GridIndex:
    """Points bucketed into a uniform grid, so a rectangle's points are a few contiguous slices.

    Args:
        xy: (n, 2) float32 coordinates.
        cells: grid cells per side.
    """

    def __init__(self, xy: np.ndarray, cells: int = 512) -> None:
        self.xy = np.ascontiguousarray(xy, dtype=np.float32)
        self.cells = cells
        n = len(self.xy)
        if n:
            lo = self.xy.min(axis=0)
            hi = self.xy.max(axis=0)
        else:
            lo = np.zeros(2, np.float32)
            hi = np.ones(2, np.float32)
        span = np.maximum(hi - lo, 1e-9)
        self.lo = lo.astype(np.float64)
        self.hi = hi.astype(np.float64)
        self.cell = span.astype(np.float64) / cells
        keys = self._cell_keys(self.xy)
        counts = np.bincount(keys, minlength=cells * cells)
        self.starts = np.zeros(cells * cells + 1, np.int64)
        np.cumsum(counts, out=self.starts[1:])
        self.order = np.argsort(keys).astype(np.int64)  # order within a cell does not matter

    def _cell_keys(self, xy: np.ndarray) -> np.ndarray:
        c = self.cells
        ix = np.clip(((xy[:, 0] - self.lo[0]) / self.cell[0]).astype(np.int64), 0, c - 1)
        iy = np.clip(((xy[:, 1] - self.lo[1]) / self.cell[1]).astype(np.int64), 0, c - 1)
        return iy * c + ix

    def _cell_range(self, view: View) -> Optional[tuple[int, int, int, int]]:
        c = self.cells
        ix0 = int(np.floor((view.x0 - self.lo[0]) / self.cell[0]))
        ix1 = int(np.floor((view.x1 - self.lo[0]) / self.cell[0]))
        iy0 = int(np.floor((view.y0 - self.lo[1]) / self.cell[1]))
        iy1 = int(np.floor((view.y1 - self.lo[1]) / self.cell[1]))
        if ix1 < 0 or iy1 < 0 or ix0 >= c or iy0 >= c:
            return None
        return max(ix0, 0), min(ix1, c - 1), max(iy0, 0), min(iy1, c - 1)

    def count(self, view: View) -> int:
        """Points in the cells the view touches (an upper bound of the visible points)."""
        r = self._cell_range(view)
        if r is None:
            return 0
        ix0, ix1, iy0, iy1 = r
        rows = np.arange(iy0, iy1 + 1) * self.cells
        return int((self.starts[rows + ix1 + 1] - self.starts[rows + ix0]).sum())

    def query(self, view: View) -> np.ndarray:
        """Indices of the points in the cells the view touches."""
        r = self._cell_range(view)
        if r is None:
            return np.zeros(0, np.int64)
        ix0, ix1, iy0, iy1 = r
        if ix0 == 0 and iy0 == 0 and ix1 == self.cells - 1 and iy1 == self.cells - 1:
            return self.order
        rows = np.arange(iy0, iy1 + 1) * self.cells
        lo = self.starts[rows + ix0]
        hi = self.starts[rows + ix1 + 1]
        if ix0 == 0 and ix1 == self.cells - 1:
            return self.order[lo[0]:hi[-1]]
        parts = [self.order[a:b] for a, b in zip(lo.tolist(), hi.tolist(), strict=True)]
        return np.concatenate(parts) if parts else np.zeros(0, np.int64)

    def nearest(self, x: float, y: float, radius: float) -> Optional[int]:
        """The index of the point nearest (x, y) within `radius` data units, or None."""
        view = View(x - radius, y - radius, x + radius, y + radius)
        cand = self.query(view)
        if len(cand) == 0:
            return None
        d = (self.xy[cand, 0] - x) ** 2 + (self.xy[cand, 1] - y) ** 2
        best = int(np.argmin(d))
        if d[best] > radius * radius:
            return None
        return int(cand[best])


@dataclass(frozen=True)
class Raster:
    """A rendered view: an RGBA image (h, w, 4) uint8 and how it was drawn."""

    rgba: np.ndarray
    view: View
    mode: str  # density or points
    visible: int


def fit_view(xy: np.ndarray, width: int, height: int, margin: float = 0.04) -> View:
    """The view that shows every point with the widget's aspect ratio."""
    if len(xy) == 0:
        return View(-1.0, -1.0, 1.0, 1.0)
    lo = xy.min(axis=0).astype(np.float64)
    hi = xy.max(axis=0).astype(np.float64)
    span = np.maximum(hi - lo, 1e-6)
    lo, hi = lo - span * margin, hi + span * margin
    span = hi - lo
    aspect = width / max(height, 1)
    if span[0] / span[1] < aspect:
        grow = span[1] * aspect - span[0]
        lo[0] -= grow / 2
        hi[0] += grow / 2
    else:
        grow = span[0] / aspect - span[1]
        lo[1] -= grow / 2
        hi[1] += grow / 2
    return View(float(lo[0]), float(lo[1]), float(hi[0]), float(hi[1]))


def _pixels(xy: np.ndarray, view: View, width: int, height: int) -> tuple[np.ndarray, np.ndarray,
                                                                           np.ndarray]:
    sx = width / view.width
    sy = height / view.height
    px = ((xy[:, 0] - view.x0) * sx).astype(np.int32)
    py = ((view.y1 - xy[:, 1]) * sy).astype(np.int32)
    inside = (px >= 0) & (px < width) & (py >= 0) & (py < height)
    return px, py, inside


class DensityPyramid:
    """Density images of all the points at 2048² bins and coarser levels, ready to slice.

    Built once per colouring (a few bincounts over all points, then per-level images of mean
    colour and log-density opacity); a density raster of any view is then a slice of the right
    level, so its cost follows the pixels on screen, not the number of points.

    Args:
        index: the points (its bounds define the bins).
        colours: (n, 3) uint8 colour per point.
        size: bins per side at the finest level (a power of two).
    """

    def __init__(self, index: GridIndex, colours: np.ndarray, size: int = 2048) -> None:
        self.lo = index.lo
        self.span = np.maximum(index.hi - index.lo, 1e-9)
        self.levels: list[tuple[int, np.ndarray]] = []  # (bins per side, rgba rows bottom-up)
        xy = index.xy
        s = size
        ix = np.clip(((xy[:, 0] - self.lo[0]) * (s / self.span[0])).astype(np.int32), 0, s - 1)
        iy = np.clip(((xy[:, 1] - self.lo[1]) * (s / self.span[1])).astype(np.int32), 0, s - 1)
        flat = iy * np.int32(s) + ix
        count = np.bincount(flat, minlength=s * s).astype(np.float32).reshape(s, s)
        sums = [np.bincount(flat, weights=colours[:, c], minlength=s * s).astype(np.float32)
                .reshape(s, s) for c in range(3)]
        while True:
            self.levels.append((s, _density_image(count, sums, _top(count))))
            if s <= 64:
                break
            count = _halve(count)
            sums = [_halve(a) for a in sums]
            s //= 2

    @property
    def finest_bin(self) -> float:
        """The width of one bin of the finest level, in data units."""
        return float(self.span[0] / self.levels[0][0])

    def render(self, view: View, width: int) -> Optional[tuple[np.ndarray, View]]:
        """A density raster of (about) the view at screen resolution, and the exact data
        rectangle it covers; None when the view is too far zoomed in for the finest level."""
        pixel = view.width / max(width, 1)
        # The coarsest level whose bins are at most 2 pixels wide (sharp enough, and as small
        # as can be); when zoomed in past the finest level, bins of up to 4 pixels still beat
        # binning hundreds of thousands of points again.
        chosen = None
        for s, image in self.levels:
            if self.span[0] / s <= 2 * pixel:
                chosen = (s, image)
            else:
                break
        if chosen is None and self.span[0] / self.levels[0][0] <= 4 * pixel:
            chosen = self.levels[0]
        if chosen is None:
            return None
        s, image = chosen
        bx, by = self.span[0] / s, self.span[1] / s
        ix0 = max(int(np.floor((view.x0 - self.lo[0]) / bx)), 0)
        ix1 = min(int(np.ceil((view.x1 - self.lo[0]) / bx)), s)
        iy0 = max(int(np.floor((view.y0 - self.lo[1]) / by)), 0)
        iy1 = min(int(np.ceil((view.y1 - self.lo[1]) / by)), s)
        if ix1 <= ix0 or iy1 <= iy0:
            return None
        rgba = np.ascontiguousarray(image[iy0:iy1, ix0:ix1][::-1])
        covered = View(float(self.lo[0] + ix0 * bx), float(self.lo[1] + iy0 * by),
                       float(self.lo[0] + ix1 * bx), float(self.lo[1] + iy1 * by))
        return rgba, covered


def _density_image(count: np.ndarray, sums: list[np.ndarray], top: float) -> np.ndarray:
    """RGBA per bin: the mean colour of its points, opacity rising with the log of their count."""
    rgba = np.zeros(count.shape + (4,), np.uint8)
    safe = np.maximum(count, 1.0)
    for ch in range(3):
        rgba[:, :, ch] = np.minimum(sums[ch] / safe, 255)
    alpha = 80 + 175 * np.minimum(np.log1p(count) * (1.0 / np.log1p(top)), 1.0)
    rgba[:, :, 3] = np.where(count > 0, alpha, 0)
    return rgba


def render(index: GridIndex, colours: np.ndarray, view: View, width: int, height: int,
           selected: Optional[np.ndarray] = None, point_limit: int = POINT_LIMIT,
           pyramid: Optional[DensityPyramid] = None) -> Raster:
    """Render the points of `index` seen through `view`.

    Dots when at most `point_limit` points are in view; otherwise a density raster, from the
    pyramid when it is fine enough for this zoom (then the raster covers a bin-aligned
    rectangle around the view, at about screen resolution), else binned from the visible points.

    Args:
        index: the points and their grid.
        colours: (n, 3) uint8 colour per point.
        view: the data rectangle on screen; width, height: the screen size in pixels.
        selected: indices of selected points, drawn as white-ringed dots on top.
        pyramid: precomputed density levels for this colouring.

    Returns:
        The raster, the data rectangle it covers, and the mode used.
    """
    width, height = max(1, int(width)), max(1, int(height))
    visible = index.count(view)
    if visible == 0:
        return Raster(np.zeros((height, width, 4), np.uint8), view, "points", 0)
    if visible > point_limit and pyramid is not None and (selected is None or not len(selected)):
        done = pyramid.render(view, width)
        if done is not None:
            return Raster(done[0], done[1], "density", visible)
    rgba = np.zeros((height, width, 4), np.uint8)
    cand = index.query(view)
    if visible <= point_limit:
        xy = index.xy[cand]
        px, py, inside = _pixels(xy, view, width, height)
        px, py, idx = px[inside], py[inside], cand[inside]
        radius = 3 if len(idx) < 2000 else 2 if len(idx) < 8000 else 1
        _dots(rgba, px, py, colours[idx], radius)
        mode = "points"
        shown = len(idx)
    else:
        everything = len(cand) == len(index.xy)
        _density(rgba, index.xy if everything else index.xy[cand],
                 colours if everything else colours[cand], view, width, height)
        mode = "density"
        shown = int(len(cand))
    if selected is not None and len(selected):
        sel = np.asarray(selected, np.int64)
        if len(sel) > 200_000:
            sel = sel[:: len(sel) // 200_000 + 1]
        px, py, inside = _pixels(index.xy[sel], view, width, height)
        px, py = px[inside], py[inside]
        _dots(rgba, px, py, np.full((len(px), 3), 255, np.uint8), 2)
        _dots(rgba, px, py, colours[sel[inside]], 1)
    return Raster(rgba, view, mode, shown)


def _halve(a: np.ndarray) -> np.ndarray:
    return a[0::2, 0::2] + a[1::2, 0::2] + a[0::2, 1::2] + a[1::2, 1::2]


def _top(count: np.ndarray) -> float:
    """The 99th percentile of the non-empty bins (from a sample): where opacity saturates."""
    hit = count[count > 0]
    if len(hit) > 200_000:
        hit = hit[:: len(hit) // 200_000]
    if len(hit) <= 100:
        return max(float(count.max()), 1.0)
    return max(float(np.percentile(hit, 99)), 1.0)


def pack_rgba(colours: np.ndarray) -> np.ndarray:
    """(n, 3) uint8 colours as opaque RGBA8888 pixels in one uint32 each (memory order R,G,B,A)."""
    packed = np.empty((len(colours), 4), np.uint8)
    packed[:, :3] = colours
    packed[:, 3] = 255
    return packed.view(np.uint32).reshape(-1)


def _dots(rgba: np.ndarray, px: np.ndarray, py: np.ndarray, colours: np.ndarray,
          radius: int) -> None:
    h, w = rgba.shape[:2]
    flat = rgba.view(np.uint32).reshape(-1)
    packed = pack_rgba(colours)
    for dy in range(-radius, radius + 1):
        y = np.clip(py + dy, 0, h - 1) * w
        for dx in range(-radius, radius + 1):
            if radius >= 2 and abs(dx) == radius and abs(dy) == radius:
                continue  # round the corners of the bigger dots
            flat[y + np.clip(px + dx, 0, w - 1)] = packed


def _density(rgba: np.ndarray, xy: np.ndarray, colours: np.ndarray, view: View, width: int,
             height: int) -> None:
    px, py, inside = _pixels(xy, view, width, height)
    flat = (py[inside].astype(np.int64) * width + px[inside])
    n_pix = width * height
    count = np.bincount(flat, minlength=n_pix).astype(np.float32)
    hit = count > 0
    if not hit.any():
        return
    col = colours[inside]
    out = rgba.reshape(-1, 4)
    for c in range(3):
        total = np.bincount(flat, weights=col[:, c], minlength=n_pix)
        out[hit, c] = np.clip(total[hit] / count[hit], 0, 255).astype(np.uint8)
    top = float(np.percentile(count[hit], 99)) if hit.sum() > 100 else float(count.max())
    scale = np.log1p(count[hit]) / np.log1p(max(top, 1.0))
    out[hit, 3] = (80 + 175 * np.clip(scale, 0, 1)).astype(np.uint8)


def points_in_polygon(xy: np.ndarray, polygon: np.ndarray) -> np.ndarray:
    """A boolean mask of the points inside a closed polygon (even-odd rule).

    Args:
        xy: (n, 2) points.
        polygon: (m, 2) vertices, m >= 3, in the same coordinates.
    """
    polygon = np.asarray(polygon, np.float64)
    x = xy[:, 0].astype(np.float64)
    y = xy[:, 1].astype(np.float64)
    inside = np.zeros(len(xy), bool)
    if len(polygon) < 3:
        return inside
    xj, yj = polygon[-1]
    for xi, yi in polygon:
        crosses = (yi > y) != (yj > y)
        if crosses.any():
            at = (xj - xi) * (y[crosses] - yi) / ((yj - yi) or 1e-300) + xi
            flip = np.zeros(len(xy), bool)
            flip[crosses] = x[crosses] < at
            inside ^= flip
        xj, yj = xi, yi
    return inside


def lasso(index: GridIndex, polygon: np.ndarray) -> np.ndarray:
    """Indices of the points inside a polygon (data coordinates): grid, then an exact test."""
    polygon = np.asarray(polygon, np.float64)
    if len(polygon) < 3:
        return np.zeros(0, np.int64)
    lo = polygon.min(axis=0)
    hi = polygon.max(axis=0)
    cand = index.query(View(float(lo[0]), float(lo[1]), float(hi[0]), float(hi[1])))
    if len(cand) == 0:
        return cand
    xy = index.xy[cand]
    box = (xy[:, 0] >= lo[0]) & (xy[:, 0] <= hi[0]) & (xy[:, 1] >= lo[1]) & (xy[:, 1] <= hi[1])
    cand = cand[box]
    mask = points_in_polygon(index.xy[cand], polygon)
    return np.sort(cand[mask])


def hex_to_rgb(colour: Optional[str], default: tuple[int, int, int] = (150, 150, 150)
               ) -> tuple[int, int, int]:
    if not colour or not colour.startswith("#") or len(colour) != 7:
        return default
    try:
        return int(colour[1:3], 16), int(colour[3:5], 16), int(colour[5:7], 16)
    except ValueError:
        return default


PALETTE = np.array([
    (31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189),
    (140, 86, 75), (227, 119, 194), (188, 189, 34), (23, 190, 207), (174, 199, 232),
    (255, 187, 120), (152, 223, 138), (255, 152, 150), (197, 176, 213), (196, 156, 148),
    (247, 182, 210), (219, 219, 141), (158, 218, 229), (57, 59, 121), (99, 121, 57),
], np.uint8)


def categorical_colours(codes: np.ndarray, unknown: tuple[int, int, int] = (120, 120, 120)
                        ) -> np.ndarray:
    """(n, 3) uint8 colours for integer categories (negative = none), from a fixed palette."""
    codes = np.asarray(codes, np.int64)
    out = PALETTE[np.abs(codes) % len(PALETTE)].copy()
    out[codes < 0] = unknown
    return out
