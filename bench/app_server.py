"""``streamlit run app.py`` on a free loopback port, for the benchmarks that drive the real app."""

from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def streamlit_app(env: dict, log_path: Path, options: tuple[str, ...] = ()):
    """Start the app headless (``options``: ``"section.key=value"`` server flags); yields (url, process, launch time).

    The launch time (``time.monotonic()``) is taken just before the process starts, so cold starts count from it.
    The server is stopped (and killed if it does not stop) when the block ends.
    """
    port = free_port()
    flags = [part for option in options for part in (f"--{option.split('=', 1)[0]}", option.split("=", 1)[1])]
    with log_path.open("w+") as log:
        launched = time.monotonic()
        proc = subprocess.Popen(
            [sys.executable, "-m", "streamlit", "run", "app.py", "--server.headless", "true",
             "--server.port", str(port), "--server.address", "127.0.0.1", *flags],
            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            yield f"http://127.0.0.1:{port}", proc, launched
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def wait_for_health(url: str, proc, timeout: float = 120.0, poll: float = 0.05) -> None:
    """Return once the server answers its health check; raise if it exits or does not answer in time."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as r:
            if r.read() == b"ok":
                return
        if proc.poll() is not None:
            raise RuntimeError("streamlit exited during start-up")
        time.sleep(poll)
    raise RuntimeError("streamlit did not answer its health check")
