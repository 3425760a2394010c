"""The real app in a real browser: ``streamlit run app.py`` headless, every page opened in Chromium.

Chromium is Debian's package (``apt-get install chromium``) driven by Playwright through
``executable_path``; ``playwright install`` is never needed. Screenshots land in
``tests/artifacts/screenshots/<page>.png`` (git-ignored).
"""

from __future__ import annotations

import contextlib
import os
import re
from pathlib import Path

import pytest

from bench.app_server import streamlit_app, wait_for_health

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"
SCREENSHOTS = ROOT / "tests" / "artifacts" / "screenshots"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
STARTUP_TIMEOUT = 120  # seconds for the server to answer its health check (a safety net, not an assertion)
PAGE_TIMEOUT_MS = 120_000
APP_TITLE = re.search(r'page_title="([^"]+)"', (ROOT / "app.py").read_text()).group(1)
SCRIPT_DONE = '[data-testid="stApp"][data-test-script-state="notRunning"]'

pytestmark = pytest.mark.browser


def routes() -> dict[str, tuple[str, str]]:
    """Page file stem → (URL path, title), read from app.py's st.Page(...) calls."""
    found = re.findall(r'st\.Page\(\s*"pages/(\w+)\.py",\s*title="([^"]+)".*?url_path="([^"]*)"',
                       (ROOT / "app.py").read_text())
    assert found, "no st.Page routes found in app.py"
    return {stem: (url_path, title) for stem, title, url_path in found}


@contextlib.contextmanager
def streamlit_server(shipped: Path, user: Path, log_path: Path):
    """``streamlit run app.py`` on a free port of 127.0.0.1 (bench/app_server.py); yields its base URL."""
    env = {**os.environ, "DVAE_CHECKPOINT_DIR": str(shipped), "DVAE_USER_CHECKPOINT_DIR": str(user),
           "STREAMLIT_BROWSER_GATHER_USAGE_STATS": "false",
           "DVAE_EXPERIMENTS_DIR": str(ROOT / "tests" / "data" / "experiments")}  # a recorded Ray Tune experiment
    with streamlit_app(env, log_path) as (url, proc, _):
        try:
            wait_for_health(url, proc, timeout=STARTUP_TIMEOUT, poll=0.5)
        except RuntimeError as err:
            pytest.fail(f"{err}:\n{log_path.read_text()[-3000:]}")
        yield url


def open_page(browser, url: str):
    """A new tab at ``url``, returned once the app's script has run to its end."""
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.goto(url, wait_until="domcontentloaded", timeout=PAGE_TIMEOUT_MS)
    # "initial" before the first run, "running" during it
    page.wait_for_selector(SCRIPT_DONE, state="attached", timeout=PAGE_TIMEOUT_MS)
    page.wait_for_selector('[data-testid="stMain"]', timeout=PAGE_TIMEOUT_MS)
    return page


def sidebar_titles(page) -> str:
    return page.locator('[data-testid="stSidebarNav"]').inner_text()


@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).is_file():
        pytest.skip(f"{CHROMIUM} is missing; install Debian's chromium package (apt-get install -y chromium)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="the playwright Python package is not installed")
    with sync_api.sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield chromium
        chromium.close()


@pytest.fixture(scope="module")
def server(browser, tiny_checkpoints, tmp_path_factory):
    folder = tmp_path_factory.mktemp("browser")
    with streamlit_server(tiny_checkpoints, folder / "user", folder / "streamlit.log") as url:
        yield url


@pytest.mark.parametrize("stem", list(routes()))
def test_page_opens_in_chromium_without_an_exception(server, browser, stem):
    url_path, title = routes()[stem]
    default = re.search(rf'"pages/{stem}\.py".*default=True', (ROOT / "app.py").read_text())
    page = open_page(browser, f"{server}/{'' if default else url_path}")  # the default page lives at /
    try:
        page.wait_for_timeout(1500)  # let charts and images paint before the screenshot
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SCREENSHOTS / f"{stem}.png"), full_page=True)
        exceptions = page.locator('[data-testid="stException"]')
        assert exceptions.count() == 0, exceptions.first.inner_text()
        assert "Page not found" not in page.inner_text("body")
        assert page.locator('[data-testid="stApp"]').get_attribute("data-test-connection-state") == "CONNECTED"
        assert page.locator("h1").count() >= 1  # the page drew its title
        assert "Bound vs M" in sidebar_titles(page)  # app.py's st.navigation drew the sidebar
        assert page.title() == APP_TITLE  # and its set_page_config ran
        assert title in sidebar_titles(page)
    finally:
        page.close()


def test_a_shared_deep_link_works_on_a_freshly_started_server(browser, tiny_checkpoints, tmp_path):
    with streamlit_server(tiny_checkpoints, tmp_path / "user", tmp_path / "streamlit.log") as url:
        # streamlit 1.67 runs a folder named pages/ as a legacy multipage app until app.py has called
        # st.navigation once; ui/boot.py reroutes such a first request through app.py
        page = open_page(browser, f"{url}/train?objective=diwae&M=5")
        try:
            assert "Bound vs M" in sidebar_titles(page)
            assert page.title() == APP_TITLE
            assert page.locator("h1").first.inner_text() == "Train a model"
            assert "objective=diwae" in page.url  # the shared settings survive the reroute
        finally:
            page.close()


def test_the_experiments_page_draws_the_recorded_grid_in_chromium(server, browser):
    """The recorded Ray Tune experiment (tests/data/experiments/): progress, heat map and a cell's curves drawn."""
    page = open_page(browser, f"{server}/experiments")
    try:
        page.wait_for_selector(".js-plotly-plot .heatmaplayer", timeout=PAGE_TIMEOUT_MS)  # the grid's heat map
        # the progress line is drawn by the page's fragment, which can finish after the heat map appears
        page.wait_for_selector("text=48 of 48 runs evaluated", timeout=PAGE_TIMEOUT_MS)
        body = page.inner_text("body")
        assert "table1-mnist-smoke" in body and "48 of 48 runs evaluated" in body
        assert "Finished: every run trained and evaluated." in body
        assert page.locator(".js-plotly-plot").count() == 2  # the heat map and one cell's curves
        assert "paper 96.14" in page.locator(".js-plotly-plot").first.inner_text()  # the paper's value in a cell
        assert page.locator('[data-testid="stException"]').count() == 0
    finally:
        page.close()
