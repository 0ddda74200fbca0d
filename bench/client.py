"""A small keep-alive HTTP/1.1 client on asyncio, for driving the API from the benchmark.

The load generator shares the two cores with the service it measures, so it must cost next to nothing: no header
parsing beyond status and ``Content-Length``, one TCP connection per concurrent caller, loopback only.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

#: Seconds one request may take before the benchmark gives up on it.
REQUEST_TIMEOUT_S = 30.0


class HttpError(RuntimeError):
    """The server answered something the benchmark did not expect."""


@dataclass(frozen=True)
class Answer:
    status: int
    body: bytes
    sent_at: float  #: time.monotonic() when the request was written
    latency_s: float

    def json(self) -> Any:
        return json.loads(self.body)


class HttpConnection:
    """One keep-alive connection to ``base_url`` (``http://127.0.0.1:port``)."""

    def __init__(self, base_url: str, headers: dict[str, str] | None = None) -> None:
        parts = urlsplit(base_url)
        if parts.scheme != "http" or parts.hostname is None:
            raise ValueError(f"{base_url!r} is not an http:// URL")
        self.host = parts.hostname
        self.port = parts.port or 80
        extra = "".join(f"{k}: {v}\r\n" for k, v in (headers or {}).items())
        self._header_tail = f"Host: {self.host}:{self.port}\r\n{extra}".encode()
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def _connect(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        if self._reader is None or self._writer is None or self._writer.is_closing():
            self._reader, self._writer = await asyncio.open_connection(self.host, self.port)
        return self._reader, self._writer

    async def request(self, method: str, path: str, body: bytes = b"") -> Answer:
        reader, writer = await self._connect()
        head = f"{method} {path} HTTP/1.1\r\n".encode() + self._header_tail
        if body:
            head += b"Content-Type: application/json\r\n"
        head += f"Content-Length: {len(body)}\r\n\r\n".encode()
        sent_at = time.monotonic()
        writer.write(head + body)
        status, payload = await asyncio.wait_for(self._read_answer(reader), REQUEST_TIMEOUT_S)
        return Answer(status, payload, sent_at, time.monotonic() - sent_at)

    @staticmethod
    async def _read_answer(reader: asyncio.StreamReader) -> tuple[int, bytes]:
        head = await reader.readuntil(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        status = int(lines[0].split(b" ", 2)[1])
        length = 0
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value.strip())
            elif name.strip().lower() == b"transfer-encoding":
                raise HttpError("chunked answers are not supported by the benchmark client")
        payload = await reader.readexactly(length) if length else b""
        return status, payload

    async def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            with contextlib.suppress(OSError):
                await self._writer.wait_closed()
        self._reader = self._writer = None


class JobClient:
    """Submits jobs to ``POST /v1/jobs`` over ``concurrency`` keep-alive connections."""

    def __init__(self, base_url: str, api_key: str, concurrency: int = 16) -> None:
        self.base_url = base_url
        self.concurrency = concurrency
        self._headers = {"Authorization": f"Bearer {api_key}"}

    async def submit_all(self, bodies: list[bytes], deadline: float | None = None) -> list[Answer | None]:
        """POST every body, ``concurrency`` at a time; stop early at ``deadline`` (monotonic).

        The answers come back in the order of ``bodies`` (None for a body not sent before the deadline).
        """
        answers: list[Answer | None] = [None] * len(bodies)
        queue: asyncio.Queue[int] = asyncio.Queue()
        for index in range(len(bodies)):
            queue.put_nowait(index)

        async def caller() -> None:
            connection = HttpConnection(self.base_url, self._headers)
            try:
                while not queue.empty():
                    if deadline is not None and time.monotonic() >= deadline:
                        return
                    index = queue.get_nowait()
                    answer = await connection.request("POST", "/v1/jobs", bodies[index])
                    if answer.status != 202:
                        raise HttpError(f"submission answered {answer.status}: {answer.body[:300]!r}")
                    answers[index] = answer
            finally:
                await connection.close()

        await asyncio.gather(*(caller() for _ in range(self.concurrency)))
        return answers


def job_body(
    segments: list[str],
    *,
    pair: tuple[str, str] = ("en", "fr"),
    options: dict[str, int] | None = None,
    callback_url: str | None = None,
    label: str | None = None,
) -> bytes:
    """The JSON body of one submission; ``label`` travels in ``metadata.bench`` and comes back in the event."""
    body: dict[str, Any] = {"source_lang": pair[0], "target_lang": pair[1], "segments": segments}
    if options:
        body["options"] = options
    if callback_url:
        body["callback_url"] = callback_url
    if label:
        body["metadata"] = {"bench": label}
    return json.dumps(body, separators=(",", ":")).encode()
