"""A transfer set for distillation: perturbed copies of the labelled texts for the teacher to label.

Where a task has no unlabelled text of its own (IMDB's seed protocol: every review beyond the 10,000 of train and
validation is test text), a student still profits from seeing more of the teacher's function than the labelled
texts show.  Tang et al. (2019, "Distilling task-specific knowledge from BERT into simple neural networks") build
such a set from the training texts: each word masked with a small probability, and with some probability only an
n-gram (a contiguous window) of the text kept.  Their masking token means something to BERT but nothing to a
word-vector student, so a masked word is dropped here instead, which reads the same to both.

Written here (about twenty lines) rather than taken from an augmentation library: the two perturbations are all
we need, and they must be reproducible from a seed and never add a word the text did not contain.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from ..errors import ConfigError


def transfer_set(texts: Sequence[str], copies: int, *, seed: int = 13, drop: float = 0.1,
                 window: float = 0.25, min_window: float = 0.5) -> list[str]:
    """``copies`` perturbed versions of each text (text order, copy after copy): each word dropped with probability
    ``drop``; with probability ``window`` only a contiguous window of ``min_window``..100% of the words kept.
    Every output is a subsequence of its source's words; copies equal to a source text or to each other are
    removed (they would teach nothing new), and empty ones too."""
    if copies < 0:
        raise ConfigError(f"copies must be >= 0, got {copies}")
    if not (0.0 <= drop < 1.0 and 0.0 <= window <= 1.0 and 0.0 < min_window <= 1.0):
        raise ConfigError(f"need 0 <= drop < 1, 0 <= window <= 1, 0 < min_window <= 1; got drop={drop}, "
                          f"window={window}, min_window={min_window}")
    rng = np.random.default_rng(seed)
    seen = set(texts)
    out: list[str] = []
    for _ in range(copies):
        for text in texts:
            words = text.split()
            if not words:
                continue
            if rng.random() < window and len(words) > 1:
                size = int(rng.integers(max(1, int(np.ceil(min_window * len(words)))), len(words) + 1))
                start = int(rng.integers(0, len(words) - size + 1))
                words = words[start : start + size]
            keep = rng.random(len(words)) >= drop
            new = " ".join(w for w, k in zip(words, keep) if k)
            if new and new not in seen:
                seen.add(new)
                out.append(new)
    return out
