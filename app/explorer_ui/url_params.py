"""Every query parameter the app reads, validated in one place.

A link is typed by hand, shared and pasted: anything in it can be wrong or hostile. ``read_link`` turns the
query string into values the widgets can take, and notices for everything it refused. A notice is our own
sentence plus the refused text, which is shown only verbatim (``st.code``): nothing taken from a URL is ever
rendered as Markdown or HTML, so a crafted link cannot put a link or an image on the page.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import streamlit as st

from resnet_core import fit
from resnet_core.models import ARCHITECTURES, display_name
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


def _weights(raw: str, values: Mapping[str, Any]) -> str:
    """'random', a torchvision weights name the link's architecture has, or a checkpoint in the runs or uploads
    folders (``resolve_checkpoint_path``: any other path is refused without saying whether it exists)."""
    try:
        kind, value = parse_weights_id(raw)
    except WeightsError:
        raise _Refused("is not 'random', 'tv:<torchvision weights>' or 'ckpt:<checkpoint>'; "
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


# Parameter name -> parser. Order matters: weights are checked against the link's architecture.
PARAMS: dict[str, Callable[[str, Mapping[str, Any]], Any]] = {
    "arch": _arch,
    "plain": _flag,
    "shortcut": _one_of(tuple(SHORTCUT_HELP), "a shortcut option"),
    "stride": _one_of(tuple(STRIDE_HELP), "a stride placement"),
    "preact": _flag,
    "width": _one_of(tuple(WIDTH_FACTORS), "a width"),
    "weights": _weights,
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
    """Validate ``st.query_params`` and drop the names the app does not read from the browser's URL."""
    params = {name: st.query_params.get_all(name) for name in st.query_params}
    link = read_link(params)
    for name in params:
        if name not in PARAMS:
            del st.query_params[name]
    return link


def show_notices(notices: Sequence[Notice]) -> None:
    """Each notice as a warning in our words, then the refused text verbatim (a code box renders no Markdown)."""
    for notice in notices:
        st.warning(notice.sentence)
        if notice.raw:
            st.code(notice.raw, language=None, wrap_lines=True)
