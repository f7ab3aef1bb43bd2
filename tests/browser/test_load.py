"""A classroom on one server: many Chromium sessions at once against the real `streamlit run`, on loopback.

Eight sessions are held open together while a training race runs: five run Grad-CAM on an image of their own
with an architecture of their own, one opens Activations, one Gradient flow, one drives the race. Each
Grad-CAM session must show its own top-1 class, logit and raw map, as the library computes them in this
process for the same seeded model and image (never another session's). No session shows a traceback, every
request the browsers make stays on loopback, and the server listens on loopback only (no --server.address
given: the default). Latency per action (p50/p95) and the server's peak memory are printed and written to
artifacts/load-report.txt.

A second test runs Grad-CAM on distinct uploads in one session and checks that the server's resident memory
is flat after warm-up: after the last one it is within ``RSS_BOUND_MB`` of what it was after the warm-up.
The suite does 15 (5 of them warm-up); ``RESNET_EXPLORER_LOAD_GRADCAMS=50`` runs the issue's full 50 (10 of
them warm-up).

Run alone: `pytest -m load -s`. The sessions run concurrently on async Playwright in a thread of their own
(the suite's other browser tests use the sync API in the main thread).
"""

from __future__ import annotations

import asyncio
import io
import os
import re
import threading
import time
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw

import resnet_core
from resnet_core import cam
from resnet_core.images import decode_image, preprocess
from resnet_core.models import get_spec
from resnet_core.weights import class_names_for, preprocessing_for
from tests.browser.conftest import CHROMIUM, CHROMIUM_ARGS, STILL_FRAMES, streamlit_server
from tests.conftest import ARTIFACTS

pytestmark = [pytest.mark.browser, pytest.mark.load]

TIMEOUT_MS = 300_000  # nine Chromium tabs, a server and a training race share two cores
RSS_BOUND_MB = 150
LOOPBACK_HOSTS = {"localhost", "127.0.0.1", "[::1]", "::1"}
# Records every "Queued: ..." notice a tab ever shows (they are transient: gone once the slot is taken).
QUEUE_WATCH = """
window.__queued = [];
new MutationObserver((mutations) => {
  for (const m of mutations) for (const n of m.addedNodes) {
    const t = n.textContent || "";
    if (t.includes("Queued: ")) window.__queued.push(t.slice(0, 80));
  }
}).observe(document, {childList: true, subtree: true, characterData: false});
"""


@dataclass(frozen=True)
class GradCamSession:
    arch: str
    width: str = "full"  # the sidebar's width factor
    plain: bool = False

    @property
    def query(self) -> str:
        # weights=random pins the seeded init build() recomputes (Grad-CAM would otherwise open a trained demo)
        return f"arch={self.arch}&width={self.width}&plain={int(self.plain)}&weights=random"

    def build(self) -> torch.nn.Module:
        """The sidebar's model for this link: seed 0, the architecture's default shortcut (as ModelChoice)."""
        spec = get_spec(self.arch)
        options = {"residual": not self.plain, "shortcut": spec.defaults.get("shortcut", "B"), "preact": False}
        if self.width != "full":
            options["width"] = (64 if spec.stem == "imagenet" else 16) // {"half": 2, "quarter": 4}[self.width]
        return resnet_core.build(self.arch, seed=0, **options).eval()


SESSIONS = [
    GradCamSession("resnet20"),
    GradCamSession("resnet32", "half"),
    GradCamSession("resnet44", "quarter"),
    GradCamSession("resnet20", plain=True),
    GradCamSession("resnet18", "quarter"),
]


@dataclass
class Expected:
    """The library's answer for one image: the top-1 class, and every class's logit; maps on demand."""

    model: torch.nn.Module
    x: torch.Tensor
    names: list[str]
    logits: np.ndarray

    @property
    def top1(self) -> str:
        return self.names[int(self.logits.argmax())]

    def raw_map(self, class_name: str) -> np.ndarray:
        target = self.names.index(class_name)
        return cam.explain(self.model, self.x, target, cam.default_layer(self.model), "gradcam",
                           class_names=self.names).raw


def _png(index: int, size: int = 96) -> bytes:
    """A distinct picture per index: background, shape, colour and position all vary."""
    rng = np.random.default_rng(index)
    background = tuple(int(v) for v in rng.integers(0, 256, 3))
    colour = tuple(int(v) for v in rng.integers(0, 256, 3))
    image = Image.new("RGB", (size, size), background)
    draw = ImageDraw.Draw(image)
    x0, y0 = (int(v) for v in rng.integers(0, size // 2, 2))
    x1, y1 = x0 + int(rng.integers(size // 4, size // 2)), y0 + int(rng.integers(size // 4, size // 2))
    [draw.ellipse, draw.rectangle, lambda box, fill: draw.polygon(
        [(box[0], box[3]), ((box[0] + box[2]) // 2, box[1]), (box[2], box[3])], fill=fill)][index % 3](
        (x0, y0, x1, y1), fill=colour)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def _expected(model: torch.nn.Module, png: bytes) -> Expected:
    """What the Grad-CAM page must show for this image, computed here with the same model and preprocessing."""
    names = class_names_for(model)
    x = preprocess(decode_image(png), preprocessing_for(model))
    with torch.no_grad():
        logits = model(x)[0].numpy()
    return Expected(model, x, names, logits)


def _proc_status(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM of a process, in bytes."""
    values = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            values[key] = int(rest.split()[0]) * 1024
    return values


def _listening_addresses(port: int) -> list[str]:
    """Local addresses of the sockets listening on ``port`` (from /proc/net/tcp and tcp6)."""
    found = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            address, port_hex = fields[1].split(":")
            if fields[3] == "0A" and int(port_hex, 16) == port:  # 0A: LISTEN
                found.append(address)
    return found


def _is_loopback(hex_address: str) -> bool:
    if len(hex_address) == 8:  # IPv4, little-endian: 127.x.x.x ends in 7F
        return hex_address.endswith("7F")
    return hex_address in ("00000000000000000000000001000000", "0000000000000000FFFF00000100007F")


def _percentiles(samples: list[float]) -> str:
    return (f"n={len(samples):2d}  p50 {np.percentile(samples, 50):6.2f} s  "
            f"p95 {np.percentile(samples, 95):6.2f} s  max {max(samples):6.2f} s")


# ------------------------------------------------------------------------------------------------ the driver
class Classroom:
    """Runs coroutines against one async Chromium in a thread of its own; records latencies and requests."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.latency: dict[str, list[float]] = defaultdict(list)
        self.requests: list[str] = []
        self.exceptions: dict[str, int] = {}
        self.queued: list[str] = []

    def run(self, main) -> object:
        box: dict[str, object] = {}

        def target() -> None:
            try:
                box["result"] = asyncio.run(self._with_browser(main))
            except BaseException as error:  # re-raised in the test's thread
                box["error"] = error

        thread = threading.Thread(target=target, name="classroom")
        thread.start()
        thread.join()
        if "error" in box:
            raise box["error"]
        return box.get("result")

    async def _with_browser(self, main):
        from playwright.async_api import async_playwright

        async with async_playwright() as pw:
            browser = await pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
            try:
                return await main(browser)
            finally:
                await browser.close()

    async def tab(self, browser, name: str):
        # Still frames (conftest.STILL_FRAMES): a class's tabs share two cores with the servers.
        context = await browser.new_context(viewport={"width": 1280, "height": 900}, accept_downloads=True,
                                            reduced_motion="reduce")
        context.on("request", lambda request: self.requests.append(request.url))
        await context.add_init_script(QUEUE_WATCH)
        await context.add_init_script(STILL_FRAMES)
        page = await context.new_page()
        page.set_default_timeout(TIMEOUT_MS)
        page.session_name = name
        return context, page

    async def finish(self, page) -> None:
        """Record the tab's tracebacks and queue notices, then close it."""
        self.exceptions[page.session_name] = await page.locator('[data-testid="stException"]').count()
        self.queued += await page.evaluate("window.__queued")
        await page.context.close()

    def timed(self, action: str):
        classroom = self

        class _Timer:
            def __enter__(self):
                self.start = time.monotonic()

            def __exit__(self, *exc):
                if exc[0] is None:
                    classroom.latency[action].append(time.monotonic() - self.start)

        return _Timer()


async def wait_idle(page) -> None:
    await page.wait_for_timeout(300)
    await page.locator('[data-testid="stStatusWidget"]').wait_for(state="detached", timeout=TIMEOUT_MS)


async def read_result(main) -> tuple[str, str, float]:
    """(top-1 class, explained class, its logit) as the page shows them: the first option of the 'Explain
    class' radio lists the top-5 in rank order; the caption under the map names the class it explains (the
    radio keeps a class picked for an earlier image while it is still in the top 5)."""
    radio = await main.locator('[data-testid="stRadio"]').filter(has_text="Explain class").inner_text()
    options = re.findall(r"^(.+) \((\d+)\)$", radio, flags=re.MULTILINE)
    assert options, radio
    caption = await main.get_by_text("Score of '").first.inner_text()
    match = re.search(r"Score of '(.+?)': logit (-?\d+\.\d+)", caption)
    assert match, caption
    return options[0][0], match.group(1), float(match.group(2))


async def choose_upload(page, main) -> None:
    await main.locator('[data-testid="stButtonGroup"]').get_by_text("Upload", exact=True).click()
    await main.locator('[data-testid="stFileUploaderDropzoneInput"]').wait_for(state="attached")
    await wait_idle(page)


async def download_map(page, main, folder: Path) -> np.ndarray:
    async with page.expect_download() as info:
        await main.get_by_role("button", name="Raw map (.npy)").click()
    download = await info.value
    path = folder / f"{page.session_name}.npy"
    await download.save_as(path)
    return np.load(path, allow_pickle=False)


# ------------------------------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def load_server() -> Iterator[tuple[str, int]]:
    """The real server, started as a user would (no --server.address: the app's own config must keep it on
    loopback); yields its URL and pid."""
    if not Path(CHROMIUM).exists():
        pytest.skip("Debian's chromium is not installed (apt-get install chromium); the load test is skipped.")
    with streamlit_server([], log_name="streamlit-load-server.log") as (url, proc):
        yield url, proc.pid


# ---------------------------------------------------------------------------------------------------- tests
def test_classroom_sessions_each_get_their_own_result(load_server, tmp_path: Path) -> None:
    url, pid = load_server
    port = urlparse(url).port
    listening = _listening_addresses(port)
    assert listening and all(_is_loopback(a) for a in listening), f"the server listens on {listening}"

    images = {i: tmp_path / f"student-{i}.png" for i in range(len(SESSIONS))}
    expected: dict[int, Expected] = {}
    for i, session in enumerate(SESSIONS):
        images[i].write_bytes(_png(i))
        expected[i] = _expected(session.build(), images[i].read_bytes())
    room = Classroom(url)
    shown: dict[int, tuple[str, str, float, np.ndarray]] = {}
    training: dict[str, str] = {}

    async def gradcam(browser, i: int, session: GradCamSession) -> None:
        context, page = await room.tab(browser, f"grad-cam-{i}")
        main = page.locator('[data-testid="stMain"]')
        with room.timed("open Grad-CAM (sample photo)"):
            await page.goto(f"{url}/grad-cam?{session.query}")
            await main.get_by_text("Score of '").first.wait_for()
            await wait_idle(page)
        await choose_upload(page, main)
        want = expected[i]
        with room.timed("Grad-CAM on an uploaded image"):
            await main.locator('[data-testid="stFileUploaderDropzoneInput"]').set_input_files(str(images[i]))
            await main.get_by_text("Score of '").first.wait_for()
            await wait_idle(page)
            # Until the upload's run has drawn, the page still shows the sample photo's result: wait for this
            # image's top-1 (a page that never shows it fails below, with what it showed instead).
            deadline = time.monotonic() + 120
            while True:
                result = await read_result(main)
                if (result[0] == want.top1 and result[1] in want.names) or time.monotonic() > deadline:
                    break
                await page.wait_for_timeout(250)
        shown[i] = (*result, await download_map(page, main, tmp_path))
        await room.finish(page)

    async def open_page(browser, name: str, path: str, done_text: str) -> None:
        context, page = await room.tab(browser, name)
        with room.timed(f"open {name}"):
            await page.goto(f"{url}/{path}")
            await page.locator('[data-testid="stMain"]').get_by_text(done_text).first.wait_for()
            await wait_idle(page)
        await room.finish(page)

    async def start_race(browser):
        context, page = await room.tab(browser, "training")
        main = page.locator('[data-testid="stMain"]')
        await page.goto(f"{url}/training")
        await main.get_by_role("heading", name="Training race").wait_for()
        await wait_idle(page)
        width = main.get_by_role("spinbutton", name="Width (channels of the first stage)")
        await width.fill("4")
        await width.press("Enter")
        await wait_idle(page)
        with room.timed("start a training race"):
            await main.get_by_role("button", name="Start", exact=True).click()
            await page.locator('[data-testid="stProgress"]').get_by_text(re.compile(r"step [1-9]\d* of")).wait_for()
        return page

    async def classroom(browser) -> None:
        race = await start_race(browser)
        await asyncio.gather(
            *(gradcam(browser, i, s) for i, s in enumerate(SESSIONS)),
            open_page(browser, "Activations", "activations?arch=resnet32&width=half", "Statistics across depth"),
            open_page(browser, "Gradient flow", "gradient-flow", "Measured here at depth"),
        )
        training["during"] = await race.locator('[data-testid="stProgress"]').inner_text()
        main = race.locator('[data-testid="stMain"]')
        stop = main.get_by_role("button", name="Stop", exact=True)
        if await stop.is_enabled():
            await stop.click()
            await main.get_by_text(re.compile(r"· (stopped|finished) ·")).wait_for()
        await wait_idle(race)
        await room.finish(race)

    started = time.monotonic()
    room.run(classroom)
    elapsed = time.monotonic() - started
    memory = _proc_status(pid)

    lines = [f"classroom: {len(SESSIONS) + 3} sessions held at once ({len(SESSIONS)} Grad-CAM, activations, "
             f"gradient flow, a training race) in {elapsed:.0f} s"]
    lines += [f"  {action:32s} {_percentiles(samples)}" for action, samples in room.latency.items()]
    lines.append(f"  server peak memory (VmHWM) {memory['VmHWM'] / 2**20:.0f} MB, now (VmRSS) "
                 f"{memory['VmRSS'] / 2**20:.0f} MB; queue notices seen: {len(room.queued)}")
    _report(lines)

    assert room.exceptions == dict.fromkeys(room.exceptions, 0), f"tracebacks on: {room.exceptions}"
    assert len(room.exceptions) == len(SESSIONS) + 3
    assert re.search(r"step \d+ of", training["during"]), training
    outside = sorted({u for u in room.requests if urlparse(u).scheme not in ("data", "blob")
                      and urlparse(u).hostname not in LOOPBACK_HOSTS})
    assert not outside, f"requests left loopback: {outside[:5]}"
    for i, (top1, explained, _, _) in shown.items():
        want = expected[i]
        assert top1 == want.top1 and explained in want.names, (
            f"session {i} ({SESSIONS[i]}) shows top-1 {top1!r} explaining {explained!r}; expected top-1 "
            f"{want.top1!r} and a class of its own model")
    maps = {i: expected[i].raw_map(explained) for i, (_, explained, _, _) in shown.items()}
    for i, (_, explained, logit, raw) in shown.items():
        want = expected[i]
        assert abs(logit - want.logits[want.names.index(explained)]) <= 2e-3, (i, explained, logit)
        assert raw.shape == maps[i].shape
        scale = float(np.abs(maps[i]).max()) or 1.0
        assert np.allclose(raw, maps[i], atol=1e-4 * scale), f"session {i}'s map is not its own"
        for j, other in maps.items():  # and it is nobody else's
            if j != i and other.shape == raw.shape:
                assert not np.allclose(raw, other, atol=1e-4 * scale), f"session {i} shows session {j}'s map"
    assert len(shown) == len(SESSIONS)


def test_many_grad_cams_keep_server_memory_flat(load_server, tmp_path: Path) -> None:
    url, pid = load_server
    count = int(os.environ.get("RESNET_EXPLORER_LOAD_GRADCAMS", "15"))
    warm = 10 if count >= 50 else max(1, count // 3)
    session = GradCamSession("resnet20")
    model = session.build()
    room = Classroom(url)
    rss: dict[int, int] = {}
    mismatches: list[str] = []

    async def loop(browser) -> None:
        context, page = await room.tab(browser, "grad-cam-loop")
        main = page.locator('[data-testid="stMain"]')
        await page.goto(f"{url}/grad-cam?{session.query}")
        await main.get_by_text("Score of '").first.wait_for()
        await wait_idle(page)
        await choose_upload(page, main)
        for n in range(1, count + 1):
            path = tmp_path / f"loop-{n}.png"
            path.write_bytes(_png(1000 + n))
            want = _expected(model, path.read_bytes())
            with room.timed("Grad-CAM on an upload (one session, in a row)"):
                await main.locator('[data-testid="stFileUploaderDropzoneInput"]').set_input_files(str(path))
                await wait_idle(page)
                # Until this image's run has drawn, the page still shows the previous image's result.
                deadline = time.monotonic() + 60
                while True:
                    shown = await read_result(main) if await main.get_by_text("Score of '").count() else ("", "", 0.0)
                    top1, explained, logit = shown
                    fits = explained in want.names and top1 == want.top1 and abs(logit - want.logits[want.names.index(explained)]) <= 2e-3
                    if fits or time.monotonic() > deadline:
                        break
                    await page.wait_for_timeout(200)
            if not fits:
                mismatches.append(f"upload {n}: page {top1!r}/{explained!r} {logit}, library {want.top1!r}")
            rss[n] = _proc_status(pid)["VmRSS"]
        await room.finish(page)

    room.run(loop)
    growth = (rss[count] - rss[warm]) / 2**20
    _report([f"Grad-CAM loop: {count} uploads in one session; server VmRSS after {warm}: "
             f"{rss[warm] / 2**20:.0f} MB, after {count}: {rss[count] / 2**20:.0f} MB, growth {growth:+.1f} MB "
             f"(bound {RSS_BOUND_MB} MB)",
             *(f"  {action:32s} {_percentiles(samples)}" for action, samples in room.latency.items())])
    assert not mismatches, mismatches
    assert room.exceptions == {"grad-cam-loop": 0}
    assert growth < RSS_BOUND_MB, f"server memory grew {growth:.0f} MB over {count - warm} Grad-CAMs after warm-up"


def _report(lines: list[str]) -> None:
    text = "\n".join(lines)
    print("\n" + text)
    ARTIFACTS.mkdir(exist_ok=True)
    with open(ARTIFACTS / "load-report.txt", "a") as report:
        report.write(text + "\n")
