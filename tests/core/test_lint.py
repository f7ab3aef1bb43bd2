"""The tree is ruff clean, as `make lint` checks it: a lint error fails the suite, not only a manual run."""

from __future__ import annotations

import subprocess
import sys

from tests.conftest import REPO

LINTED = ["resnet_core", "resnet_explorer", "app", "pages", "tests", "benchmarks", "notebooks", "tools", "setup.py"]


def test_ruff_reports_nothing():
    result = subprocess.run([sys.executable, "-m", "ruff", "check", "--no-cache", *LINTED], cwd=REPO,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-1000:]
    assert "All checks passed" in result.stdout
