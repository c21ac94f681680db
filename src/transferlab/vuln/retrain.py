"""Learning from triage: verdicts become training examples for both stages, and before/after is measured.

A verdict is a label for each stage it reaches: ``vulnerability`` is security (stage 1) and a vulnerability
(stage 2); ``security-not-vuln`` is security and not a vulnerability; ``not-security`` is stage 1's negative
and says nothing about stage 2.  A share of the judged records (``holdout``, chosen by a hash of the record id,
so the same record stays on the same side across runs) is kept out of training; the old and the new cascade
are scored on it and on the original held-out test parts.  The cascade is trained again with the same recipes,
label sources, split and target recalls, with each verdict repeated ``verdict_weight`` times.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Callable

import numpy as np

from ..data.records import Examples
from . import labels as L
from .cascade import STAGES, Cascade, _held_out, train_cascade
from .store import Store

STAGE1 = {"vulnerability": L.SECURITY, "security-not-vuln": L.SECURITY, "not-security": L.NOT_SECURITY}
STAGE2 = {"vulnerability": L.VULNERABILITY, "security-not-vuln": L.NOT_VULNERABILITY}


def _held(record_id: int, share: float, seed: int) -> bool:
    digest = hashlib.sha256(f"{seed}:{record_id}".encode()).digest()
    return int.from_bytes(digest[:4], "big") / 2**32 < share


def verdict_examples(rows: list[dict], holdout: float, weight: int = 1, seed: int = 13):
    """-> (training extras per stage, held-out examples per stage)."""
    train: dict[int, list] = {1: [], 2: []}
    held: dict[int, list] = {1: [], 2: []}
    for r in rows:
        text = L.issue_text(r.get("title"), r.get("body"))
        where = f"verdict {r['id']} (record {r['record_id']}, {r['reviewer']})"
        side = held if _held(r["record_id"], holdout, seed) else train
        for stage, table in ((1, STAGE1), (2, STAGE2)):
            if r["verdict"] in table:
                side[stage].append((text, table[r["verdict"]], where))

    def build(items, repeat, source):
        items = [it for it in items for _ in range(repeat)]
        return Examples(texts=[t for t, _, _ in items], labels=[y for _, y, _ in items],
                        origins=[w for _, _, w in items], columns={"origin": ["verdict"] * len(items)}, source=source)

    return ({s: build(train[s], max(1, weight), f"verdicts:stage{s}") for s in (1, 2)},
            {s: build(held[s], 1, f"verdicts-held-out:stage{s}") for s in (1, 2)})


def _measure(cascade: Cascade, stage: int, examples: Examples) -> dict | None:
    if len(examples) == 0:
        return None
    model = cascade.stage1 if stage == 1 else cascade.stage2
    positive = STAGES[stage][0]
    truth = np.array([y == positive for y in examples.labels])
    if truth.all() or not truth.any():  # one class only: what share is called positive, nothing more
        proba = model.predict_proba(examples)[:, model.labels_.index(positive)]
        called = proba >= cascade.threshold(stage)
        return {"n": len(examples), "only_class": positive if truth.all() else "other",
                "recall" if truth.all() else "fpr": round(float(called.mean()), 4)}
    return {k: v for k, v in _held_out(model, examples, positive).items() if k != "per_origin"}


def retrain(cascade: Cascade, store: Store, out: str | Path, *, data=None, holdout: float = 0.3,
            verdict_weight: int = 3, seed: int = 13, log: Callable[[str], None] = print) -> dict:
    import json

    from ..errors import DataError

    rows = store.verdicts(latest_only=True)
    if not rows:
        raise DataError("there are no triage verdicts to learn from", where=store.url,
                        hint="judge flagged records with `transferlab vuln triage --record ID --verdict ...`")
    extra, held = verdict_examples(rows, holdout, verdict_weight, seed)
    counts = {"verdicts": len(rows), "by_verdict": {v: sum(r["verdict"] == v for r in rows)
                                                    for v in ("vulnerability", "security-not-vuln", "not-security")},
              "train_stage1": len(extra[1]) // max(1, verdict_weight), "train_stage2": len(extra[2]) // max(1, verdict_weight),
              "held_out_stage1": len(held[1]), "held_out_stage2": len(held[2])}
    log(f"{counts['verdicts']} verdicts: {counts['by_verdict']}; held out {counts['held_out_stage1']} (stage 1), "
        f"{counts['held_out_stage2']} (stage 2)")
    info = cascade.info
    split = info["stage1"]["labels"]
    new = train_cascade(out, data=data or info.get("data"), stage1_recipe=info["recipes"]["stage1"],
                        stage2_recipe=info["recipes"]["stage2"], stage1_recall=info["stage1"]["target_recall"],
                        stage2_recall=info["stage2"]["target_recall"], validation_from=split["validation_from"],
                        test_from=split["test_from"], farsec=split["farsec"],
                        max_farsec_negatives=split.get("max_farsec_negatives"), seed=seed, extra=extra,
                        # the same fitting as the cascade had (one from before refitting existed: none)
                        refit=info.get("refit", False), log=log)
    report = {"before_version": cascade.version, "after_version": new.version, "counts": counts,
              "verdict_weight": verdict_weight, "holdout": holdout, "rows": []}
    for stage, test in new.held_out.items():  # the same test parts the old cascade was measured on
        trained_on = set(extra[stage].texts)
        for name, examples in (("original test", test), ("held-out verdicts", held[stage])):
            before, after = _measure(cascade, stage, examples), _measure(new, stage, examples)
            if before is not None:
                row = {"stage": stage, "set": name, "before": before, "after": after}
                overlap = sum(t in trained_on for t in examples.texts)
                if overlap:  # judged records that are also test items: that comparison is not clean
                    row["trained_on_overlap"] = overlap
                report["rows"].append(row)
    (Path(out) / "retrain.json").write_text(json.dumps(report, indent=2, default=str), encoding="utf-8")
    return report


def table(report: dict):
    from rich.table import Table

    t = Table(title=f"before {report['before_version']} -> after {report['after_version']}")
    for col in ("stage", "held-out set", "n", "PR-AUC", "recall", "precision", "F1", "also trained on"):
        t.add_column(col)

    def fmt(m, key):
        return "-" if m is None or m.get(key) is None else f"{m[key]:.3f}"

    for r in report["rows"]:
        b, a = r["before"], r["after"]
        t.add_row(str(r["stage"]), r["set"], str(b.get("n")),
                  *(f"{fmt(b, k)} -> {fmt(a, k)}" for k in ("pr_auc", "recall", "precision", "f1")),
                  str(r.get("trained_on_overlap", 0)))
    return t
