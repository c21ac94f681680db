"""Knowledge distillation (Hinton et al. 2015): a student learns from a teacher's temperature-softened
probabilities as well as from the hard labels.

Per example, with student logits ``s``, teacher probabilities ``p`` at temperature ``T`` and weight ``alpha``:

    labelled:    alpha * T^2 * KL(p || softmax(s / T)) + (1 - alpha) * CE(s, y)
    unlabelled:  T^2 * KL(p || softmax(s / T))            (the teacher is the only signal)

The T^2 factor keeps the soft term's gradients on the scale of the hard term's as T grows.  With T = 1 and a
one-hot teacher the soft term is the cross-entropy itself (KL to a one-hot target is its cross-entropy), so the
loss is plain cross-entropy: the test that pins the definition.

Targets are one float matrix per example set: column 0 the hard label index (-100 when unlabelled), then the
teacher's probabilities.  Validation is judged as sequence classification, on the hard labels.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from ..errors import ConfigError
from .classification import SequenceClassification


@dataclass
class Distillation(SequenceClassification):
    temperature: float = 2.0
    alpha: float = 0.5
    name = "distillation"

    def __post_init__(self):
        super().__post_init__()
        if self.multilabel:
            raise ConfigError("distillation here is for single-label students", hint="train a multi-label model "
                              "on its labels, without --teacher")
        if not self.temperature > 0:
            raise ConfigError(f"temperature must be positive, got {self.temperature}", hint="e.g. 2")
        if not 0.0 <= self.alpha <= 1.0:
            raise ConfigError(f"alpha (the soft term's weight) must lie in [0, 1], got {self.alpha}", hint="e.g. 0.5")

    def soft_targets(self, hard: np.ndarray, teacher_proba: np.ndarray) -> np.ndarray:
        """(N, 1 + C): the hard label index (-100: none) beside the teacher's probabilities."""
        teacher_proba = np.asarray(teacher_proba, dtype=np.float32)
        if teacher_proba.shape != (len(hard), len(self.labels)):
            raise ConfigError(f"teacher probabilities have shape {teacher_proba.shape}, expected "
                              f"({len(hard)}, {len(self.labels)})")
        return np.concatenate([np.asarray(hard, np.float32)[:, None], teacher_proba], axis=1)

    def collate_targets(self, targets, indices):
        return torch.as_tensor(targets[np.asarray(indices)])

    def loss(self, outputs: torch.Tensor, targets: torch.Tensor, module: nn.Module | None = None) -> torch.Tensor:
        if targets.dim() == 1:  # validation or a plain batch: hard labels only
            return super().loss(outputs, targets, module)
        outputs = outputs.float()
        hard, teacher = targets[:, 0].long(), targets[:, 1:].float()
        t = self.temperature
        log_student = nn.functional.log_softmax(outputs / t, dim=-1)
        # KL(p || q) per example; 0 * log 0 counts as 0
        kl = (teacher * (torch.log(teacher.clamp_min(1e-12)) - log_student)).sum(-1) * (t * t)
        labelled = hard >= 0
        ce = nn.functional.cross_entropy(outputs, hard.clamp_min(0), reduction="none")
        per_example = torch.where(labelled, self.alpha * kl + (1 - self.alpha) * ce, kl)
        return per_example.mean()


def teacher_probabilities(teachers, X, labels: list[str], temperature: float) -> np.ndarray:
    """The mean over ``teachers`` (TextClassifiers, any family) of softmax(logits / T), in the student's label
    order.  Raw logits, before any calibration the teacher carries: the temperature does the softening."""
    if not isinstance(teachers, (list, tuple)):
        teachers = [teachers]
    total = None
    for teacher in teachers:
        if getattr(teacher, "multilabel_", False):
            raise ConfigError("a multi-label teacher cannot teach a single-label student")
        missing = [lab for lab in labels if lab not in teacher.labels_]
        if missing:
            raise ConfigError(f"the teacher does not know the label(s) {missing}",
                              hint=f"the teacher's labels are {teacher.labels_}; train the student on those")
        z = teacher_logits(teacher, X).astype(np.float64) / temperature
        z = z - z.max(axis=1, keepdims=True)
        p = np.exp(z)
        p /= p.sum(axis=1, keepdims=True)
        order = [teacher.labels_.index(lab) for lab in labels]
        p = p[:, order]
        p /= np.clip(p.sum(axis=1, keepdims=True), 1e-12, None)  # a teacher with extra labels: renormalised
        total = p if total is None else total + p
    return (total / len(teachers)).astype(np.float32)


def teacher_logits(teacher, X, *, use_cache: bool = True) -> np.ndarray:
    """``teacher.decision_function(X)``, remembered on disk for a fitted TextClassifier: a transformer teacher
    labels ~20 texts/s on two CPU cores, and the same transfer set is labelled again for every student seed,
    temperature and weight tried.  The cache is keyed by everything that decides the logits (the model's settings,
    its encoder's identity and a digest of its weights), so a retrained or swapped teacher never reads another's
    answers; each text is keyed by its SHA-256 (with its pair)."""
    off = os.environ.get("TRANSFERLAB_TEACHER_CACHE", "1") == "0"
    if not use_cache or off or getattr(teacher, "module_", None) is None:
        return np.asarray(teacher.decision_function(X), dtype=np.float32)
    from ..data.records import Examples
    from ..encoders.sentence import EmbeddingCache
    from ..encoders.zoo import cache_dir
    from ..models.classifier import as_examples  # the teacher's own input rules (strings, pairs, Examples)

    ex = as_examples(X)
    pairs = ex.pairs or [None] * len(ex)
    keys = [hashlib.sha256((t + ("" if p is None else "\x00" + p)).encode("utf-8")).hexdigest()
            for t, p in zip(ex.texts, pairs)]
    cache = EmbeddingCache(_teacher_key(teacher), folder=cache_dir() / "teachers")
    try:
        found = cache.get(keys)
        todo = [i for i, k in enumerate(keys) if k not in found]
        if todo:
            part = Examples([ex.texts[i] for i in todo], None,
                            pairs=None if ex.pairs is None else [ex.pairs[i] for i in todo], source=ex.source)
            fresh = np.asarray(teacher.decision_function(part), dtype=np.float32)
            new = {keys[i]: fresh[j] for j, i in enumerate(todo)}
            cache.put(new)
            found.update(new)
        n = len(teacher.labels_)
        return np.stack([found[k] for k in keys]).reshape(len(keys), n) if keys else np.zeros((0, n), np.float32)
    finally:
        cache.close()


def _teacher_key(teacher) -> str:
    digest = hashlib.sha256()
    for name, tensor in sorted(teacher.module_.state_dict().items()):
        digest.update(name.encode("utf-8"))
        t = tensor.detach().to("cpu")
        digest.update((t.float() if t.dtype == torch.bfloat16 else t).contiguous().numpy().tobytes())
    settings = {"model": dataclasses.asdict(teacher.model_config), "labels": list(teacher.labels_),
                "encoder": teacher.resolved_.to_dict() if getattr(teacher, "resolved_", None) else None}
    digest.update(json.dumps(settings, sort_keys=True, default=str).encode("utf-8"))
    return "logits-" + digest.hexdigest()[:32]
