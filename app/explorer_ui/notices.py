"""A link's refused values, at the top of the main area, each saying what is shown instead.

``app/navigation.py`` opens the area before the sidebar and the page draw anything; the link's notices go there with
their fallback (the model the sidebar ended with, the value a page's widget holds), and a page that refuses a
linked value only once it knows the model (a layer the net lacks, a class outside the image's top 5) writes there
too with :func:`refuse`. Every refused text is repeated verbatim in a code box: nothing from a URL is rendered as
Markdown.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import streamlit as st

from explorer_ui.weights_picker import effective_weights
from resnet_core.errors import WeightsError
from resnet_core.links import SIDEBAR_LINKS, Notice, url_text
from resnet_core.page_specs import Setting, setting_for_link
from resnet_core.weights import weights_label

AREA_KEY = "_notice_area"
NOTICES_KEY = "_link_notices"  # the link's notices of this run (the session's first), left by the sidebar


def open_area() -> None:
    """The notices' place: first in the main area, filled as the run goes on."""
    st.session_state[AREA_KEY] = st.container()
    st.session_state[NOTICES_KEY] = []


def _area() -> Any:
    return st.session_state.get(AREA_KEY) or st.container()


def _fallback_words(setting: Setting, value: Any) -> str | None:
    """The clause naming what a widget shows instead of a refused value (our own values only: they passed the
    widget); None when it holds nothing."""
    if value is None or value == "" or (isinstance(value, list | tuple) and not value):
        return None
    if setting.kind == "flag":
        return f"it stays {'on' if value else 'off'}"
    if setting.kind == "choices":
        return f"{', '.join(map(str, value))} {'are' if len(value) > 1 else 'is'} used instead"
    return f"{url_text(value)} is used instead"


def _sidebar_fallback(notice: Notice, choice: Any) -> str | None:
    if choice is None:
        return None
    if notice.setting == "weights":  # the weights actually loaded: the chosen ones if they fit, else random
        try:
            label = weights_label(effective_weights(choice.weights, choice.name, choice.options()))
        except (WeightsError, OSError):
            return None
        if label.startswith(choice.label):  # an embedded demo's label names its net already
            return f"{label} is shown instead"
        return f"{choice.label} with {label} weights is shown instead"
    return f"{choice.label} is shown instead"


def _page_fallback(notice: Notice) -> str | None:
    setting = setting_for_link(notice.setting)
    if setting is None:
        return None
    owner = None
    if setting.per is not None:  # a race's field: the preset the session shows, else the page's first
        owner_setting = setting_for_link(setting.per)
        owner = st.session_state.get(setting.per, owner_setting.default if owner_setting else None)
    key = setting.state_key(owner)
    if key in st.session_state:
        return _fallback_words(setting, st.session_state[key])
    if not setting.runtime_default:
        return _fallback_words(setting, setting.default)
    return "the page's default is used instead"


def show_link_notices(choice: Any) -> list[tuple[Notice, Any]]:
    """Draw the link's notices (left by the sidebar this run) in the area; returns the page settings' slots, to
    be named again by :func:`name_page_fallbacks` once the page has run and its widgets hold their values."""
    pending = []
    area = _area()
    for notice in st.session_state.get(NOTICES_KEY, []):
        sidebar = notice.setting in SIDEBAR_LINKS
        fallback = _sidebar_fallback(notice, choice) if sidebar else _page_fallback(notice)
        with area:
            slot = st.empty()
            slot.warning(notice.instead(fallback))
            if notice.raw:
                st.code(notice.raw, language=None, wrap_lines=True)
        if notice.setting and not sidebar:
            pending.append((notice, slot))
    return pending


def name_page_fallbacks(pending: Sequence[tuple[Notice, Any]]) -> None:
    """After the page ran: each refused page setting's sentence names the value its widget shows now."""
    for notice, slot in pending:
        slot.warning(notice.instead(_page_fallback(notice)))


def refuse(sentence: str, raw: Any) -> None:
    """A page's own refusal of a linked value (our ``sentence``; the value verbatim), at the top."""
    with _area():
        st.warning(sentence)
        st.code(str(raw), language=None, wrap_lines=True)

