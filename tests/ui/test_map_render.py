"""Map rasters without Qt: the grid index, the lasso, dots and density, against brute force."""

from __future__ import annotations

import numpy as np
import pytest

from ui import map_render as mr


@pytest.fixture(scope="module")
def points():
    rng = np.random.default_rng(0)
    centres = rng.normal(0, 5, (40, 2))
    group = rng.integers(0, 40, 20_000)
    xy = (centres[group] + rng.normal(0, 0.4, (20_000, 2))).astype(np.float32)
    return xy, group


def _inside(xy, v):
    return np.flatnonzero((xy[:, 0] >= v.x0) & (xy[:, 0] <= v.x1) & (xy[:, 1] >= v.y0) &
                          (xy[:, 1] <= v.y1))


def test_grid_query_covers_exactly_the_points_in_view(points):
    xy, _ = points
    index = mr.GridIndex(xy, cells=64)
    for view in (mr.View(-3, -2, 4, 1), mr.View(-100, -100, 100, 100), mr.View(50, 50, 60, 60),
                 mr.View(0.1, 0.1, 0.2, 0.2)):
        found = index.query(view)
        assert len(found) == index.count(view)
        assert set(_inside(xy, view)) <= set(found.tolist())  # a superset: whole cells
        cell = index.cell.max()
        grown = mr.View(view.x0 - cell, view.y0 - cell, view.x1 + cell, view.y1 + cell)
        assert set(found.tolist()) <= set(_inside(xy, grown))  # but no cell beyond the view


def test_nearest_and_lasso_agree_with_brute_force(points):
    xy, _ = points
    index = mr.GridIndex(xy, cells=128)
    x, y = float(xy[123, 0]) + 0.01, float(xy[123, 1])
    d = (xy[:, 0] - x) ** 2 + (xy[:, 1] - y) ** 2
    assert index.nearest(x, y, 0.5) == int(np.argmin(d))
    assert index.nearest(1000.0, 1000.0, 0.5) is None
    triangle = np.array([[-4.0, -4.0], [5.0, -3.0], [0.0, 6.0]])
    chosen = mr.lasso(index, triangle)
    assert np.array_equal(chosen, np.flatnonzero(mr.points_in_polygon(xy, triangle)))
    # The even-odd test itself, on a square whose answer is obvious.
    square = np.array([[0, 0], [1, 0], [1, 1], [0, 1]], float)
    probe = np.array([[0.5, 0.5], [1.5, 0.5], [0.5, -0.1], [0.99, 0.01]], np.float32)
    assert mr.points_in_polygon(probe, square).tolist() == [True, False, False, True]


def test_overview_is_a_density_raster_and_zoom_shows_dots(points):
    xy, group = points
    index = mr.GridIndex(xy)
    colours = mr.categorical_colours(group)
    pyramid = mr.DensityPyramid(index, colours, size=512)
    view = mr.fit_view(xy, 400, 300)
    dense = mr.render(index, colours, view, 400, 300, point_limit=1000, pyramid=pyramid)
    assert dense.mode == "density" and dense.visible == len(xy)
    assert (dense.rgba[..., 3] > 0).sum() > 500
    # Every level covers the same points: the same bins are lit, only coarser.
    lit = [(image[..., 3] > 0).sum() for _, image in pyramid.levels]
    assert lit == sorted(lit, reverse=True) and lit[-1] > 0
    # A bin's colour is the mean of its points' colours; more points, more opaque.
    few = np.array([[0, 0], [0, 0], [0, 0], [10, 10]], np.float32)
    paint = np.array([[255, 0, 0], [255, 0, 0], [0, 0, 255], [0, 255, 0]], np.uint8)
    s, image = mr.DensityPyramid(mr.GridIndex(few, cells=4), paint, size=64).levels[0]
    crowded, single = image[0, 0], image[-1, -1]
    assert tuple(crowded[:3]) == (170, 0, 85) and tuple(single[:3]) == (0, 255, 0)
    assert crowded[3] > single[3] > 0 and (image[..., 3] > 0).sum() == 2
    x, y = xy[0]
    near = mr.View(float(x) - 0.3, float(y) - 0.3, float(x) + 0.3, float(y) + 0.3)
    dots = mr.render(index, colours, near, 200, 200, pyramid=pyramid)
    assert dots.mode == "points" and dots.visible >= 1
    # The first point is drawn in its own colour at the centre of the view.
    assert tuple(dots.rgba[100, 100, :3]) in {tuple(c) for c in colours[_inside(xy, near)]}
    assert dots.rgba[100, 100, 3] == 255


def test_selected_points_are_ringed(points):
    xy, group = points
    index = mr.GridIndex(xy)
    colours = np.zeros((len(xy), 3), np.uint8)
    view = mr.fit_view(xy, 300, 300)
    plain = mr.render(index, colours, view, 300, 300, point_limit=10**6)
    ringed = mr.render(index, colours, view, 300, 300, selected=np.arange(50), point_limit=10**6)
    white = (ringed.rgba[..., :3] == 255).all(axis=-1).sum()
    assert white > 0 and (plain.rgba[..., :3] == 255).all(axis=-1).sum() == 0
