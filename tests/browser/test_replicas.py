"""A class on two replicas behind Debian's nginx (``resnet_explorer.serve``, as ``make serve REPLICAS=2`` runs it),
on loopback, and replica A killed (SIGKILL) mid-lesson. Two stories, each on two fresh replicas of its own:

* Students. Each browser's route cookie is chosen so that ``SESSIONS_PER_REPLICA`` sessions (one in the suite,
  four in ``benchmarks/bench_replicas.py``) land on each replica (nginx says which replica answered in a
  response header). Every session uploads an image of its own to Grad-CAM and must see the library's own top-1
  class for it: no request fails, no traceback. After the kill, within 10 s each of A's pages says that its
  earlier session ended, in a fresh session on replica B that runs the page from the link's settings. B's
  sessions carry on untouched: no reconnection, their results in place, their next click answered.
* A race. Started on replica A's Training page, it is live on replica B's, which pauses it there (the runs
  folder is shared; the one-race slot holds across both). After the kill, A's Training page says its session
  ended, the race reads as interrupted, the slot is free again.

After either story every file of the runs folder is whole (each JSON file parses, each metrics line parses, no
temporary file is left), and each replica's torch had the machine's cores shared out (``OMP_NUM_THREADS``).
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
from explorer_ui.reconnect import ENDED_SENTENCE

from resnet_core import runs
from resnet_explorer.serve import (
    INSTALL_HINT,
    REPLICA_HEADER,
    ROUTE_COOKIE,
    THREADS_ENV,
    free_port,
    nginx_binary,
    replica_threads,
    serving,
)
from tests.browser.conftest import CHROMIUM
from tests.browser.test_load import (
    SESSIONS,
    Classroom,
    _expected,
    _percentiles,
    _png,
    choose_upload,
    read_result,
    wait_idle,
)

pytestmark = [pytest.mark.browser, pytest.mark.load, pytest.mark.slow]

# One student per replica in the suite; `benchmarks/bench_replicas.py` runs the same test with four (its full size).
SESSIONS_PER_REPLICA = max(1, int(os.environ.get("RESNET_EXPLORER_REPLICA_SESSIONS", "1")))
RECONNECT_NOTICE_S = 10.0
# Every text the status widget (running / connecting) ever shows, and when the page first said its session ended.
# textContent, not innerText: innerText lays the page out, and this runs on every change of every tab.
WATCH = """
window.__status = [];
window.__ended = null;
new MutationObserver(() => {
  const widget = document.querySelector('[data-testid="stStatusWidget"]');
  const text = widget ? widget.textContent.trim() : "";
  if (text && window.__status[window.__status.length - 1] !== text) window.__status.push(text);
  if (window.__ended === null && document.body.textContent.includes("Your earlier session ended"))
    window.__ended = Date.now();
}).observe(document, {childList: true, subtree: true, characterData: true});
"""


@pytest.fixture
def replicas(tmp_path: Path):
    """Two fresh replicas behind nginx on a runs folder of their own (each story kills one)."""
    if nginx_binary() is None:
        pytest.skip(INSTALL_HINT)
    if not Path(CHROMIUM).exists():
        pytest.skip("Debian's chromium is not installed (apt-get install chromium); the proxy test is skipped.")
    with serving(2, port=free_port(), runs=tmp_path / "runs", prefix=tmp_path / "serve",
                 extra_env={"RESNET_EXPLORER_PRIME": "none"}) as served:
        threads = os.environ.get(THREADS_ENV, str(replica_threads(2)))  # the cores shared out, unless set already
        for replica in served.replicas:
            environ = Path(f"/proc/{replica.process.pid}/environ").read_bytes().split(b"\0")
            assert f"{THREADS_ENV}={threads}".encode() in environ, [v for v in environ if b"OMP" in v]
        yield served, tmp_path / "runs"


def _routes(url: str, replicas: list[str], wanted: int) -> dict[str, list[str]]:
    """Route cookie values that nginx sends to each replica (``wanted`` of each), as it answers them."""
    found: dict[str, list[str]] = {r: [] for r in replicas}
    for index in range(400):
        value = f"student-{index}"
        request = urllib.request.Request(f"{url}/_stcore/health", headers={"Cookie": f"{ROUTE_COOKIE}={value}"})
        replica = urllib.request.urlopen(request, timeout=10).headers[REPLICA_HEADER]
        if len(found[replica]) < wanted:
            found[replica].append(value)
        if all(len(values) == wanted for values in found.values()):
            return found
    raise AssertionError(f"nginx spread 400 route values as {({r: len(v) for r, v in found.items()})}")


def _answered_by(response) -> str:
    """The replica that answered (nginx names every one it tried, "A, B" when A refused: the last answered)."""
    return response.headers.get(REPLICA_HEADER.lower(), "").split(", ")[-1]


def _base_path_probe(url: str) -> bool:
    """Streamlit's page, reconnecting, probes for its server's base path under the page's own path too
    (``/grad-cam/_stcore/health``): a 404 there is how it learns the base path is ``/``, with or without nginx."""
    path = urllib.parse.urlparse(url).path
    return path.endswith(("/_stcore/health", "/_stcore/host-config")) and not path.startswith("/_stcore/")


def _whole_runs_folder(folder: Path) -> list[Path]:
    """Every file of the runs folder is whole: JSON parses, every metrics line parses; returns the files."""
    files = [p for p in folder.rglob("*") if p.is_file()]
    assert not [p for p in files if p.name.endswith(".tmp")], files  # atomic_write's temporaries are renamed
    for path in files:
        if path.suffix == ".json":
            json.loads(path.read_text())
        elif path.suffix == ".jsonl":
            for line in path.read_text().splitlines():
                json.loads(line)
    return files


class TwoReplicaClass:
    """Tabs pinned to a replica by their route cookie; every response's replica and every failed request kept."""

    def __init__(self, served) -> None:
        self.served = served
        self.classroom = Classroom(served.url)
        self.answered: dict[str, list[str]] = {}  # route value -> the replicas nginx answered its browser from
        self.failed: list[tuple[bool, str, int, str, str]] = []  # (after the kill, page, status, url, replica)
        self.killed_at: float | None = None  # ms since the epoch

    async def tab(self, browser, name: str, route: str):
        url = self.served.url
        context, page = await self.classroom.tab(browser, name)
        await context.add_cookies([{"name": ROUTE_COOKIE, "value": route, "url": url}])
        await context.add_init_script(WATCH)
        page.on("response", lambda response: self.answered.setdefault(route, []).append(_answered_by(response))
                if response.url.startswith(url) else None)
        page.on("response", lambda response: self.failed.append((self.killed_at is not None, name, response.status,
                                                                 response.url, _answered_by(response)))
                if response.status >= 400 and not _base_path_probe(response.url) else None)
        return context, page

    async def training(self, browser, route: str, name: str):
        context, page = await self.tab(browser, name, route)
        await page.goto(f"{self.served.url}/training?reveal=1")
        main = page.locator('[data-testid="stMain"]')
        await main.get_by_role("heading", name="Training race").wait_for()
        await wait_idle(page)
        return page, main

    def kill_a(self) -> None:
        self.served.replicas[0].process.kill()
        self.killed_at = time.time() * 1000

    async def ended_notices(self, pages: list, folder: Path) -> dict[str, float]:
        """Seconds from the kill until each page said that its session ended (measured in the page)."""
        for page in pages:
            try:
                await page.wait_for_function("() => window.__ended !== null", timeout=60_000)
            except Exception:
                await page.screenshot(path=str(folder / f"{page.session_name}.png"))
                raise AssertionError(f"{page.session_name} ({page.url}) never said its session ended; statuses "
                                     f"{await page.evaluate('window.__status')}; see {folder}") from None
        ended_after = {page.session_name: (await page.evaluate("window.__ended") - self.killed_at) / 1000
                       for page in pages}
        print(f"seconds from the kill to each page's notice: {ended_after}")
        assert max(ended_after.values()) <= RECONNECT_NOTICE_S, ended_after
        for page in pages:
            await wait_idle(page)
        return ended_after

    def check_requests(self, pinned: dict[str, str], moved: set[str], routes_moved: set[str]) -> None:
        """No request failed while both replicas served (pages, uploads, websockets). After the kill, only the
        moved pages' images still named by their old view (held in the dead replica's memory) are missing, until
        the fresh session draws its own. (A superseded image can 404 on its own replica, as without a proxy:
        Streamlit drops a run's media files when the next run replaces them while the browser still loads them;
        never on the other replica.) Each moved route was answered by both replicas, every other by one."""
        assert all(count == 0 for count in self.classroom.exceptions.values()), self.classroom.exceptions
        assert not [f for f in self.failed
                    if not f[0] and not (f[2] == 404 and "/media/" in f[3] and f[4] == pinned[f[1]])], self.failed
        assert all(f[1] in moved and f[2] == 404 and "/media/" in f[3] for f in self.failed if f[0]), self.failed
        for route, replicas in self.answered.items():
            seen = {r for r in replicas if r}
            assert len(seen) == (2 if route in routes_moved else 1), (route, seen)


def test_students_on_a_killed_replica_move_to_the_other_and_its_students_carry_on(replicas, tmp_path: Path):
    served, runs_folder = replicas
    a, b = (replica.address for replica in served.replicas)
    routes = _routes(served.url, [a, b], SESSIONS_PER_REPLICA)
    students = [(replica, routes[replica][i]) for i in range(SESSIONS_PER_REPLICA) for replica in (a, b)]
    looks = [SESSIONS[i % len(SESSIONS)] for i in range(len(students))]
    images = {i: tmp_path / f"student-{i}.png" for i in range(len(students))}
    expected = {}
    for i, look in enumerate(looks):
        images[i].write_bytes(_png(100 + i))
        expected[i] = _expected(look.build(), images[i].read_bytes())
    room = TwoReplicaClass(served)

    async def student(browser, i: int):
        replica, route = students[i]
        context, page = await room.tab(browser, f"student-{i}", route)
        main = page.locator('[data-testid="stMain"]')
        await page.goto(f"{served.url}/grad-cam?{looks[i].query}")
        await main.get_by_text("Score of '").first.wait_for()
        await wait_idle(page)
        await choose_upload(page, main)
        with room.classroom.timed("upload to its Grad-CAM"):
            await main.locator('[data-testid="stFileUploaderDropzoneInput"]').set_input_files(str(images[i]))
            deadline = time.monotonic() + 180
            while True:  # the sample photo's result stays until the upload's run has drawn
                shown = await read_result(main)
                if shown[0] == expected[i].top1 or time.monotonic() > deadline:
                    break
                await page.wait_for_timeout(250)
        assert shown[0] == expected[i].top1, (i, shown, expected[i].top1)
        assert await page.locator('[data-testid="stException"]').count() == 0
        return page, shown

    async def lesson(browser):
        pages = await asyncio.gather(*(student(browser, i) for i in range(len(students))))
        room.kill_a()
        on_a = [p for (p, _), (replica, _) in zip(pages, students, strict=True) if replica == a]
        on_b = [(p, shown) for (p, shown), (replica, _) in zip(pages, students, strict=True) if replica == b]
        await room.ended_notices(on_a, tmp_path)
        notices = {}
        for i, (page, _) in enumerate(pages):
            if students[i][0] != a:
                continue
            main = page.locator('[data-testid="stMain"]')
            notices[i] = await main.locator('[data-testid="stAlert"]').filter(has_text="earlier session").inner_text()
            assert "Grad-CAM" in await main.locator("h1").first.inner_text()
            assert looks[i].query in page.url  # the link's settings, kept by the fresh session
            assert "arch=" + looks[i].arch in page.url and await page.locator('[data-testid="stException"]').count() == 0
        assert all(ENDED_SENTENCE in text for text in notices.values()), notices
        # B's sessions: untouched (no reconnection, same result), and a click still answered.
        for page, shown in on_b:
            main = page.locator('[data-testid="stMain"]')
            assert await page.evaluate("window.__ended") is None
            assert await read_result(main) == shown
        page, shown = on_b[0]
        main = page.locator('[data-testid="stMain"]')
        radio = main.locator('[data-testid="stRadio"]').filter(has_text="Explain class")
        await radio.locator('[data-testid="stRadioOption"]').nth(1).click()  # the top-5's second class
        await page.wait_for_function("(before) => !document.body.innerText.includes(before)",
                                     arg=f"Score of '{shown[1]}'", timeout=120_000)
        await wait_idle(page)
        assert (await read_result(main))[0] == shown[0]  # the same upload, another class explained
        for page, _ in pages:
            await room.classroom.finish(page)

    room.classroom.run(lesson)
    cores = os.cpu_count() or 1
    print(f"{len(students)} sessions on 2 replicas, {cores} cores ({len(students) / cores:g} per core), uploads at "
          f"once: {_percentiles(room.classroom.latency['upload to its Grad-CAM'])}")
    moved = {f"student-{i}" for i, (replica, _) in enumerate(students) if replica == a}
    room.check_requests({f"student-{i}": replica for i, (replica, _) in enumerate(students)}, moved,
                        {route for (replica, route) in students if replica == a})
    # What the killed replica wrote (uploads, caches) is whole, and no race slot was left taken.
    assert runs.registry_for(runs_folder).busy() is None
    _whole_runs_folder(runs_folder)


def test_a_race_is_one_across_replicas_and_interrupted_with_its_replica(replicas, tmp_path: Path):
    served, runs_folder = replicas
    a, b = (replica.address for replica in served.replicas)
    routes = _routes(served.url, [a, b], 1)
    room = TwoReplicaClass(served)

    async def progress(page) -> str:
        return await page.locator('[data-testid="stProgress"]').inner_text()

    async def lesson(browser):
        # A race from replica A, watched and paused from replica B.
        a_page, a_main = await room.training(browser, routes[a][0], "trainer-a")
        width = a_main.get_by_role("spinbutton", name="Width (channels of the first stage)")
        await width.fill("4")
        await width.press("Enter")
        await wait_idle(a_page)
        await a_main.get_by_role("button", name="Start", exact=True).click()
        await a_page.wait_for_function("() => /step [1-9]\\d* of/.test(document.querySelector("
                                       "'[data-testid=\"stProgress\"]')?.innerText || '')", timeout=180_000)
        b_page, b_main = await room.training(browser, routes[b][0], "trainer-b")
        await b_page.get_by_text(re.compile(r"step \d+ of \d+ · running")).wait_for(timeout=60_000)
        assert await b_main.get_by_role("button", name="Start", exact=True).is_disabled()  # one race, two replicas
        busy = await b_main.locator('[data-testid="stAlert"]').filter(has_text="one race trains at a time").inner_text()
        assert "(started by the Training page) is training" in busy
        await b_main.get_by_role("button", name="Pause", exact=True).click()
        await b_page.get_by_text(re.compile(r"· paused ·")).wait_for(timeout=60_000)
        await wait_idle(b_page)
        await a_page.keyboard.press("r")  # replica A's own page sees the pause too
        await a_page.get_by_text(re.compile(r"· paused ·")).wait_for(timeout=60_000)
        run_id = runs.registry_for(runs_folder).holder().run_id
        paused_at = int(re.search(r"step (\d+) of", await progress(b_page)).group(1))

        room.kill_a()
        await room.ended_notices([a_page], tmp_path)
        assert await a_page.locator('[data-testid="stException"]').count() == 0
        # The race of the killed replica: interrupted for every page, the slot free again.
        await b_page.keyboard.press("r")
        await b_page.get_by_text(re.compile(r"· interrupted ·")).wait_for(timeout=60_000)
        await wait_idle(b_page)
        assert await b_main.get_by_role("button", name="Start", exact=True).is_enabled()
        assert await b_page.evaluate("window.__ended") is None  # B's own page never reconnected
        for page in (a_page, b_page):
            await room.classroom.finish(page)
        return run_id, paused_at

    run_id, paused_at = room.classroom.run(lesson)
    room.check_requests({"trainer-a": a, "trainer-b": b}, {"trainer-a"}, {routes[a][0]})
    record = runs.load_run(run_id, runs_folder)
    assert record.status == "interrupted" and record.snapshot().step >= paused_at
    assert runs.registry_for(runs_folder).busy() is None
    files = _whole_runs_folder(runs_folder)
    assert any(p.name == "metrics.jsonl" for p in files) and any(p.name == "config.json" for p in files)
