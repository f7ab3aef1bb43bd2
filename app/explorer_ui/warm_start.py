"""The server's warm start: the heavy libraries load, and every page's default view is drawn once, in the
background as soon as the server starts, so that the class does not wait on the first click of each page.

``lifespan`` is app/main.py's startup hook (``st.App(..., lifespan=lifespan)``). It returns at once, so the health
check answers as early as without it. In the background it then:

1. visits every page of the navigation once, in the navigation's order, through Streamlit's own runtime: a
   session with no browser behind it asks for the page by its url path, the page runs its default view exactly
   as a visitor's first run would (cached models, cached results, figures), and the session is closed when its
   run has finished. Only one page is primed at a time, and a visitor who asks for the same result meanwhile
   waits for the one computation (Streamlit's cache holds one lock per key);
2. after the landing page, imports the rest of the heavy modules in a thread (torch, torchvision, pandas,
   plotly, Captum, resnet_core with its plots) and freezes them out of the garbage collector's way
   (``explorer_ui.gc_freeze``), before the other pages.

``RESNET_EXPLORER_PRIME`` chooses what is primed: ``all`` (the default), ``none``, or url paths separated by
commas. The tests' servers set ``none`` unless they test the warm start itself. When everything is primed, the
server prints one line, ``ResNet Explorer: warm start done in S s (page: s, ...)``, which
benchmarks/bench_cold_start.py waits for.
"""

from __future__ import annotations

import ast
import asyncio
import contextlib
import importlib
import logging
import os
import time
from collections.abc import AsyncIterator, Iterable, Mapping
from pathlib import Path
from typing import Any

PRIME_ENV = "RESNET_EXPLORER_PRIME"
NAVIGATION = Path(__file__).resolve().parents[1] / "navigation.py"
# What the pages import, heaviest first; explorer_ui.gc_freeze loads the rest of what it freezes.
HEAVY_MODULES = ("torch", "torchvision", "pandas", "plotly.graph_objects", "captum.attr", "resnet_core",
                 "resnet_core.plots", "explorer_ui.sidebar", "explorer_ui.gc_freeze")
PAGE_TIMEOUT_S = 600.0  # a page whose default view takes longer is left to its first visitor
DONE_LINE = "ResNet Explorer: warm start done"

_LOGGER = logging.getLogger("resnet_explorer.warm_start")


def navigation_pages(navigation: Path = NAVIGATION) -> list[tuple[str, str]]:
    """(title, url path) of every visible page, in the navigation's order, read from the script's ``st.Page``
    calls: the one reader of the page list for the warm start, the tests and the benchmarks."""
    pages = []
    for node in ast.walk(ast.parse(navigation.read_text())):
        if isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "Page":
            words = {k.arg: k.value.value for k in node.keywords if isinstance(k.value, ast.Constant)}
            if "url_path" in words and words.get("visibility") != "hidden":
                pages.append((str(words.get("title", "")), words["url_path"]))
    return pages


def page_url_paths(navigation: Path = NAVIGATION) -> list[str]:
    """The url path of every visible page, in the navigation's order."""
    return [path for _, path in navigation_pages(navigation)]


def pages_to_prime(setting: str | None, known: list[str]) -> list[str]:
    """The url paths ``RESNET_EXPLORER_PRIME`` asks for, in the navigation's order; unknown names are ignored."""
    setting = (setting or "all").strip().lower()
    if setting == "all":
        return list(known)
    if setting in ("", "none", "0", "off"):
        return []
    asked = {part.strip() for part in setting.split(",")}
    return [path for path in known if path in asked]


def import_heavy_modules(modules: Iterable[str] = HEAVY_MODULES) -> float:
    """Import ``modules`` (a thread's work: it holds the GIL for seconds); returns the seconds it took."""
    start = time.perf_counter()
    for name in modules:
        importlib.import_module(name)
    return time.perf_counter() - start


class _NoBrowser:
    """What a primed session has instead of a browser's handshake: no headers, no cookies, no address."""

    headers: tuple = ()
    cookies: Mapping[str, str] = {}
    remote_ip = None


class _PrimingClient:
    """A session client that drops what the run draws and tells when the run has finished."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self.finished = asyncio.Event()
        self.client_context = _NoBrowser()
        self.exceptions: list[str] = []  # "Type: message" of every exception the run drew

    def write_forward_msg(self, msg: Any) -> None:
        kind = msg.WhichOneof("type")
        if kind == "delta" and msg.delta.WhichOneof("type") == "new_element" \
                and msg.delta.new_element.WhichOneof("type") == "exception":
            exception = msg.delta.new_element.exception
            self.exceptions.append(f"{exception.type}: {exception.message}")
        elif kind == "script_finished":
            # Called from the runtime; the event belongs to the server's loop.
            self._loop.call_soon_threadsafe(self.finished.set)


async def prime_page(runtime: Any, url_path: str, timeout: float = PAGE_TIMEOUT_S) -> float:
    """Run ``url_path``'s default view once in a session without a browser; returns the seconds it took.
    Raises RuntimeError naming what the page raised, if it drew an exception."""
    from streamlit.proto.BackMsg_pb2 import BackMsg

    client = _PrimingClient(asyncio.get_running_loop())
    start = time.perf_counter()
    session_id = runtime.connect_session(client=client, user_info={})
    try:
        message = BackMsg()
        message.rerun_script.page_name = url_path
        message.rerun_script.query_string = ""
        runtime.handle_backmsg(session_id, message)
        await asyncio.wait_for(client.finished.wait(), timeout)
    finally:
        runtime.close_session(session_id)
    if client.exceptions:
        raise RuntimeError("; ".join(client.exceptions))
    return time.perf_counter() - start


async def warm_start(paths: list[str]) -> dict[str, float]:
    """Import the heavy modules in a thread, then prime ``paths`` one after the other; seconds per step."""
    from streamlit.runtime import Runtime

    start = time.perf_counter()
    runtime = Runtime.instance()
    seconds: dict[str, float] = {}
    # The landing page first, with only what it imports: the first visitor asks for the same page and results
    # (Streamlit's cache lets one of them compute and the other wait), and nothing else competes for the GIL.
    # Then everything else the pages import, then the other pages.
    for index, path in enumerate(paths):
        if index == 1:
            seconds["imports"] = await asyncio.to_thread(import_heavy_modules)
        try:
            seconds[path] = await prime_page(runtime, path)
        except Exception as error:  # a page that cannot be primed is drawn at its first visit, as before
            _LOGGER.warning("warm start: the %s page was not primed (%s)", path, error)
    if len(paths) < 2:
        seconds["imports"] = await asyncio.to_thread(import_heavy_modules)
    took = ", ".join(f"{name}: {value:.1f}" for name, value in seconds.items())
    print(f"{DONE_LINE} in {time.perf_counter() - start:.1f} s ({took})", flush=True)
    return seconds


@contextlib.asynccontextmanager
async def lifespan(_app: object) -> AsyncIterator[None]:
    """app/main.py's startup hook: starts the warm start in the background and returns at once."""
    paths = pages_to_prime(os.environ.get(PRIME_ENV), page_url_paths())
    task = asyncio.create_task(warm_start(paths), name="resnet-explorer-warm-start")
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task
