"""Posterior page: mixture posterior views, the 2-D true posterior, URL state, uploads, offline fallback."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from page_helpers import axis_titles, figures, grid_row, mnist_checkpoint, open_app_page, series, series_names

PAGE = "pages/posterior.py"


def open_page(monkeypatch, shipped: Path, user: Path, query: dict | None = None, data_dir: Path | None = None):
    return open_app_page(PAGE, monkeypatch, shipped, user, query, data_dir)


@pytest.fixture
def page(monkeypatch, tiny_checkpoints, tmp_path):
    def open_with(query=None):
        return open_page(monkeypatch, tiny_checkpoints, tmp_path / "user", query)

    return open_with


def test_noise_slider_redraws_the_copies_and_the_mixture(page):
    at = page({"model": "digits-diwae-4d", "compare": "none"})
    assert not at.exception and not at.error
    before = figures(at)
    at.slider(key="level_salt-pepper").set_value(0.4).run()
    assert not at.exception
    after = figures(at)
    assert not np.array_equal(grid_row(before[0], 0), grid_row(after[0], 0))  # the corrupted copies
    means = "component means μ(x̃ₙ)"
    assert not np.array_equal(series(before[1], means)["x"], series(after[1], means)["x"])
    assert at.query_params["level"] == ["0.4"] or at.query_params["level"] == "0.4"


def test_at_noise_zero_every_component_sits_on_the_clean_mean(page):
    at = page({"model": "digits-diwae-4d", "compare": "none", "level": "0"})
    figure = figures(at)[1]
    clean = series(figure, "clean mean μ(x)")
    components = series(figure, "component means μ(x̃ₙ)")
    for axis in ("x", "y"):  # the figure keeps 5 significant digits
        np.testing.assert_allclose(components[axis], clean[axis][0], rtol=1e-4, atol=1e-5)
    assert "PC 1" in axis_titles(figure)[0]


def test_two_d_models_side_by_side_show_the_true_posterior_and_kl_numbers(page):
    at = page({"model": "digits-dvae-2d", "compare": "digits-vae-2d"})
    assert not at.exception
    shown = figures(at)
    assert len(shown) == 3  # copies + one panel per encoder
    for figure in shown[1:]:
        names = set(series_names(figure))
        assert "true p(z|x): 50% / 90% regions" in names and "clean q(z|x): 50% / 90%" in names
        assert axis_titles(figure) == ["z₁", "z₂"]  # no projection
    tables = [m.value for m in at.markdown if "KL(p(z\\|x) ‖ q)" in m.value]
    assert len(tables) == 2 and all("log p(x) by quadrature" in t and "nats" in t for t in tables)


def test_tsne_view_draws_points_only_and_says_why(page):
    at = page({"model": "digits-diwae-4d", "compare": "none", "view": "t-SNE", "n": "8"})
    assert not at.exception
    figure = figures(at)[1]
    assert axis_titles(figure)[0].startswith("t-SNE")
    assert all("2σ" not in name for name in series_names(figure))
    assert any("cannot" in i.value or "no way to carry a covariance" in i.value for i in at.info)


def test_a_bad_upload_shows_an_error_and_no_traceback(page):
    at = page({"model": "digits-dvae-2d", "compare": "none"})
    at.radio(key="posterior_input_src").set_value("Upload").run()
    at.file_uploader[0].set_value(("digit.png", b"definitely not a png", "image/png")).run()
    assert not at.exception
    assert any("cannot be used" in e.value and "not a readable image" in e.value for e in at.error)


def test_a_good_upload_is_used_as_the_input(page):
    import io

    from PIL import Image

    drawing = np.full((64, 64), 255, dtype=np.uint8)
    drawing[10:54, 22:42] = 0  # a thick black bar on white paper
    buffer = io.BytesIO()
    Image.fromarray(drawing).save(buffer, format="PNG")
    at = page({"model": "digits-dvae-2d", "compare": "none"})
    at.radio(key="posterior_input_src").set_value("Upload").run()
    at.file_uploader[0].set_value(("one.png", buffer.getvalue(), "image/png")).run()
    assert not at.exception and not at.error
    clean = grid_row(figures(at)[0], 0)[0] / 255  # image grids carry bytes; the first image is the clean x
    assert clean[:, 3:5].sum() > 4 and clean[:, :2].sum() == 0  # inverted and centred: white in the middle
    assert any("your upload" in c.value for c in at.caption)


def test_no_checkpoints_points_to_the_train_page(monkeypatch, tmp_path):
    empty = tmp_path / "none"
    empty.mkdir()
    at = open_page(monkeypatch, empty, tmp_path / "user")
    assert not at.exception
    assert any("Train" in i.value for i in at.info)
    assert any(link.proto.page.endswith("train") or "train" in link.proto.page for link in at.get("page_link"))


def test_without_the_dataset_the_page_uses_model_samples_and_says_how_to_get_it(monkeypatch, tmp_path):
    shipped = tmp_path / "shipped"
    mnist_checkpoint(shipped)
    no_data = tmp_path / "no-data"
    no_data.mkdir()
    at = open_page(monkeypatch, shipped, tmp_path / "user", data_dir=no_data)
    assert not at.exception
    assert any("not on disk" in w.value and "torchvision" in w.value for w in at.warning)
    assert at.radio(key="posterior_input_src").value == "Model sample"
    assert len(figures(at)) == 2 and any("a sample from the model" in c.value for c in at.caption)
