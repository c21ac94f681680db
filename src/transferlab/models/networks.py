"""The three families as ``nn.Module``s that map a batch to logits."""

from __future__ import annotations

import torch
from torch import nn

from ..heads import ClassifierHead, build_sequence_head
from ..heads.classifier import pair_features as combine


class WordVectorNet(nn.Module):
    """Embedding layer (pretrained, frozen or trainable) -> sequence head -> classifier."""

    def __init__(self, vocab_size: int, emb_dim: int, head: str, n_labels: int, *, pair: bool = False,
                 trainable: bool = True, dropout: float = 0.2, hidden: int | None = None, head_options: dict | None = None):
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, emb_dim, padding_idx=0)
        self.embedding.weight.requires_grad = trainable
        self.emb_dropout = nn.Dropout(dropout)
        self.encoder = build_sequence_head(head, emb_dim, **(head_options or {}))
        self.pair = pair
        width = self.encoder.out_dim * (4 if pair else 1)
        self.classifier = ClassifierHead(width, n_labels, hidden=hidden, dropout=dropout)

    def embed(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self.encoder(self.emb_dropout(self.embedding(ids)), mask)

    def forward(self, input_ids, attention_mask, pair_input_ids=None, pair_attention_mask=None):
        u = self.embed(input_ids, attention_mask)
        if self.pair:
            u = combine(u, self.embed(pair_input_ids, pair_attention_mask))
        return self.classifier(u)


class FeatureNet(nn.Module):
    """A logistic-regression (``hidden=None``) or MLP head over frozen sentence embeddings.

    Features are standardised with the training set's mean and spread, kept as buffers so the
    saved model carries them.
    """

    def __init__(self, dim: int, n_labels: int, *, pair: bool = False, hidden: int | None = None, dropout: float = 0.1):
        super().__init__()
        self.register_buffer("mean", torch.zeros(dim))
        self.register_buffer("scale", torch.ones(dim))
        self.pair = pair
        self.classifier = ClassifierHead(dim * (4 if pair else 1), n_labels, hidden=hidden, dropout=dropout)

    def set_standardisation(self, features: torch.Tensor) -> None:
        self.mean.copy_(features.mean(0))
        self.scale.copy_(features.std(0).clamp(min=1e-6))

    def forward(self, features, pair_features=None):
        u = (features - self.mean) / self.scale
        if self.pair:
            u = combine(u, (pair_features - self.mean) / self.scale)
        return self.classifier(u)


class TransformerNet(nn.Module):
    """A Hugging Face encoder with mean or [CLS] pooling and a classifier; sentence pairs are cross-encoded."""

    def __init__(self, backbone: nn.Module, n_labels: int, *, pooling: str = "mean", dropout: float = 0.1,
                 hidden: int | None = None):
        super().__init__()
        self.backbone = backbone
        self.pooling = pooling
        self.classifier = ClassifierHead(backbone.config.hidden_size, n_labels, hidden=hidden, dropout=dropout)

    def forward(self, input_ids, attention_mask, token_type_ids=None):
        kwargs = {"input_ids": input_ids, "attention_mask": attention_mask}
        if token_type_ids is not None:
            kwargs["token_type_ids"] = token_type_ids
        states = self.backbone(**kwargs).last_hidden_state
        if self.pooling == "cls":
            pooled = states[:, 0]
        else:
            m = attention_mask.unsqueeze(-1).to(states.dtype)
            pooled = (states * m).sum(1) / m.sum(1).clamp(min=1.0)
        return self.classifier(pooled)
