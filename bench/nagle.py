"""How long the server takes to answer a request on a kept-alive connection, as Streamlit ships and as app.py sets it.

    python bench/nagle.py            # 40 requests per file and connection; results in bench/results/nagle.{json,md}

A browser fetches Streamlit's frontend (~100 script files on a first visit) over a few kept-alive connections.
Streamlit 1.67's server listens on a socket on which asyncio does not turn off Nagle's algorithm, so each reply
after a connection's first waits for the browser's delayed acknowledgement (up to 40 ms on Linux).
``ui/boot.send_replies_at_once`` (called by app.py on its first script run) sets TCP_NODELAY.

One server, side by side: the same requests (the health check and a few of the frontend's script files, each
request on one kept-alive connection after a first request has opened it) before the app's first script run
(Streamlit's own setting) and after it (one page loaded in headless Chromium), plus the same requests on a fresh
connection each (the reference: no earlier reply on the connection to wait for).
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlparse

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.app_server import streamlit_app, wait_for_health  # noqa: E402


def script_files(count: int) -> list[str]:
    """The paths of ``count`` of the frontend's script files, as the browser asks for them."""
    import streamlit

    folder = Path(streamlit.__file__).parent / "static" / "static" / "js"
    return ["/static/js/" + path.name for path in sorted(folder.glob("*.js"))[:count]]


def request_ms(connection: http.client.HTTPConnection, path: str) -> float:
    started = time.perf_counter()
    connection.request("GET", path)
    response = connection.getresponse()
    response.read()
    if response.status != 200:
        raise RuntimeError(f"GET {path}: HTTP {response.status}")
    return 1000 * (time.perf_counter() - started)


def measure(url: str, paths: list[str], repeats: int) -> dict:
    """Median ms per request: on one kept-alive connection (after its first request), and on a fresh one each."""
    address = urlparse(url)
    kept, fresh = [], []
    for path in paths:
        connection = http.client.HTTPConnection(address.hostname, address.port, timeout=30)
        request_ms(connection, path)  # opens the connection: its first reply has nothing to wait for
        kept += [request_ms(connection, path) for _ in range(repeats)]
        connection.close()
        for _ in range(repeats):
            connection = http.client.HTTPConnection(address.hostname, address.port, timeout=30)
            fresh.append(request_ms(connection, path))
            connection.close()
    return {"kept_alive_ms": statistics.median(kept), "kept_alive_p90_ms": sorted(kept)[int(0.9 * len(kept)) - 1],
            "fresh_connection_ms": statistics.median(fresh), "requests": len(kept)}


def load_one_page(url: str) -> None:
    """Open Home in headless Chromium until its script run has finished (app.py's first run)."""
    from playwright.sync_api import sync_playwright

    from bench.browser_latency import CHROMIUM, CHROMIUM_ARGS

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        page = browser.new_page()
        page.goto(url, wait_until="commit")
        page.wait_for_selector('[data-testid="stApp"][data-test-script-state="notRunning"]', state="attached",
                               timeout=120_000)
        browser.close()


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=40)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "nagle")
    args = parser.parse_args(argv)
    paths = ["/_stcore/health", *script_files(4)]
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "DVAE_USER_CHECKPOINT_DIR": str(Path(tmp) / "user"),
               "STREAMLIT_BROWSER_GATHER_USAGE_STATS": "false"}
        with streamlit_app(env, Path(tmp) / "server.log") as (url, proc, _):
            wait_for_health(url, proc)
            rows = {"as Streamlit ships (before app.py's first run)": measure(url, paths, args.repeats)}
            load_one_page(url)
            rows["after app.py's first run (TCP_NODELAY)"] = measure(url, paths, args.repeats)
    result = {"paths": paths, "repeats_per_path": args.repeats, "rows": rows}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps(result, indent=1))
    lines = ["# A request on a kept-alive connection", "",
             f"`python bench/nagle.py` — {len(paths)} paths ({', '.join(paths)}), {args.repeats} requests each; "
             "one server, both settings in the same run.", "",
             "| server | kept-alive connection, median ms | p90 ms | fresh connection each, median ms |",
             "| --- | ---: | ---: | ---: |"]
    lines += [f"| {name} | {r['kept_alive_ms']:.1f} | {r['kept_alive_p90_ms']:.1f} | {r['fresh_connection_ms']:.1f} |"
              for name, r in rows.items()]
    args.out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
