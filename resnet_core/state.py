"""Moved to ``resnet_core.hooks`` (the one tap primitive); the old names stay reachable from here."""

from __future__ import annotations

from typing import Any

_MOVED = ("model_lock", "preserved_state", "count_hooks")


def __getattr__(name: str) -> Any:
    # PEP 562: imported on access, so this module imports nothing and the old import paths keep working.
    if name in _MOVED:
        from . import hooks

        return getattr(hooks, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
