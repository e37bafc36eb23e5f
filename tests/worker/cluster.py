"""Real processes for the scale-out tests: a private Redis, Celery workers and the sweeper started with the
commands of docker-compose.yml, the API server, and a TCP proxy that can cut a worker off its database.

Every process listens on 127.0.0.1 only, runs in a process group of its own, and is stopped by process id
(the whole group, so a Celery worker's pool children go with it). Waits are bounded and their failures
quote the process's log.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.compose import local_argv
from unlearning_client import NO_RETRIES, Client, ServiceUnavailable, ServiceUnreachable

REPO = Path(__file__).resolve().parents[2]
READY_TIMEOUT_S = 120.0  # a worker imports torch and Celery on two busy cores


def alive(pid: int) -> bool:
    """Whether a process with this id exists (signal 0 checks without sending anything)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def healthy(base: str) -> bool:
    """Whether the service at `base` answers /healthz with 200 (through the client, without retries)."""
    try:
        with Client(base, retry=NO_RETRIES, timeout=5) as probe:
            return probe.health().status == "ok"
    except (ServiceUnreachable, ServiceUnavailable):  # not listening yet, or not ready (503)
        return False


def wait_healthy(base: str, process: subprocess.Popen, *, timeout: float, log: Path) -> None:
    """Wait until the server at `base` answers /healthz with 200; fail with its log if it exits or is late."""
    deadline = time.monotonic() + timeout
    while True:
        assert process.poll() is None, log.read_text()[-3000:]
        if healthy(base):
            return
        assert time.monotonic() < deadline, f"no /healthz from {base} within {timeout:.0f} s:\n{log.read_text()[-3000:]}"
        time.sleep(0.3)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(predicate: Callable[[], Any], *, timeout: float, what: str, interval: float = 0.2,
             logs: list[Proc] = ()) -> Any:  # fmt: skip
    """Poll until predicate() returns something truthy; fail with `what` and the processes' log tails."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            tails = "\n".join(f"--- {p.name} (pid {p.pid}) ---\n{p.tail()}" for p in logs)
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}\n{tails}")
        time.sleep(interval)


class Proc:
    """A child process in its own process group, with its output in a log file."""

    def __init__(self, name: str, argv: list[str], *, env: dict[str, str], log_dir: Path) -> None:
        self.name, self.argv = name, argv
        self.log_path = log_dir / f"{name}-{time.monotonic_ns()}.log"
        self._log = self.log_path.open("wb")
        self.popen = subprocess.Popen(
            argv, cwd=REPO, env=env, stdout=self._log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True,
        )  # fmt: skip
        self.pid = self.popen.pid

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def tail(self, chars: int = 3000) -> str:
        return self.log()[-chars:]

    def alive(self) -> bool:
        return self.popen.poll() is None

    def kill(self, sig: int = signal.SIGKILL) -> None:
        """Signal the whole group (a Celery worker's pool children too); SIGKILL waits until it is gone."""
        try:
            os.killpg(self.pid, sig)
        except ProcessLookupError:
            pass
        if sig == signal.SIGKILL:
            self.popen.wait(timeout=30)

    def signal_main(self, sig: int) -> None:
        """Signal the main process only, as `docker stop` signals a container's first process."""
        os.kill(self.pid, sig)

    def stop(self, timeout: float = 20.0) -> None:
        if self.alive():
            self.kill(signal.SIGTERM)
            try:
                self.popen.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                pass
        self.kill(signal.SIGKILL)  # also whatever the group left behind
        self._log.close()


def start_redis(port: int, *, log_dir: Path) -> Proc:
    # no persistence, like the compose file's: a restart loses every queued message
    argv = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
            "--dir", str(log_dir)]  # fmt: skip
    proc = Proc("redis", argv, env=dict(os.environ), log_dir=log_dir)
    wait_for(lambda: _answers_ping(port), timeout=20, what=f"redis on port {port}", logs=[proc])
    return proc


def _answers_ping(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
            s.sendall(b"PING\r\n")
            return s.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def start_worker(name: str, *, env: dict[str, str], log_dir: Path) -> Proc:
    """The compose file's GPU worker command, with a node name of its own (several run on one host)."""
    argv = [a.replace("gpu@", f"{name}@") for a in local_argv("worker")]
    return _start_celery(name, argv, env=env, log_dir=log_dir)


def start_sweeper(*, env: dict[str, str], log_dir: Path) -> Proc:
    """The compose file's sweeper command (beat + the cpu queue), its schedule file in the test's folder."""
    argv = local_argv("sweeper")
    argv[argv.index("--schedule") + 1] = str(log_dir / "celerybeat-schedule")
    return _start_celery("sweeper", argv, env=env, log_dir=log_dir)


def _start_celery(name: str, argv: list[str], *, env: dict[str, str], log_dir: Path) -> Proc:
    proc = Proc(name, argv, env=env, log_dir=log_dir)
    wait_for(lambda: " ready." in proc.log() or not proc.alive(), timeout=READY_TIMEOUT_S,
             what=f"celery {name} to be ready", interval=0.5, logs=[proc])  # fmt: skip
    assert proc.alive(), f"celery {name} exited:\n{proc.tail()}"
    return proc


def start_api(port: int, *, env: dict[str, str], log_dir: Path) -> Proc:
    """The compose file's API command on a loopback port."""
    argv = local_argv("api")
    argv[argv.index("--host") + 1] = "127.0.0.1"
    argv[argv.index("--port") + 1] = str(port)
    proc = Proc("api", argv, env=env, log_dir=log_dir)
    wait_for(lambda: healthy(f"http://127.0.0.1:{port}") or not proc.alive(), timeout=READY_TIMEOUT_S,
             what="the API to answer", interval=0.5, logs=[proc])  # fmt: skip
    assert proc.alive(), f"the API exited:\n{proc.tail()}"
    return proc


def start_proxy(listen_port: int, target_port: int, *, log_dir: Path) -> Proc:
    """A TCP forwarder; killing it cuts every connection through it at once (a network partition)."""
    argv = [sys.executable, str(Path(__file__).with_name("tcp_proxy.py")), str(listen_port), str(target_port)]
    proc = Proc("proxy", argv, env=dict(os.environ), log_dir=log_dir)
    wait_for(lambda: _accepts(listen_port), timeout=20, what=f"the proxy on port {listen_port}", logs=[proc])
    return proc


def _accepts(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return True
    except OSError:
        return False


def start_blackhole(port: int, *, log_dir: Path) -> Proc:
    """Accepts connections and never answers: a broker that hangs."""
    code = ("import socket, time\ns = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n"
            f"s.bind(('127.0.0.1', {port})); s.listen(64)\nconns = []\n"
            "while True:\n    conns.append(s.accept()[0])\n")  # fmt: skip
    proc = Proc("blackhole", [sys.executable, "-c", code], env=dict(os.environ), log_dir=log_dir)
    wait_for(lambda: _accepts(port), timeout=20, what="the black-hole listener", logs=[proc])
    return proc


def start_receiver(port: int, out: Path, *, log_dir: Path) -> Proc:
    """An HTTP endpoint that answers 204 to every POST and appends its body, one JSON line each, to `out`."""
    code = (
        "import json, sys\nfrom http.server import BaseHTTPRequestHandler, HTTPServer\n"
        "class H(BaseHTTPRequestHandler):\n"
        "    def do_POST(self):\n"
        "        body = self.rfile.read(int(self.headers['Content-Length']))\n"
        "        with open(sys.argv[2], 'ab') as f:\n"
        "            f.write(json.dumps({'headers': dict(self.headers), 'body': body.decode()}).encode() + b'\\n')\n"
        "        self.send_response(204)\n        self.end_headers()\n"
        "HTTPServer(('127.0.0.1', int(sys.argv[1])), H).serve_forever()\n"
    )
    proc = Proc("receiver", [sys.executable, "-c", code, str(port), str(out)], env=dict(os.environ), log_dir=log_dir)
    wait_for(lambda: _accepts(port), timeout=20, what="the callback receiver", logs=[proc])
    return proc
