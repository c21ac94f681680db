"""Errors a user can fix.  Each says what went wrong, where, and what to do next.

The CLI turns any :class:`TransferLabError` into a one-paragraph message and a non-zero exit;
everything else is a bug and keeps its traceback.
"""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    """Every exit status of the ``transferlab`` command, so a CI job can tell the outcomes apart."""

    OK = 0
    FAILED = 1  # a source or benchmark row stopped partway (rerun to continue); also Python's status for a bug
    BAD_INPUT = 2  # bad input, option or usage (click's own usage errors are 2 as well)
    MODEL_FILE = 3  # a model or cascade folder that is incomplete, altered, or asks to run its own code
    # Not an error: `vuln scan --fail-on-warning` found something to triage.  The next free number, apart from 1,
    # so that CI can accept it (`|| [ $? -eq 4 ]`) while crashes and bad input still fail the job.
    EARLY_WARNING = 4


class TransferLabError(Exception):
    """Base class for problems caused by input, configuration or environment, not by a bug."""

    exit_code = ExitCode.BAD_INPUT

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

    exit_code = ExitCode.MODEL_FILE


def read_toml(path, what: str) -> dict:
    """A TOML file as a dict; a missing file or bad TOML is a clear error naming ``what`` and where."""
    import tomllib
    from pathlib import Path

    path = Path(path)
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise DataError(f"cannot read the {what}: {exc.strerror}", where=str(path)) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"the {what} is not valid TOML: {exc}", where=str(path)) from None
