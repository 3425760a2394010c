"""What a user waits for, measured in a real browser: the app in headless Chromium, driven by Playwright.

    python bench/browser_latency.py                      # everything, 10 moves per control
    python bench/browser_latency.py --moves 5 --views posterior-50d,bound
    python bench/browser_latency.py --list               # the views and their controls

Run it on an otherwise idle machine: other jobs (training, test suites) change the numbers.
It starts its own ``streamlit run app.py`` on a free loopback port (the shipped checkpoints, datasets from
``$DVAE_DATA_DIR`` or ``--data-dir``) and measures, with the server and Chromium on the same machine:

* **cold start**: ``streamlit run app.py`` launched → the Home page rendered in the browser (script finished,
  its figure drawn);
* **first visits**: every page opened in a fresh browser context (no cookies, no cache) on a warm server that
  has rendered only Home (and finished any background work it started — we wait until the server is idle; on
  a fresh server that includes the true posteriors of every test image for the shipped 2-D models, ~2 min);
* **interactions**: for every control of the classroom views, ``--moves`` key presses (a slider: focus its
  thumb and press an arrow key; a number input: type the next value and press Enter), each timed in the page
  from the keydown event to (a) the script run finished (``data-test-script-state`` back to ``notRunning``),
  (b) the last change inside a plotly chart (figures redrawn) and (c) the last websocket message or DOM change
  before the page stayed quiet for ``--quiet-ms``; plus the bytes received and sent over the websocket.

The headline number per control is (b) "figures redrawn" (at least as late as (a)). Median, 90th percentile
(nearest rank) and max are reported. Results go to ``bench/results/browser_latency.{json,md}``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import platform
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.app_server import streamlit_app, wait_for_health  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
VIEWPORT = {"width": 1280, "height": 720}  # a projector
TARGETS = {"interaction_median_ms": 200, "interaction_p90_ms": 300, "cold_start_s": 6.0, "first_visit_s": 2.0}
PAGES = {  # URL path → name, as app.py routes them
    "": "Home", "train": "Train", "bound-vs-m": "Bound vs M", "posterior": "Posterior",
    "reconstructions": "Reconstructions", "samples": "Samples", "is-it-a-bound": "Is it a bound?",
    "checkpoints": "Checkpoints", "experiments": "Experiments",
}

# Recorders injected before any page script: websocket traffic, DOM changes (inside plotly charts or not),
# and the script-run state. Times are performance.now() in the page; t0 is the keydown of the measured press.
RECORDER_JS = """
(() => {
  const rec = window.__bench = {t0: null, lastIn: 0, lastMut: 0, lastPlot: 0, lastWs: 0, bytesIn: 0, bytesOut: 0,
                                msgsIn: 0, ran: false, doneAt: null, state: null, firstIn: null, firstOut: null,
                                busy: 0};
  rec.reset = () => { Object.assign(rec, {t0: null, lastMut: 0, lastPlot: 0, lastWs: 0, bytesIn: 0, bytesOut: 0,
                                          msgsIn: 0, ran: false, doneAt: null, firstIn: null, firstOut: null,
                                          busy: 0}); };
  // main-thread tasks over 50 ms (the browser's own work: parsing messages, React, plotly)
  try {
    new PerformanceObserver((list) => {
      for (const e of list.getEntries()) if (rec.t0 !== null && e.startTime >= rec.t0) rec.busy += e.duration;
    }).observe({type: "longtask", buffered: false});
  } catch (e) {}
  const size = (d) => d == null ? 0 : (d.byteLength ?? d.size ?? d.length ?? 0);
  const Native = window.WebSocket;
  class Tapped extends Native {
    constructor(...args) {
      super(...args);
      this.addEventListener("message", (e) => {
        rec.lastWs = performance.now(); rec.bytesIn += size(e.data); rec.msgsIn += 1;
        if (rec.firstIn === null && rec.t0 !== null) rec.firstIn = rec.lastWs;
      });
    }
    send(data) {
      rec.lastWs = performance.now(); rec.bytesOut += size(data);
      if (rec.firstOut === null && rec.t0 !== null) rec.firstOut = rec.lastWs;
      return super.send(data);
    }
  }
  window.WebSocket = Tapped;
  document.addEventListener("keydown", (e) => { if (rec.armed) { rec.t0 = e.timeStamp; rec.armed = false; } },
                            true);
  // a figure: a plotly chart, an st.html block (our SVG figures and image grids) or an st.image
  const FIGURES = '[data-testid="stPlotlyChart"], .js-plotly-plot, [data-testid="stHtml"], [data-testid="stImage"], '
    + '.dvae-figure-root';
  const inFigure = (node) => {
    const el = node.nodeType === 1 ? node : node.parentElement;
    return !!(el && el.closest && el.closest(FIGURES));
  };
  // images finish decoding after the DOM change that added them
  document.addEventListener("load", (e) => {
    if (e.target && inFigure(e.target)) rec.lastPlot = Math.max(rec.lastPlot, performance.now());
  }, true);
  new MutationObserver((list) => {
    const now = performance.now();
    for (const m of list) {
      if (m.type === "attributes" && m.attributeName === "data-test-script-state") {
        const state = m.target.getAttribute("data-test-script-state");
        rec.state = state;
        if (state === "running") { rec.ran = true; rec.doneAt = null; }
        else if (state === "notRunning" && rec.ran) { rec.doneAt = now; }
      }
      rec.lastMut = now;
      if (inFigure(m.target)) rec.lastPlot = now;
    }
  }).observe(document, {subtree: true, childList: true, attributes: true, characterData: true});
  // quiet: the run (if any) is over and nothing arrived or changed for `ms`
  rec.quiet = (ms, noRunAfter) => {
    const now = performance.now();
    const last = Math.max(rec.lastMut, rec.lastWs);
    const since = rec.t0 ?? 0;
    const app = document.querySelector('[data-testid="stApp"]');
    const state = app ? app.getAttribute("data-test-script-state") : null;
    if (state === "running" || state === "initial" || state === null) return false;
    if (!rec.ran && now - since < noRunAfter) return false;  // give a rerun time to start
    return now - last >= ms;
  };
})();
"""


@dataclass
class Control:
    """One widget to move: a slider (arrow keys) or a number input (type the next value, Enter)."""

    key: str  # the widget's Streamlit key (its container has the class st-key-<key>)
    label: str
    kind: str = "slider"  # "slider" | "number"
    step: float = 1.0  # number inputs: the increment per move
    direction: str = "ArrowRight"


@dataclass
class View:
    name: str
    title: str
    path: str
    query: dict
    controls: list[Control]
    setup: list[str] = field(default_factory=list)  # keys of buttons to click before measuring


VIEWS = [
    View("reconstructions", "Reconstructions, two 50-D MNIST models (12 images)", "reconstructions",
         {"model": "mnist-dvae-sp10", "others": "mnist-vae"},
         [Control("level_salt-pepper", "noise level ν"), Control("seed", "noise seed", "number"),
          Control("count", "images", direction="ArrowLeft"), Control("start", "first test image", "number")]),
    View("posterior-50d", "Posterior (PCA), two 50-D MNIST encoders", "posterior",
         {"model": "mnist-dvae-sp10", "compare": "mnist-vae"},
         [Control("level_salt-pepper", "noise level ν"), Control("num_copies", "corrupted copies N"),
          Control("seed", "seed", "number"), Control("posterior_input_idx_Test image", "image index", "number")]),
    View("posterior-2d", "Posterior, two 2-D MNIST encoders with the true posterior", "posterior",
         {"model": "mnist2d-dvae-sp10", "compare": "mnist2d-vae"},
         [Control("level_salt-pepper", "noise level ν"), Control("num_copies", "corrupted copies N"),
          Control("seed", "seed", "number"), Control("posterior_input_idx_Test image", "image index", "number"),
          # a typed index: ready only once the page's background pass over the test images has reached it (the
          # results note how far it had got when this control began)
          Control("posterior_input_idx_Test image", "image index, jumping by 37", "number", step=37)]),
    View("samples", "Samples, two 50-D MNIST models", "samples",
         {"model": "mnist-dvae-sp10", "others": "mnist-vae"},
         [Control("seed", "seed", "number"), Control("count", "prior samples per model", direction="ArrowLeft"),
          Control("index_a", "test image x_a", "number"), Control("index_b", "test image x_b", "number"),
          Control("steps", "interpolation steps")]),
    View("samples-2d", "Samples, two 2-D MNIST models (with the latent plane)", "samples",
         {"model": "mnist2d-dvae-sp10", "others": "mnist2d-vae"},
         [Control("seed", "seed", "number"), Control("steps", "interpolation steps")]),
    View("bound", "Is it a bound?, exact lab (D = 4)", "is-it-a-bound", {},
         # D last: its presses leave the lab at D = 9–10, and the controls after it would not be at D = 4
         [Control("bl_nu", "noise level ν"), Control("bl_spread", "encoder spread"), Control("bl_sigma", "encoder σ"),
          Control("bl_seed", "seed", "number"), Control("bl_M", "copies M", "number"),
          Control("bl_K", "samples K", "number"), Control("bl_D", "pixels D")]),
    # the same lab at its largest width (2^10 clean images), where each move has the most to compute
    View("bound-d10", "Is it a bound?, exact lab at its largest (D = 10)", "is-it-a-bound", {"D": 10},
         [Control("bl_nu", "noise level ν"), Control("bl_sigma", "encoder σ"), Control("bl_seed", "seed", "number")]),
    View("bound-counterexample", "Is it a bound?, Ranganath's counterexample", "is-it-a-bound", {},
         [Control("bl_a", "a = q(z=1|x̃=1)")], setup=["bl_load_counter"]),
]


# --- the server -------------------------------------------------------------------------------------

def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (Linux /proc), in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wait_until_idle(pid: int, window: float = 5.0, threshold: float = 0.05, timeout: float = 300.0) -> float:
    """Seconds until the process used under ``threshold`` of a core over ``window`` seconds. The window is longer
    than the 3 s the Posterior page's background pass waits after the last page run before it starts (app
    ``ui/cache.py``, ``SWEEP_IDLE_S``), so a pass that is about to start is waited for too."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        before = cpu_seconds(pid)
        time.sleep(window)
        if (cpu_seconds(pid) - before) / window < threshold:
            break
    return time.monotonic() - started


# --- the browser ------------------------------------------------------------------------------------

def new_page(browser):
    context = browser.new_context(viewport=VIEWPORT)
    context.add_init_script(RECORDER_JS)
    page = context.new_page()
    page.set_default_timeout(120_000)
    return context, page


def wait_quiet(page, quiet_ms: int, no_run_after_ms: int = 1500, timeout_ms: int = 120_000) -> None:
    page.wait_for_function(f"window.__bench && window.__bench.quiet({quiet_ms}, {no_run_after_ms})",
                           polling=25, timeout=timeout_ms)


def check_no_exception(page, where: str) -> None:
    exceptions = page.locator('[data-testid="stException"]')
    if exceptions.count():
        raise RuntimeError(f"{where}: {exceptions.first.inner_text()[:2000]}")


def open_view(browser, url: str, quiet_ms: int):
    """A fresh context at ``url``; returns (context, page, {script_done, charts, quiet} in ms since navigation)."""
    context, page = new_page(browser)
    page.goto(url, wait_until="commit")
    page.wait_for_selector('[data-testid="stApp"][data-test-script-state="notRunning"]', state="attached")
    wait_quiet(page, quiet_ms, no_run_after_ms=0)
    marks = page.evaluate("""() => { const r = window.__bench;
        return {script_done: r.doneAt, charts: r.lastPlot || null, quiet: Math.max(r.lastMut, r.lastWs),
                charts_count: document.querySelectorAll('[data-testid="stPlotlyChart"], '
                  + '[data-testid="stHtml"] figure, [data-testid="stImage"], .dvae-figure-root figure').length,
                bytes_in: r.bytesIn}; }""")
    check_no_exception(page, url)
    return context, page, marks


def locate(page, control: Control):
    container = page.locator(f'.st-key-{css_escape(control.key)}')
    if control.kind == "slider":
        return container.locator('input[type="range"]').first
    return container.locator("input").first


def css_escape(key: str) -> str:
    """Streamlit's class for a widget key: ``st-key-`` + the key with other characters turned into ``-``."""
    return "".join(c if (c.isascii() and c.isalnum()) or c in "-_" else "-" for c in key.strip())


def slider_direction(thumb, preferred: str) -> str:
    """``preferred``, or the opposite arrow where the slider already sits at that end (a press there changes
    nothing and would time an empty move)."""
    value, low, high = (thumb.get_attribute(name) for name in ("aria-valuenow", "aria-valuemin", "aria-valuemax"))
    if value is None or low is None or high is None:
        value, low, high = (thumb.get_attribute(name) for name in ("value", "min", "max"))
    if value is None or low is None or high is None:
        return preferred
    value, low, high = float(value), float(low), float(high)
    if preferred == "ArrowRight" and value >= high:
        return "ArrowLeft"
    if preferred == "ArrowLeft" and value <= low:
        return "ArrowRight"
    return preferred


def move(page, control: Control, quiet_ms: int) -> dict:
    """One key press on ``control``; the times (ms since keydown) and websocket bytes it caused."""
    target = locate(page, control)
    if control.kind == "slider":
        target.focus()
        direction = slider_direction(target, control.direction)
        page.evaluate("window.__bench.reset(); window.__bench.armed = true")
        page.keyboard.press(direction)
    else:
        value = float(target.input_value())
        step = control.step
        maximum = target.get_attribute("max")
        if maximum is not None and value + step > float(maximum):
            step = -step
        new = value + step
        target.fill(str(int(new)) if float(new).is_integer() else str(new))
        page.evaluate("window.__bench.reset(); window.__bench.armed = true")
        target.press("Enter")
    wait_quiet(page, quiet_ms)
    result = page.evaluate("""() => { const r = window.__bench; const d = (t) => t ? t - r.t0 : null;
        return {script_done: d(r.doneAt), charts: r.lastPlot > r.t0 ? d(r.lastPlot) : null,
                quiet: d(Math.max(r.lastMut, r.lastWs)), ran: r.ran, bytes_in: r.bytesIn, bytes_out: r.bytesOut,
                messages_in: r.msgsIn, first_out: d(r.firstOut), first_in: d(r.firstIn), long_tasks: r.busy}; }""")
    result["redrawn"] = max(v for v in (result["script_done"], result["charts"], 0.0) if v is not None)
    return result


def summary(values: list[float]) -> dict:
    ordered = sorted(values)
    p90 = ordered[max(0, math.ceil(0.9 * len(ordered)) - 1)]  # nearest rank
    return {"median": statistics.median(ordered), "p90": p90, "max": ordered[-1]}


# --- the runs -----------------------------------------------------------------------------------------

def measure_cold_start(browser, url: str, proc, launched: float, quiet_ms: int) -> dict:
    """``streamlit run`` launched → Home rendered (script finished, its figures drawn), in seconds."""
    wait_for_health(url, proc)
    healthy = time.monotonic() - launched
    context, page = new_page(browser)
    opened = time.monotonic() - launched
    page.goto(url, wait_until="commit")
    origin = page.evaluate("() => performance.timeOrigin")  # epoch ms of this navigation's start
    # the page's own clock and ours: performance.timeOrigin is epoch time, like time.time()
    offset = origin / 1000 - (time.time() - (time.monotonic() - launched))  # navigation start − launch, s
    page.wait_for_selector('[data-testid="stApp"][data-test-script-state="notRunning"]', state="attached")
    wait_quiet(page, quiet_ms, no_run_after_ms=0)
    marks = page.evaluate("""() => { const r = window.__bench;
        return {script_done: r.doneAt, figures: r.lastPlot || null}; }""")
    check_no_exception(page, "Home")
    context.close()
    rendered = max(v for v in (marks["script_done"], marks["figures"], 0.0) if v is not None)
    return {"health_s": healthy, "browser_opened_s": opened, "navigation_s": offset,
            "home_rendered_s": offset + rendered / 1000}


def measure_first_visits(browser, url: str, quiet_ms: int) -> list[dict]:
    rows = []
    for path, name in PAGES.items():
        context, page, marks = open_view(browser, f"{url}/{path}", quiet_ms)
        rendered = max(v for v in (marks["script_done"], marks["charts"], 0.0) if v is not None)
        rows.append({"page": name, "path": "/" + path, "rendered_ms": rendered, "quiet_ms": marks["quiet"],
                     "charts": marks["charts_count"], "bytes_in": marks["bytes_in"]})
        print(f"  first visit {name:16s} rendered {rendered / 1000:6.2f} s   quiet {marks['quiet'] / 1000:6.2f} s"
              f"   {marks['bytes_in'] / 1024:7.0f} KiB", flush=True)
        context.close()
    return rows


BACKGROUND_NOTE = "True posteriors computed ahead"  # pages/posterior.py, while its pass is not finished


def measure_view(browser, url: str, view: View, moves: int, quiet_ms: int) -> list[dict]:
    query = "&".join(f"{k}={v}" for k, v in view.query.items())
    context, page, _ = open_view(browser, f"{url}/{view.path}" + (f"?{query}" if query else ""), quiet_ms)
    try:
        for key in view.setup:
            page.locator(f".st-key-{css_escape(key)} button").first.click()
            wait_quiet(page, quiet_ms)
        rows = []
        for control in view.controls:
            background = page.get_by_text(BACKGROUND_NOTE)  # the Posterior page's pass over the test images
            note = background.first.inner_text() if background.count() else None
            runs = []
            for _ in range(moves):
                runs.append(move(page, control, quiet_ms))
            check_no_exception(page, f"{view.name}/{control.key}")
            stats = {metric: summary([r[metric] or 0.0 for r in runs])
                     for metric in ("script_done", "redrawn", "quiet")}
            bytes_in = statistics.median(r["bytes_in"] for r in runs)
            rows.append({"view": view.name, "title": view.title, "control": control.label, "key": control.key,
                         "moves": runs, **stats, "bytes_in_median": bytes_in,
                         "reruns": sum(bool(r["ran"]) for r in runs), "page_note": note})
            print(f"  {view.name:22s} {control.label:26s} redrawn median {stats['redrawn']['median']:6.0f} ms  "
                  f"p90 {stats['redrawn']['p90']:6.0f}  max {stats['redrawn']['max']:6.0f}   script "
                  f"{stats['script_done']['median']:6.0f}   quiet {stats['quiet']['median']:6.0f}   "
                  f"{bytes_in / 1024:6.0f} KiB in", flush=True)
        return rows
    finally:
        context.close()


def cpu_probe_ms(repeats: int = 5) -> float:
    """The best of ``repeats`` timings of a fixed pure-Python loop, in ms: how fast one core is right now.

    This machine is a virtual one whose speed drifts (the same loop has taken 140 and 220 ms a few seconds
    apart), so the results say how fast it was before and after the run, beside the latencies.
    """
    best = math.inf
    for _ in range(repeats):
        start = time.perf_counter()
        total = 0
        for i in range(1_000_000):
            total += i * i
        best = min(best, time.perf_counter() - start)
    return 1000 * best


def machine() -> dict:
    info = {"cpu_count": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version(),
            "load_average_at_start": os.getloadavg()}
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                info["cpu"] = line.split(":", 1)[1].strip()
                break
    with contextlib.suppress(OSError, ImportError):
        import streamlit

        info["streamlit"] = streamlit.__version__
    # background training (its processes listed in /tmp/dvae-bg-training.pids): paused (stopped), running, or none
    pids, states = [], []
    with contextlib.suppress(OSError):
        pids = Path("/tmp/dvae-bg-training.pids").read_text().split()
    for pid in pids:
        with contextlib.suppress(OSError):
            states.append(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0])
    info["background_training"] = ("none running" if not states else
                                   "paused" if all(s == "T" for s in states) else "RUNNING (not paused)")
    return info


def torch_in_page_cache() -> dict | None:
    """How much of torch's two largest libraries the OS has in its page cache (``fincore``, util-linux), in MB.

    A cold start reads what is not cached from disk: here 13–21 s with them evicted against ~5 s with them cached
    (``import torch`` alone: 7.8 s against 2.3 s), so the cold start is reported with this next to it.
    """
    import shutil
    import subprocess

    if shutil.which("fincore") is None:
        return None
    with contextlib.suppress(ImportError):
        import importlib.util

        spec = importlib.util.find_spec("torch")
        folder = Path(spec.origin).parent / "lib" if spec and spec.origin else None
        files = [str(path) for path in (folder.glob("libtorch_c*.so") if folder else ()) if path.is_file()]
        if not files:
            return None
        cached = size = 0
        done = subprocess.run(["fincore", "--bytes", "--noheadings", "--output", "RES,SIZE", *files],
                              capture_output=True, text=True, check=False)
        for line in done.stdout.splitlines():
            res, total = line.split()[:2]
            cached, size = cached + int(res), size + int(total)
        return {"cached_mb": cached / 1e6, "size_mb": size / 1e6, "files": [Path(f).name for f in files]}
    return None


def interaction_ok(row: dict) -> bool:
    return (row["redrawn"]["median"] <= TARGETS["interaction_median_ms"]
            and row["redrawn"]["p90"] <= TARGETS["interaction_p90_ms"])


def write_results(result: dict, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "browser_latency.json").write_text(json.dumps(result, indent=2) + "\n")
    m, t = result["machine"], TARGETS
    lines = [
        "# Browser-measured latency", "",
        f"`{result['command']}` — {result['date']}. Machine: {m['cpu_count']} CPU cores ({m.get('cpu', '?')}); "
        f"the server and headless Chromium ({VIEWPORT['width']}×{VIEWPORT['height']}) share them; background "
        f"training: {m['background_training']}; load average at start "
        f"{', '.join(f'{v:.2f}' for v in m['load_average_at_start'])}; Streamlit {m.get('streamlit', '?')}."
        + (f" CPU speed probe (a fixed Python loop, best of 5; lower is faster): {m['cpu_probe_ms_before']:.0f} ms "
           f"before the run, {m['cpu_probe_ms_after']:.0f} ms after." if "cpu_probe_ms_after" in m else ""), "",
        "| target | measured | met |", "| --- | --- | --- |",
    ]
    if result.get("cold_start"):
        c = result["cold_start"]["home_rendered_s"]
        lines.append(f"| `streamlit run app.py` → Home rendered ≤ {t['cold_start_s']:g} s | {c:.1f} s | "
                     f"{'yes' if c <= t['cold_start_s'] else 'NO'} |")
    if result.get("first_visits"):
        worst = max(result["first_visits"], key=lambda r: r["rendered_ms"])
        lines.append(f"| first visit of any page ≤ {t['first_visit_s']:g} s | slowest: {worst['page']}, "
                     f"{worst['rendered_ms'] / 1000:.2f} s | "
                     f"{'yes' if worst['rendered_ms'] <= 1000 * t['first_visit_s'] else 'NO'} |")
    if result.get("interactions"):
        rows = result["interactions"]
        worst_median = max(rows, key=lambda r: r["redrawn"]["median"])
        worst_p90 = max(rows, key=lambda r: r["redrawn"]["p90"])
        met = sum(interaction_ok(r) for r in rows)
        lines.append(f"| every control: key press → figures redrawn, median ≤ {t['interaction_median_ms']} ms and "
                     f"p90 ≤ {t['interaction_p90_ms']} ms | {met} of {len(rows)} controls; slowest median "
                     f"{worst_median['redrawn']['median']:.0f} ms ({worst_median['view']}, "
                     f"{worst_median['control']}), slowest p90 {worst_p90['redrawn']['p90']:.0f} ms "
                     f"({worst_p90['view']}, {worst_p90['control']}) | {'yes' if met == len(rows) else 'NO'} |")
    lines.append("")
    if result.get("cold_start"):
        c = result["cold_start"]
        cached, after = c.get("torch_in_page_cache"), c.get("torch_in_page_cache_after")
        lines += [f"**Cold start**: the server answered its health check {c['health_s']:.1f} s after launch; the "
                  f"browser opened Home at {c['navigation_s']:.1f} s; Home was rendered (script finished, figures "
                  f"drawn) at **{c['home_rendered_s']:.1f} s**."
                  + (f" The OS's page cache held {cached['cached_mb']:.0f} MB of torch's libraries "
                     f"({', '.join(cached['files'])}; {cached['size_mb']:.0f} MB in all) at launch and "
                     f"{after['cached_mb']:.0f} MB after the cold start: the difference was read from disk while the "
                     "user waited." if cached and after else ""), ""]
    if result.get("first_visits"):
        lines += ["**First visit of each page**, each in a fresh browser context (no cache, no cookies), on a warm "
                  f"server that had rendered only Home and then gone idle ({result['settle_s']:.1f} s); seconds from "
                  "navigation start:", "",
                  "| page | rendered (s) | quiet (s) | figures | received (KiB) |",
                  "| --- | ---: | ---: | ---: | ---: |"]
        lines += [f"| {r['page']} | {r['rendered_ms'] / 1000:.2f} | {r['quiet_ms'] / 1000:.2f} | {r['charts']} | "
                  f"{r['bytes_in'] / 1024:.0f} |" for r in result["first_visits"]]
        lines.append("")
    if result.get("interactions"):
        lines += [f"**Interactions**, {result['moves']} key presses per control, ms from the keydown: *redrawn* = "
                  "the script run finished and the last figure changed; *script* = the script run finished; "
                  f"*quiet* = the last websocket message or DOM change before {result['quiet_ms']} ms of silence. "
                  "Bytes are the websocket payload received per move (median).", "",
                  "| view | control | redrawn median | p90 | max | script median | quiet median | KiB per move | "
                  "met |", "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |"]
        for r in result["interactions"]:
            lines.append(f"| {r['title']} | {r['control']} | {r['redrawn']['median']:.0f} | {r['redrawn']['p90']:.0f}"
                         f" | {r['redrawn']['max']:.0f} | {r['script_done']['median']:.0f} | "
                         f"{r['quiet']['median']:.0f} | {r['bytes_in_median'] / 1024:.1f} | "
                         f"{'yes' if interaction_ok(r) else 'NO'} |")
        notes = [r for r in result["interactions"] if r.get("page_note")]
        if notes:
            lines += ["", "What the page said of its background work as each of these controls began (nothing, for the "
                      "others: no pass running):", ""]
            lines += [f"- {r['title']}, {r['control']}: “{r['page_note']}”" for r in notes]
    (out / "browser_latency.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--moves", type=int, default=10, help="key presses per control (default 10)")
    parser.add_argument("--views", default="all", help="comma-separated view names (see --list), or 'all'")
    parser.add_argument("--no-cold", action="store_true", help="skip the cold start and first-visit measurements")
    parser.add_argument("--quiet-ms", type=int, default=500, help="silence that ends an interaction (default 500)")
    parser.add_argument("--data-dir", default=os.environ.get("DVAE_DATA_DIR", "/work/shared/data"))
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    parser.add_argument("--list", action="store_true", help="list the views and their controls, then exit")
    args = parser.parse_args(argv)
    if args.list:
        for view in VIEWS:
            print(f"{view.name:22s} {view.title}: " + ", ".join(c.label for c in view.controls))
        return
    names = [v.name for v in VIEWS] if args.views == "all" else args.views.split(",")
    unknown = set(names) - {v.name for v in VIEWS}
    if unknown:
        parser.error(f"unknown views {sorted(unknown)}; see --list")
    from playwright.sync_api import sync_playwright

    result = {"date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
              "machine": {**machine(), "cpu_probe_ms_before": cpu_probe_ms()},
              "command": "python bench/browser_latency.py" + ("" if argv is None and len(sys.argv) == 1 else
                                                              " " + " ".join(argv if argv is not None else
                                                                             sys.argv[1:])),
              "moves": args.moves, "quiet_ms": args.quiet_ms, "targets": TARGETS}
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "DVAE_DATA_DIR": args.data_dir, "DVAE_USER_CHECKPOINT_DIR": str(Path(tmp) / "user"),
               "STREAMLIT_BROWSER_GATHER_USAGE_STATS": "false"}
        env.pop("DVAE_CHECKPOINT_DIR", None)
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
            torch_cached = torch_in_page_cache()  # before the server's launch reads it
            try:
                with streamlit_app(env, Path(tmp) / "streamlit.log") as (url, proc, launched):
                    try:
                        if not args.no_cold:
                            result["cold_start"] = measure_cold_start(browser, url, proc, launched, args.quiet_ms)
                            result["cold_start"]["torch_in_page_cache"] = torch_cached
                            result["cold_start"]["torch_in_page_cache_after"] = torch_in_page_cache()
                            print(f"cold start: Home rendered {result['cold_start']['home_rendered_s']:.2f} s after "
                                  "launch", flush=True)
                            result["settle_s"] = wait_until_idle(proc.pid)
                            result["first_visits"] = measure_first_visits(browser, url, args.quiet_ms)
                        else:
                            wait_for_health(url, proc)
                            # Home first, as a user would: on a fresh server the first request of a deep link
                            # runs in Streamlit's legacy pages/ mode and shows a "Page not found" dialog
                            context, _, _ = open_view(browser, url, args.quiet_ms)
                            context.close()
                        result["interactions"] = []
                        for view in VIEWS:
                            if view.name in names:
                                result["interactions"] += measure_view(browser, url, view, args.moves, args.quiet_ms)
                    except Exception:
                        log = (Path(tmp) / "streamlit.log").read_text()[-3000:]
                        print(f"--- server log (tail) ---\n{log}", file=sys.stderr)
                        raise
            finally:
                browser.close()
    result["machine"]["cpu_probe_ms_after"] = cpu_probe_ms()
    write_results(result, args.out)


if __name__ == "__main__":
    main()
