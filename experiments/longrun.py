"""Long training runs that survive interruptions: train in chunks, save the full state, resume exactly.

:func:`advance` trains a run up to a target epoch from its saved state (``runs/<name>.pt``:
weights, Adam, random state and, after a stop, the position inside the epoch), then saves it
again. Killing the process at any moment loses at most the work since the last save, and the
resumed run is the uninterrupted one (see :func:`dvae_engine.training.train`). The state with
the best clean validation bound of the run's own kind is kept beside it (``<name>.best.pt``).
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

from dvae_engine import checkpoint as ckpt
from dvae_engine.data import Dataset
from dvae_engine.training import TrainConfig, TrainingDivergedError, train


def validation_key(config: TrainConfig) -> str:
    """The clean validation bound a run is selected by: the IWAE bound for IW objectives, else the ELBO."""
    return "valid_iwae" if config.objective in ("iwae", "diwae") else "valid_elbo"


def epochs_done(path: Path) -> int:
    return len(ckpt.load_payload(path)["history"]["epoch"]) if path.exists() else 0


def advance(config: TrainConfig, dataset: Dataset, path: Path, until: int, *, deadline: float | None = None,
            log=print) -> tuple[int, str]:
    """Train the run saved at ``path`` (or a new one) up to epoch ``until``; returns (epochs done, status).

    ``deadline`` (a ``time.time()`` value) stops the run inside an epoch when reached; the state is
    saved with its position, so the next call resumes exactly there.
    """
    payload = ckpt.load_payload(path) if path.exists() else None
    done = len(payload["history"]["epoch"]) if payload else 0
    if done >= until and not (payload and payload.get("position")):
        return done, "finished"
    stop = threading.Event()
    timer = None
    if deadline is not None:
        timer = threading.Timer(max(0.0, deadline - time.time()), stop.set)
        timer.daemon = True
        timer.start()
    try:
        result = train(config.replace(epochs=until), dataset, resume=payload, stop_event=stop)
    except TrainingDivergedError as err:
        result = err.result
    finally:
        if timer is not None:
            timer.cancel()
    new_payload = ckpt.make_payload(result, dataset.image_shape)
    ckpt.save_payload(new_payload, path)
    key = validation_key(config)
    values = result.history[key]
    if values and result.epochs_done > done:
        best_path = path.with_suffix(".best.pt")
        best = ckpt.load_payload(best_path)["metrics"].get("selected_valid_bound") if best_path.exists() else None
        if best is None or values[-1] > best:
            kept = ckpt.make_payload(result, dataset.image_shape,
                                     {"selected_epoch": result.epochs_done, "selected_valid_bound": values[-1],
                                      "selected_by": key})
            kept["position"] = None  # the kept state is the one after its last full epoch
            if result.position is None:
                ckpt.save_payload(kept, best_path)
        h = result.history
        log(f"{time.strftime('%H:%M:%S')} {path.stem}: epoch {result.epochs_done}/{until} "
            f"train {h['train_objective'][-1]:.2f} {key} {values[-1]:.2f} "
            f"({sum(h['seconds'][done:]):.0f}s) {result.status}")
    return result.epochs_done, result.status
