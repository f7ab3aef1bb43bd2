"""What the app benchmarks (cold start, lesson, classroom, race) share: a real ``streamlit run app/main.py`` on a
free port (``fresh_env``: a fresh runs folder and TORCH_HOME, offline) and Debian's Chromium through Playwright
(never Playwright's own browser downloads). Not a benchmark itself (``make bench`` runs ``bench_*.py``)."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

REPO = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"
sys.path.insert(0, str(REPO / "app"))  # explorer_ui, as Streamlit finds it beside app/main.py
from explorer_ui.warm_start import page_url_paths  # noqa: E402


def page_paths() -> list[str]:
    """The url path of every page, in the navigation's order (the hidden home stub left out), as the warm start
    reads them from app/navigation.py."""
    return page_url_paths(REPO / "app" / "navigation.py")


def fresh_env(folder: Path) -> dict[str, str]:
    """The server's environment: a new, empty runs folder, torch home and folder of kept measurements (a machine
    that never measured the lesson) under ``folder``, offline."""
    (folder / "runs").mkdir(parents=True, exist_ok=True)
    (folder / "torch").mkdir(parents=True, exist_ok=True)
    return {**os.environ, "RESNET_EXPLORER_RUNS": str(folder / "runs"), "TORCH_HOME": str(folder / "torch"),
            "RESNET_EXPLORER_CACHE": str(folder / "measurements"), "RESNET_EXPLORER_OFFLINE": "1",
            "OMP_WAIT_POLICY": "PASSIVE"}


class Served(NamedTuple):
    url: str
    up_s: float  # seconds until /_stcore/health answered
    process: subprocess.Popen  # for its pid (CPU and memory from /proc) and whether it still runs


@contextlib.contextmanager
def server(env: dict[str, str], log: Path | None = None) -> Iterator[Served]:
    """A fresh ``streamlit run app/main.py`` with ``env`` (its output to ``log``, else discarded); stopped after."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    start = time.perf_counter()
    with open(log if log is not None else os.devnull, "w") as out:
        proc = subprocess.Popen(
            [str(Path(sys.executable).with_name("streamlit")), "run", str(REPO / "app" / "main.py"),
             "--server.headless", "true", "--server.port", str(port), "--server.address", "localhost",
             "--server.fileWatcherType", "none"], cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT)
        url = f"http://localhost:{port}"
        try:
            while True:
                try:
                    if urllib.request.urlopen(f"{url}/_stcore/health", timeout=2).read() == b"ok":
                        break
                except OSError:
                    pass
                if proc.poll() is not None or time.perf_counter() - start > 120:
                    raise RuntimeError(f"streamlit did not start; see {log or 'its output (pass a log)'}")
                time.sleep(0.2)
            yield Served(url, time.perf_counter() - start, proc)
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()


@contextlib.contextmanager
def chromium() -> Iterator[object]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True,
                                     args=["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                                           "--disable-component-update", "--disable-sync", "--no-first-run"])
        try:
            yield browser
        finally:
            browser.close()


def idle(tab, timeout: float = 600_000) -> None:
    """Wait until the page's script run finished (Streamlit's running indicator is gone)."""
    tab.wait_for_timeout(300)
    tab.locator('[data-testid="stStatusWidget"]').wait_for(state="detached", timeout=timeout)


def load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"{one:.1f} / {five:.1f} / {fifteen:.1f}"
