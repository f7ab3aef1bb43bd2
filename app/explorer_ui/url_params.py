"""The link in the browser's address bar: read once per session, page settings handed to their page, the
current view written back, notices shown.

Validation lives in ``resnet_core.links`` (generated from the declared settings): a notice is our own sentence
plus the refused text, which is shown only verbatim (``st.code``), so a crafted link cannot put a link or an
image on the page.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import streamlit as st

from resnet_core.links import APP_WIDE_LINKS, PARAMS, SIDEBAR_LINKS, Link, read_link, url_text
from resnet_core.page_specs import PageSpec, setting_for_link

# Where ``current_link`` leaves the page settings of a session's first run until the page takes them.
PENDING_KEY = "_url_page_settings"
# The settings a link locked (``lock=``), for the whole session: their widgets are not drawn.
LOCKED_KEY = "_locked_settings"
# The app-wide parameters of that link (teacher mode's reveal, poll and key), for the whole session.
APP_WIDE_KEY = "_app_wide_settings"


def current_link() -> Link:
    """Validate ``st.query_params`` and drop the names the app does not read from the browser's URL.

    The page settings among the values wait in session state until their page takes them (``take_settings``).
    """
    params = {name: st.query_params.get_all(name) for name in st.query_params}
    link = read_link(params)
    for name in params:
        if name not in PARAMS or (name not in SIDEBAR_LINKS and name not in link.values):
            del st.query_params[name]
    st.session_state[PENDING_KEY] = {name: value for name, value in link.values.items()
                                     if name not in SIDEBAR_LINKS and name not in APP_WIDE_LINKS}
    st.session_state[LOCKED_KEY] = frozenset(link.values.get("lock", ()))
    st.session_state[APP_WIDE_KEY] = {name: link.values[name] for name in APP_WIDE_LINKS if name in link.values}
    return link


def app_wide(name: str) -> Any:
    """The value the link that opened this session gave an app-wide parameter (``reveal``, ``poll``, ``key``),
    or None."""
    return st.session_state.get(APP_WIDE_KEY, {}).get(name)


def locked(name: str) -> bool:
    """Whether the link that opened this session locked the setting named ``name`` (its link name)."""
    return name in st.session_state.get(LOCKED_KEY, frozenset())


def take_settings(spec: PageSpec, owners: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Before a page draws its widgets: set each of ``spec``'s settings from the link that opened the session
    (once: a taken setting is gone, so the widgets are the student's from then on). A ``per`` setting is taken
    only once its owner's value is given in ``owners`` (the race's fields go to the preset the link chose).
    Returns what was taken, by link name."""
    pending = st.session_state.get(PENDING_KEY) or {}
    taken: dict[str, Any] = {}
    for setting in spec:
        if setting.link not in pending or (setting.per is not None and setting.per not in (owners or {})):
            continue
        value = pending.pop(setting.link)
        st.session_state[setting.state_key((owners or {}).get(setting.per))] = value
        taken[setting.link] = value
    return taken


def write_settings(values: Mapping[str, Any], drop: Sequence[str] = ()) -> None:
    """Mirror a page's current settings in the URL (``values``: link name -> value) and remove the names in
    ``drop`` (settings that do not apply to the current view), so a shared link reopens the same view. A name
    that no declaration carries in a link is a programming error (ValueError): the link could not read it back."""
    unknown = [name for name in (*values, *drop) if setting_for_link(name) is None]
    if unknown:
        raise ValueError(f"No declared setting is carried in a link as {', '.join(unknown)}.")
    for name, value in values.items():
        text = url_text(value)
        if st.query_params.get(name) != text:
            st.query_params[name] = text
    for name in drop:
        if name in st.query_params:
            del st.query_params[name]


def presenting() -> bool:
    """Presenter view (``present=1``): from the session's link once it is read, before that from the address bar
    itself (the page's configuration, the sidebar folded or not, comes first in a run)."""
    if APP_WIDE_KEY in st.session_state:
        return bool(app_wide("present"))
    return bool(read_link({"present": st.query_params.get_all("present")}).values.get("present"))
