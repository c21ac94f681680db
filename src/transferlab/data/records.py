"""The one in-memory shape every reader produces and every model consumes."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

Label = str
LabelSet = list[str]


@dataclass
class Examples:
    """Texts with optional labels, kept column-wise.

    ``labels`` holds one string per example for single-label data, a list of strings per example
    for multi-label data (``multilabel=True``), or is ``None`` for unlabeled text.
    ``pairs`` holds the second text of sentence-pair data.  ``origins`` says where each example
    came from (``"reviews.csv:line 12"``) so errors and reports can point back at the source.
    ``columns`` carries any other columns a split needs (a time stamp, a split name).
    """

    texts: list[str]
    labels: list[Label] | list[LabelSet] | None = None
    pairs: list[str] | None = None
    origins: list[str] | None = None
    columns: dict[str, list] = field(default_factory=dict)
    multilabel: bool = False
    source: str = "<memory>"

    def __post_init__(self) -> None:
        n = len(self.texts)
        for name in ("labels", "pairs", "origins"):
            value = getattr(self, name)
            if value is not None and len(value) != n:
                raise ValueError(f"Examples.{name} has {len(value)} items but texts has {n}")
        for name, values in self.columns.items():
            if len(values) != n:
                raise ValueError(f"Examples.columns[{name!r}] has {len(values)} items but texts has {n}")
        if self.origins is None:
            self.origins = [f"{self.source}:#{i}" for i in range(n)]

    def __len__(self) -> int:
        return len(self.texts)

    @property
    def is_pair(self) -> bool:
        return self.pairs is not None

    def subset(self, indices: Sequence[int]) -> "Examples":
        idx = list(indices)
        pick = lambda seq: None if seq is None else [seq[i] for i in idx]  # noqa: E731
        return Examples(
            texts=pick(self.texts),
            labels=pick(self.labels),
            pairs=pick(self.pairs),
            origins=pick(self.origins),
            columns={k: pick(v) for k, v in self.columns.items()},
            multilabel=self.multilabel,
            source=self.source,
        )

    @classmethod
    def concat(cls, *parts: "Examples", source: str | None = None) -> "Examples":
        """The examples of every part, in order.  Parts must agree on multi-label and on sentence pairs; a column is
        kept when every part has it."""
        if not parts:
            raise ValueError("Examples.concat needs at least one part")
        first = parts[0]
        for p in parts[1:]:
            if p.multilabel != first.multilabel or p.is_pair != first.is_pair:
                from ..errors import DataError

                raise DataError("cannot join single- and multi-label data, or pairs and single texts",
                                where=f"{first.source} + {p.source}")
        join = lambda name: None if getattr(first, name) is None else [  # noqa: E731
            v for p in parts for v in (getattr(p, name) or [None] * len(p))]
        shared = set(first.columns).intersection(*(p.columns for p in parts[1:]))
        return cls(texts=[t for p in parts for t in p.texts], labels=join("labels"), pairs=join("pairs"),
                   origins=[o for p in parts for o in p.origins],
                   columns={c: [v for p in parts for v in p.columns[c]] for c in first.columns if c in shared},
                   multilabel=first.multilabel, source=source or "+".join(dict.fromkeys(p.source for p in parts)))

    def label_names(self) -> list[str]:
        """Sorted distinct labels (flattened for multi-label data)."""
        if self.labels is None:
            return []
        if self.multilabel:
            return sorted({lab for labs in self.labels for lab in labs})
        return sorted(set(self.labels))
