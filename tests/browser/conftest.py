"""A real `streamlit run` on a free localhost port, driven by Debian's Chromium through Playwright."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from explorer_ui.warm_start import DONE_LINE

from tests.conftest import ARTIFACTS, REPO

CHROMIUM = "/usr/bin/chromium"
SCREENSHOTS = ARTIFACTS / "screenshots"
# Still frames in every test tab: the tabs share two cores with the servers, and each spinner, skeleton shimmer
# and status animation otherwise repaints at 60 frames a second (the tests assert text, chart data and
# screenshots; a still frame is also what a screenshot should show). Playwright's reduced motion covers what
# the page lets the user's setting decide, the style what it does not.
STILL_FRAMES = """
document.addEventListener("DOMContentLoaded", () => {
  const style = document.createElement("style");
  style.textContent = "*, *::before, *::after { animation: none !important; transition: none !important; }";
  document.head.appendChild(style);
});
"""


def new_tab(profile, width: int = 1400, height: int = 2400, timeout_ms: float = 90_000):
    """A tab of the tests' browser profile (``profile``) at ``width`` x ``height``: its own Streamlit session, as a
    second tab of a student's browser is. Close it with ``tab.close()``."""
    tab = profile.new_page()
    tab.set_viewport_size({"width": width, "height": height})
    tab.set_default_timeout(timeout_ms)
    return tab


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def streamlit_server(extra_args: list[str], cwd: Path = REPO, log_name: str = "streamlit-server.log",
                     prime: str = "none", wait_warm: bool = False) -> Iterator[tuple[str, subprocess.Popen]]:
    """``streamlit run <repo>/app/main.py`` on a free port from ``cwd``, as `make run` starts it (the venv's
    console script); yields (url, process) once /_stcore/health answers, and stops it afterwards. ``prime``: the
    warm start's pages (RESNET_EXPLORER_PRIME); none unless a test is about it, since each test drives the pages
    it checks itself and a primed lesson costs half a minute of CPU per server. ``wait_warm``: yield only once
    the warm start is done (a server whose tests walk the lesson primes it, as `make run` would, and the wait is
    the fixture's, not the first test's)."""
    streamlit = Path(sys.executable).with_name("streamlit")
    port = _free_port()
    ARTIFACTS.mkdir(exist_ok=True)
    log = open(ARTIFACTS / log_name, "w")  # noqa: SIM115 - closed in finally
    proc = subprocess.Popen(
        [str(streamlit), "run", str(REPO / "app" / "main.py"), "--server.headless", "true", "--server.port",
         str(port), "--server.fileWatcherType", "none", *extra_args],
        cwd=cwd, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "RESNET_EXPLORER_PRIME": prime},
    )
    url = f"http://localhost:{port}"
    try:
        deadline = time.time() + 60
        while True:
            try:
                if urllib.request.urlopen(f"{url}/_stcore/health", timeout=2).read() == b"ok":
                    break
            except OSError:
                pass
            if proc.poll() is not None or time.time() > deadline:
                raise RuntimeError(f"streamlit did not start; see {ARTIFACTS / log_name}")
            time.sleep(0.3)
        deadline = time.time() + 600
        while wait_warm and DONE_LINE not in (ARTIFACTS / log_name).read_text():
            if proc.poll() is not None or time.time() > deadline:
                raise RuntimeError(f"the warm start did not finish; see {ARTIFACTS / log_name}")
            time.sleep(0.5)
        yield url, proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


@pytest.fixture(scope="session")
def server_url(_isolated_dirs: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The browser tests' server, started the plain way (no --server.address) from a folder other than the
    repository, so that only app/.streamlit/config.toml decides where it listens (tests/browser/test_links.py)."""
    elsewhere = tmp_path_factory.mktemp("elsewhere")
    with streamlit_server([], cwd=elsewhere, prime="why-residuals", wait_warm=True) as (url, _):
        yield url


CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]


def _require_chromium() -> None:
    if not Path(CHROMIUM).exists() and not shutil.which("chromium"):
        pytest.skip("Debian's chromium is not installed (apt-get install chromium); browser tests skipped.")


@pytest.fixture(scope="session")
def _playwright():
    """One Playwright driver for the run: the profile and the incognito browser are both its."""
    _require_chromium()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        yield pw


@pytest.fixture(scope="session")
def profile(_playwright, tmp_path_factory: pytest.TempPathFactory):
    """Debian's Chromium with one profile on disk for the whole run, as a student's own browser keeps one; each
    test opens its tabs in it (``new_tab``), each tab a Streamlit session of its own. A profile on disk keeps
    compiled scripts, so a page load costs Chromium a quarter less CPU than in a fresh incognito context (3.5
    against 4.7 s, measured here: Streamlit's and Plotly's scripts compiled once, not on every load)."""
    context = _playwright.chromium.launch_persistent_context(
        str(tmp_path_factory.mktemp("chromium-profile")), executable_path=CHROMIUM, headless=True,
        args=CHROMIUM_ARGS, reduced_motion="reduce", viewport={"width": 1400, "height": 2400})
    context.add_init_script(STILL_FRAMES)
    yield context
    context.close()


@pytest.fixture(scope="session")
def browser(_playwright):
    """A browser for what needs a fresh incognito context (nothing cached): only the chart preload test."""
    browser = _playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
    yield browser
    browser.close()


@pytest.fixture
def page(profile, server_url):
    """A fresh tab with a tall viewport (Streamlit scrolls its own container, so full_page can't)."""
    tab = new_tab(profile)
    yield tab
    tab.close()


def wait_idle(tab, timeout: float = 120_000) -> None:
    """Wait until the script run finished (the running indicator is gone)."""
    tab.wait_for_timeout(300)
    tab.locator('[data-testid="stStatusWidget"]').wait_for(state="detached", timeout=timeout)


def screenshot(tab, name: str) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    tab.screenshot(path=str(path))
    return path
