"""Masked-language modelling: predict the words hidden in a text (domain-adaptive pretraining, DAPT).

Targets are made at collate time, not up front: each batch is masked afresh (dynamic masking, as in RoBERTa), with
whole words masked together, by transformers' ``DataCollatorForLanguageModeling`` (adaptation/dapt.py).  The batch
carries ``labels`` (the original token id where a token was chosen, -100 elsewhere).  The network returns hidden
states; the loss runs the MLM head on the chosen positions only: about 15% of the tokens, and for a small encoder
the vocabulary projection costs as much as the whole encoder, so scoring every position would double the step.
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import torch
from torch import nn

from .base import Task


class MaskedLanguageModelling(Task):
    name = "masked-lm"

    def targets(self, examples, *, strict: bool = True) -> None:
        return None  # the collator masks each batch afresh and puts its labels in the batch

    def collate_targets(self, targets: Any, indices: Sequence[int]) -> torch.Tensor:
        raise TypeError("masked-LM batches carry their own labels (made by the collator)")

    @staticmethod
    def chosen_logits(hidden: torch.Tensor, labels: torch.Tensor, module: nn.Module) -> tuple[torch.Tensor,
                                                                                              torch.Tensor]:
        """Vocabulary scores at the chosen positions only, with their target ids."""
        chosen = labels != -100
        return module.head(hidden[chosen]), labels[chosen]

    def loss(self, outputs: torch.Tensor, targets: torch.Tensor, module: nn.Module | None = None) -> torch.Tensor:
        logits, gold = self.chosen_logits(outputs, targets, module)
        if not gold.numel():  # a batch where nothing was chosen (tiny texts): no signal, but keep the graph
            return outputs.sum() * 0.0
        return nn.functional.cross_entropy(logits.float(), gold)

    def validation_metrics(self, outputs: Any, targets: Any = None, module: nn.Module | None = None) -> dict:
        """``outputs``: (summed loss, correct, count) over the chosen tokens of the validation batches."""
        total, correct, count = outputs
        loss = total / max(count, 1)
        return {"loss": loss, "perplexity": math.exp(min(loss, 50.0)), "accuracy": correct / max(count, 1),
                "tokens": int(count)}


def masked_scores(module: nn.Module, batches, device) -> tuple[float, int, int]:
    """(summed cross-entropy, correct top-1, chosen tokens) of ``module`` over masked ``batches``."""
    total, correct, count = 0.0, 0, 0
    module.eval()
    with torch.no_grad():
        for batch in batches:
            batch = {k: v.to(device) for k, v in batch.items()}
            labels = batch.pop("labels")
            logits, gold = MaskedLanguageModelling.chosen_logits(module(**batch), labels, module)
            if gold.numel():
                total += float(nn.functional.cross_entropy(logits.float(), gold, reduction="sum"))
                correct += int((logits.argmax(-1) == gold).sum())
                count += int(gold.numel())
    return total, correct, count

