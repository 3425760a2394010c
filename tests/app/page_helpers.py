"""Helpers shared by the AppTests of the model-inspection pages (Posterior, Reconstructions, Samples)."""

from __future__ import annotations

import base64
import io
import json
import re
from html import unescape
from pathlib import Path

import numpy as np
import streamlit as st
import torch
from streamlit.testing.v1 import AppTest

APP = str(Path(__file__).resolve().parents[2] / "app.py")
TOKEN = "0123456789abcdef0123456789abcdef"  # the owner cookie of "this browser" in these tests


def as_browser(monkeypatch, token: str = TOKEN) -> str:
    """Make AppTest sessions started from now on look like a browser sending this owner cookie.

    AppTest cannot send cookies, so ``ui.identity.browser_cookies`` is replaced. Returns the owner
    key (the name of this browser's folder under the user checkpoint root).
    """
    from ui import identity

    monkeypatch.setattr(identity, "browser_cookies", lambda: {identity.COOKIE: token})
    return identity.key_of(token)


def open_app_page(page: str, monkeypatch, shipped: Path, user: Path, query: dict | None = None,
                  data_dir: Path | None = None) -> AppTest:
    """Open ``page`` through app.py with these checkpoint folders (and data folder), caches cleared."""
    monkeypatch.setenv("DVAE_CHECKPOINT_DIR", str(shipped))
    monkeypatch.setenv("DVAE_USER_CHECKPOINT_DIR", str(user))
    if data_dir is not None:
        monkeypatch.setenv("DVAE_DATA_DIR", str(data_dir))
    st.cache_data.clear()
    st.cache_resource.clear()
    at = AppTest.from_file(APP, default_timeout=60)
    at.query_params.update(query or {})
    at.switch_page(page)
    at.run()
    return at


def figures(at: AppTest) -> list[str]:
    """The HTML of every figure on the page (``ui.figures.show``: image grids and SVG charts), in page order."""
    return [json.loads(node.proto.json)["html"] for node in at.get("bidi_component")
            if node.proto.component_name == "dvae_figure"]


def figure(at: AppTest, title_start: str) -> str:
    """The first figure whose title starts with ``title_start``."""
    return next(f for f in figures(at) if figure_title(f).startswith(title_start))


def figure_title(html: str) -> str:
    match = re.search(r'<figure[^>]*data-title="([^"]*)"', html)
    return unescape(match.group(1)) if match else ""


def grid_images(html: str) -> dict[tuple[int, int], np.ndarray]:
    """The images of an image grid by (row, column): uint8 pixels, 0–255 for values 0–1."""
    from PIL import Image

    images = {}
    for match in re.finditer(r'<img src="data:image/png;base64,([^"]+)"[^>]*data-row="(\d+)" data-col="(\d+)"', html):
        pixels = np.asarray(Image.open(io.BytesIO(base64.b64decode(match.group(1)))))
        images[int(match.group(2)), int(match.group(3))] = pixels
    return images


def grid_row(html: str, row: int) -> np.ndarray:
    """Row ``row`` of an image grid as one array ``(n, H, W)``."""
    images = grid_images(html)
    return np.stack([images[row, c] for c in sorted(c for r, c in images if r == row)])


def _texts(html: str, css_class: str) -> list[str]:
    return [unescape(t) for t in re.findall(rf'<div class="{css_class}"[^>]*>(.*?)</div>', html)]


def row_labels(html: str) -> list[str]:
    return _texts(html, "row-label")


def col_labels(html: str) -> list[str]:
    return _texts(html, "col-label")


def cell_texts(html: str) -> list[str]:
    """The numbers printed under grid images, in reading order."""
    return _texts(html, "cell-text")


def series_names(html: str) -> list[str]:
    """The names of a chart's series (lines, points, ellipses, contours), in drawing order."""
    return [unescape(n) for n in re.findall(r'<g class="series [a-z]+"[^>]*?data-name="([^"]*)"', html)]


def legend_names(html: str) -> list[str]:
    """The entries of a figure's legend(s)."""
    legends = re.findall(r'<div class="legend"[^>]*>(.*?)</div>', html)
    return [unescape(t) for legend in legends for t in re.findall(r"<span>([^<]*)</span>", legend)]


def series(html: str, name: str) -> dict:
    """A line or point series of a chart by name: its ``x`` and ``y`` values (and ``dash`` for lines)."""
    for match in re.finditer(r'<g class="series [a-z]+"([^>]*)>', html):
        attrs = dict(re.findall(r'([a-z-]+)="([^"]*)"', match.group(1)))
        if unescape(attrs.get("data-name", "")) == name:
            out = {k: np.array([float(v) for v in attrs[f"data-{k}"].split(",")]) for k in ("x", "y")
                   if f"data-{k}" in attrs}
            out["dash"] = attrs.get("data-dash")
            return out
    raise KeyError(f"no series named {name!r}; have {series_names(html)}")


def axis_titles(html: str) -> list[str]:
    """The axis titles of each chart in ``html``: x titles, then y titles."""
    return [unescape(t) for axis in ("x", "y")
            for t in re.findall(rf'<text class="{axis}-title"[^>]*>([^<]*)</text>', html)]


def charts(at: AppTest) -> list[dict]:
    """The plotly figures on the page (pages that keep plotly: Experiments, Train, Bound vs M), as dicts."""
    return [json.loads(chart.proto.spec) for chart in at.get("plotly_chart")]


def values(field) -> np.ndarray:
    """A plotly array: a list, or plotly's typed-array form {"dtype", "bdata", "shape"} (base64)."""
    if isinstance(field, dict) and "bdata" in field:
        array = np.frombuffer(base64.b64decode(field["bdata"]), dtype=field["dtype"])
        shape = field.get("shape")
        return array.reshape([int(n) for n in str(shape).split(",")]) if shape else array
    return np.asarray(field, dtype=float)


def mnist_checkpoint(folder: Path) -> Path:
    """A 1-epoch model whose config says dataset='mnist', trained on random 28×28 binary rows (no files needed)."""
    from dvae_engine.checkpoint import save_checkpoint
    from dvae_engine.data import Dataset
    from dvae_engine.training import TrainConfig, train

    g = torch.Generator().manual_seed(0)
    rows = lambda n: (torch.rand(n, 784, generator=g) < 0.2).float()  # noqa: E731
    fake = Dataset("mnist", rows(64), rows(16), rows(16), (28, 28), "bernoulli")
    config = TrainConfig(dataset="mnist", objective="dvae", noise="salt-pepper", noise_level=0.1, latent_dim=2,
                         hidden_units=16, epochs=1, batch_size=32, device="cpu")
    folder.mkdir(parents=True, exist_ok=True)
    return save_checkpoint(train(config, fake), folder / "mnist-fake.pt", (28, 28))


def gaussian_checkpoint(folder: Path, name: str = "digits-dvae-gauss") -> Path:
    """A 1-epoch DVAE on scikit-learn's digits trained with Gaussian noise σ = 0.025 (the Frey models' level)."""
    from dvae_engine.checkpoint import save_checkpoint
    from dvae_engine.data import load_dataset
    from dvae_engine.training import TrainConfig, train

    digits = load_dataset("digits")
    config = TrainConfig(dataset="digits", objective="dvae", noise="gaussian", noise_level=0.025, latent_dim=2,
                         hidden_units=16, epochs=1, batch_size=64, device="cpu")
    folder.mkdir(parents=True, exist_ok=True)
    return save_checkpoint(train(config, digits), folder / f"{name}.pt", digits.image_shape)


def markdown_tables(at: AppTest) -> list[list[dict[str, str]]]:
    """The Markdown tables on the page (``ui.training_view.markdown_table``), each a list of rows by column name."""
    tables = []
    for element in at.markdown:
        lines = [line for line in element.value.splitlines() if line.startswith("|")]
        if len(lines) < 2 or not set(lines[1]) <= set("|-: "):
            continue

        def cells(line: str) -> list[str]:
            return [c.strip().replace("\\|", "|") for c in re.split(r"(?<!\\)\|", line.strip())[1:-1]]

        header = cells(lines[0])
        tables.append([dict(zip(header, cells(line))) for line in lines[2:]])
    return tables
