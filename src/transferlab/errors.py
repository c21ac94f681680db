"""Errors a user can fix.  Each says what went wrong, where, and what to do next.

The CLI turns any :class:`TransferLabError` into a one-paragraph message and a non-zero exit;
everything else is a bug and keeps its traceback.
"""

from __future__ import annotations


class TransferLabError(Exception):
    """Base class for problems caused by input, configuration or environment, not by a bug."""

    exit_code = 2

    def __init__(self, message: str, *, where: str | None = None, hint: str | None = None):
        self.message = message
        self.where = where
        self.hint = hint
        super().__init__(self.__str__())

    def __str__(self) -> str:
        text = f"{self.where}: {self.message}" if self.where else self.message
        if self.hint:
            text += f"\n  hint: {self.hint}"
        return text


class DataError(TransferLabError):
    """The data cannot be read or does not fit what was asked of it."""


class ConfigError(TransferLabError):
    """An option or combination of options is invalid."""


class ModelNotAvailableError(TransferLabError):
    """A pretrained representation is neither installed locally nor reachable online."""


class ModelFileError(TransferLabError):
    """A saved model directory is incomplete, altered, or from an incompatible version."""

    exit_code = 3
