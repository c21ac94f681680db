"""Token classification (named-entity recognition): one IOB2 tag per word.

Targets are tag ids per word (-100 pads); outputs are per-word scores.  The loss is token-level cross-entropy,
or, when the network carries a CRF (``module.crf``), the CRF's negative log-likelihood of the gold path; decoding
is the per-word argmax or the CRF's Viterbi path.  Judged at the entity level (seqeval, strict IOB2) by
evaluation/tagging.py."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch
from torch import nn

from ..errors import DataError
from .base import Task


@dataclass
class TokenClassification(Task):
    tags: list[str]
    name = "token-classification"

    @property
    def index(self) -> dict[str, int]:
        if getattr(self, "_index", None) is None:
            self._index = {t: i for i, t in enumerate(self.tags)}
        return self._index

    def targets(self, sentences, *, strict: bool = True) -> list[np.ndarray]:
        """Tag ids per sentence.  A tag training never saw is an error, or (validation) counts as O: the model can
        only miss that entity, and the entity-level metrics count it as missed from the gold strings."""
        unseen = sorted({t for tags in sentences.tags for t in tags if t not in self.index})
        if unseen and strict:
            raise DataError(f"tag(s) {unseen} not seen in training", where=sentences.source)
        o = self.index.get("O", 0)
        return [np.asarray([self.index.get(t, o) for t in tags], dtype=np.int64) for tags in sentences.tags]

    def collate_targets(self, targets: Sequence[np.ndarray], indices) -> torch.Tensor:
        rows = [targets[i] for i in indices]
        out = torch.full((len(rows), max(len(r) for r in rows)), -100, dtype=torch.long)
        for i, r in enumerate(rows):
            out[i, : len(r)] = torch.as_tensor(r)
        return out

    def loss(self, outputs: torch.Tensor, targets: torch.Tensor, module: nn.Module | None = None) -> torch.Tensor:
        crf = getattr(module, "crf", None)
        if crf is not None:
            mask = targets >= 0
            return crf.nll(outputs.float(), targets.clamp(min=0), mask)
        return nn.functional.cross_entropy(outputs.reshape(-1, outputs.size(-1)).float(), targets.reshape(-1),
                                           ignore_index=-100)

    def decode(self, emissions: Sequence[np.ndarray], module: nn.Module | None = None) -> list[list[str]]:
        """Tags per sentence from per-word scores (T_i, tags)."""
        crf = getattr(module, "crf", None)
        out: list[list[str]] = []
        if crf is None:
            return [[self.tags[j] for j in e.argmax(-1)] if len(e) else [] for e in emissions]
        with torch.no_grad():
            for start in range(0, len(emissions), 256):
                chunk = emissions[start : start + 256]
                width = max([len(e) for e in chunk] + [1])
                em = torch.zeros((len(chunk), width, len(self.tags)))
                mask = torch.zeros((len(chunk), width), dtype=torch.bool)
                for i, e in enumerate(chunk):
                    em[i, : len(e)] = torch.as_tensor(e)
                    mask[i, : max(len(e), 1)] = True  # the CRF wants the first position on; trimmed below
                device = crf.start.device  # decode where the CRF lives; never move the model's own layer
                paths = crf.decode(em.to(device), mask.to(device)) if len(chunk) else []
                out += [[self.tags[j] for j in path[: len(e)]] for path, e in zip(paths, chunk)]
        return out

    def sentence_losses(self, outputs: Sequence[np.ndarray], ids: Sequence[np.ndarray],
                        module: nn.Module | None = None, chunk: int = 256) -> np.ndarray:
        """The loss of each (non-empty) sentence alone, as ``loss`` gives it for a batch of one (CRF negative
        log-likelihood, or the mean cross-entropy over its words), computed on padded chunks of sentences."""
        crf = getattr(module, "crf", None)
        device = next(module.parameters()).device if module is not None else torch.device("cpu")
        out = []
        with torch.no_grad():
            for start in range(0, len(outputs), chunk):
                em = [torch.as_tensor(e, dtype=torch.float32) for e in outputs[start : start + chunk]]
                tg = [torch.as_tensor(t, dtype=torch.long) for t in ids[start : start + chunk]]
                em = nn.utils.rnn.pad_sequence(em, batch_first=True).to(device)
                tg = nn.utils.rnn.pad_sequence(tg, batch_first=True, padding_value=-100).to(device)
                mask = tg >= 0
                if crf is not None:
                    losses = crf.nll(em, tg.clamp(min=0), mask, reduction="none")
                else:
                    ce = nn.functional.cross_entropy(em.transpose(1, 2), tg, ignore_index=-100, reduction="none")
                    losses = ce.sum(1) / mask.sum(1).clamp(min=1)
                out.append(losses.float().cpu().numpy())
        return np.concatenate(out) if out else np.zeros(0, np.float32)

    def validation_metrics(self, outputs: Sequence[np.ndarray], targets, module: nn.Module | None = None) -> dict:
        """``outputs``: per-sentence scores; ``targets``: the gold TaggedSentences."""
        from ..evaluation.tagging import entity_report

        ids = self.targets(targets, strict=False)
        keep = [i for i, e in enumerate(outputs) if len(e)]
        loss = float(self.sentence_losses([outputs[i] for i in keep], [ids[i] for i in keep], module).mean()) \
            if keep else 0.0
        report = entity_report(list(targets.tags), self.decode(outputs, module))
        micro = report["micro"]
        return {"loss": loss, "f1": micro["f1"], "precision": micro["precision"], "recall": micro["recall"],
                "token_accuracy": report["token_accuracy"]}
