"""Dataset loaders: the real files (when DVAE_DATA_DIR is set), digits everywhere, and clear errors offline."""

from __future__ import annotations

import gzip
import os
import shutil

import numpy as np
import pytest
import torch

from dvae_engine.data import (
    DatasetNotFoundError,
    available_offline,
    load_dataset,
    load_test_split,
    random_rows,
    read_idx,
    resolve_data_dir,
)


def assert_binary(t: torch.Tensor) -> None:
    assert t.dtype == torch.float32
    assert set(t.unique().tolist()) <= {0.0, 1.0}


def test_mnist_real_files_static_binarization(data_dir):
    data = load_dataset("mnist", data_dir)
    assert (data.train.shape, data.valid.shape, data.test.shape) == ((50000, 784), (10000, 784), (10000, 784))
    assert data.image_shape == (28, 28) and data.likelihood == "bernoulli"
    for split in (data.train, data.valid, data.test):
        assert_binary(split)
    assert 0.12 < data.train.mean().item() < 0.14  # MNIST's mean intensity is about 0.13
    again = load_dataset("mnist", data_dir)
    assert torch.equal(again.test, data.test)  # one fixed, seeded draw


def test_test_split_alone_is_the_full_loaders_test_split(data_dir, tmp_path):
    # MNIST reads only the test file and skips the binarization stream past train and valid
    assert torch.equal(load_test_split("mnist", data_dir), load_dataset("mnist", data_dir).test)
    assert torch.equal(load_test_split("digits"), load_dataset("digits").test)  # loaded in full
    # without the training file (whose length places the test draws) it fails like the full loader
    (tmp_path / "MNIST" / "raw").mkdir(parents=True)
    shutil.copy(data_dir / "MNIST" / "raw" / "t10k-images-idx3-ubyte.gz", tmp_path / "MNIST" / "raw")
    with pytest.raises(DatasetNotFoundError, match="train-images-idx3-ubyte"):
        load_test_split("mnist", tmp_path, download=False)


def test_mnist_valid_is_the_last_10k_of_the_training_file(data_dir):
    raw = read_idx(data_dir / "MNIST" / "raw" / "train-images-idx3-ubyte.gz")
    assert raw.shape == (60000, 28, 28)
    data = load_dataset("mnist", data_dir)
    grey_valid = torch.as_tensor(raw[50000:].reshape(-1, 784) / 255.0, dtype=torch.float32)
    assert torch.all(data.valid[grey_valid == 0] == 0)  # background stays background
    assert torch.all(data.valid[grey_valid == 1] == 1)


def test_mnist_dynamic_binarization_redraws_the_training_split(data_dir):
    data = load_dataset("mnist", data_dir, binarization="dynamic")
    first = data.train.clone()
    data.resample_train(torch.Generator().manual_seed(1))
    assert_binary(data.train)
    changed = (data.train != first).float().mean().item()
    assert 0.01 < changed < 0.2  # only grey pixels change
    assert data.train_intensities is not None and data.train_intensities.max() <= 1


def test_binarized_mnist_real_file(data_dir):
    data = load_dataset("binarized-mnist", data_dir)
    assert (data.train.shape, data.valid.shape, data.test.shape) == ((50000, 784), (10000, 784), (10000, 784))
    assert_binary(data.test)
    arrays = np.load(data_dir / "binarized_mnist.npz")
    assert np.array_equal(data.test.numpy().astype(np.uint8), arrays["test"])


def test_binarized_mnist_reads_the_original_amat_text_files(tmp_path, data_dir):
    arrays = np.load(data_dir / "binarized_mnist.npz")
    for split in ("train", "valid", "test"):
        np.savetxt(tmp_path / f"binarized_mnist_{split}.amat", arrays[split][:30], fmt="%d")
    data = load_dataset("binarized-mnist", tmp_path)
    assert np.array_equal(data.valid.numpy(), arrays["valid"][:30].astype(np.float32))


def test_random_rows_does_not_take_the_first_rows_of_a_class_sorted_split(data_dir):
    data = load_dataset("binarized-mnist", data_dir)
    sample = random_rows(data.test, 500)
    first = data.test[:500]
    # the first 500 test rows are all zeros (sorted by class); a random sample has a different mean image
    assert (sample.mean(0) - first.mean(0)).abs().max() > 0.2
    assert torch.equal(sample, random_rows(data.test, 500))  # and it is reproducible


def test_frey_real_file(data_dir):
    data = load_dataset("frey", data_dir)
    assert data.image_shape == (28, 20) and data.likelihood == "gaussian"
    assert len(data.train) + len(data.valid) + len(data.test) == 1965
    assert (len(data.valid), len(data.test)) == (200, 200)
    assert 0 < data.train.min() and data.train.max() < 1  # real-valued pixels scaled to [0, 1]
    # the split is shuffled: consecutive video frames are not all in one split
    assert not torch.equal(data.train[0], data.train[1])


def test_digits_needs_no_files_and_has_a_fixed_split(tmp_path):
    data = load_dataset("digits", tmp_path)
    assert (data.train.shape, data.valid.shape, data.test.shape) == ((1197, 64), (300, 64), (300, 64))
    assert data.image_shape == (8, 8)
    assert_binary(data.train)
    assert torch.equal(load_dataset("digits").test, data.test)


@pytest.mark.parametrize("name,missing", [("mnist", "train-images-idx3-ubyte"), ("fashion-mnist", "train-images"),
                                          ("binarized-mnist", "binarized_mnist"), ("frey", "frey_rawface.mat")])
def test_missing_files_raise_a_clear_error_naming_file_place_and_source(tmp_path, name, missing, monkeypatch):
    monkeypatch.setenv("DVAE_OFFLINE", "1")
    with pytest.raises(DatasetNotFoundError) as info:
        load_dataset(name, tmp_path)
    message = str(info.value)
    assert missing in message and str(tmp_path) in message
    assert "DVAE_DATA_DIR" in message


def test_read_only_data_directory_works(tmp_path, data_dir):
    """Reading never writes: a copy of the gzipped IDX files in a read-only folder loads."""
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for name in ("train-images-idx3-ubyte.gz", "t10k-images-idx3-ubyte.gz"):
        shutil.copy(data_dir / "MNIST" / "raw" / name, raw / name)
    for folder in (raw, raw.parent, tmp_path):
        os.chmod(folder, 0o555)
    try:
        assert load_dataset("mnist", tmp_path).test.shape == (10000, 784)
        assert available_offline(tmp_path)["mnist"]
    finally:
        for folder in (tmp_path, raw.parent, raw):
            os.chmod(folder, 0o755)


def test_truncated_idx_file_is_reported(tmp_path):
    path = tmp_path / "bad-idx3-ubyte.gz"
    header = (2051).to_bytes(4, "big") + (10).to_bytes(4, "big") + (28).to_bytes(4, "big") * 2
    with gzip.open(path, "wb") as f:
        f.write(header + bytes(100))
    with pytest.raises(ValueError, match="truncated"):
        read_idx(path)


def test_data_dir_resolution_order(tmp_path, monkeypatch):
    monkeypatch.setenv("DVAE_DATA_DIR", str(tmp_path / "env"))
    assert resolve_data_dir(tmp_path / "arg") == tmp_path / "arg"
    assert resolve_data_dir() == tmp_path / "env"
    monkeypatch.delenv("DVAE_DATA_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    assert resolve_data_dir() == tmp_path / "cache" / "dvae_explorer" / "data"


def test_unknown_dataset_and_binarization_are_rejected():
    with pytest.raises(ValueError, match="unknown dataset"):
        load_dataset("cifar")
    with pytest.raises(ValueError, match="binarization"):
        load_dataset("digits", binarization="sometimes")
