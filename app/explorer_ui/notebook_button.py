"""The "Download as notebook" button every page shows: the page's view, with its current settings, as a notebook
(``resnet_core.notebooks.for_page``) that reproduces it in Jupyter or Colab.

The settings are the sidebar's model (the names the URL carries: arch, plain, shortcut, stride, preact, width,
weights) merged with the page's own (as the page hands them to ``write_settings``). Files that cannot travel in
the notebook (an uploaded image, an uploaded or trained checkpoint) are referenced by name or path, and the
notebook says where they must be. The bytes are built only when the button is clicked.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import streamlit as st
from nbformat import NotebookNode

from explorer_ui.sidebar import ModelChoice
from resnet_core.notebooks import NotebookError, filename_for, for_page, page_module, to_bytes
from resnet_core.notebooks._cells import PARAMETERS_TAG, md

# Where the button leaves what it would export on this run (tests and the browser check read it).
EXPORTED_KEY = "_notebook_settings"
MIME = "application/x-ipynb+json"


def sidebar_settings(choice: ModelChoice) -> dict[str, Any]:
    """The sidebar's model as the URL names it (``sidebar._write_url`` and the weights picker), values as the
    widgets hold them (flags as booleans)."""
    return {"arch": choice.name, "plain": not choice.residual, "shortcut": choice.shortcut,
            "stride": choice.stride_on, "preact": choice.preact, "width": choice.width_factor,
            "weights": choice.weights}


def uploaded_names(page_settings: Mapping[str, Any], state: Mapping[str, Any]) -> dict[str, str]:
    """For a page whose image source is an upload (``<prefix>_source == "upload"``), the setting the notebook
    reads the file from (``<prefix>_upload``) -> the uploaded file's name, from the uploader in ``state``."""
    names = {}
    for name, value in page_settings.items():
        if name.endswith("_source") and value == "upload":
            key = name[: -len("source")] + "upload"
            upload = state.get(key)
            if upload is not None and getattr(upload, "name", None):
                names[key] = Path(upload.name).name
    return names


def export_settings(page_url_path: str, page_settings: Mapping[str, Any], choice: ModelChoice | None,
                    state: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """What the button exports: the sidebar's settings, then the page's, then uploaded files' names for the
    settings the page's notebook has (``DEFAULTS``). Sidebar names the page's notebook does not use are dropped
    by ``for_page`` itself."""
    settings: dict[str, Any] = sidebar_settings(choice) if choice is not None else {}
    settings.update(page_settings)
    defaults = page_module(page_url_path).DEFAULTS
    settings.update({k: v for k, v in uploaded_names(page_settings, state or {}).items() if k in defaults})
    return settings


def files_note(settings: Mapping[str, Any], defaults: Mapping[str, Any]) -> str | None:
    """One markdown paragraph naming the files the notebook needs beside it or at a path, or None."""
    lines = []
    weights = str(settings.get("weights", ""))
    if "weights" in defaults and weights.startswith("ckpt:"):
        path = weights[len("ckpt:"):]
        lines.append(f"The weights are the checkpoint `{path}` on the machine that ran the app. On another machine, "
                     f"copy that file next to this notebook and set `SETTINGS[\"weights\"]` to "
                     f"`\"ckpt:{Path(path).name}\"`.")
    for name, value in settings.items():
        if name.endswith("_upload") and name in defaults and value:
            lines.append(f"The image is the file you uploaded, `{value}`: put it in the same folder as this "
                         f"notebook (or set `SETTINGS[\"{name}\"]` to its path) before running the cells.")
    return " ".join(lines) or None


def notebook_for(page_url_path: str, settings: Mapping[str, Any]) -> NotebookNode:
    """``for_page`` with a markdown cell after the settings naming the files the notebook reads, if any."""
    notebook = for_page(page_url_path, settings)
    note = files_note(settings, page_module(page_url_path).DEFAULTS)
    if note:
        at = next((i for i, cell in enumerate(notebook.cells) if PARAMETERS_TAG in cell.metadata.get("tags", ())),
                  len(notebook.cells) - 1)
        notebook.cells.insert(at + 1, md(f"**Files this notebook needs.** {note}"))
    return notebook


def notebook_button(page_url_path: str, page_settings: Mapping[str, Any]) -> None:
    """The sidebar's "Download as notebook" button for this page and its current settings (built on click)."""
    choice = st.session_state.get("model_choice")
    try:
        settings = export_settings(page_url_path, page_settings, choice, st.session_state)
        file_name = filename_for(page_url_path, settings)
    except NotebookError as error:  # a page without a notebook in this version, a setting it cannot take
        st.sidebar.caption(f"No notebook for this view: {error}")
        return
    st.session_state[EXPORTED_KEY] = {"page": page_url_path, "settings": settings}
    note = files_note(settings, page_module(page_url_path).DEFAULTS)
    with st.sidebar:
        st.download_button("Download as notebook", data=lambda: to_bytes(notebook_for(page_url_path, settings)),
                           file_name=file_name, mime=MIME, key="notebook_download", on_click="ignore",
                           icon=":material/download:",
                           help="This view with its current settings as a Jupyter notebook: the same resnet_core "
                                "calls and figures. Open it in Jupyter or Colab (see the README's Notebooks).")
        if note:
            st.caption(note)
