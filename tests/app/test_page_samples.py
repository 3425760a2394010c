"""Samples page: prior samples, the 2-D latent plane, and interpolations whose ends decode the encoder means."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from page_helpers import (
    col_labels,
    figure,
    figure_title,
    figures,
    grid_images,
    grid_row,
    mnist_checkpoint,
    open_app_page,
    row_labels,
)
from streamlit.testing.v1 import AppTest

PAGE = "pages/samples.py"


def open_page(monkeypatch, shipped: Path, user: Path, query: dict | None = None, data_dir: Path | None = None):
    return open_app_page(PAGE, monkeypatch, shipped, user, query, data_dir)


def chart(at: AppTest, title_start: str) -> str:
    return figure(at, title_start)


def pixels(html: str) -> np.ndarray:
    """Every image of a grid, in reading order, stacked: ``(n, H, W)``."""
    images = grid_images(html)
    return np.stack([images[key] for key in sorted(images)])


@pytest.fixture
def page(monkeypatch, tiny_checkpoints, tmp_path):
    def open_with(query=None):
        return open_page(monkeypatch, tiny_checkpoints, tmp_path / "user", query)

    return open_with


def test_prior_samples_latent_plane_and_interpolation_render(page):
    at = page({"model": "digits-dvae-2d", "others": "digits-diwae-4d"})
    assert not at.exception and not at.error
    titles = [figure_title(f) for f in figures(at)]
    assert "digits-dvae-2d (DVAE)" in titles and "digits-diwae-4d (DIWAE)" in titles
    assert "digits-dvae-2d: the latent plane" in titles  # only the 2-D model has one
    assert not any(t.startswith("digits-diwae-4d: the latent plane") for t in titles)
    interpolation = chart(at, "decode(")
    assert row_labels(interpolation) == ["digits-dvae-2d (DVAE)", "digits-diwae-4d (DIWAE)"]


def test_the_seed_redraws_the_prior_samples(page):
    at = page({"model": "digits-dvae-2d", "others": ""})
    before = pixels(chart(at, "digits-dvae-2d (DVAE)"))
    at.number_input(key="seed").set_value(7).run()
    after = pixels(chart(at, "digits-dvae-2d (DVAE)"))
    assert not np.array_equal(before, after, equal_nan=True)
    assert at.query_params["seed"] in ("7", ["7"])


def test_interpolation_ends_decode_the_encoder_means_of_the_chosen_images(page, tiny_checkpoints, digits):
    from dvae_engine.checkpoint import load_checkpoint
    from dvae_engine.data import random_rows

    at = page({"model": "digits-dvae-2d", "others": "", "a": "3", "b": "5", "steps": "4"})
    interpolation = chart(at, "decode(")
    assert col_labels(interpolation) == ["x_a", "t=0.00", "t=0.33", "t=0.67", "t=1.00", "x_b"]
    images = grid_row(interpolation, 0) / 255  # bytes; the first model's row: x_a, 4 steps, x_b
    model = load_checkpoint(tiny_checkpoints / "digits-dvae-2d.pt").model
    x = random_rows(digits.test, 2000)[[3, 5]]
    with torch.no_grad():
        ends = model.decode(model.encode(x)[0]).reshape(2, 8, 8).numpy()
    np.testing.assert_array_equal(images[0], x[0].reshape(8, 8).numpy())
    np.testing.assert_allclose(images[1], ends[0], atol=0.5 / 255 + 1e-9)  # rounded to bytes for display
    np.testing.assert_allclose(images[4], ends[1], atol=0.5 / 255 + 1e-9)


def test_steps_slider_and_spherical_path_change_the_interpolation(page):
    at = page({"model": "digits-dvae-2d", "others": "", "a": "0", "b": "9"})
    linear = chart(at, "decode((1 − t)")
    at.slider(key="steps").set_value(5).run()
    assert len(col_labels(chart(at, "decode((1 − t)"))) == 5 + 2
    at.slider(key="steps").set_value(8).run()
    at.toggle(key="slerp").set_value(True).run()
    assert not at.exception
    spherical = chart(at, "decode(slerp")
    assert not np.array_equal(pixels(linear), pixels(spherical))


def test_no_checkpoints_points_to_the_train_page(monkeypatch, tmp_path):
    empty = tmp_path / "none"
    empty.mkdir()
    at = open_page(monkeypatch, empty, tmp_path / "user")
    assert not at.exception
    assert any("Train" in i.value for i in at.info)


def test_without_the_dataset_the_page_interpolates_between_model_samples(monkeypatch, tmp_path):
    shipped = tmp_path / "shipped"
    mnist_checkpoint(shipped)
    no_data = tmp_path / "no-data"
    no_data.mkdir()
    at = open_page(monkeypatch, shipped, tmp_path / "user", data_dir=no_data)
    assert not at.exception
    assert any("not on disk" in w.value for w in at.warning)
    assert any("samples of mnist-fake" in c.value for c in at.caption)
    assert chart(at, "mnist-fake: the latent plane")  # a 2-D model: its plane is drawn too
