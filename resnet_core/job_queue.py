"""A process-wide, first-come-first-served limit on concurrent heavy jobs.

One server is shared by a classroom: thirty sessions asking for Grad-CAM, activations or gradient flow at
the same moment would each start torch work, and on a two-core laptop they would all crawl (and together
hold thirty models' worth of activations). ``heavy_slot`` lets ``limit`` jobs run at once; the others wait
in a queue, in arrival order, and learn their position through a callback so a page can say
"Queued: 3rd in line (1 job running)".

    with heavy_slot("Grad-CAM", on_wait=lambda position, running: print(position, running)):
        explanation = cam.explain(...)

A thread that already holds a slot enters nested ``heavy_slot`` blocks freely (a cached computation that
calls another one must not wait for itself). The limit comes from ``RESNET_EXPLORER_HEAVY_JOBS``, else half
the CPUs this process may use (at least one): torch already spreads one job over the cores, so more
concurrent jobs only share the same cores and multiply the memory held.
"""

from __future__ import annotations

import contextlib
import contextvars
import itertools
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TypeVar

ENV_VAR = "RESNET_EXPLORER_HEAVY_JOBS"
MAX_LIMIT = 64

# on_wait(position, running): position 1 means "next in line"; running is the number of jobs holding a slot.
WaitCallback = Callable[[int, int], None]

__all__ = [
    "ENV_VAR",
    "HeavyJobsError",
    "HeavyQueue",
    "QueueSnapshot",
    "default_limit",
    "heavy_queue",
    "heavy_slot",
    "one_thread_each",
    "ordinal",
    "queue_message",
    "reporting",
    "side_by_side",
]


class HeavyJobsError(ValueError):
    """The configured number of concurrent heavy jobs is not a usable number."""


@dataclass(frozen=True)
class QueueSnapshot:
    """What the queue holds right now: its limit, the labels running and the labels waiting (in order)."""

    limit: int
    running: tuple[str, ...]
    waiting: tuple[str, ...]


def default_limit() -> int:
    """``RESNET_EXPLORER_HEAVY_JOBS`` if set, else half the usable CPUs (at least 1)."""
    raw = os.environ.get(ENV_VAR, "").strip()
    if raw:
        try:
            value = int(raw)
        except ValueError:
            value = 0
        if not 1 <= value <= MAX_LIMIT:
            raise HeavyJobsError(f"{ENV_VAR}={raw[:20]!r} is not a whole number from 1 to {MAX_LIMIT}; "
                                 f"set it to how many heavy jobs may run at once (e.g. 2) or unset it.")
        return value
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cpus = os.cpu_count() or 2
    return max(1, cpus // 2)


def ordinal(n: int) -> str:
    """1 -> '1st', 2 -> '2nd', 11 -> '11th', 23 -> '23rd'."""
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def queue_message(position: int, running: int) -> str:
    """The sentence a page shows while a request waits, e.g. 'Queued: 3rd in line (2 jobs running)'."""
    jobs = "job" if running == 1 else "jobs"
    return f"Queued: {ordinal(position)} in line ({running} {jobs} running)"


class HeavyQueue:
    """A bounded semaphore that admits waiters strictly in arrival order and reports their positions."""

    def __init__(self, limit: int, *, report_every: float = 1.0) -> None:
        if not isinstance(limit, int) or limit < 1:
            raise HeavyJobsError(f"A heavy-job limit must be a whole number of at least 1, not {limit!r}.")
        self.limit = limit
        # Waiters are re-told their position at least this often, so a UI can refresh (and a session that was
        # stopped meanwhile can leave the queue by raising from its callback).
        self.report_every = report_every
        self._cond = threading.Condition()
        self._waiting: deque[tuple[int, str]] = deque()
        self._running: dict[int, str] = {}
        self._tickets = itertools.count()
        self._held = threading.local()  # per thread: how deep inside a slot it is

    def snapshot(self) -> QueueSnapshot:
        with self._cond:
            return QueueSnapshot(self.limit, tuple(self._running.values()), tuple(label for _, label in self._waiting))

    def _position(self, ticket: int) -> int:
        for index, (other, _) in enumerate(self._waiting):
            if other == ticket:
                return index + 1
        raise RuntimeError("a waiting ticket vanished from the heavy-job queue")  # cannot happen: we own it

    @contextlib.contextmanager
    def slot(self, label: str = "", on_wait: WaitCallback | None = None) -> Iterator[None]:
        """Hold one of ``limit`` slots for the block; wait in line first if all are taken."""
        depth = getattr(self._held, "depth", 0)
        if depth:  # already inside a slot on this thread: nested work is part of the same job
            self._held.depth = depth + 1
            try:
                yield
            finally:
                self._held.depth = depth
            return
        report = on_wait if on_wait is not None else _REPORTER.get()
        ticket = next(self._tickets)
        with self._cond:
            self._waiting.append((ticket, label))
        try:
            last: tuple[int, int] | None = None
            last_time = 0.0
            while True:
                with self._cond:
                    if self._waiting[0][0] == ticket and len(self._running) < self.limit:
                        self._waiting.popleft()
                        self._running[ticket] = label
                        # The next in line may also fit (several slots freed at once).
                        self._cond.notify_all()
                        break
                    state = (self._position(ticket), len(self._running))
                    if state == last and time.monotonic() - last_time < self.report_every:
                        self._cond.wait(timeout=self.report_every)
                        continue
                # The callback runs outside the lock: a slow page update never blocks the queue.
                last, last_time = state, time.monotonic()
                if report is not None:
                    report(*state)
        except BaseException:
            with self._cond:
                if ticket not in self._running:
                    self._waiting = deque(item for item in self._waiting if item[0] != ticket)
                    self._cond.notify_all()
            raise
        self._held.depth = 1
        try:
            yield
        finally:
            self._held.depth = 0
            with self._cond:
                del self._running[ticket]
                self._cond.notify_all()


_REPORTER: contextvars.ContextVar[WaitCallback | None] = contextvars.ContextVar("heavy_reporter", default=None)
_QUEUE: HeavyQueue | None = None
_QUEUE_LOCK = threading.Lock()


def heavy_queue() -> HeavyQueue:
    """The process-wide queue (created on first use with ``default_limit()``)."""
    global _QUEUE
    with _QUEUE_LOCK:
        if _QUEUE is None:
            _QUEUE = HeavyQueue(default_limit())
        return _QUEUE


def heavy_slot(label: str = "", on_wait: WaitCallback | None = None) -> contextlib.AbstractContextManager[None]:
    """Hold one of the process-wide heavy-job slots for a ``with`` block.

    ``on_wait(position, running)`` is called while waiting: when the position changes and at least every
    second. Without one, the reporter installed by ``reporting`` on this thread (if any) is told instead.
    An exception (from the block or from the callback) always gives the slot or the place in line back.
    """
    return heavy_queue().slot(label, on_wait)


@contextlib.contextmanager
def reporting(on_wait: WaitCallback) -> Iterator[None]:
    """Tell ``on_wait`` about every ``heavy_slot`` entered inside this block that names no callback itself.

    Lets a page announce the queue for work that happens deep inside a cached function."""
    token = _REPORTER.set(on_wait)
    try:
        yield
    finally:
        _REPORTER.reset(token)


# ------------------------------------------------------------------------------------- work side by side
T = TypeVar("T")
_THREADS_LOCK = threading.Lock()
_threads_holders = 0
_threads_before = 1


@contextlib.contextmanager
def one_thread_each() -> Iterator[None]:
    """torch on one thread per op while independent pieces of work run side by side, each in a thread of its
    own; the thread count comes back when the last holder leaves.

    Small nets split op by op over a team of threads wait on the team at every op (thousands a step; with
    OMP_WAIT_POLICY=PASSIVE each wait is a sleep and a wake-up), so two nets on one thread each beat two nets
    one after the other on two threads (measured: a 56-layer race step 230 -> 74-95 ms). torch's count is one
    setting of the whole process, so holders at the same time (a race training beside a lesson's landscape)
    share one saved count and one restore."""
    import torch

    global _threads_holders, _threads_before
    with _THREADS_LOCK:
        if _threads_holders == 0:
            _threads_before = torch.get_num_threads()
            torch.set_num_threads(1)
        _threads_holders += 1
    try:
        yield
    finally:
        with _THREADS_LOCK:
            _threads_holders -= 1
            if _threads_holders == 0:
                torch.set_num_threads(_threads_before)


def side_by_side(work: Sequence[Callable[[], T]]) -> list[T]:
    """Independent pieces of torch work at once, one thread each, when torch has several threads and there are
    several pieces; one after the other (every thread on each) otherwise. Results in the order given. The first
    piece runs in the calling thread, so what it reports (a page's progress bar) is reported from there."""
    import torch

    threads = torch.get_num_threads()
    if len(work) < 2 or threads < 2:
        return [piece() for piece in work]
    with one_thread_each(), ThreadPoolExecutor(min(len(work) - 1, threads - 1),
                                               thread_name_prefix="side-by-side") as pool:
        others = [pool.submit(piece) for piece in work[1:]]
        first = work[0]()
        return [first, *(future.result() for future in others)]
