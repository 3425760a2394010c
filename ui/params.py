"""Page state in the URL, so a teacher can share a link that opens the same view.

Pattern on a page::

    noise = params.get("noise", "salt-pepper", choices=NOISE_NAMES)
    level = params.get("level", 0.1, cast=float)
    level = st.slider("Noise level", 0.0, 1.0, value=level)
    params.put(noise=noise, level=level)

``get`` never raises: a missing value falls back to the default silently, a malformed
or out-of-range one (hand-edited URL) falls back to the default with a visible notice;
``put`` writes only keys whose value changed.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import TypeVar

import streamlit as st

T = TypeVar("T")


def check(key: str, cast: Callable[[str], T] | type = str, choices: Sequence[T] | None = None,
          low: float | None = None, high: float | None = None) -> tuple[T | None, str | None]:
    """``(value, None)`` for a usable query parameter, ``(None, why)`` for an unusable one, ``(None, None)`` if absent.

    ``why`` says in plain words what was wrong and what is allowed, e.g. ``"z=0 is below the smallest allowed
    value, 1"``.
    """
    raw = st.query_params.get(key)
    if raw is None:
        return None, None
    shown = f"{key}={raw[:40]}"
    try:
        if cast is bool:
            value = raw.lower() in ("1", "true", "yes", "on")
        else:
            value = cast(raw)
    except (TypeError, ValueError):
        kind = {int: "a whole number", float: "a number"}.get(cast, "a valid value")
        return None, f"{shown} is not {kind}"
    if isinstance(value, float) and not math.isfinite(value):
        return None, f"{shown} is not a finite number"
    if choices is not None and value not in choices:
        allowed = ", ".join(str(c) for c in list(choices)[:8]) + (", …" if len(choices) > 8 else "")
        return None, f"{shown} is not one of the allowed values ({allowed})"
    if low is not None and value < low:
        return None, f"{shown} is below the smallest allowed value, {low:g}"
    if high is not None and value > high:
        return None, f"{shown} is above the largest allowed value, {high:g}"
    return value, None


def notify(problem: str, default=None) -> None:
    """Tell the user, once per session and problem, that a link's value was not used (a toast)."""
    seen = st.session_state.setdefault("_param_notices", set())
    if problem in seen:
        return
    seen.add(problem)
    fallback = "" if default is None or default == "" else f"; using the default, {default}"
    # long (10 s): a sentence to read, and a page on a busy server may take a few seconds to finish drawing
    st.toast(f"This link's setting {problem}{fallback}.", icon=":material/link_off:", duration="long")


def get(key: str, default: T, cast: Callable[[str], T] | None = None, choices: Sequence[T] | None = None,
        low: float | None = None, high: float | None = None, quiet: bool = False) -> T:
    """The query parameter ``key`` cast like ``default`` (or with ``cast``), else ``default``.

    A value that is present but unusable (malformed, not a choice, out of range) falls back to
    ``default`` with a visible notice (:func:`notify`) unless ``quiet``.
    """
    caster = cast or (type(default) if default is not None else str)
    value, problem = check(key, caster, choices, low, high)
    if problem is not None and not quiet:
        notify(problem, default)
    return default if value is None else value


def put(**values) -> None:
    """Store these values in the URL's query parameters."""
    for key, value in values.items():
        text = "" if value is None else (f"{value:g}" if isinstance(value, float) else str(value))
        if st.query_params.get(key) != text:
            st.query_params[key] = text
