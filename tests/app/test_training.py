"""The Training race page through the real app (AppTest): presets, Start -> live update -> Stop, errors."""

from __future__ import annotations

import base64
import json
import os
import re
import time
from pathlib import Path

import numpy as np
import pytest

from resnet_core import lesson
from resnet_core.cli import train_main
from resnet_core.runs import list_runs, load_run, race_title
from resnet_core.settings import runs_dir
from resnet_core.train import PRESETS, RaceConfig, RacerSpec
from tests.app.conftest import open_page

PAGE = "../pages/training.py"


@pytest.fixture
def page(revealed_app):
    return open_page(revealed_app, PAGE)


def _runs_dir() -> Path:
    return Path(os.environ["RESNET_EXPLORER_RUNS"])


def _run_folders() -> set[Path]:
    """The run folders (the runs folder also holds the race slot's lock file while a race trains)."""
    return {p for p in _runs_dir().iterdir() if p.is_dir()} if _runs_dir().exists() else set()


def _step_lines(run: Path) -> int:
    path = run / "metrics.jsonl"
    return sum('"kind": "step"' in line for line in path.read_text().splitlines()) if path.exists() else 0


def _rerun_after_steps(page, run: Path, steps: int = 8) -> None:
    """The fragment's timer never fires in AppTest: poll the job's log on disk until ``steps`` steps are written
    (two minutes at most), then rerun the page."""
    deadline = time.monotonic() + 120
    while _step_lines(run) < steps and time.monotonic() < deadline:
        time.sleep(0.3)
    page.run()


def _figures(app) -> list[dict]:
    return [json.loads(chart.proto.spec) for chart in app.get("plotly_chart")]


def _values(array) -> list:
    """A trace's x/y as a list: Plotly 7 sends numeric arrays as {"dtype", "bdata" (base64)}."""
    if isinstance(array, dict) and "bdata" in array:
        return np.frombuffer(base64.b64decode(array["bdata"]), dtype=np.dtype(array["dtype"])).tolist()
    return list(array)


def _button(app, key: str):
    return next(b for b in app.button if b.key == key)


def test_presets_and_their_defaults(page):
    assert page.title[0].value == "Training race"
    race = page.selectbox(key="tr_preset")
    assert race.options == [*PRESETS, "Custom race"] and race.value == "Plain-20 vs ResNet-20"
    page.selectbox(key="tr_preset").set_value("Plain-56 vs ResNet-56").run()
    preset = PRESETS["Plain-56 vs ResNet-56"]
    key = "tr_Plain-56 vs ResNet-56"
    assert page.number_input(key=f"{key}_steps").value == preset.steps
    assert page.number_input(key=f"{key}_width").value == preset.width
    assert page.number_input(key=f"{key}_size").value == preset.image_size
    assert page.number_input(key=f"{key}_warmup").value == preset.warmup_steps
    assert any("Racers: Plain-56, ResNet-56" in c.value for c in page.caption)
    assert not _button(page, "tr_start").disabled and _button(page, "tr_stop").disabled
    assert not page.get("plotly_chart")


def test_a_custom_race_needs_two_racers(page):
    page.selectbox(key="tr_preset").set_value("Custom race").run()
    page.multiselect(key="tr_Custom race_racers").set_value(["ResNet-20"]).run()
    assert any("Pick at least two racers" in w.value for w in page.warning)
    assert _button(page, "tr_start").disabled


def _start_small_race(page) -> set[Path]:
    """A custom Plain-20 vs ResNet-20 race of 5000 steps at width 4, 16 px, batch 16, started; the run folders
    that existed before it."""
    key = "tr_Custom race"
    page.selectbox(key="tr_preset").set_value("Custom race").run()
    page.multiselect(key=f"{key}_racers").set_value(["Plain-20", "ResNet-20"])
    page.number_input(key=f"{key}_steps").set_value(5000)
    page.number_input(key=f"{key}_width").set_value(4)
    page.number_input(key=f"{key}_size").set_value(16)
    page.number_input(key=f"{key}_batch").set_value(16)
    page.run()
    before = _run_folders()
    _button(page, "tr_start").click().run()
    return before


def test_start_live_update_then_stop(page):
    before = _start_small_race(page)
    assert not page.exception, page.exception
    (run,) = _run_folders() - before
    try:
        _rerun_after_steps(page, run)
        assert not page.exception, page.exception
        assert _button(page, "tr_start").disabled and not _button(page, "tr_stop").disabled
        # The settings fold away once the race runs (the live curves on the first screen); the controls stay.
        (settings,) = [e for e in page.expander if e.label == "Race settings"]
        assert settings.proto.expanded is False
        assert page.selectbox(key="tr_preset").value == "Custom race"  # folded, not gone
        curves = _figures(page)[0]
        names = {trace["name"] for trace in curves["data"] if trace.get("showlegend", True)}
        assert names == {"Plain-20", "ResNet-20"}
        loss_trace = next(t for t in curves["data"] if t["name"] == "ResNet-20")
        assert len(_values(loss_trace["x"])) >= 4 and _values(loss_trace["x"])[0] == 1
        assert curves["layout"]["xaxis"]["range"] == [0, 5000]
        progress = page.get("progress")[0].proto.text
        assert "step" in progress and "of 5000" in progress and "running" in progress and "CPU" in progress
        grads = _figures(page)[1]
        assert [t["name"] for t in grads["data"]] == ["Plain-20", "ResNet-20"]
        assert grads["data"][0]["x"] == ["stem", "layer1", "layer2", "layer3", "head"]
        assert any("weights while the nets train" in c.value and "Gradient flow" in c.value for c in page.caption)
        # The slow-moving part of the live view says how often it follows the race.
        assert any("While the race trains these update every 12 s." in c.value for c in page.caption)
        # Pause shows the step the race holds at; one Step then shows exactly the next one.
        _button(page, "tr_pause").click().run()
        assert not page.exception, page.exception
        held = _shown_step(page)
        assert "paused" in _progress(page)
        _button(page, "tr_step").click().run()
        assert _shown_step(page) == held + 1 and "paused" in _progress(page)
    finally:
        _button(page, "tr_stop").click().run()
    assert not page.exception, page.exception
    summary = json.loads((run / "summary.json").read_text())
    assert summary["status"] == "stopped" and summary["steps"] < 5000
    progress = page.get("progress")[0].proto.text
    assert "stopped" in progress and f"step {summary['steps']} of 5000" in progress
    table = page.dataframe[0].value
    assert list(table["Racer"]) == ["Plain-20", "ResNet-20"] and list(table["Status"]) == ["stopped", "stopped"]
    assert list(table["Steps"]) == [summary["steps"]] * 2
    assert not _button(page, "tr_start").disabled and _button(page, "tr_stop").disabled
    assert not any("update every" in c.value for c in page.caption)  # a stopped race does not update
    assert page.selectbox(key="live_inspect_pick").options == ["Plain-20", "ResNet-20"]


def test_offline_data_set_gives_one_sentence_and_keeps_the_settings(page, monkeypatch, tmp_path):
    monkeypatch.setenv("RESNET_EXPLORER_OFFLINE", "1")
    monkeypatch.setenv("RESNET_EXPLORER_DATA", str(tmp_path / "no-data"))
    key = "tr_Plain-20 vs ResNet-20"
    page.selectbox(key=f"{key}_data").set_value("cifar10").run()
    _button(page, "tr_start").click().run()
    assert not page.exception, page.exception
    (error,) = page.error
    assert str(tmp_path) not in error.value and "cifar-10-batches-py/data_batch_1" in error.value
    assert page.selectbox(key=f"{key}_data").value == "cifar10"  # nothing lost
    assert not page.get("plotly_chart")


def test_past_cli_run_is_listed_and_reopened(page, tmp_path):
    assert train_main(["--racer", "resnet20:plain", "--racer", "resnet20", "--steps", "4", "--width", "4",
                 "--image-size", "16", "--batch-size", "16", "--n-train", "64", "--eval-every", "2",
                 "--no-progress"]) == 0
    page.run()
    listed = page.dataframe[0].value
    assert "cli" in set(listed["source"]) and "Plain-20, ResNet-20" in set(listed["racers"])
    assert "run_id" not in listed.columns  # runs are named by their race, not by their folder
    (run_id,) = list_runs().query("source == 'cli'")["run_id"]
    title = f"{race_title('Plain-20 vs ResNet-20', load_run(run_id).info['created'])} (finished, step 4)"
    row = listed[listed["source"] == "cli"].iloc[0]
    assert row["race"] == title and row["data"] == "Shapes"  # names, not keys
    assert not any(run_id in str(v) or str(runs_dir()) in str(v) for v in listed.to_numpy().ravel())
    picker = page.selectbox(key="tr_past_pick")
    assert title in picker.options
    picker.set_value(run_id).run()
    assert not page.exception, page.exception
    curves = _figures(page)[0]
    trace = next(t for t in curves["data"] if t["name"] == "Plain-20")
    assert _values(trace["x"]) == [1, 2, 3, 4]
    held_out = [t for t in curves["data"] if t["name"].endswith("(held-out)")]
    assert {t["name"] for t in held_out} == {"Plain-20 (held-out)", "ResNet-20 (held-out)"}
    assert _values(held_out[0]["x"]) == [2, 4]
    assert page.selectbox(key="past_inspect_pick").options == ["Plain-20", "ResNet-20"]


def test_each_preset_says_what_it_can_show(page):
    header = " ".join(c.value for c in page.caption)
    assert "happens here, live" not in header  # no unconditional degradation claim
    assert "cannot show degradation" in header  # the default preset, Plain-20 vs ResNet-20
    page.selectbox(key="tr_preset").set_value("The degradation quartet").run()
    assert any("Degradation shows if Plain-56 ends with a higher training loss" in c.value for c in page.caption)


def test_a_bad_past_run_is_one_sentence_not_a_traceback(page):
    folder = _runs_dir() / "20000101-000000-hand-edited"
    folder.mkdir(parents=True)
    config = {**PRESETS["Plain-20 vs ResNet-20"].to_dict(), "racers": [{"arch": "resnet21"}]}
    (folder / "config.json").write_text(json.dumps({"run_id": folder.name, "created": "2000-01-01T00:00:00",
                                                    "racers": ["Plain-21"], "config": config}))
    page.run()
    page.selectbox(key="tr_past_pick").set_value(folder.name).run()
    assert not page.exception, page.exception
    assert any(f"The run '{folder.name}' cannot be reopened" in e.value for e in page.error)


def _small_custom_race(page, steps: int) -> None:
    key = "tr_Custom race"
    page.selectbox(key="tr_preset").set_value("Custom race").run()
    page.multiselect(key=f"{key}_racers").set_value(["Plain-20", "ResNet-20"])
    page.number_input(key=f"{key}_steps").set_value(steps)
    page.number_input(key=f"{key}_width").set_value(4)
    page.number_input(key=f"{key}_size").set_value(16)
    page.number_input(key=f"{key}_batch").set_value(16)
    page.run()


def _progress(page) -> str:
    return page.get("progress")[0].proto.text if page.get("progress") else ""


def _shown_step(page) -> int:
    return int(re.search(r"step (\d+) of", _progress(page)).group(1))


def test_an_unwritable_runs_folder_is_one_sentence_and_the_run_is_saved_later(page, monkeypatch, tmp_path):
    # A regular file where the runs folder should be: it stops root too (tests run as root; chmod would not).
    blocked = tmp_path / "runs-is-a-file"
    blocked.write_text("not a folder")
    monkeypatch.setenv("RESNET_EXPLORER_RUNS", str(blocked))
    _small_custom_race(page, steps=10)
    _button(page, "tr_start").click().run()
    assert not page.exception, page.exception
    deadline = time.monotonic() + 300
    while "finished" not in _progress(page) and time.monotonic() < deadline:
        time.sleep(0.5)
        page.run()  # the fragment's timer never fires in AppTest
    assert not page.exception, page.exception
    assert "step 10 of 10" in _progress(page) and "finished" in _progress(page)
    sentence = ("Cannot write to the runs folder (it is a file, not a folder): free space or set "
                "RESNET_EXPLORER_RUNS to a writable folder; this run's curves are kept in memory.")
    assert [w.value for w in page.warning] == [sentence]
    curves = _figures(page)[0]
    assert _values(next(t for t in curves["data"] if t["name"] == "ResNet-20")["x"]) == list(range(1, 11))
    # Space returns: Save run writes the whole run where the runs folder now is.
    writable = tmp_path / "runs"
    monkeypatch.setenv("RESNET_EXPLORER_RUNS", str(writable))
    _button(page, "tr_save").click().run()
    assert not page.exception, page.exception
    (run,) = list(writable.iterdir())
    (saved,) = [s.value for s in page.success]
    assert saved == f"Saved {load_run(run.name, writable).title} in the runs folder." and str(tmp_path) not in saved
    assert saved.startswith("Saved the race '")
    summary = json.loads((run / "summary.json").read_text())
    assert summary["status"] == "finished" and summary["steps"] == 10
    assert _step_lines(run) == 20 and (run / "resnet-20.pt").is_file()


def test_a_stopped_run_resumes_from_its_checkpoint(page):
    _small_custom_race(page, steps=5000)
    before = _run_folders()
    _button(page, "tr_start").click().run()
    (run,) = _run_folders() - before
    deadline = time.monotonic() + 120
    while _step_lines(run) < 6 and time.monotonic() < deadline:
        time.sleep(0.3)
    _button(page, "tr_stop").click().run()
    stopped_at = json.loads((run / "summary.json").read_text())["steps"]
    page.selectbox(key="tr_past_pick").set_value(run.name).run()
    assert not page.exception, page.exception
    resume = _button(page, "tr_past_resume")
    assert resume.label == f"Resume from step {stopped_at}"
    try:
        resume.click().run()
        assert not page.exception, page.exception
        assert f"step {stopped_at}" in _progress(page) or "running" in _progress(page)
        assert not (run / "summary.json").exists()  # running again, in its own folder
        assert _button(page, "tr_start").disabled and not _button(page, "tr_stop").disabled
    finally:
        _button(page, "tr_stop").click().run()
    summary = json.loads((run / "summary.json").read_text())
    assert summary["status"] == "stopped" and summary["steps"] >= stopped_at
    assert _step_lines(run) == 2 * summary["steps"]  # no step logged twice


def _lesson_race(steps: int = 5000) -> RaceConfig:
    """A tiny race under the lesson's name for it (the page shows whatever race holds the slot)."""
    return RaceConfig(racers=(RacerSpec("resnet20", residual=False), RacerSpec("resnet20")), image_size=16, width=4,
                      steps=steps, batch_size=16, n_train=256, n_test=32, eval_every=5, eval_samples=32,
                      warmup_steps=2, name="Lesson race")


def test_the_lessons_race_is_shown_and_controlled_here_and_start_refuses_a_second(page):
    start = _button(page, "tr_start")
    assert not start.disabled  # drawn while no race trains
    job = lesson.train_race(_lesson_race())  # what the lesson's "Train the quartet here" calls
    try:
        assert job.wait_for_step(2, timeout=120)
        before = _run_folders()
        start.click().run()  # the Start this tab drew before the lesson's race began
        assert not page.exception, page.exception
        assert _run_folders() == before  # never a second race
        # The page now watches the race holding the slot, whoever started it: Pause and Stop act on it.
        assert "Lesson race: step" in _progress(page) and "running" in _progress(page)
        assert not _button(page, "tr_pause").disabled and not _button(page, "tr_stop").disabled
        assert _button(page, "tr_start").disabled
        (info,) = [i.value for i in page.info if "one race trains at a time" in i.value]
        assert re.fullmatch(r"The race 'Lesson race' \(started by the lesson\) is training, at step \d+ of 5000; one "
                            r"race trains at a time, so watch it, or stop it before starting another\.", info)
        assert _button(page, "tr_start").proto.help.startswith("The race 'Lesson race' (started by the lesson)")
        _button(page, "tr_pause").click().run()
        assert job.status == "paused" and "paused" in _progress(page)
        assert f"step {job.snapshot().step} of 5000" in _progress(page)
        _button(page, "tr_resume").click().run()
        assert job.status == "running"
    finally:
        _button(page, "tr_stop").click().run()
    assert not page.exception, page.exception
    assert job.status == "stopped" and "stopped" in _progress(page)
    assert not _button(page, "tr_start").disabled and not any("one race trains" in i.value for i in page.info)


def test_a_session_watching_its_ended_race_is_offered_the_one_that_trains(page):
    _small_custom_race(page, steps=10)
    _button(page, "tr_start").click().run()
    deadline = time.monotonic() + 120
    while "finished" not in _progress(page) and time.monotonic() < deadline:
        time.sleep(0.3)
        page.run()  # the fragment's timer never fires in AppTest
    assert "step 10 of 10" in _progress(page)
    job = lesson.train_race(_lesson_race())
    try:
        assert job.wait_for_step(1, timeout=120)
        page.run()
        assert "step 10 of 10" in _progress(page)  # still its own race, until it asks
        assert _button(page, "tr_start").disabled and _button(page, "tr_stop").disabled
        assert any(i.value.startswith("The race 'Lesson race' (started by the lesson) is training") for i in page.info)
        _button(page, "tr_watch").click().run()
        assert not page.exception, page.exception
        assert "Lesson race: step" in _progress(page) and not _button(page, "tr_stop").disabled
        assert not [b for b in page.button if b.key == "tr_watch"]  # watching it already
    finally:
        job.stop()
        job.wait(timeout=120)


def test_the_race_asks_which_net_ends_lower_before_its_curves(app):
    """Predict, then reveal: without reveal=1 the race's curves wait for a committed answer; once the race has
    stopped, the reveal names the net with the lower final loss in its own summary."""
    page = open_page(app, PAGE)
    before = _start_small_race(page)
    (run,) = _run_folders() - before
    try:
        _rerun_after_steps(page, run)
        assert not page.get("plotly_chart")  # no curves before a prediction
        radio = page.radio(key="predict_race.lower_loss")
        assert list(radio.options) == ["Plain-20", "ResNet-20"]
        radio.set_value(0).run()
        _button(page, "predict_commit_race.lower_loss").click().run()
        assert _figures(page)  # the curves, once committed
        assert any("still being measured" in i.value for i in page.info)
    finally:
        _button(page, "tr_stop").click().run()
    assert not page.exception, page.exception
    summary = page.dataframe[0].value.set_index("Racer")["Final loss"]
    lower = summary.astype(float).idxmin()
    reveal = [i.value for i in page.info if "Measured here:" in i.value]
    assert len(reveal) == 1 and f"**{lower}**" in reveal[0]
    assert reveal[0].startswith("Right." if lower == "Plain-20" else 'You predicted "Plain-20".')
