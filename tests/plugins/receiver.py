"""Fixtures for a real HTTP callback receiver (owned by the delivery work).

:class:`Receiver` is a ``ThreadingHTTPServer`` on 127.0.0.1 that answers from a script (``500, 500, 200``;
``410``; ``429`` with ``Retry-After`` ...; 200 once the script is used up) and records every request with its
headers and raw body. It can be created down (port reserved, nothing listening) and started later.
"""

from __future__ import annotations

import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest


@dataclass(frozen=True)
class Answer:
    """One scripted answer."""

    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ReceivedRequest:
    """One request as the receiver saw it."""

    method: str
    path: str
    headers: dict[str, str]  #: lower-case names
    body: bytes
    received_at: float  #: time.time()
    status: int  #: what the receiver answered


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Receiver:
    """A scriptable callback receiver on 127.0.0.1 (https with ``tls=(certificate, key)``)."""

    def __init__(self, port: int | None = None, path: str = "/hooks", tls: tuple[Path, Path] | None = None) -> None:
        self.port = port or free_port()
        self.path = path
        self.tls = tls
        self.requests: list[ReceivedRequest] = []
        self._script: list[Answer] = []
        self._changed = threading.Condition()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return self.url_with_host("127.0.0.1")

    def url_with_host(self, host: str) -> str:
        scheme = "https" if self.tls else "http"
        return f"{scheme}://{host}:{self.port}{self.path}"

    def script(self, *answers: Answer | int) -> None:
        """Answer the next requests with ``answers`` (ints are status codes), then 200."""
        with self._changed:
            self._script = [a if isinstance(a, Answer) else Answer(a) for a in answers]

    def start(self) -> Receiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                answer = receiver._next_answer()
                self.send_response(answer.status)
                for name, value in answer.headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", "0")
                self.end_headers()
                receiver._record(
                    ReceivedRequest(
                        method="POST",
                        path=self.path,
                        headers={k.lower(): v for k, v in self.headers.items()},
                        body=body,
                        received_at=time.time(),
                        status=answer.status,
                    )
                )

            def log_message(self, format: str, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        if self.tls is not None:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(*self.tls)
            self._server.socket = context.wrap_socket(self._server.socket, server_side=True)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="receiver", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def _next_answer(self) -> Answer:
        with self._changed:
            return self._script.pop(0) if self._script else Answer(200)

    def _record(self, request: ReceivedRequest) -> None:
        with self._changed:
            self.requests.append(request)
            self._changed.notify_all()

    def wait_for(self, count: int, timeout_s: float) -> list[ReceivedRequest]:
        """The first ``count`` requests, waiting up to ``timeout_s``; AssertionError naming what came."""
        deadline = time.monotonic() + timeout_s
        with self._changed:
            while len(self.requests) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    seen = [(r.status, r.headers.get("webhook-id")) for r in self.requests]
                    raise AssertionError(f"receiver got {len(self.requests)} of {count} requests: {seen}")
                self._changed.wait(left)
            return list(self.requests[:count])


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    """A started receiver on 127.0.0.1 that answers 200 until scripted otherwise."""
    server = Receiver().start()
    yield server
    server.stop()


@pytest.fixture
def receiver_factory() -> Iterator[Callable[[], Receiver]]:
    """Makes receivers that are *not* started (port reserved); all are stopped after the test."""
    made: list[Receiver] = []

    def make() -> Receiver:
        server = Receiver()
        made.append(server)
        return server

    yield make
    for server in made:
        server.stop()
