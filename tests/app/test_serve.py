"""``python -m resnet_explorer.serve`` (what ``make serve`` runs) as a teacher runs it: it says where the class
goes, reports a replica that dies, and Ctrl+C (SIGTERM here) leaves no nginx or replica behind. The class itself,
browsers on two replicas and one of them killed, is tests/browser/test_replicas.py."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from resnet_explorer.serve import (
    INSTALL_HINT,
    REPLICA_HEADER,
    ServeError,
    free_port,
    nginx_binary,
    nginx_config,
    replica_threads,
    serving,
)

pytestmark = pytest.mark.slow


def _children(pid: int) -> set[int]:
    """Every live descendant of ``pid`` (from /proc)."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            parents[int(entry.name)] = int(fields[1])
    found, frontier = set(), {pid}
    while frontier:
        frontier = {child for child, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return found


def _running(pid: int) -> bool:
    """Alive and not a zombie waiting for its parent (the state letter after the command's parenthesis)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _line(proc: subprocess.Popen, pattern: str, timeout: float = 240) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if re.search(pattern, line):
            return line
        assert line or proc.poll() is None, f"serve ended (code {proc.returncode}) before printing {pattern!r}"
    raise AssertionError(f"serve did not print {pattern!r} within {timeout} s")


def test_serve_says_where_reports_a_dead_replica_and_stops_everything(tmp_path: Path) -> None:
    if nginx_binary() is None:
        pytest.skip(INSTALL_HINT)
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "resnet_explorer.serve", "--replicas", "2", "--port", str(port),
                             "--runs", str(tmp_path / "runs")], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, env={**os.environ, "RESNET_EXPLORER_PRIME": "none"}, cwd=tmp_path)
    try:
        ready = _line(proc, r"^ResNet Explorer: 2 replicas behind nginx at ")
        assert "students:" not in ready  # loopback: no address to hand out
        assert f"http://localhost:{port}" in ready and str(tmp_path / "runs" / "serve") in ready
        replicas = re.findall(r"127\.0\.0\.1:(\d+)", ready)
        assert len(replicas) == 2
        answer = urllib.request.urlopen(f"http://localhost:{port}/_stcore/health", timeout=10)
        assert answer.read() == b"ok" and answer.headers[REPLICA_HEADER] in {f"127.0.0.1:{p}" for p in replicas}
        config = (tmp_path / "runs" / "serve" / "nginx.conf").read_text()
        assert f"listen localhost:{port};" in config and "client_max_body_size 257m;" in config
        family = _children(proc.pid)
        assert len(family) >= 4  # two replicas, nginx's master and at least one worker
        # A replica dies: one sentence names it, and the class goes on through the other.
        first = next(p for p in family if f"--server.port\0{replicas[0]}" in
                     Path(f"/proc/{p}/cmdline").read_text(errors="replace"))
        os.kill(first, signal.SIGKILL)
        dead = _line(proc, r"^Replica 1 ")
        assert f"(127.0.0.1:{replicas[0]}) stopped" in dead and "reconnect to the others" in dead
        assert urllib.request.urlopen(f"http://localhost:{port}/_stcore/health", timeout=10).read() == b"ok"
        proc.send_signal(signal.SIGTERM)  # what Ctrl+C does to make serve
        assert proc.wait(timeout=60) == 0
        deadline = time.monotonic() + 10
        while (left := {p for p in family if _running(p)}) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not left, f"left running after serve stopped: {left}"
        with pytest.raises(OSError):
            urllib.request.urlopen(f"http://localhost:{port}/_stcore/health", timeout=5)
    finally:
        if proc.poll() is None:
            proc.kill()


def test_killing_serve_itself_leaves_no_replica_or_nginx_behind(tmp_path: Path) -> None:
    """A closed terminal or a kill -9 gives serve no chance to clean up: its children stop by themselves."""
    if nginx_binary() is None:
        pytest.skip(INSTALL_HINT)
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "resnet_explorer.serve", "--replicas", "2", "--port", str(port),
                             "--runs", str(tmp_path / "runs")], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, env={**os.environ, "RESNET_EXPLORER_PRIME": "none"}, cwd=tmp_path)
    try:
        _line(proc, r"^ResNet Explorer: 2 replicas behind nginx at ")
        family = _children(proc.pid)
        assert len(family) >= 4
        proc.kill()
        proc.wait(timeout=30)
        deadline = time.monotonic() + 20
        while (left := {p for p in family if _running(p)}) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not left, f"still running after serve was killed: {left}"
    finally:
        if proc.poll() is None:
            proc.kill()


def test_no_replica_is_refused_and_the_config_is_nginxs_own(tmp_path: Path) -> None:
    with pytest.raises(ServeError, match="--replicas must be at least 1"), serving(0, runs=tmp_path):
        pass
    config = nginx_config([5001, 5002], address="0.0.0.0", port=8600, prefix=tmp_path, upload_mb=256)
    assert "hash $route consistent;" in config and config.count("max_fails=1 fail_timeout=10s;") == 2
    assert "listen 0.0.0.0:8600;" in config and 'proxy_set_header Connection $connection_upgrade;' in config
    # The Host keeps its port: Streamlit compares the page's Origin (host:port) with it before a websocket opens.
    assert "proxy_set_header Host $http_host;" in config
    assert all(f"{tmp_path}/" in line for line in config.splitlines() if "_path " in line or line.startswith("pid"))
    if nginx_binary() is not None:  # nginx itself accepts it (no port is opened by -t)
        (tmp_path / "tmp").mkdir()
        (tmp_path / "nginx.conf").write_text(config)
        checked = subprocess.run([nginx_binary(), "-t", "-q", "-p", str(tmp_path), "-c", str(tmp_path / "nginx.conf")],
                                 capture_output=True, text=True)
        assert checked.returncode == 0, checked.stderr


def test_replicas_share_the_cores_out_between_their_torch_threads() -> None:
    assert [replica_threads(n, cores=2) for n in (1, 2, 3, 8)] == [2, 1, 1, 1]
    assert [replica_threads(n, cores=16) for n in (1, 2, 3, 4)] == [16, 8, 5, 4]
    assert replica_threads(2) == max(1, len(os.sched_getaffinity(0)) // 2)  # the cores this process may use
