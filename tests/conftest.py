"""Shared fixtures: repository paths, an isolated runs/torch-home directory, a guard on global torch state."""

from __future__ import annotations

import os
import random
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
APP_SCRIPT = REPO / "app" / "navigation.py"  # what every session runs (app/main.py serves it)
ARTIFACTS = REPO / "artifacts"


def checkout_copy(dest: Path) -> Path:
    """The checkout's files as git sees them (tracked, and new ones not ignored) copied to ``dest``: what a
    build starts from, without the venv or build leftovers (and the checkout itself is never written)."""
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=REPO,
                            check=True, capture_output=True).stdout.decode().split("\0")
    for name in filter(None, listed):
        source = REPO / name
        if source.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, dest / name)
    return dest


def pytest_configure(config: pytest.Config) -> None:
    """Under pytest-xdist, each worker's torch gets its share of the cores (one each for `make test`'s two workers
    on two cores): two workers of two intra-op threads each oversubscribe the cores, and a thread that waits at
    an OpenMP barrier for one that is descheduled made a 10 s training test take 46 s. Servers, notebooks and
    child processes the tests start keep torch's own default."""
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT") or 0)
    if workers > 1:
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // workers))


GROUPED_FOLDERS = ("browser", "app")  # each folder's tests run on one worker under `make test`


@pytest.hookimpl(tryfirst=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log):
    """`make test`'s `--dist loadgroup`, by folder: the browser tests share one worker (its server and Chromium)
    and the AppTests another (Streamlit's caches are per process, as on one server); the library's tests fill in
    on both, the two folders first (the largest units). xdist's own groups come from `xdist_group` markers, which
    it applies by rewriting ``item._nodeid``: pytest 9.2 no longer reads that, so every group was silently split
    over both workers (two servers primed, two Chromiums; pytest-dev/pytest-xdist#1386, open)."""
    if config.getvalue("dist") != "loadgroup":
        return None
    from xdist.scheduler import LoadScopeScheduling

    class FolderGroups(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            parts = nodeid.split("/")
            return parts[1] if len(parts) > 2 and parts[1] in GROUPED_FOLDERS else nodeid

    return FolderGroups(config, log)


def pytest_terminal_summary(terminalreporter, config: pytest.Config) -> None:
    """The random-order seed again at the end (pytest-randomly's header line is hidden by -q)."""
    seed = getattr(config.option, "randomly_seed", None)
    if config.pluginmanager.hasplugin("randomly") and isinstance(seed, int):
        terminalreporter.write_line(f"Using --randomly-seed={seed} (rerun this order with -p randomly "
                                    f"--randomly-seed={seed})")


@pytest.fixture(autouse=True, scope="session")
def _isolated_dirs(tmp_path_factory: pytest.TempPathFactory):
    """Runs and torch hub cache go to temporary folders: tests never touch the user's, nor the network. The kept
    measurements (``$RESNET_EXPLORER_CACHE``) go to one folder for the whole run, shared by the xdist workers and
    their servers as replicas share it: the lesson's pair is measured once per suite, not once per process
    (tests/core/test_lesson_store.py measures in folders of its own)."""
    base = tmp_path_factory.mktemp("explorer-home")
    run_root = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        run_root = run_root.parent  # the workers' basetemps are folders of one run's root
    names = ("RESNET_EXPLORER_RUNS", "TORCH_HOME", "RESNET_EXPLORER_DATA", "RESNET_EXPLORER_CACHE")
    old = {k: os.environ.get(k) for k in names}
    os.environ["RESNET_EXPLORER_RUNS"] = str(base / "runs")
    os.environ["TORCH_HOME"] = str(base / "torch")
    os.environ["RESNET_EXPLORER_DATA"] = str(base / "data")
    os.environ["RESNET_EXPLORER_CACHE"] = str(run_root / "measurements")
    yield base
    for key, value in old.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


# ------------------------------------------------------------------------------ global torch state per test
def _torch_flags() -> dict[str, object]:
    """Process-wide settings a test could change and forget: any change here outlives the test."""
    return {
        "threads": torch.get_num_threads(),
        "interop threads": torch.get_num_interop_threads(),
        "default dtype": torch.get_default_dtype(),
        "deterministic algorithms": torch.are_deterministic_algorithms_enabled(),
        "deterministic warn_only": torch.is_deterministic_algorithms_warn_only_enabled(),
        "cudnn.benchmark": torch.backends.cudnn.benchmark,
        "cudnn.deterministic": torch.backends.cudnn.deterministic,
        "float32 matmul precision": torch.get_float32_matmul_precision(),
        "grad mode": torch.is_grad_enabled(),
    }


def _restore_flags(flags: dict[str, object]) -> None:
    """Put back what differs (only that: torch.use_deterministic_algorithms imports all of torch._inductor)."""
    now = _torch_flags()
    if now["threads"] != flags["threads"]:
        torch.set_num_threads(flags["threads"])
    if now["interop threads"] != flags["interop threads"]:
        try:  # torch allows it only before the first inter-op parallel work; the leak is reported either way
            torch.set_num_interop_threads(flags["interop threads"])
        except RuntimeError:
            pass
    if now["default dtype"] != flags["default dtype"]:
        torch.set_default_dtype(flags["default dtype"])
    if (now["deterministic algorithms"], now["deterministic warn_only"]) != (
            flags["deterministic algorithms"], flags["deterministic warn_only"]):
        torch.use_deterministic_algorithms(flags["deterministic algorithms"],
                                           warn_only=flags["deterministic warn_only"])
    torch.backends.cudnn.benchmark = flags["cudnn.benchmark"]
    torch.backends.cudnn.deterministic = flags["cudnn.deterministic"]
    if now["float32 matmul precision"] != flags["float32 matmul precision"]:
        torch.set_float32_matmul_precision(flags["float32 matmul precision"])
    torch.set_grad_enabled(flags["grad mode"])


@pytest.fixture(autouse=True)
def _global_torch_state(request: pytest.FixtureRequest):
    """Every test leaves threads, default dtype and determinism flags as it found them, or it fails.

    Tests must not depend on order or on each other, so a leaked setting is an error of the test that leaked
    it (reported at its teardown, then restored so later tests still run on a clean state). The random
    states (torch, python, numpy) are restored without a check: an unseeded build may use the global RNG.
    """
    flags = _torch_flags()
    rng = (torch.get_rng_state(), random.getstate(), np.random.get_state())
    cuda_rng = torch.cuda.get_rng_state_all() if torch.cuda.is_initialized() else None
    yield
    leaked = {key: (value, now) for key, value in flags.items() if (now := _torch_flags()[key]) != value}
    _restore_flags(flags)
    torch.set_rng_state(rng[0])
    random.setstate(rng[1])
    np.random.set_state(rng[2])
    if cuda_rng is not None:
        torch.cuda.set_rng_state_all(cuda_rng)
    if leaked:
        changes = "; ".join(f"{key} {before} -> {after}" for key, (before, after) in leaked.items())
        pytest.fail(f"{request.node.nodeid} changed global torch state and did not restore it: {changes}. "
                    "Restore it in a try/finally (it has been restored for the next test).", pytrace=False)
