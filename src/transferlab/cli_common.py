"""What every command group shares: the consoles and the wrapper that turns user errors into one message."""

from __future__ import annotations

import functools

import typer
from rich.console import Console
from rich.markup import escape as _escape_markup

from .errors import TransferLabError
from .vuln.inert import plain

out = Console()
err = Console(stderr=True)


def escape(text) -> str:
    """``text`` ready for ``print(markup=True)``: [brackets] stay text (rich markup escaped), and terminal escape
    sequences, control characters and bidi overrides are removed, since rich passes ESC through to the terminal
    and titles, URLs and error messages can carry what a stranger wrote.  Line breaks are kept."""
    return _escape_markup(plain(text, keep_newlines=True))


def friendly(fn):
    """A user-fixable problem prints one clear message and exits non-zero; a bug keeps its traceback."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except TransferLabError as exc:
            # escape(): brackets in a path or label are text, not markup (else mangled, or a MarkupError), and an
            # ingested value quoted in the message cannot send terminal escapes.
            err.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False, markup=True, soft_wrap=True)
            raise typer.Exit(exc.exit_code) from None

    return wrapper
