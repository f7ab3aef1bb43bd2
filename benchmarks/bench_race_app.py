"""Race throughput in the app (a real server with a real browser watching) against the CLI, same settings.

The "Plain-56 vs ResNet-56" preset with fewer steps (``--steps``, default 200) runs twice per round: once
started from the Training page of a real ``streamlit run app/main.py`` with Debian's Chromium attached
(1280x720, the page's live curves polling as a class would see them) and once from ``resnet-train`` with the
same preset and steps. Throughput is read from each run's own metrics file (``metrics.jsonl`` in its run
folder), polled while it trains: steps per second from the first logged step past the warm-up
(``--skip``) to the last, so process start, data preparation and the first, slower steps count on neither
side. Rounds alternate app and CLI so a change in machine load hits both alike. Prints each side's steps/s,
the ratio app/CLI (target >= 0.9) and the median of the rounds' own ratios, the steps/s from each run's
summary (``steps / wall_s``: compute time of the steps only) and the load average before and after (other
work on the machine lowers both sides).

    python benchmarks/bench_race_app.py [--steps 200] [--rounds 1] [--skip 10]

Needs Debian's chromium (``apt-get install chromium``) and Playwright's Python package (driving that
chromium; Playwright's own browser downloads are not used).

Measured on the shared 2-core machine (other engineers' tests running, so the load average was 5-9):
before (racers one after the other, each op split over 2 threads): app 1.31 steps/s from its summary at
load 8.7, while the CLI (OpenMP's default spin-waiting) fell to 0.075 steps/s at the same load; at load 0.7
the CLI had run 6.9 steps/s (200 steps in 29 s), and 2.8 steps/s with the app's OMP_WAIT_POLICY=PASSIVE (load 0.8-2.1).
After (racers side by side, one thread each; live view every 2 s): --steps 100 --rounds 2, load 5.5-7.5:
CLI 2.29, app 1.94 steps/s, ratio 0.85 (rounds 0.79, 0.90); --steps 200 --rounds 2, load 1.3-8.6: CLI 2.05,
app 1.80 steps/s, ratio 0.88 (rounds 0.85, 0.91); idle (load 0.2): ratio 0.852 (rounds 0.92, 0.79).
Where the rest went (steady state of a race, /proc and Chromium's Performance metrics): the browser, not the
server. Chromium took 20% of a core with everything redrawn every 2 s (Streamlit mounts each changed Plotly
figure anew: about 0.25 CPU s per chart whatever the data), the server's non-training threads about 5%.
Now (progress every 2 s, curves every 4 s, gradient chart and table every 12 s; Chromium 11.5% of a core):
--steps 200 --rounds 4, load 1.6-3.4: CLI 3.88, app 3.78 steps/s, ratio 0.973 (rounds 0.89, 0.96, 0.92, 1.01);
--rounds 3, load 2.9-3.5: ratio 0.911 (rounds 0.91, 1.01, 0.92).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from app_server import REPO, chromium, server

BIN = Path(sys.executable).parent
PRESET = "Plain-56 vs ResNet-56"


def _last_step(metrics: Path) -> int:
    """The step of the last "step" line in a run's metrics.jsonl (0 when none yet); reads only its tail."""
    try:
        with open(metrics, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - 4096))
            tail = f.read().decode("utf-8", "replace")
    except OSError:
        return 0
    for line in reversed(tail.splitlines()):
        if '"kind": "step"' in line:
            try:
                return int(json.loads(line)["step"])
            except (ValueError, KeyError):
                continue  # a line cut by the seek or still being written
    return 0


def _watch(runs: Path, steps: int, skip: int, alive, timeout: float = 1800) -> dict:
    """Poll the one run folder that appears under ``runs`` until its summary.json exists; returns steps/s
    between step ``skip`` and the end (from the metrics' own step count) and the summary's steps/wall_s."""
    deadline = time.monotonic() + timeout
    folder = None
    first = None  # (time, step) of the first sample at or past the warm-up
    last = None
    ended = False
    while time.monotonic() < deadline:
        if folder is None:
            found = [p for p in runs.glob("*") if p.is_dir()] if runs.exists() else []
            folder = found[0] if found else None
        if folder is not None:
            step = _last_step(folder / "metrics.jsonl")
            now = time.monotonic()
            if first is None and step >= skip:
                first = (now, step)  # both ends are the moment a step count first appeared
            if last is None or step != last[1]:
                last = (now, step)
            summary = folder / "summary.json"
            if summary.exists():
                data = json.loads(summary.read_text())
                if first is None or last[1] <= first[1]:
                    raise RuntimeError(f"the run ended before step {skip}: lower --skip or raise --steps")
                return {"steps_per_s": (last[1] - first[1]) / (last[0] - first[0]), "window": (first[1], last[1]),
                        "summary_steps_per_s": data["steps"] / data["wall_s"], "steps": data["steps"],
                        "status": data["status"], "folder": str(folder)}
        if ended:
            raise RuntimeError("the process training the race ended without a summary")
        ended = not alive()  # one more look: it may have written the summary just before exiting
        time.sleep(0.1)
    raise RuntimeError(f"no summary after {timeout:.0f} s")


def run_cli(runs: Path, steps: int, skip: int, env: dict) -> dict:
    cmd = [str(BIN / "resnet-train"), "--preset", PRESET, "--steps", str(steps), "--no-progress",
           "--runs-dir", str(runs)]
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        result = _watch(runs, steps, skip, lambda: proc.poll() is None)
    finally:
        if proc.poll() is None:
            proc.wait(timeout=120)
    return result


def run_app(runs: Path, steps: int, skip: int, env: dict, browser, log: Path) -> dict:
    """A fresh server (its own runs folder), a 1280x720 tab on the Training page, the preset, Start."""
    with server({**env, "RESNET_EXPLORER_RUNS": str(runs)}, log) as (url, _, proc):
        context = browser.new_context(viewport={"width": 1280, "height": 720})
        try:
            tab = context.new_page()
            tab.set_default_timeout(180_000)
            tab.goto(f"{url}/training")
            main = tab.locator('[data-testid="stMain"]')
            main.get_by_role("heading", name="Training race").wait_for()
            _idle(tab)
            main.locator('[data-testid="stSelectbox"]').filter(has_text="Race").first.click()
            tab.get_by_role("option", name=PRESET, exact=True).click()
            _idle(tab)
            box = main.get_by_role("spinbutton", name="Steps", exact=True)
            box.fill(str(steps))
            box.press("Enter")
            _idle(tab)
            main.get_by_role("button", name="Start", exact=True).click()
            result = _watch(runs, steps, skip, lambda: proc.poll() is None)
            # The page must have drawn the live curves while it trained (else nothing was watching).
            tab.locator('[data-testid="stPlotlyChart"] .main-svg').first.wait_for(timeout=60_000)
        finally:
            context.close()
    result["config"] = json.loads((Path(result["folder"]) / "config.json").read_text())["config"]
    return result


def _idle(tab) -> None:
    tab.wait_for_timeout(300)
    tab.locator('[data-testid="stStatusWidget"]').wait_for(state="detached", timeout=180_000)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--steps", type=int, default=200, help="steps of the preset race (its default is 1000)")
    p.add_argument("--rounds", type=int, default=1, help="app and CLI runs each, alternating")
    p.add_argument("--skip", type=int, default=10, help="steps of warm-up left out of the rate")
    args = p.parse_args()
    env = {k: v for k, v in os.environ.items() if k != "RESNET_EXPLORER_RUNS"}
    load_before = os.getloadavg()
    apps, clis = [], []
    with tempfile.TemporaryDirectory(prefix="bench-race-") as tmp, chromium() as browser:
        for i in range(args.rounds):
            app = run_app(Path(tmp) / f"app{i}", args.steps, args.skip, env, browser, Path(tmp) / "server.log")
            cli = run_cli(Path(tmp) / f"cli{i}", args.steps, args.skip, env)
            cli_config = json.loads((Path(cli["folder"]) / "config.json").read_text())["config"]
            if {**app["config"], "name": ""} != {**cli_config, "name": ""}:
                raise RuntimeError("the app and the CLI raced different settings")
            apps.append(app)
            clis.append(cli)
            print(f"round {i + 1}: app {app['steps_per_s']:.2f} steps/s (steps {app['window'][0]}-"
                  f"{app['window'][1]}), CLI {cli['steps_per_s']:.2f} steps/s (steps {cli['window'][0]}-"
                  f"{cli['window'][1]}), ratio {app['steps_per_s'] / cli['steps_per_s']:.3f}; "
                  f"load {os.getloadavg()[0]:.2f}", flush=True)
    load_after = os.getloadavg()
    app_rate = statistics.median(a["steps_per_s"] for a in apps)
    cli_rate = statistics.median(c["steps_per_s"] for c in clis)
    app_wall = statistics.median(a["summary_steps_per_s"] for a in apps)
    cli_wall = statistics.median(c["summary_steps_per_s"] for c in clis)
    cfg = apps[0]["config"]
    print(f"{PRESET}, {args.steps} steps (width {cfg['width']}, {cfg['image_size']} px, batch {cfg['batch_size']}), "
          f"{os.cpu_count()} CPUs, OMP_WAIT_POLICY={env.get('OMP_WAIT_POLICY', '(unset)')} in the shell")
    print(f"CLI (resnet-train):              {cli_rate:6.2f} steps/s   (summary steps/wall_s {cli_wall:6.2f})")
    print(f"app (server + Chromium 1280x720): {app_rate:6.2f} steps/s   (summary steps/wall_s {app_wall:6.2f})")
    # Each round's ratio compares two runs minutes apart: its median is robust to the machine's drift.
    per_round = statistics.median(a["steps_per_s"] / c["steps_per_s"] for a, c in zip(apps, clis, strict=True))
    print(f"ratio app/CLI: {app_rate / cli_rate:.3f} (target >= 0.90); median of the rounds' ratios "
          f"{per_round:.3f}; from the summaries: {app_wall / cli_wall:.3f}")
    print(f"load average (1, 5, 15 min): before {load_before[0]:.2f} {load_before[1]:.2f} {load_before[2]:.2f}, "
          f"after {load_after[0]:.2f} {load_after[1]:.2f} {load_after[2]:.2f}")


if __name__ == "__main__":
    main()
