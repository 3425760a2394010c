"""Helpers shared by the AppTests of the model-inspection pages (Posterior, Reconstructions, Samples)."""

from __future__ import annotations

import base64
import json
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


def charts(at: AppTest) -> list[dict]:
    return [json.loads(chart.proto.spec) for chart in at.get("plotly_chart")]


def trace(figure: dict, name: str) -> dict:
    return next(t for t in figure["data"] if t.get("name") == name)


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
