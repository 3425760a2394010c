"""One server, three browsers: links carry no identity; nobody sees, stops, renames or deletes another's runs or
files; a checkpoint named like a shipped model breaks no page.

Three Playwright browser contexts (separate cookie jars, like three students' laptops) drive one
``streamlit run app.py`` in Debian's Chromium. Alice trains and uploads; Bob opens Alice's links; Carol arrives
with a cookie-less copy of a Train link. Alice's second tab is the same browser and finds her run.
"""

from __future__ import annotations

import re

import pytest
from test_browser import PAGE_TIMEOUT_MS, SCRIPT_DONE, streamlit_server
from test_browser import browser as browser  # noqa: F401 -- the shared Chromium fixture

pytestmark = pytest.mark.browser

COOKIE = "dvae_explorer_owner"


def settle(page, pause_ms: int = 400) -> None:
    """Wait until the app's script run triggered by the last action has finished."""
    page.wait_for_timeout(pause_ms)
    page.wait_for_selector(SCRIPT_DONE, state="attached", timeout=PAGE_TIMEOUT_MS)


def goto(page, url: str) -> None:
    page.goto(url, wait_until="domcontentloaded", timeout=PAGE_TIMEOUT_MS)
    page.wait_for_selector('[data-testid="stMain"]', timeout=PAGE_TIMEOUT_MS)
    settle(page, 800)


def no_exception(page) -> None:
    exceptions = page.locator('[data-testid="stException"]')
    assert exceptions.count() == 0, exceptions.first.inner_text()


def stop_buttons(page) -> int:
    return page.get_by_role("button", name=re.compile(r"^(stop_circle)?\s*Stop$")).count()


def wait_for_stop_button(page) -> None:
    """The run's card (drawn in a fragment after the page's script) shows its Stop button."""
    page.get_by_role("button", name=re.compile(r"^(stop_circle)?\s*Stop$")).first.wait_for(timeout=PAGE_TIMEOUT_MS)


def owner_cookie(context, page=None) -> str | None:
    """The owner cookie of a browser; with ``page``, waits (up to a minute) for the app to set it."""
    for _ in range(120 if page is not None else 1):
        value = next((c["value"] for c in context.cookies() if c["name"] == COOKIE), None)
        if value is not None or page is None:
            return value
        page.wait_for_timeout(500)
    return None


def test_three_browsers_share_views_never_control(browser, tiny_checkpoints, tmp_path):
    upload = (tiny_checkpoints / "digits-dvae-2d.pt").read_bytes()
    with streamlit_server(tiny_checkpoints, tmp_path / "user", tmp_path / "streamlit.log") as url:
        alice_ctx, bob_ctx, carol_ctx = (browser.new_context(viewport={"width": 1400, "height": 1000})
                                         for _ in range(3))
        try:
            # --- Alice starts a long run (settings from a link) -------------------------------------
            alice = alice_ctx.new_page()
            goto(alice, f"{url}/train?dataset=digits&epochs=5000&n=200&z=2&eval=none")
            no_exception(alice)
            token = owner_cookie(alice_ctx, alice)
            assert token and re.fullmatch(r"[0-9a-f]{32}", token), alice_ctx.cookies()
            alice.get_by_role("button", name=re.compile("Start training")).click()
            alice.wait_for_selector("text=Epoch", timeout=PAGE_TIMEOUT_MS)
            settle(alice)
            assert stop_buttons(alice) == 1
            train_link = alice.url
            assert "owner" not in train_link and token not in train_link

            # --- her second tab (same browser, same cookie) finds the run; the sidebar points to it --------
            alice2 = alice_ctx.new_page()
            goto(alice2, f"{url}/posterior")
            posterior_link = alice2.url
            assert token not in posterior_link and "owner" not in posterior_link
            assert "of your runs is in progress" in alice2.locator('[data-testid="stSidebar"]').inner_text()
            goto(alice2, f"{url}/train")
            wait_for_stop_button(alice2)
            assert stop_buttons(alice2) == 1

            # --- Alice uploads a valid checkpoint named like a shipped model --------------------------------
            goto(alice2, f"{url}/checkpoints")
            alice2.locator('[data-testid="stFileUploaderDropzoneInput"]').set_input_files(
                files=[{"name": "digits-vae-2d.pt", "mimeType": "application/octet-stream", "buffer": upload}])
            alice2.wait_for_selector("text=saved among your checkpoints", timeout=PAGE_TIMEOUT_MS)
            settle(alice2)
            no_exception(alice2)
            body = alice2.inner_text("body")
            assert "digits-vae-2d · shipped" in body and "digits-vae-2d · yours" in body
            assert alice2.get_by_role("button", name=re.compile("Delete")).count() == 1

            # --- Bob opens Alice's links: he sees the views, not her runs or files ----------------------------
            bob = bob_ctx.new_page()
            goto(bob, posterior_link)
            no_exception(bob)
            assert owner_cookie(bob_ctx, bob) not in (None, token)
            goto(bob, train_link)
            no_exception(bob)
            assert stop_buttons(bob) == 0
            assert "of your runs" not in bob.locator('[data-testid="stSidebar"]').inner_text()
            goto(bob, f"{url}/checkpoints")
            no_exception(bob)
            body = bob.inner_text("body")
            assert "digits-vae-2d · shipped" in body and "· yours" not in body
            assert bob.get_by_role("button", name=re.compile("Delete|Rename")).count() == 0
            # naming Alice's file in a link opens Bob's own namespace: a notice, then the default model
            goto(bob, f"{url}/reconstructions?model=user/digits-vae-2d")
            no_exception(bob)
            assert "not one of the allowed values" in bob.inner_text("body")

            # --- Carol: a new browser with a copy of the link ------------------------------------------------
            carol = carol_ctx.new_page()
            goto(carol, train_link)
            no_exception(carol)
            assert stop_buttons(carol) == 0
            assert owner_cookie(carol_ctx, carol) not in (None, token, owner_cookie(bob_ctx))

            # --- the name collision breaks no page for anyone ------------------------------------------------
            for path in ("", "posterior", "reconstructions", "samples", "is-it-a-bound", "bound-vs-m",
                         "checkpoints"):
                for page in (alice2, bob):
                    goto(page, f"{url}/{path}")
                    no_exception(page)

            # --- and Alice, only Alice, stops her run -----------------------------------------------------
            assert stop_buttons(alice) == 1
            alice.get_by_role("button", name=re.compile(r"Stop$")).first.click()
            alice.wait_for_selector("text=Stopped in epoch", timeout=PAGE_TIMEOUT_MS)
            no_exception(alice)
        finally:
            for context in (alice_ctx, bob_ctx, carol_ctx):
                context.close()
