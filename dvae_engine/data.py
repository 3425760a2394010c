"""Datasets, read from one data directory and held as tensors.

Every dataset comes back as a :class:`Dataset`: three float32 tensors
``train``, ``valid`` and ``test`` of shape ``(N, D)`` with pixels in [0, 1],
plus what the model needs to know (image shape, Bernoulli or Gaussian
likelihood). Binary datasets built from grey levels follow the paper:
each pixel is drawn from Bernoulli(intensity) — once with a fixed seed
("static") or afresh every epoch for the training split ("dynamic").

The data directory is, in order: the ``data_dir`` argument, the
``DVAE_DATA_DIR`` environment variable, or ``~/.cache/dvae_explorer/data``.
Reading never writes, so a read-only directory works. Missing files raise
:class:`DatasetNotFoundError` naming the file, where it was looked for and
how to get it. Downloads (MNIST, Fashion-MNIST through torchvision) are only
tried when ``download=True``, ``DVAE_OFFLINE`` is unset and the host answers
within a few seconds.
"""

from __future__ import annotations

import gzip
import os
import socket
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

DATASETS = ("mnist", "binarized-mnist", "frey", "fashion-mnist", "digits")
GREY_LEVEL_DATASETS = ("mnist", "fashion-mnist", "digits")  # binarized from grey levels: static or dynamic
DATASET_LIKELIHOOD = {name: "gaussian" if name == "frey" else "bernoulli" for name in DATASETS}
SPLIT_SEED = 0  # the seed of every fixed split and static binarization
DATASET_IMAGE_SHAPES = {"mnist": (28, 28), "binarized-mnist": (28, 28), "frey": (28, 20), "fashion-mnist": (28, 28),
                        "digits": (8, 8)}

DATASET_INFO = {
    "mnist": "MNIST digits, binarized by sampling each pixel from Bernoulli(intensity); 50k/10k/10k",
    "binarized-mnist": "Larochelle & Murray's fixed binarization of MNIST; 50k/10k/10k",
    "frey": "Frey Face, 1965 real-valued 28x20 faces; shuffled 1565/200/200 split",
    "fashion-mnist": "Fashion-MNIST, binarized like MNIST; 50k/10k/10k",
    "digits": "scikit-learn's bundled 8x8 digits, binarized like MNIST; 1197/300/300 (no files needed)",
}


class DatasetNotFoundError(FileNotFoundError):
    """A dataset's files are not on disk and could not be fetched."""


@dataclass
class Dataset:
    """One dataset's splits as ``(N, D)`` float32 tensors in [0, 1]."""

    name: str
    train: torch.Tensor
    valid: torch.Tensor
    test: torch.Tensor
    image_shape: tuple[int, int]
    likelihood: str  # "bernoulli" or "gaussian"
    binarization: str | None = None  # "static", "dynamic" or None (already binary / real-valued)
    # grey levels of the training split, for dynamic re-binarization each epoch
    train_intensities: torch.Tensor | None = field(default=None, repr=False)

    @property
    def input_dim(self) -> int:
        return int(self.train.shape[1])

    def split(self, name: str) -> torch.Tensor:
        if name not in ("train", "valid", "test"):
            raise ValueError(f"unknown split {name!r}; expected 'train', 'valid' or 'test'")
        return getattr(self, name)

    def train_mean(self) -> torch.Tensor:
        """Mean training image, shape ``(D,)`` (used by the mean-image noise)."""
        source = self.train_intensities if self.train_intensities is not None else self.train
        return source.mean(dim=0)

    def to(self, device: torch.device | str) -> Dataset:
        """A copy with every tensor on ``device``."""
        move = (lambda t: None if t is None else t.to(device))  # noqa: E731
        return Dataset(
            self.name, move(self.train), move(self.valid), move(self.test), self.image_shape,
            self.likelihood, self.binarization, move(self.train_intensities),
        )

    def resample_train(self, generator: torch.Generator) -> None:
        """Draw a new binarization of the training split (dynamic binarization only)."""
        if self.binarization != "dynamic" or self.train_intensities is None:
            return
        self.train = torch.bernoulli(self.train_intensities, generator=generator)

    def subset(self, max_train: int | None = None, max_eval: int | None = None) -> Dataset:
        """A smaller copy: the first ``max_train`` training rows and a random ``max_eval`` of valid/test.

        Training rows are already in random order for every dataset here; the
        evaluation rows are drawn at random because some test splits are
        sorted by class.
        """
        out = Dataset(**{k: getattr(self, k) for k in self.__dataclass_fields__})
        if max_train is not None and max_train < len(self.train):
            out.train = self.train[:max_train]
            if self.train_intensities is not None:
                out.train_intensities = self.train_intensities[:max_train]
        if max_eval is not None:
            out.valid = random_rows(self.valid, max_eval)
            out.test = random_rows(self.test, max_eval)
        return out


def random_rows(x: torch.Tensor, n: int, seed: int = SPLIT_SEED) -> torch.Tensor:
    """``n`` rows of ``x`` drawn without replacement with a fixed seed (all rows if ``n >= len(x)``)."""
    if n >= len(x):
        return x
    g = torch.Generator().manual_seed(seed)
    index = torch.randperm(len(x), generator=g)[:n].to(x.device)
    return x[index]


def resolve_data_dir(data_dir: str | os.PathLike | None = None) -> Path:
    """The data directory: argument, else ``$DVAE_DATA_DIR``, else a per-user cache directory."""
    if data_dir is not None:
        return Path(data_dir).expanduser()
    env = os.environ.get("DVAE_DATA_DIR")
    if env:
        return Path(env).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(cache) / "dvae_explorer" / "data"


def load_dataset(
    name: str,
    data_dir: str | os.PathLike | None = None,
    binarization: str = "static",
    download: bool = True,
) -> Dataset:
    """Load dataset ``name`` (one of :data:`DATASETS`).

    ``binarization`` applies to the grey-level sets (``mnist``, ``fashion-mnist``,
    ``digits``): ``"static"`` draws one fixed binarization with seed
    :data:`SPLIT_SEED`; ``"dynamic"`` re-draws the training split every epoch
    (see :meth:`Dataset.resample_train`) while valid and test stay fixed.
    """
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; choose one of {', '.join(DATASETS)}")
    if binarization not in ("static", "dynamic"):
        raise ValueError(f"binarization must be 'static' or 'dynamic', not {binarization!r}")
    root = resolve_data_dir(data_dir)
    if name == "binarized-mnist":
        return _load_binarized_mnist(root)
    if name == "frey":
        return _load_frey(root)
    if name == "digits":
        from sklearn.datasets import load_digits

        grey = load_digits().data.astype(np.float32) / 16.0
        perm = np.random.default_rng(SPLIT_SEED).permutation(len(grey))
        grey = grey[perm]
        return _binarize("digits", grey[:1197], grey[1197:1497], grey[1497:], DATASET_IMAGE_SHAPES["digits"],
                         binarization)
    folder = "MNIST" if name == "mnist" else "FashionMNIST"
    train, test = _load_idx_pair(root, folder, download)
    return _binarize(name, train[:50000], train[50000:], test, DATASET_IMAGE_SHAPES[name], binarization)


def load_test_split(name: str, data_dir: str | os.PathLike | None = None, download: bool = False) -> torch.Tensor:
    """``load_dataset(name).test`` (static binarization), without loading the training split where it can.

    For MNIST and Fashion-MNIST only the 10 000 test images are read, and the binarization's random stream
    is advanced past the training and validation draws: the same tensor, about ten times faster (the
    Home page's picture needs one test image on a cold server). Other datasets load in full.
    """
    if name not in ("mnist", "fashion-mnist"):
        return load_dataset(name, data_dir, download=download).test
    folder = "MNIST" if name == "mnist" else "FashionMNIST"
    root = resolve_data_dir(data_dir)
    train_path, test_path = (_find_idx(root, folder, stem) for stem in _IDX_FILES)
    if train_path is None or test_path is None:  # the full loader fetches what it can, or says where it looked
        return load_dataset(name, data_dir, download=download).test
    test = (np.arange(256, dtype=np.float32) / 255.0)[read_idx(test_path).reshape(-1, 784)]
    rng = np.random.default_rng(SPLIT_SEED)
    # _binarize draws float32 uniforms for the training file's rows (train, then valid) and then test; each
    # float32 takes half of one 64-bit PCG64 output and rows·784 is even, so the test draws start exactly
    # rows·784 / 2 outputs in. Only the training file's header is read, for its number of rows.
    rng.bit_generator.advance(idx_shape(train_path)[0] * 784 // 2)
    return torch.as_tensor(rng.random(test.shape, dtype=np.float32) < test, dtype=torch.float32)


def available_offline(data_dir: str | os.PathLike | None = None) -> dict[str, bool]:
    """Which datasets can be loaded from disk right now, without any network."""
    root = resolve_data_dir(data_dir)
    return {
        "mnist": all(_find_idx(root, "MNIST", f) for f in _IDX_FILES),
        "binarized-mnist": (root / "binarized_mnist.npz").is_file()
        or all((root / f"binarized_mnist_{s}.amat").is_file() for s in ("train", "valid", "test")),
        "frey": (root / "frey_rawface.mat").is_file(),
        "fashion-mnist": all(_find_idx(root, "FashionMNIST", f) for f in _IDX_FILES),
        "digits": True,
    }


# --- grey-level sets ------------------------------------------------------------------------

def _binarize(name, train, valid, test, shape, binarization) -> Dataset:
    # numpy's PCG64 stream is stable across versions, so the static draw is the same everywhere
    rng = np.random.default_rng(SPLIT_SEED)
    grey = [torch.as_tensor(np.ascontiguousarray(a), dtype=torch.float32) for a in (train, valid, test)]
    binary = [torch.as_tensor(rng.random(a.shape, dtype=np.float32) < a, dtype=torch.float32)
              for a in (train, valid, test)]
    return Dataset(
        name, binary[0], binary[1], binary[2], shape, "bernoulli", binarization,
        train_intensities=grey[0] if binarization == "dynamic" else None,
    )


_IDX_FILES = (
    "train-images-idx3-ubyte",
    "t10k-images-idx3-ubyte",
)
_SOURCES = {
    "MNIST": "torchvision.datasets.MNIST(root, download=True), or the four files from yann.lecun.com/exdb/mnist",
    "FashionMNIST": "torchvision.datasets.FashionMNIST(root, download=True), or the files from "
    "github.com/zalandoresearch/fashion-mnist",
}


def _find_idx(root: Path, folder: str, stem: str) -> Path | None:
    for base in (root / folder / "raw", root / folder, root):
        for candidate in (base / f"{stem}.gz", base / stem):
            if candidate.is_file():
                return candidate
    return None


def _idx_dims(raw: bytes, path: Path) -> list[int]:
    """The dimensions in an IDX file's header (``raw``: at least the file's first bytes)."""
    magic = int.from_bytes(raw[0:4], "big")
    if magic not in (2049, 2051):
        raise ValueError(f"{path} is not an IDX file (magic number {magic})")
    return [int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(magic - 2048)]


def _open_idx(path: Path):
    return (gzip.open if path.suffix == ".gz" else open)(path, "rb")


def idx_shape(path: Path) -> tuple[int, ...]:
    """The shape of an IDX file's array, from its header alone."""
    with _open_idx(path) as f:
        return tuple(_idx_dims(f.read(16), path))  # the magic number and up to three dimensions


def read_idx(path: Path) -> np.ndarray:
    """Read an IDX file (optionally gzipped) into a uint8 array."""
    with _open_idx(path) as f:
        raw = f.read()
    dims = _idx_dims(raw, path)
    offset = 4 + 4 * len(dims)
    data = np.frombuffer(raw, dtype=np.uint8, offset=offset)
    if data.size != int(np.prod(dims)):
        raise ValueError(f"{path} is truncated: expected {int(np.prod(dims))} values, found {data.size}")
    return data.reshape(dims)


def _load_idx_pair(root: Path, folder: str, download: bool) -> tuple[np.ndarray, np.ndarray]:
    paths = {stem: _find_idx(root, folder, stem) for stem in _IDX_FILES}
    if None in paths.values():
        _try_torchvision_download(root, folder, download)
        paths = {stem: _find_idx(root, folder, stem) for stem in _IDX_FILES}
    missing = [stem for stem, p in paths.items() if p is None]
    if missing:
        raise DatasetNotFoundError(
            f"{folder} file {missing[0]}.gz not found; looked in {root / folder / 'raw'}, "
            f"{root / folder} and {root}. Get it with {_SOURCES[folder]}, or set DVAE_DATA_DIR "
            f"to a directory holding {folder}/raw/."
        )
    # a 256-entry table, exactly astype(float32) / 255.0 for each byte, read once per pixel: one pass, not two
    intensity = np.arange(256, dtype=np.float32) / 255.0
    train, test = (intensity[read_idx(paths[s]).reshape(-1, 784)] for s in _IDX_FILES)
    return train, test


def _online(host: str, timeout: float = 3.0) -> bool:
    try:
        with socket.create_connection((host, 443), timeout=timeout):
            return True
    except OSError:
        return False


def _try_torchvision_download(root: Path, folder: str, download: bool) -> None:
    """Fetch through torchvision when allowed and online; stay silent otherwise (the caller explains)."""
    if not download or os.environ.get("DVAE_OFFLINE"):
        return
    if not _online("ossci-datasets.s3.amazonaws.com"):
        return
    try:
        import torchvision

        cls = torchvision.datasets.MNIST if folder == "MNIST" else torchvision.datasets.FashionMNIST
        cls(str(root), train=True, download=True)
        cls(str(root), train=False, download=True)
    except Exception:  # noqa: BLE001 — any failure is reported as a missing file, with instructions
        return


# --- Larochelle's binarized MNIST ------------------------------------------------------------

def _load_binarized_mnist(root: Path) -> Dataset:
    npz = root / "binarized_mnist.npz"
    amat = {s: root / f"binarized_mnist_{s}.amat" for s in ("train", "valid", "test")}
    if npz.is_file():
        with np.load(npz) as archive:
            arrays = [archive[s] for s in ("train", "valid", "test")]
    elif all(p.is_file() for p in amat.values()):
        arrays = [np.loadtxt(amat[s], dtype=np.uint8) for s in ("train", "valid", "test")]
    else:
        raise DatasetNotFoundError(
            f"binarized MNIST not found: looked for {npz} and for {amat['train'].name}, "
            f"{amat['valid'].name}, {amat['test'].name} in {root}. Get the .amat files from "
            "Hugo Larochelle's page (cs.toronto.edu/~larocheh/public/datasets/binarized_mnist/) "
            "and put them there, or set DVAE_DATA_DIR."
        )
    tensors = [torch.as_tensor(a.astype(np.float32)).reshape(len(a), 784) for a in arrays]
    # The training split is already shuffled; the test split is sorted by class (use random_rows).
    return Dataset("binarized-mnist", tensors[0], tensors[1], tensors[2], DATASET_IMAGE_SHAPES["binarized-mnist"],
                   "bernoulli")


# --- Frey Face ------------------------------------------------------------------------------

FREY_SPLIT = (1565, 200, 200)


def _load_frey(root: Path) -> Dataset:
    path = root / "frey_rawface.mat"
    if not path.is_file():
        raise DatasetNotFoundError(
            f"Frey Face file frey_rawface.mat not found in {root}. Get it from Sam Roweis' data page "
            "(cs.nyu.edu/~roweis/data/frey_rawface.mat) and put it there, or set DVAE_DATA_DIR."
        )
    from scipy.io import loadmat

    faces = loadmat(path)["ff"].T.astype(np.float32) / 255.0  # (1965, 560), rows of 28x20 images
    # Frames come from a video, so neighbours are near-duplicates: shuffle before splitting.
    faces = faces[np.random.default_rng(SPLIT_SEED).permutation(len(faces))]
    n_train, n_valid, _ = FREY_SPLIT
    t = torch.as_tensor(faces)
    return Dataset(
        "frey", t[:n_train], t[n_train:n_train + n_valid], t[n_train + n_valid:], DATASET_IMAGE_SHAPES["frey"],
        "gaussian",
    )
