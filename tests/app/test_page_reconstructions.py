"""Reconstructions page: the noise slider, several models on the same x̃, labelled numbers, uploads, offline."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from page_helpers import (
    cell_texts,
    col_labels,
    figures,
    grid_images,
    grid_row,
    markdown_tables,
    mnist_checkpoint,
    open_app_page,
    row_labels,
)

PAGE = "pages/reconstructions.py"


def open_page(monkeypatch, shipped: Path, user: Path, query: dict | None = None, data_dir: Path | None = None):
    return open_app_page(PAGE, monkeypatch, shipped, user, query, data_dir)


def tile_rows(figure: str) -> list[np.ndarray]:
    """The image rows of an image-grid figure, each ``(n, H, W)`` bytes."""
    return [grid_row(figure, r) for r in sorted({r for r, _ in grid_images(figure)})]


@pytest.fixture
def page(monkeypatch, tiny_checkpoints, tmp_path):
    def open_with(query=None):
        return open_page(monkeypatch, tiny_checkpoints, tmp_path / "user", query)

    return open_with


def test_noise_slider_changes_the_corrupted_row_and_not_the_clean_one(page):
    at = page({"model": "digits-dvae-2d", "others": ""})
    assert not at.exception and not at.error
    before = tile_rows(figures(at)[0])
    at.slider(key="level_salt-pepper").set_value(0.5).run()
    assert not at.exception
    after = tile_rows(figures(at)[0])
    np.testing.assert_array_equal(before[0], after[0])  # clean x
    assert not np.array_equal(before[1], after[1], equal_nan=True)  # corrupted x̃
    assert not np.array_equal(before[2], after[2], equal_nan=True)  # the reconstruction follows x̃
    assert at.query_params["level"] in ("0.5", ["0.5"])


def test_at_noise_zero_the_corrupted_row_is_the_clean_row(page):
    at = page({"model": "digits-dvae-2d", "others": "", "level": "0"})
    rows = tile_rows(figures(at)[0])
    np.testing.assert_array_equal(rows[0], rows[1])


def test_several_models_reconstruct_the_same_inputs_with_labelled_numbers(page):
    at = page({"model": "digits-dvae-2d", "others": "digits-vae-2d", "count": "8"})
    assert not at.exception
    figure = figures(at)[0]
    labels = row_labels(figure)
    assert labels[:2] == ["clean x", "corrupted x̃"] and len(labels) == 4
    assert "digits-vae-2d (VAE)" in labels and "digits-dvae-2d (DVAE)" in labels
    numbers = [float(t.replace("−", "-")) for t in cell_texts(figure)]  # whole nats under each image
    assert len(numbers) == 2 * 8 and all(n < 0 for n in numbers)  # Bernoulli log-likelihoods
    assert any("log p(x|z) of the clean image" in c.value and "nats" in c.value for c in at.caption)
    table = markdown_tables(at)[0]
    assert [row["model"] for row in table] == ["digits-dvae-2d", "digits-vae-2d"]
    assert all(float(row["mean log p(x|z), nats per example"]) < 0 for row in table)


def test_decoding_a_sample_instead_of_the_mean_changes_the_reconstructions(page):
    at = page({"model": "digits-dvae-2d", "others": ""})
    before = tile_rows(figures(at)[0])
    at.radio(key="z_choice").set_value("sample").run()
    after = tile_rows(figures(at)[0])
    np.testing.assert_array_equal(before[1], after[1])
    assert not np.array_equal(before[2], after[2], equal_nan=True)


def test_a_bad_upload_shows_an_error_and_a_good_one_becomes_the_first_column(page):
    import io

    from PIL import Image

    at = page({"model": "digits-dvae-2d", "others": ""})
    at.radio(key="own_source").set_value("Upload").run()
    at.file_uploader[0].set_value(("broken.jpg", b"\xff\xd8 truncated jpeg", "image/jpeg")).run()
    assert not at.exception
    assert any("cannot be used" in e.value for e in at.error)
    image = np.zeros((40, 40, 3), dtype=np.uint8)
    image[8:32, 12:28] = 255
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG")
    at.file_uploader[0].set_value(("mine.png", buffer.getvalue(), "image/png")).run()
    assert not at.exception and not at.error
    assert col_labels(figures(at)[0])[0] == "yours"


def test_no_checkpoints_points_to_the_train_page(monkeypatch, tmp_path):
    empty = tmp_path / "none"
    empty.mkdir()
    at = open_page(monkeypatch, empty, tmp_path / "user")
    assert not at.exception
    assert any("Train" in i.value for i in at.info)


def test_without_the_dataset_the_page_reconstructs_model_samples(monkeypatch, tmp_path):
    shipped = tmp_path / "shipped"
    mnist_checkpoint(shipped)
    no_data = tmp_path / "no-data"
    no_data.mkdir()
    at = open_page(monkeypatch, shipped, tmp_path / "user", data_dir=no_data)
    assert not at.exception
    assert any("not on disk" in w.value and "torchvision" in w.value for w in at.warning)
    figure = figures(at)[0]
    assert col_labels(figure)[0] == "sample 1"
    assert grid_row(figure, 0).shape == (12, 28, 28)  # 12 images of 28×28
