"""Typed reads of JSON that strangers wrote: a field of the wrong type is absent, never an exception.

Any field of an archive line or an API answer can hold any JSON value: a title that is a list, a ``user`` that
is a string, a time of ``1e20``.  Record builders read fields only through these accessors, so no shape can
escape as an ``AttributeError`` half-way through a batch.  A field a record cannot do without (an issue's
number, a commit's sha) is read with :func:`need`, which raises :class:`BadItem`; the connector turns that
into a counted skip with the item's place, and the items around it are kept.
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any


MAX_ID = 255
"""Longest identifier part a connector builds into a native id (the store's id columns hold 512)."""

_SHA = re.compile(r"[0-9a-fA-F]{7,64}")
_GITHUB_REPO = re.compile(r"[A-Za-z0-9_.-]{1,100}/[A-Za-z0-9_.-]{1,100}")
_JIRA_KEY = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,99}-[0-9]{1,30}")


class BadItem(ValueError):
    """An item without a field it cannot do without: skipped alone, with its place."""


def obj(value: Any) -> dict:
    """``value`` if it is a JSON object, else an empty one (so ``obj(x).get(...)`` always works)."""
    return value if isinstance(value, dict) else {}


def items(value: Any) -> list:
    """``value`` if it is a JSON array, else an empty one (a string is not a list of letters)."""
    return value if isinstance(value, list) else []


def text(value: Any) -> str | None:
    """A JSON string, or None for anything else (a list, an object, a number)."""
    return value if isinstance(value, str) else None


def texts(value: Any, key: str | None = None) -> list[str]:
    """The non-empty strings of an array (or the ``key`` of its objects: GitHub's labels are objects)."""
    found = (obj(v).get(key) if key else v for v in items(value))
    return [t for t in found if isinstance(t, str) and t]


def integer(value: Any) -> int | None:
    """A non-negative integer id given as a number or as ASCII digits (JIRA sends ``"10001"``), else None."""
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 10 ** 30:
        return value
    if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= 30:
        return int(value)
    return None


def sha(value: Any) -> str | None:
    """A git commit id (hex), else None: it goes into ids and URLs, so nothing else is taken for one."""
    return value if isinstance(value, str) and _SHA.fullmatch(value) else None


def github_repo(value: Any) -> str | None:
    """An ``owner/name`` as GitHub allows them, else None: the name goes into every id and URL built from it."""
    return value if isinstance(value, str) and _GITHUB_REPO.fullmatch(value) else None


def jira_key(value: Any) -> str | None:
    """A JIRA issue key (``PROJECT-123``), else None: it goes into ids and ``/browse/`` URLs."""
    return value if isinstance(value, str) and _JIRA_KEY.fullmatch(value) else None


def need(value, what: str):
    """``value``, or :class:`BadItem` naming ``what`` is missing when it is None or empty."""
    if value is None or value == "":
        raise BadItem(f"no usable {what}")
    return value


def bounded(ident: str, limit: int = MAX_ID) -> str:
    """An identifier as it is when short, else ``sha256:<hex>`` of it (a 40 kB Message-ID stays one id, and the
    original stays in the record's raw payload)."""
    if len(ident) <= limit:
        return ident
    return "sha256:" + hashlib.sha256(ident.encode("utf-8", "surrogatepass")).hexdigest()


def loads(data: bytes | str) -> Any:
    """JSON as RFC 8259 defines it: ``NaN`` and ``Infinity`` (which Python accepts and PostgreSQL's JSONB
    refuses) read as null.  Raises ``ValueError`` (undecodable, not JSON, a number of 5000 digits) or
    ``RecursionError`` (nested deeper than Python's stack)."""
    return json.loads(data, parse_constant=lambda _: None)
