"""Property-based fuzzing of the checkpoint loader (hypothesis): whatever a user uploads, the answer is a clear
:class:`CheckpointError` (or, for a file that really is valid, a loaded checkpoint), within a time and memory
bound, with nothing executed and the process alive.

Cases: adversarial ``model_spec`` and ``config`` dicts, weights of the wrong shape, dtype or storage (broadcast
views that claim far more elements than the file holds), a real shipped checkpoint truncated at many offsets or
with bytes overwritten, foreign PyTorch files, plain pickles and archives with a malicious pickle inside.

Bounds (generous on purpose; they prove "nothing huge was allocated or computed", not speed): each case may raise
the process's peak resident memory by at most :data:`MEMORY_BOUND_MB` above what it held before the case, and
take at most :data:`TIME_BOUND_S`. Before the loader checked sizes, a 1.7 MB upload whose spec claimed
``hidden_units=30000`` took 48 s and 7 GB. Peak memory is read from ``/proc/self/status`` (VmHWM), reset
before each case through ``/proc/self/clear_refs``; where that is not available only the time bound is checked.
"""

from __future__ import annotations

import io
import pickle
import re
import time
import zipfile
from dataclasses import asdict
from pathlib import Path

import pytest
import torch

hypothesis = pytest.importorskip("hypothesis", reason="the fuzz tests need hypothesis (pip install -e '.[test]')")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from dvae_engine import checkpoint as ckpt  # noqa: E402
from dvae_engine.models import ModelSpec  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = ROOT / "checkpoints" / "mnist-vae.pt"
MEMORY_BOUND_MB = 300
TIME_BOUND_S = 20.0
FUZZ = settings(max_examples=60, deadline=None, database=None, print_blob=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

EXECUTED = []  # anything an exploit manages to run appends here


def _mark_executed(*args):
    EXECUTED.append(args)


class Exploit:
    """Unpickling this calls a function: a safe loader must refuse it, never call it."""

    def __reduce__(self):
        return (_mark_executed, ("unpickled!",))


def _peak_kb() -> int | None:
    try:
        return int(re.search(r"VmHWM:\s+(\d+)", Path("/proc/self/status").read_text()).group(1))
    except (OSError, AttributeError):
        return None


def _reset_peak() -> bool:
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def load_bounded(data: bytes, max_bytes: int | None = ckpt.MAX_UPLOAD_BYTES):
    """Load ``data`` like an upload; returns the Checkpoint or the CheckpointError. Checks the bounds."""
    measure = _reset_peak()
    before = _peak_kb() if measure else None
    start = time.monotonic()
    try:
        outcome = ckpt.load_checkpoint(data, max_bytes=max_bytes)
    except ckpt.CheckpointError as err:
        outcome = err
    elapsed = time.monotonic() - start
    assert elapsed < TIME_BOUND_S, f"took {elapsed:.1f} s"
    if before is not None:
        grown_mb = (_peak_kb() - before) / 1024
        assert grown_mb < MEMORY_BOUND_MB, f"peak memory grew by {grown_mb:.0f} MB"
    assert not EXECUTED, "a pickle payload was executed"
    if isinstance(outcome, ckpt.CheckpointError):
        text = str(outcome)
        assert text and len(text) < 1000
        for internal in ("0x", "Traceback", "miniz", "PytorchStreamReader", "alloc_cpu", "enforce fail"):
            assert internal not in text, text
    return outcome


def to_bytes(obj) -> bytes:
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def real() -> tuple[dict, bytes]:
    """A real shipped checkpoint: its payload and its bytes."""
    if not SHIPPED.is_file():
        pytest.skip(f"{SHIPPED} is missing")
    data = SHIPPED.read_bytes()
    return ckpt.load_payload(data), data


@pytest.fixture(scope="module")
def small(tiny_checkpoints) -> dict:
    """A small real payload (digits, 64 inputs): cheap to re-serialise once per example."""
    return ckpt.load_payload(tiny_checkpoints / "digits-dvae-2d.pt")


# --- adversarial model_spec ------------------------------------------------------------------------

dims = st.one_of(
    st.sampled_from([0, 1, 2, 3, 5, 50, 64, 100, 200, 784, 8192, 8193, 30_000, 65_536, 65_537, 10**7, 2**31, 2**63]),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.booleans(), st.floats(allow_nan=True), st.text(max_size=6), st.none(), st.lists(st.integers(), max_size=3),
)
words = st.one_of(st.sampled_from(["mlp", "gru", "softplus", "tanh", "relu", "bernoulli", "gaussian", "", "MLP"]),
                  st.text(max_size=8), st.integers(), st.none())
spec_dicts = st.fixed_dictionaries({}, optional={
    "input_dim": dims, "latent_dim": dims, "hidden_units": dims, "encoder": words, "encoder_layers": dims,
    "decoder_layers": dims, "activation": words, "likelihood": words, "gru_steps": dims,
    "extra": st.integers(), "__class__": st.text(max_size=5),
})


@FUZZ
@given(changes=spec_dicts, replace_all=st.booleans())
def test_adversarial_model_spec_is_refused_cleanly(small, changes, replace_all):
    payload = dict(small)
    payload["model_spec"] = changes if replace_all else {**small["model_spec"], **changes}
    outcome = load_bounded(to_bytes(payload))
    if not isinstance(outcome, ckpt.CheckpointError):  # only a spec that describes these very weights loads
        assert asdict(outcome.model.spec) == asdict(ModelSpec(**small["model_spec"]))


@FUZZ
@given(spec=st.fixed_dictionaries({
    "input_dim": st.sampled_from([64, 784, 4096, 16_384, 65_536]),
    "hidden_units": st.sampled_from([200, 1024, 4096, 8192]),
    "latent_dim": st.sampled_from([2, 50, 512, 2048]),
    "encoder": st.sampled_from(["mlp", "gru"]),
    "likelihood": st.sampled_from(["bernoulli", "gaussian"]),
}))
def test_huge_specs_with_weights_that_claim_to_match_allocate_nothing(spec, small):
    """Weights of exactly the claimed shapes, stored as broadcast views of one number (a tiny file)."""
    full = ModelSpec(**spec)
    payload = dict(small)
    payload["model_spec"] = asdict(full)
    payload["dataset_image_shape"] = None
    payload["model_state"] = {name: torch.zeros(1).expand(*shape) for name, shape in ckpt.expected_shapes(full).items()}
    outcome = load_bounded(to_bytes(payload))
    assert isinstance(outcome, ckpt.CheckpointError)
    assert "limit" in str(outcome) or "not stored in full" in str(outcome)


# --- adversarial config ----------------------------------------------------------------------------

json_like = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(2**80), max_value=2**80) | st.floats(allow_nan=True)
    | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)
config_keys = st.sampled_from(["dataset", "objective", "noise", "noise_level", "num_corruptions", "num_samples",
                               "encoder", "encoder_layers", "hidden_units", "latent_dim", "batch_size", "lr",
                               "lr_schedule", "epochs", "seed", "device", "max_train_examples", "binarization",
                               "analytic_kl", "compile", "unknown_field"])


@FUZZ
@given(changes=st.dictionaries(config_keys, json_like, max_size=6),
       whole=st.one_of(st.none(), json_like))
def test_adversarial_config_is_refused_cleanly(small, changes, whole):
    payload = dict(small)
    payload["config"] = whole if whole is not None and not isinstance(whole, dict) else {**small["config"], **changes}
    outcome = load_bounded(to_bytes(payload))
    if not isinstance(outcome, ckpt.CheckpointError):
        outcome.config.describe()  # a config that loads is a usable one


@FUZZ
@given(field=st.sampled_from(["history", "metrics", "dataset_image_shape", "status", "generator_state",
                              "optimizer_state", "format_version", "model_state", "format"]),
       value=json_like)
def test_adversarial_other_fields_are_refused_cleanly(small, field, value):
    payload = dict(small)
    payload[field] = value
    load_bounded(to_bytes(payload))


@FUZZ
@given(name=st.sampled_from(["encoder.0.weight", "encoder.0.bias", "decoder.4.weight"]),
       kind=st.sampled_from(["shape", "dtype", "nan", "view", "int", "missing", "extra", "sparse"]))
def test_wrong_weights_are_refused_cleanly(small, name, kind):
    state = dict(small["model_state"])
    tensor = state[name]
    if kind == "shape":
        state[name] = torch.zeros(tensor.shape[0] + 1, *tensor.shape[1:])
    elif kind == "dtype":
        state[name] = tensor.to(torch.complex64)
    elif kind == "nan":
        state[name] = torch.full_like(tensor, float("nan"))
    elif kind == "view":
        state[name] = torch.zeros(1).expand(*tensor.shape)
    elif kind == "int":
        state[name] = tensor.to(torch.int64)
    elif kind == "missing":
        del state[name]
    elif kind == "extra":
        state["payload.exploit"] = torch.zeros(3)
    else:
        state[name] = tensor.to_sparse()
    payload = {**small, "model_state": state}
    outcome = load_bounded(to_bytes(payload))
    assert isinstance(outcome, ckpt.CheckpointError)


# --- damaged copies of a real checkpoint --------------------------------------------------------------

@FUZZ
@given(fraction=st.floats(min_value=0.0, max_value=1.0, exclude_max=True))
def test_a_real_checkpoint_truncated_anywhere_is_refused_cleanly(real, fraction):
    _, data = real
    cut = int(fraction * len(data))
    outcome = load_bounded(data[:cut])
    assert isinstance(outcome, ckpt.CheckpointError)


def test_truncation_at_every_archive_boundary(real):
    """The cuts most likely to confuse a zip reader: at and around every record's start and end."""
    _, data = real
    offsets = set()
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        for info in archive.infolist():
            for base in (info.header_offset, info.header_offset + 30 + len(info.filename), info.header_offset
                         + 30 + len(info.filename) + len(info.extra) + info.file_size):
                offsets.update(base + d for d in (-1, 0, 1))
    offsets.update(len(data) - d for d in (1, 2, 22, 23, 100))
    for cut in sorted(o for o in offsets if 0 <= o < len(data)):
        assert isinstance(load_bounded(data[:cut]), ckpt.CheckpointError), cut


@FUZZ
@given(edits=st.lists(st.tuples(st.floats(min_value=0, max_value=1, exclude_max=True), st.binary(min_size=1,
                                                                                                   max_size=8)),
                      min_size=1, max_size=4))
def test_a_real_checkpoint_with_overwritten_bytes_is_loaded_or_refused_cleanly(real, edits):
    _, data = real
    damaged = bytearray(data)
    for where, patch in edits:
        at = int(where * (len(damaged) - len(patch)))
        damaged[at:at + len(patch)] = patch
    load_bounded(bytes(damaged))  # either a valid checkpoint (a changed weight) or a clear error


# --- foreign files ------------------------------------------------------------------------------------

tensors = st.builds(lambda n, dtype: torch.zeros(n, dtype=dtype), st.integers(0, 100),
                    st.sampled_from([torch.float32, torch.int64, torch.uint8, torch.bool, torch.float16]))
foreign = st.recursive(json_like | tensors, lambda inner: st.lists(inner, max_size=4)
                       | st.dictionaries(st.text(max_size=10), inner, max_size=4), max_leaves=10)


@FUZZ
@given(obj=foreign, marked=st.booleans())
def test_foreign_torch_files_are_refused_cleanly(obj, marked):
    if marked and isinstance(obj, dict):  # a foreign file that even carries our marker
        obj = {**obj, "format": ckpt.FORMAT, "format_version": ckpt.FORMAT_VERSION}
    outcome = load_bounded(to_bytes(obj))
    assert isinstance(outcome, ckpt.CheckpointError)


@FUZZ
@given(obj=st.one_of(json_like, st.just(Exploit()), st.lists(st.just(Exploit()), max_size=3)),
       protocol=st.integers(0, pickle.HIGHEST_PROTOCOL))
def test_plain_pickles_are_refused_and_never_executed(obj, protocol):
    outcome = load_bounded(pickle.dumps(obj, protocol=protocol))
    assert isinstance(outcome, ckpt.CheckpointError)


@pytest.mark.parametrize("payload", [Exploit(), {"format": ckpt.FORMAT, "x": Exploit()}, [Exploit()]])
def test_a_torch_archive_with_a_malicious_pickle_is_refused_and_never_executed(payload):
    outcome = load_bounded(to_bytes(payload))
    assert isinstance(outcome, ckpt.CheckpointError)
    assert "never unpickles" in str(outcome) or "not a safe checkpoint" in str(outcome)


@FUZZ
@given(data=st.binary(max_size=4096), prefix=st.sampled_from([b"", b"PK\x03\x04", b"PK\x05\x06", b"\x80\x02",
                                                              b"\x89PNG"]))
def test_random_bytes_are_refused_cleanly(data, prefix):
    assert isinstance(load_bounded(prefix + data), ckpt.CheckpointError)


def test_zip_bombs_and_odd_archives_are_refused_before_reading(real):
    """Compressed records could expand far beyond the file; torch never writes them, so they are refused."""
    _, data = real
    bomb = io.BytesIO()
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("archive/data.pkl", b"\x80\x02}q\x00.")
        archive.writestr("archive/data/0", b"\0" * (256 * 2**20))  # 256 MB of zeros, a few hundred kB deflated
    outcome = load_bounded(bomb.getvalue())
    assert isinstance(outcome, ckpt.CheckpointError) and "compressed" in str(outcome)
    plain_zip = io.BytesIO()
    with zipfile.ZipFile(plain_zip, "w") as archive:
        archive.writestr("notes.txt", "hello")
    assert "not a PyTorch checkpoint" in str(load_bounded(plain_zip.getvalue()))
    big_pickle = io.BytesIO()
    with zipfile.ZipFile(big_pickle, "w") as archive:
        archive.writestr("archive/data.pkl", b"\x80\x02" + b"N0" * (3 * 2**20) + b"N.")
    assert "limit" in str(load_bounded(big_pickle.getvalue()))


def test_the_real_checkpoint_still_loads_within_the_bounds(real):
    payload, data = real
    outcome = load_bounded(data)
    assert not isinstance(outcome, ckpt.CheckpointError)
    assert asdict(outcome.model.spec) == payload["model_spec"]
