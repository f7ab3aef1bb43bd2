"""``resnet-weights`` (inspect, fetch) and ``python -m resnet_core.weights``: real subprocesses and real files."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import torch

import resnet_core
from resnet_core.cli import weights_main
from resnet_core.weights import hub_checkpoint_path

BIN = Path(sys.executable).parent


def _akamaster_style(path: Path) -> None:
    """ResNet-20 keys as the option-A CIFAR reproduction saves them: 'module.', 'linear', under 'state_dict'."""
    state = resnet_core.build("resnet20", width=4, seed=0).state_dict()
    state = {f"module.{k.replace('fc.', 'linear.')}": v for k, v in state.items()}
    torch.save({"state_dict": state, "best_prec1": 91.3}, path)


def _run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(args), capture_output=True, text=True, timeout=120,
                          env={**os.environ, "OMP_WAIT_POLICY": "PASSIVE", **(env or {})})


def test_python_m_runs_without_warnings_and_prints_the_notes(tmp_path):
    path = tmp_path / "resnet20.th"
    _akamaster_style(path)
    done = _run(sys.executable, "-W", "error::RuntimeWarning", "-m", "resnet_core.weights", str(path))
    assert done.returncode == 0, done.stderr
    assert "Warning" not in done.stderr and done.stderr == ""
    lines = done.stdout.splitlines()
    assert lines[0].startswith("ResNet-20, width 4, shortcut A, 10 classes:")
    assert lines[1] == "architecture: resnet20 residual=True shortcut=A preact=False num_classes=10 width=4"
    assert "note: removed the 'module.' prefix from every key" in lines
    assert "note: classifier 'linear' read as 'fc'" in lines
    assert any(line.startswith("note: no projection weights: assumed option-A") for line in lines)


def test_console_script_inspect(tmp_path):
    path = tmp_path / "model.safetensors"
    from safetensors.torch import save_file

    save_file(resnet_core.build("resnet18_cifar", width=8, seed=0).state_dict(), str(path))
    done = _run(str(BIN / "resnet-weights"), "inspect", str(path))
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("ResNet-18 (CIFAR stem), width 8, shortcut B, 10 classes:")
    assert "note: read with safetensors" in done.stdout
    assert "note: CIFAR stem (3x3 convolution, no max-pool): 32 px input" in done.stdout


def test_inspect_failures_are_one_sentence_and_exit_1(tmp_path, capsys):
    whole = tmp_path / "whole.pt"
    torch.save(torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3)), whole)
    assert weights_main(["inspect", str(whole)]) == 1
    out = capsys.readouterr().out.strip()
    assert "holds a pickled model object" in out and "\n" not in out
    assert weights_main([str(tmp_path / "missing.th")]) == 1  # the bare form means inspect
    assert "does not exist" in capsys.readouterr().out


def test_fetch_offline_is_one_sentence(tmp_path):
    done = _run(str(BIN / "resnet-weights"), "fetch", "resnet18",
                env={"RESNET_EXPLORER_OFFLINE": "1", "TORCH_HOME": str(tmp_path)})
    assert done.returncode == 1 and done.stdout == ""
    message = done.stderr.strip()
    assert "\n" not in message and message.endswith(".")
    assert "cannot download the ResNet-18 IMAGENET1K_V1 weights (no network)" in message
    assert "https://download.pytorch.org/models/resnet18-f37072fd.pth" in message
    assert str(tmp_path / "hub" / "checkpoints") in message
    assert not (tmp_path / "hub" / "checkpoints").exists() or not any((tmp_path / "hub" / "checkpoints").iterdir())


def test_fetch_uses_the_cache_and_refuses_unknown_names(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    cached = hub_checkpoint_path("resnet50", "IMAGENET1K_V2")
    cached.parent.mkdir(parents=True)
    cached.write_bytes(b"already here")
    assert weights_main(["fetch", "resnet50", "IMAGENET1K_V2"]) == 0
    assert capsys.readouterr().out.strip() == f"ResNet-50 IMAGENET1K_V2: already in the cache, {cached}"
    assert weights_main(["fetch", "resnet50"]) == 0  # DEFAULT is IMAGENET1K_V2 for ResNet-50
    assert "already in the cache" in capsys.readouterr().out
    assert weights_main(["fetch", "resnet56"]) == 2
    assert "torchvision has no weights for 'resnet56'" in capsys.readouterr().err
    assert weights_main(["fetch", "resnet50", "IMAGENET9K"]) == 2
    assert "choose one of IMAGENET1K_V1, IMAGENET1K_V2" in capsys.readouterr().err
    assert cached.read_bytes() == b"already here"
