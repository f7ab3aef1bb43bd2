"""Run one fuzzed property in a child process and watch it from outside: resident memory and wall clock.

A Python with torch costs about 2 s to start and maps about 3.6 GB of virtual memory, so there is one child
per property (not per example) and no address-space limit: the parent polls ``/proc/<pid>/status`` (VmRSS)
every 50 ms and kills the child when it grows more than ``rss_bound`` over its own baseline (the RSS after
its imports) or runs longer than ``timeout``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
POLL_SECONDS = 0.05
RSS_BOUND = 3 * 2**30  # growth over the child's baseline that fails the property


@dataclass
class Watched:
    """What the parent saw: the child's exit, its last RESULT, peak RSS growth, and why it was stopped."""

    returncode: int
    result: dict[str, Any] | None
    baseline_rss: int
    peak_rss: int
    seconds: float
    killed: str | None = None
    output: list[str] = field(default_factory=list)

    @property
    def growth(self) -> int:
        return self.peak_rss - self.baseline_rss


def _rss(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:  # the child has exited
        pass
    return 0


def run_property(name: str, examples: int, *, timeout: float, rss_bound: int = RSS_BOUND) -> Watched:
    """Run ``tests.fuzz.properties <name> <examples>`` in a child; kill it over ``rss_bound`` or ``timeout``."""
    env = {**os.environ, "OMP_WAIT_POLICY": "PASSIVE", "PYTHONUNBUFFERED": "1"}
    child = subprocess.Popen([sys.executable, "-m", "tests.fuzz.properties", name, str(examples)], cwd=REPO,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(child.stdout), daemon=True)  # type: ignore[arg-type]
    reader.start()
    start, baseline, peak, killed = time.monotonic(), 0, 0, None
    while child.poll() is None:
        rss = _rss(child.pid)
        peak = max(peak, rss)
        if not baseline and any(line.startswith("READY ") for line in lines):
            baseline = json.loads(next(line for line in lines if line.startswith("READY "))[6:])["rss"]
        if baseline and rss - baseline > rss_bound:
            killed = f"resident memory grew {(rss - baseline) / 2**30:.2f} GB over its baseline"
        elif time.monotonic() - start > timeout:
            killed = f"still running after {timeout:.0f} s"
        if killed:
            child.kill()
            break
        time.sleep(POLL_SECONDS)
    child.wait()
    reader.join(timeout=5)
    result = next((json.loads(line[7:]) for line in reversed(lines) if line.startswith("RESULT ")), None)
    if result is not None:  # the child's own high-water mark catches a peak between two polls
        peak = max(peak, result["peak_rss"])
    return Watched(child.returncode, result, baseline, peak, time.monotonic() - start, killed, lines)


def report(examples: int, timeout: float) -> int:
    """Run both properties with ``examples`` each; print examples, outcomes, time and peak RSS; 1 on failure."""
    failed = False
    for name in ("images", "checkpoints"):
        watched = run_property(name, examples, timeout=timeout)
        result = watched.result or {}
        ran = result.get("examples", 0)
        outcomes = ", ".join(f"{k} {v}" for k, v in sorted(result.get("outcomes", {}).items())) or "none"
        print(f"{name}: {ran} examples in {watched.seconds:.1f} s ({ran / max(watched.seconds, 1e-9):.1f}/s); "
              f"outcomes: {outcomes}; peak RSS {watched.peak_rss / 2**20:,.0f} MB "
              f"({watched.growth / 2**20:+,.0f} MB over the {watched.baseline_rss / 2**20:,.0f} MB baseline, "
              f"bound {RSS_BOUND / 2**20:,.0f} MB)", flush=True)
        if watched.killed or watched.returncode != 0 or ran < examples:
            failed = True
            print(f"  FAILED: {watched.killed or f'exit {watched.returncode}'}")
            print("".join(watched.output[-40:]))
    return 1 if failed else 0


if __name__ == "__main__":  # python -m tests.fuzz.watch EXAMPLES TIMEOUT (what benchmarks/bench_fuzz.py runs)
    raise SystemExit(report(int(sys.argv[1]), float(sys.argv[2])))
