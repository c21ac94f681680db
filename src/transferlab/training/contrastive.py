"""Few-shot learning by contrastive fine-tuning of a sentence encoder (the SetFit idea, Tunstall et al. 2022).

With a handful of labels per class, pairs of texts carry far more signal than the texts alone: n labelled texts
give n(n−1)/2 pairs.  The encoder is tuned so that texts of the same class embed close together (cosine 1) and
texts of different classes far apart (cosine 0); a light head is then fitted on the tuned embeddings.

Pairs are built like SetFit's default ``oversampling`` strategy: every positive pair (same class) and every
negative pair (different classes), the smaller group repeated until both are equally many, then capped at
``max_pairs`` by a seeded random draw.  For multi-label data two texts are a positive pair when their label
sets are equal.
"""

from __future__ import annotations

import math
from itertools import combinations
from typing import Sequence

import numpy as np
import torch
from tqdm.auto import tqdm

from ..errors import DataError


def build_pairs(labels: Sequence, *, max_pairs: int | None, seed: int) -> list[tuple[int, int, float]]:
    """(i, j, target) with target 1.0 for a same-class pair and 0.0 otherwise, positives and negatives balanced."""
    key = [tuple(sorted(lab)) if isinstance(lab, (list, tuple)) else lab for lab in labels]
    if len(set(key)) < 2:
        raise DataError("contrastive training needs at least two classes among the labelled texts")
    pos, neg = [], []
    for i, j in combinations(range(len(key)), 2):
        (pos if key[i] == key[j] else neg).append((i, j))
    rng = np.random.default_rng(seed)
    if not pos:
        raise DataError("contrastive training needs two texts of one class at least (no positive pair)",
                        hint="label at least two examples of some class")
    small, big = (pos, neg) if len(pos) < len(neg) else (neg, pos)
    reps = [small[k] for k in rng.integers(0, len(small), len(big) - len(small))]
    pairs = [(i, j, 1.0) for i, j in (pos + reps if small is pos else pos)]
    pairs += [(i, j, 0.0) for i, j in (neg + reps if small is neg else neg)]
    order = rng.permutation(len(pairs))
    if max_pairs is not None and len(pairs) > max_pairs:
        order = order[:max_pairs]
    return [pairs[k] for k in order]


def tune_encoder(model, texts: Sequence[str], labels: Sequence, *, epochs: int = 1, batch_size: int = 16,
                 lr: float = 2e-5, max_pairs: int | None = None, seed: int = 13, warmup_ratio: float = 0.1,
                 show_progress: bool = True) -> dict:
    """Fine-tune a sentence-transformers ``model`` in place with cosine-similarity loss on label pairs."""
    try:  # sentence-transformers >= 6 moved the losses
        from sentence_transformers.sentence_transformer.losses import CosineSimilarityLoss
    except ImportError:  # pragma: no cover - older releases
        from sentence_transformers.losses import CosineSimilarityLoss
    from transformers import get_linear_schedule_with_warmup

    pairs = build_pairs(labels, max_pairs=max_pairs, seed=seed)
    loss_fn = CosineSimilarityLoss(model)
    device = model.device
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=0.01)
    steps = epochs * math.ceil(len(pairs) / batch_size)
    sched = get_linear_schedule_with_warmup(opt, int(warmup_ratio * steps), steps)
    rng = np.random.default_rng(seed)
    model.train()
    losses, epoch_losses = [], []
    bar = tqdm(total=steps, desc="contrastive pairs", unit="batch", leave=False, disable=not show_progress or None)
    for _ in range(epochs):
        start_of_epoch = len(losses)
        order = rng.permutation(len(pairs))
        for start in range(0, len(order), batch_size):
            batch = [pairs[k] for k in order[start : start + batch_size]]
            feats = [_features(model, [texts[i] for i, _, _ in batch], device),
                     _features(model, [texts[j] for _, j, _ in batch], device)]
            target = torch.tensor([t for _, _, t in batch], dtype=torch.float32, device=device)
            loss = loss_fn(feats, target)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            opt.step()
            sched.step()
            opt.zero_grad()
            losses.append(loss.item())
            bar.update(1)
            bar.set_postfix(loss=f"{np.mean(losses[-20:]):.4f}")
        epoch_losses.append(float(np.mean(losses[start_of_epoch:])))
    bar.close()
    model.eval()
    return {"pairs": len(pairs), "positive_pairs": sum(1 for *_, t in pairs if t == 1.0), "steps": steps,
            "epochs": epochs, "lr": lr, "batch_size": batch_size,
            "epoch_losses": epoch_losses}


def _features(model, texts: list[str], device) -> dict:
    """Tokenised inputs on the model's device (``preprocess`` in sentence-transformers >= 6, else ``tokenize``)."""
    prep = getattr(model, "preprocess", None) or model.tokenize
    return {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in prep(texts).items()}
