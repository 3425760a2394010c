"""Classroom defaults: the pages open on the model the Home page teaches with, a new model brings its own training
noise, and the noise-level slider shows exactly the level in use."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from page_helpers import figures, gaussian_checkpoint, mnist_checkpoint, open_app_page


@pytest.fixture
def offline(tmp_path) -> Path:
    """A data folder without MNIST: the Home page then teaches with scikit-learn's digits."""
    folder = tmp_path / "no-data"
    folder.mkdir()
    return folder


@pytest.fixture
def shipped(tiny_checkpoints, tmp_path) -> Path:
    """The tiny digits models (VAE, DVAE and DIWAE) plus a DVAE trained with Gaussian noise σ = 0.025."""
    folder = tmp_path / "shipped"
    shutil.copytree(tiny_checkpoints, folder)
    gaussian_checkpoint(folder)
    return folder


def test_posterior_and_reconstructions_open_on_the_dvae_the_home_page_teaches_with(monkeypatch, shipped, offline,
                                                                                   tmp_path):
    home = open_app_page("pages/home.py", monkeypatch, shipped, tmp_path / "user", data_dir=offline)
    assert any("decoder mean of model `digits-dvae-2d`" in c.value for c in home.caption)
    # the folder lists digits-diwae-4d first; the pages used to open on the first file
    posterior = open_app_page("pages/posterior.py", monkeypatch, shipped, tmp_path / "user", data_dir=offline)
    assert posterior.selectbox(key="model_a").value.stem == "digits-dvae-2d"
    assert posterior.selectbox(key="model_b_digits-dvae-2d").value == "digits-vae-2d"  # a DVAE beside a plain VAE
    reconstructions = open_app_page("pages/reconstructions.py", monkeypatch, shipped, tmp_path / "user",
                                    data_dir=offline)
    assert reconstructions.selectbox(key="model_main").value.stem == "digits-dvae-2d"
    assert reconstructions.multiselect(key="others_digits-dvae-2d").value == ["digits-vae-2d"]


def test_with_mnist_on_disk_the_pages_open_on_the_mnist_dvae(monkeypatch, shipped, data_dir, tmp_path):
    if not (data_dir / "MNIST").exists() and not any(data_dir.glob("*mnist*")):
        pytest.skip("MNIST is not in DVAE_DATA_DIR")
    mnist_checkpoint(shipped)  # mnist-fake: a DVAE, salt-and-pepper 10 %, dataset "mnist"
    posterior = open_app_page("pages/posterior.py", monkeypatch, shipped, tmp_path / "user", data_dir=data_dir)
    assert posterior.selectbox(key="model_a").value.stem == "mnist-fake"
    reconstructions = open_app_page("pages/reconstructions.py", monkeypatch, shipped, tmp_path / "user",
                                    data_dir=data_dir)
    assert reconstructions.selectbox(key="model_main").value.stem == "mnist-fake"


def test_switching_model_brings_the_new_models_training_noise(monkeypatch, shipped, offline, tmp_path):
    at = open_app_page("pages/reconstructions.py", monkeypatch, shipped, tmp_path / "user",
                       {"model": "digits-dvae-gauss", "others": ""}, data_dir=offline)
    assert at.selectbox(key="noise").value == "gaussian"
    assert at.slider(key="level_gaussian").value == pytest.approx(0.025)
    at.selectbox(key="model_main").set_value(shipped / "digits-dvae-2d.pt").run()
    assert not at.exception
    # the Gaussian noise of the previous model does not carry over: salt-and-pepper at 10 %, as digits-dvae-2d
    assert at.selectbox(key="noise").value == "salt-pepper"
    assert at.slider(key="level_salt-pepper").value == pytest.approx(0.1)
    assert at.query_params["noise"] in ("salt-pepper", ["salt-pepper"])
    assert at.query_params["level"] in ("0.1", ["0.1"])


def test_a_level_moved_by_hand_resets_when_the_encoder_changes(monkeypatch, shipped, offline, tmp_path):
    at = open_app_page("pages/posterior.py", monkeypatch, shipped, tmp_path / "user",
                       {"model": "digits-dvae-2d", "compare": "none"}, data_dir=offline)
    at.slider(key="level_salt-pepper").set_value(0.4).run()
    assert at.query_params["level"] in ("0.4", ["0.4"])
    at.selectbox(key="model_a").set_value(shipped / "digits-dvae-gauss.pt").run()
    assert not at.exception
    assert at.selectbox(key="noise").value == "gaussian"
    assert at.slider(key="level_gaussian").value == pytest.approx(0.025)


def test_the_slider_shows_the_exact_level_in_use(monkeypatch, shipped, offline, tmp_path):
    at = open_app_page("pages/reconstructions.py", monkeypatch, shipped, tmp_path / "user",
                       {"model": "digits-dvae-gauss", "others": ""}, data_dir=offline)
    slider = at.slider(key="level_gaussian")
    assert slider.proto.format % slider.value == "0.025"  # it used to read "0.03"
    assert "level 0.025" in figures(at)[0]  # the figure's title names the same level
    # a hand-written URL level between two slider steps is put on the slider's grid, so what it shows is what is used
    at = open_app_page("pages/reconstructions.py", monkeypatch, shipped, tmp_path / "user",
                       {"model": "digits-dvae-gauss", "others": "", "level": "0.0123"}, data_dir=offline)
    slider = at.slider(key="level_gaussian")
    assert slider.proto.format % slider.value == "0.010"
    assert at.query_params["level"] in ("0.01", ["0.01"])
    salt = open_app_page("pages/reconstructions.py", monkeypatch, shipped, tmp_path / "user",
                         {"model": "digits-dvae-2d", "others": ""}, data_dir=offline)
    slider = salt.slider(key="level_salt-pepper")
    assert slider.proto.format % slider.value == "0.10"
