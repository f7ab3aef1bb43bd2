"""The "Download as notebook" button every page shows: the page's view, with its current settings, as a notebook
(``resnet_core.notebooks``) that reproduces it in Jupyter or Colab.

The settings are the sidebar's model (the names the URL carries: arch, plain, shortcut, stride, preact, width,
weights) merged with the page's own (as the page hands them to ``write_settings``). Files that cannot travel in
the notebook (an uploaded image, an uploaded or trained checkpoint) are referenced by name or path, and the
notebook says where they must be (``resnet_core.notebooks.export``). The bytes are built only on a click.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import streamlit as st

from explorer_ui.sidebar import ModelChoice
from resnet_core.links import link_query
from resnet_core.notebooks import NotebookError, defaults_for, filename_for, to_bytes
from resnet_core.notebooks.export import export_settings, files_caption, notebook_for
from resnet_core.page_specs import setting_for_link

# Where the button leaves what it exports on this run (AppTest has no download bytes: the tests read it here).
EXPORTED_KEY = "_notebook_settings"
MIME = "application/x-ipynb+json"


def sidebar_settings(choice: ModelChoice | None) -> dict[str, Any]:
    """The sidebar's model as the URL names it (``sidebar._write_url`` and the weights picker), values as the
    widgets hold them (flags as booleans)."""
    if choice is None:
        return {}
    return {"arch": choice.name, "plain": not choice.residual, "shortcut": choice.shortcut,
            "stride": choice.stride_on, "preact": choice.preact, "width": choice.width_factor,
            "weights": choice.weights}


def uploaded_names(page_settings: Mapping[str, Any], state: Mapping[str, Any]) -> dict[str, str]:
    """For a page whose image source is an upload (``<prefix>_source == "upload"``): ``<prefix>_upload`` (the
    uploader's key, and the notebook's setting for the file) -> the uploaded file's name."""
    names = {}
    for name, value in page_settings.items():
        if name.endswith("_source") and value == "upload":
            key = name[: -len("source")] + "upload"
            upload = state.get(key)
            if upload is not None and getattr(upload, "name", None):
                names[key] = str(upload.name)
    return names


SHARED_KEY = "_shared_link"  # the link *Share this view* shows on this run (the tests read it here)
LOCKS_NOTE = ("Locked settings are shown as text, not widgets, to whoever opens the link. A lock is a "
              "convenience, not security: anyone can edit the link to unlock them.")


def share_view(page_url_path: str, page_settings: Mapping[str, Any]) -> None:
    """*Share this view*, beside the notebook button: this view's link, with a picker for what it locks."""
    values = {**sidebar_settings(st.session_state.get("model_choice")), **page_settings}
    names = [name for name in values if setting_for_link(name) is not None]
    with st.sidebar.popover("Share this view", icon=":material/share:", width="stretch"):
        lock = st.multiselect("Lock for whoever opens it", names, key="share_lock",
                              format_func=lambda n: _setting_label(n),
                              help="Each locked setting keeps this view's value and shows it as text.")
        url = st.context.url or ""
        base = url.split("?", 1)[0] if url else f"/{page_url_path}"
        link = f"{base}?{link_query(values, lock)}"
        st.session_state[SHARED_KEY] = link
        st.code(link, language=None, wrap_lines=True)
        st.caption(LOCKS_NOTE)


def _setting_label(name: str) -> str:
    setting = setting_for_link(name)
    return f"{name} ({setting.note})" if setting is not None and setting.note else name


def notebook_button(page_url_path: str, page_settings: Mapping[str, Any]) -> None:
    """The sidebar's "Download as notebook" button for this page and its current settings (built on click), and
    *Share this view* beside it."""
    share_view(page_url_path, page_settings)
    try:
        settings = export_settings(page_url_path, sidebar_settings(st.session_state.get("model_choice")),
                                   page_settings, uploaded_names(page_settings, st.session_state))
        file_name = filename_for(page_url_path, settings)
    except NotebookError as error:  # a page without a notebook in this version, a setting it cannot take
        st.sidebar.caption(f"No notebook for this view: {error}")
        return
    st.session_state[EXPORTED_KEY] = {"page": page_url_path, "settings": settings}
    note = files_caption(settings, defaults_for(page_url_path))
    with st.sidebar:
        st.download_button("Download as notebook", data=lambda: to_bytes(notebook_for(page_url_path, settings)),
                           file_name=file_name, mime=MIME, key="notebook_download", on_click="ignore",
                           icon=":material/download:",
                           help="This view with its current settings as a Jupyter notebook: the same resnet_core "
                                "calls and figures. Open it in Jupyter or Colab (see the README's Notebooks).")
        if note:
            st.caption(note)
