"""The heavy-job queue: strict arrival order, positions reported, the limit held, slots given back on errors."""

from __future__ import annotations

import threading
import time

import pytest

from resnet_core import job_queue
from resnet_core.job_queue import HeavyJobsError, HeavyQueue, default_limit, ordinal, queue_message, reporting


def _wait_until(predicate, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.005)


def test_waiters_run_in_arrival_order_and_see_their_positions() -> None:
    queue = HeavyQueue(1, report_every=0.05)
    gate = threading.Event()
    order: list[int] = []
    positions: dict[int, list[tuple[int, int]]] = {i: [] for i in range(5)}

    def holder() -> None:
        with queue.slot("holder"):
            gate.wait()

    def job(i: int) -> None:
        with queue.slot(f"job{i}", on_wait=lambda pos, running: positions[i].append((pos, running))):
            order.append(i)

    first = threading.Thread(target=holder)
    first.start()
    _wait_until(lambda: queue.snapshot().running == ("holder",))
    threads = []
    for i in range(5):  # each joins the line only after the previous one is in it: a known arrival order
        thread = threading.Thread(target=job, args=(i,))
        thread.start()
        threads.append(thread)
        _wait_until(lambda i=i: len(queue.snapshot().waiting) == i + 1)
    assert queue.snapshot().waiting == tuple(f"job{i}" for i in range(5))
    _wait_until(lambda: all(positions[i] for i in range(5)))
    gate.set()
    for thread in [first, *threads]:
        thread.join(timeout=10)
    assert order == [0, 1, 2, 3, 4]
    # Each waiter was first told its place behind the one running job, and only moved forward.
    for i in range(5):
        assert positions[i][0] == (i + 1, 1)
        seen = [pos for pos, _ in positions[i]]
        assert seen == sorted(seen, reverse=True)
        assert all(running <= 1 for _, running in positions[i])  # 0 in the instant a slot changes hands
    assert queue.snapshot() == job_queue.QueueSnapshot(1, (), ())


def test_limit_is_respected_under_contention() -> None:
    queue = HeavyQueue(3)
    lock = threading.Lock()
    active, peak, done = [0], [0], [0]

    def job() -> None:
        with queue.slot("job"):
            with lock:
                active[0] += 1
                peak[0] = max(peak[0], active[0])
            time.sleep(0.01)
            with lock:
                active[0] -= 1
                done[0] += 1

    threads = [threading.Thread(target=job) for _ in range(24)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=20)
    assert done[0] == 24
    assert peak[0] == 3  # all three slots were used, never a fourth


def test_slot_is_released_when_the_block_raises() -> None:
    queue = HeavyQueue(1)
    with pytest.raises(KeyError):
        with queue.slot("fails"):
            raise KeyError("boom")
    assert queue.snapshot().running == ()
    with queue.slot("next"):  # would block forever if the failed job had kept its slot
        assert queue.snapshot().running == ("next",)


def test_a_waiter_whose_callback_raises_leaves_the_line() -> None:
    """A page stopped while queued raises from its callback: its place is given up, the others move on."""
    queue = HeavyQueue(1, report_every=0.05)
    gate = threading.Event()
    results: list[str] = []

    def holder() -> None:
        with queue.slot("holder"):
            gate.wait()

    def impatient() -> None:
        def leave(position: int, running: int) -> None:
            raise TimeoutError("the session was closed")
        try:
            with queue.slot("impatient", on_wait=leave):
                results.append("impatient ran")
        except TimeoutError:
            results.append("impatient left")

    first = threading.Thread(target=holder)
    first.start()
    _wait_until(lambda: queue.snapshot().running == ("holder",))
    second = threading.Thread(target=impatient)
    second.start()
    second.join(timeout=10)
    assert results == ["impatient left"]
    assert queue.snapshot().waiting == ()
    gate.set()
    first.join(timeout=10)
    with queue.slot("after"):
        assert queue.snapshot().running == ("after",)


def test_nested_slots_on_one_thread_do_not_wait_for_themselves() -> None:
    queue = HeavyQueue(1)
    with queue.slot("outer"):
        with queue.slot("inner"):
            assert queue.snapshot().running == ("outer",)
        assert queue.snapshot().running == ("outer",)
    assert queue.snapshot().running == ()


def test_ambient_reporter_hears_about_waits_inside_the_block() -> None:
    queue = HeavyQueue(1, report_every=0.05)
    gate = threading.Event()
    heard: list[tuple[int, int]] = []

    def holder() -> None:
        with queue.slot("holder"):
            gate.wait()

    def waiter() -> None:
        with reporting(lambda pos, running: heard.append((pos, running))):
            with queue.slot("quiet"):  # names no callback itself
                pass

    first = threading.Thread(target=holder)
    first.start()
    _wait_until(lambda: queue.snapshot().running == ("holder",))
    second = threading.Thread(target=waiter)
    second.start()
    _wait_until(lambda: bool(heard))
    gate.set()
    first.join(timeout=10)
    second.join(timeout=10)
    assert heard[0] == (1, 1)


def test_limit_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(job_queue.ENV_VAR, "3")
    assert default_limit() == 3
    for bad in ("zero", "0", "-2", "1000"):
        monkeypatch.setenv(job_queue.ENV_VAR, bad)
        with pytest.raises(HeavyJobsError, match=job_queue.ENV_VAR):
            default_limit()
    monkeypatch.delenv(job_queue.ENV_VAR)
    assert default_limit() >= 1
    with pytest.raises(HeavyJobsError):
        HeavyQueue(0)


def test_queue_message_wording() -> None:
    assert [ordinal(n) for n in (1, 2, 3, 4, 11, 12, 13, 21, 22, 23, 101, 111)] == [
        "1st", "2nd", "3rd", "4th", "11th", "12th", "13th", "21st", "22nd", "23rd", "101st", "111th"]
    assert queue_message(3, 2) == "Queued: 3rd in line (2 jobs running)"
    assert queue_message(1, 1) == "Queued: 1st in line (1 job running)"


def test_side_by_side_runs_each_piece_on_one_thread_and_gives_the_count_back():
    import torch

    from resnet_core.job_queue import one_thread_each, side_by_side

    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        seen = []

        def piece(n: int):
            def run() -> int:
                seen.append((n, torch.get_num_threads(), threading.current_thread().name))
                return n * n
            return run

        assert side_by_side([piece(n) for n in range(4)]) == [0, 1, 4, 9]  # in the order given
        assert torch.get_num_threads() == 2
        assert {count for _, count, _ in seen} == {1}
        assert seen[0][0] in (0, 1) and len({name for _, _, name in seen}) == 2  # the caller and one worker
        assert [n for n, _, name in seen if name == threading.current_thread().name][0] == 0  # first: the caller
        # Holders at the same time share one saved count: the last one out restores it.
        outer = one_thread_each()
        outer.__enter__()
        with one_thread_each():
            assert torch.get_num_threads() == 1
        assert torch.get_num_threads() == 1
        outer.__exit__(None, None, None)
        assert torch.get_num_threads() == 2
        # One piece, or one thread: one after the other, in the calling thread.
        assert side_by_side([piece(5)]) == [25]

        def broken() -> int:
            raise ValueError("this piece failed")

        with pytest.raises(ValueError, match="this piece failed"):
            side_by_side([piece(1), broken])
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)
