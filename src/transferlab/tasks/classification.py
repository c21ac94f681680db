"""Sequence classification: one label per text (or per text pair), or a set of labels per text (multi-label).

Class weights, focal loss and label smoothing live in the criterion (training/imbalance.py); calibration and
decision thresholds are fitted after training on validation outputs (evaluation/decision.py)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from ..errors import DataError
from .base import Task


@dataclass
class SequenceClassification(Task):
    labels: list[str]
    multilabel: bool = False
    criterion: nn.Module | None = field(default=None, repr=False)
    name = "classification"

    def __post_init__(self):
        if self.criterion is None:
            from ..training.imbalance import ImbalanceLoss

            self.criterion = ImbalanceLoss(multilabel=self.multilabel)  # plain cross-entropy (BCE multi-label)

    def targets(self, examples, *, strict: bool = True) -> np.ndarray:
        index = {lab: i for i, lab in enumerate(self.labels)}
        if self.multilabel:
            y = np.zeros((len(examples), len(index)), dtype=np.float32)
            for i, labs in enumerate(examples.labels):
                for lab in labs:
                    if lab in index:
                        y[i, index[lab]] = 1.0
            return y
        unseen = sorted({lab for lab in examples.labels if lab not in index})
        if unseen and strict:
            raise DataError(f"label(s) {unseen} not seen in training", where=examples.source)
        # A validation label the training part lacks cannot be learned; it counts as wrong (-100 is ignored by loss).
        return np.asarray([index.get(lab, -100) for lab in examples.labels], dtype=np.int64)

    def collate_targets(self, targets, indices):
        return torch.as_tensor(targets[np.asarray(indices)])

    def loss(self, outputs, targets, module=None):
        return self.criterion(outputs, targets)

    def validation_metrics(self, outputs: np.ndarray, targets: np.ndarray) -> dict[str, float]:
        from ..evaluation.decision import calibrate
        from ..evaluation.metrics import classification_report
        from ..training.imbalance import ImbalanceLoss

        t = torch.as_tensor(targets)
        keep = t >= 0 if not self.multilabel else torch.ones(len(t), dtype=torch.bool)
        # the plain (unweighted) loss, so validation curves compare across loss settings
        val_loss = float(ImbalanceLoss(multilabel=self.multilabel)(torch.from_numpy(outputs)[keep], t[keep]))
        # early stopping sees raw scores: nothing is fitted yet
        proba = calibrate(outputs, None, self.labels, multilabel=self.multilabel)
        if self.multilabel:
            y_true = [[self.labels[j] for j in np.flatnonzero(row)] for row in targets]
        else:
            y_true = [self.labels[j] for j in targets[keep.numpy()]]
            proba = proba[keep.numpy()]
        report = classification_report(y_true, proba, self.labels, multilabel=self.multilabel)
        out = {"loss": val_loss}
        for k in ("accuracy", "macro_f1", "micro_f1", "roc_auc", "pr_auc"):
            if isinstance(report.get(k), (int, float)):
                out[k] = report[k]
        return out
