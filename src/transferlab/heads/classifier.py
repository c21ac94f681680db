"""The last layers: a linear (logistic-regression) or MLP classifier over one vector."""

from __future__ import annotations

import torch
from torch import nn

from .registry import register


def pair_features(u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """InferSent/SBERT pair combination: both vectors, their distance and their product."""
    return torch.cat([u, v, (u - v).abs(), u * v], dim=-1)


@register("linear", task="classification", families=("transformer",), help="pooled states -> linear layer")
@register("mlp", task="classification", families=("transformer", "frozen-features"),
          help="one hidden layer (GELU) -> linear")
@register("logreg", task="classification", families=("frozen-features",),
          help="logistic regression over standardised embeddings")
class ClassifierHead(nn.Module):
    def __init__(self, in_dim: int, n_labels: int, hidden: int | None = None, dropout: float = 0.1):
        super().__init__()
        layers: list[nn.Module] = [nn.Dropout(dropout)]
        if hidden:
            layers += [nn.Linear(in_dim, hidden), nn.GELU(), nn.Dropout(dropout)]
            in_dim = hidden
        layers.append(nn.Linear(in_dim, n_labels))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)
