"""``transferlab bench conll2003``: named-entity recognition on CoNLL-2003 English, every family and two peers on
one split and one machine.

Train on ``train.txt`` (14,041 sentences), choose the epoch on ``valid.txt`` (3,250), score ``test.txt`` (3,453)
once, at the entity level (seqeval strict IOB2; conlleval's reading beside it).  Rows merge into
``OUT/results.json`` by name, so CPU rows and GPU rows can run on different days.

The peers: the plain Hugging Face ``Trainer`` token-classification recipe on the same encoder (same epochs, batch
size and learning rate as our row), and spaCy's pretrained ``en_core_web_sm`` (trained on OntoNotes, not CoNLL;
its labels mapped, see bench/ner_peers.py).  Both offline transformers are uncased: capitalisation, the strongest
single NER cue in English news, never reaches them.
"""

from __future__ import annotations

import json
import time
import traceback
from pathlib import Path
from typing import Callable

from ..data.tagged import TaggedSentences, read_conll
from ..errors import DataError
from .measure import PeakMemory, Stopwatch, earlier_results

PUBLISHED = [{"name": "BERT-base, cased (Devlin et al. 2019)", "f1": 92.4},
             {"name": "Flair embeddings + BiLSTM-CRF (Akbik et al. 2018)", "f1": 93.09},
             {"name": "BiLSTM-CNN-CRF, GloVe 100d (Ma & Hovy 2016)", "f1": 91.21}]
TARGETS = {"minilm-finetune": 88.0, "glove-bilstm-crf": 86.0, "mpnet-finetune": 91.0}
# variants of a fine-tuned row: the casing rows measure what an uncased encoder loses, the context rows what the
# neighbouring sentences of the document add (FLERT); the variant with the best validation F1 takes the target
VARIANTS = {"minilm-finetune": ("minilm-finetune-case", "minilm-finetune-context"),
            "mpnet-finetune": ("mpnet-finetune-case", "mpnet-finetune-context")}
MARGIN_OVER_PEER = 0.5  # every transformer row at least this many F1 points above the HF Trainer on its encoder

ROWS: dict[str, dict] = {
    "glove-bilstm-crf": {"kind": "ours", "title": "GloVe 50d + casing + char-CNN, BiLSTM-CRF",
                         "params": dict(encoder="glove-50d", crf=True, epochs=30, patience=4, lr=1e-3,
                                        batch_size=16, dropout=0.5)},
    "glove-bilstm": {"kind": "ours", "title": "GloVe 50d + casing + char-CNN, BiLSTM (softmax)",
                     "params": dict(encoder="glove-50d", epochs=30, patience=4, lr=1e-3, batch_size=16,
                                    dropout=0.5)},
    "minilm-frozen-crf": {"kind": "ours", "title": "MiniLM frozen, linear tagger + CRF",
                          "params": dict(encoder="minilm", strategy="frozen", crf=True, epochs=30, patience=4,
                                         lr=5e-3, dropout=0.1)},
    "minilm-finetune": {"kind": "ours", "title": "MiniLM fine-tuned, first subword + CRF",
                        "params": dict(encoder="minilm", crf=True, epochs=3, batch_size=16, lr=5e-5)},
    "minilm-finetune-case": {"kind": "ours", "title": "MiniLM fine-tuned + casing feature, first subword + CRF",
                             "params": dict(encoder="minilm", crf=True, case_features=True, epochs=3, batch_size=16,
                                            lr=5e-5)},
    # 16 subwords (about one sentence) each side, not FLERT's 64: every token of context is paid for on 2 CPU cores
    "minilm-finetune-context": {"kind": "ours", "title": "MiniLM fine-tuned + casing + 16 subwords of document "
                                                       "context each side, first subword + CRF",
                                "params": dict(encoder="minilm", crf=True, case_features=True, context=16,
                                               epochs=3, batch_size=16, lr=5e-5)},
    "hf-trainer-minilm": {"kind": "hf-trainer", "title": "HF Trainer token-classification recipe, MiniLM",
                          "params": dict(encoder="minilm", epochs=3, batch_size=16, lr=5e-5), "peer_of": "minilm"},
    "mpnet-finetune": {"kind": "ours", "title": "MPNet-base fine-tuned, first subword + CRF (GPU row)",
                       "params": dict(encoder="mpnet", crf=True, epochs=3, batch_size=16, lr=5e-5)},
    "mpnet-finetune-case": {"kind": "ours", "title": "MPNet-base fine-tuned + casing feature, first subword + CRF",
                            "params": dict(encoder="mpnet", crf=True, case_features=True, epochs=3, batch_size=16,
                                           lr=5e-5)},
    "mpnet-finetune-context": {"kind": "ours", "title": "MPNet-base fine-tuned + casing + 48 subwords of document "
                                                      "context each side, first subword + CRF (GPU row)",
                               "params": dict(encoder="mpnet", crf=True, case_features=True, context=48, epochs=3,
                                              batch_size=16, lr=5e-5)},
    "hf-trainer-mpnet": {"kind": "hf-trainer", "title": "HF Trainer token-classification recipe, MPNet",
                         "params": dict(encoder="mpnet", epochs=3, batch_size=16, lr=5e-5), "peer_of": "mpnet"},
    "spacy-sm": {"kind": "spacy", "title": "spaCy en_core_web_sm 3.8 (OntoNotes labels mapped; not trained on CoNLL)",
                 "params": {}},
}
DEFAULT_ROWS = ("glove-bilstm-crf", "minilm-frozen-crf", "minilm-finetune", "hf-trainer-minilm", "spacy-sm")


def load(folder: str | Path, *, max_train: int | None = None, max_test: int | None = None):
    folder = Path(folder)
    parts = {}
    for part in ("train", "valid", "test"):
        path = folder / f"{part}.txt"
        if not path.is_file():
            raise DataError(f"{part}.txt is missing", where=str(folder),
                            hint="give the folder holding CoNLL-2003 train.txt, valid.txt and test.txt")
        parts[part] = read_conll(path)
    if max_train and len(parts["train"]) > max_train:
        parts["train"] = parts["train"].subset(range(max_train))
        parts["valid"] = parts["valid"].subset(range(min(len(parts["valid"]), max(200, max_train // 4))))
    if max_test and len(parts["test"]) > max_test:
        parts["test"] = parts["test"].subset(range(max_test))
    return parts


def _run_ours(params: dict, parts, row_dir: Path, device: str, seed: int, epochs: int | None) -> dict:
    from ..models.tagger import TokenTagger

    params = {**params, **({"epochs": epochs} if epochs else {})}
    tagger = TokenTagger(**params, seed=seed, device=device)
    with Stopwatch() as fit:
        tagger.fit(parts["train"], validation=parts["valid"], out_dir=row_dir, save_model=False)
    with Stopwatch() as inf:
        pred = tagger.predict(parts["test"], show_progress=True)
    info = tagger.fit_info_
    return {"pred": pred, "train_seconds": fit.seconds, "predict_seconds": inf.seconds, "history": tagger.history_,
            "epochs": len(tagger.history_), "best": info["best"], "params": info["params_total"],
            "params_trainable": info["params_trainable"], "settings": {k: str(v) for k, v in params.items()}}


def _run_peer(row: dict, parts, device: str, seed: int, epochs: int | None) -> dict:
    from . import ner_peers

    test = parts["test"].tokens
    if row["kind"] == "spacy":
        return ner_peers.spacy_ner(test)
    params = {**row["params"], **({"epochs": epochs} if epochs else {})}
    out = ner_peers.hf_trainer_token_classification(parts["train"].tokens, parts["train"].tags, test, seed=seed,
                                                    device=device, validation=(parts["valid"].tokens,
                                                                               parts["valid"].tags), **params)
    out["epochs"] = params["epochs"]
    return out


def run_row(name: str, parts, out: Path, *, device: str, seed: int, epochs: int | None) -> dict:
    from ..evaluation.tagging import entity_report, plot_confusion

    row = ROWS[name]
    row_dir = out / "rows" / name
    row_dir.mkdir(parents=True, exist_ok=True)
    with PeakMemory() as mem:
        got = (_run_ours(row["params"], parts, row_dir, device, seed, epochs) if row["kind"] == "ours"
               else _run_peer(row, parts, device, seed, epochs))
    test: TaggedSentences = parts["test"]
    report = entity_report(list(test.tags), got["pred"])
    (row_dir / "report.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    plot_confusion(report["confusion"], row_dir / "confusion.png")
    from ..data.tagged import write_conll

    write_conll(row_dir / "test_predictions.conll", test.tokens, test.tags, got["pred"])
    if got.get("history") and row["kind"] != "ours":
        from ..evaluation.plots import plot_curves

        with open(row_dir / "metrics.jsonl", "w", encoding="utf-8") as f:
            f.writelines(json.dumps(r) + "\n" for r in got["history"])
        plot_curves(got["history"], row_dir / "curves.png")
    n_words = sum(len(t) for t in test.tokens)
    return {"name": name, "title": row["title"], "kind": row["kind"], "status": "ok", "error": None,
            "f1": round(100 * report["micro"]["f1"], 2), "precision": round(100 * report["micro"]["precision"], 2),
            "recall": round(100 * report["micro"]["recall"], 2), "conlleval_f1": round(100 * report["conlleval_f1"], 2),
            "per_type_f1": {k: round(100 * v["f1"], 2) for k, v in report["per_type"].items()},
            "train_seconds": round(got.get("train_seconds") or 0, 1) or None,
            "test_words_per_second": round(n_words / got["predict_seconds"], 1) if got.get("predict_seconds") else None,
            "peak_memory_mb": round(mem.gpu_peak_mb if mem.gpu_peak_mb is not None else mem.peak_mb, 1),
            "peak_memory_kind": "cuda allocated" if mem.gpu_peak_mb is not None else "process RSS",
            "params": got.get("params"), "epochs": got.get("epochs"), "best": got.get("best"),
            "settings": got.get("settings"), "notes": got.get("notes", [])}


def run(data: str | Path, out: str | Path, *, rows: list[str] | None = None, device: str = "auto", seed: int = 13,
        max_train: int | None = None, max_test: int | None = None, epochs: int | None = None,
        announce: Callable[[str], None] = print) -> dict:
    from ..models.base import environment

    rows = list(rows or DEFAULT_ROWS)
    unknown = [r for r in rows if r not in ROWS]
    if unknown:
        raise DataError(f"unknown row(s) {unknown}", hint=f"choose from {', '.join(ROWS)}")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    parts = load(data, max_train=max_train, max_test=max_test)
    announce(f"{data}: train {len(parts['train'])}, validation {len(parts['valid'])}, test {len(parts['test'])} "
             "sentences")
    env = environment()
    setting = "reduced" if (max_train or max_test or epochs) else "full"
    results = {"benchmark": "conll2003", "data": str(data), "setting": setting,
               "reduced": {"max_train": max_train, "max_test": max_test, "epochs": epochs},
               "n": {k: len(v) for k, v in parts.items()}, "hardware": env["hardware"], "versions": env["versions"],
               "published": PUBLISHED, "targets": TARGETS, "rows": []}
    merged = {r["name"]: r for r in earlier_results(out, results, ("data", "n", "setting", "reduced"))}
    for i, name in enumerate(rows, 1):
        announce(f"[{i}/{len(rows)}] {name} ({ROWS[name]['title']})")
        try:
            row = run_row(name, parts, out, device=device, seed=seed, epochs=epochs)
            announce(f"    test F1 {row['f1']:.2f} (conlleval {row['conlleval_f1']:.2f}), "
                     f"trained in {row['train_seconds'] or 0:.0f}s")
        except Exception as exc:  # recorded with its reason; the other rows still run
            (out / "rows" / name).mkdir(parents=True, exist_ok=True)
            (out / "rows" / name / "error.txt").write_text(traceback.format_exc(), encoding="utf-8")
            row = {"name": name, "title": ROWS[name]["title"], "kind": ROWS[name]["kind"], "status": "failed",
                   "error": " ".join(f"{type(exc).__name__}: {exc}".split())}
            announce(f"    FAILED: {row['error']}")
        row.update(setting=setting, device=_device_name(device), finished=time.strftime("%Y-%m-%dT%H:%M:%S%z"))
        merged[name] = row
        results["rows"] = [merged[n] for n in ROWS if n in merged]
        write(results, out)
    return results


def _device_name(device: str) -> str:
    import torch

    return torch.cuda.get_device_name(0) if device != "cpu" and torch.cuda.is_available() else "cpu"


def _chosen(rows: dict, name: str) -> dict | None:
    """The row that stands for ``name``: it, or one of its variants (casing, document context) when that did
    better on validation (never chosen by a test figure)."""
    candidates = [rows[n] for n in (name, *VARIANTS.get(name, ())) if n in rows]
    if not candidates:
        return None
    return max(candidates, key=lambda r: (r.get("best") or {}).get("val_f1", -1))


def verdicts(results: dict) -> list[str]:
    """Each target and the margin over the HF Trainer peer, met or not, in words."""
    rows = {r["name"]: r for r in results["rows"] if r.get("status") == "ok"}
    lines = []
    for name, target in TARGETS.items():
        r = _chosen(rows, name)
        lines.append(f"- `{name}` ≥ {target}: " + ("not run" if r is None else
                     f"**{'met' if r['f1'] >= target else 'not met'}** ({r['f1']:.2f}, row `{r['name']}`, "
                     "the variant with the better validation F1)"))
    for name, row in ROWS.items():
        if row["kind"] != "hf-trainer":
            continue
        ours, peer = _chosen(rows, f"{row['peer_of']}-finetune"), rows.get(name)
        if ours and peer:
            gap = ours["f1"] - peer["f1"]
            lines.append(f"- `{ours['name']}` vs `{name}`: {gap:+.2f} F1 "
                         f"(**{'met' if gap >= MARGIN_OVER_PEER else 'not met'}**, needs +{MARGIN_OVER_PEER})")
        base = f"{row['peer_of']}-finetune"
        for variant in (base, *VARIANTS.get(base, ())):
            if variant in rows and peer and variant != (ours or {}).get("name"):
                lines.append(f"- `{variant}` vs `{name}`: {rows[variant]['f1'] - peer['f1']:+.2f} F1")
    for enc, shown in (("minilm", "MiniLM"), ("mpnet", "MPNet")):
        plain, cased, context = (rows.get(f"{enc}-finetune{v}") for v in ("", "-case", "-context"))
        if plain and cased:
            lines.append(f"- what the uncased {shown} loses, measured as the gain from giving it each word's casing: "
                         f"{cased['f1'] - plain['f1']:+.2f} F1")
        if cased and context:
            lines.append(f"- what document context adds to {shown} (both with casing): "
                         f"{context['f1'] - cased['f1']:+.2f} F1")
    return lines


def write(results: dict, out: Path) -> None:
    (out / "results.json").write_text(json.dumps(results, indent=2, default=str) + "\n", encoding="utf-8")
    hw = results["hardware"]
    lines = [f"# CoNLL-2003 English NER ({results['setting']} setting)", "",
             f"Data `{results['data']}`: train {results['n']['train']}, validation {results['n']['valid']}, test "
             f"{results['n']['test']} sentences. Entity-level micro F1 on test, strict IOB2 (seqeval); conlleval's "
             "reading beside it.",
             f"Hardware: {hw.get('processor')}, {hw.get('cpu_count')} CPUs"
             + (f", {hw['gpu']}" if hw.get("gpu") else ", no GPU") + "; per-row device in the table.", "",
             "| row | F1 | P | R | conlleval F1 | PER | LOC | ORG | MISC | epochs | train s | test words/s | "
             "peak MB | params | device |", "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in results["rows"]:
        if r.get("status") != "ok":
            lines.append(f"| {r['name']} | failed: {r.get('error')} |" + " |" * 13)
            continue
        t = r["per_type_f1"]
        lines.append(f"| {r['name']} | **{r['f1']:.2f}** | {r['precision']:.2f} | {r['recall']:.2f} | "
                     f"{r['conlleval_f1']:.2f} | " + " | ".join(f"{t.get(k, 0):.1f}" for k in ("PER", "LOC", "ORG",
                                                                                              "MISC"))
                     + f" | {r.get('epochs') or '–'} | {r['train_seconds'] or '–'} | {r['test_words_per_second']} | "
                       f"{r['peak_memory_mb']} | {r.get('params') or '–'} | {r.get('device')} |")
    lines += ["", "Targets:", "", *verdicts(results), "", "Published (cased models, full setting):", ""]
    lines += [f"- {p['name']}: {p['f1']}" for p in results["published"]]
    notes = [f"- `{r['name']}`: {n}" for r in results["rows"] for n in r.get("notes") or []]
    if notes:
        lines += ["", "Notes:", "", *notes]
    (out / "results.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
