"""What the app's "Download as notebook" button serves: a page's notebook for the settings it exports, with a
note naming the files that cannot travel inside it (an uploaded image, a checkpoint), referenced by name or path.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import PurePath
from typing import Any

from nbformat import NotebookNode

from . import defaults_for, for_page
from ._cells import PARAMETERS_TAG, md

FILES_HEADING = "**Files this notebook needs.**"


def export_settings(page: str, sidebar: Mapping[str, Any], page_settings: Mapping[str, Any],
                    uploads: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The settings a page's button exports: the sidebar's model (URL names), then the page's own settings, then
    uploaded files' names for the settings the page's notebook reads them from (``<prefix>_upload``). Sidebar
    names the page's notebook does not use are dropped later, by ``for_page``."""
    defaults = defaults_for(page)
    settings = {**sidebar, **page_settings}
    settings.update({name: PurePath(value).name for name, value in (uploads or {}).items() if name in defaults})
    return settings


def _span(text: Any) -> str:
    """``text`` for a markdown code span: a visitor's file name may hold backticks or line breaks that would end
    the span and let the rest render as markdown (a link, an image) in the downloaded notebook."""
    return "".join(ch for ch in str(text) if ch.isprintable() and ch != "`")[:200]


def files_note(settings: Mapping[str, Any], defaults: Mapping[str, Any]) -> str | None:
    """One markdown paragraph naming the files the notebook needs (beside it, or at a path), or None."""
    lines = []
    for name, value in settings.items():  # the sidebar's weights, the lesson's trained net
        if name in defaults and str(value).startswith("ckpt:"):
            path = str(value)[len("ckpt:"):]
            lines.append(f"`{name}` is the checkpoint `{_span(path)}` on the machine that ran the app. Checkpoints open "
                         "only from the runs folder (`runs/` of the checkout, or `$RESNET_EXPLORER_RUNS`) and its "
                         f"`uploads/` folder: on another machine, copy `{_span(PurePath(path).name)}` into one of them and "
                         f"set `SETTINGS[\"{name}\"]` to `\"ckpt:<its absolute path>\"`.")
    for name, value in settings.items():
        if name.endswith("_upload") and name in defaults and value:
            lines.append(f"The image is the file you uploaded, `{_span(value)}`: put it in the same folder as this "
                         f"notebook (or set `SETTINGS[\"{name}\"]` to its path) before running the cells.")
    return " ".join(lines) or None


def notebook_for(page: str, settings: Mapping[str, Any]) -> NotebookNode:
    """``for_page(page, settings)`` with a markdown cell after the settings cell naming the files it reads, if
    any: what the download button serves."""
    notebook = for_page(page, settings)
    note = files_note(settings, defaults_for(page))
    if note:
        at = next((i for i, cell in enumerate(notebook.cells) if PARAMETERS_TAG in cell.metadata.get("tags", ())),
                  len(notebook.cells) - 1)
        notebook.cells.insert(at + 1, md(f"{FILES_HEADING} {note}"))
    return notebook
