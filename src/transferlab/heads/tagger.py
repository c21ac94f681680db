"""Tagging heads: per-word states (B, W, D) + mask -> per-word tag scores (B, W, tags).

A CRF (heads/crf.py) can sit on top of any of them (``crf=True``); the network then owns it as ``.crf`` and the
token-classification task uses it for the loss and for decoding."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from .registry import register


@register("bilstm", task="token-classification", families=("word-vectors",),
          help="BiLSTM over word (+character) features -> per-word scores (Lample et al. 2016; add --crf)")
class BiLSTMTagger(nn.Module):
    def __init__(self, in_dim: int, n_tags: int, hidden: int = 200, layers: int = 1, dropout: float = 0.5):
        super().__init__()
        self.rnn = nn.LSTM(in_dim, hidden, num_layers=layers, batch_first=True, bidirectional=True)
        self.dropout = nn.Dropout(dropout)
        self.out = nn.Linear(2 * hidden, n_tags)

    def forward(self, states: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        lengths = mask.sum(1).clamp(min=1).cpu()
        packed = pack_padded_sequence(self.dropout(states), lengths, batch_first=True, enforce_sorted=False)
        out, _ = self.rnn(packed)
        out, _ = pad_packed_sequence(out, batch_first=True, total_length=states.size(1))
        return self.out(self.dropout(out))


@register("linear", task="token-classification", families=("transformer", "frozen-features"),
          help="one linear layer over each word's first-subword state (the BERT recipe; add --crf)")
class LinearTagger(nn.Module):
    def __init__(self, in_dim: int, n_tags: int, dropout: float = 0.1):
        super().__init__()
        self.dropout = nn.Dropout(dropout)
        self.out = nn.Linear(in_dim, n_tags)

    def forward(self, states: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self.out(self.dropout(states))
