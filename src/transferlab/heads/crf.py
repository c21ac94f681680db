"""A linear-chain conditional random field (Lafferty et al. 2001) over per-token emission scores.

Written here rather than taken from a package: pytorch-crf (last release 0.7.2, 2019) and torchcrf are no longer
maintained, and the layer is small enough to own and test against brute force (tests/test_crf.py).

Scores follow the usual convention: a tag path y_1..y_n scores
``start[y_1] + sum_t emissions[t, y_t] + sum_t transitions[y_{t-1}, y_t] + end[y_n]``.
Transition constraints (e.g. IOB2's "I-X only after B-X or I-X") add -10000 to every disallowed move, in both the
likelihood and Viterbi, as AllenNLP's ``ConditionalRandomField`` does; a path that breaks a rule is then never the
best one unless emissions differ by thousands, and the model still trains on data with the odd illegal gold path.

Masks: positions where ``mask`` is off are skipped, and a sequence is its "on" positions in order.  Padding at
the end is the common case; holes (e.g. only the first sub-word of each word is on) work the same way, and the
transition is scored between consecutive "on" positions.  The first position of every sequence must be on.
"""

from __future__ import annotations

import torch
from torch import nn

PENALTY = -10000.0


class CRF(nn.Module):
    """Parameters ``start`` (T,), ``end`` (T,) and ``transitions`` (T, T) indexed [from, to].

    ``allowed`` constrains the moves: a (T, T) bool tensor of allowed transitions, or the pair
    ``(start_allowed (T,), transition_allowed (T, T))`` that :func:`iob2_allowed` returns.
    """

    def __init__(self, num_tags: int, allowed: torch.Tensor | tuple[torch.Tensor, torch.Tensor] | None = None):
        super().__init__()
        if num_tags < 1:
            raise ValueError(f"num_tags must be at least 1, got {num_tags}")
        self.num_tags = num_tags
        # Small random values: with all-zero transitions every path ties on transitions at the start of training.
        self.start = nn.Parameter(torch.empty(num_tags).uniform_(-0.1, 0.1))
        self.end = nn.Parameter(torch.empty(num_tags).uniform_(-0.1, 0.1))
        self.transitions = nn.Parameter(torch.empty(num_tags, num_tags).uniform_(-0.1, 0.1))
        start_ok, trans_ok = _split_allowed(allowed, num_tags)
        # Buffers, not parameters: the constraints travel with state_dict and .to(device) but never train.
        self.register_buffer("start_penalty", _penalty(start_ok))
        self.register_buffer("transition_penalty", _penalty(trans_ok))

    def extra_repr(self) -> str:
        constrained = bool((self.transition_penalty < 0).any() or (self.start_penalty < 0).any())
        return f"num_tags={self.num_tags}, constrained={constrained}"

    def _scores(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return self.start + self.start_penalty, self.transitions + self.transition_penalty, self.end

    def nll(self, emissions: torch.Tensor, tags: torch.Tensor, mask: torch.Tensor,
            reduction: str = "mean") -> torch.Tensor:
        """Negative log-likelihood ``logZ - score(gold)`` per sequence, then reduced.

        emissions (B, L, T) float; tags (B, L) long, anything where ``mask`` is off (e.g. -100);
        mask (B, L) bool.  ``reduction``: "mean" over sequences, "sum", or "none" for a (B,) tensor.
        """
        if reduction not in ("mean", "sum", "none"):
            raise ValueError(f"reduction must be 'mean', 'sum' or 'none', got {reduction!r}")
        emissions, mask = self._check(emissions, mask)
        if tags.shape != mask.shape:
            raise ValueError(f"tags have shape {tuple(tags.shape)}, expected {tuple(mask.shape)}")
        tags = torch.where(mask, tags, torch.zeros_like(tags)).long()
        if tags.numel() and (tags.min() < 0 or tags.max() >= self.num_tags):
            raise ValueError(f"tags at unmasked positions must lie in [0, {self.num_tags})")
        if not emissions.size(0):
            losses = emissions.new_zeros(0)
        else:
            losses = self._log_partition(emissions, mask) - self._gold_score(emissions, tags, mask)
        if reduction == "none":
            return losses
        if reduction == "sum":
            return losses.sum()
        return losses.sum() / max(losses.numel(), 1)  # an empty batch gives 0, not NaN

    def forward(self, emissions: torch.Tensor, tags: torch.Tensor, mask: torch.Tensor,
                reduction: str = "mean") -> torch.Tensor:
        return self.nll(emissions, tags, mask, reduction)

    @torch.no_grad()
    def decode(self, emissions: torch.Tensor, mask: torch.Tensor) -> list[list[int]]:
        """Viterbi: the best tag path of each sequence, as many tags as it has "on" positions."""
        emissions, mask = self._check(emissions, mask)
        batch, length, n = emissions.shape
        if not batch:
            return []
        start, trans, end = self._scores()
        score = start + emissions[:, 0]
        identity = torch.arange(n, device=emissions.device).expand(batch, n)
        pointers = []
        for t in range(1, length):
            best, prev = (score.unsqueeze(2) + trans).max(dim=1)  # over the "from" tag
            on = mask[:, t].unsqueeze(1)
            score = torch.where(on, best + emissions[:, t], score)
            # An off position keeps its tag, so backtracking walks straight through it.
            pointers.append(torch.where(on, prev, identity))
        last = (score + end).argmax(dim=1)
        path = [last]
        for prev in reversed(pointers):
            last = prev.gather(1, last.unsqueeze(1)).squeeze(1)
            path.append(last)
        path = torch.stack(path[::-1], dim=1).cpu()
        mask = mask.cpu()
        return [path[b][mask[b]].tolist() for b in range(batch)]

    def _log_partition(self, emissions: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Forward algorithm in log space, vectorised over batch and tags; logsumexp keeps it stable."""
        start, trans, end = self._scores()
        alpha = start + emissions[:, 0]
        for t in range(1, emissions.size(1)):
            step = torch.logsumexp(alpha.unsqueeze(2) + trans, dim=1) + emissions[:, t]
            alpha = torch.where(mask[:, t].unsqueeze(1), step, alpha)
        return torch.logsumexp(alpha + end, dim=1)

    def _gold_score(self, emissions: torch.Tensor, tags: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        start, trans, end = self._scores()
        emitted = emissions.gather(2, tags.unsqueeze(2)).squeeze(2)  # (B, L)
        score = start[tags[:, 0]] + emitted[:, 0]
        prev = tags[:, 0]
        for t in range(1, tags.size(1)):
            on = mask[:, t]
            step = trans[prev, tags[:, t]] + emitted[:, t]
            score = score + torch.where(on, step, torch.zeros_like(step))
            prev = torch.where(on, tags[:, t], prev)  # the last on tag, across holes
        return score + end[prev]

    def _check(self, emissions: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if emissions.dim() != 3 or emissions.size(2) != self.num_tags:
            raise ValueError(f"emissions must have shape (B, L, {self.num_tags}), got {tuple(emissions.shape)}")
        if mask.shape != emissions.shape[:2]:
            raise ValueError(f"mask has shape {tuple(mask.shape)}, expected {tuple(emissions.shape[:2])}")
        mask = mask.bool()
        if emissions.size(0) and (emissions.size(1) == 0 or not mask[:, 0].all()):
            raise ValueError("the first position of every sequence must be on in mask (sequences need a token)")
        if emissions.dtype not in (torch.float32, torch.float64):
            # Half-precision logsumexp over long sequences loses too much; the CRF's own cost is small.
            emissions = emissions.float()
        return emissions, mask


def iob2_allowed(tag_names: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
    """``(start_allowed (T,), transition_allowed (T, T) [from, to])`` for IOB2 tags.

    I-X may only follow B-X or I-X, so it never starts a sequence.  Tags other than ``O``, ``B-X`` and ``I-X``
    are a DataError: another scheme (IOBES, bare types) needs its own rules.
    """
    from ..errors import DataError

    parsed = []
    for name in tag_names:
        if name == "O":
            parsed.append(("O", None))
        elif len(name) > 2 and name[:2] in ("B-", "I-"):
            parsed.append((name[0], name[2:]))
        else:
            raise DataError(f"tag {name!r} is not an IOB2 tag", where="label set",
                            hint="use O, B-TYPE and I-TYPE (convert IOB1/IOBES tags to IOB2 first)")
    n = len(parsed)
    start = torch.tensor([prefix != "I" for prefix, _ in parsed], dtype=torch.bool)
    trans = torch.ones(n, n, dtype=torch.bool)
    for j, (prefix, kind) in enumerate(parsed):
        if prefix == "I":
            trans[:, j] = torch.tensor([p in ("B", "I") and k == kind for p, k in parsed], dtype=torch.bool)
    return start, trans


def _split_allowed(allowed, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    start = torch.ones(n, dtype=torch.bool)
    trans = torch.ones(n, n, dtype=torch.bool)
    if allowed is None:
        return start, trans
    if isinstance(allowed, (tuple, list)):
        start, trans = (torch.as_tensor(a, dtype=torch.bool) for a in allowed)
    else:
        trans = torch.as_tensor(allowed, dtype=torch.bool)
    if start.shape != (n,) or trans.shape != (n, n):
        raise ValueError(f"allowed must be ({n},) start and ({n}, {n}) transition masks, "
                         f"got {tuple(start.shape)} and {tuple(trans.shape)}")
    return start, trans


def _penalty(allowed: torch.Tensor) -> torch.Tensor:
    return torch.where(allowed, 0.0, PENALTY).float()
