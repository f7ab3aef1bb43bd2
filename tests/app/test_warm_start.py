"""The warm start: what it primes, and a real server that answers its health check before the warm start has
finished, then draws the primed pages' default views without an exception (timings: bench_cold_start)."""

from __future__ import annotations

import time
import urllib.request

import pytest
from explorer_ui.warm_start import DONE_LINE, HEAVY_MODULES, page_url_paths, pages_to_prime

from tests.browser.conftest import streamlit_server
from tests.conftest import APP_SCRIPT, ARTIFACTS


def test_the_navigations_pages_in_its_order():
    paths = page_url_paths(APP_SCRIPT)
    assert paths == ["architecture", "why-residuals", "activations", "gradient-flow", "training", "grad-cam"]
    assert "home" not in paths  # the hidden stub that forwards / to Architecture is never primed


@pytest.mark.parametrize("setting, expected", [
    (None, ["architecture", "why-residuals", "grad-cam"]),
    ("all", ["architecture", "why-residuals", "grad-cam"]),
    ("none", []),
    ("", ["architecture", "why-residuals", "grad-cam"]),  # set but empty: the default
    ("grad-cam, architecture", ["architecture", "grad-cam"]),  # the navigation's order, not the setting's
    ("grad-cam,../../etc,nope", ["grad-cam"]),  # unknown names are ignored
])
def test_the_setting_picks_pages_of_the_navigation_only(setting, expected):
    assert pages_to_prime(setting, ["architecture", "why-residuals", "grad-cam"]) == expected


def test_the_heavy_modules_are_the_pages_libraries():
    assert {"torch", "torchvision", "pandas", "plotly.graph_objects", "captum.attr", "resnet_core"} \
        <= set(HEAVY_MODULES)


def test_a_server_answers_at_once_and_primes_its_pages_in_the_background():
    log_name = "streamlit-warm-start.log"
    with streamlit_server(["--server.address", "localhost"], log_name=log_name,
                          prime="architecture,gradient-flow") as (url, proc):
        assert DONE_LINE not in (ARTIFACTS / log_name).read_text()  # up before the warm start is done
        deadline = time.monotonic() + 300
        while DONE_LINE not in (text := (ARTIFACTS / log_name).read_text()):
            assert proc.poll() is None and time.monotonic() < deadline, text
            assert urllib.request.urlopen(f"{url}/_stcore/health", timeout=5).read() == b"ok"
            time.sleep(0.5)
    done = next(line for line in text.splitlines() if line.startswith(DONE_LINE))
    # Each primed page ran its default view to the end, without an exception (a page that raised is named in a
    # "was not primed" warning and left out of the line).
    assert "imports:" in done and "architecture:" in done and "gradient-flow:" in done, done
    assert "grad-cam" not in done and "not primed" not in text, text
