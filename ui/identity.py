"""Who is asking: one random token per browser, kept in a cookie and never in a URL.

A shared link (any page, any query parameters) shares a *view*, never control: the
token that owns runs and files rides in the ``dvae_explorer_owner`` cookie, which the
browser sends when it opens the app's websocket (``st.context.cookies``). Every tab and
refresh of the same browser has the same token; another browser (or a private window)
gets its own.

* :func:`token` — this session's token: the cookie's, else a new random one.
* :func:`owner_key` — what the server stores and checks (job owners, folder names):
  a hash of the token, so files and logs never hold the token itself.
* :func:`ensure_browser_identity` — called by app.py on every run: drops any ``?owner=``
  from the URL (older links carried it; it is ignored) and, when the browser did not
  send the cookie yet, sets it with a tiny inline component (JavaScript, SameSite=Lax,
  about 400 days). If another tab of this browser set a token first, the browser's
  token wins and this session adopts it.

A browser that lost its cookie starts as a new owner: it sees the shipped models only,
never anybody else's runs or files.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from collections.abc import Mapping

import streamlit as st

COOKIE = "dvae_explorer_owner"
TOKEN_PATTERN = re.compile(r"[0-9a-f]{32}")
MAX_AGE_SECONDS = 400 * 24 * 3600  # browsers cap cookie lifetimes at about 400 days
_TOKEN_KEY = "_owner_token"
_SYNCED_KEY = "_owner_cookie_synced"

_COOKIE_JS = """
export default function(component) {
  const { data, setStateValue } = component;
  if (!data || !data.name) return;
  const pattern = new RegExp("(?:^|;\\\\s*)" + data.name + "=([0-9a-f]{32})(?:;|$)");
  const found = document.cookie.match(pattern);
  if (found) {
    if (found[1] !== data.token) setStateValue("token", found[1]);  // another tab was first: adopt its token
    return;
  }
  const secure = window.location.protocol === "https:" ? "; Secure" : "";
  document.cookie = `${data.name}=${data.token}; path=/; max-age=${data.max_age}; SameSite=Lax${secure}`;
}
"""
_cookie_component = st.components.v2.component("dvae_owner_cookie", html="", js=_COOKIE_JS)


def browser_cookies() -> Mapping[str, str]:
    """The cookies the browser sent with this session's websocket (empty in tests and raw runs)."""
    try:
        return st.context.cookies
    except Exception:  # noqa: BLE001 — no client (bare script run): no cookies
        return {}


def token() -> str:
    """This browser's owner token (32 hex digits): from the cookie, else a new random one for this session."""
    value = st.session_state.get(_TOKEN_KEY)
    if value is None:
        cookie = str(browser_cookies().get(COOKIE) or "")
        value = cookie if TOKEN_PATTERN.fullmatch(cookie) else secrets.token_hex(16)
        st.session_state[_TOKEN_KEY] = value
        st.session_state[_SYNCED_KEY] = cookie == value
    return value


def key_of(value: str) -> str:
    """The owner key of a token: 32 hex digits of its SHA-256 (the token cannot be recovered from it)."""
    return hashlib.sha256(f"dvae-explorer-owner:{value}".encode()).hexdigest()[:32]


def owner_key() -> str:
    """The key that owns this browser's runs and files on the server."""
    return key_of(token())


def ensure_browser_identity() -> None:
    """Drop ``?owner=`` from the URL and make sure this browser holds its token in the cookie."""
    if "owner" in st.query_params:
        del st.query_params["owner"]
    value = token()
    if st.session_state.get(_SYNCED_KEY):
        return
    result = _cookie_component(key="owner_cookie", data={"name": COOKIE, "token": value, "max_age": MAX_AGE_SECONDS},
                               default={"token": None}, on_token_change=lambda: None, height=0)
    reported = getattr(result, "token", None)
    if isinstance(reported, str) and TOKEN_PATTERN.fullmatch(reported) and reported != value:
        st.session_state[_TOKEN_KEY] = reported
        st.session_state[_SYNCED_KEY] = True
