"""``resnet-explorer``: start the app from any directory, as ``tensorboard --logdir`` or ``jupyter lab`` do.

    resnet-explorer [--port 8501] [--address localhost] [--runs DIR] [any other streamlit run flag ...]

It runs ``streamlit run <the installed app>/main.py`` with the app's own settings (its ``.streamlit/config.toml``
beside main.py: no usage statistics, the upload limit, the theme). Loopback by default; ``--address 0.0.0.0``
serves a local network. ``--runs`` is where races, uploads and caches are kept (``$RESNET_EXPLORER_RUNS``).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from resnet_core.settings import RUNS_ENV, runs_dir

DEFAULT_PORT = 8501
DEFAULT_ADDRESS = "localhost"


def app_script() -> Path:
    """The app's main script: ``resnet_explorer/app/main.py`` in a wheel, ``app/main.py`` in a checkout."""
    here = Path(__file__).resolve().parent
    for candidate in (here / "app" / "main.py", here.parent / "app" / "main.py"):
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(f"The app's main.py is neither in {here / 'app'} nor in {here.parent / 'app'}: "
                            "reinstall resnet-explorer.")


def streamlit_command(argv: Sequence[str] | None = None) -> tuple[list[str], dict[str, str]]:
    """The command line and environment ``resnet-explorer argv`` runs (flags it does not know go to Streamlit)."""
    parser = argparse.ArgumentParser(prog="resnet-explorer", description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"the port to serve on (default {DEFAULT_PORT})")
    parser.add_argument("--address", default=DEFAULT_ADDRESS,
                        help="the address to serve on (default: loopback only; 0.0.0.0 for a local network)")
    parser.add_argument("--runs", type=Path, default=None,
                        help=f"the runs folder (default: ${RUNS_ENV}, else {runs_dir()})")
    args, rest = parser.parse_known_args(argv)
    if not 0 < args.port < 65536:
        parser.error(f"--port must be between 1 and 65535, not {args.port}.")
    env = dict(os.environ)
    if args.runs is not None:
        env[RUNS_ENV] = str(args.runs.expanduser().resolve())
    command = [sys.executable, "-m", "streamlit", "run", str(app_script()), "--server.port", str(args.port),
               "--server.address", args.address, *rest]
    return command, env


def main(argv: Sequence[str] | None = None) -> int:
    command, env = streamlit_command(argv)
    if os.name == "posix":  # the server becomes this process: Ctrl+C and the shell's signals reach it directly
        os.execve(command[0], command, env)
    return subprocess.call(command, env=env)


if __name__ == "__main__":
    sys.exit(main())
