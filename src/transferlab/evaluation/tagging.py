"""Entity-level metrics for sequence tagging (NER and the like), with seqeval reading the tags into entities.

Two ways to read a tag sequence into entities, and this report gives both:

* **strict** (the headline numbers: ``micro``, ``macro_f1``, ``per_type``, ``confusion``): seqeval's
  ``mode="strict"`` with the chosen scheme.  An entity must begin the way the scheme says; in IOB2 that is ``B-X``,
  so a run that starts with ``I-X`` (after ``O`` or after another type) is no entity at all.
* **conlleval** (``conlleval`` and ``conlleval_f1``): seqeval's default mode, which follows the CoNLL-2000
  ``conlleval`` script.  It is lenient: an ``I-X`` that cannot continue the previous chunk starts a new one.
  It knows the B/I/E/S prefixes only, so with ``scheme="bilou"`` (L-, U-) only the strict numbers mean much.

The two differ only on sequences that break the scheme, which mostly means model predictions without a CRF,
so a gap between them measures how many entities the model opened with the wrong tag.

Undefined ratios (no predicted entity, no gold entity, no token at all) are reported as 0.0, seqeval's
``zero_division=0`` convention, and nothing is warned: an all-``O`` evaluation set gives f1 0.0 with support 0.
"""

from __future__ import annotations

import warnings
from pathlib import Path

from seqeval.metrics import sequence_labeling as conll_mode
from seqeval.scheme import BILOU, IOB1, IOB2, IOBES, IOE1, IOE2, Entities

from ..errors import ConfigError, DataError

# Each scheme with the prefixes its tags may carry (besides a bare "O").
SCHEMES = {"iob1": (IOB1, "IB"), "iob2": (IOB2, "IB"), "ioe1": (IOE1, "IE"), "ioe2": (IOE2, "IE"),
           "iobes": (IOBES, "IBES"), "bilou": (BILOU, "BILU")}
EXTRA_COLUMNS = ("boundary", "missed")


def entity_report(gold: list[list[str]], pred: list[list[str]], *, scheme: str = "iob2") -> dict:
    """Entity-level precision/recall/F1 (micro, macro, per type), token accuracy and a confusion table.

    Returns a JSON-ready dict::

        {"micro": {"precision", "recall", "f1", "support"}, "macro_f1",
         "per_type": {TYPE: {"precision", "recall", "f1", "support"}},
         "conlleval": {"precision", "recall", "f1", "support"}, "conlleval_f1",
         "token_accuracy", "n_sentences", "n_tokens", "scheme", "confusion": confusion_table(...)}

    ``per_type`` lists every type seen (strictly) in gold or predictions; ``support`` counts gold entities.
    ``macro_f1`` is the unweighted mean of the per-type f1 values.
    """
    token_scheme = _scheme(scheme)
    gold, pred = _checked(gold, pred, scheme)
    gold_ents, pred_ents = _strict_entities(gold, token_scheme), _strict_entities(pred, token_scheme)
    n_tokens = sum(map(len, gold))
    per_type = {kind: _scores(gold_ents, pred_ents, kind) for kind in _types(gold_ents, pred_ents)}
    conll = _conlleval(gold, pred)
    return {
        "scheme": scheme, "n_sentences": len(gold), "n_tokens": n_tokens,
        "token_accuracy": _ratio(sum(g == p for gs, ps in zip(gold, pred) for g, p in zip(gs, ps)), n_tokens),
        "micro": _scores(gold_ents, pred_ents),
        "macro_f1": _ratio(sum(row["f1"] for row in per_type.values()), len(per_type)),
        "per_type": per_type,
        "conlleval": conll, "conlleval_f1": conll["f1"],
        "confusion": _confusion(gold_ents, pred_ents),
    }


def confusion_table(gold: list[list[str]], pred: list[list[str]], *, scheme: str = "iob2") -> dict:
    """Where each gold entity went, read with the same strict rules as :func:`entity_report`.

    A gold entity counts under the type predicted on exactly its span; under ``"boundary"`` when no predicted
    entity has its span but one overlaps it (a predicted entity that overlaps two gold ones counts for both);
    under ``"missed"`` when no predicted entity touches it.  A predicted entity that overlaps no gold entity is
    ``"spurious"`` (per predicted type); an overlapping one with wrong boundaries is not counted again there.

    Returns ``{"types": [...], "columns": types + ["boundary", "missed"], "rows": {gold type: {column: n}},
    "spurious": {type: n}}``.  ``types`` is every type in gold or predictions, so rows and columns line up and
    the diagonal holds the correct entities; each row sums to that type's gold support.
    """
    token_scheme = _scheme(scheme)
    gold, pred = _checked(gold, pred, scheme)
    return _confusion(_strict_entities(gold, token_scheme), _strict_entities(pred, token_scheme))


def _confusion(gold_ents: set[tuple], pred_ents: set[tuple]) -> dict:
    types = _types(gold_ents, pred_ents)
    columns = types + list(EXTRA_COLUMNS)
    rows = {t: dict.fromkeys(columns, 0) for t in types}
    by_span = {e[:3]: e[3] for e in pred_ents}
    pred_by_sent, gold_by_sent = _by_sentence(pred_ents), _by_sentence(gold_ents)
    for sent, start, end, kind in gold_ents:
        if (sent, start, end) in by_span:
            rows[kind][by_span[(sent, start, end)]] += 1
        elif any(_overlap((start, end), p[1:3]) for p in pred_by_sent.get(sent, ())):
            rows[kind]["boundary"] += 1
        else:
            rows[kind]["missed"] += 1
    spurious = dict.fromkeys(types, 0)
    for sent, start, end, kind in pred_ents:
        if not any(_overlap((start, end), g[1:3]) for g in gold_by_sent.get(sent, ())):
            spurious[kind] += 1
    return {"types": types, "columns": columns, "rows": rows, "spurious": spurious}


def format_report(report: dict) -> str:
    """A plain-text table: one line per entity type, then micro and macro averages and the other figures."""
    name_width = max([len("micro avg")] + [len(t) for t in report["per_type"]])
    header = f"{'type':<{name_width}}  {'precision':>9}  {'recall':>6}  {'f1':>6}  {'support':>7}"
    lines = [header, "-" * len(header)]
    for kind, row in report["per_type"].items():
        lines.append(_format_row(kind, row, name_width))
    if report["per_type"]:
        lines.append("-" * len(header))
    lines.append(_format_row("micro avg", report["micro"], name_width))
    lines.append(f"{'macro f1':<{name_width}}  {'':>9}  {'':>6}  {report['macro_f1']:>6.4f}")
    lines.append("")
    lines.append(f"conlleval f1 (lenient): {report['conlleval_f1']:.4f}   "
                 f"token accuracy: {report['token_accuracy']:.4f}   "
                 f"sentences: {report['n_sentences']}   scheme: {report.get('scheme', 'iob2')} (strict)")
    if not report["micro"]["support"] and not report["per_type"]:
        lines.append("no entities in gold or predictions: precision, recall and f1 are reported as 0")
    return "\n".join(lines)


def plot_confusion(table: dict, path) -> Path:
    """Heat map of :func:`confusion_table`: gold types down (then "spurious"), predictions across.

    Cells are coloured by share of their row and print the raw count; the "spurious" row is coloured by its
    share of all spurious entities.
    """
    import numpy as np

    from .plots import DPI, plt  # plots selects the Agg backend before pyplot is first imported

    path = Path(path)
    types, columns = table["types"], table["columns"]
    counts = np.array([[table["rows"][t][c] for c in columns] for t in types]
                      + [[table["spurious"].get(c, 0) for c in columns]], dtype=float)
    totals = counts.sum(axis=1, keepdims=True)
    rates = np.divide(counts, totals, out=np.zeros_like(counts), where=totals > 0)
    row_labels = types + ["spurious"]
    fig, ax = plt.subplots(figsize=(min(max(4.5, 0.6 * len(columns) + 2.5), 16),
                                    min(max(3.5, 0.5 * len(row_labels) + 2), 14)))
    try:
        im = ax.imshow(rates, cmap="Blues", vmin=0, vmax=1, aspect="auto")
        fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label="row share")
        ax.set_xticks(range(len(columns)), columns, rotation=45 if len(columns) > 3 else 0,
                      ha="right" if len(columns) > 3 else "center")
        ax.set_yticks(range(len(row_labels)), row_labels)
        ax.set_xlabel("predicted")
        ax.set_ylabel("gold entity")
        ax.set_title("Entity confusion (strict spans)")
        size = 10 if len(columns) <= 10 else 7
        for i in range(len(row_labels)):
            for j in range(len(columns)):
                ax.text(j, i, f"{counts[i, j]:g}", ha="center", va="center", fontsize=size,
                        color="white" if rates[i, j] > 0.5 else "black")
        if not types:
            ax.text(0.5, 0.5, "no entities", ha="center", va="center", transform=ax.transAxes, color="gray")
        fig.tight_layout()
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=DPI)
        return path
    finally:
        plt.close(fig)


def _scheme(name: str):
    try:
        return SCHEMES[name.lower()][0]
    except (KeyError, AttributeError):
        raise ConfigError(f"unknown tagging scheme {name!r}", hint=f"choose one of {', '.join(SCHEMES)}") from None


def _checked(gold, pred, scheme: str) -> tuple[list[list[str]], list[list[str]]]:
    """Lists of lists of valid tags (seqeval rejects tuples, and fails on a bad prefix with a bare KeyError)."""
    gold = [list(s) for s in gold]
    pred = [list(s) for s in pred]
    if len(gold) != len(pred):
        raise ValueError(f"{len(gold)} gold sentences but {len(pred)} predicted")
    for i, (g, p) in enumerate(zip(gold, pred)):
        if len(g) != len(p):
            raise ValueError(f"sentence {i}: {len(g)} gold tags but {len(p)} predicted")
    prefixes = SCHEMES[scheme.lower()][1]
    for side, sentences in (("gold", gold), ("predicted", pred)):
        for i, sentence in enumerate(sentences):
            for j, tag in enumerate(sentence):
                if not _valid_tag(tag, prefixes):
                    raise DataError(f"tag {tag!r} is not a {scheme.upper()} tag",
                                    where=f"{side} sentence {i}, token {j}",
                                    hint=f"tags must be O or one of {', '.join(p + '-TYPE' for p in prefixes)}")
    return gold, pred


def _valid_tag(tag, prefixes: str) -> bool:
    return tag == "O" or (isinstance(tag, str) and len(tag) > 2 and tag[0] in prefixes and tag[1] == "-")


def _strict_entities(sentences: list[list[str]], token_scheme) -> set[tuple[int, int, int, str]]:
    """(sentence, start, end exclusive, type) for every entity seqeval's strict mode accepts."""
    found = Entities(sentences, token_scheme).entities
    return {(e.sent_id, e.start, e.end, e.tag) for sentence in found for e in sentence}


def _by_sentence(entities: set[tuple]) -> dict[int, list[tuple]]:
    grouped: dict[int, list[tuple]] = {}
    for entity in entities:
        grouped.setdefault(entity[0], []).append(entity)
    return grouped


def _types(*entity_sets: set[tuple]) -> list[str]:
    return sorted({e[3] for entities in entity_sets for e in entities})


def _scores(gold_ents: set[tuple], pred_ents: set[tuple], kind: str | None = None) -> dict:
    """Precision, recall and f1 of exact (span and type) matches, as seqeval's strict mode counts them.

    seqeval's own functions would extract the entities again for each call, which dominates the run time on
    a CoNLL-sized set; tests/test_tagging_metrics.py checks these numbers against seqeval's report.
    """
    if kind is not None:
        gold_ents = {e for e in gold_ents if e[3] == kind}
        pred_ents = {e for e in pred_ents if e[3] == kind}
    correct = len(gold_ents & pred_ents)
    precision, recall = _ratio(correct, len(pred_ents)), _ratio(correct, len(gold_ents))
    return {"precision": precision, "recall": recall,
            "f1": _ratio(2 * precision * recall, precision + recall), "support": len(gold_ents)}


def _conlleval(gold: list[list[str]], pred: list[list[str]]) -> dict:
    if not gold:  # seqeval refuses an empty list ("without list of list")
        return {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0}
    with warnings.catch_warnings():
        # zero_division=0 already answers the undefined cases; numpy's own "empty slice" notes add nothing.
        warnings.simplefilter("ignore", RuntimeWarning)
        p, r, f, s = conll_mode.precision_recall_fscore_support(gold, pred, average="micro", zero_division=0)
    return {"precision": float(p), "recall": float(r), "f1": float(f), "support": int(s)}


def _ratio(num: int, den: int) -> float:
    return num / den if den else 0.0


def _overlap(a: tuple[int, int], b: tuple[int, int]) -> bool:
    """Half-open token spans [start, end) that share a token."""
    return a[0] < b[1] and b[0] < a[1]


def _format_row(name: str, row: dict, width: int) -> str:
    return (f"{name:<{width}}  {row['precision']:>9.4f}  {row['recall']:>6.4f}  {row['f1']:>6.4f}  "
            f"{row['support']:>7}")
