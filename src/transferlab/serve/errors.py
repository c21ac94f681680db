"""Every error the API returns has one JSON shape: ``{"error": {"what": ..., "where": ..., "hint": ...}}``."""

from __future__ import annotations


def error_body(what: str, where: str | None = None, hint: str | None = None) -> dict:
    return {"error": {"what": what, "where": where, "hint": hint}}


class ApiError(Exception):
    """An error answered with ``status`` and the shape above (and any extra headers, e.g. Retry-After)."""

    def __init__(self, status: int, what: str, *, where: str | None = None, hint: str | None = None,
                 headers: dict[str, str] | None = None):
        super().__init__(what)
        self.status, self.what, self.where, self.hint, self.headers = status, what, where, hint, headers or {}
