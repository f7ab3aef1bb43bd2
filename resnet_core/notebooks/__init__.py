"""Every page of the app as a notebook that reproduces it: ``for_page(page, settings)``.

``page`` is a page's module name (``gradient_flow``) or URL path (``gradient-flow``); ``settings`` the page's
settings keyed by URL parameter names (the sidebar's ``arch``, ``plain``, ``shortcut``, ``stride``, ``preact``,
``width``, ``weights`` and the page's own ``act_``/``gf_``/``gc_``/``tr_``/``lesson_`` names), values as the
app's widgets hold them or as a link spells them (``"1"`` for True). Missing settings take the page's defaults.

Each page has a module here with ``TITLE``, ``SPEC`` (the page's :class:`~resnet_core.page_specs.PageSpec`: its
settings' names, defaults, notes and allowed values) and ``cells(settings)`` (its own cells); the shared cells come
from ``_cells``. The notebook's last cell prints the view's key numbers as one
JSON line.
"""

from __future__ import annotations

import importlib
import importlib.util
import re
from collections.abc import Mapping
from types import ModuleType
from typing import Any

import nbformat
from nbformat import NotebookNode
from nbformat.v4 import new_notebook

from ..errors import clip
from ..page_specs import SIDEBAR_NAMES, PageSpec, Setting
from ._cells import PARAMETERS_TAG, SMALL_LINE, NotebookError, check_choice, head, parameters_cell

# URL path -> module name, the app's pages in its navigation order.
PAGES: dict[str, str] = {
    "architecture": "architecture",
    "why-residuals": "lesson",
    "activations": "activations",
    "gradient-flow": "gradient_flow",
    "training": "training",
    "grad-cam": "grad_cam",
}
# Notebooks that are no page of the app (generated and tested like the pages').
EXTRAS: dict[str, str] = {"tour": "tour"}
_FLAGS = {"0": False, "1": True, "false": False, "true": True}


def _module_name(page: str) -> str:
    modules = {**PAGES, **EXTRAS}
    if page in modules:
        return modules[page]
    if page in modules.values():
        return page
    raise NotebookError(f"'{clip(str(page), 60)}' is not a page of ResNet Explorer; use one of "
                        f"{', '.join(modules)}.")


def page_module(page: str) -> ModuleType:
    """The module that writes ``page``'s notebook (NotebookError for an unknown page or one without a notebook)."""
    name = _module_name(page)
    if importlib.util.find_spec(f"{__name__}.{name}") is None:
        raise NotebookError(f"The {page} page has no notebook in this version of ResNet Explorer.")
    return importlib.import_module(f"{__name__}.{name}")


def available() -> list[str]:
    """The module names that have a notebook module here: every page's that exists, then the extras."""
    return [name for name in (*PAGES.values(), *EXTRAS.values())
            if importlib.util.find_spec(f"{__name__}.{name}") is not None]


def url_path(page: str) -> str | None:
    """The URL path of ``page`` (a module name or URL path); None for a notebook that is no page (the tour)."""
    name = _module_name(page)
    return next((path for path, module in PAGES.items() if module == name), None)


def _coerce(name: str, value: Any, default: Any) -> Any:
    """``value`` as the type of the default (a link's ``"1"`` -> True, ``"8"`` -> 8, ``"a,b"`` -> [a, b]); a
    default of None takes an int (a link's digits), None, or the value as it is."""
    if default is None and isinstance(value, str) and value.isascii() and value.isdigit():
        return int(value)
    if isinstance(default, bool):
        if isinstance(value, bool):
            return value
        if str(value).lower() in _FLAGS:
            return _FLAGS[str(value).lower()]
    elif isinstance(default, int):
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, str) and value.isascii() and value.isdigit():
            return int(value)
    elif isinstance(default, list):  # a multiselect's list, or a link's comma-separated text
        if isinstance(value, list | tuple):
            return list(value)
        if isinstance(value, str):
            return value.split(",") if value else []
    elif isinstance(default, float):
        try:
            return float(value)
        except (TypeError, ValueError):
            pass
    elif default is None or isinstance(value, type(default)):
        return value
    raise NotebookError(f"The setting '{name}' is {clip(repr(value), 60)}, not a {type(default).__name__} like "
                        f"its default {default!r}; give it as the app's link does.")


def _check(setting: Setting, settings: dict[str, Any]) -> None:
    """NotebookError unless the value is one the page's widget could hold (``setting``'s choices or bounds)."""
    from ..errors import WeightsError
    from ..models import ARCHITECTURES
    from ..weights import parse_weights_id

    name, value = setting.notebook, settings[setting.notebook]
    if setting.kind == "choice":
        check_choice(settings, name, setting.choices)
    elif setting.kind == "arch":
        check_choice(settings, name, tuple(ARCHITECTURES))
    elif setting.kind in ("whole", "decimal"):
        if value is None and setting.default is None:
            return
        number_type = int if setting.kind == "whole" else (int, float)
        if isinstance(value, bool) or not isinstance(value, number_type) \
                or not setting.low <= value <= setting.high:
            raise NotebookError(f"The setting '{name}' is {clip(repr(value), 60)}, not a number from {setting.low:g} "
                                f"to {setting.high:g}" + (" or None." if setting.default is None else "."))
    elif setting.kind == "choices":
        unknown = [item for item in value if item not in setting.choices]
        if unknown or (setting.most is not None and len(value) > setting.most):
            most = f", at most {setting.most}" if setting.most is not None else ""
            raise NotebookError(f"The setting '{name}' names {clip(', '.join(map(str, unknown or value)), 80)}; "
                                f"use {setting.what} of the page ({', '.join(map(str, setting.choices))}{most}).")
    elif setting.kind in ("weights", "trained_weights") and value:
        try:
            kind, _ = parse_weights_id(value)
        except WeightsError as error:
            raise NotebookError(f"The setting '{name}': {error}") from None
        if setting.kind == "trained_weights" and kind not in ("demo", "ckpt"):
            raise NotebookError(f"The setting '{name}' is {clip(repr(value), 60)}, not a trained model (demo: or "
                                "ckpt:).")


def spec_for(page: str) -> PageSpec:
    """The settings ``page``'s notebook takes (NotebookError for an unknown page)."""
    return page_module(page).SPEC


def defaults_for(page: str) -> dict[str, Any]:
    """``page``'s notebook parameters and their defaults."""
    return spec_for(page).notebook_defaults()


def resolve_settings(page: str, settings: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The page's notebook defaults (its ``SPEC``) overridden by ``settings`` (coerced to the defaults' types) and
    checked against the spec's choices and bounds. Sidebar settings a page does not use are dropped; any other
    name the page does not know is a NotebookError."""
    module = page_module(page)
    spec: PageSpec = module.SPEC
    defaults = spec.notebook_defaults()
    resolved = dict(defaults)
    for name, value in (settings or {}).items():
        if name in defaults:
            resolved[name] = _coerce(name, value, defaults[name])
        elif name not in SIDEBAR_NAMES:
            known = ", ".join(defaults) or "none"
            raise NotebookError(f"'{clip(str(name), 60)}' is not a setting of the {module.TITLE} notebook "
                                f"(its settings: {known}).")
    for setting in spec.notebook_settings():
        _check(setting, resolved)
    return resolved


def for_page(page: str, settings: Mapping[str, Any] | None = None) -> NotebookNode:
    """The notebook that reproduces ``page`` with ``settings`` (None or empty: the page's defaults).

    Raises NotebookError (a ValueError) naming an unknown page or setting, or a value a setting cannot take.
    """
    module = page_module(page)
    resolved = resolve_settings(page, settings)
    cells = [*head(module.TITLE, url_path(page)), parameters_cell(resolved, module.SPEC.notebook_notes()),
             *module.cells(resolved)]
    notebook = new_notebook(cells=cells)
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    notebook.metadata["language_info"] = {"name": "python"}
    nbformat.validate(notebook)
    return notebook


def to_bytes(notebook: NotebookNode) -> bytes:
    """The notebook file's bytes (nbformat 4 JSON, UTF-8), as the download button serves them."""
    return nbformat.writes(notebook).encode("utf-8") + b"\n"


def filename_for(page: str, settings: Mapping[str, Any] | None = None) -> str:
    """A file name for the download: ``resnet-explorer-<url path>[-<arch>][-plain].ipynb``."""
    resolved = resolve_settings(page, settings)
    parts = ["resnet-explorer", url_path(page) or _module_name(page)]
    if "arch" in resolved:
        parts.append(str(resolved["arch"]))
    if resolved.get("plain"):
        parts.append("plain")
    return re.sub(r"[^A-Za-z0-9_.-]", "_", "-".join(parts)) + ".ipynb"


def set_small(notebook: NotebookNode, small: bool = True) -> NotebookNode:
    """``notebook`` with ``SMALL`` set in its parameters cell (in place; returned for chaining)."""
    for cell in notebook.cells:
        if PARAMETERS_TAG in cell.metadata.get("tags", ()):
            lines = cell.source.split("\n")
            if any(line.startswith("SMALL = ") for line in lines):
                cell.source = "\n".join(f"SMALL = {small}" if line.startswith("SMALL = ") else line
                                        for line in lines)
                return notebook
    raise NotebookError(f"The notebook has no parameters cell with a '{SMALL_LINE}' line to set.")


__all__ = ["EXTRAS", "PAGES", "PARAMETERS_TAG", "NotebookError", "available", "defaults_for", "filename_for", "for_page", "page_module",
           "resolve_settings", "set_small", "spec_for", "to_bytes", "url_path"]
