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


def _checkpoint(value: str) -> tuple[str, str]:
    """A ``ckpt:`` id's title (never a server path) and its file's name."""
    from ..errors import WeightsError
    from ..weights.checkpoints import checkpoint_title, resolve_checkpoint_path

    location = value[len("ckpt:"):]
    try:
        return checkpoint_title(resolve_checkpoint_path(location)), PurePath(location).name
    except WeightsError:
        return f"checkpoint {PurePath(location).name}", PurePath(location).name


def files_note(settings: Mapping[str, Any], defaults: Mapping[str, Any]) -> str | None:
    """One markdown paragraph for the notebook naming the files it needs (beside it, or in the runs folder), or
    None. Checkpoints are named by their title and their id relative to the runs folder, never a server path."""
    lines = []
    for name, value in settings.items():  # the sidebar's weights, the lesson's trained net
        if name in defaults and str(value).startswith("ckpt:"):
            title, file = _checkpoint(str(value))
            lines.append(f"`{name}` is {_span(title)}, `{_span(value)}` in the runs folder (`runs/` of the "
                         "checkout, or `$RESNET_EXPLORER_RUNS`). Checkpoints open only from the runs folder and "
                         f"its `uploads/` folder: on another machine, copy `{_span(file)}` to the same place in "
                         "its runs folder.")
    for name, value in settings.items():
        if name.endswith("_upload") and name in defaults and value:
            lines.append(f"The image is the file you uploaded, `{_span(value)}`: put it in the same folder as this "
                         f"notebook (or set `SETTINGS[\"{name}\"]` to its path) before running the cells.")
    return " ".join(lines) or None


def files_caption(settings: Mapping[str, Any], defaults: Mapping[str, Any]) -> str | None:
    """What the page says under its "Download as notebook" button about the files the notebook needs, in a
    visitor's words: no setting name, no server path."""
    lines = []
    for name, value in settings.items():
        if name in defaults and str(value).startswith("ckpt:"):
            title, file = _checkpoint(str(value))
            lines.append(f"The notebook reads {_span(title)} (the file `{_span(file)}`) from the runs folder; "
                         "on another machine, copy it there first (the notebook says where).")
    for name, value in settings.items():
        if name.endswith("_upload") and name in defaults and value:
            lines.append(f"Put the image you uploaded, `{_span(value)}`, beside the notebook before running it.")
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


__all__ = ["FILES_HEADING", "export_settings", "files_caption", "files_note", "notebook_for"]
