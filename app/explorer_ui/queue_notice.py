"""While a page's heavy computation waits for a slot (``resnet_core.job_queue``), say where it is in line."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import streamlit as st

# Streamlit records every element drawn inside a cached function to replay it on a cache hit; the queue notice
# is drawn from inside one (the slot is taken on a cache miss only) into an st.empty() slot made outside it, which
# the replay could not find. This flag is what Streamlit checks before recording, so the notice clears it.
from streamlit.runtime.scriptrunner_utils.script_run_context import in_cached_function

from resnet_core.job_queue import queue_message, reporting


@contextlib.contextmanager
def queue_notice() -> Iterator[None]:
    """Show "Queued: 3rd in line (1 job running)" while any heavy slot taken inside this block waits."""
    notice = st.empty()
    shown = False

    def on_wait(position: int, running: int) -> None:
        nonlocal shown
        token = in_cached_function.set(False)
        try:
            notice.info(queue_message(position, running), icon="⏳")
            shown = True
        finally:
            in_cached_function.reset(token)

    try:
        with reporting(on_wait):
            yield
    finally:
        if shown:
            notice.empty()
