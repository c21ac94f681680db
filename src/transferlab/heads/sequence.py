"""Poolers over a sequence of word embeddings: each maps (B, T, D) + mask (B, T) to (B, out_dim)."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from .registry import register

WV = ("word-vectors",)


@register("cnn", task="classification", families=WV, help="Kim (2014) convolutions, max-pooled")
class CNNHead(nn.Module):
    """Kim (2014): parallel convolutions of several widths, max-pooled over time."""

    def __init__(self, emb_dim: int, filters: int = 128, kernel_sizes: tuple[int, ...] = (3, 4, 5)):
        super().__init__()
        self.kernel_sizes = tuple(kernel_sizes)
        self.convs = nn.ModuleList(nn.Conv1d(emb_dim, filters, k) for k in self.kernel_sizes)
        self.out_dim = filters * len(self.kernel_sizes)

    def forward(self, emb: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        # Documents shorter than the widest filter need padding to give it one window.  Always padding by
        # widest - 1 gives the same result for every length (padded windows are masked below) and has no
        # length-dependent branch, so an exported graph (runtime/onnx.py) is right for every length too.
        pad = max(self.kernel_sizes) - 1
        emb = nn.functional.pad(emb, (0, 0, 0, pad))
        mask = nn.functional.pad(mask, (0, pad))
        # Padding counts as zeros, and a window must lie wholly on real tokens (the first window
        # always counts, for documents shorter than the filter), so the amount of padding never matters.
        x = (emb * mask.unsqueeze(-1).to(emb.dtype)).transpose(1, 2)
        pooled = []
        for k, conv in zip(self.kernel_sizes, self.convs):
            h = torch.relu(conv(x))  # (B, F, T-k+1)
            valid = mask[:, k - 1 :].bool().clone()
            valid[:, 0] = True
            pooled.append(h.masked_fill(~valid.unsqueeze(1), 0.0).max(dim=2).values)
        return torch.cat(pooled, dim=1)


@register("bigru", task="classification", families=WV, help="BiGRU + attention")
@register("bilstm", task="classification", families=WV, help="BiLSTM + attention")
class RNNAttentionHead(nn.Module):
    """Bidirectional GRU or LSTM with additive attention (Yang et al. 2016) over its states."""

    def __init__(self, emb_dim: int, hidden: int = 128, cell: str = "gru", layers: int = 1):
        super().__init__()
        rnn = {"gru": nn.GRU, "lstm": nn.LSTM}[cell]
        self.rnn = rnn(emb_dim, hidden, num_layers=layers, batch_first=True, bidirectional=True)
        self.proj = nn.Linear(2 * hidden, 2 * hidden)
        self.context = nn.Linear(2 * hidden, 1, bias=False)
        self.out_dim = 2 * hidden
        self.last_attention: torch.Tensor | None = None

    def forward(self, emb: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        lengths = mask.sum(1).clamp(min=1).cpu()
        packed = pack_padded_sequence(emb, lengths, batch_first=True, enforce_sorted=False)
        states, _ = self.rnn(packed)
        states, _ = pad_packed_sequence(states, batch_first=True, total_length=emb.size(1))
        scores = self.context(torch.tanh(self.proj(states))).squeeze(-1)
        scores = scores.masked_fill(~mask.bool(), torch.finfo(scores.dtype).min)
        weights = torch.softmax(scores, dim=1)
        self.last_attention = weights.detach()  # kept for evidence: which words weighed most
        return torch.bmm(weights.unsqueeze(1), states).squeeze(1)


@register("dan", task="classification", families=WV, help="deep averaging network")
class DANHead(nn.Module):
    """Deep averaging network (Iyyer et al. 2015), the NNLM-style model: mean of embeddings -> MLP.

    Word dropout removes whole tokens from the average during training, which is what makes a
    DAN robust rather than a bag of words that memorises.
    """

    def __init__(self, emb_dim: int, hidden: int = 256, layers: int = 2, word_dropout: float = 0.2):
        super().__init__()
        blocks: list[nn.Module] = []
        width = emb_dim
        for _ in range(layers):
            blocks += [nn.Linear(width, hidden), nn.ReLU(), nn.Dropout(0.1)]
            width = hidden
        self.mlp = nn.Sequential(*blocks)
        self.word_dropout = word_dropout
        self.out_dim = width

    def forward(self, emb: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        mask = mask.to(emb.dtype)
        if self.training and self.word_dropout > 0:
            keep = (torch.rand_like(mask) > self.word_dropout).to(emb.dtype) * mask
            # Never drop every word of a document.
            mask = torch.where(keep.sum(1, keepdim=True) > 0, keep, mask)
        mean = (emb * mask.unsqueeze(-1)).sum(1) / mask.sum(1, keepdim=True).clamp(min=1.0)
        return self.mlp(mean)


SEQUENCE_HEADS = ("cnn", "bigru", "bilstm", "dan")  # the word-vector poolers, as registered above


def build_sequence_head(name: str, emb_dim: int, **kwargs) -> nn.Module:
    """A word-vector pooler by its registered name (``bigru``/``bilstm`` are one class with two cells)."""
    from . import registry

    spec = registry.get("classification", name, "word-vectors")
    if name in ("bigru", "bilstm"):
        kwargs = {"cell": name[2:], **kwargs}
    return spec.build(emb_dim, **kwargs)
