"""What a task is to the training loop: how examples become targets, how outputs become a loss, and how
outputs are judged.  The loop (training/trainer.py) calls only this interface, so a new task (token tagging,
pair scoring, masked-LM, distillation) needs no change to the loop.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch
from torch import nn


class Task:
    """One kind of supervision.  Subclasses set ``name`` and implement the four methods."""

    name: str = "task"

    def targets(self, examples, *, strict: bool = True) -> Any:
        """Training targets for ``examples``, indexable by example position (an array, or a list per example)."""
        raise NotImplementedError

    def collate_targets(self, targets: Any, indices: Sequence[int]) -> torch.Tensor:
        """The targets of one batch, as the loss wants them."""
        return torch.as_tensor(np.asarray(targets)[np.asarray(indices)])

    def loss(self, outputs: torch.Tensor, targets: torch.Tensor, module: nn.Module | None = None) -> torch.Tensor:
        """The training loss of a batch.  ``module`` is the network, for a task whose loss owns parameters
        there (a CRF's transitions)."""
        raise NotImplementedError

    def validation_metrics(self, outputs: Any, targets: Any) -> dict[str, float]:
        """Metrics of model outputs on validation data, for curves and early stopping (``loss`` among them)."""
        raise NotImplementedError
