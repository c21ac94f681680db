"""Declarative benchmark recipes: a folder with ``suite.toml`` (the data and the quick setting) and one TOML
file per row.  Copy the shipped folder (``transferlab bench imdb-seed --list`` prints where it is), change
it, and run it on your own data with ``transferlab bench FOLDER --data FILE --text-col ... --label-col ...``.

``suite.toml``::

    name = "imdb-seed"
    description = "..."
    [data]              # any DataSpec field: path, text_col, label_col, pair_col, label_sep, split
    path = "../shared/data/imdb/movie_reviews.csv.bz2"
    [quick]             # --quick: applied to every row, a row's own [quick] table wins
    max_train = 256
    max_test = 256

A row (``NN-name.toml``)::

    name = "glove-cnn"                    # what --rows selects; unique in the suite
    title = "GloVe-50d + CNN"
    kind = "transferlab"                  # transferlab | hf-trainer | setfit | tfidf
    seed_reference = { model = "fastText + CNN", accuracy = 86.40 }   # optional, in percent
    [model]                               # kind transferlab: ModelConfig fields; peers: their own options
    encoder = "glove-50d"
    head = "cnn"
    [train]                               # TrainConfig fields (epochs, lr, batch_size, ...)
    epochs = 10
    [quick]                               # optional overrides of the suite's quick setting for this row
    epochs = 2
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field, fields
from importlib import resources
from pathlib import Path

from ..config import ModelConfig, TrainConfig
from ..data.loading import DataSpec
from ..errors import ConfigError

KINDS = ("transferlab", "hf-trainer", "setfit", "tfidf")
SUITE_FILE = "suite.toml"
# Settings a quick or reduced run may change; ``max_*`` cut the data, the rest override the row's config.
SETTING_KEYS = ("max_train", "max_validation", "max_test", "max_length", "epochs", "max_steps", "batch_size")
ROW_KEYS = {"name", "title", "kind", "seed_reference", "model", "train", "quick", "notes"}
SUITE_KEYS = {"name", "description", "data", "quick", "targets", "slices"}
# What each peer accepts in [model] / [train]; transferlab rows are checked against the config dataclasses.
PEER_MODEL_KEYS = {
    "hf-trainer": {"encoder", "max_length", "trust_remote_code"},
    "setfit": {"encoder", "max_length"},
    "tfidf": {"ngram_max", "min_df", "max_features", "C"},
}
PEER_TRAIN_KEYS = {
    "hf-trainer": {"epochs", "batch_size", "lr", "weight_decay", "warmup_ratio", "seed", "precision",
                   "length_buckets"},
    "setfit": {"epochs", "batch_size", "num_iterations", "max_steps", "seed"},
    "tfidf": {"seed"},
}


@dataclass
class Recipe:
    name: str
    kind: str
    path: Path
    title: str = ""
    seed_reference: dict | None = None
    model: dict = field(default_factory=dict)
    train: dict = field(default_factory=dict)
    quick: dict = field(default_factory=dict)
    notes: str = ""

    @property
    def family(self) -> str:
        """The family a results row reports: word-vectors, frozen-features, transformer, or peer."""
        if self.kind != "transferlab":
            return "peer"
        return ModelConfig(**self.model).family

    def settings(self, quick: dict | None, overrides: dict | None = None) -> dict:
        """The effective data cuts and config overrides: row config < quick (suite, then row) < overrides."""
        out = {k: v for k, v in {**self.model, **self.train}.items() if k in SETTING_KEYS}
        if quick is not None:
            out.update({**quick, **self.quick})
        overrides = {k: v for k, v in (overrides or {}).items() if v is not None}
        if self.kind == "transferlab" and self.family == "frozen-features":
            overrides.pop("epochs", None)  # a head on cached features: its epochs cost nothing, keep them
        out.update(overrides)
        return out


@dataclass
class Suite:
    name: str
    folder: Path
    description: str = ""
    data: dict = field(default_factory=dict)
    quick: dict = field(default_factory=dict)
    targets: dict = field(default_factory=dict)
    rows: list[Recipe] = field(default_factory=list)
    slices: list = field(default_factory=list)  # evaluation/slices.py Slice objects, reported for every row

    def select(self, names: list[str] | None) -> list[Recipe]:
        if not names:
            return list(self.rows)
        known = {r.name: r for r in self.rows}
        unknown = [n for n in names if n not in known]
        if unknown:
            raise ConfigError(f"unknown row(s) {', '.join(unknown)} in suite {self.name!r}", where=str(self.folder),
                              hint=f"rows: {', '.join(known)}")
        return [known[n] for n in names]

    def data_spec(self, **overrides) -> DataSpec:
        allowed = {f.name for f in fields(DataSpec)}
        merged = {**self.data, **{k: v for k, v in overrides.items() if v is not None}}
        spec = DataSpec(**{k: v for k, v in merged.items() if k in allowed})
        spec.keep_cols = sorted(set(spec.keep_cols) | {c for s in self.slices for c in s.columns()})
        return spec


def builtin_suites() -> dict[str, Path]:
    """Suites shipped inside the package, by name."""
    root = Path(str(resources.files("transferlab.bench") / "recipes"))
    return {p.name: p for p in sorted(root.iterdir()) if (p / SUITE_FILE).is_file()}


def find_suite(name_or_dir: str) -> Path:
    path = Path(name_or_dir)
    if path.is_dir():
        if not (path / SUITE_FILE).is_file():
            raise ConfigError(f"no {SUITE_FILE} in this folder", where=str(path),
                              hint=f"a recipe folder holds {SUITE_FILE} and one .toml file per row")
        return path
    shipped = builtin_suites()
    if name_or_dir in shipped:
        return shipped[name_or_dir]
    raise ConfigError(f"{name_or_dir!r} is neither a recipe folder nor a shipped suite", where=name_or_dir,
                      hint=f"shipped suites: {', '.join(shipped) or 'none'}; or give a folder with {SUITE_FILE}")


def load_suite(name_or_dir: str | Path) -> Suite:
    """Read and check a suite folder; every mistake names the file and the key."""
    folder = find_suite(str(name_or_dir))
    raw = _read_toml(folder / SUITE_FILE)
    _check_keys(raw, SUITE_KEYS, folder / SUITE_FILE, "suite")
    data = _table(raw, "data", folder / SUITE_FILE)
    bad = set(data) - {f.name for f in fields(DataSpec)}
    if bad:
        raise ConfigError(f"unknown key(s) in [data]: {', '.join(sorted(bad))}", where=str(folder / SUITE_FILE),
                          hint=f"valid: {', '.join(f.name for f in fields(DataSpec))}")
    quick = _table(raw, "quick", folder / SUITE_FILE)
    _check_settings(quick, folder / SUITE_FILE)
    from ..evaluation.slices import parse_slices

    specs = raw.get("slices", [])
    if not isinstance(specs, list) or not all(isinstance(x, str) for x in specs):
        raise ConfigError("slices must be a list of NAME=KIND:ARG strings", where=str(folder / SUITE_FILE),
                          hint='e.g. slices = ["short=length:-120", "long=length:400-"]')
    try:
        slices = parse_slices(specs)
    except ConfigError as exc:
        raise ConfigError(exc.message, where=str(folder / SUITE_FILE), hint=exc.hint) from None
    suite = Suite(name=str(raw.get("name", folder.name)), folder=folder, description=str(raw.get("description", "")),
                  data=data, quick=quick, targets=_table(raw, "targets", folder / SUITE_FILE), slices=slices)
    seen: dict[str, Path] = {}
    for path in sorted(folder.glob("*.toml")):
        if path.name == SUITE_FILE:
            continue
        recipe = load_recipe(path)
        if recipe.name in seen:
            raise ConfigError(f"row name {recipe.name!r} is used twice", where=str(path),
                              hint=f"also in {seen[recipe.name]}; names must be unique")
        seen[recipe.name] = path
        suite.rows.append(recipe)
    if not suite.rows:
        raise ConfigError("the suite has no rows", where=str(folder), hint="add one .toml file per row")
    return suite


def load_recipe(path: Path) -> Recipe:
    raw = _read_toml(path)
    _check_keys(raw, ROW_KEYS, path, "row")
    for key in ("name", "kind"):
        if not isinstance(raw.get(key), str) or not raw[key].strip():
            raise ConfigError(f"row needs a {key!r} (a string)", where=str(path))
    if raw["kind"] not in KINDS:
        raise ConfigError(f"unknown kind {raw['kind']!r}", where=str(path), hint=f"one of {', '.join(KINDS)}")
    model, train, quick = (_table(raw, t, path) for t in ("model", "train", "quick"))
    _check_settings(quick, path)
    if raw["kind"] == "transferlab":
        _check_config(model, ModelConfig, path, "model")
        _check_config(train, TrainConfig, path, "train")
        try:
            ModelConfig(**model).resolve_defaults()
        except ConfigError as exc:
            raise ConfigError(exc.message, where=str(path), hint=exc.hint) from None
    else:
        for table, allowed, name in ((model, PEER_MODEL_KEYS[raw["kind"]], "model"),
                                     (train, PEER_TRAIN_KEYS[raw["kind"]], "train")):
            bad = set(table) - allowed
            if bad:
                raise ConfigError(f"unknown key(s) in [{name}] for kind {raw['kind']}: {', '.join(sorted(bad))}",
                                  where=str(path), hint=f"valid: {', '.join(sorted(allowed))}")
    ref = raw.get("seed_reference")
    if ref is not None and (not isinstance(ref, dict) or not isinstance(ref.get("accuracy"), (int, float))):
        raise ConfigError("seed_reference must be a table with a numeric 'accuracy' (percent)", where=str(path),
                          hint='seed_reference = { model = "BERT-base", accuracy = 91.83 }')
    return Recipe(name=raw["name"].strip(), kind=raw["kind"], path=path, title=str(raw.get("title", raw["name"])),
                  seed_reference=ref, model=model, train=train, quick=quick, notes=str(raw.get("notes", "")))


def _read_toml(path: Path) -> dict:
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except FileNotFoundError:
        raise ConfigError("file not found", where=str(path)) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"not valid TOML: {exc}", where=str(path), hint="fix the syntax at that line") from None


def _check_keys(raw: dict, allowed: set[str], path: Path, what: str) -> None:
    bad = set(raw) - allowed
    if bad:
        raise ConfigError(f"unknown {what} key(s): {', '.join(sorted(bad))}", where=str(path),
                          hint=f"valid: {', '.join(sorted(allowed))}")


def _table(raw: dict, key: str, path: Path) -> dict:
    value = raw.get(key, {})
    if not isinstance(value, dict):
        raise ConfigError(f"[{key}] must be a table", where=str(path))
    return dict(value)


def _check_settings(table: dict, path: Path) -> None:
    bad = set(table) - set(SETTING_KEYS)
    if bad:
        raise ConfigError(f"unknown key(s) in [quick]: {', '.join(sorted(bad))}", where=str(path),
                          hint=f"valid: {', '.join(SETTING_KEYS)}")
    for key, value in table.items():
        if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
            raise ConfigError(f"[quick] {key} must be a positive integer, not {value!r}", where=str(path))


def _check_config(table: dict, cls, path: Path, name: str) -> None:
    allowed = {f.name for f in fields(cls)}
    bad = set(table) - allowed
    if bad:
        raise ConfigError(f"unknown key(s) in [{name}]: {', '.join(sorted(bad))}", where=str(path),
                          hint=f"valid: {', '.join(sorted(allowed))}")
