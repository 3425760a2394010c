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

Reading is defensive, because files come from users (uploads): before
``torch.load`` the zip archive is checked (sizes, entry count, no compressed
entries, one pickle of bounded size); ``torch.load(weights_only=True)``
never unpickles arbitrary objects (and maps a file on disk instead of reading
it); then every field is checked — ``model_spec`` against :data:`SPEC_LIMITS`,
every weight's name, shape and dtype against the model the spec describes
(computed on PyTorch's "meta" device, which allocates nothing) — before any
real module is built. Every problem raises :class:`CheckpointError` with a
plain-language message saying what is wrong and what is allowed.

Writing never changes the process umask (the app is threaded): the temporary
file is created with mode 0o666 and the operating system applies the umask.
"""

from __future__ import annotations

import io
import os
import pickle
import secrets
import warnings
import zipfile
from dataclasses import asdict, dataclass, fields
from datetime import datetime, timezone
from pathlib import Path

import torch

from .models import VAE, ModelSpec
from .training import TrainConfig, TrainResult

FORMAT = "dvae-explorer-checkpoint"
FORMAT_VERSION = 1
MAX_UPLOAD_BYTES = 64 * 2**20
MAX_FILE_BYTES = 512 * 2**20  # a file on disk (optimizer state included); uploads have MAX_UPLOAD_BYTES
MAX_PICKLE_BYTES = 4 * 2**20  # the archive's data.pkl: config, history, metrics (ours are ~10-300 kB)
MAX_ARCHIVE_ENTRIES = 4096
REQUIRED_KEYS = ("format", "format_version", "config", "model_spec", "model_state", "history")
# The largest model this app loads: every dimension is bounded, and so is the total.
SPEC_LIMITS = {"input_dim": 65_536, "latent_dim": 2_048, "hidden_units": 8_192, "gru_steps": 100}
LAYER_CHOICES = (1, 2, 3)
MAX_PARAMETERS = 64 * 2**20  # 256 MB of float32 weights
MAX_IMAGE_SIDE = 4_096
MAX_HISTORY_LENGTH = 100_000
FLOAT_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)


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


def _create_temporary(folder: Path, prefix: str) -> tuple[int, Path]:
    """A new, empty file in ``folder`` opened for writing: ``(fd, path)``.

    Created with ``O_CREAT | O_EXCL`` and mode 0o666, so the operating system applies the
    process umask as for any ordinary file; the umask itself is never read or changed.
    """
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
    while True:
        path = folder / f".{prefix}.{secrets.token_hex(6)}.tmp"
        try:
            return os.open(path, flags, 0o666), path
        except FileExistsError:
            continue


def write_new_file(folder: str | os.PathLike, prefix: str, write) -> Path:
    """Write a temporary file in ``folder`` with ``write(f)``, flushed to disk; returns its path.

    The caller moves it into place (``os.replace`` or ``os.link``) and removes it if that fails.
    """
    fd, tmp = _create_temporary(Path(folder), prefix)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return tmp


def save_payload(payload: dict, path: str | os.PathLike) -> Path:
    """Write ``payload`` to ``path`` atomically: a temporary file in the same folder, then rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = write_new_file(path.parent, path.name, lambda f: torch.save(payload, f))
    try:
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
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
    """Read and validate a checkpoint's raw dict from a path or from bytes (e.g. an upload).

    Nothing larger than the limits is ever allocated: the archive's layout and sizes are
    checked before ``torch.load``, and the payload's fields (see :func:`validate_payload`)
    after it; every problem is a :class:`CheckpointError` in plain words.
    """
    limit = max_bytes if max_bytes is not None else MAX_FILE_BYTES
    if isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
        label = "the uploaded file"
        size = len(data)
    else:
        path = Path(source)
        label = path.name
        if not path.is_file():
            raise CheckpointError(f"no checkpoint file at {path}")
        size = path.stat().st_size
        data = None
    if size > limit:
        raise CheckpointError(f"{label} is {size / 2**20:.1f} MB; the limit is {limit / 2**20:.0f} MB")
    if size == 0:
        raise CheckpointError(f"{label} is empty (0 bytes); a checkpoint is a PyTorch .pt file of this app")
    head = data[:4] if data is not None else _read_head(path)
    if head[:1] == b"\x80":
        raise CheckpointError(
            f"{label} is a plain Python pickle, not a checkpoint of this app: this app reads only PyTorch's "
            "zip-format .pt files (torch.save since PyTorch 1.6) and never unpickles Python objects")
    if head[:2] != b"PK":
        raise CheckpointError(f"{label} is not a checkpoint file: it is not a PyTorch .pt (zip) archive")
    _check_archive(io.BytesIO(data) if data is not None else path, size, label)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if data is not None:
                payload = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
            else:
                payload = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except pickle.UnpicklingError:
        raise CheckpointError(
            f"{label} is not a safe checkpoint of this app: it holds Python objects other than tensors, numbers, "
            "text, lists and dicts, which this app never unpickles") from None
    except (zipfile.BadZipFile, EOFError, RuntimeError, OSError):
        raise CheckpointError(f"{label} is damaged or incomplete (truncated?): PyTorch cannot read it") from None
    except Exception:  # noqa: BLE001 — anything else an adversarial file provokes ends here, in plain words
        raise CheckpointError(f"{label} is not a readable checkpoint of this app") from None
    validate_payload(payload, label)
    return payload


def _read_head(path: Path) -> bytes:
    with path.open("rb") as f:
        return f.read(4)


def _check_archive(handle, size: int, label: str) -> None:
    """The zip layout ``torch.save`` writes: one folder, a bounded ``data.pkl``, stored (never compressed) records.

    Reads only the archive's directory. Stored records cannot expand beyond the file's own size,
    so nothing read later can be larger than the file.
    """
    damaged = f"{label} is damaged or incomplete (truncated?): its zip directory cannot be read"
    try:
        with zipfile.ZipFile(handle) as archive:
            infos = archive.infolist()
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError, ValueError, NotImplementedError):
        raise CheckpointError(damaged) from None
    if not infos:
        raise CheckpointError(f"{label} is an empty zip archive, not a checkpoint")
    if len(infos) > MAX_ARCHIVE_ENTRIES:
        raise CheckpointError(f"{label} has {len(infos)} archive entries; a checkpoint has at most "
                              f"{MAX_ARCHIVE_ENTRIES}")
    names = [info.filename for info in infos]
    pickles = [info for info in infos if info.filename.endswith("/data.pkl") and info.filename.count("/") == 1]
    if len(pickles) != 1:
        raise CheckpointError(f"{label} is a zip archive but not a PyTorch checkpoint (no data.pkl record)")
    prefix = pickles[0].filename.split("/", 1)[0] + "/"
    if len(set(names)) != len(names) or not all(name.startswith(prefix) for name in names):
        raise CheckpointError(f"{label} is a zip archive but not a PyTorch checkpoint (unexpected entries)")
    total = 0
    for info in infos:
        if info.compress_type != zipfile.ZIP_STORED:
            raise CheckpointError(f"{label} holds compressed records; PyTorch checkpoints store them uncompressed")
        if info.file_size != info.compress_size or info.header_offset + info.file_size > size:
            raise CheckpointError(damaged)
        total += info.file_size
    if total > size:
        raise CheckpointError(damaged)
    if pickles[0].file_size > MAX_PICKLE_BYTES:
        raise CheckpointError(f"{label}: its settings and history take {pickles[0].file_size / 2**20:.1f} MB; "
                              f"the limit is {MAX_PICKLE_BYTES / 2**20:.0f} MB")


def _fail(label: str, text: str):
    raise CheckpointError(f"{label}: {text}")


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def validate_spec(values, label: str = "checkpoint") -> ModelSpec:
    """A :class:`ModelSpec` from a stored dict, every field checked against :data:`SPEC_LIMITS` first."""
    if not isinstance(values, dict) or not all(isinstance(k, str) for k in values):
        _fail(label, "model_spec must be a dict of named settings")
    known = {f.name: f for f in fields(ModelSpec)}
    unknown = sorted(set(values) - set(known))
    if unknown:
        _fail(label, f"model_spec has unknown setting(s) {', '.join(repr(u[:40]) for u in unknown[:5])}")
    if "input_dim" not in values:
        _fail(label, "model_spec lacks input_dim")
    for name in ("input_dim", "latent_dim", "hidden_units", "gru_steps"):
        if name in values:
            value, high = values[name], SPEC_LIMITS[name]
            if not _is_int(value) or not 1 <= value <= high:
                _fail(label, f"model_spec {name} must be a whole number from 1 to {high:,}, not {_short(value)}")
    for name in ("encoder_layers", "decoder_layers"):
        if name in values and (not _is_int(values[name]) or values[name] not in LAYER_CHOICES):
            _fail(label, f"model_spec {name} must be 1, 2 or 3, not {_short(values[name])}")
    choices = {"encoder": ("mlp", "gru"), "activation": ("softplus", "tanh", "relu"),
               "likelihood": ("bernoulli", "gaussian")}
    for name, allowed in choices.items():
        if name in values and (not isinstance(values[name], str) or values[name] not in allowed):
            _fail(label, f"model_spec {name} must be one of {', '.join(allowed)}, not {_short(values[name])}")
    try:
        spec = ModelSpec(**values)
    except (TypeError, ValueError) as err:
        _fail(label, f"invalid model_spec ({err})")
    count = parameter_count(spec)
    if count > MAX_PARAMETERS:
        _fail(label, f"its model_spec describes {count:,} weights; the limit is {MAX_PARAMETERS:,}")
    return spec


def parameter_count(spec: ModelSpec) -> int:
    """The number of weights of ``VAE(spec)``, by arithmetic (nothing is built)."""
    h, d, z = spec.hidden_units, spec.input_dim, spec.latent_dim
    if spec.encoder == "gru":
        encoder = 3 * h * (d + h) + 6 * h + (h + 1) * 2 * z
    else:
        sizes = [d] + [h] * spec.encoder_layers + [2 * z]
        encoder = sum((a + 1) * b for a, b in zip(sizes[:-1], sizes[1:]))
    out = (1 if spec.likelihood == "bernoulli" else 2) * d
    sizes = [z] + [h] * spec.decoder_layers + [out]
    return encoder + sum((a + 1) * b for a, b in zip(sizes[:-1], sizes[1:]))


def expected_shapes(spec: ModelSpec) -> dict[str, tuple[int, ...]]:
    """Weight name → shape of ``VAE(spec)``, built on the "meta" device (no memory is allocated)."""
    with torch.device("meta"):
        model = VAE(spec)
    return {name: tuple(t.shape) for name, t in model.state_dict().items()}


def _short(value) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def validate_payload(payload, label: str = "checkpoint") -> None:
    """Raise :class:`CheckpointError` unless ``payload`` has this format's schema and sane sizes.

    Checks the marker and version, the config (a valid :class:`TrainConfig`), the model spec
    (every dimension within :data:`SPEC_LIMITS`), and that ``model_state`` holds exactly the
    weights that spec describes — names, shapes, floating dtypes, finite values, real storage
    (no broadcast views) — plus the types of history, metrics and the other fields.
    Unknown extra fields are allowed (newer writers may add some).
    """
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(f"{label} is not a DVAE Explorer checkpoint (no '{FORMAT}' marker): "
                              "it may be a PyTorch file from another program")
    version = payload.get("format_version")
    if version != FORMAT_VERSION:
        raise CheckpointError(
            f"{label} has checkpoint format version {_short(version)}; this app reads version {FORMAT_VERSION}"
        )
    missing = [k for k in REQUIRED_KEYS if k not in payload]
    if missing:
        raise CheckpointError(f"{label} lacks required field(s): {', '.join(missing)}")
    config = payload["config"]
    if not isinstance(config, dict) or not all(isinstance(k, str) for k in config):
        _fail(label, "config must be a dict of named settings")
    try:
        TrainConfig.from_dict(config).describe()
    except Exception as err:  # noqa: BLE001 — any bad value in a stored config is the file's fault
        text = str(err).removeprefix("invalid training config: ")
        _fail(label, f"its training settings are invalid ({text[:300] or type(err).__name__})")
    spec = validate_spec(payload["model_spec"], label)
    state = payload["model_state"]
    if not isinstance(state, dict) or not all(isinstance(k, str) and isinstance(v, torch.Tensor)
                                              for k, v in state.items()):
        _fail(label, "model_state must map weight names to tensors")
    expected = expected_shapes(spec)
    if set(state) != set(expected):
        absent = sorted(set(expected) - set(state))
        extra = sorted(set(state) - set(expected))
        detail = "; ".join(part for part in (
            f"missing {', '.join(absent[:4])}" if absent else "",
            f"unexpected {', '.join(_short(e) for e in extra[:4])}" if extra else "") if part)
        _fail(label, f"weights do not match its model spec ({detail})")
    for name, shape in expected.items():
        tensor = state[name]
        if tuple(tensor.shape) != shape:
            _fail(label, f"weights do not match its model spec ({name} is {tuple(tensor.shape)}, the spec "
                         f"needs {shape})")
        if tensor.dtype not in FLOAT_DTYPES or tensor.layout != torch.strided or tensor.device.type != "cpu":
            _fail(label, f"weight {name} must be a dense floating-point tensor, not {tensor.dtype}")
        needed = (tensor.storage_offset() + tensor.numel()) * tensor.element_size()
        if not tensor.is_contiguous() or tensor.untyped_storage().nbytes() < needed:
            _fail(label, f"weight {name} is not stored in full")
        if not bool(torch.isfinite(tensor).all()):
            _fail(label, f"weight {name} holds NaN or infinite values")
    shape = payload.get("dataset_image_shape")
    if shape not in (None, [], ()):
        if (not isinstance(shape, (list, tuple)) or len(shape) != 2 or not all(_is_int(v) for v in shape)
                or not all(1 <= v <= MAX_IMAGE_SIDE for v in shape)):
            _fail(label, f"dataset_image_shape must be [height, width] from 1 to {MAX_IMAGE_SIDE}, "
                         f"not {_short(shape)}")
        if shape[0] * shape[1] != spec.input_dim:
            _fail(label, f"its image size {shape[0]}×{shape[1]} does not match the model's {spec.input_dim} inputs")
    history = payload["history"]
    if not isinstance(history, dict):
        _fail(label, "history must be a dict of lists")
    for key, values in history.items():
        if (not isinstance(key, str) or not isinstance(values, list) or len(values) > MAX_HISTORY_LENGTH
                or not all(v is None or _is_number(v) for v in values)):
            _fail(label, f"history {_short(key)} must be a list of at most {MAX_HISTORY_LENGTH:,} numbers")
    metrics = payload.get("metrics")
    if metrics is not None and (not isinstance(metrics, dict) or not all(
            isinstance(k, str) and (v is None or isinstance(v, (int, float, str, bool))) for k, v in metrics.items())):
        _fail(label, "metrics must be a dict of named numbers")
    for key in ("status", "message", "created"):
        if payload.get(key) is not None and not isinstance(payload[key], str):
            _fail(label, f"{key} must be text")
    generator = payload.get("generator_state")
    if generator is not None and (not isinstance(generator, torch.Tensor) or generator.dtype != torch.uint8):
        _fail(label, "generator_state must be a byte tensor")
    optimizer = payload.get("optimizer_state")
    if optimizer is not None and not isinstance(optimizer, dict):
        _fail(label, "optimizer_state must be a dict")


def checkpoint_from_payload(payload: dict, path: Path | None = None, device: str | torch.device = "cpu") -> Checkpoint:
    """Build the model and config of a payload (validated first: nothing is allocated for a bad one)."""
    label = path.name if path is not None else "checkpoint"
    validate_payload(payload, label)
    config = TrainConfig.from_dict(payload["config"])
    spec = ModelSpec(**payload["model_spec"])
    model = VAE(spec)
    try:
        model.load_state_dict(payload["model_state"])
    except RuntimeError:
        raise CheckpointError(f"{label}: weights do not match its model spec") from None
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
