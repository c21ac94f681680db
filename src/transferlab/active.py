"""Active learning: which unlabelled texts are worth a human's time next, and a store for the answers.

Selection strategies (``transferlab label next --strategy``):

- ``uncertainty``: closest to the model's decision (distance of the positive score to the stored threshold, the
  margin between the top two classes, or for multi-label the label closest to its threshold);
- ``diversity``: k-means over the model's own representation of the pool (the input of its last linear layer),
  one text per cluster (the one nearest its centre), so a batch covers the pool instead of one corner of it;
- ``hybrid`` (default): the ``4·n`` most uncertain texts, then k-means among them, the most uncertain text of
  each cluster (uncertainty-weighted diversity, as in Zhdanov 2019).

Answers go to a JSONL *label store* (``transferlab label add``): one line per text with its label, the reviewer
(``$TRANSFERLAB_REVIEWER`` or the login name) and the time; a text labelled again keeps the latest answer.
``transferlab train --extra-train STORE`` adds the store to the training part (never to validation or test).
"""

from __future__ import annotations

import csv
import getpass
import hashlib
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .data.records import Examples
from .errors import ConfigError, DataError

STRATEGIES = ("uncertainty", "diversity", "hybrid")


def text_id(text: str, pair: str | None = None) -> str:
    key = text if pair is None else text + "\x1f" + pair
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()[:16]


def uncertainty(proba: np.ndarray, labels: list[str], decision: dict | None, *, multilabel: bool) -> np.ndarray:
    """Higher = closer to the decision boundary, in [0, 1]."""
    proba = np.asarray(proba, dtype=np.float64)
    thr = (decision or {}).get("threshold") or {}
    if multilabel:
        cut = np.asarray([thr["per_label"][lab]["threshold"] for lab in labels]) if thr else np.full(len(labels), .5)
        return 1.0 - np.abs(proba - cut).min(axis=1) / np.maximum(np.maximum(cut, 1 - cut), 1e-9).max()
    if thr:
        j, t = labels.index(thr["positive"]), thr["threshold"]
        dist = np.where(proba[:, j] >= t, (proba[:, j] - t) / max(1 - t, 1e-9), (t - proba[:, j]) / max(t, 1e-9))
        return 1.0 - dist
    top2 = np.sort(proba, axis=1)[:, -2:]
    return 1.0 - (top2[:, 1] - top2[:, 0])


def _kmeans_pick(vectors: np.ndarray, scores: np.ndarray, n: int, seed: int, *, nearest: bool) -> list[int]:
    from sklearn.cluster import KMeans

    n = min(n, len(vectors))
    if n == 0:
        return []
    km = KMeans(n_clusters=n, n_init=3, random_state=seed).fit(vectors)
    picks = []
    for c in range(n):
        members = np.flatnonzero(km.labels_ == c)
        if not len(members):
            continue
        if nearest:
            d = np.linalg.norm(vectors[members] - km.cluster_centers_[c], axis=1)
            picks.append(int(members[np.argmin(d)]))
        else:
            picks.append(int(members[np.argmax(scores[members])]))
    return picks


def select(clf, pool: Examples, n: int, *, strategy: str = "hybrid", exclude: set[str] = frozenset(),
           seed: int = 13, show_progress: bool = True) -> list[dict]:
    """The ``n`` pool texts to label next, most useful first, with why each was chosen."""
    if strategy not in STRATEGIES:
        raise ConfigError(f"selection strategy {strategy!r} is unknown", hint=f"choose one of {', '.join(STRATEGIES)}")
    if n <= 0:
        raise ConfigError(f"--n must be positive, got {n}")
    ids = [text_id(t, p) for t, p in zip(pool.texts, pool.pairs or [None] * len(pool))]
    seen: set[str] = set()
    keep = []
    for i, k in enumerate(ids):
        if k not in exclude and k not in seen:
            keep.append(i)
            seen.add(k)
    if not keep:
        return []
    cand = pool.subset(keep)
    texts = lambda ex: list(zip(ex.texts, ex.pairs)) if ex.is_pair else ex.texts  # noqa: E731
    if strategy == "diversity":  # every candidate is clustered: one forward pass gives scores and vectors
        vec, proba = clf.embed(texts(cand), with_proba=True, show_progress=show_progress)
    else:
        proba = clf.predict_proba(texts(cand), show_progress=show_progress)
    unc = uncertainty(proba, clf.labels_, clf.decision_, multilabel=clf.multilabel_)
    if strategy == "uncertainty":
        order = list(np.argsort(-unc, kind="stable")[:n])
    else:
        if strategy == "hybrid":  # only the 4n most uncertain are embedded (a second, small pass)
            shortlist = np.argsort(-unc, kind="stable")[: 4 * n]
            vec = clf.embed(texts(cand.subset(shortlist)))
        else:
            shortlist = np.arange(len(cand))
        vec = vec / np.maximum(np.linalg.norm(vec, axis=1, keepdims=True), 1e-12)
        local = _kmeans_pick(vec, unc[shortlist], n, seed, nearest=strategy == "diversity")
        order = sorted((int(shortlist[i]) for i in local), key=lambda i: -unc[i])
    predicted = clf.decode(proba[order]) if len(order) else []
    rows = []
    for rank, (i, pred) in enumerate(zip(order, predicted), start=1):
        src = keep[i]
        rows.append({"id": ids[src], "rank": rank, "text": pool.texts[src],
                     **({"pair": pool.pairs[src]} if pool.is_pair else {}),
                     "predicted": "|".join(pred) if isinstance(pred, list) else pred,
                     "uncertainty": round(float(unc[i]), 6), "origin": pool.origins[src],
                     "scores": json.dumps({lab: round(float(p), 4) for lab, p in zip(clf.labels_, proba[i])}),
                     "label": ""})
    return rows


def write_batch(rows: list[dict], path: Path) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    cols = ["id", "rank", "label", "predicted", "uncertainty", "text"] + (["pair"] if rows and "pair" in rows[0]
                                                                           else []) + ["scores", "origin"]
    with open(path, "w", encoding="utf-8", newline="") as f:
        w = csv.DictWriter(f, fieldnames=cols)
        w.writeheader()
        for r in rows:
            w.writerow({c: r.get(c, "") for c in cols})


# ------------------------------------------------------------------------------------------------ the store
@dataclass
class AddReport:
    added: int = 0
    updated: int = 0
    unchanged: int = 0
    unanswered: list[str] = field(default_factory=list)
    new_labels: set[str] = field(default_factory=set)

    def summary(self, store: Path) -> str:
        parts = [f"{self.added} added", f"{self.updated} relabelled", f"{self.unchanged} already known"]
        text = f"label store {store}: " + ", ".join(parts)
        if self.unanswered:
            text += (f"; {len(self.unanswered)} row(s) have no label yet and were left out "
                     f"(first: {self.unanswered[0]}); fill them in and run `label add` again")
        return text


def load_store(path: Path) -> dict[str, dict]:
    """id → latest answer.  A malformed line is an error naming the line, never skipped silently."""
    path = Path(path)
    entries: dict[str, dict] = {}
    if not path.exists():
        return entries
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
                _ = obj["text"], obj["label"]
                entries[obj["id"]] = obj
            except (json.JSONDecodeError, KeyError, TypeError) as exc:
                raise DataError(f"line {n} of the label store is not a valid entry ({exc})", where=str(path),
                                hint="each line must be a JSON object with id, text and label") from None
    return entries


def add_answers(batch: Path, store: Path, *, label_col: str = "label", label_sep: str | None = None,
                known_labels: list[str] | None = None, reviewer: str | None = None) -> AddReport:
    """Append the answered rows of a batch file (CSV from ``label next``, or JSONL) to the store."""
    batch, store = Path(batch), Path(store)
    if not batch.is_file():
        raise DataError("file not found", where=str(batch), hint="give the batch written by `transferlab label next`")
    rows = _read_batch(batch)
    if rows and ("text" not in rows[0] or label_col not in rows[0]):
        raise DataError(f"the batch needs 'text' and {label_col!r} columns; it has {sorted(rows[0])}", where=str(batch))
    existing = load_store(store)
    reviewer = reviewer or os.environ.get("TRANSFERLAB_REVIEWER") or _login()
    report, lines = AddReport(), []
    for n, row in enumerate(rows, start=2 if batch.suffix.lower() == ".csv" else 1):
        raw = row.get(label_col)
        raw = raw.strip() if isinstance(raw, str) else raw
        if raw in (None, "", []):
            report.unanswered.append(f"{batch}:line {n}")
            continue
        label = raw if not isinstance(raw, str) or not label_sep else [x.strip() for x in raw.split(label_sep) if x.strip()]
        text, pair = row["text"], row.get("pair") or None
        if not isinstance(text, str) or not text.strip():
            raise DataError(f"line {n} has an answer but no text", where=str(batch))
        key = row.get("id") or text_id(text, pair)
        if key != text_id(text, pair):
            raise DataError(f"line {n}: the id does not match the text (edited text?)", where=str(batch),
                            hint="keep the text as `label next` wrote it, or clear the id column")
        for lab in label if isinstance(label, list) else [label]:
            if known_labels is not None and lab not in known_labels:
                report.new_labels.add(lab)
        old = existing.get(key)
        if old and old["label"] == label:
            report.unchanged += 1
            continue
        report.updated += bool(old)
        report.added += not old
        entry = {"id": key, "text": text, **({"pair": pair} if pair else {}), "label": label, "reviewer": reviewer,
                 "labelled_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "batch": str(batch)}
        existing[key] = entry
        lines.append(json.dumps(entry, ensure_ascii=False))
    if lines:
        store.parent.mkdir(parents=True, exist_ok=True)
        with open(store, "a", encoding="utf-8") as f:
            f.write("\n".join(lines) + "\n")
    return report


def store_examples(store: Path, *, multilabel: bool = False) -> Examples:
    entries = list(load_store(store).values())
    if not entries:
        raise DataError("the label store is empty or missing", where=str(store),
                        hint="add answers with `transferlab label add BATCH --store ...` first")
    pairs = [e.get("pair") for e in entries]
    labels = [list(e["label"]) if isinstance(e["label"], list) else (
        [e["label"]] if multilabel else e["label"]) for e in entries]
    return Examples(texts=[e["text"] for e in entries], labels=labels,
                    pairs=pairs if any(p is not None for p in pairs) else None,
                    origins=[f"{store}:{e['id']}" for e in entries], multilabel=multilabel, source=str(store))


def merge_extra(parts: dict[str, Examples], extra: Examples) -> tuple[dict[str, Examples], dict]:
    """Add store examples to the training part; any that is already in validation or test is left out (it would
    leak) and any already in training replaces nothing (counted)."""
    def keys(ex: Examples) -> set[str]:
        return {text_id(t, p) for t, p in zip(ex.texts, ex.pairs or [None] * len(ex))}

    held_out = keys(parts["validation"]) | keys(parts["test"])
    in_train = keys(parts["train"])
    take, leaked, dup = [], 0, 0
    for i, (t, p) in enumerate(zip(extra.texts, extra.pairs or [None] * len(extra))):
        k = text_id(t, p)
        if k in held_out:
            leaked += 1
        elif k in in_train:
            dup += 1
        else:
            take.append(i)
    train = parts["train"]
    if extra.multilabel != train.multilabel:
        raise DataError("the label store and the training data disagree on multi-label", where=extra.source)
    if extra.is_pair != train.is_pair:
        raise DataError("the label store and the training data disagree on sentence pairs", where=extra.source)
    add = extra.subset(take)
    merged = Examples.concat(train, add, source=train.source)
    merged.columns = {}
    return {**parts, "train": merged}, {"added": len(take), "held_out_skipped": leaked, "already_in_train": dup}


def _read_batch(path: Path) -> list[dict]:
    if path.suffix.lower() in (".jsonl", ".json"):
        rows = []
        with open(path, encoding="utf-8") as f:
            for n, line in enumerate(f, start=1):
                if line.strip():
                    try:
                        rows.append(json.loads(line))
                    except json.JSONDecodeError as exc:
                        raise DataError(f"line {n} is not valid JSON ({exc.msg})", where=str(path)) from None
        return rows
    with open(path, encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f))


def _login() -> str:
    try:
        return getpass.getuser()
    except Exception:  # noqa: BLE001 - no login name in some containers
        return "unknown"
