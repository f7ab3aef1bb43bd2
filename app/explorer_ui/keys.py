"""Cache keys for the pages: a hashable summary of a sidebar choice (the model itself is never hashed)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from explorer_ui.sidebar import ModelChoice

ChoiceKey = tuple[str, tuple[tuple[str, Any], ...], str]


def choice_key(choice: ModelChoice) -> ChoiceKey:
    """(architecture name, sorted build options, weights id): equal keys mean the same model."""
    return choice.name, tuple(sorted(choice.options().items())), choice.weights
