"""One install, one command: the wheel built from this checkout carries the app, ``resnet-explorer`` serves it
from any directory, and a notebook's install cell installs that wheel.

The wheel is built as a user builds it (``pip wheel --no-deps --no-build-isolation``, from a copy of the checkout)
and installed with ``--no-deps`` into a fresh venv that sees the test venv's dependencies through a .pth file
but not its editable install of this checkout: what runs there comes from the wheel.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import sysconfig
import time
import urllib.request
import zipfile
from pathlib import Path

import pytest

from tests.browser.conftest import _free_port, new_tab, screenshot, wait_idle
from tests.conftest import ARTIFACTS, REPO, checkout_copy

pytestmark = [pytest.mark.browser, pytest.mark.slow]

APP_FILES = {"resnet_explorer/app/main.py", "resnet_explorer/app/navigation.py",
             "resnet_explorer/app/.streamlit/config.toml", "resnet_explorer/app/assets/favicon.png",
             "resnet_explorer/app/explorer_ui/warm_start.py", "resnet_explorer/launch.py"}


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    source = checkout_copy(tmp_path_factory.mktemp("checkout"))
    out = tmp_path_factory.mktemp("wheelhouse")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(out),
                    str(source)], check=True, capture_output=True, timeout=300)
    (built,) = out.glob("resnet_explorer-*.whl")
    return built


def _bare_venv(folder: Path) -> Path:
    """A venv without this project, seeing the test venv's installed dependencies (torch, streamlit, pip, ...)."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(folder)], check=True, timeout=120)
    python = folder / "bin" / "python"
    site = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                          check=True, capture_output=True, text=True).stdout.strip()
    # A path line, not the test venv's .pth files: its editable install of this checkout stays invisible.
    Path(site, "test-venv-dependencies.pth").write_text(sysconfig.get_path("purelib") + "\n")
    return python


def _where(python: Path, cwd: Path) -> dict[str, str]:
    code = "import json, resnet_core, resnet_explorer; print(json.dumps({'core': resnet_core.__file__, " \
           "'app': resnet_explorer.__file__}))"
    return json.loads(subprocess.run([str(python), "-c", code], cwd=cwd, check=True, capture_output=True,
                                     text=True, timeout=120).stdout)


def test_the_wheel_carries_the_app_under_the_projects_own_names(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    tops = {name.split("/")[0] for name in names if not name.split("/")[0].endswith(".dist-info")}
    assert tops == {"resnet_core", "resnet_explorer"}  # no top-level app, pages or explorer_ui
    assert APP_FILES <= set(names)
    pages = {f"resnet_explorer/pages/{p.name}" for p in (REPO / "pages").glob("*.py")}
    helpers = {f"resnet_explorer/app/explorer_ui/{p.name}" for p in (REPO / "app" / "explorer_ui").glob("*.py")}
    assert len(pages) == 6 and pages <= set(names) and helpers <= set(names)
    assert any(n.startswith("resnet_core/weights/demo_models/") and n.endswith(".pt") for n in names)
    entry_points = next(n for n in names if n.endswith(".dist-info/entry_points.txt"))
    assert "resnet-explorer = resnet_explorer.launch:main" in zipfile.ZipFile(wheel).read(entry_points).decode()
    print(f"wheel {wheel.name}: {wheel.stat().st_size / 2**20:.1f} MB, {len(names)} files")


def test_the_sdist_installs_the_same_app(tmp_path_factory: pytest.TempPathFactory, tmp_path: Path) -> None:
    source = checkout_copy(tmp_path_factory.mktemp("checkout-sdist"))
    out = tmp_path / "dist"
    subprocess.run([sys.executable, "-m", "build", "--sdist", "--no-isolation", "-o", str(out), str(source)],
                   check=True, capture_output=True, timeout=300)
    (sdist,) = out.glob("resnet_explorer-*.tar.gz")
    python = _bare_venv(tmp_path / "venv")
    subprocess.run([str(python), "-m", "pip", "install", "--no-deps", "--no-build-isolation", "-q", str(sdist)],
                   check=True, capture_output=True, timeout=300, cwd=tmp_path)
    site = Path(subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                               check=True, capture_output=True, text=True).stdout.strip())
    installed = {str(p.relative_to(site)) for p in site.rglob("*") if p.is_file() and "__pycache__" not in p.parts}
    assert APP_FILES <= installed, APP_FILES - installed
    assert {f"resnet_explorer/pages/{p.name}" for p in (REPO / "pages").glob("*.py")} <= installed
    assert not {name.split("/")[0] for name in installed} & {"app", "pages", "explorer_ui"}
    assert (tmp_path / "venv" / "bin" / "resnet-explorer").is_file()


def test_resnet_explorer_serves_the_installed_app_from_any_directory(wheel, profile, tmp_path) -> None:
    python = _bare_venv(tmp_path / "venv")
    subprocess.run([str(python), "-m", "pip", "install", "--no-deps", "-q", str(wheel)], check=True,
                   capture_output=True, timeout=300)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    where = _where(python, elsewhere)
    assert all(Path(path).is_relative_to(tmp_path / "venv") for path in where.values()), where
    # Installed, runs and data default to the user's data folder, not site-packages.
    bare = {k: v for k, v in os.environ.items() if not k.startswith("RESNET_EXPLORER_")}
    folders = subprocess.run([str(python), "-c", "from resnet_core.settings import data_dir, runs_dir; "
                              "print(runs_dir()); print(data_dir())"], cwd=elsewhere, check=True, text=True,
                             capture_output=True, env={**bare, "XDG_DATA_HOME": str(tmp_path / "xdg")}).stdout
    assert folders.split() == [str(tmp_path / "xdg" / "resnet-explorer" / "runs"),
                               str(tmp_path / "xdg" / "resnet-explorer" / "data")]
    port, log = _free_port(), ARTIFACTS / "resnet-explorer-installed.log"
    ARTIFACTS.mkdir(exist_ok=True)
    env = {**os.environ, "RESNET_EXPLORER_PRIME": "none"}
    with open(log, "w") as out:
        server = subprocess.Popen([str(tmp_path / "venv" / "bin" / "resnet-explorer"), "--port", str(port),
                                   "--runs", str(tmp_path / "runs"), "--server.headless", "true"],
                                  cwd=elsewhere, env=env, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://localhost:{port}"
    try:
        deadline = time.time() + 90
        while True:
            try:
                if urllib.request.urlopen(f"{url}/_stcore/health", timeout=2).read() == b"ok":
                    break
            except OSError:
                pass
            assert server.poll() is None and time.time() < deadline, log.read_text()[-2000:]
            time.sleep(0.3)
        tab = new_tab(profile, 1400, 1600, timeout_ms=120_000)
        try:
            tab.goto(f"{url}/grad-cam")
            tab.locator(".st-key-gc_map .main-svg").first.wait_for(state="visible")
            wait_idle(tab)
            main = tab.locator('[data-testid="stMain"]')
            assert "Grad-CAM" in main.locator("h1").first.inner_text()
            # The app's own config.toml (beside the installed main.py): Streamlit's dropzone states the 256 MB
            # upload limit (200 MB without it).
            sidebar = tab.locator('[data-testid="stSidebar"]')
            sidebar.get_by_text("Upload a checkpoint", exact=True).click()
            dropzone = sidebar.locator('[data-testid="stFileUploaderDropzoneInstructions"]')
            assert "256MB per file" in dropzone.inner_text()
            assert not tab.locator('[data-testid="stException"]').count()
            screenshot(tab, "installed-wheel-grad-cam")
        finally:
            tab.close()
        # The console script became the server (exec): it runs the installed main.py, with --runs as the folder.
        command = Path(f"/proc/{server.pid}/cmdline").read_bytes().split(b"\0")
        installed = tmp_path / "venv" / "lib"
        assert b"streamlit" in command and any(Path(part.decode()).is_relative_to(installed)
                                               and part.endswith(b"resnet_explorer/app/main.py") for part in command)
        environ = Path(f"/proc/{server.pid}/environ").read_bytes().split(b"\0")
        assert f"RESNET_EXPLORER_RUNS={tmp_path / 'runs'}".encode() in environ
    finally:
        server.terminate()
        server.wait(timeout=20)


def test_a_notebooks_install_cell_installs_the_wheel(wheel, tmp_path) -> None:
    python = _bare_venv(tmp_path / "venv")
    cells = json.loads((REPO / "notebooks" / "architecture.ipynb").read_text())["cells"]
    install = next("".join(c["source"]) for c in cells if c["cell_type"] == "code" and "PACKAGE = " in "".join(c["source"]))
    assert 'PACKAGE = ""' in install
    cell = install.replace('PACKAGE = ""', f"PACKAGE = {str(wheel)!r}", 1)
    notebook_folder = tmp_path / "notebooks"  # not inside a checkout: the cell must use PACKAGE
    notebook_folder.mkdir()
    missing = subprocess.run([str(python), "-c", "import resnet_core"], cwd=notebook_folder, capture_output=True)
    assert missing.returncode != 0  # the editable install of this checkout is not seen there
    env = {**os.environ, "PIP_NO_INDEX": "1"}  # the dependencies are there already: nothing is downloaded
    subprocess.run([str(python), "-c", cell], cwd=notebook_folder, env=env, check=True, capture_output=True,
                   timeout=300)
    where = _where(python, notebook_folder)
    assert all(Path(path).is_relative_to(tmp_path / "venv") for path in where.values()), where
    again = subprocess.run([str(python), "-c", cell + "\nprint('installed already')"], cwd=notebook_folder, env=env,
                           check=True, capture_output=True, text=True, timeout=120)
    assert again.stdout.strip() == "installed already"  # a second run does nothing
