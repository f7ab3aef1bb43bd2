"""Every query parameter the app reads, validated in one place.

A link is typed by hand, shared and pasted: anything in it can be wrong or hostile. ``read_link`` turns the
query string into values the widgets can take, and notices for everything it refused. A notice is our own
sentence plus the refused text, which is shown only verbatim (``st.code``): nothing taken from a URL is ever
rendered as Markdown or HTML, so a crafted link cannot put a link or an image on the page.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import streamlit as st

from resnet_core import cam, fit
from resnet_core.data import DATASETS
from resnet_core.demo import DEMO_MODELS
from resnet_core.images import SAMPLE_NAMES
from resnet_core.models import ARCHITECTURES, display_name
from resnet_core.probes import BN_MODES
from resnet_core.train import PRESETS
from resnet_core.weights import WeightsError, parse_weights_id, resolve_checkpoint_path, weights_choices

DEFAULT_ARCH = "resnet20"
SHORTCUT_HELP = {
    "A": "A: identity, zero-padded where the shape changes (no extra weights)",
    "B": "B: projection only where the shape changes (torchvision)",
    "C": "C: projection in every block",
}
STRIDE_HELP = {"3x3": "on the 3x3 conv (torchvision, v1.5)", "1x1": "on the first 1x1 conv (the paper)"}
WIDTH_FACTORS = fit.WIDTH_FACTORS  # the one list lives in resnet_core.fit
FLAGS = {"0": False, "1": True, "false": False, "true": True}

MAX_VALUE_CHARS = 200  # no setting the app reads is longer; a longer value is refused before it is looked at
SHOWN_CHARS = MAX_VALUE_CHARS  # how much of a refused value a notice repeats (a longer one is cut)
MAX_NOTICES = 6  # a link with hundreds of junk parameters gets a handful of notices and a count


@dataclass(frozen=True)
class Notice:
    """Something a link asked for that the app ignored: ``sentence`` is ours (never URL text), ``raw`` is the
    refused text, to be shown only verbatim."""

    sentence: str
    raw: str = ""


@dataclass
class Link:
    """A query string after validation: the usable values by parameter name, and what was refused."""

    values: dict[str, Any] = field(default_factory=dict)
    notices: list[Notice] = field(default_factory=list)


class _Refused(Exception):
    """A value a parameter cannot take; the message is our sentence."""


def _one_of(allowed: Sequence[str], what: str) -> Callable[[str, Mapping[str, Any]], str]:
    def parse(raw: str, _: Mapping[str, Any]) -> str:
        if raw not in allowed:
            raise _Refused(f"is not {what} ({', '.join(allowed)}); it was ignored")
        return raw

    return parse


def _arch(raw: str, _: Mapping[str, Any]) -> str:
    if raw not in ARCHITECTURES:
        raise _Refused(f"is not an architecture ResNet Explorer knows; showing {display_name(DEFAULT_ARCH)} instead")
    return raw


def _flag(raw: str, _: Mapping[str, Any]) -> bool:
    if raw not in FLAGS:
        raise _Refused("is not 0 or 1; it was ignored")
    return FLAGS[raw]


_DEMO_WORDS = ", ".join(f"'{d.weights_id}'" for d in DEMO_MODELS.values())  # the embedded demos' ids


def _weights(raw: str, values: Mapping[str, Any]) -> str:
    """'random', a torchvision weights name the link's architecture has, an embedded demo, or a checkpoint in the runs or uploads
    folders (``resolve_checkpoint_path``: any other path is refused without saying whether it exists)."""
    try:
        kind, value = parse_weights_id(raw)
    except WeightsError:
        raise _Refused(f"is not 'random', 'tv:<torchvision weights>', {_DEMO_WORDS} or 'ckpt:<checkpoint>'; "
                       "showing random weights instead") from None
    if kind == "tv":
        arch = values.get("arch", DEFAULT_ARCH)
        if raw not in weights_choices(arch):
            raise _Refused(f"is not torchvision weights {display_name(arch)} has; showing random weights instead")
    if kind == "ckpt":
        try:
            path = resolve_checkpoint_path(value)
        except WeightsError:
            path = None
        # Only an existing file inside the folders: a name that is not there would reach the page's messages.
        if path is None or not path.is_file():
            raise _Refused("is not a checkpoint in the runs or uploads folders; upload the file or pick a run's "
                           "checkpoint in the Weights box; showing random weights instead")
        return f"ckpt:{path}"
    return raw


def _trained_weights(raw: str, values: Mapping[str, Any]) -> str:
    """An embedded demo or a checkpoint in the runs or uploads folders (as ``_weights`` checks it): a trained
    model; whether this server lists it is the page's to say."""
    if not raw.startswith(("demo:", "ckpt:")):
        raise _Refused(f"is not a trained model ({_DEMO_WORDS} or 'ckpt:<checkpoint>'); it was ignored")
    try:
        return _weights(raw, values)
    except _Refused:
        raise _Refused(f"is not a trained model ({_DEMO_WORDS} or a checkpoint in the runs or uploads folders); "
                       "it was ignored") from None


def _choice_of(allowed: Sequence[int], what: str) -> Callable[[str, Mapping[str, Any]], int]:
    def parse(raw: str, _: Mapping[str, Any]) -> int:
        if raw not in {str(v) for v in allowed}:
            raise _Refused(f"is not {what} ({', '.join(str(v) for v in allowed)}); it was ignored")
        return int(raw)

    return parse


def _index_below(count: int, what: str) -> Callable[[str, Mapping[str, Any]], int]:
    def parse(raw: str, _: Mapping[str, Any]) -> int:
        if not (raw.isascii() and raw.isdigit()) or int(raw) >= count:
            raise _Refused(f"is not {what} (a whole number from 0 to {count - 1}); it was ignored")
        return int(raw)

    return parse


def _layer(raw: str, _: Mapping[str, Any]) -> str:
    """A qualified module name's shape only (``layer2.0.tap_out``, ``stem``): whether the chosen net has that layer
    is known once the page has built it, and the page says so when it has not."""
    parts = raw.split(".")
    if not raw or len(raw) > 80 or not all(part and (part.isascii() and (part.replace("_", "").isalnum()))
                                           for part in parts):
        raise _Refused("is not a layer name such as 'layer2.0.tap_out'; the page's default layer is shown instead")
    return raw


def _whole_between(low: int, high: int, what: str) -> Callable[[str, Mapping[str, Any]], int]:
    def parse(raw: str, _: Mapping[str, Any]) -> int:
        if not (raw.isascii() and raw.isdigit()) or not low <= int(raw) <= high:
            raise _Refused(f"is not {what} (a whole number from {low:,} to {high:,}); it was ignored")
        return int(raw)

    return parse


_DECIMAL = re.compile(r"\d{1,6}(\.\d{1,8})?")  # plain decimals only: no signs, exponents, nan or inf


def _decimal_between(low: float, high: float, what: str, step: float | None = None
                     ) -> Callable[[str, Mapping[str, Any]], float]:
    """A decimal number from ``low`` to ``high``; with ``step``, a multiple of it (as the widget's slider has)."""
    def parse(raw: str, _: Mapping[str, Any]) -> float:
        value = float(raw) if _DECIMAL.fullmatch(raw) else None
        if value is None or not low <= value <= high or (step and abs(value / step - round(value / step)) > 1e-6):
            every = f" in steps of {step:g}" if step else ""
            raise _Refused(f"is not {what} (a number from {low:g} to {high:g}{every}); it was ignored")
        return round(round(value / step) * step, 6) if step else value

    return parse


def _list_of(allowed: Sequence[str], what: str, most: int | None = None) -> Callable[[str, Mapping[str, Any]], list]:
    """Comma-separated choices (each at most once; empty: none), as a multiselect holds them."""
    def parse(raw: str, _: Mapping[str, Any]) -> list[str]:
        items = raw.split(",") if raw else []
        if any(item not in allowed for item in items) or len(set(items)) != len(items) \
                or (most is not None and len(items) > most):
            limit = f", at most {most}" if most is not None else ""
            raise _Refused(f"is not a comma-separated list of {what} ({', '.join(allowed)}; each once{limit}); "
                           "it was ignored")
        return items

    return parse


# Page settings (Activations, Gradient flow, Grad-CAM, Training race, the lesson): the URL name is the widget's
# session-state key (the race maps it to its preset's widget), so a link sets exactly the widget it names. Their choices live here, beside their validation, and the pages import them.
ACT_SOURCES = ("photo", "shapes", "upload")
ACT_SHAPES_COUNT = 24
ACT_BATCHES = (1, 2, 4, 8, 16)
GF_STATES = ("init", "trained")
GF_BATCHES = (2, 4, 8, 16, 32)
# Grad-CAM: which image (an upload never travels in a link), the class, method, layer and how the map is drawn.
GC_SOURCES = ("photo", "upload", "shapes")
GC_SHAPES_COUNT = 64  # held-out Shapes images to pick from
GC_MAX_CLASSES = 1000  # the largest head ResNet Explorer loads (ImageNet); the page checks the model's own
# Training race: the preset, and its settings (the page's widgets hold them per preset).
TR_CUSTOM = "Custom race"
TR_PRESETS = (*PRESETS, TR_CUSTOM)
TR_RACE_ARCHS = ("resnet20", "resnet32", "resnet44", "resnet56", "resnet110")
TR_RACERS = tuple(display_name(a, r) for a in TR_RACE_ARCHS for r in (False, True))
TR_MAX_RACERS = 4
TR_SCHEDULES = ("step", "cosine", "constant")
# name -> (lowest, highest) of each number box on the Training page
TR_LIMITS = {"tr_steps": (10, 20_000), "tr_batch": (2, 1024), "tr_lr": (0.0001, 2.0), "tr_warmup": (0, 5000),
             "tr_width": (2, 64), "tr_size": (8, 64)}
# The lesson: the zero-init toggle (step 3), the number of blocks (step 5), the landscape grid (step 6), and the
# last section's trained model, grid and images ("recorded": the data set the model was trained on).
LESSON_GRIDS = (11, 21, 31)
LESSON_ANY_DATA = ("recorded", *DATASETS)
LESSON_MAX_BLOCKS = 200
PAGE_PARAMS: dict[str, Callable[[str, Mapping[str, Any]], Any]] = {
    "act_source": _one_of(ACT_SOURCES, "an image source"),
    "act_photo": _one_of(SAMPLE_NAMES, "a sample photo"),
    "act_shape": _index_below(ACT_SHAPES_COUNT, "a Shapes image"),
    "act_batch": _choice_of(ACT_BATCHES, "a batch size the page offers"),
    "act_bn": _one_of(tuple(BN_MODES), "a batch-norm mode"),
    "act_layer": _layer,
    "gf_state": _one_of(GF_STATES, "a state the page offers"),
    "gf_batch": _choice_of(GF_BATCHES, "a batch size the page offers"),
    "gf_bn": _one_of(tuple(BN_MODES), "a batch-norm mode"),
    "gc_source": _one_of(GC_SOURCES, "an image source"),
    "gc_sample": _one_of(SAMPLE_NAMES, "a sample photo"),
    "gc_shape": _index_below(GC_SHAPES_COUNT, "a Shapes image"),
    "gc_class": _index_below(GC_MAX_CLASSES, "a class number"),
    "gc_other": _index_below(GC_MAX_CLASSES, "a class number"),
    "gc_method": _one_of(tuple(cam.METHODS), "an explanation method"),
    "gc_layer": _layer,
    "gc_opacity": _decimal_between(0.0, 1.0, "an opacity", step=0.05),
    "gc_cmap": _one_of(tuple(cam.COLORMAPS), "a colormap"),
    "gc_methods": _list_of(tuple(cam.METHODS), "explanation methods"),
    "gc_road": _flag,
    "gc_compare": _flag,
    "gc_check_own": _flag,
    "tr_preset": _one_of(TR_PRESETS, "a race the page offers"),
    "tr_racers": _list_of(TR_RACERS, "racers", most=TR_MAX_RACERS),
    "tr_data": _one_of(tuple(DATASETS), "a data set"),
    "tr_steps": _whole_between(*TR_LIMITS["tr_steps"], "a number of steps"),
    "tr_batch": _whole_between(*TR_LIMITS["tr_batch"], "a batch size"),
    "tr_lr": _decimal_between(*TR_LIMITS["tr_lr"], "a learning rate"),
    "tr_warmup": _whole_between(*TR_LIMITS["tr_warmup"], "a number of warm-up steps"),
    "tr_width": _whole_between(*TR_LIMITS["tr_width"], "a width"),
    "tr_size": _whole_between(*TR_LIMITS["tr_size"], "an image size"),
    "tr_schedule": _one_of(TR_SCHEDULES, "a schedule"),
    "lesson_zero_init": _flag,
    "lesson_blocks": _whole_between(1, LESSON_MAX_BLOCKS, "a number of blocks"),
    "lesson_grid": _choice_of(LESSON_GRIDS, "a grid the lesson offers"),
    "lesson_any_model": _trained_weights,
    "lesson_any_grid": _choice_of(LESSON_GRIDS, "a grid the lesson offers"),
    "lesson_any_data": _one_of(LESSON_ANY_DATA, "a data set the lesson offers"),
}
# Where ``current_link`` leaves the page settings of a session's first run until the page takes them.
PENDING_KEY = "_url_page_settings"

# Parameter name -> parser. Order matters: weights are checked against the link's architecture.
PARAMS: dict[str, Callable[[str, Mapping[str, Any]], Any]] = {
    "arch": _arch,
    "plain": _flag,
    "shortcut": _one_of(tuple(SHORTCUT_HELP), "a shortcut option"),
    "stride": _one_of(tuple(STRIDE_HELP), "a stride placement"),
    "preact": _flag,
    "width": _one_of(tuple(WIDTH_FACTORS), "a width"),
    "weights": _weights,
    **PAGE_PARAMS,
}


def shown(raw: str) -> str:
    """A refused value as a notice repeats it: at most SHOWN_CHARS characters, and its length when cut."""
    return raw if len(raw) <= SHOWN_CHARS else f"{raw[:SHOWN_CHARS]}… ({len(raw):,} characters)"


def read_link(params: Mapping[str, Sequence[str]]) -> Link:
    """Validate a query string given as name -> every value it has (``st.query_params.get_all``).

    Unknown names, repeated names, over-long values and values a parameter cannot take are left out, each
    with a notice; the caller keeps its defaults for them.
    """
    link = Link()
    notices: list[Notice] = []
    unknown = [name for name in params if name not in PARAMS]
    for name in unknown:
        notices.append(Notice("The link has a setting ResNet Explorer does not read; it was ignored.", shown(name)))
    for name, parse in PARAMS.items():
        given = list(params.get(name, ()))
        if not given:
            continue
        if len(given) > 1:
            notices.append(Notice(f"The link gives '{name}' {len(given)} times; it was ignored.",
                                  shown(" | ".join(given))))
            continue
        raw = given[0]
        if len(raw) > MAX_VALUE_CHARS:
            notices.append(Notice(f"The link's '{name}' is {len(raw):,} characters long (at most "
                                  f"{MAX_VALUE_CHARS}); it was ignored.", shown(raw)))
            continue
        try:
            link.values[name] = parse(raw, link.values)
        except _Refused as refused:
            notices.append(Notice(f"The link's '{name}' {refused}.", shown(raw)))
    if len(notices) > MAX_NOTICES:
        rest = len(notices) - (MAX_NOTICES - 1)
        notices = notices[:MAX_NOTICES - 1] + [Notice(f"{rest:,} more settings in the link were ignored.")]
    link.notices = notices
    return link


def current_link() -> Link:
    """Validate ``st.query_params`` and drop the names the app does not read from the browser's URL.

    The page settings among the values wait in session state until their page takes them (``take_settings``).
    """
    params = {name: st.query_params.get_all(name) for name in st.query_params}
    link = read_link(params)
    for name in params:
        if name not in PARAMS or (name in PAGE_PARAMS and name not in link.values):
            del st.query_params[name]
    st.session_state[PENDING_KEY] = {name: value for name, value in link.values.items() if name in PAGE_PARAMS}
    return link


def take_settings(keys: Sequence[str] | Mapping[str, str]) -> dict[str, Any]:
    """Before a page draws its widgets: set each widget key in ``keys`` from the link that opened the session
    (once: a taken setting is gone, so the widgets are the student's from then on). Returns what was taken, by
    URL name. ``keys`` maps URL name -> widget key where they differ (the race's widgets are per preset)."""
    widget_keys = dict(keys) if isinstance(keys, Mapping) else {key: key for key in keys}
    pending = st.session_state.get(PENDING_KEY) or {}
    taken = {name: pending.pop(name) for name in widget_keys if name in pending}
    for name, value in taken.items():
        st.session_state[widget_keys[name]] = value
    return taken


def url_text(value: Any) -> str:
    """A setting as the URL holds it: flags as 1/0, a multiselect's list comma-separated, numbers as Python writes
    them (what ``PAGE_PARAMS`` reads back)."""
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, list | tuple):
        return ",".join(str(item) for item in value)
    if isinstance(value, float):  # 0.060000000000000005 from a number box's step is 0.06 in the link
        return f"{value:.10g}"
    return str(value)


def write_settings(values: Mapping[str, Any], drop: Sequence[str] = ()) -> None:
    """Mirror a page's current settings in the URL (``values``: name -> value) and remove the names in ``drop``
    (settings that do not apply to the current view), so a shared link reopens the same view."""
    for name, value in values.items():
        text = url_text(value)
        if st.query_params.get(name) != text:
            st.query_params[name] = text
    for name in drop:
        if name in st.query_params:
            del st.query_params[name]


def show_notices(notices: Sequence[Notice]) -> None:
    """Each notice as a warning in our words, then the refused text verbatim (a code box renders no Markdown)."""
    for notice in notices:
        st.warning(notice.sentence)
        if notice.raw:
            st.code(notice.raw, language=None, wrap_lines=True)
