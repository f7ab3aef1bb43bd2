"""The lesson's measurements kept on disk (resnet_core/lesson/store.py): made once per machine, found only by
everything the numbers depend on, and never trusted when damaged.

Each test measures in a folder of its own (the suite's shared folder, tests/conftest.py, would answer from
another test's entries). The measurements are the demo pair's, at small sizes."""

from __future__ import annotations

import copy
import logging
import os
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

import resnet_core.landscape as landscape_module
from resnet_core import lesson
from resnet_core.settings import CACHE_ENV, cache_dir

pytestmark = pytest.mark.skipif(not lesson.demo_pair_ready(), reason="the embedded demo models are not installed")


@pytest.fixture
def folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "measurements"))
    return tmp_path / "measurements"


@pytest.fixture
def surfaces_measured(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """How many landscape surfaces were measured in this process (a spy around the real ``surface``)."""
    calls: list[int] = []
    real = landscape_module.surface

    def counted(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(landscape_module, "surface", counted)
    return calls


def _fresh(pair: lesson.TrainedPair, models: dict | None = None) -> lesson.TrainedPair:
    """Another pair object, as the next process loads it: nothing remembered in memory."""
    return lesson.TrainedPair("another", models or pair.models, pair.accuracy, pair.image_size, pair.classes,
                              pair.accuracy_images)


def _batch(pair: lesson.TrainedPair, n: int = 8) -> tuple[torch.Tensor, torch.Tensor]:
    x, y = lesson.shapes_batch("train", n, pair.image_size)[:2]
    return x, y


def _entries(folder: Path) -> list[Path]:
    return sorted(folder.glob("*.npz"))


def test_the_next_process_reads_the_numbers_instead_of_measuring(folder: Path, surfaces_measured: list[int]) -> None:
    demo = lesson.load_pair(lesson.DEMO_PAIR)
    x, y = _batch(demo)
    first = _fresh(demo)
    assert not lesson.landscape_kept(first, x, y, steps=3)  # what the page says before it measures
    surfaces, lines = lesson.landscape_pair(first, x, y, steps=3)
    assert lesson.landscape_kept(first, x, y, steps=3) and lesson.landscape_kept(_fresh(demo), x, y, steps=3)
    assert not lesson.landscape_kept(first, x, y, steps=5) and not lesson.landscape_kept(first, x, y, steps=3,
                                                                                         seed=1)
    studies, curves = lesson.lesion_pair(first, x, y, max_removed=2, samples=2)
    assert cache_dir() == folder
    assert len(_entries(folder)) == 2 and len(surfaces_measured) == 2  # one entry per step, one surface per net
    assert set(surfaces["net"]) == set(lesson.PAIR_LABELS) and len(surfaces) == 2 * 3 * 3

    later = _fresh(demo)
    again = lesson.landscape_pair(later, x, y, steps=3) + lesson.lesion_pair(later, x, y, max_removed=2, samples=2)
    assert len(surfaces_measured) == 2  # read, not measured
    for kept, read in zip((surfaces, lines, studies, curves), again, strict=True):
        pd.testing.assert_frame_equal(kept, read, check_exact=True)  # every value, dtype and column name

    # Another grid, another batch or other weights are other measurements.
    lesson.landscape_pair(_fresh(demo), x, y, steps=2)
    lesson.landscape_pair(_fresh(demo), x.flip(0), y.flip(0), steps=3)
    assert len(surfaces_measured) == 6 and len(_entries(folder)) == 4
    nudged = copy.deepcopy(demo.models)
    with torch.no_grad():
        nudged["ResNet-20"].fc.bias[0] += 1e-3
    other = lesson.landscape_pair(_fresh(demo, nudged), x, y, steps=3)[0]
    assert len(surfaces_measured) == 8 and len(_entries(folder)) == 5
    residual = other["net"] == "ResNet-20"
    assert not np.array_equal(other[residual]["loss"].to_numpy(), surfaces[residual]["loss"].to_numpy())


class _Trap:
    """Unpickling it writes a file: proof that code from an entry ran."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self):
        return (Path(self.path).write_text, ("ran",))


@pytest.mark.parametrize("damage", ["garbage", "truncated", "pickled object column"])
def test_a_damaged_entry_is_measured_again_and_replaced(folder: Path, surfaces_measured: list[int],
                                                        damage: str) -> None:
    demo = lesson.load_pair(lesson.DEMO_PAIR)
    x, y = _batch(demo)
    kept = lesson.landscape_pair(_fresh(demo), x, y, steps=3)
    (entry,) = _entries(folder)
    if damage == "garbage":
        entry.write_bytes(b"not an npz file at all")
    elif damage == "truncated":
        entry.write_bytes(entry.read_bytes()[:200])
    else:  # an object that runs code when unpickled: never unpickled (allow_pickle=False), measured again
        np.savez(entry, layout=np.array([_Trap(str(folder / "trap-ran"))], dtype=object))
    measured = lesson.landscape_pair(_fresh(demo), x, y, steps=3)
    assert not (folder / "trap-ran").exists()
    assert len(surfaces_measured) == 4  # measured again...
    for a, b in zip(kept, measured, strict=True):
        pd.testing.assert_frame_equal(a, b)
    lesson.landscape_pair(_fresh(demo), x, y, steps=3)
    assert len(surfaces_measured) == 4  # ...and the entry replaced by a readable one


def test_a_folder_that_cannot_be_written_keeps_the_numbers_in_memory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                     surfaces_measured: list[int],
                                                                     caplog: pytest.LogCaptureFixture) -> None:
    not_a_folder = tmp_path / "a-file"
    not_a_folder.write_text("the cache setting names a file")
    monkeypatch.setenv(CACHE_ENV, str(not_a_folder))
    demo = lesson.load_pair(lesson.DEMO_PAIR)
    x, y = _batch(demo)
    pair = _fresh(demo)
    with caplog.at_level(logging.WARNING, logger="resnet_core.lesson.store"):
        surfaces = lesson.landscape_pair(pair, x, y, steps=3)[0]
        lesson.landscape_pair(pair, x, y, steps=3)  # the pair object still remembers
    assert len(surfaces) == 18 and len(surfaces_measured) == 2
    assert not_a_folder.read_text() == "the cache setting names a file"
    assert any("cannot be kept in" in r.getMessage() and CACHE_ENV in r.getMessage() for r in caplog.records)


def test_a_result_that_is_not_plain_frames_is_returned_and_not_kept(folder: Path) -> None:
    pair = _fresh(lesson.load_pair(lesson.DEMO_PAIR))
    x = torch.arange(4.0)
    assert pair.remember("a dict", lambda: {"loss": 1.0}, (x,)) == {"loss": 1.0}
    indexed = (pd.DataFrame({"loss": [1.0, 2.0]}, index=[5, 6]),)  # an index the entry cannot hold
    assert pair.remember("an index", lambda: indexed, (x,))[0].index.tolist() == [5, 6]
    tagged = pd.DataFrame({"loss": [1.0]})
    tagged.attrs["model"] = torch.nn.Identity()  # attrs JSON cannot hold
    assert isinstance(pair.remember("attrs", lambda: (tagged,), (x,))[0].attrs["model"], torch.nn.Identity)
    assert _entries(folder) == []


def test_two_measuring_at_once_measure_once(folder: Path) -> None:
    """The second asks while the first is measuring (it starts once the first's measurement has begun, which
    then lasts another second): it waits on the entry's lock, then reads the first's entry. Threads here; the
    lock is an flock on its own open file, which conflicts between threads as it does between processes."""
    demo = lesson.load_pair(lesson.DEMO_PAIR)
    measuring = threading.Event()
    measured: list[str] = []

    def measure(who: str) -> tuple[pd.DataFrame]:
        measured.append(who)
        measuring.set()
        time.sleep(1.0)
        return (pd.DataFrame({"net": [who], "loss": [1.0]}),)

    results: dict[str, tuple[pd.DataFrame]] = {}

    def ask(who: str) -> None:
        results[who] = _fresh(demo).remember("slow", lambda: measure(who), (torch.zeros(1),))

    first = threading.Thread(target=ask, args=("first",))
    first.start()
    assert measuring.wait(timeout=30)
    second = threading.Thread(target=ask, args=("second",))
    second.start()
    first.join()
    second.join()
    assert measured == ["first"] and len(_entries(folder)) == 1
    pd.testing.assert_frame_equal(results["second"][0], results["first"][0], check_exact=True)
    assert results["second"][0]["net"].tolist() == ["first"]


def test_the_page_asks_whether_a_step_is_kept_without_waiting_for_a_measurement(folder: Path) -> None:
    """``kept`` answers while the same pair object measures something else (step 7 in another session)."""
    pair = _fresh(lesson.load_pair(lesson.DEMO_PAIR))
    inside, release = threading.Event(), threading.Event()

    def long_measurement() -> tuple[pd.DataFrame]:
        inside.set()
        release.wait(timeout=30)
        return (pd.DataFrame({"loss": [1.0]}),)

    thread = threading.Thread(target=pair.remember, args=("long", long_measurement, (torch.zeros(1),)))
    thread.start()
    try:
        assert inside.wait(timeout=30)
        answered: list[bool] = []
        asking = threading.Thread(target=lambda: answered.append(pair.kept("other", (torch.ones(1),))))
        asking.start()
        asking.join(timeout=10)
        assert answered == [False], "kept() waited for the measurement in progress"
    finally:
        release.set()
        thread.join()
    assert pair.kept("long", (torch.zeros(1),))


def test_what_the_key_holds_beyond_the_weights(folder: Path) -> None:
    """The label (it is in the frames), the module tree (a stride the state dict does not show), the inputs'
    dtype, and settings that are plain values; anything else is remembered in memory only."""
    import resnet_core

    one = pd.DataFrame({"loss": [1.0]})

    def measured_by(models: dict, tensors: tuple, **settings) -> bool:
        pair = lesson.TrainedPair("x", models, {}, 32, 10, 1)
        calls: list[int] = []
        pair.remember("step", lambda: calls.append(1) or (one,), tensors, **settings)
        return bool(calls)

    three = {"ResNet-50": resnet_core.build("resnet50", seed=0, stride_on="3x3")}
    one_by_one = {"ResNet-50": resnet_core.build("resnet50", seed=0, stride_on="1x1")}
    assert three["ResNet-50"].state_dict().keys() == one_by_one["ResNet-50"].state_dict().keys()
    x = torch.zeros(2)
    assert measured_by(three, (x,)) and not measured_by(three, (x,))
    assert measured_by(one_by_one, (x,))  # the same weights' names and shapes, another forward
    assert measured_by({"Another name": three["ResNet-50"]}, (x,))
    assert measured_by(three, (x.double(),))
    assert measured_by(three, (x,), grid=object()) and measured_by(three, (x,), grid=object())  # memory only
    assert len(_entries(folder)) == 4


def test_only_what_reads_back_exactly_is_kept_and_only_its_own_files_are_pruned(folder: Path,
                                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    from resnet_core.lesson import store

    pair = _fresh(lesson.load_pair(lesson.DEMO_PAIR))
    with_missing = (pd.DataFrame({"ok": pd.array([True, None], dtype="boolean")}),)  # would need pickle to store
    assert pair.remember("nullable", lambda: with_missing, (torch.zeros(1),))[0]["ok"].isna().tolist() == [
        False, True]
    tuple_attrs = pd.DataFrame({"loss": [1.0]})
    tuple_attrs.attrs["range"] = (0, 1)  # JSON would bring it back as a list
    pair.remember("attrs", lambda: (tuple_attrs,), (torch.zeros(1),))
    assert _entries(folder) == []
    folder.mkdir(parents=True, exist_ok=True)
    foreign = [folder / "race.lock", folder / "notes.npz"]
    for path in foreign:
        path.write_text("not the store's")
        os.utime(path, (0, 0))  # old enough to look abandoned
    monkeypatch.setattr(store, "MAX_ENTRIES", 1)
    for i in range(3):
        pair.remember("kept", lambda: (pd.DataFrame({"loss": [1.0]}),), (torch.tensor([float(i)]),))
    assert all(path.read_text() == "not the store's" for path in foreign)
    assert len([p for p in _entries(folder) if p not in foreign]) == 1


def test_other_measurements_go_on_while_one_is_measured(folder: Path) -> None:
    """One lock per entry: a long measurement (an uploaded net on one replica) holds up only those waiting for
    the same numbers. Each measurement here waits until the other has started: under one lock for the whole
    folder the first would wait in vain."""
    demo = lesson.load_pair(lesson.DEMO_PAIR)
    started = {name: threading.Event() for name in ("first", "second")}
    met: dict[str, bool] = {}

    def measure(name: str, other: str) -> tuple[pd.DataFrame]:
        started[name].set()
        met[name] = started[other].wait(timeout=30)
        return (pd.DataFrame({"net": [name], "loss": [1.0]}),)

    # Two pair objects, as two replicas hold them (one object measures one thing at a time in memory).
    threads = [threading.Thread(target=_fresh(demo).remember, args=(name, lambda n=name, o=other: measure(n, o),
                                                                    (torch.zeros(1),)))
               for name, other in (("first", "second"), ("second", "first"))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert met == {"first": True, "second": True}
    assert len(_entries(folder)) == 2


def test_the_folder_keeps_the_most_recently_used_entries(folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from resnet_core.lesson import store

    monkeypatch.setattr(store, "MAX_ENTRIES", 3)
    pair = _fresh(lesson.load_pair(lesson.DEMO_PAIR))
    frames = [(pd.DataFrame({"step": [i], "net": ["Plain-20"], "residual": [False]}),) for i in range(5)]
    for i, (frame,) in enumerate(frames):
        frame.attrs["note"] = f"entry {i}"  # a frame's attrs travel with it (the depth sweep's budget note)
    for i in range(5):
        pair.remember("tiny", lambda i=i: frames[i], (torch.tensor([float(i)]),))
    assert len(_entries(folder)) == 3
    assert {p.stem for p in folder.glob("*.lock")} <= {p.stem for p in _entries(folder)}  # no orphan locks
    later = _fresh(pair)
    for i in (2, 3, 4):  # the newest three are read back, exactly
        read = later.remember("tiny", lambda: pytest.fail("measured again"), (torch.tensor([float(i)]),))
        pd.testing.assert_frame_equal(read[0], frames[i][0], check_exact=True)
        assert read[0].attrs == {"note": f"entry {i}"}
