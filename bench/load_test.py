"""Load test on loopback: one ``streamlit run app.py``, 2 training runs, many sessions moving sliders.

    python bench/load_test.py                           # 24 sessions, 12 slider moves each
    python bench/load_test.py --sessions 30 --moves 20
    (run it on an otherwise idle machine: other jobs change the numbers)

What it does:

1. starts the app (``streamlit run app.py``, headless, a free port on 127.0.0.1) with the shipped
   checkpoints and a fresh, temporary user folder; datasets from ``$DVAE_DATA_DIR`` when set;
2. two browsers (distinct owner cookies) open the Train page and start one long run each on
   ``digits`` (no evaluation; they are stopped, by their owners, at the end);
3. opens every classroom view once (warm-up, as a teacher would before the lesson; not counted);
4. ``--sessions`` websocket clients, each a browser with its own owner cookie, connect (staggered by
   ``--stagger`` seconds) to one of the classroom views (Posterior, Reconstructions, Samples,
   Is it a bound?) and move one of its sliders ``--moves`` times, a random new value each time,
   waiting a random ``--think`` seconds in between, as students do.

Each client speaks Streamlit's own protocol (the protobuf ``BackMsg``/``ForwardMsg`` over
``/_stcore/stream``, as the browser does): it sends the rerun with the slider's new value and the
page's current query string, and the *interaction latency* is the time from sending it to the
server's "script finished" message, after every element of the new page has arrived. Browser
drawing time is not included (bench/browser_latency.py measures that for one user).

Counted as errors: an exception element on any page, a run that ends other than successfully, a
rerun with no answer within ``--timeout`` seconds, a websocket that closes. *Sessions held*: the
clients whose websocket stayed open and that finished all their moves.

Results: ``bench/results/load_test.json`` and ``.md`` (p50/p90/max per view and overall).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import random
import secrets
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from urllib.parse import parse_qs, urlencode

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.app_server import streamlit_app, wait_for_health  # noqa: E402

COOKIE = "dvae_explorer_owner"

# (label, URL path, query, slider keys a student moves) — the classroom pages with the shipped models
VIEWS = [
    ("Posterior, 2-D encoders, true posterior", "posterior",
     {"model": "mnist2d-dvae-sp10", "compare": "mnist2d-vae", "noise": "salt-pepper"},
     ["level_salt-pepper", "num_copies"]),
    ("Posterior, 50-D encoders (PCA)", "posterior",
     {"model": "mnist-dvae-sp10", "compare": "mnist-vae", "noise": "salt-pepper"}, ["level_salt-pepper", "num_copies"]),
    ("Reconstructions, 3 models", "reconstructions",
     {"model": "mnist-dvae-sp10", "others": "mnist-vae,mnist-diwae-k5-sp10", "noise": "salt-pepper"},
     ["level_salt-pepper", "count"]),
    ("Samples, 2 models", "samples", {"model": "mnist-dvae-sp10", "others": "mnist-vae"}, ["steps"]),
    ("Is it a bound?, exact lab", "is-it-a-bound", {}, ["bl_nu", "bl_spread"]),
]
# where each page mirrors the slider in its URL: a move counts only if the page took the new value
URL_KEYS = {"level_salt-pepper": "level", "num_copies": "n", "count": "count", "steps": "steps", "bl_nu": "nu",
            "bl_spread": "spread"}
TRAIN_QUERY = {"dataset": "digits", "objective": "dvae", "epochs": "5000", "eval": "none"}


def busy_fraction(seconds: float = 3.0) -> float:
    """How busy the machine's CPUs were over ``seconds`` (from /proc/stat; NaN elsewhere): 0 = idle."""
    def sample() -> tuple[int, int]:
        fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
        idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
        return sum(fields), idle
    try:
        total0, idle0 = sample()
        time.sleep(seconds)
        total1, idle1 = sample()
    except (OSError, ValueError, IndexError):
        return float("nan")
    return 1.0 - (idle1 - idle0) / max(total1 - total0, 1)


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (0-100) with linear interpolation between order statistics."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


# --- the server --------------------------------------------------------------------------------------

@contextlib.contextmanager
def app_server(user_dir: Path, log_path: Path, job_nice: int | None = None, options: tuple[str, ...] = ()):
    env = {**os.environ, "DVAE_USER_CHECKPOINT_DIR": str(user_dir), "STREAMLIT_BROWSER_GATHER_USAGE_STATS": "false"}
    if job_nice is not None:
        env["DVAE_JOB_NICE"] = str(job_nice)
    with streamlit_app(env, log_path, options) as (base, proc, _):
        try:
            wait_for_health(base, proc, timeout=180, poll=0.5)
        except RuntimeError as err:
            raise RuntimeError(f"{err}:\n{log_path.read_text()[-3000:]}") from None
        yield base


# --- one browser session, speaking Streamlit's websocket protocol ------------------------------------------

@dataclass
class Session:
    """A browser tab: an owner cookie, a page, its query string and the widgets the server drew."""

    base: str
    page: str
    query: dict
    token: str = field(default_factory=lambda: secrets.token_hex(16))
    timeout: float = 180.0
    errors: list = field(default_factory=list)
    sliders: dict = field(default_factory=dict)  # widget id -> Slider proto
    buttons: dict = field(default_factory=dict)  # label -> widget id
    texts: list = field(default_factory=list)  # progress texts of the last run
    widget_states: dict = field(default_factory=dict)  # widget id -> WidgetState we have set
    closed: bool = False

    async def connect(self) -> None:
        from websockets.asyncio.client import connect

        uri = self.base.replace("http://", "ws://") + "/_stcore/stream"
        self.ws = await connect(uri, subprotocols=["streamlit"], origin=self.base, max_size=None,
                                additional_headers={"Cookie": f"{COOKIE}={self.token}"}, open_timeout=60,
                                ping_interval=None, compression=None)
        self.query_string = urlencode(self.query)
        self.page_hash = ""
        self._finished: asyncio.Future | None = None
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        from streamlit.proto.ForwardMsg_pb2 import ForwardMsg

        try:
            async for raw in self.ws:
                msg = ForwardMsg()
                msg.ParseFromString(raw)
                self._handle(msg)
        except Exception as err:  # noqa: BLE001 — any way the connection ends is recorded
            self.errors.append(f"websocket: {type(err).__name__}: {err}")
        finally:
            self.closed = True
            if self._finished is not None and not self._finished.done():
                self._finished.set_result("closed")

    def _handle(self, msg) -> None:
        kind = msg.WhichOneof("type")
        if kind == "new_session":
            self.page_hash = msg.new_session.page_script_hash or self.page_hash
        elif kind == "navigation":
            self.page_hash = msg.navigation.page_script_hash or self.page_hash
        elif kind == "page_info_changed":
            self.query_string = msg.page_info_changed.query_string
        elif kind == "delta" and msg.delta.HasField("new_element"):
            element = msg.delta.new_element
            etype = element.WhichOneof("type")
            if etype == "exception":
                self.errors.append(f"exception on {self.page}: {element.exception.type}: {element.exception.message}")
            elif etype == "slider" and not element.slider.options:
                self.sliders[element.slider.id] = element.slider
            elif etype == "button":
                self.buttons[element.button.label] = element.button.id
            elif etype == "progress":
                self.texts.append(element.progress.text)
        elif kind == "script_finished":
            status = msg.script_finished
            if status in (0, 1) and self._finished is not None and not self._finished.done():
                self._finished.set_result("ok" if status == 0 else "compile error")

    async def rerun(self, extra_states=()) -> float:
        """Send one rerun (the browser's message for a widget change); seconds until the run finished."""
        from streamlit.proto.BackMsg_pb2 import BackMsg
        from streamlit.proto.WidgetStates_pb2 import WidgetStates

        back = BackMsg()
        state = back.rerun_script
        state.query_string = self.query_string
        if self.page_hash:
            state.page_script_hash = self.page_hash
        else:
            state.page_name = self.page
        states = WidgetStates()
        for widget in [*self.widget_states.values(), *extra_states]:
            states.widgets.append(widget)
        state.widget_states.CopyFrom(states)
        self.texts = []
        self._finished = asyncio.get_running_loop().create_future()
        started = time.perf_counter()
        await self.ws.send(back.SerializeToString())
        try:
            outcome = await asyncio.wait_for(self._finished, self.timeout)
        except asyncio.TimeoutError:
            outcome = f"no answer within {self.timeout:.0f} s"
        elapsed = time.perf_counter() - started
        if outcome != "ok":
            self.errors.append(f"rerun on {self.page}: {outcome}")
            return float("nan")
        return elapsed

    def slider(self, key: str):
        return next((s for i, s in self.sliders.items() if i.endswith(f"-{key}")), None)

    async def move(self, key: str, rng: random.Random) -> float:
        """Move slider ``key`` to a random other value; the latency of the rerun."""
        from streamlit.proto.WidgetStates_pb2 import WidgetState

        slider = self.slider(key)
        if slider is None:
            self.errors.append(f"no slider {key!r} on {self.page}")
            return float("nan")
        current = (self.widget_states[slider.id].double_array_value.data[0] if slider.id in self.widget_states
                   else (slider.value[0] if slider.value else slider.default[0]))
        steps = int(round((slider.max - slider.min) / slider.step))
        choices = [slider.min + i * slider.step for i in range(steps + 1)]
        value = rng.choice([v for v in choices if abs(v - current) > slider.step / 2] or choices)
        if slider.data_type == 0:
            value = float(int(round(value)))
        widget = WidgetState(id=slider.id)
        widget.double_array_value.data.append(round(value, 6))
        self.widget_states[slider.id] = widget
        latency = await self.rerun()
        url_key = URL_KEYS.get(key)
        if url_key is not None and latency == latency:
            shown = parse_qs(self.query_string).get(url_key, [""])[0]
            if not shown or abs(float(shown) - value) > 1e-6:
                self.errors.append(f"{self.page}: {key} moved to {value:g} but the page shows {url_key}={shown!r}")
        return latency

    async def click(self, label: str) -> float:
        from streamlit.proto.WidgetStates_pb2 import WidgetState

        button = next((i for name, i in self.buttons.items() if label in name), None)
        if button is None:
            self.errors.append(f"no button {label!r} on {self.page}")
            return float("nan")
        return await self.rerun([WidgetState(id=button, trigger_value=True)])

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await self.ws.close()
        with contextlib.suppress(Exception):
            await self._reader


# --- the test ----------------------------------------------------------------------------------------------

async def start_training(base: str, timeout: float) -> list[Session]:
    trainers = []
    for _ in range(2):
        session = Session(base, "train", dict(TRAIN_QUERY), timeout=timeout)
        await session.connect()
        await session.rerun()
        await session.click("Start training")
        trainers.append(session)
    await asyncio.sleep(3)
    for session in trainers:
        await session.rerun()
        if not any("Stop" in label for label in session.buttons) or not any("Epoch" in t for t in session.texts):
            session.errors.append("the training run did not start")
    return trainers


def epoch_of(texts: list[str]) -> int | None:
    for text in texts:
        if text.startswith("Epoch "):
            return int(text.split()[1])
    return None


async def student(base: str, view: tuple, moves: int, think: tuple[float, float], delay: float, seed: int,
                  timeout: float) -> dict:
    label, page, query, keys = view
    rng = random.Random(seed)
    await asyncio.sleep(delay)
    session = Session(base, page, dict(query), timeout=timeout)
    record = {"view": label, "open": None, "moves": [], "errors": session.errors, "held": False}
    try:
        await session.connect()
        record["open"] = await session.rerun()
        for i in range(moves):
            await asyncio.sleep(rng.uniform(*think))
            if session.closed:
                break
            record["moves"].append(await session.move(keys[i % len(keys)], rng))
        record["held"] = not session.closed and len(record["moves"]) == moves
    except Exception as err:  # noqa: BLE001 — a client that fails is an error, not a crash of the test
        session.errors.append(f"client: {type(err).__name__}: {err}")
    finally:
        await session.close()
    return record


async def run(base: str, args) -> dict:
    timeout = args.timeout
    trainers = await start_training(base, timeout)
    epochs_before = [epoch_of(t.texts) for t in trainers]
    warm = []
    for view in VIEWS:  # the teacher opens every view once before the lesson
        session = Session(base, view[1], dict(view[2]), timeout=timeout)
        await session.connect()
        warm.append(await session.rerun())
        warm_errors = list(session.errors)
        await session.close()
        if warm_errors:
            raise RuntimeError(f"warm-up of {view[0]} failed: {warm_errors}")
    started = time.perf_counter()
    records = await asyncio.gather(*(
        student(base, VIEWS[i % len(VIEWS)], args.moves, tuple(args.think), i * args.stagger, args.seed + i, timeout)
        for i in range(args.sessions)))
    duration = time.perf_counter() - started
    for session in trainers:
        await session.rerun()
    epochs_after = [epoch_of(t.texts) for t in trainers]
    still_running = [any("Stop" in label for label in t.buttons) for t in trainers]
    for session in trainers:  # their owners stop them
        await session.click("Stop")
    for session in trainers:
        await session.close()
    return {"records": records, "duration_s": duration, "warm_s": warm,
            "training": {"epochs_before": epochs_before, "epochs_after": epochs_after,
                         "running_throughout": still_running,
                         "errors": [e for t in trainers for e in t.errors]}}


def summarise(result: dict, args, command: str) -> dict:
    records = result["records"]
    moves = [m for r in records for m in r["moves"] if m == m]
    opens = [r["open"] for r in records if r["open"] is not None and r["open"] == r["open"]]
    errors = [e for r in records for e in r["errors"]] + result["training"]["errors"]
    by_view = {}
    for label, *_ in VIEWS:
        values = [m for r in records if r["view"] == label for m in r["moves"] if m == m]
        by_view[label] = {"moves": len(values), "p50_ms": 1000 * percentile(values, 50),
                          "p90_ms": 1000 * percentile(values, 90), "max_ms": 1000 * max(values, default=float("nan"))}
    return {
        "when": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "command": command,
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version()},
        "settings": {"sessions": args.sessions, "moves_per_session": args.moves, "think_s": args.think,
                     "stagger_s": args.stagger, "timeout_s": args.timeout, "seed": args.seed,
                     "training_runs": 2, "training": TRAIN_QUERY, "server_options": args.server_option,
                     "job_nice": args.job_nice if args.job_nice is not None else int(os.environ.get("DVAE_JOB_NICE",
                                                                                                      "10"))},
        "sessions_held": sum(r["held"] for r in records),
        "sessions": len(records),
        "errors": len(errors),
        "error_messages": errors[:50],
        "interactions": len(moves),
        "p50_ms": 1000 * percentile(moves, 50),
        "p90_ms": 1000 * percentile(moves, 90),
        "max_ms": 1000 * max(moves, default=float("nan")),
        "open_p50_ms": 1000 * percentile(opens, 50),
        "open_p90_ms": 1000 * percentile(opens, 90),
        "by_view": by_view,
        "duration_s": result["duration_s"],
        "training": result["training"],
    }


def markdown(summary: dict) -> str:
    s = summary["settings"]
    training = summary["training"]
    lines = [
        f"Load test on loopback, {summary['when']}, {summary['machine']['cpus']} CPU cores: "
        f"{summary['sessions']} concurrent sessions (websocket clients speaking Streamlit's protocol, one owner "
        f"cookie each) moving sliders on the classroom pages, {s['moves_per_session']} moves each, "
        f"{s['think_s'][0]:g}-{s['think_s'][1]:g} s apart, while 2 training runs (digits) train "
        f"(training threads at nice +{s['job_nice']}). CPUs busy before the start: "
        f"{100 * summary['machine']['busy_before_start']:.0f} %."
        + (f" Streamlit options: {', '.join(s['server_options'])}." if s["server_options"] else ""),
        "",
        f"Command: `{summary['command']}`",
        "",
        f"- sessions held: **{summary['sessions_held']} of {summary['sessions']}**",
        f"- errors: **{summary['errors']}**",
        f"- interactions (slider moves): {summary['interactions']}, in {summary['duration_s']:.0f} s",
        f"- interaction latency (send → script finished, all elements received): "
        f"**p50 {summary['p50_ms']:.0f} ms, p90 {summary['p90_ms']:.0f} ms**, max {summary['max_ms']:.0f} ms",
        f"- page open (first run of a session's page): p50 {summary['open_p50_ms']:.0f} ms, "
        f"p90 {summary['open_p90_ms']:.0f} ms",
        f"- training: epoch {training['epochs_before']} → {training['epochs_after']} during the test; "
        f"still running at the end: {training['running_throughout']}",
        "",
        "| view | moves | p50 (ms) | p90 (ms) | max (ms) |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for label, row in summary["by_view"].items():
        lines.append(f"| {label} | {row['moves']} | {row['p50_ms']:.0f} | {row['p90_ms']:.0f} | {row['max_ms']:.0f} |")
    if summary["error_messages"]:
        lines += ["", "Errors:", *[f"- {e}" for e in summary["error_messages"]]]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=24)
    parser.add_argument("--moves", type=int, default=12)
    parser.add_argument("--think", type=float, nargs=2, default=(2.0, 6.0), metavar=("MIN", "MAX"),
                        help="seconds between a student's slider moves (uniform)")
    parser.add_argument("--stagger", type=float, default=0.25, help="seconds between session starts")
    parser.add_argument("--timeout", type=float, default=180.0, help="seconds a rerun may take before it counts as "
                                                                       "an error")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--server-option", action="append", default=[], metavar="KEY=VALUE",
                        help="a Streamlit option for this run, e.g. runner.postScriptGC=false (repeatable)")
    parser.add_argument("--job-nice", type=int, default=None,
                        help="priority drop of the training threads (DVAE_JOB_NICE; the app's default is 10)")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "load_test")
    args = parser.parse_args(argv)
    command = "python bench/load_test.py" + "".join(
        f" {a}" for a in (argv if argv is not None else sys.argv[1:]))
    busy_before = busy_fraction()  # another job on the machine would distort the numbers: say so
    with tempfile.TemporaryDirectory(prefix="dvae-load-") as tmp:
        with app_server(Path(tmp) / "user", Path(tmp) / "streamlit.log", args.job_nice,
                        tuple(args.server_option)) as base:
            result = asyncio.run(run(base, args))
    summary = summarise(result, args, command)
    summary["machine"]["busy_before_start"] = busy_before
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps(summary, indent=2) + "\n")
    text = markdown(summary)
    args.out.with_suffix(".md").write_text(text)
    print(text)
    return 0 if summary["errors"] == 0 and summary["sessions_held"] == summary["sessions"] else 1


if __name__ == "__main__":
    sys.exit(main())
