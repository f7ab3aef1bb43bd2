"""Settings the whole package reads: directories, offline mode, the one network probe, limits and budgets.

Directories: runs (``$RESNET_EXPLORER_RUNS``), data sets (``$RESNET_EXPLORER_DATA``), uploaded
checkpoints (``uploads/`` in the runs folder, under ``$RESNET_EXPLORER_UPLOAD_QUOTA_MB``) and measurements kept
between processes (``$RESNET_EXPLORER_CACHE``). The network:
``RESNET_EXPLORER_OFFLINE`` (1/true/yes) is the one offline rule, and :func:`probe_url` the one probe that
both :func:`can_reach` and :func:`network_available` ask.

The budget is per request (one build, one instrument, one explanation, one race). Where it comes from, first
match wins: ``set_memory_budget`` (the ``--memory-budget`` flag of the CLI), the environment variable
``RESNET_EXPLORER_MEMORY_BUDGET`` (read at every call, so a test or a server start can set it), else a
quarter of the memory the machine had available when first asked (a classroom shares one server), at least
256 MB and at most 16 GB.
"""

from __future__ import annotations

import math
import os
import re
import threading
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

RUNS_ENV, DATA_ENV, CACHE_ENV = "RESNET_EXPLORER_RUNS", "RESNET_EXPLORER_DATA", "RESNET_EXPLORER_CACHE"


def _home() -> Path:
    """Where runs/ and data/ live by default: the repository root in a checkout; installed (a wheel in
    site-packages), the user's data folder ``$XDG_DATA_HOME/resnet-explorer`` (``~/.local/share/...``)."""
    root = Path(__file__).resolve().parents[1]
    if (root / "pyproject.toml").is_file() and (root / "app" / "main.py").is_file():
        return root
    xdg = os.environ.get("XDG_DATA_HOME", "").strip()
    return (Path(xdg) if xdg else Path.home() / ".local" / "share") / "resnet-explorer"


# ------------------------------------------------------------------------------------------- directories
def runs_dir(path: str | Path | None = None) -> Path:
    """``path`` if given, else ``$RESNET_EXPLORER_RUNS``, else ``runs/`` at the repository root (installed from a
    wheel: in the user's data folder, see ``_home``)."""
    if path is not None:
        return Path(path)
    env = os.environ.get(RUNS_ENV)
    return Path(env) if env else _home() / "runs"


def data_dir() -> Path:
    """Where downloaded data sets live: ``$RESNET_EXPLORER_DATA``, else ``data/`` beside the default runs folder."""
    env = os.environ.get(DATA_ENV)
    return Path(env) if env else _home() / "data"


def cache_dir() -> Path:
    """Where measurements that outlive a process are kept (the lesson's, :mod:`resnet_core.lesson.store`):
    ``$RESNET_EXPLORER_CACHE``, else ``cache/`` beside the default runs folder. Deleting it only costs time."""
    env = os.environ.get(CACHE_ENV)
    return Path(env) if env else _home() / "cache"


def uploads_dir() -> Path:
    """Where uploaded checkpoints are kept: ``uploads/`` in :func:`runs_dir` (``$RESNET_EXPLORER_RUNS`` or
    ``runs/``)."""
    return runs_dir() / "uploads"


UPLOAD_QUOTA_ENV = "RESNET_EXPLORER_UPLOAD_QUOTA_MB"
DEFAULT_UPLOAD_QUOTA_MB = 512


def upload_quota_bytes() -> int:
    """The uploads folder's size quota: ``$RESNET_EXPLORER_UPLOAD_QUOTA_MB`` (MB) or 512 MB (also when the
    variable is not a positive number)."""
    raw = os.environ.get(UPLOAD_QUOTA_ENV, "").strip()
    try:
        megabytes = float(raw) if raw else DEFAULT_UPLOAD_QUOTA_MB
    except ValueError:
        megabytes = DEFAULT_UPLOAD_QUOTA_MB
    if not math.isfinite(megabytes) or megabytes <= 0:
        megabytes = DEFAULT_UPLOAD_QUOTA_MB
    return int(megabytes * 2**20)


# ----------------------------------------------------------------------------------------------- network
OFFLINE_ENV = "RESNET_EXPLORER_OFFLINE"


def offline_mode() -> bool:
    """True when ``RESNET_EXPLORER_OFFLINE`` is 1, true or yes (any case): a classroom without network.

    The one rule for that variable, used by data downloads, weights downloads and the network probe.
    """
    return os.environ.get(OFFLINE_ENV, "").strip().lower() in ("1", "true", "yes")


def downloads_allowed() -> bool:
    """False in offline mode (``RESNET_EXPLORER_OFFLINE`` set to 1/true/yes, see :func:`offline_mode`)."""
    return not offline_mode()


def probe_url(url: str, timeout: float = 3.0) -> int | None:
    """The one network probe: the HTTP status a HEAD request to ``url`` is answered with, or None when no
    answer comes within ``timeout`` seconds (no route, no DNS, refused, offline mode).

    A real request rather than a TCP connect: sandboxes and proxies accept connections they cannot serve.
    It runs in a daemon thread because a DNS lookup ignores socket timeouts and can hang for long.
    """
    if offline_mode():
        return None
    result: list[int | None] = []

    def attempt() -> None:
        try:
            request = urllib.request.Request(url, method="HEAD")
            with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 - fixed URLs
                result.append(int(response.status))
        except urllib.error.HTTPError as exc:  # the server answered, with an error status
            result.append(int(exc.code))
        except (OSError, ValueError):
            result.append(None)

    thread = threading.Thread(target=attempt, daemon=True)
    thread.start()
    thread.join(timeout + 0.5)
    return result[0] if result else None


def can_reach(url: str, timeout: float = 3.0) -> bool:
    """True if :func:`probe_url` gets a success status (2xx/3xx) for ``url``: the file can be fetched."""
    status = probe_url(url, timeout)
    return status is not None and 200 <= status < 400


def network_available(host: str = "download.pytorch.org", port: int = 443, timeout: float = 3.0) -> bool:
    """True if the server at ``host:port`` answers :func:`probe_url` at all (any HTTP status): the network
    is there. HTTPS on port 443, plain HTTP elsewhere; False at once in offline mode."""
    scheme = "https" if port == 443 else "http"
    return probe_url(f"{scheme}://{host}:{port}/", timeout) is not None


# ---------------------------------------------------------------------------------------- memory budget

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
    if _override is not None:
        return _override
    text = os.environ.get(ENV_MEMORY_BUDGET, "").strip()
    if text:
        return parse_bytes(text, f"The memory budget in ${ENV_MEMORY_BUDGET}")
    return default_memory_budget()


def budget_source() -> str:
    """Where the budget comes from, in words: '--memory-budget', the variable's name, or 'default'."""
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
    "CACHE_ENV", "DATA_ENV", "DEFAULT_UPLOAD_QUOTA_MB", "OFFLINE_ENV", "RUNS_ENV", "UPLOAD_QUOTA_ENV", "cache_dir",
    "can_reach", "data_dir", "downloads_allowed",
    "network_available", "offline_mode", "probe_url", "runs_dir", "upload_quota_bytes", "uploads_dir",
    "ENV_MEMORY_BUDGET", "BudgetError", "SettingsError", "Suggestion", "available_memory", "budget_source",
    "default_memory_budget", "format_bytes", "memory_budget", "parse_bytes", "set_memory_budget",
]
