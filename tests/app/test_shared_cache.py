"""The pages rely on Streamlit's per-key compute lock: identical first requests from many sessions at once
compute once (streamlit/runtime/caching/cache_utils.py, ``_handle_cache_miss``: the lock is taken, the cache
read again under it). This guards that reliance against a Streamlit version without it."""

from __future__ import annotations

import threading
import time

import streamlit as st


def test_concurrent_identical_first_requests_compute_once() -> None:
    calls: list[int] = []

    @st.cache_data(show_spinner=False)
    def slow_square(x: int) -> int:
        calls.append(x)
        time.sleep(0.3)  # long enough for every thread to arrive while the first computes
        return x * x

    slow_square.clear()
    results: list[int] = []
    threads = [threading.Thread(target=lambda: results.append(slow_square(7))) for _ in range(6)]
    threads += [threading.Thread(target=lambda: results.append(slow_square(8)))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert sorted(results) == [49] * 6 + [64]
    assert sorted(calls) == [7, 8]  # one computation per distinct key, however many sessions asked
