"""The cells every page's notebook shares: install-if-missing, the device pick, the settings cell.

A page module (``resnet_core.notebooks.<page>``) writes only its own cells with :func:`md` and :func:`code`; the
settings it reads are the dict ``SETTINGS`` of the cell tagged ``parameters`` (papermill's tag), and ``SMALL``
in the same cell shrinks batches, steps and grids (the tests set it; the app's numbers need ``SMALL = False``).
"""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping
from typing import Any

from nbformat import NotebookNode
from nbformat.v4 import new_code_cell, new_markdown_cell

from ..errors import clip

PARAMETERS_TAG = "parameters"
SMALL_LINE = "SMALL = False"

INSTALL = '''\
# ResNet Explorer's library (resnet_core) must be importable. Installed already (`pip install -e .` in a checkout
# of the repository, `make run` or `make test`): this cell does nothing. Opened from the repository's notebooks/
# folder: it installs that checkout. Elsewhere (Colab): upload the repository (a zip, unpacked) or a wheel
# (`python -m build` in a checkout) and put its path in PACKAGE, or a pip URL of the repository, then run again.
import importlib.util
import pathlib
import subprocess
import sys

PACKAGE = ""  # a path or pip URL of resnet-explorer, used only when resnet_core is not importable

if importlib.util.find_spec("resnet_core") is None:
    checkouts = [p for p in (pathlib.Path.cwd(), *pathlib.Path.cwd().parents) if (p / "pyproject.toml").is_file()
                 and 'name = "resnet-explorer"' in (p / "pyproject.toml").read_text(errors="ignore")]
    source = PACKAGE or (str(checkouts[0]) if checkouts else "")
    if not source:
        raise ModuleNotFoundError("resnet_core is not installed and no checkout of ResNet Explorer is around this "
                                  "notebook: set PACKAGE to the repository's folder, a wheel or a pip URL.")
    subprocess.check_call([sys.executable, "-m", "pip", "install", "-q", source])
    importlib.invalidate_caches()'''

DEVICE = '''\
# The device, picked as the app's training race picks it: CUDA, then Apple MPS, then the CPU.
import json
import sys

import plotly.io as pio

from resnet_core.train import describe_device, pick_device

# Figures are kept in the notebook as Plotly's JSON (JupyterLab, Notebook 7 and VS Code draw them, offline);
# Colab keeps its own renderer.
if "google.colab" not in sys.modules:
    pio.renderers.default = "plotly_mimetype"

DEVICE = pick_device("auto")
print(f"Running on {describe_device(DEVICE)}")'''


class NotebookError(ValueError):
    """A page or a setting no notebook has; the message says which and what to use instead."""


def check_choice(settings: Mapping[str, Any], name: str, allowed: Collection[Any]) -> None:
    """NotebookError unless ``settings[name]`` is one of ``allowed`` (a setting's choices, as the page offers them)."""
    if settings[name] not in allowed:
        shown = f"{min(allowed)}-{max(allowed)}" if isinstance(allowed, range) else ", ".join(map(str, allowed))
        raise NotebookError(f"The setting '{name}' is {clip(repr(settings[name]), 60)}, not one the page offers ({shown}).")


def md(source: str) -> NotebookNode:
    """A markdown cell (``source`` without surrounding blank lines)."""
    return new_markdown_cell(source.strip("\n"))


def code(source: str, *, tags: tuple[str, ...] = ()) -> NotebookNode:
    """A code cell; ``tags`` go to its metadata (``parameters`` marks the settings cell)."""
    cell = new_code_cell(source.strip("\n"))
    if tags:
        cell.metadata["tags"] = list(tags)
    return cell


def literal(value: Any) -> str:
    """``value`` as Python source: JSON's double quotes for strings, Python's True/False/None."""
    if isinstance(value, str):
        return json.dumps(value)
    return repr(value)


def parameters_cell(settings: Mapping[str, Any], notes: Mapping[str, str] | None = None) -> NotebookNode:
    """The one editable cell: ``SETTINGS`` (URL names -> values, as the app's link has them) and ``SMALL``.

    ``notes``: a short comment per setting (what it is, which values it takes)."""
    notes = notes or {}
    lines = ["# The page's settings, named as in the app's link (?arch=resnet20&...): edit them and run all cells.",
             "SETTINGS = {"]
    for name, value in settings.items():
        note = f"  # {notes[name]}" if name in notes else ""
        lines.append(f"    {json.dumps(name)}: {literal(value)},{note}")
    lines += ["}",
              "# True shrinks batches, steps and grids so that the notebook runs in seconds (the tests set it);",
              "# the numbers equal the app's with False.",
              SMALL_LINE]
    return code("\n".join(lines), tags=(PARAMETERS_TAG,))


def head(title: str, url_path: str | None) -> list[NotebookNode]:
    """The first cells of every notebook: the install cell, the title, the device."""
    where = (f"the app's **{title}** page (`/{url_path}`) for the settings below" if url_path
             else "the library's main calls")
    intro = md(f"# {title}\n\nA notebook from ResNet Explorer: it reproduces {where} with the "
               "same `resnet_core` calls and figures. Run all cells; change the settings in the cell tagged "
               "`parameters` and run them again.")
    return [code(INSTALL), intro, code(DEVICE)]


OPTIONS = '''\
# The sidebar's net: architecture, shortcut option, stride placement, pre-activation and width, as build options.
from resnet_core.models import display_name
from resnet_core.weights import build_options

arch = SETTINGS["arch"]
options = build_options(arch, residual=not SETTINGS["plain"], shortcut=SETTINGS["shortcut"],
                        stride_on=SETTINGS["stride"], preact=SETTINGS["preact"], width_factor=SETTINGS["width"])
print(f"{display_name(arch, options['residual'])}, built with {options}")'''


def options_cell() -> NotebookNode:
    """``arch`` and ``options`` (the build options) from ``SETTINGS``, as the app's sidebar makes them."""
    return code(OPTIONS)


def model_cell(variable: str = "model") -> NotebookNode:
    """Load the sidebar's model (after :func:`options_cell`) exactly as the app does: its weights when they fit
    the net (else the seeded random init, ``build(arch, seed=0, ...)``), in eval mode, on ``DEVICE``."""
    return code(f'''\
# The sidebar's weights: a demo, a checkpoint or torchvision weights that do not fit this net fall back to the
# seeded random init, as in the app.
from resnet_core.weights import effective_weights, load_model

weights = effective_weights(SETTINGS["weights"], arch, options)
{variable} = load_model(arch, options, weights).to(DEVICE)
print(f"{{display_name(arch, options['residual'])}}, weights: {{{variable}.card.weights_label}}")''')


def summary_cell(expression: str) -> NotebookNode:
    """The last cell: the view's key numbers as one JSON line (``expression`` evaluates to a dict)."""
    return code(f"# The view's key numbers, one JSON line (the tests compare them with the app's page).\n"
                f"print(json.dumps({expression}))")
