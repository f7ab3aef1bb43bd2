"""The memory budget on the page: its one caption line, and a refused request with a button for what fits."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

import streamlit as st

from resnet_core.models import get_spec
from resnet_core.probes import BatchStatsError
from resnet_core.settings import ENV_MEMORY_BUDGET, BudgetError, SettingsError, format_bytes, memory_budget
from resnet_core.weights import width_factor


def budget_caption() -> None:
    """One sidebar line: the budget every request is costed against, and where to change it."""
    try:
        st.sidebar.caption(f"Memory budget {format_bytes(memory_budget())} per request ({ENV_MEMORY_BUDGET})")
    except SettingsError as error:
        st.sidebar.error(str(error))


def _sidebar_keys(setting: str, value: Any) -> dict[str, Any] | None:
    """Session-state values that make the sidebar ask for ``setting = value`` (None: not a sidebar setting)."""
    if setting == "arch":
        return {"sb_arch": value, "sb_shortcut": get_spec(value).defaults.get("shortcut", "B")}
    if setting == "width":
        factor = width_factor(st.session_state.get("sb_arch", "resnet20"), int(value)) if int(value) else None
        return {"sb_width": factor} if factor else None
    return None


def _apply(values: dict[str, Any]) -> None:
    for key, value in values.items():  # in a button callback: before the widgets of the next run exist
        st.session_state[key] = value


def offer_fit(error: BudgetError, keys: Callable[[str, Any], dict[str, Any] | None] | None = None,
              key: str = "budget_fit") -> None:
    """Show the refusal's one sentence and one button per suggestion this page can apply.

    ``keys(setting, value)`` maps a suggested change to session-state values (default: the sidebar's
    architecture and width).
    """
    st.error(str(error))
    mapping = keys or _sidebar_keys
    for index, suggestion in enumerate(error.suggestions):
        values: dict[str, Any] = {}
        for setting, value in suggestion.changes.items():
            mapped = mapping(setting, value)
            if mapped is None:
                values = {}
                break
            values.update(mapped)
        if values:
            st.button(f"Use {suggestion.words} (about {format_bytes(suggestion.cost)})", key=f"{key}_{index}",
                      on_click=_apply, args=(values,))


@contextlib.contextmanager
def stop_on_refusal() -> Iterator[None]:
    """The instrument pages' one error ladder around loading a model and measuring it: a batch of one with
    batch statistics (the probes' sentence), over the memory budget (the sentence and a button for the nearest
    fit), or a model or weights that cannot be used (the sentence and what to do). The page stops after it."""
    try:
        yield
    except BatchStatsError as error:
        st.error(str(error))
        st.stop()
    except BudgetError as error:
        offer_fit(error)
        st.stop()
    except ValueError as error:  # WeightsError (offline, wrong checkpoint) and impossible options
        st.error(f"{error} Pick another model or weights in the sidebar.")
        st.stop()
