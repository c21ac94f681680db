"""Request limits: body size (an ASGI middleware, so an oversized body is refused before it is read into memory) and
a per-client rate limit (token bucket: ``rate`` requests per second on average, bursts of ``burst``).

Why a token bucket here and not a library: slowapi and friends wrap the same twenty lines around a storage
backend this single-process server does not need; the bucket below keys on the API token's id (or the client
address for open reads) and never stores the token itself."""

from __future__ import annotations

import json
import threading
import time

from .errors import error_body


class BodyLimit:
    """Refuses a request whose body is larger than ``max_bytes`` with 413: at once when Content-Length says so, else
    as soon as the streamed body passes the limit.  The body (at most ``max_bytes``) is read here and handed on, so
    the application never sees more than the limit and an oversized stream is never parsed at all."""

    def __init__(self, app, max_bytes: int, on_refuse=None):
        self.app, self.max_bytes, self.on_refuse = app, max_bytes, on_refuse

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope.get("method") in ("GET", "HEAD", "OPTIONS"):
            return await self.app(scope, receive, send)
        headers = dict(scope.get("headers") or [])
        length = headers.get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > self.max_bytes):
            return await self._refuse(send)
        chunks, seen = [], 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            seen += len(chunk)
            if seen > self.max_bytes:
                return await self._refuse(send)
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body, replayed = b"".join(chunks), False

        async def replay():
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()  # after the body: a disconnect, when the client goes away

        await self.app(scope, replay, send)

    async def _refuse(self, send) -> None:
        if self.on_refuse:
            self.on_refuse()
        body = json.dumps(error_body(f"the request body is larger than {self.max_bytes} bytes", "body",
                                     "send fewer or shorter texts per request")).encode()
        await send({"type": "http.response.start", "status": 413,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                                (b"connection", b"close")]})
        await send({"type": "http.response.body", "body": body})


class RateLimiter:
    """Token buckets per client key: ``rate`` requests per second on average, ``burst`` at once."""

    def __init__(self, rate: float, burst: int, max_keys: int = 100_000):
        self.rate, self.burst, self.max_keys = float(rate), int(burst), max_keys
        self._buckets: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def take(self, key: str) -> float:
        """0.0 when the request may go ahead, else the seconds until it may."""
        if self.rate <= 0:
            return 0.0
        now = time.monotonic()
        with self._lock:
            tokens, last = self._buckets.get(key, (float(self.burst), now))
            tokens = min(float(self.burst), tokens + (now - last) * self.rate)
            if tokens >= 1.0:
                self._buckets[key] = (tokens - 1.0, now)
                wait = 0.0
            else:
                self._buckets[key] = (tokens, now)
                wait = (1.0 - tokens) / self.rate
            if len(self._buckets) > self.max_keys:  # forget the idlest clients rather than grow without bound
                for k in sorted(self._buckets, key=lambda k: self._buckets[k][1])[: self.max_keys // 10]:
                    del self._buckets[k]
        return wait
