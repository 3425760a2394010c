"""Checkpoints: one file per run, only tensors and plain values, written atomically.

Layout (a dict saved with ``torch.save``)::

    format            "dvae-explorer-checkpoint"
    format_version    1
    config            TrainConfig as a plain dict
    model_spec        ModelSpec as a plain dict (input size, likelihood, layers)
    model_state       state_dict of the model (tensors)
    optimizer_state   Adam state_dict, or None in slimmed, shipped files
    generator_state   uint8 tensor: the training RNG, for exact resumption
    generator_device  "cpu" or "cuda": the device type that RNG state belongs to
    position          None, or where a run stopped inside an epoch (epoch, batch, that epoch's
                      starting RNG state, objective summed so far, seconds so far)
    history           {"epoch": [...], "train_objective": [...], ...} plain lists
    metrics           {"neg_elbo": ..., "nll_is": ..., ...} plain numbers
    status, message   how the run ended
    dataset_image_shape  [H, W]
    created           ISO time string

It is read with ``torch.load(weights_only=True)``, which never unpickles
arbitrary objects. Truncated, foreign or wrong-version files raise
:class:`CheckpointError` with a message naming the problem.
"""

from __future__ import annotations

import io
import os
import pickle
import tempfile
import zipfile
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path

import torch

from .models import VAE, ModelSpec
from .training import TrainConfig, TrainResult

FORMAT = "dvae-explorer-checkpoint"
FORMAT_VERSION = 1
MAX_UPLOAD_BYTES = 64 * 2**20
REQUIRED_KEYS = ("format", "format_version", "config", "model_spec", "model_state", "history")


class CheckpointError(ValueError):
    """A file is not a readable checkpoint of this format; the message says why."""


@dataclass
class Checkpoint:
    """A loaded run: ``.model`` (eval mode), ``.config``, ``.history``, ``.metrics``."""

    model: VAE
    config: TrainConfig
    history: dict
    metrics: dict
    payload: dict
    path: Path | None = None

    @property
    def image_shape(self) -> tuple[int, int]:
        return tuple(self.payload.get("dataset_image_shape") or (0, 0))  # type: ignore[return-value]

    @property
    def name(self) -> str:
        return self.path.stem if self.path is not None else self.config.describe()


def make_payload(
    result: TrainResult,
    image_shape: tuple[int, int],
    metrics: dict | None = None,
    include_optimizer: bool = True,
) -> dict:
    """The dict that :func:`save_checkpoint` writes, built from a training result."""
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "config": result.config.to_dict(),
        "model_spec": asdict(result.model.spec),
        "model_state": {k: v.detach().cpu().clone() for k, v in result.model.state_dict().items()},
        "optimizer_state": (_to_cpu(result.optimizer.state_dict())
                            if include_optimizer and result.optimizer is not None else None),
        "generator_state": None if result.generator_state is None else result.generator_state.cpu(),
        "generator_device": result.generator_device,
        "position": None if result.position is None else _to_cpu(dict(result.position)),
        "history": {k: list(v) for k, v in result.history.items()},
        "metrics": dict(metrics or {}),
        "status": result.status,
        "message": result.message,
        "dataset_image_shape": list(image_shape),
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }


def _to_cpu(obj):
    if isinstance(obj, torch.Tensor):
        return obj.detach().cpu()
    if isinstance(obj, dict):
        return {k: _to_cpu(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_to_cpu(v) for v in obj)
    return obj


def save_payload(payload: dict, path: str | os.PathLike) -> Path:
    """Write ``payload`` to ``path`` atomically: a temporary file in the same folder, then rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes the file private; a checkpoint is an ordinary file
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(payload, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def save_checkpoint(
    result: TrainResult,
    path: str | os.PathLike,
    image_shape: tuple[int, int],
    metrics: dict | None = None,
    include_optimizer: bool = True,
) -> Path:
    """Save a training result as one checkpoint file (atomically)."""
    return save_payload(make_payload(result, image_shape, metrics, include_optimizer), path)


def load_payload(source: str | os.PathLike | bytes, max_bytes: int | None = None) -> dict:
    """Read and validate a checkpoint's raw dict from a path or from bytes (e.g. an upload)."""
    if isinstance(source, (bytes, bytearray)):
        if max_bytes is not None and len(source) > max_bytes:
            raise CheckpointError(f"file is {len(source) / 2**20:.1f} MB; the limit is {max_bytes / 2**20:.0f} MB")
        handle, label = io.BytesIO(source), "uploaded file"
    else:
        path = Path(source)
        if not path.is_file():
            raise CheckpointError(f"no checkpoint file at {path}")
        if max_bytes is not None and path.stat().st_size > max_bytes:
            raise CheckpointError(f"{path.name} is larger than the {max_bytes / 2**20:.0f} MB limit")
        handle, label = path, path.name
    head = source[:4] if isinstance(source, (bytes, bytearray)) else _read_head(handle)
    if head[:2] != b"PK" and head[:1] != b"\x80":  # neither torch's zip format nor a legacy pickle
        raise CheckpointError(f"{label} is not a PyTorch checkpoint file")
    try:
        payload = torch.load(handle, map_location="cpu", weights_only=True)
    except (zipfile.BadZipFile, EOFError) as err:
        raise CheckpointError(f"{label} is truncated or not a PyTorch file ({err})") from None
    except pickle.UnpicklingError:
        raise CheckpointError(
            f"{label} is not a safe checkpoint of this app: it holds Python objects that a safe load "
            "(weights_only=True) refuses to unpickle"
        ) from None
    except RuntimeError as err:
        text = str(err)
        if "zip" in text.lower() or "archive" in text.lower() or "file" in text.lower():
            raise CheckpointError(f"{label} is truncated or damaged ({text.splitlines()[0]})") from None
        raise CheckpointError(f"{label} could not be read: {text.splitlines()[0]}") from None
    except Exception as err:  # noqa: BLE001 — any other unpickling failure ends here, named
        first = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise CheckpointError(f"{label} is not a safe checkpoint of this app ({type(err).__name__}: {first})") from None
    validate_payload(payload, label)
    return payload


def _read_head(path: Path) -> bytes:
    with path.open("rb") as f:
        return f.read(4)


def validate_payload(payload, label: str = "checkpoint") -> None:
    """Raise :class:`CheckpointError` unless ``payload`` has this format's schema."""
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(f"{label} is not a DVAE Explorer checkpoint (no '{FORMAT}' marker)")
    version = payload.get("format_version")
    if version != FORMAT_VERSION:
        raise CheckpointError(
            f"{label} has checkpoint format version {version!r}; this engine reads version {FORMAT_VERSION}"
        )
    missing = [k for k in REQUIRED_KEYS if k not in payload]
    if missing:
        raise CheckpointError(f"{label} lacks required field(s): {', '.join(missing)}")
    if not isinstance(payload["model_state"], dict) or not all(
        isinstance(v, torch.Tensor) for v in payload["model_state"].values()
    ):
        raise CheckpointError(f"{label}: model_state must map names to tensors")
    if not isinstance(payload["history"], dict):
        raise CheckpointError(f"{label}: history must be a dict of lists")


def checkpoint_from_payload(payload: dict, path: Path | None = None, device: str | torch.device = "cpu") -> Checkpoint:
    """Build the model and config of a validated payload."""
    label = path.name if path is not None else "checkpoint"
    try:
        config = TrainConfig.from_dict(payload["config"])
        spec = ModelSpec(**payload["model_spec"])
    except (TypeError, ValueError) as err:
        raise CheckpointError(f"{label} has an invalid config: {err}") from None
    model = VAE(spec)
    try:
        model.load_state_dict(payload["model_state"])
    except RuntimeError as err:
        raise CheckpointError(f"{label}: weights do not match its model spec ({str(err).splitlines()[0]})") from None
    model.to(device).eval()
    return Checkpoint(model, config, payload["history"], payload.get("metrics") or {}, payload, path)


def load_checkpoint(
    path: str | os.PathLike | bytes, device: str | torch.device = "cpu", max_bytes: int | None = None
) -> Checkpoint:
    """Load a checkpoint safely (``weights_only=True``).

    Returns a :class:`Checkpoint` with ``.model`` (eval mode), ``.config``, ``.history`` and ``.metrics``.
    """
    payload = load_payload(path, max_bytes=max_bytes)
    return checkpoint_from_payload(payload, None if isinstance(path, (bytes, bytearray)) else Path(path), device)


def update_metrics(path: str | os.PathLike, metrics: dict) -> None:
    """Merge ``metrics`` into a checkpoint file's stored metrics (rewritten atomically)."""
    payload = load_payload(path)
    payload["metrics"] = {**(payload.get("metrics") or {}), **metrics}
    save_payload(payload, path)


def slim(path: str | os.PathLike, out: str | os.PathLike | None = None) -> Path:
    """Drop optimizer and RNG state (for shipped files): about a third of the size."""
    payload = load_payload(path)
    payload["optimizer_state"] = None
    payload["generator_state"] = None
    payload["position"] = None
    return save_payload(payload, out or path)
