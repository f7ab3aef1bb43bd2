"""Settings the whole package reads: for now the one memory budget every request is costed against.

The budget is per request (one build, one instrument, one explanation, one race). Where it comes from, first
match wins: ``set_memory_budget`` (the ``--memory-budget`` flag of the CLI), the environment variable
``RESNET_EXPLORER_MEMORY_BUDGET`` (read at every call, so a test or a server start can set it), else a
quarter of the memory the machine had available when first asked (a classroom shares one server), at least
256 MB and at most 16 GB.
"""

from __future__ import annotations

import math
import re
import threading
from dataclasses import dataclass, field
from typing import Any

ENV_MEMORY_BUDGET = "RESNET_EXPLORER_MEMORY_BUDGET"
DEFAULT_BUDGET_SHARE = 0.25
MIN_DEFAULT_BUDGET = 256 * 2**20
MAX_DEFAULT_BUDGET = 16 * 2**30
FALLBACK_AVAILABLE = 4 * 2**30  # when /proc/meminfo cannot be read (not Linux)
# The smallest budget one may set: below it not even a ResNet-20 forward fits.
MIN_BUDGET = 16 * 2**20

_UNITS = {"": 1, "b": 1, "k": 1000, "kb": 1000, "m": 1000**2, "mb": 1000**2, "g": 1000**3, "gb": 1000**3,
          "t": 1000**4, "tb": 1000**4, "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40}
_SIZE = re.compile(r"^\s*([0-9]*\.?[0-9]+(?:e[0-9]+)?)\s*([a-z]*)\s*$", re.IGNORECASE)

_lock = threading.Lock()
_override: int | None = None
_default: int | None = None


class SettingsError(ValueError):
    """A setting (environment variable or flag) that cannot be read; ``str(error)`` is one sentence."""


def parse_bytes(text: str | int | float, what: str = "The memory budget") -> int:
    """``"2GB"``, ``"512 MB"``, ``"1.5GiB"``, ``"300000000"`` or a number -> bytes (GB = 10^9, GiB = 2^30)."""
    if isinstance(text, int | float) and not isinstance(text, bool):
        value, unit = float(text), ""
    else:
        match = _SIZE.match(str(text))
        if match is None or match.group(2).lower() not in _UNITS:
            raise SettingsError(f"{what} {str(text)[:40]!r} is not a size; write bytes or a size such as "
                                f"'2GB' or '512MB'.")
        value, unit = float(match.group(1)), match.group(2).lower()
    size = value * _UNITS[unit]
    if not math.isfinite(size) or size < MIN_BUDGET:
        raise SettingsError(f"{what} {str(text)[:40]!r} is below the smallest usable budget of "
                            f"{format_bytes(MIN_BUDGET)}; give at least that, such as '512MB'.")
    return int(size)


def format_bytes(size: float) -> str:
    """Bytes as a short decimal size: '9.8 GB', '512 MB', '40 kB'."""
    for unit, scale in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if abs(size) >= scale:
            value = size / scale
            return f"{value:.1f} {unit}" if value < 100 else f"{value:.0f} {unit}"
    return f"{int(size)} B"


def available_memory() -> int:
    """MemAvailable from /proc/meminfo in bytes (a fixed 4 GB where it cannot be read)."""
    try:
        with open("/proc/meminfo", encoding="ascii") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return FALLBACK_AVAILABLE


def default_memory_budget() -> int:
    """A quarter of the memory available at the first call, within [256 MB, 16 GB]; fixed after that call
    (the server's own caches would otherwise shrink it as they fill)."""
    global _default
    with _lock:
        if _default is None:
            share = int(available_memory() * DEFAULT_BUDGET_SHARE)
            _default = max(MIN_DEFAULT_BUDGET, min(MAX_DEFAULT_BUDGET, share))
        return _default


def set_memory_budget(value: str | int | None) -> None:
    """Set the budget for this process (the CLI's ``--memory-budget``); None goes back to env/default."""
    global _override
    parsed = None if value is None else parse_bytes(value, "The --memory-budget value")
    with _lock:
        _override = parsed


def memory_budget() -> int:
    """The budget in bytes for one request: the CLI flag, else ``$RESNET_EXPLORER_MEMORY_BUDGET``, else the
    default. A malformed environment variable raises SettingsError (one sentence)."""
    import os

    if _override is not None:
        return _override
    text = os.environ.get(ENV_MEMORY_BUDGET, "").strip()
    if text:
        return parse_bytes(text, f"The memory budget in ${ENV_MEMORY_BUDGET}")
    return default_memory_budget()


def budget_source() -> str:
    """Where the budget comes from, in words: '--memory-budget', the variable's name, or 'default'."""
    import os

    if _override is not None:
        return "--memory-budget"
    if os.environ.get(ENV_MEMORY_BUDGET, "").strip():
        return ENV_MEMORY_BUDGET
    return f"default: a quarter of available memory; set {ENV_MEMORY_BUDGET} to change"


@dataclass(frozen=True)
class Suggestion:
    """The nearest setting that fits: ``changes`` as data (setting -> value, e.g. {"image_size": 32}) and
    ``words`` for people ("32 px")."""

    changes: dict[str, Any]
    words: str
    cost: int = 0


@dataclass(eq=False)
class BudgetError(ValueError):
    """A request that would need more memory than the budget; ``str(error)`` is one sentence.

    ``cost`` and ``budget`` in bytes, ``what`` the request in words, ``suggestions`` the nearest settings that
    fit (first = nearest; ``suggestion`` is that one, or None when nothing smaller fits).
    """

    what: str
    cost: int
    budget: int
    suggestions: list[Suggestion] = field(default_factory=list)

    def __post_init__(self) -> None:
        super().__init__(self.message)

    @property
    def suggestion(self) -> Suggestion | None:
        return self.suggestions[0] if self.suggestions else None

    @property
    def message(self) -> str:
        head = (f"{self.what} needs about {format_bytes(self.cost)} of memory (budget "
                f"{format_bytes(self.budget)} per request)")
        if self.suggestions:
            return head + ": try " + " or ".join(s.words for s in self.suggestions) + "."
        return head + f"; ask for less, or raise the budget with ${ENV_MEMORY_BUDGET}."

    def __str__(self) -> str:
        return self.message

    def __reduce__(self):  # picklable like any dataclass (st.cache_data may pickle exceptions)
        return (BudgetError, (self.what, self.cost, self.budget, self.suggestions))


__all__ = [
    "ENV_MEMORY_BUDGET", "BudgetError", "SettingsError", "Suggestion", "available_memory", "budget_source",
    "default_memory_budget", "format_bytes", "memory_budget", "parse_bytes", "set_memory_budget",
]
