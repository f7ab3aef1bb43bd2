"""The errors checkpoints, weights and preprocessing raise, and the helpers that keep their messages short.

On the ground floor so that ``images`` (Preprocessing), ``checkpoints`` and ``weights`` all raise the same
:class:`WeightsError` without importing one another upwards.
"""

from __future__ import annotations

from collections.abc import Sequence


class WeightsError(ValueError):
    """A user-facing problem with weights; ``str(error)`` is one sentence saying what to do."""


def clip(text: object, limit: int = 80) -> str:
    """``text`` as one printable line of at most ``limit`` characters: names from a file must neither grow a
    message nor break it into lines."""
    text = "".join(c if c.isprintable() else f"\\x{ord(c):02x}" for c in str(text)[: limit + 1])
    return text if len(text) <= limit else text[: limit - 3] + "..."


def some(names: Sequence[object], shown: int = 3) -> str:
    """"'a', 'b', 'c' ... and 12 more": a bounded list of names for one sentence."""
    listed = ", ".join(f"'{clip(n, 60)}'" for n in list(names[:shown]))
    return listed + (f" ... and {len(names) - shown} more" if len(names) > shown else "")


__all__ = ["WeightsError", "clip", "some"]
