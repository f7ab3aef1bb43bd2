"""Shared fixtures: repository paths, an isolated runs/torch-home directory, AppTest, a real server+browser."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
APP_MAIN = REPO / "app" / "main.py"
ARTIFACTS = REPO / "artifacts"


@pytest.fixture(autouse=True, scope="session")
def _isolated_dirs(tmp_path_factory: pytest.TempPathFactory):
    """Runs and torch hub cache go to temporary folders: tests never touch the user's, nor the network."""
    base = tmp_path_factory.mktemp("explorer-home")
    old = {k: os.environ.get(k) for k in ("RESNET_EXPLORER_RUNS", "TORCH_HOME", "RESNET_EXPLORER_DATA")}
    os.environ["RESNET_EXPLORER_RUNS"] = str(base / "runs")
    os.environ["TORCH_HOME"] = str(base / "torch")
    os.environ["RESNET_EXPLORER_DATA"] = str(base / "data")
    yield base
    for key, value in old.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
