"""The HTTP side shared by the network connectors: retries, rate limits, limits, conditional requests, secrets.

* Retries are urllib3's :class:`~urllib3.util.Retry` on the session's adapters: 5xx answers, 429 and dropped
  connections are retried (GET and POST: the only POST is OSV's query, which changes nothing) within one budget
  of ``max_retries``.  Every wait counts against it, rate-limit waits included, and none is shorter than
  ``min_backoff``: ``Retry-After`` (or GitHub's 403 with ``X-RateLimit-Remaining: 0`` and ``X-RateLimit-Reset``)
  says how long, an unparsable one falls back to the exponential backoff, and a wait over ``max_wait`` ends the
  run with a :class:`SourceError` instead.
* Every answer must arrive within ``deadline`` seconds and ``max_bytes`` bytes (after decompression); streamed
  files (GH Archive hours) have their own, larger ``stream_deadline`` and ``stream_max_bytes``.
* 401, 403 and other 4xx end the run with what the server said; 404 raises :class:`NotFound`, which a
  connector may count as a skip for one item (a deleted issue) instead of ending the run.
* A credential (token, API key, basic auth) is bound to one origin, the scheme, host and port of the configured
  base URL (:meth:`HttpClient.bind_credential`), and sent only to that origin, on every request and redirect.
  A plain ``http://`` origin with a credential is refused unless ``allow_insecure_http``.  Credentials never
  appear in a URL, an error message or a log line.
"""

from __future__ import annotations

import io
import math
import re
import time
from typing import Callable
from urllib.parse import parse_qsl, urlencode, urljoin, urlsplit, urlunsplit

import requests
from requests.adapters import HTTPAdapter
from urllib3.exceptions import InvalidHeader, MaxRetryError
from urllib3.util import Retry

from .base import SourceError

USER_AGENT = "transferlab-vuln (+https://github.com/transferlab)"
MAX_REDIRECTS = 10
CHUNK = 64 * 1024
_SECRET_PARAM = re.compile(r"key|token|secret|password|passwd|auth|sig", re.I)


class NotFound(SourceError):
    """HTTP 404: the item or endpoint does not exist (or is not visible with these credentials)."""


def origin(url: str) -> tuple[str, str, int | None]:
    """(scheme, host, port) of ``url``, the port filled in for http and https: what a credential is bound to."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    try:
        port = parts.port
    except ValueError:
        raise SourceError(f"not a valid URL: {shown(url)!r}") from None
    return scheme, parts.hostname or "", port or {"http": 80, "https": 443}.get(scheme)


def shown(url: str) -> str:
    """``url`` fit for an error message: no user:password@, and query values that look like secrets hidden."""
    parts = urlsplit(url)
    netloc = parts.netloc.rsplit("@", 1)[-1]
    query = urlencode([(k, "***" if _SECRET_PARAM.search(k) else v)
                       for k, v in parse_qsl(parts.query, keep_blank_values=True)], safe="*")
    return urlunsplit((parts.scheme, netloc, parts.path, query, ""))


def _excerpt(response: requests.Response) -> str:
    """What the server said, as ": text" for the end of an error message ("" when it said nothing)."""
    try:
        data = response.json()
    except ValueError:
        said = response.text[:200].strip()
    else:
        said = str(data)[:200]
        if isinstance(data, dict):
            said = next((str(data[key])[:200] for key in ("message", "errorMessages", "error", "errors")
                         if data.get(key) not in (None, True, False)), said)
    return f": {said}" if said else ""


class _WaitTooLong(Exception):
    def __init__(self, seconds: float):
        self.seconds = seconds


class _Retry(Retry):
    """urllib3's Retry with three changes an unattended ingester needs: no wait is shorter than ``min_backoff``
    (``Retry-After: 0`` must not turn the budget into a burst), an unparsable ``Retry-After`` falls back to the
    backoff instead of raising, and GitHub's rate-limit 403 (``X-RateLimit-*``) is a retry like a 429."""

    def __init__(self, *args, pause: Callable[[float], None] = time.sleep, min_backoff: float = 1.0,
                 max_wait: float = 900.0, backoffs: int = 0, **kwargs):
        super().__init__(*args, **kwargs)
        self.pause, self.min_backoff, self.max_wait, self.backoffs = pause, min_backoff, max_wait, backoffs

    def new(self, **kw) -> "_Retry":
        return super().new(pause=self.pause, min_backoff=self.min_backoff, max_wait=self.max_wait,
                           backoffs=self.backoffs, **kw)

    def is_retry(self, method: str, status_code: int, has_retry_after: bool = False) -> bool:
        # Whether a 403 is GitHub's rate limit needs its headers, which only increment() is shown.
        return (status_code == 403 and self._is_method_retryable(method)) or \
            super().is_retry(method, status_code, has_retry_after)

    def increment(self, method=None, url=None, response=None, error=None, _pool=None, _stacktrace=None):
        if response is not None and response.status == 403 and response.headers.get("X-RateLimit-Remaining") != "0":
            # A plain 403: with raise_on_status=False, urllib3 hands this answer back as it is, unretried.
            raise MaxRetryError(_pool, url, None)
        return super().increment(method, url, response, error, _pool, _stacktrace)

    def parse_retry_after(self, retry_after: str) -> float | None:
        try:
            seconds = super().parse_retry_after(retry_after)
        except InvalidHeader:
            return None
        return seconds if math.isfinite(seconds) else None

    def get_retry_after(self, response) -> float | None:
        seconds = super().get_retry_after(response)
        reset = response.headers.get("X-RateLimit-Reset")
        if seconds is None and response.headers.get("X-RateLimit-Remaining") == "0" and reset:
            try:
                seconds = max(float(reset) - time.time(), 0.0) + 1.0
            except ValueError:
                return None
            return seconds if math.isfinite(seconds) else None
        return seconds

    def sleep(self, response=None) -> None:
        wait = self.get_retry_after(response) if response is not None else None
        if wait is None:
            # Counted on this object, which new() carries forward: the history cannot tell a wait the server
            # asked for from one we chose, and only ours should double.
            wait = self.backoff_factor * 2 ** self.backoffs
            self.backoffs += 1
        wait = max(wait, self.min_backoff)
        if wait > self.max_wait:
            raise _WaitTooLong(wait)
        self.pause(wait)


class _Limited(io.RawIOBase):
    """A streamed body that ends in a :class:`SourceError` past its deadline or size, as the reader reads it."""

    def __init__(self, client: "HttpClient", response: requests.Response, url: str, started: float):
        self.client, self.response, self.url, self.started, self.size = client, response, url, started, 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        data = self.client._read1(self.response, self.url, self.started, self.size, stream=True, n=len(buffer))
        self.size += len(data)
        buffer[:len(data)] = data
        return len(data)

    def close(self) -> None:
        self.response.close()
        super().close()


class HttpClient:
    def __init__(self, session: requests.Session | None = None, headers: dict | None = None, max_retries: int = 5,
                 backoff: float = 1.0, min_backoff: float = 1.0, max_wait: float = 900.0, timeout: float = 60.0,
                 deadline: float = 300.0, max_bytes: int = 64 * 2**20, stream_deadline: float = 4 * 3600.0,
                 stream_max_bytes: int = 2 * 2**30, sleep: Callable[[float], None] = time.sleep,
                 secret_hint: str | None = None, allow_insecure_http: bool = False):
        """``timeout``: seconds for one read; ``deadline``: for a whole answer, from its request to its last byte
        (after any retry waits).  ``stream_*``: the same for :meth:`stream`, read while the file is ingested."""
        self.session = session or requests.Session()
        self.headers = {"User-Agent": USER_AGENT, **(headers or {})}
        self.max_retries, self.backoff, self.min_backoff = max_retries, backoff, min_backoff
        self.max_wait, self.timeout, self.deadline, self.max_bytes = max_wait, timeout, deadline, max_bytes
        self.stream_deadline, self.stream_max_bytes = stream_deadline, stream_max_bytes
        self.sleep = sleep
        self.secret_hint = secret_hint
        self.allow_insecure_http = allow_insecure_http
        self.waited = 0.0
        self._origin: tuple | None = None
        self._secret_headers: dict = {}
        self._auth = None
        self._woke = time.monotonic()
        retry = _Retry(total=max_retries, status_forcelist=[429, *range(500, 600)], backoff_factor=backoff,
                       allowed_methods=["GET", "HEAD", "POST"], raise_on_status=False,
                       pause=self._pause, min_backoff=min_backoff, max_wait=max_wait)
        adapter = HTTPAdapter(max_retries=retry)
        for scheme in ("http://", "https://"):
            self.session.mount(scheme, adapter)

    def bind_credential(self, base_url: str, headers: dict | None = None, auth=None,
                        allow_insecure_http: bool = False) -> None:
        """Send ``headers`` (a token, an API key) and ``auth`` (a requests auth, such as (user, password)) with
        requests to the origin of ``base_url`` only.  Without either, nothing is bound and nothing is checked."""
        if not headers and not auth:
            return
        bound = origin(base_url)
        if bound[0] != "https" and not (allow_insecure_http or self.allow_insecure_http):
            raise SourceError(f"refusing to send a credential over plain {bound[0]}:// to {shown(base_url)}",
                              hint="use the https:// address, or pass --allow-insecure-http if this network is "
                                   "trusted (the credential then travels unencrypted)")
        self._origin, self._secret_headers, self._auth = bound, dict(headers or {}), auth

    def get(self, url: str, params: dict | None = None, etag: str | None = None,
            stream: bool = False) -> requests.Response:
        """The response to a GET (200, or 304 when ``etag`` still matches); anything else raises or is retried."""
        return self.request("GET", url, params=params, etag=etag, stream=stream)

    def request(self, method: str, url: str, params: dict | None = None, body=None, etag: str | None = None,
                stream: bool = False) -> requests.Response:
        """Any request (``body``: JSON to send) with the retries, waits, limits and errors described above.
        With ``stream``, the body is left unread: :meth:`stream` reads it under the stream limits."""
        response = self._send(method, url, params, body, etag)
        started, where = self._woke, shown(response.url or url)
        status = response.status_code
        if status in (200, 304):
            if not stream:
                self._read_body(response, where, started)
            return response
        self._read_body(response, where, started)  # the excerpt for the error, under the same limits
        tries = len(response.raw.retries.history) + 1 if getattr(response.raw, "retries", None) else 1
        if status == 429 or (status == 403 and response.headers.get("X-RateLimit-Remaining") == "0"):
            raise SourceError(f"HTTP {status} rate limited after {tries} tries{_excerpt(response)}", where=where,
                              hint="rerun later: ingestion resumes where it stopped")
        if status >= 500:
            raise SourceError(f"HTTP {status} after {tries} tries{_excerpt(response)}", where=where)
        if status == 404:
            raise NotFound(f"HTTP 404 not found{_excerpt(response)}", where=where)
        if status == 403 and "rate limit" in response.text.lower():
            raise SourceError(f"HTTP 403 rate limited{_excerpt(response)}", where=where,
                              hint="rerun later: ingestion resumes where it stopped")
        if status in (401, 403):
            raise SourceError(f"HTTP {status} {'credentials refused' if status == 401 else 'forbidden'}"
                              f"{_excerpt(response)}", where=where, hint=self.secret_hint)
        if 300 <= status < 400:
            raise SourceError(f"HTTP {status}: redirected more than {MAX_REDIRECTS} times, or nowhere", where=where)
        raise SourceError(f"HTTP {status}{_excerpt(response)}", where=where)

    def _send(self, method: str, url: str, params, body, etag) -> requests.Response:
        """The final answer after retries and redirects.  Redirects are followed here, not by requests, because
        requests keeps custom headers (an API key) and session auth on a redirect to another host: each hop
        decides afresh whether it goes to the credential's origin."""
        headers = {**self.headers, **({"If-None-Match": etag} if etag else {})}
        for _ in range(MAX_REDIRECTS + 1):
            mine = self._origin is not None and origin(url) == self._origin
            self._woke = time.monotonic()
            try:
                response = self.session.request(method, url, params=params, json=body, stream=True,
                                                headers={**headers, **(self._secret_headers if mine else {})},
                                                auth=self._auth if mine else None, timeout=self.timeout,
                                                allow_redirects=False)
            except _WaitTooLong as wait:
                raise SourceError(f"rate limited for another {wait.seconds:.0f} s (over the {self.max_wait:.0f} s "
                                  "we wait)", where=shown(url), hint="rerun later: ingestion resumes where it "
                                                                      "stopped") from None
            except (requests.ConnectionError, requests.Timeout) as err:
                raise SourceError(f"no answer after {self.max_retries + 1} tries: {type(err).__name__}",
                                  where=shown(url)) from None
            location = response.headers.get("Location")
            if not response.is_redirect or not location:
                return response
            response.close()
            url, params = urljoin(response.url, location), None
            if response.status_code == 303 or (response.status_code in (301, 302) and method == "POST"):
                method, body = "GET", None  # what browsers and requests do
        return response

    def _read1(self, response, where: str, started: float, size: int, stream: bool, n: int = CHUNK) -> bytes:
        """One read of at most ``n`` bytes; ``size`` bytes came before.  read1 returns what one receive brought,
        so a server dripping bytes meets the deadline between reads instead of inside a read of ``n``."""
        deadline, limit = (self.stream_deadline, self.stream_max_bytes) if stream else (self.deadline, self.max_bytes)
        if time.monotonic() - started > deadline:
            response.close()
            raise SourceError(f"no complete answer within the {deadline:g} s deadline ({size} bytes read)",
                              where=where, hint="the server is too slow or stalling; rerun later")
        try:
            data = response.raw.read1(n, decode_content=not stream)
        except Exception as err:  # noqa: BLE001 - urllib3 and zlib raise many kinds for a broken body
            response.close()
            raise SourceError(f"the answer broke off after {size} bytes: {type(err).__name__}", where=where) from None
        if size + len(data) > limit:
            response.close()
            raise SourceError(f"the answer is larger than {limit} bytes", where=where,
                              hint="raise the client's max_bytes if this source is trusted to send that much")
        return data

    def _read_body(self, response: requests.Response, where: str, started: float) -> None:
        length = response.headers.get("Content-Length", "")
        if length.isdigit() and int(length) > self.max_bytes:  # compressed or not, it will be no smaller
            response.close()
            raise SourceError(f"the answer is larger than {self.max_bytes} bytes ({length} announced)", where=where,
                              hint="raise the client's max_bytes if this source is trusted to send that much")
        chunks, size = [], 0
        while chunk := self._read1(response, where, started, size, stream=False):
            chunks.append(chunk)
            size += len(chunk)
        # requests' own reading has no deadline or cap; what it would have read is set where it keeps it.
        response._content, response._content_consumed = b"".join(chunks), True
        response.close()

    def json(self, url: str, params: dict | None = None, method: str = "GET", body=None):
        response = self.request(method, url, params=params, body=body)
        try:
            return response.json()
        except ValueError:
            raise SourceError(f"the answer is not JSON: {response.text[:120]!r}", where=shown(url)) from None

    def stream(self, url: str) -> io.BufferedReader:
        """The raw (still compressed) body as a file-like object, for large files such as GH Archive hours;
        reading it past ``stream_deadline`` or ``stream_max_bytes`` raises :class:`SourceError`."""
        response = self.get(url, stream=True)
        return io.BufferedReader(_Limited(self, response, shown(response.url or url), self._woke), CHUNK)

    def _pause(self, seconds: float) -> None:
        self.waited += seconds
        self.sleep(seconds)
        self._woke = time.monotonic()  # the deadline is for the answer, not for the waits before it
