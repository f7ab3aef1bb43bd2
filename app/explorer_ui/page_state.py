"""Settings that live in the session, drawn from their declaration (``resnet_core.page_specs``).

Streamlit forgets the state of a widget that a run does not draw: a page that stops early (no upload yet), a
section that is hidden, another page, and the value is gone; writing the value back into ``st.session_state``
does not help, since a remounted widget's default (stored by element id) outranks it. Every declared setting's
widget is therefore drawn with Streamlit's ``persist_state="session"``, which keeps its value for the whole
session whether or not a run draws it. ``setting_widget`` draws a setting's widget from its declaration.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import streamlit as st

from explorer_ui.url_params import locked
from resnet_core.page_specs import Setting

# Every widget that holds a declared setting passes this (the sidebar and the image picker draw their own).
PERSIST = "session"


def setting_widget(setting: Setting, label: str, *, owner: Any = None, options: Sequence[Any] | None = None,
                   container: Any = None, **kwargs: Any) -> Any:
    """Draw ``setting``'s widget (its kind, choices or bounds, and key from the declaration) and return its value.

    ``options`` replaces the declared choices where they depend on the model (a layer list, the top-5 classes);
    ``owner`` picks the key of a ``per`` setting (the race's preset); ``container`` is a column or the sidebar.
    The default goes through session state (a link may have set the value already): a widget given both a
    default and a session-state value warns and reruns a browser's first view.
    """
    where = container if container is not None else st
    key = setting.state_key(owner)
    choices = list(options if options is not None else setting.choices)
    if key not in st.session_state and not setting.runtime_default:
        st.session_state[key] = list(setting.default) if isinstance(setting.default, tuple) else setting.default
    if setting.link and locked(setting.link) and key in st.session_state:  # the link's value (or the default)
        value = st.session_state[key]
        show_locked(label, value, kwargs.get("format_func"), where)
        return value
    kind = setting.widget
    kwargs.setdefault("persist_state", PERSIST)
    if kind in ("selectbox", "radio", "segmented_control", "select_slider"):
        return getattr(where, kind)(label, choices, key=key, **kwargs)
    if kind == "multiselect":
        return where.multiselect(label, choices, key=key, max_selections=setting.most, **kwargs)
    if kind == "toggle":
        return where.toggle(label, key=key, **kwargs)
    if kind in ("slider", "number_input"):
        step = setting.step if setting.step is not None else (1 if setting.kind == "whole" else None)
        return getattr(where, kind)(label, setting.low, setting.high, step=step, key=key, **kwargs)
    raise ValueError(f"{setting.name}: a {kind} is drawn by its own helper, not setting_widget.")


_MARKDOWN = str.maketrans({c: f"\\{c}" for c in "\\`*_{}[]()#+-.!<>|~"})


def show_locked(label: str, value: Any, format_func: Any = None, where: Any = None) -> None:
    """A locked setting as text in place of its widget: its label, its value and who set it."""
    shown = format_func or str
    if isinstance(value, bool):
        text = "on" if value else "off"
    elif isinstance(value, list | tuple):
        text = ", ".join(str(shown(v)) for v in value) or "none"
    else:
        text = str(shown(value))
    (where if where is not None else st).markdown(
        f"**{label.translate(_MARKDOWN)}:** {text.translate(_MARKDOWN)} *(set by this link)*")
