"""The SVG/HTML figures (ui/svgplot.py, ui/figures.py): contours on the level set, honest ticks and ellipses,
pixels that round-trip, and text that cannot break out of the markup."""

from __future__ import annotations

import base64
import io
import math
import re
import threading

import numpy as np
import pytest
from PIL import Image

from ui import figures, svgplot


def test_contour_segments_lie_on_the_level_set():
    axis = np.linspace(-2, 2, 81)
    z1, z2 = np.meshgrid(axis, axis)
    field = np.hypot(z1, z2)  # rows along y, columns along x
    segments = svgplot.contour_segments(axis, axis, field, 1.0)
    radii = np.hypot(segments[..., 0], segments[..., 1])
    step = axis[1] - axis[0]
    assert len(segments) > 50
    np.testing.assert_allclose(radii, 1.0, atol=step**2)  # linear interpolation of a smooth field: O(h²)
    angles = np.arctan2(segments[..., 1], segments[..., 0]).ravel()
    assert np.histogram(angles, bins=8, range=(-math.pi, math.pi))[0].min() > 0  # the whole circle, no gap


def test_contour_of_a_level_outside_the_field_is_empty():
    axis = np.linspace(0, 1, 5)
    assert svgplot.contour_segments(axis, axis, np.zeros((5, 5)), 1.0).shape == (0, 2, 2)


@pytest.mark.parametrize("lo, hi", [(0.0, 1.0), (-3.7, 12.2), (-0.0021, 0.0013), (-5.9, -5.1), (1e3, 7e4)])
def test_ticks_are_round_and_inside_the_range(lo, hi):
    ticks, labels = svgplot.nice_ticks(lo, hi)
    assert 3 <= len(ticks) <= 11
    assert ticks.min() >= lo - 1e-12 and ticks.max() <= hi + 1e-12
    step = ticks[1] - ticks[0]
    mantissa = step / 10 ** math.floor(math.log10(step))
    assert any(math.isclose(mantissa, m, rel_tol=1e-6) for m in (1, 2, 2.5, 5))
    values = [float(label.replace(svgplot.MINUS, "-")) for label in labels]
    np.testing.assert_allclose(values, ticks, rtol=1e-9, atol=step * 1e-6)  # the labels say the tick values


def test_ellipse_radii_and_angle_follow_the_covariance():
    chart = svgplot.Chart(width=300, height=300, x_range=(-5, 5), y_range=(-5, 5), margin=(0, 0, 0, 0))
    rotation = np.array([[math.cos(0.5), -math.sin(0.5)], [math.sin(0.5), math.cos(0.5)]])
    covariance = rotation @ np.diag([4.0, 1.0]) @ rotation.T  # σ = 2 along 0.5 rad, σ = 1 across
    chart.ellipses([[1.0, 0.0]], [covariance], num_std=2.0, name="q")
    svg = chart.to_svg()
    attrs = dict(re.findall(r'(\w+)="([^"]*)"', re.search(r"<ellipse [^>]*>", svg).group(0)))
    scale = 300 / 10  # px per unit
    assert float(attrs["rx"]) == pytest.approx(2 * 2 * scale, rel=1e-3)
    assert float(attrs["ry"]) == pytest.approx(2 * 1 * scale, rel=1e-3)
    assert float(attrs["cx"]) == pytest.approx(6 * scale, abs=0.1)
    angle = float(re.match(r"rotate\(([-\d.]+)", attrs["transform"]).group(1))
    assert angle == pytest.approx(-math.degrees(0.5), abs=0.1) or angle == pytest.approx(180 - math.degrees(0.5),
                                                                                          abs=0.1)  # y points down


def test_series_keep_their_values_and_names_are_escaped():
    chart = svgplot.Chart(title="a <b> & c")
    chart.line([0, 1, 2], [0.5, -1.25, 3.0], name='<script>alert("x")</script>')
    html = chart.to_html()
    assert "<script>" not in html and "&lt;script&gt;" in html
    assert 'data-x="0,1,2"' in html and 'data-y="0.5,-1.25,3"' in html
    assert 'data-title="a &lt;b&gt; &amp; c"' in html


def test_image_grid_pixels_round_trip_as_bytes():
    rng = np.random.default_rng(0)
    images = rng.random((3, 6 * 4))  # three 6×4 images in [0, 1]
    images[0, 0], images[0, 1] = -0.3, 1.7  # outside [0, 1]: black and white
    html = figures.image_grid([images], (6, 4), ["row"], col_labels=["a", "b", "c"], cell_text=[["1", "2", "3"]])
    found = re.findall(r'src="data:image/png;base64,([^"]+)"', html)
    assert len(found) == 3
    for data, image in zip(found, images):
        pixels = np.asarray(Image.open(io.BytesIO(base64.b64decode(data))))
        np.testing.assert_array_equal(pixels, np.round(np.clip(image, 0, 1) * 255).reshape(6, 4))
    assert html.count('class="cell-text"') == 3


def test_training_threads_are_counted_without_building_the_registry():
    from ui.boot import training_threads

    before = training_threads()
    release = threading.Event()
    thread = threading.Thread(target=release.wait, name="train-0123456789", daemon=True)
    thread.start()
    try:
        assert training_threads() == before + 1
    finally:
        release.set()
        thread.join()
    assert training_threads() == before


def test_the_plotly_download_carries_the_svg_figures_labels():
    """The classroom pages draw SVG and download plotly: same title, axis titles and legend entries."""
    from html import unescape
    from types import SimpleNamespace

    rng = np.random.default_rng(0)
    angles = np.linspace(0, 2 * np.pi, 16)
    circle = np.stack([np.cos(angles), np.sin(angles)], axis=-1)
    means = rng.normal(size=(5, 2))
    view = SimpleNamespace(
        component_mean2=means, component_cov2=np.tile(np.eye(2) * 0.1, (5, 1, 1)),
        component_ellipses=means[:, None] + 0.6 * circle, clean_mean2=np.zeros(2), clean_cov2=np.eye(2) * 0.2,
        clean_ellipse=0.9 * circle, mixture_samples2=rng.normal(size=(400, 2)),
        axis_titles=("PC 1 of encoder means (latent units)", "PC 2 of encoder means (latent units)"))
    svg = figures.posterior_figure(view, "mnist-dvae (DVAE)")
    fig = figures.plotly().posterior_figure(view, "mnist-dvae (DVAE)")
    assert fig.layout.title.text == "mnist-dvae (DVAE)" and 'data-title="mnist-dvae (DVAE)"' in svg
    assert (fig.layout.xaxis.title.text, fig.layout.yaxis.title.text) == view.axis_titles
    assert [unescape(t) for t in re.findall(r'<text class="[xy]-title"[^>]*>([^<]*)</text>', svg)] == list(
        view.axis_titles)
    svg_legend = {unescape(t) for legend in re.findall(r'<div class="legend"[^>]*>(.*?)</div>', svg)
                  for t in re.findall(r"<span>([^<]*)</span>", legend)}
    assert {t.name for t in fig.data if t.showlegend is not False} == svg_legend


def _path_points(d: str) -> list[list[tuple[float, float]]]:
    """The sub-paths of an SVG path written by Chart._path, as lists of (x, y)."""
    return [[tuple(float(v) for v in p.split(",")) for p in run.split(" L")] for run in d[1:].split(" M")] if d else []


def _on_polyline(point, polyline) -> bool:
    """Whether ``point`` lies on the polyline (to the path's 0.1 px precision)."""
    px, py = point
    if len(polyline) == 1:  # a lone finite point between missing values: "Mx,y"
        return polyline[0] == point
    for (x0, y0), (x1, y1) in zip(polyline, polyline[1:]):
        if min(x0, x1) - 1e-9 <= px <= max(x0, x1) + 1e-9 and min(y0, y1) - 1e-9 <= py <= max(y0, y1) + 1e-9:
            cross = (x1 - x0) * (py - y0) - (y1 - y0) * (px - x0)
            if abs(cross) < 1e-6:
                return True
    return False


@pytest.mark.parametrize("seed", range(5))
def test_a_line_path_leaves_out_only_points_on_the_drawn_line(seed):
    rng = np.random.default_rng(seed)
    xs = np.linspace(0, 600, 2001)
    ys = np.where(rng.random(2001) < 0.7, 300.0, 300 - 200 * rng.random(2001))  # flat tails and spikes
    ys[rng.random(2001) < 0.02] = np.nan  # a missing value breaks the line
    d = svgplot.Chart._path(xs, ys)
    runs = _path_points(d)
    finite = np.isfinite(ys)
    assert len(runs) == len(np.flatnonzero(np.diff(np.concatenate([[0], finite.astype(int), [0]])))) // 2
    drawn = [p for run in runs for p in run]
    assert len(drawn) < finite.sum()  # the flat stretches were thinned
    for x, y in zip(np.round(xs[finite], 1), np.round(ys[finite], 1)):  # ...and every point is still on the line
        assert any(_on_polyline((x, y), run) for run in runs)
    # each sub-path starts and ends on the first and last point of its finite run
    starts = np.flatnonzero(finite & ~np.concatenate([[False], finite[:-1]]))
    assert [run[0] for run in runs] == [(round(xs[i], 1), round(ys[i], 1)) for i in starts]


def test_every_run_that_imports_modules_freezes_them_out_of_later_collections(monkeypatch):
    import gc
    import sys
    import types

    from ui import boot

    monkeypatch.setattr(boot, "_modules_at_freeze", 0)
    monkeypatch.setattr(gc, "freeze", lambda: frozen.append(len(sys.modules)))
    frozen: list[int] = []
    boot.freeze_long_lived_objects()  # the server's first run
    boot.freeze_long_lived_objects()  # a run that imported nothing: no new freeze (and no full collection)
    assert len(frozen) == 1
    monkeypatch.setitem(sys.modules, "dvae_test_lazily_imported", types.ModuleType("dvae_test_lazily_imported"))
    boot.freeze_long_lived_objects()  # a page that imported a module late
    assert len(frozen) == 2 and frozen[1] == frozen[0] + 1
