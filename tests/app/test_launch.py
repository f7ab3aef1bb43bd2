"""``resnet-explorer``'s command line: what it hands to ``streamlit run`` (the served app is tested from a wheel
in tests/browser/test_install.py)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from resnet_explorer.launch import app_script, streamlit_command
from tests.conftest import REPO


def test_defaults_serve_the_checkouts_app_on_loopback() -> None:
    command, env = streamlit_command([])
    assert command == [sys.executable, "-m", "streamlit", "run", str(REPO / "app" / "main.py"), "--server.port",
                       "8501", "--server.address", "localhost"]
    assert app_script() == REPO / "app" / "main.py"
    assert (app_script().parent / ".streamlit" / "config.toml").is_file()  # the app's own settings beside it


def test_port_address_and_runs_are_ours_other_flags_go_to_streamlit(tmp_path) -> None:
    command, env = streamlit_command(["--port", "9001", "--address", "0.0.0.0", "--runs", str(tmp_path / "r"),
                                      "--server.headless", "true", "--theme.base=dark"])
    assert command[5:] == ["--server.port", "9001", "--server.address", "0.0.0.0", "--server.headless", "true",
                           "--theme.base=dark"]
    assert env["RESNET_EXPLORER_RUNS"] == str(tmp_path / "r")


@pytest.mark.parametrize("port", ["0", "70000", "eighty"])
def test_a_bad_port_is_refused_with_the_flag_named(port, capsys) -> None:
    with pytest.raises(SystemExit) as refused:
        streamlit_command(["--port", port])
    assert refused.value.code == 2 and "--port" in capsys.readouterr().err


def test_the_served_app_runs_no_source_watcher_and_no_collection_after_each_run(tmp_path) -> None:
    """Read by Streamlit's own loader as `streamlit run app/main.py` sets it up, from an empty folder: the source
    watcher is off (it walked every loaded module's path on the event loop after each new session's first run,
    0.2-0.3 s in which no session's messages went out) and so is the full collection after every run."""
    probe = ("import sys\nfrom streamlit import config\nconfig._main_script_path = sys.argv[1]\n"
             "config.get_config_options(force_reparse=True)\n"
             "print(config.get_option('server.fileWatcherType'), config.get_option('runner.postScriptGC'),"
             " config.get_option('server.runOnSave'))")
    shown = subprocess.run([sys.executable, "-c", probe, str(app_script())], cwd=tmp_path, capture_output=True,
                           text=True, check=True, env={**os.environ, "HOME": str(tmp_path)}).stdout.split()
    assert shown == ["none", "False", "False"], shown
