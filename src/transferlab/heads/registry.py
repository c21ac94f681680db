"""One registry of heads: a new head is a class in heads/ plus one ``@register`` line, and the configuration
checks, the CLI help and the model builders all find it here.

Kinds: a ``pooler`` maps token states (B, T, D) + mask to one vector per text; a ``classifier`` maps a vector to
logits; a ``tagger`` maps token states to per-token scores.  ``families`` says which encoder families a head
sits on; ``task`` which task uses it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from ..errors import ConfigError


@dataclass(frozen=True)
class HeadSpec:
    name: str
    task: str  # "classification" | "token-classification"
    families: tuple[str, ...]
    build: Callable | None
    help: str


_HEADS: dict[tuple[str, str], HeadSpec] = {}


def register(name: str, *, task: str, families: tuple[str, ...], help: str):
    """Class decorator (or call with ``build=None`` for heads built inside a network)."""
    def wrap(builder):
        _HEADS[(task, name)] = HeadSpec(name, task, tuple(families), builder, help)
        return builder
    return wrap


def names(task: str, family: str | None = None) -> tuple[str, ...]:
    _load()
    return tuple(s.name for s in _HEADS.values() if s.task == task and (family is None or family in s.families))


def get(task: str, name: str, family: str) -> HeadSpec:
    _load()
    spec = _HEADS.get((task, name))
    if spec is None or family not in spec.families:
        choices = names(task, family)
        raise ConfigError(f"head {name!r} does not fit a {family} model for {task}",
                          hint=f"choose one of {', '.join(choices)}")
    return spec


def families(task: str, name: str) -> tuple[str, ...]:
    _load()
    return _HEADS[(task, name)].families


def _load() -> None:
    """Import the modules that register heads (once)."""
    from . import classifier, sequence, tagger  # noqa: F401  (imported for their @register lines)
