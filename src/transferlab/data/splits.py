"""Split examples into train / validation / test by a short spec string (also the CLI's ``--split``).

Specs:

``seed``                      rows [0:5000] train, [5000:10000] validation, [10000:] test (the IMDB
                              seed protocol); needs at least 10,001 rows.
``seed:N1,N2``                train [0:N1], validation [N1:N2], test [N2:]; needs more than N2 rows.
``stratified``                same as ``stratified:0.8,0.1,0.1``.
``stratified:F1,F2,F3``       random split stratified by label (multi-label: by first label), seeded;
                              fractions sum to 1, a zero fraction gives an empty part.
``column:NAME``               the column NAME (read with ``keep_cols``) says train / validation / test
                              (also ``valid``, ``val``, ``dev``; case-insensitive).
``time:NAME``                 same as ``time:NAME:0.8,0.1,0.1``.
``time:NAME:F1,F2,F3``        sort by the time stamp column NAME: oldest F1 train, then validation, newest
                              test; ties keep file order.
``time:NAME:D1,D2``           cut at two dates: before D1 train, from D1 validation, from D2 test (e.g.
                              ``time:created_at:2018-01-01,2020-01-01``).
``none`` / ``all``            everything is train.

Any spec may end in ``:train``, ``:validation`` or ``:test`` (e.g. ``seed:test``,
``column:split:validation``) to select one part with :func:`select_split`.
Within each part, examples keep their original order.
"""

from __future__ import annotations

import hashlib
import math
from collections import Counter

import numpy as np
import pandas as pd

from transferlab.data.records import Examples
from transferlab.errors import ConfigError, DataError

SPLITS = ("train", "validation", "test")
_PART_NAMES = {"train": "train", "validation": "validation", "valid": "validation", "val": "validation",
               "dev": "validation", "test": "test"}  # fmt: skip
_SPEC_FORMS = (
    "seed, seed:N1,N2, stratified, stratified:F1,F2,F3, column:NAME, time:NAME, time:NAME:F1,F2,F3, none, all; "
    "any of them may end in :train, :validation or :test"
)
_DEFAULT_FRACTIONS = (0.8, 0.1, 0.1)


def parse_spec(spec: str) -> tuple[str, list[str], str | None]:
    """Split ``spec`` into (kind, arguments, part or None)."""
    parts = spec.strip().split(":")
    kind = parts[0].strip().lower()
    # column:test and time:test name a column, not a part.
    min_len = 3 if kind in ("column", "time") else 2
    part = None
    if len(parts) >= min_len and parts[-1].strip().lower() in _PART_NAMES:
        part = _PART_NAMES[parts.pop().strip().lower()]
    args = parts[1:]
    valid = {"seed": (0, 1), "stratified": (0, 1), "column": (1, 1), "time": (1, 2), "none": (0, 0), "all": (0, 0)}
    if kind not in valid or not valid[kind][0] <= len(args) <= valid[kind][1] or any(not a.strip() for a in args):
        raise ConfigError(f"unknown split spec {spec!r}", hint=f"valid forms: {_SPEC_FORMS}")
    return kind, args, part


def split_examples(examples: Examples, spec: str, *, seed: int = 13) -> dict[str, Examples]:
    """Split into {"train", "validation", "test"}; a part selector at the end of ``spec`` is ignored."""
    kind, args, _ = parse_spec(spec)
    n = len(examples)
    if kind == "seed":
        n1, n2 = _ints(args[0], spec) if args else (5000, 10000)
        if n <= n2:
            raise DataError(
                f"split {spec!r} needs more than {n2} examples, but {examples.source} has {n}",
                hint="use a smaller 'seed:N1,N2' or a 'stratified' split",
            )
        groups = [range(0, n1), range(n1, n2), range(n2, n)]
    elif kind == "stratified":
        groups = _stratified(examples, _fractions(args[0] if args else None, spec), seed)
    elif kind == "column":
        groups = _by_column(examples, args[0].strip())
    elif kind == "time" and len(args) > 1 and args[1].count(",") == 1 and "-" in args[1]:
        v_from, t_from = (x.strip() for x in args[1].split(","))
        groups = time_cutoffs(parse_stamps(_column(examples, args[0].strip()), args[0].strip(), examples.origins),
                              v_from, t_from)
    elif kind == "time":
        groups = _by_time(examples, args[0].strip(), _fractions(args[1] if len(args) > 1 else None, spec))
    else:
        groups = [range(n), [], []]
    return {name: examples.subset(sorted(idx)) for name, idx in zip(SPLITS, groups)}


def select_split(examples: Examples, spec: str, *, seed: int = 13) -> Examples:
    """The part named at the end of ``spec`` (``seed:test``), or all examples if none is named."""
    _, _, part = parse_spec(spec)
    return examples if part is None else split_examples(examples, spec, seed=seed)[part]


def subsample(examples: Examples, n: int, *, seed: int = 13) -> Examples:
    """A random subset of ``n`` examples, stratified by label, in the original order."""
    if n < 0:
        raise ConfigError(f"cannot take a sample of {n} examples", hint="pass a positive number")
    if n >= len(examples):
        return examples
    rng = np.random.default_rng(seed)
    keys = _strata(examples)
    if keys is None:
        return examples.subset(sorted(rng.choice(len(examples), size=n, replace=False).tolist()))
    members: dict[str, list[int]] = {}
    for i, key in enumerate(keys):
        members.setdefault(key, []).append(i)
    picked: list[int] = []
    for key, count in zip(members, _allocate(n, [len(m) / len(examples) for m in members.values()])):
        picked += rng.choice(members[key], size=count, replace=False).tolist()
    return examples.subset(sorted(picked))


def fingerprint(examples: Examples) -> str:
    """SHA-256 over texts, pairs and labels, in order: equal fingerprints mean the same data."""
    h = hashlib.sha256()

    def put(value: str | None) -> None:
        # Length-prefixed so that no text can imitate a field boundary.
        data = b"\xff" if value is None else value.encode("utf-8")
        h.update(len(data).to_bytes(8, "little"))
        h.update(data)

    for i, text in enumerate(examples.texts):
        put(text)
        put(None if examples.pairs is None else examples.pairs[i])
        if examples.labels is None:
            put(None)
        elif examples.multilabel:
            put("\x1f".join(examples.labels[i]) + "\x1e")
        else:
            put(examples.labels[i])
    return h.hexdigest()


def _ints(arg: str, spec: str) -> tuple[int, int]:
    try:
        n1, n2 = (int(x) for x in arg.split(","))
    except ValueError:
        raise ConfigError(f"split {spec!r}: expected two row counts like 'seed:5000,10000'") from None
    if not 0 <= n1 <= n2:
        raise ConfigError(f"split {spec!r}: need 0 <= N1 <= N2", hint="train is [0:N1], validation [N1:N2]")
    return n1, n2


def _fractions(arg: str | None, spec: str) -> tuple[float, float, float]:
    if arg is None:
        return _DEFAULT_FRACTIONS
    try:
        fracs = tuple(float(x) for x in arg.split(","))
    except ValueError:
        fracs = ()
    if len(fracs) != 3 or any(not 0 <= f <= 1 for f in fracs):
        raise ConfigError(f"split {spec!r}: expected three fractions like 0.8,0.1,0.1")
    if abs(sum(fracs) - 1) > 1e-6:
        raise ConfigError(f"split {spec!r}: fractions sum to {sum(fracs):g}, not 1")
    return fracs  # type: ignore[return-value]


def _allocate(n: int, weights: list[float]) -> list[int]:
    """Split n into integer counts proportional to weights (largest remainder; zero weight gets zero)."""
    total = sum(weights)
    exact = [n * w / total for w in weights]
    counts = [math.floor(x) for x in exact]
    by_remainder = sorted(range(len(weights)), key=lambda i: counts[i] - exact[i])
    for i in by_remainder[: n - sum(counts)]:
        counts[i] += 1
    return counts


def _strata(examples: Examples) -> list[str] | None:
    if examples.labels is None:
        return None
    if examples.multilabel:
        return [labs[0] if labs else "" for labs in examples.labels]
    return list(examples.labels)


def _stratified(examples: Examples, fracs: tuple[float, float, float], seed: int) -> list:
    from sklearn.model_selection import train_test_split

    keys = _strata(examples)
    if keys is None:
        raise DataError(f"a stratified split needs labels, but {examples.source} has none", hint="use 'seed:N1,N2'")
    n_train, n_val, n_test = _allocate(len(examples), list(fracs))
    rest, parts = list(range(len(examples))), []
    for size in (n_test, n_val):
        if size == 0:
            parts.append([])
            continue
        if size == len(rest):
            parts.append(rest)
            rest = []
            continue
        rest_keys = [keys[i] for i in rest]
        try:
            rest, part = train_test_split(rest, test_size=size, random_state=seed, stratify=rest_keys)
        except ValueError as e:
            label, count = Counter(rest_keys).most_common()[-1]
            raise DataError(
                f"cannot make a stratified split of {examples.source}: class {label!r} has only {count} "
                f"example(s) ({e})",
                hint="remove or merge rare classes, or use 'seed:N1,N2' instead",
            ) from None
        parts.append(part)
    return [rest, parts[1], parts[0]]


def _column(examples: Examples, name: str) -> list:
    if name not in examples.columns:
        have = ", ".join(examples.columns) or "(none)"
        raise DataError(
            f"split column {name!r} was not read from {examples.source} (columns kept: {have})",
            hint=f"keep it when reading the data: keep_cols=[{name!r}]",
        )
    return examples.columns[name]


def _by_column(examples: Examples, name: str) -> list:
    groups: dict[str, list[int]] = {part: [] for part in SPLITS}
    for i, value in enumerate(_column(examples, name)):
        part = _PART_NAMES.get(str(value).strip().lower()) if value is not None else None
        if part is None:
            raise DataError(
                f"split column {name!r} holds {value!r}, not train/validation/test",
                where=examples.origins[i],
                hint="use train, validation (or valid/val/dev) or test",
            )
        groups[part].append(i)
    return [groups[part] for part in SPLITS]


def parse_stamps(values, name: str, origins=None) -> pd.Series:
    """UTC time stamps of a column; a value that is not a date is a DataError naming its row."""
    values = pd.Series(list(values), dtype=object)
    stamps = pd.to_datetime(values, utc=True, errors="coerce")
    retry = stamps.isna() & values.notna()
    if retry.any():  # pandas infers one format from the first value; mixed formats need a second pass
        stamps[retry] = pd.to_datetime(values[retry], utc=True, errors="coerce", format="mixed")
    if stamps.isna().any():
        i = int(np.flatnonzero(stamps.isna().to_numpy())[0])
        raise DataError(
            f"time column {name!r} holds {values[i]!r}, which is not a date/time",
            where=origins[i] if origins is not None else f"row {i}",
            hint="use ISO 8601 time stamps such as 2021-03-04T12:00:00Z",
        )
    return stamps


def time_cutoffs(stamps: pd.Series, validation_from: str, test_from: str) -> list[list[int]]:
    """Indices before ``validation_from`` (train), until ``test_from`` (validation), and from it (test)."""
    try:
        v_from, t_from = pd.Timestamp(validation_from, tz="UTC"), pd.Timestamp(test_from, tz="UTC")
    except ValueError:
        raise DataError(f"{validation_from!r} or {test_from!r} is not a date", hint="e.g. 2018-01-01") from None
    if not v_from < t_from:
        raise DataError(f"validation_from ({validation_from}) must come before test_from ({test_from})",
                        where="time split")
    t = stamps.reset_index(drop=True)
    return [np.flatnonzero(t < v_from).tolist(), np.flatnonzero((t >= v_from) & (t < t_from)).tolist(),
            np.flatnonzero(t >= t_from).tolist()]


def _by_time(examples: Examples, name: str, fracs: tuple[float, float, float]) -> list:
    stamps = parse_stamps(_column(examples, name), name, examples.origins)
    order = np.argsort(stamps.dt.tz_localize(None).to_numpy(), kind="stable").tolist()
    n_train, n_val, _ = _allocate(len(order), list(fracs))
    return [order[:n_train], order[n_train : n_train + n_val], order[n_train + n_val :]]
