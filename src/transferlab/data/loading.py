"""Read a file and cut it into parts in one call: what the CLI and the benchmark runner share."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from .readers import ReadReport, read_examples
from .records import Examples
from .splits import parse_spec, split_examples, subsample


@dataclass
class DataSpec:
    path: str
    text_col: str = "text"
    label_col: str | None = "label"
    pair_col: str | None = None
    label_sep: str | None = None
    split: str = "stratified"
    max_train: int | None = None
    max_validation: int | None = None
    skip_bad_rows: bool = False
    keep_cols: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)


def needed_columns(split: str) -> list[str]:
    kind, args, _ = parse_spec(split)
    return [args[0]] if kind in ("column", "time") else []


def load_parts(spec: DataSpec, *, seed: int = 13) -> tuple[dict[str, Examples], ReadReport]:
    """Read ``spec.path`` and split it; ``max_train``/``max_validation`` subsample those parts (stratified)."""
    examples, report = read_examples(
        spec.path, text_col=spec.text_col, label_col=spec.label_col, pair_col=spec.pair_col,
        label_sep=spec.label_sep, keep_cols=sorted(set(spec.keep_cols) | set(needed_columns(spec.split))),
        skip_bad_rows=spec.skip_bad_rows,
    )
    parts = split_examples(examples, spec.split, seed=seed)
    if spec.max_train and len(parts["train"]) > spec.max_train:
        parts["train"] = subsample(parts["train"], spec.max_train, seed=seed)
    if spec.max_validation and len(parts["validation"]) > spec.max_validation:
        parts["validation"] = subsample(parts["validation"], spec.max_validation, seed=seed)
    return parts, report
