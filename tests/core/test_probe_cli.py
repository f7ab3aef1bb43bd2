"""``resnet-probe landscape|lesion`` and ``python -m resnet_core.landscape|lesion``: real subprocesses on a small
checkpoint written here; the CSV holds the library's numbers and the printed table says them briefly."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch
import torch.nn.functional as F

import resnet_core
from resnet_core import lesson
from resnet_core.data import SHAPES_CLASSES, shapes_stats
from resnet_core.job_queue import one_thread_each
from resnet_core.lesion import lesion_study
from resnet_core.probe_cli import landscape_main, probe_main
from resnet_core.weights.checkpoints.format import make_checkpoint

BIN = Path(sys.executable).parent


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A ResNet-20 (width 4, 16 px) in the trainer's format, recording that it was trained on Shapes."""
    path = tmp_path_factory.mktemp("probe") / "ResNet-20.pt"
    mean, std = shapes_stats(16)
    net = resnet_core.build("resnet20", width=4, seed=0)
    torch.save(make_checkpoint(arch="resnet20", label="ResNet-20", options={"width": 4}, state_dict=net.state_dict(),
                               classes=list(SHAPES_CLASSES), dataset="shapes", metrics={},
                               preprocessing={"resize": 16, "crop": 16, "mean": list(mean), "std": list(std)}),
               path)
    return path


def _run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(args), capture_output=True, text=True, timeout=120, cwd=cwd,
                          env={**os.environ, "OMP_WAIT_POLICY": "PASSIVE"})


def test_landscape_console_script_writes_the_surface_and_prints_the_grid(checkpoint: Path, tmp_path: Path) -> None:
    done = _run(str(BIN / "resnet-probe"), "landscape", str(checkpoint), "--steps", "5", "--batch", "16",
                cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    written = tmp_path / "ResNet-20-landscape.csv"  # the default name, in the working folder
    grid = pd.read_csv(written)
    assert len(grid) == 25 and list(grid.columns) == ["alpha", "beta", "loss", "accuracy"]
    # The origin is the model itself: its loss on the same 16 training images.
    model = lesson.open_trained(str(checkpoint))
    x, y = lesson.model_batch(model, "shapes", "train", 16)
    with torch.no_grad():
        loss = float(F.cross_entropy(model(x), y))
    origin = grid[(grid["alpha"] == 0) & (grid["beta"] == 0)]["loss"].iloc[0]
    assert origin == pytest.approx(loss, rel=1e-5)
    lines = done.stdout.splitlines()
    assert lines[0].startswith("Loss on a 5 x 5 grid (ResNet-20, 16 train images of shapes (16 px), seed 0): ")
    assert lines[0].endswith(f"; at the weights {loss:.4g}")
    assert lines[1].split() == ["beta", "\\", "alpha", "-1", "-0.5", "0", "0.5", "1"]
    assert len(lines) == 1 + 1 + 5 + 1 and lines[-1] == f"wrote 25 rows to {written.name}"
    assert lines[4].split()[3] == f"{loss:.3g}"  # the centre of the printed grid


def test_lesion_console_script_one_row_per_block(checkpoint: Path, tmp_path: Path) -> None:
    out = tmp_path / "study.csv"
    done = _run(str(BIN / "resnet-probe"), "lesion", str(checkpoint), "--batch", "32", "--out", str(out),
                cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    written = pd.read_csv(out)
    model = lesson.open_trained(str(checkpoint))
    x, y = lesson.model_batch(model, "shapes", "test", 32)
    expected = lesion_study(model, x, y)
    assert list(written["block"]) == list(expected["block"]) and len(written) == 9
    assert list(written["accuracy"]) == pytest.approx(list(expected["accuracy"]))
    lines = done.stdout.splitlines()
    assert lines[0].startswith("Each block removed in turn (ResNet-20, 32 test images of shapes (16 px); ")
    assert lines[0].endswith("chance 10%):")
    rows = lines[2:-1]
    assert [r.split()[0] for r in rows] == list(expected["block"])
    assert all(r.split()[1] == "yes" for r in rows)  # option A: every residual block can lose its branch
    assert rows[0].split()[2] == f"{expected['accuracy'].iloc[0]:.1%}"


def test_python_m_forms_are_the_same_command(checkpoint: Path, tmp_path: Path, capsys) -> None:
    done = _run(sys.executable, "-m", "resnet_core.lesion", str(checkpoint), "--curve", "--max-removed", "2",
                "--samples", "2", "--batch", "16", "--out", "curve.csv", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    curve = pd.read_csv(tmp_path / "curve.csv")
    assert list(curve["removed"]) == [1, 1, 2, 2]
    assert done.stdout.splitlines()[1].split() == ["removed", "sets", "mean", "low", "high"]
    # landscape_main is the same thin wrapper (in-process here: one interpreter start fewer).
    assert landscape_main([str(checkpoint), "--line", "--steps", "3", "--batch", "8",
                           "--out", str(tmp_path / "line.csv")]) == 0
    assert list(pd.read_csv(tmp_path / "line.csv")["alpha"]) == [-1.0, 0.0, 1.0]
    assert capsys.readouterr().out.splitlines()[0].startswith("Loss along one random direction (ResNet-20, 8 train")


def test_bad_input_is_one_sentence_and_exit_2(tmp_path: Path, capsys) -> None:
    assert probe_main(["lesion", str(tmp_path / "missing.pt")]) == 2
    message = capsys.readouterr().err.strip()
    assert message.startswith("resnet-probe: ") and "does not exist" in message and "\n" not in message
    bare = tmp_path / "bare.pt"
    torch.save(resnet_core.build("resnet20", width=4, seed=0).state_dict(), bare)
    assert probe_main(["landscape", str(bare), "--steps", "3"]) == 2  # no data set recorded: say what to pass
    assert "does not record the data set it was trained on" in capsys.readouterr().err
    assert not (tmp_path / "bare-landscape.csv").exists()


def test_the_landscape_split_over_two_torchrun_processes_is_the_one_process_surface(checkpoint: Path,
                                                                                   tmp_path: Path) -> None:
    """torchrun starts two ranks (gloo): each evaluates every other grid point, and rank 0 writes the gathered
    surface, equal to one process's at the same threads per evaluation (one: this process's surface, computed
    here on one thread, spares a third interpreter its imports). ``--nproc 2`` calls torchrun's launcher
    in-process and gives the same table."""
    common = ["--steps", "5", "--batch", "16", "--seed", "3"]
    env = {**os.environ, "OMP_WAIT_POLICY": "PASSIVE", "OMP_NUM_THREADS": "1"}
    with one_thread_each():  # torch's thread count comes back after
        assert probe_main(["landscape", str(checkpoint), *common, "--out", str(tmp_path / "alone.csv")]) == 0
    ranks = subprocess.run([str(BIN / "torchrun"), "--standalone", "--nproc-per-node", "2", "-m",
                            "resnet_core.landscape", str(checkpoint), *common, "--out", "ranks.csv", "--distributed"],
                           capture_output=True, text=True, timeout=300, cwd=tmp_path, env=env)
    assert ranks.returncode == 0, ranks.stderr[-3000:]
    launched = subprocess.run([str(BIN / "resnet-probe"), "landscape", str(checkpoint), *common, "--out",
                               "launched.csv", "--nproc", "2"],
                              capture_output=True, text=True, timeout=300, cwd=tmp_path, env=env)
    assert launched.returncode == 0, launched.stderr[-3000:]
    one = pd.read_csv(tmp_path / "alone.csv")
    for name, done in (("ranks.csv", ranks), ("launched.csv", launched)):
        split = pd.read_csv(tmp_path / name)
        assert list(split.columns) == list(one.columns) and len(split) == 25
        assert (split[["alpha", "beta"]] == one[["alpha", "beta"]]).all().all()
        assert (split["loss"] - one["loss"]).abs().max() <= 1e-6, name
        assert (split["accuracy"] == one["accuracy"]).all(), name
        assert one["loss"].nunique() > 20  # a real surface, not one number everywhere
        heading = next(line for line in done.stdout.splitlines() if line.startswith("Loss on a 5 x 5 grid"))
        assert "; 2 processes)" in heading and done.stdout.count("wrote 25 rows") == 1  # rank 0 writes alone


def test_distributed_without_torchrun_is_one_sentence(checkpoint: Path, tmp_path: Path, capsys) -> None:
    assert probe_main(["landscape", str(checkpoint), "--steps", "3", "--distributed"]) == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith("resnet-probe: --distributed runs under torchrun") and "\n" not in error
    assert probe_main(["landscape", str(checkpoint), "--line", "--nproc", "2"]) == 2
    assert "a line has too few points to share" in capsys.readouterr().err
    assert probe_main(["landscape", str(checkpoint), "--nproc", "2", "--distributed"]) == 2
    assert "--nproc starts the ranks itself" in capsys.readouterr().err
    with pytest.raises(SystemExit) as refused:  # no abbreviation could smuggle --nproc into the ranks
        probe_main(["landscape", str(checkpoint), "--npr", "2"])
    assert refused.value.code == 2 and "unrecognized arguments: --npr" in capsys.readouterr().err
