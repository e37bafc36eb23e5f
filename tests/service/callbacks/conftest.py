"""Fixtures of the callback tests: settings that sign with a fixed key and allow loopback receivers, and a
real HTTP receiver on 127.0.0.1 that records what it is sent."""

from __future__ import annotations

import base64
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from service.settings import Settings

SEED_B64 = base64.b64encode(bytes(range(32))).decode()


@pytest.fixture
def settings(database_url: str, data_root: Path, tmp_path: Path) -> Settings:
    # the receiver listens on loopback, which the SSRF guard refuses unless told otherwise
    return Settings(
        database_url=database_url,
        data_root=data_root,
        storage_url=str(tmp_path / "checkpoints"),
        signing_key=SEED_B64,
        signing_key_file=tmp_path / "unused-key",
        allow_private_callbacks=True,
        webhook_retry_delays_seconds=[10, 30],  # three attempts: the first, then after 10 s and after 30 s
        webhook_retry_jitter=0.0,  # exact times; the jitter has tests of its own
    )


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Receiver:
    url: str
    port: int
    status: int = 204  # what it answers
    headers: dict[str, str] = field(default_factory=dict)  # and with which headers (e.g. Retry-After)
    # while cleared, it holds every answer back (a receiver that does not answer in time)
    answering: threading.Event = field(default_factory=threading.Event)
    received: list[Received] = field(default_factory=list)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    state = Receiver(url="", port=0)
    state.answering.set()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # http.server's naming
            body = self.rfile.read(int(self.headers.get("content-length", 0)))
            state.received.append(Received(self.path, {k.lower(): v for k, v in self.headers.items()}, body))
            state.answering.wait(timeout=30)
            self.send_response(state.status)
            for name, value in state.headers.items():
                self.send_header(name, value)
            self.send_header("content-length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:  # keep test output clean
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    state.port = server.server_address[1]
    state.url = f"http://127.0.0.1:{state.port}/hooks/unlearning"
    try:
        yield state
    finally:
        state.answering.set()  # a held answer would keep the server from closing
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
