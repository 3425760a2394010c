"""The paper's experiments as grids of cells: one :class:`~experiments.harness.Cell` per table entry.

Each builder returns the cells of one experiment, every one with its configuration (seed 0: the
seed is set per run), the paper's value where the paper gives one (:mod:`dvae_engine.paper`) and
its place in the grid (``row``: the model, ``column``: the noise level, M or noise type), which
the Experiments page draws as a heat map. ``common`` holds :class:`TrainConfig` fields shared by
every cell (lr, lr_schedule, device, max_train_examples, max_valid_examples, hidden_units, …).

The same cells run with or without Ray (:mod:`experiments.tune`, :mod:`experiments.harness`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from dvae_engine.paper import DATA_AUGMENTATION, FIGURE1, TABLE1, TABLE2, TABLE3
from dvae_engine.training import TrainConfig
from experiments.harness import Cell

ROWS = (("DVAE K=1", "dvae", 1), ("DVAE K=5", "dvae", 5), ("DIWAE K=5", "diwae", 5))
MNIST_LEVELS = (0.0, 0.05, 0.10, 0.15)
FREY_LEVELS = (0.0, 0.025, 0.05, 0.075)


def _paper(table: dict, key, dataset: str) -> tuple[float, float] | None:
    """The paper's value of a cell (quoted whatever the dataset: a smoke run's budget line names its data)."""
    return table.get(key)


def _layers_name(layers: int) -> str:
    return f"{layers} layer{'s' if layers > 1 else ''}"


def _percent(level: float) -> str:
    return f"{100 * level:g}%"


def table1(*, dataset: str = "mnist", layers: Sequence[int] = (1, 2), noise_levels: Sequence[float] = MNIST_LEVELS,
           **common) -> list[Cell]:
    """Table 1 (MNIST): DVAE K=1, DVAE K=5, DIWAE K=5 × 1 or 2 encoder layers × salt-and-pepper 0–15 %."""
    cells = []
    for n_layers in layers:
        for label, objective, k in ROWS:
            for level in noise_levels:
                config = TrainConfig(dataset=dataset, binarization="static", objective=objective,
                                     noise="salt-pepper", noise_level=level, num_samples=k,
                                     encoder_layers=n_layers, **common)
                row = f"{label}, {_layers_name(n_layers)}"
                paper = _paper(TABLE1, (label, n_layers, round(level, 4)), dataset)
                cells.append(Cell(f"{row}, {_percent(level)}", config, paper, row=row, column=_percent(level)))
    return cells


def table2(*, layers: Sequence[int] = (1,), noise_levels: Sequence[float] = FREY_LEVELS, latent_dim: int = 10,
           **common) -> list[Cell]:
    """Table 2 (Frey Face, Gaussian noise σ on pixels in [0, 1]); the 1-layer rows by default."""
    cells = []
    for n_layers in layers:
        for label, objective, k in ROWS:
            for level in noise_levels:
                config = TrainConfig(dataset="frey", objective=objective, noise="gaussian", noise_level=level,
                                     num_samples=k, encoder_layers=n_layers, latent_dim=latent_dim, **common)
                row = f"{label}, {_layers_name(n_layers)}"
                cells.append(Cell(f"{row}, σ={level:g}", config, TABLE2.get((label, n_layers, round(level, 4))),
                                  row=row, column=f"σ={level:g}"))
    return cells


def table3(*, dataset: str = "mnist", noise_levels: Sequence[float] = MNIST_LEVELS, **common) -> list[Cell]:
    """Table 3 (MNIST, GRU inference network: one recurrent layer run for five steps).

    The paper's rows are "DVAE (GRU)" and "DIWAE (GRU)"; we train them with K = 1 and K = 5, as
    Table 1's DVAE K=1 and DIWAE K=5 rows (the paper does not restate K for this table).
    """
    cells = []
    for label, objective, k in (("DVAE (GRU)", "dvae", 1), ("DIWAE (GRU)", "diwae", 5)):
        for level in noise_levels:
            config = TrainConfig(dataset=dataset, binarization="static", objective=objective, noise="salt-pepper",
                                 noise_level=level, num_samples=k, encoder="gru", encoder_layers=1, **common)
            paper = _paper(TABLE3, (label, 1, round(level, 4)), dataset)
            cells.append(Cell(f"{label}, {_percent(level)}", config, paper, row=label, column=_percent(level)))
    return cells


def figure1(*, dataset: str = "mnist", num_corruptions: Sequence[int] = (1, 5, 10), noise_level: float = 0.10,
            encoder_layers: int = 2, num_samples: int = 1, **common) -> list[Cell]:
    """Figure 1: DVAE and DIWAE (K = 1) with M = 1, 5, 10 corrupted copies; the paper's converged values."""
    cells = []
    for name, objective in (("DVAE", "dvae"), ("DIWAE", "diwae")):
        for m in num_corruptions:
            config = TrainConfig(dataset=dataset, binarization="static", objective=objective, noise="salt-pepper",
                                 noise_level=noise_level, num_corruptions=m, num_samples=num_samples,
                                 encoder_layers=encoder_layers, **common)
            paper = FIGURE1.get((name, m))
            cells.append(Cell(f"{name} M={m}", config, None if paper is None else (paper, 0.0),
                              row=name, column=f"M={m}"))
    return cells


def augmentation(*, dataset: str = "mnist", noise_level: float = 0.05, num_samples: int = 5, encoder_layers: int = 2,
                 **common) -> list[Cell]:
    """Sec. 4, data augmentation against data corruption: VAE / IWAE on images re-binarized every epoch
    against DVAE / DIWAE with salt-and-pepper noise on the static binarization.

    The paper does not state the noise level, K and depth of this comparison; we use 5 %, K = 5 for the
    importance-weighted rows and 2 encoder layers (change them with the arguments).
    """
    rows = (("VAE", "vae", "dynamic", 1), ("IWAE", "iwae", "dynamic", num_samples),
            ("DVAE", "dvae", "static", 1), ("DIWAE", "diwae", "static", num_samples))
    cells = []
    for name, objective, binarization, k in rows:
        noisy = objective in ("dvae", "diwae")
        config = TrainConfig(dataset=dataset, binarization=binarization, objective=objective,
                             noise="salt-pepper" if noisy else "none", noise_level=noise_level if noisy else 0.0,
                             num_samples=k, encoder_layers=encoder_layers, **common)
        column = "re-binarized each epoch" if binarization == "dynamic" else f"salt-and-pepper {_percent(noise_level)}"
        paper = _paper(DATA_AUGMENTATION, name, dataset)
        cells.append(Cell(f"{name}, {column}", config, paper, row=name, column=column))
    return cells


def mean_image(*, dataset: str = "mnist", noise_levels: Sequence[float] = (0.05, 0.10, 0.15), encoder_layers: int = 2,
               **common) -> list[Cell]:
    """Mean-image noise (corruption where the digits have ink) against plain salt-and-pepper, same mean rate.

    The paper gives no numbers for this comparison; the cells carry none.
    """
    cells = []
    for label, objective, k in (("DVAE K=1", "dvae", 1), ("DIWAE K=5", "diwae", 5)):
        for noise in ("salt-pepper", "mean-image"):
            for level in noise_levels:
                config = TrainConfig(dataset=dataset, binarization="static", objective=objective, noise=noise,
                                     noise_level=level, num_samples=k, encoder_layers=encoder_layers, **common)
                row = f"{label}, {noise}"
                cells.append(Cell(f"{row}, {_percent(level)}", config, None, row=row, column=_percent(level)))
    return cells


GRIDS: dict[str, Callable[..., list[Cell]]] = {
    "table1": table1, "table2": table2, "table3": table3, "figure1": figure1,
    "augmentation": augmentation, "mean-image": mean_image,
}
