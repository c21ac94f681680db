"""The HTTP side shared by the network connectors: retries, rate limits, conditional requests, secrets.

* 5xx answers and dropped connections are retried with exponential backoff, then a :class:`SourceError`.
* 429, and GitHub's 403 with ``X-RateLimit-Remaining: 0``, wait for ``Retry-After`` or ``X-RateLimit-Reset``
  (at most ``max_wait`` seconds each time), then retry.
* 401, 403 and other 4xx end the run with what the server said; 404 raises :class:`NotFound`, which a
  connector may count as a skip for one item (a deleted issue) instead of ending the run.
* Tokens are read from the environment by the connector and sent only as headers; they never appear in a URL,
  an error message or a log line.
"""

from __future__ import annotations

import time
from datetime import datetime, timezone
from typing import Callable

import requests

from .base import SourceError

USER_AGENT = "transferlab-vuln (+https://github.com/transferlab)"


class NotFound(SourceError):
    """HTTP 404: the item or endpoint does not exist (or is not visible with these credentials)."""


def _excerpt(response: requests.Response) -> str:
    try:
        data = response.json()
    except ValueError:
        return response.text[:200].strip()
    if isinstance(data, dict):
        for key in ("message", "errorMessages", "error", "errors"):
            if data.get(key) not in (None, True, False):
                return str(data[key])[:200]
    return str(data)[:200]


class HttpClient:
    def __init__(self, session: requests.Session | None = None, headers: dict | None = None, max_retries: int = 5,
                 backoff: float = 1.0, max_wait: float = 900.0, timeout: float = 60.0,
                 sleep: Callable[[float], None] = time.sleep, secret_hint: str | None = None):
        self.session = session or requests.Session()
        self.headers = {"User-Agent": USER_AGENT, **(headers or {})}
        self.max_retries, self.backoff, self.max_wait, self.timeout = max_retries, backoff, max_wait, timeout
        self.sleep = sleep
        self.secret_hint = secret_hint
        self.waited = 0.0

    def get(self, url: str, params: dict | None = None, etag: str | None = None,
            stream: bool = False) -> requests.Response:
        """The response to a GET (200, or 304 when ``etag`` still matches); anything else raises or is retried."""
        return self.request("GET", url, params=params, etag=etag, stream=stream)

    def request(self, method: str, url: str, params: dict | None = None, body=None, etag: str | None = None,
                stream: bool = False) -> requests.Response:
        """Any request (``body``: JSON to send) with the retries, waits and errors described above."""
        headers = dict(self.headers)
        if etag:
            headers["If-None-Match"] = etag
        failures = 0
        while True:
            try:
                response = self.session.request(method, url, params=params, json=body, headers=headers,
                                                timeout=self.timeout, stream=stream)
            except (requests.ConnectionError, requests.Timeout) as err:
                failures += 1
                if failures > self.max_retries:
                    raise SourceError(f"no answer after {failures} tries: {type(err).__name__}", where=url) from None
                self._pause(self.backoff * 2 ** (failures - 1))
                continue
            status = response.status_code
            if status in (200, 304):
                return response
            wait = self._rate_limit_wait(response)
            if wait is not None:
                if wait > self.max_wait:
                    raise SourceError(f"rate limited for another {wait:.0f} s (over the {self.max_wait:.0f} s we "
                                      "wait)", where=url, hint="rerun later: ingestion resumes where it stopped")
                self._pause(wait)
                continue
            if status >= 500:
                failures += 1
                if failures > self.max_retries:
                    raise SourceError(f"HTTP {status} after {failures} tries: {_excerpt(response)}", where=url)
                self._pause(self.backoff * 2 ** (failures - 1))
                continue
            if status == 404:
                raise NotFound(f"HTTP 404 not found: {_excerpt(response)}", where=url)
            if status in (401, 403):
                raise SourceError(f"HTTP {status} {'credentials refused' if status == 401 else 'forbidden'}: "
                                  f"{_excerpt(response)}", where=url, hint=self.secret_hint)
            raise SourceError(f"HTTP {status}: {_excerpt(response)}", where=url)

    def json(self, url: str, params: dict | None = None, method: str = "GET", body=None):
        response = self.request(method, url, params=params, body=body)
        try:
            return response.json()
        except ValueError:
            raise SourceError(f"the answer is not JSON: {response.text[:120]!r}", where=url) from None

    def stream(self, url: str):
        """The raw body as a file-like object (for large files such as GH Archive hours)."""
        response = self.get(url, stream=True)
        response.raw.decode_content = False
        return response.raw

    def _rate_limit_wait(self, response: requests.Response) -> float | None:
        status, headers = response.status_code, response.headers
        limited = status == 429 or (status == 403 and (headers.get("X-RateLimit-Remaining") == "0"
                                                       or "rate limit" in response.text.lower()))
        if not limited:
            return None
        if headers.get("Retry-After"):
            try:
                return max(float(headers["Retry-After"]), 0.0)
            except ValueError:
                pass
        if headers.get("X-RateLimit-Reset"):
            try:
                reset = float(headers["X-RateLimit-Reset"])
                return max(reset - datetime.now(timezone.utc).timestamp(), 0.0) + 1.0
            except ValueError:
                pass
        return 60.0

    def _pause(self, seconds: float) -> None:
        self.waited += seconds
        self.sleep(seconds)
