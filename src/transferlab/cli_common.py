"""What every command group shares: the consoles and the wrapper that turns user errors into one message."""

from __future__ import annotations

import functools

import typer
from rich.console import Console
from rich.markup import escape

from .errors import TransferLabError

out = Console()
err = Console(stderr=True)


def friendly(fn):
    """A user-fixable problem prints one clear message and exits non-zero; a bug keeps its traceback."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except TransferLabError as exc:
            # escape(): brackets in a path or label are text, not markup (else mangled, or a MarkupError).
            err.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False, markup=True, soft_wrap=True)
            raise typer.Exit(exc.exit_code) from None

    return wrapper
