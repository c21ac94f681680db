"""``transferlab bench vulcurator``: link a vulnerability description to the commit that fixes it.

TensorFlow CVEs with their fix commits (VulCurator data).  The CVEs are split 60/20/20 by CVE (a CVE's pairs never
cross the split); for each test CVE every commit message of the pool (294 commits, all parts) is ranked, and
recall@1/5/10 and MRR are reported for each family beside the peers on the same split: BM25, TF-IDF cosine and
frozen MiniLM cosine.  Trained families learn from the training CVEs' pairs only (negatives drawn among training
commits).  The frozen MiniLM row also chooses the threshold the application uses for "probably already disclosed":
the cosine that maximises F1 over every (validation CVE, commit) pair, written to ``disclosure_threshold.json``.

Reference points on other data: VFCFinder recall@5 96.6%; SAP Prospector top-10 84%.
"""

from __future__ import annotations

import json
import time
import traceback
from pathlib import Path
from typing import Callable

import numpy as np

from ..errors import DataError
from .measure import PeakMemory, Stopwatch, earlier_results

PUBLISHED = [{"name": "VFCFinder (Dunlap et al. 2024), recall@5, other data", "value": "96.6%"},
             {"name": "SAP Prospector (Ponta et al.), top-10, other data", "value": "84%"}]
ROWS: dict[str, dict] = {
    "bm25": {"kind": "peer", "title": "BM25 (rank-bm25), identifier-aware words"},
    "tfidf": {"kind": "peer", "title": "TF-IDF 1-2 grams, cosine"},
    "minilm-frozen": {"kind": "peer", "title": "MiniLM frozen, cosine (also picks the app's threshold)"},
    "minilm-bi-contrastive": {"kind": "ours", "title": "MiniLM bi-encoder tuned on training pairs (MNRL)",
                              "params": dict(encoder="minilm", strategy="contrastive", contrastive_epochs=3,
                                             contrastive_batch_size=16, contrastive_lr=2e-5, max_length=256)},
    "minilm-cross": {"kind": "ours", "title": "MiniLM cross-encoder fine-tuned on training pairs (per positive: 2 "
                                              "other commits, 2 other CVEs' descriptions)",
                     "params": dict(encoder="minilm", epochs=3, batch_size=16, lr=4e-5, max_length=256,
                                    patience=None),
                     "pairs": dict(negatives_per_positive=2, description_negatives=2)},
    "glove-pair": {"kind": "ours", "title": "GloVe BiGRU pair model [u, v, |u-v|, u*v]",
                   "params": dict(encoder="glove-50d", head="bigru", epochs=15, lr=2e-3, max_length=200,
                                  patience=None)},
    "hybrid-bm25+bi": {"kind": "fusion", "title": "reciprocal-rank fusion of BM25 and the tuned bi-encoder",
                       "of": ("bm25", "minilm-bi-contrastive")},
}
DEFAULT_ROWS = tuple(ROWS)


def _scores(name: str, links, train_idx, query_idx, device: str, seed: int, row_dir: Path) -> tuple[np.ndarray, dict]:
    from . import pair_peers

    queries = [links.descriptions[i] for i in query_idx]
    if name == "bm25":
        return pair_peers.bm25_scores(queries, links.messages), {}
    if name == "tfidf":
        return pair_peers.tfidf_scores(queries, links.messages), {}
    if name == "minilm-frozen":
        return pair_peers.encoder_cosine_scores(queries, links.messages, "minilm", device), {}
    from ..data.vulcurator import training_pairs
    from ..models.pairs import PairScorer

    pairs, labels = training_pairs(links, train_idx, seed=seed,
                                   **ROWS[name].get("pairs", {"negatives_per_positive": 4}))
    scorer = PairScorer(**ROWS[name]["params"], seed=seed, device=device, validation_fraction=0.0)
    with Stopwatch() as fit:
        scorer.fit(pairs, labels)
    return scorer, {"train_seconds": round(fit.seconds, 1), "n_train_pairs": len(pairs),
                    "history": scorer.info_.get("history") or scorer.info_.get("fit", {}).get("best")}


def first_ranked(scores: np.ndarray, messages: list[str]) -> dict:
    """Which commits come first, over all queries: a scorer that reads the query puts different commits first for
    different CVEs; one that ranks by the commit alone puts the same one (or the same message) first for all."""
    top = np.asarray(scores).argmax(axis=1)
    texts = [messages[int(t)] for t in top]
    common = max(set(texts), key=texts.count) if texts else ""
    return {"distinct_commits": int(len(set(top.tolist()))), "distinct_messages": int(len(set(texts))),
            "most_common_share": round(texts.count(common) / len(texts), 4) if texts else 0.0,
            "most_common_message": common[:120]}


def _fused(ranked: list[np.ndarray], k: int = 60) -> np.ndarray:
    """Reciprocal-rank fusion (Cormack et al. 2009): sum of 1/(k + rank) over the methods."""
    out = np.zeros_like(ranked[0], dtype=np.float64)
    for scores in ranked:
        order = np.argsort(-scores, axis=1, kind="stable")
        rank = np.empty_like(order)
        rows = np.arange(scores.shape[0])[:, None]
        rank[rows, order] = np.arange(1, scores.shape[1] + 1)
        out += 1.0 / (k + rank)
    return out


def run(data: str | Path, out: str | Path, *, rows: list[str] | None = None, device: str = "cpu", seed: int = 13,
        announce: Callable[[str], None] = print) -> dict:
    from ..data.vulcurator import grouped_split, load_fix_links
    from ..evaluation.decision import choose_threshold, parse_threshold
    from ..evaluation.ranking import ranking_report
    from ..models.base import environment

    rows = list(rows or DEFAULT_ROWS)
    unknown = [r for r in rows if r not in ROWS]
    if unknown:
        raise DataError(f"unknown row(s) {unknown}", hint=f"choose from {', '.join(ROWS)}")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    links = load_fix_links(data)
    split = grouped_split(len(links), seed=seed)
    announce(f"{data}: {len(links)} CVEs ({links.dropped_cves} without a commit message dropped), "
             f"{len(links.commits)} candidate commits; CVEs train {len(split['train'])}, validation "
             f"{len(split['val'])}, test {len(split['test'])}")
    env = environment()
    results = {"benchmark": "vulcurator", "data": str(data), "seed": seed,
               "n": {"cves": len(links), "candidates": len(links.commits), **{k: len(v) for k, v in split.items()}},
               "protocol": "split by CVE 60/20/20; each test CVE ranks all candidate commit messages (trailers "
                           "removed); trained rows see training CVEs' pairs only",
               "hardware": env["hardware"], "versions": env["versions"], "published": PUBLISHED, "rows": []}
    merged = {r["name"]: r for r in earlier_results(out, results, ("data", "n", "seed"))}
    test_scores: dict[str, np.ndarray] = {}
    for i, name in enumerate(rows, 1):
        announce(f"[{i}/{len(rows)}] {name} ({ROWS[name]['title']})")
        row_dir = out / "rows" / name
        row_dir.mkdir(parents=True, exist_ok=True)
        try:
            with PeakMemory() as mem, Stopwatch() as sw:
                if ROWS[name]["kind"] == "fusion":
                    parts = [test_scores.get(n) for n in ROWS[name]["of"]]
                    if any(p is None for p in parts):
                        raise DataError(f"fusion needs the rows {ROWS[name]['of']} in the same run")
                    scores, val_scores, extra = _fused(parts), None, {}
                else:
                    got, extra = _scores(name, links, split["train"], split["test"], device, seed, row_dir)
                    if isinstance(got, np.ndarray):
                        scores = got
                        val_scores = (_scores(name, links, split["train"], split["val"], device, seed, row_dir)[0]
                                      if name == "minilm-frozen" else None)
                    else:  # a fitted PairScorer
                        with Stopwatch() as inf:
                            scores = got.rank([links.descriptions[j] for j in split["test"]], links.messages)
                        extra["rank_seconds"] = round(inf.seconds, 1)
                        val_scores = got.rank([links.descriptions[j] for j in split["val"]], links.messages)
            test_scores[name] = scores
            np.save(row_dir / "test_scores.npy", np.asarray(scores, dtype=np.float32), allow_pickle=False)
            gold = [links.gold[j] for j in split["test"]]
            report = ranking_report(scores, gold)
            row = {"name": name, "title": ROWS[name]["title"], "kind": ROWS[name]["kind"], "status": "ok",
                   **{k: round(float(report[k]), 4) for k in ("recall@1", "recall@5", "recall@10", "mrr")},
                   "median_rank": float(report["median_rank"]), "ranks": [int(r) for r in report["ranks"]],
                   "first_ranked": first_ranked(scores, links.messages),
                   "seconds": round(sw.seconds, 1), "peak_memory_mb": round(mem.peak_mb, 1), **extra}
            if val_scores is not None:
                vgold = [links.gold[j] for j in split["val"]]
                row["validation"] = {k: round(float(v), 4) for k, v in ranking_report(val_scores, vgold).items()
                                     if k in ("recall@1", "recall@5", "recall@10", "mrr")}
                truth = np.zeros_like(val_scores, dtype=bool)
                for q, g in enumerate(vgold):
                    truth[q, list(g)] = True
                chosen = choose_threshold(truth.ravel(), val_scores.ravel(), parse_threshold("f1"), name="fix")
                row["threshold"] = {k: chosen[k] for k in ("threshold", "validation")}
                if name == "minilm-frozen":
                    _write_threshold(out, chosen, row, results)
            announce(f"    recall@1 {row['recall@1']:.3f}, @5 {row['recall@5']:.3f}, @10 {row['recall@10']:.3f}, "
                     f"MRR {row['mrr']:.3f}")
        except Exception as exc:  # recorded with its reason; the other rows still run
            (row_dir / "error.txt").write_text(traceback.format_exc(), encoding="utf-8")
            row = {"name": name, "title": ROWS[name]["title"], "kind": ROWS[name]["kind"], "status": "failed",
                   "error": " ".join(f"{type(exc).__name__}: {exc}".split())}
            announce(f"    FAILED: {row['error']}")
        row.update(device=device, finished=time.strftime("%Y-%m-%dT%H:%M:%S%z"))
        merged[name] = row
        results["rows"] = [merged[n] for n in ROWS if n in merged]
        write(results, out)
    return results


def _write_threshold(out: Path, chosen: dict, row: dict, results: dict) -> None:
    v = chosen["validation"]
    doc = {"encoder": "minilm", "max_length": 256, "threshold": round(float(chosen["threshold"]), 4),
           "chosen_on": f"F1 over all (validation CVE, commit) pairs of the VulCurator TensorFlow data, "
                        f"{results['n']['val']} CVEs x {results['n']['candidates']} commits; there precision "
                        f"{v['precision']:.2f}, recall {v['recall']:.2f}",
           "validation": v, "command": "transferlab bench vulcurator --out benchmarks/vulcurator --rows minilm-frozen",
           "seed": results["seed"]}
    (out / "disclosure_threshold.json").write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")


def write(results: dict, out: Path) -> None:
    from ..evaluation.ranking import plot_recall_curve

    (out / "results.json").write_text(json.dumps(results, indent=2, default=str) + "\n", encoding="utf-8")
    hw = results["hardware"]
    n = results["n"]
    lines = ["# Vulnerability description -> fix commit ranking (VulCurator, TensorFlow)", "",
             f"Data `{results['data']}`: {n['cves']} CVEs, {n['candidates']} candidate commits. {results['protocol']}. "
             f"Test CVEs: {n['test']}.",
             f"Hardware: {hw.get('processor')}, {hw.get('cpu_count')} CPUs"
             + (f", {hw['gpu']}" if hw.get("gpu") else ", no GPU") + ".", "",
             "| row | recall@1 | recall@5 | recall@10 | MRR | median rank | distinct first | train s | total s | "
             "peak MB |", "|---|---|---|---|---|---|---|---|---|---|"]
    for r in results["rows"]:
        if r.get("status") != "ok":
            lines.append(f"| {r['name']} | failed: {r.get('error')} | | | | | | | | |")
            continue
        first = r.get("first_ranked")
        lines.append(f"| {r['name']} ({r['kind']}) | {r['recall@1']:.3f} | {r['recall@5']:.3f} | "
                     f"{r['recall@10']:.3f} | **{r['mrr']:.3f}** | {r['median_rank']:g} | "
                     f"{first['distinct_messages'] if first else '–'} | "
                     f"{r.get('train_seconds', '–')} | {r['seconds']} | {r['peak_memory_mb']} |")
    thr = [r for r in results["rows"] if r.get("threshold") and r["name"] == "minilm-frozen"]
    if thr:
        t = thr[0]["threshold"]
        lines += ["", f"Application threshold (frozen MiniLM cosine, F1 on validation pairs): {t['threshold']:.3f} "
                      f"(precision {t['validation']['precision']:.2f}, recall {t['validation']['recall']:.2f})."]
    lines += ["", f"*distinct first*: how many different commit messages some test CVE ranks first (of "
                  f"{n['test']}); a scorer that ignores the description puts one message first for all."]
    lines += ["", "Reference points (other data):", ""] + [f"- {p['name']}: {p['value']}" for p in results["published"]]
    (out / "results.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    ok = {r["name"]: {"ranks": r["ranks"], "mrr": r["mrr"]} for r in results["rows"] if r.get("status") == "ok"}
    if ok:
        plot_recall_curve(ok, out / "recall_at_k.png")
