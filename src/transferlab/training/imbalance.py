"""Learning from skewed labels: class weights, focal loss, label smoothing and class-aware samplers.

Every family trains through the same :class:`~transferlab.training.trainer.Trainer`, so these apply to word-vector
networks, heads over frozen features and fine-tuned transformers alike.

- ``class_weight``: ``None`` (plain), ``"auto"``/``"inverse"`` (n / (k · n_c), scikit-learn's "balanced"),
  ``"effective"`` (Cui et al. 2019: (1 − β) / (1 − β^n_c), normalised to mean 1), or explicit
  ``{"label": weight}``.  Multi-label data gets a per-label ``pos_weight`` (negatives / positives) instead.
- ``loss``: ``"ce"`` or ``"focal"`` (Lin et al. 2017, ``focal_gamma``); ``label_smoothing`` for cross-entropy.
- ``sampler``: ``None`` (shuffle), ``"balanced"`` (every class equally likely per draw) or ``"sqrt"`` (class
  frequency proportional to the square root of its count, the middle ground of Mahajan et al. 2018).
"""

from __future__ import annotations

import warnings
from collections import Counter
from typing import Sequence

import numpy as np
import torch
from torch import nn

from ..errors import ConfigError

LOSSES = ("ce", "focal")
SAMPLERS = (None, "balanced", "sqrt")
WEIGHT_MODES = ("auto", "inverse", "effective")


def check_options(*, loss: str = "ce", focal_gamma: float = 0.0, label_smoothing: float = 0.0,
                  sampler: str | None = None) -> None:
    """Reject loss and sampler settings that cannot work (the config checks them before any heavy work)."""
    if loss not in LOSSES:
        raise ConfigError(f"loss {loss!r} is unknown", hint=f"choose one of {', '.join(LOSSES)}")
    if not 0.0 <= label_smoothing < 1.0:
        raise ConfigError(f"label smoothing must be in [0, 1), got {label_smoothing}")
    if focal_gamma < 0:
        raise ConfigError(f"focal gamma must be >= 0, got {focal_gamma}")
    if sampler not in SAMPLERS:
        raise ConfigError(f"sampler {sampler!r} is unknown", hint="balanced, sqrt or none")


def parse_class_weight(value) -> str | dict | None:
    """CLI/recipe form → config form: ``none``/``auto``/``effective`` or ``label=w,label=w``."""
    if value is None or isinstance(value, dict):
        return value
    text = str(value).strip()
    if text.lower() in ("", "none", "no", "off"):
        return None
    if text.lower() in WEIGHT_MODES:
        return text.lower()
    weights = {}
    for part in text.split(","):
        name, sep, w = part.rpartition("=")
        try:
            weights[name.strip()] = float(w)
        except ValueError:
            name = ""
        if not sep or not name.strip() or weights.get(name.strip(), -1) <= 0:
            raise ConfigError(f"class weight {part!r} is not understood",
                              hint="use auto, effective, none, or LABEL=WEIGHT,LABEL=WEIGHT with positive weights")
    return weights


def class_weights(targets: np.ndarray, labels: Sequence[str], mode, *, multilabel: bool = False,
                  beta: float = 0.999) -> np.ndarray | None:
    """One weight per class (single-label) or a positive weight per label (multi-label); None for ``mode=None``."""
    if mode is None:
        return None
    k = len(labels)
    if multilabel:
        pos = np.asarray(targets, dtype=np.float64).sum(axis=0)
        neg = len(targets) - pos
        if isinstance(mode, dict):
            return np.asarray([float(mode.get(lab, 1.0)) for lab in labels])
        # A label with no positive cannot be weighted up; it keeps weight 1 and the caller warned at fit time.
        return np.where(pos > 0, neg / np.maximum(pos, 1), 1.0)
    counts = np.bincount(np.asarray(targets)[np.asarray(targets) >= 0], minlength=k).astype(np.float64)
    if isinstance(mode, dict):
        unknown = sorted(set(mode) - set(labels))
        if unknown:
            raise ConfigError(f"class weight given for unknown label(s) {unknown}", hint=f"labels are {list(labels)}")
        return np.asarray([float(mode.get(lab, 1.0)) for lab in labels])
    present = counts > 0
    w = np.zeros(k)
    if mode in ("auto", "inverse"):
        w[present] = counts[present].sum() / (present.sum() * counts[present])
    elif mode == "effective":
        if not 0 < beta < 1:
            raise ConfigError(f"effective-number beta must be in (0, 1), got {beta}")
        w[present] = (1 - beta) / (1 - beta ** counts[present])
        w[present] *= present.sum() / w[present].sum()
    else:
        raise ConfigError(f"class weight mode {mode!r} is unknown", hint="auto, effective, none or LABEL=W,...")
    return w


class ImbalanceLoss(nn.Module):
    """Cross-entropy or focal loss, optionally class-weighted and label-smoothed; BCE variants for multi-label."""

    def __init__(self, *, multilabel: bool, weight: np.ndarray | None = None, kind: str = "ce",
                 gamma: float = 2.0, label_smoothing: float = 0.0):
        super().__init__()
        check_options(loss=kind, focal_gamma=gamma, label_smoothing=label_smoothing)
        self.multilabel, self.kind, self.gamma, self.smoothing = multilabel, kind, float(gamma), float(label_smoothing)
        self.register_buffer("weight", None if weight is None else torch.as_tensor(weight, dtype=torch.float32))

    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        logits = logits.float()
        w = None if self.weight is None else self.weight.to(logits.device)
        if self.multilabel:
            t = targets.float()
            if self.smoothing:
                t = t * (1 - self.smoothing) + 0.5 * self.smoothing
            per = nn.functional.binary_cross_entropy_with_logits(logits, t, pos_weight=w, reduction="none")
            if self.kind == "focal":
                p = torch.sigmoid(logits)
                p_t = p * t + (1 - p) * (1 - t)
                per = per * (1 - p_t).pow(self.gamma)
            return per.mean()
        keep = targets >= 0  # -100 marks a validation label the training part never had
        logits, targets = logits[keep], targets[keep]
        if not len(targets):
            return logits.sum() * 0.0
        if self.kind == "ce":
            return nn.functional.cross_entropy(logits, targets, weight=w, label_smoothing=self.smoothing)
        logp = nn.functional.log_softmax(logits, dim=-1)
        logp_t = logp.gather(1, targets[:, None]).squeeze(1)
        focal = (1 - logp_t.exp()).pow(self.gamma)
        if self.smoothing:
            nll = -(1 - self.smoothing) * logp_t - self.smoothing * logp.mean(dim=1)
        else:
            nll = -logp_t
        per = focal * nll
        if w is None:
            return per.mean()
        wt = w[targets]
        return (per * wt).sum() / wt.sum().clamp_min(1e-12)


def sample_weights(targets: np.ndarray, mode: str | None, *, multilabel: bool = False) -> np.ndarray | None:
    """Per-example draw probabilities for a class-aware sampler (None = plain shuffling)."""
    check_options(sampler=mode)
    if mode is None:
        return None
    targets = np.asarray(targets)
    if multilabel:
        # An example counts as its rarest positive label; examples with no label form their own group.
        freq = targets.sum(axis=0)
        group = np.where(targets.any(axis=1), np.argmin(np.where(targets > 0, freq, np.inf), axis=1), -1)
    else:
        group = targets
    counts = Counter(group.tolist())
    n_c = np.asarray([counts[g] for g in group.tolist()], dtype=np.float64)
    # balanced: each group's total mass is equal; sqrt: a group's mass is proportional to sqrt(n_c).
    w = 1.0 / n_c if mode == "balanced" else 1.0 / np.sqrt(n_c)
    return w / w.sum()


def check_label_counts(targets: np.ndarray, labels: Sequence[str], *, multilabel: bool, where: str) -> list[str]:
    """Warnings (also emitted) for classes the loss cannot learn well: a single example, or none at all."""
    if multilabel:
        counts = np.asarray(targets).sum(axis=0).astype(int)
    else:
        t = np.asarray(targets)
        counts = np.bincount(t[t >= 0], minlength=len(labels))
    notes = []
    for lab, c in zip(labels, counts):
        if c == 1:
            notes.append(f"class {lab!r} has a single training example in {where}: its scores will be unreliable; "
                         "label more examples of it, or merge it into a related class")
        elif c == 0 and multilabel:
            notes.append(f"label {lab!r} has no positive training example in {where}: it cannot be learned")
    for note in notes:
        warnings.warn(note, stacklevel=3)
    return notes
