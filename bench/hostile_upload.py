"""Time and peak memory of the checkpoint loader on hostile uploads (the cases of the classroom issue).

    python bench/hostile_upload.py

Each case is a copy of ``checkpoints/mnist-vae.pt`` changed as an attacker would, loaded like an upload
(``load_checkpoint(bytes, max_bytes=64 MB)``). For each: the outcome (the message a user sees), the seconds it
took and how much the process's peak resident memory grew (``/proc/self/status`` VmHWM, reset before each case
through ``/proc/self/clear_refs``; Linux only). Results: ``bench/results/hostile_upload.{json,md}``.
Before the loader checked sizes first, the ``hidden_units=30000`` copy took 48 s and 7 GB to be refused.
"""

from __future__ import annotations

import io
import json
import pickle
import re
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from dvae_engine import checkpoint as ckpt  # noqa: E402

SOURCE = ROOT / "checkpoints" / "mnist-vae.pt"


def peak_kb() -> int | None:
    try:
        return int(re.search(r"VmHWM:\s+(\d+)", Path("/proc/self/status").read_text()).group(1))
    except (OSError, AttributeError):
        return None


def reset_peak() -> None:
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass


def saved(payload) -> bytes:
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    return buffer.getvalue()


class Exploit:
    def __reduce__(self):
        return (print, ("this must never run",))


def cases(data: bytes) -> dict[str, bytes]:
    payload = torch.load(io.BytesIO(data), weights_only=True)

    def with_spec(**changes):
        return saved({**payload, "model_spec": {**payload["model_spec"], **changes}})

    shapes = ckpt.expected_shapes(ckpt.ModelSpec(**{**payload["model_spec"], "hidden_units": 8192}))
    broadcast = {**payload, "model_spec": {**payload["model_spec"], "hidden_units": 8192},
                 "model_state": {name: torch.zeros(1).expand(*shape) for name, shape in shapes.items()}}
    return {
        "the real file": data,
        "model_spec hidden_units=30000": with_spec(hidden_units=30_000),
        "model_spec hidden_units=10**7": with_spec(hidden_units=10**7),
        "model_spec input_dim=2**31": with_spec(input_dim=2**31),
        "hidden_units=8192 with broadcast (1-number) weights": saved(broadcast),
        "truncated at half": data[: len(data) // 2],
        "a plain pickle with an exploit": pickle.dumps(Exploit()),
        "a torch file with an exploit": saved({"format": ckpt.FORMAT, "x": Exploit()}),
    }


def main() -> int:
    data = SOURCE.read_bytes()
    rows = []
    for label, blob in cases(data).items():
        reset_peak()
        before = peak_kb()
        started = time.perf_counter()
        try:
            ckpt.load_checkpoint(blob, max_bytes=ckpt.MAX_UPLOAD_BYTES)
            outcome = "loaded"
        except ckpt.CheckpointError as err:
            outcome = f"refused: {err}"
        seconds = time.perf_counter() - started
        after = peak_kb()
        grown = None if before is None or after is None else (after - before) / 1024
        rows.append({"case": label, "bytes": len(blob), "seconds": seconds, "peak_memory_growth_mb": grown,
                     "outcome": outcome})
    out = ROOT / "bench" / "results" / "hostile_upload"
    out.parent.mkdir(parents=True, exist_ok=True)
    when = datetime.now(timezone.utc).isoformat(timespec="seconds")
    out.with_suffix(".json").write_text(json.dumps({"when": when, "source": SOURCE.name, "rows": rows}, indent=2)
                                        + "\n")
    lines = [f"Checkpoint loader on hostile uploads ({SOURCE.name} altered), {when}; "
             "command: `python bench/hostile_upload.py`", "",
             "| case | file (kB) | time (ms) | peak memory growth (MB) | outcome |",
             "| --- | ---: | ---: | ---: | --- |"]
    for r in rows:
        grown = "n/a" if r["peak_memory_growth_mb"] is None else f"{r['peak_memory_growth_mb']:.0f}"
        lines.append(f"| {r['case']} | {r['bytes'] / 1024:.0f} | {1000 * r['seconds']:.0f} | {grown} | "
                     f"{r['outcome'].replace('|', '/')} |")
    text = "\n".join(lines) + "\n"
    out.with_suffix(".md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
