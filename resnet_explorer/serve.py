"""A class on many replicas: ``make serve REPLICAS=N [ADDRESS=...] [PORT=...]``.

    python -m resnet_explorer.serve --replicas N [--address localhost] [--port 8501] [--runs DIR]

Starts N Streamlit replicas of the app on free loopback ports and Debian's nginx in front of them on
``address:port``. Streamlit keeps each session (and its uploads) in one process's memory, so a browser must
stay on the replica that holds its session (streamlit issue 4173: otherwise "Invalid session_id" on upload).
Debian's nginx 1.22 has neither ``sticky`` nor active health checks (NGINX Plus), so:

* the route is a cookie nginx sets (``resnet_explorer_route``, a random value on a browser's first request)
  and ``hash $route consistent`` picks the replica from it: every request of that browser (page, websocket,
  uploads) lands on the same replica, whatever its address. ``ip_hash`` would pin a whole classroom behind one
  NAT address to one replica, hence the cookie;
* passive health checks: ``max_fails=1 fail_timeout=10s``, and a request a dead replica refuses goes on to the
  next one (``proxy_next_upstream``): its students reconnect to a living replica and get a fresh session there;
* websocket upgrade headers, and ``client_max_body_size`` at the app's own upload limit.

Each replica's torch gets the machine's cores shared out (``OMP_NUM_THREADS`` = cores // N, at least 1; an
``OMP_NUM_THREADS`` already set is kept), so that N replicas computing at once do not oversubscribe the cores.

nginx runs under a private prefix (``<runs>/serve``: its config, pid, logs and temporary files), in the
foreground as a child of this process: no system service, no port 80. All replicas share one runs folder
(races, uploads, caches) and one cookie secret (a session's XSRF cookie is valid on every replica). A replica
that dies is reported and not restarted: a restarted one would take its old route values back while those
browsers' sessions live on elsewhere. Stop with Ctrl+C (everything stops; on Linux the replicas and nginx also
stop if serve itself is killed or its terminal closes).
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import os
import pwd
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from resnet_core.settings import RUNS_ENV, runs_dir

from .launch import DEFAULT_ADDRESS, DEFAULT_PORT, app_script

ROUTE_COOKIE = "resnet_explorer_route"
REPLICA_HEADER = "X-ResNet-Explorer-Replica"  # which replica answered (the upstream's address), for the curious
FAIL_TIMEOUT_S = 10
HEALTH_TIMEOUT_S = 180.0
INSTALL_HINT = ("Debian's nginx is not installed: `sudo apt-get install nginx` (1.22 is enough; no service needs "
                "to run), or `make serve`, which installs it when run as root.")


THREADS_ENV = "OMP_NUM_THREADS"  # torch's threads per process, read when it starts


def replica_threads(replicas: int, cores: int | None = None) -> int:
    """Torch threads for each of ``replicas`` on this machine's cores: the cores shared out, at least one each.
    Every replica at torch's default (one thread per core) oversubscribes the cores as soon as two compute at
    once, and an OpenMP thread waiting at a barrier for a descheduled one stalls its whole operation."""
    return max(1, (cores or _usable_cores()) // max(1, replicas))


def _usable_cores() -> int:
    """The cores this process may run on (its CPU affinity, as a container's cpuset sets it), else all."""
    try:
        return len(os.sched_getaffinity(0)) or 1
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


class ServeError(RuntimeError):
    """Serving cannot start as asked; ``str(error)`` is one sentence saying what to do."""


def nginx_binary() -> str | None:
    """Debian's nginx (on the PATH, or /usr/sbin for a user whose PATH lacks it), or None."""
    found = shutil.which("nginx")
    return found or ("/usr/sbin/nginx" if os.access("/usr/sbin/nginx", os.X_OK) else None)


def upload_limit_mb() -> int:
    """The app's own upload limit (``server.maxUploadSize`` in its config.toml), for nginx's body limit."""
    text = (app_script().parent / ".streamlit" / "config.toml").read_text()
    match = re.search(r"^\s*maxUploadSize\s*=\s*(\d+)", text, flags=re.MULTILINE)
    return int(match.group(1)) if match else 200  # Streamlit's own default


def worker_user() -> str:
    """The user a root nginx runs its workers as: Debian's ``www-data`` where it exists, else ``nobody``."""
    try:
        pwd.getpwnam("www-data")
        return "www-data"
    except KeyError:
        return "nobody"


def _die_with_parent() -> None:
    """In a child, before exec: on Linux, be sent SIGTERM when serve itself dies (a closed terminal, a kill -9),
    so no replica or nginx outlives it holding the port."""
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def nginx_config(replica_ports: Sequence[int], *, address: str, port: int, prefix: Path, upload_mb: int,
                 temp: Path | None = None) -> str:
    """nginx.conf for ``replica_ports`` on loopback behind ``address:port``; its pid and logs under ``prefix``,
    its temporary files (uploads being received) under ``temp`` (default ``prefix/tmp``)."""
    temp = temp if temp is not None else prefix / "tmp"
    servers = "\n".join(f"        server 127.0.0.1:{p} max_fails=1 fail_timeout={FAIL_TIMEOUT_S}s;"
                        for p in replica_ports)
    listen = f"[{address}]:{port}" if ":" in address else f"{address}:{port}"
    # A root master hands its workers (what faces the network) to an unprivileged user; serving() gives that
    # user the temporary folders, where uploads are buffered.
    user = f"user {worker_user()};\n" if os.geteuid() == 0 else ""
    return f"""# Written by resnet_explorer.serve for this run of `make serve`; not a system service.
{user}worker_processes auto;
daemon off;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
events {{ worker_connections 1024; }}

http {{
    access_log {prefix}/access.log combined;
    client_body_temp_path {temp}/client_body;
    proxy_temp_path {temp}/proxy;
    fastcgi_temp_path {temp}/fastcgi;
    uwsgi_temp_path {temp}/uwsgi;
    scgi_temp_path {temp}/scgi;
    default_type application/octet-stream;  # every response is proxied with its own type

    map $http_upgrade $connection_upgrade {{ default upgrade; "" close; }}
    # A browser's route: its cookie, or a new random value on its first request (set below).
    map $cookie_{ROUTE_COOKIE} $route {{ "" $request_id; default $cookie_{ROUTE_COOKIE}; }}

    upstream replicas {{
        hash $route consistent;
{servers}
    }}

    server {{
        listen {listen};
        client_max_body_size {upload_mb + 1}m;  # the app's per-file limit, plus the multipart envelope

        location / {{
            proxy_pass http://replicas;
            proxy_http_version 1.1;
            proxy_set_header Upgrade $http_upgrade;
            proxy_set_header Connection $connection_upgrade;
            proxy_set_header Host $http_host;  # with its port: Streamlit checks the Origin against it
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto $scheme;
            proxy_read_timeout 1d;  # a websocket stays open for the whole lesson
            proxy_send_timeout 1d;
            proxy_buffering off;
            proxy_next_upstream error timeout http_502 http_503;
            add_header Set-Cookie "{ROUTE_COOKIE}=$route; Path=/; HttpOnly; SameSite=Lax" always;
            add_header {REPLICA_HEADER} $upstream_addr always;
        }}
    }}
}}
"""


@dataclass
class Replica:
    index: int
    port: int
    process: subprocess.Popen
    log: Path

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"


@dataclass
class Served:
    """A running proxy and its replicas (what :func:`serving` yields)."""

    url: str
    nginx: subprocess.Popen
    prefix: Path
    replicas: list[Replica] = field(default_factory=list)

    def alive(self) -> list[Replica]:
        return [r for r in self.replicas if r.process.poll() is None]


def _healthy(url: str) -> bool:
    try:
        return urllib.request.urlopen(f"{url}/_stcore/health", timeout=2).read() == b"ok"
    except OSError:
        return False


def _wait_healthy(urls: Sequence[str], processes: Sequence[subprocess.Popen], logs: Sequence[Path],
                  timeout: float) -> None:
    deadline = time.monotonic() + timeout
    waiting = list(zip(urls, processes, logs, strict=True))
    while waiting:
        for url, process, log in list(waiting):
            if process.poll() is not None:
                raise ServeError(f"A server stopped while starting (exit code {process.returncode}); see {log}.")
            if _healthy(url):
                waiting.remove((url, process, log))
        if waiting and time.monotonic() > deadline:
            raise ServeError(f"{len(waiting)} server(s) did not answer within {timeout:.0f} s; see {waiting[0][2]}.")
        if waiting:
            time.sleep(0.3)


def _stop_process(process: subprocess.Popen, timeout: float = 15.0) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@contextlib.contextmanager
def serving(replicas: int, *, address: str = DEFAULT_ADDRESS, port: int = DEFAULT_PORT, runs: Path | None = None,
            prefix: Path | None = None, extra_env: dict[str, str] | None = None) -> Iterator[Served]:
    """Start ``replicas`` app servers and nginx in front of them; stop all of them when the block ends."""
    if replicas < 1:
        raise ServeError(f"--replicas must be at least 1, not {replicas}.")
    nginx = nginx_binary()
    if nginx is None:
        raise ServeError(INSTALL_HINT)
    runs = (runs or runs_dir()).expanduser().resolve()
    prefix = (prefix or runs / "serve").expanduser().resolve()
    for folder in (prefix / "tmp", runs):
        folder.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, **(extra_env or {}), RUNS_ENV: str(runs),
           # One secret for all: a session's XSRF cookie must hold on whichever replica it reconnects to.
           "STREAMLIT_SERVER_COOKIE_SECRET": secrets.token_hex(32)}
    env.setdefault(THREADS_ENV, str(replica_threads(replicas)))
    started: list[Replica] = []
    proxy: subprocess.Popen | None = None
    cleanup = contextlib.ExitStack()
    try:
        for index in range(replicas):
            replica_port, log = free_port(), prefix / f"replica-{index + 1}.log"
            with open(log, "w") as out:
                process = subprocess.Popen(
                    [sys.executable, "-m", "streamlit", "run", str(app_script()), "--server.port", str(replica_port),
                     "--server.address", "127.0.0.1", "--server.headless", "true"],
                    env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
                    preexec_fn=_die_with_parent)
            started.append(Replica(index + 1, replica_port, process, log))
        _wait_healthy([f"http://{r.address}" for r in started], [r.process for r in started],
                      [r.log for r in started], HEALTH_TIMEOUT_S)
        config = prefix / "nginx.conf"
        temp = prefix / "tmp"
        if os.geteuid() == 0:
            # The workers' user buffers uploads in the temporary folders: a folder of its own under the system's
            # temporary directory, since the runs folder's parents may be closed to it.
            temp = Path(tempfile.mkdtemp(prefix="resnet-explorer-nginx-"))
            cleanup.callback(shutil.rmtree, temp, ignore_errors=True)
            user = pwd.getpwnam(worker_user())
            os.chown(temp, user.pw_uid, user.pw_gid)
        config.write_text(nginx_config([r.port for r in started], address=address, port=port, prefix=prefix,
                                       upload_mb=upload_limit_mb(), temp=temp))
        checked = subprocess.run([nginx, "-t", "-q", "-p", str(prefix), "-c", str(config)], capture_output=True,
                                 text=True)
        if checked.returncode != 0:
            reason = (checked.stderr.strip().splitlines() or [f"exit code {checked.returncode}"])[-1]
            raise ServeError(f"nginx refused its configuration ({reason}); see {config}.")
        with open(prefix / "nginx.out", "w") as out:
            proxy = subprocess.Popen([nginx, "-p", str(prefix), "-c", str(config)], stdout=subprocess.DEVNULL,
                                     stderr=out, start_new_session=True, preexec_fn=_die_with_parent)
        host = f"[{address}]" if ":" in address else address
        url = f"http://{'localhost' if address in ('0.0.0.0', '::') else host}:{port}"
        _wait_healthy([url], [proxy], [prefix / "error.log"], 30.0)
        yield Served(url, proxy, prefix, started)
    finally:
        if proxy is not None:
            _stop_process(proxy)
        for replica in started:
            _stop_process(replica.process)
        cleanup.close()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m resnet_explorer.serve", description=__doc__.splitlines()[0])
    parser.add_argument("--replicas", type=int, default=2, help="app servers behind the proxy (default 2)")
    parser.add_argument("--address", default=DEFAULT_ADDRESS,
                        help="the proxy's address (default: loopback only; 0.0.0.0 for a local network)")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"the proxy's port (default {DEFAULT_PORT})")
    parser.add_argument("--runs", type=Path, default=None, help="the runs folder all replicas share")
    args = parser.parse_args(argv)
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):  # Ctrl+C, kill, a closed terminal
        signal.signal(signum, _stop)
    try:
        with serving(args.replicas, address=args.address, port=args.port, runs=args.runs) as served:
            where = served.url if args.address not in ("0.0.0.0", "::") else \
                f"{served.url} (students: http://<this machine's address>:{args.port})"
            print(f"ResNet Explorer: {len(served.replicas)} replicas behind nginx at {where}; replicas on "
                  + ", ".join(r.address for r in served.replicas) + f"; logs and nginx's config in {served.prefix}",
                  flush=True)
            reported: set[int] = set()
            while True:
                if served.nginx.poll() is not None:
                    print(f"nginx stopped (exit code {served.nginx.returncode}); see {served.prefix / 'error.log'}. "
                          "Stopping the replicas.", file=sys.stderr, flush=True)
                    return 1
                for replica in served.replicas:
                    if replica.process.poll() is not None and replica.index not in reported:
                        reported.add(replica.index)
                        print(f"Replica {replica.index} ({replica.address}) stopped (exit code "
                              f"{replica.process.returncode}); its students reconnect to the others with a fresh "
                              f"session. See {replica.log}.", file=sys.stderr, flush=True)
                if not served.alive():
                    print("Every replica has stopped; stopping nginx.", file=sys.stderr, flush=True)
                    return 1
                time.sleep(0.5)
    except ServeError as error:
        print(f"resnet_explorer.serve: {error}", file=sys.stderr)
        return 2
    except _Stopped:  # everything is stopped by serving()'s own cleanup on the way out
        return 0


class _Stopped(Exception):
    """Raised by a stop signal, during start-up as while serving, so that serving() cleans up either way."""


def _stop(_signum: int, _frame: object) -> None:
    raise _Stopped


if __name__ == "__main__":
    sys.exit(main())
