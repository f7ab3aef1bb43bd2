"""Every link parameter the app reads, validated in one place, from the declared settings (``page_specs``).

A link is typed by hand, shared and pasted: anything in it can be wrong or hostile. ``read_link`` turns the
query string into values the widgets can take, and notices for everything it refused. A notice is our own
sentence plus the refused text, which is shown only verbatim (``st.code``): nothing taken from a URL is ever
rendered as Markdown or HTML, so a crafted link cannot put a link or an image on the page.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from .errors import WeightsError
from .models import ARCHITECTURES, display_name
from .page_specs import APP_WIDE, DEFAULT_ARCH, SIDEBAR, Setting, link_settings
from .weights import parse_weights_id, weights_choices
from .weights.checkpoints import checkpoint_id, resolve_checkpoint_path
from .weights.demo import DEMO_MODELS

FLAGS = {"0": False, "1": True, "false": False, "true": True}

MAX_VALUE_CHARS = 200  # no setting the app reads is longer; a longer value is refused before it is looked at
SHOWN_CHARS = 80  # how much of a refused value a notice repeats (a longer one is cut, its length said)
MAX_NOTICES = 6  # a link with hundreds of junk parameters gets a handful of notices and a count


@dataclass(frozen=True)
class Notice:
    """Something a link asked for that the app ignored: ``sentence`` is ours (never URL text), ``raw`` is the
    refused text, to be shown only verbatim. A refused value of a known setting also has ``setting`` (its link
    name) and ``reason``; its sentence then says what is shown instead (:meth:`instead`), which only the app
    knows once it has chosen (a page's default, the model it starts with)."""

    sentence: str
    raw: str = ""
    setting: str = ""
    reason: str = ""

    def instead(self, fallback: str | None) -> str:
        """The sentence ending with what is shown instead (``fallback``: "ResNet-20 is shown instead", "it stays
        off"); None: "it was ignored"."""
        if not self.setting:
            return self.sentence
        return f"The link's '{self.setting}' {self.reason}; {fallback or 'it was ignored'}."


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
            raise _Refused(f"is not {what} ({', '.join(allowed)})")
        return raw

    return parse


def _arch(raw: str, _: Mapping[str, Any]) -> str:
    if raw not in ARCHITECTURES:
        raise _Refused("is not an architecture ResNet Explorer knows")
    return raw


def _flag(raw: str, _: Mapping[str, Any]) -> bool:
    if raw not in FLAGS:
        raise _Refused("is not 0 or 1")
    return FLAGS[raw]


_DEMO_WORDS = ", ".join(f"'{d.weights_id}'" for d in DEMO_MODELS.values())  # the embedded demos' ids


def _weights(raw: str, values: Mapping[str, Any]) -> str:
    """'random', a torchvision weights name the link's architecture has, an embedded demo, or a checkpoint in the runs or uploads
    folders (``resolve_checkpoint_path``: any other path is refused without saying whether it exists)."""
    try:
        kind, value = parse_weights_id(raw)
    except WeightsError:
        raise _Refused(f"is not 'random', 'tv:<torchvision weights>', {_DEMO_WORDS} or "
                       "'ckpt:<checkpoint>'") from None
    if kind == "tv":
        arch = values.get("arch", DEFAULT_ARCH)
        if raw not in weights_choices(arch):
            raise _Refused(f"is not torchvision weights {display_name(arch)} has")
    if kind == "ckpt":
        try:
            path = resolve_checkpoint_path(value)
        except WeightsError:
            path = None
        # Only an existing file inside the folders: a name that is not there would reach the page's messages.
        if path is None or not path.is_file():
            raise _Refused("is not a checkpoint in the runs or uploads folders (upload the file or pick a run's "
                           "checkpoint in the Weights box)")
        return checkpoint_id(path)
    return raw


def _trained_weights(raw: str, values: Mapping[str, Any]) -> str:
    """An embedded demo or a checkpoint in the runs or uploads folders (as ``_weights`` checks it): a trained
    model; whether this server lists it is the page's to say."""
    if not raw.startswith(("demo:", "ckpt:")):
        raise _Refused(f"is not a trained model ({_DEMO_WORDS} or 'ckpt:<checkpoint>')")
    try:
        return _weights(raw, values)
    except _Refused:
        raise _Refused(f"is not a trained model ({_DEMO_WORDS} or a checkpoint in the runs or uploads "
                       "folders)") from None


def _choice_of(allowed: Sequence[int], what: str) -> Callable[[str, Mapping[str, Any]], int]:
    def parse(raw: str, _: Mapping[str, Any]) -> int:
        if raw not in {str(v) for v in allowed}:
            raise _Refused(f"is not {what} ({', '.join(str(v) for v in allowed)})")
        return int(raw)

    return parse


def _layer(raw: str, _: Mapping[str, Any]) -> str:
    """A qualified module name's shape only (``layer2.0.tap_out``, ``stem``): whether the chosen net has that layer
    is known once the page has built it, and the page says so when it has not."""
    parts = raw.split(".")
    if not raw or len(raw) > 80 or not all(part and (part.isascii() and (part.replace("_", "").isalnum()))
                                           for part in parts):
        raise _Refused("is not a layer name such as 'layer2.0.tap_out'")
    return raw


def _whole_between(low: int, high: int, what: str) -> Callable[[str, Mapping[str, Any]], int]:
    def parse(raw: str, _: Mapping[str, Any]) -> int:
        if not (raw.isascii() and raw.isdigit()) or not low <= int(raw) <= high:
            raise _Refused(f"is not {what} (a whole number from {low:,} to {high:,})")
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
            raise _Refused(f"is not {what} (a number from {low:g} to {high:g}{every})")
        return round(round(value / step) * step, 6) if step else value

    return parse


def _list_of(allowed: Sequence[str], what: str, most: int | None = None) -> Callable[[str, Mapping[str, Any]], list]:
    """Comma-separated choices (each at most once; empty: none), as a multiselect holds them."""
    def parse(raw: str, _: Mapping[str, Any]) -> list[str]:
        items = raw.split(",") if raw else []
        if any(item not in allowed for item in items) or len(set(items)) != len(items) \
                or (most is not None and len(items) > most):
            limit = f", at most {most}" if most is not None else ""
            raise _Refused(f"is not a comma-separated list of {what} ({', '.join(allowed)}; each once{limit})")
        return items

    return parse


def _setting_names(allowed: Sequence[str]) -> Callable[[str, Mapping[str, Any]], list]:
    """Comma-separated link names of this app's settings (``lock=``), each at most once."""
    def parse(raw: str, _: Mapping[str, Any]) -> list[str]:
        items = raw.split(",") if raw else []
        if any(item not in allowed for item in items) or len(set(items)) != len(items):
            raise _Refused("is not a comma-separated list of this app's setting names, as its links name them "
                           "(such as gc_method or arch)")
        return items

    return parse


_TOKEN = re.compile(r"[A-Za-z0-9_-]{4,40}")


def _token(raw: str, _: Mapping[str, Any]) -> str:
    """A poll's id or a teacher's key: URL-safe letters, digits, '-' and '_' (4 to 40 of them)."""
    if not _TOKEN.fullmatch(raw):
        raise _Refused("is not a poll link's id or key (letters, digits, '-' and '_')")
    return raw


def _parser(setting: Setting) -> Callable[[str, Mapping[str, Any]], Any]:
    """How a link's text for ``setting`` is read, from its declaration."""
    kind, what = setting.kind, setting.what
    if kind == "choice":
        if all(isinstance(c, int) for c in setting.choices):
            return _choice_of(setting.choices, what)
        return _one_of(setting.choices, what)
    if kind == "choices":
        return _list_of(setting.choices, what, setting.most)
    if kind == "setting_names":
        return _setting_names(setting.choices)
    if kind == "whole":
        return _whole_between(int(setting.low), int(setting.high), what)
    if kind == "decimal":  # a slider's step constrains its values; a number box's step is only its +/- buttons
        return _decimal_between(setting.low, setting.high, what, setting.step if setting.widget == "slider" else None)
    return {"flag": _flag, "layer": _layer, "arch": _arch, "weights": _weights,
            "trained_weights": _trained_weights, "token": _token}[kind]


# Parameter name -> parser, in the order the declarations give (the architecture before the weights it must fit).
PARAMS: dict[str, Callable[[str, Mapping[str, Any]], Any]] = {s.link: _parser(s) for s in link_settings()}
SIDEBAR_LINKS = frozenset(s.link for s in SIDEBAR)
APP_WIDE_LINKS = frozenset(s.link for s in APP_WIDE)


def shown(raw: str) -> str:
    """A refused value as a notice repeats it: at most SHOWN_CHARS characters, and its length when cut."""
    return raw if len(raw) <= SHOWN_CHARS else f"{raw[:SHOWN_CHARS]}… ({len(raw):,} characters)"


def _refusal(name: str, reason: str, raw: str) -> Notice:
    """A refused value of setting ``name``: "it was ignored" until the app names what it shows instead."""
    notice = Notice("", shown(raw), name, reason)
    return replace(notice, sentence=notice.instead(None))


def read_link(params: Mapping[str, Sequence[str]]) -> Link:
    """Validate a query string given as name -> every value it has (``st.query_params.get_all``).

    Unknown names, repeated names, over-long values and values a parameter cannot take are left out, each
    with a notice; the caller keeps its defaults for them.
    """
    link = Link()
    notices: list[Notice] = []
    unknown = [name for name in params if name not in PARAMS]
    for name in unknown:  # named with its value, both verbatim
        text = f"{name}={' | '.join(params[name])}" if params[name] else name
        notices.append(Notice("The link has a setting ResNet Explorer does not read; it was ignored.", shown(text)))
    for name, parse in PARAMS.items():
        given = list(params.get(name, ()))
        if not given:
            continue
        if len(given) > 1:
            notices.append(_refusal(name, f"is given {len(given)} times", " | ".join(given)))
            continue
        raw = given[0]
        if len(raw) > MAX_VALUE_CHARS:
            notices.append(_refusal(name, f"is {len(raw):,} characters long (at most {MAX_VALUE_CHARS})", raw))
            continue
        try:
            link.values[name] = parse(raw, link.values)
        except _Refused as refused:
            notices.append(_refusal(name, str(refused), raw))
    if len(notices) > MAX_NOTICES:
        rest = len(notices) - (MAX_NOTICES - 1)
        notices = notices[:MAX_NOTICES - 1] + [Notice(f"{rest:,} more settings in the link were ignored.")]
    link.notices = notices
    return link


def url_text(value: Any) -> str:
    """A setting as the URL holds it: flags as 1/0, a multiselect's list comma-separated, numbers as Python writes
    them (what ``PARAMS`` reads back)."""
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, list | tuple):
        return ",".join(str(item) for item in value)
    if isinstance(value, float):  # 0.060000000000000005 from a number box's step is 0.06 in the link
        return f"{value:.10g}"
    return str(value)


def link_query(values: Mapping[str, Any], lock: Sequence[str] = ()) -> str:
    """The query string of a link that opens with ``values`` (link name -> value as a widget holds it) and locks
    the settings named in ``lock``: what *Share this view* hands out. Names no link reads are left out, so
    ``read_link`` reads back every value given."""
    from urllib.parse import urlencode

    pairs = [(name, url_text(value)) for name, value in values.items() if name in PARAMS and name != "lock"]
    chosen = [name for name in dict.fromkeys(lock) if name in PARAMS and name != "lock"]
    if chosen:
        pairs.append(("lock", ",".join(chosen)))
    return urlencode(pairs, safe=",:")


__all__ = ["APP_WIDE_LINKS", "FLAGS", "MAX_NOTICES", "MAX_VALUE_CHARS", "PARAMS", "SHOWN_CHARS", "SIDEBAR_LINKS", "Link", "Notice",
           "link_query", "read_link", "shown", "url_text"]
