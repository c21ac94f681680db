"""Heads turn token embeddings (or a fixed feature vector) into one vector, then into logits."""

from .sequence import CNNHead, DANHead, RNNAttentionHead, build_sequence_head, SEQUENCE_HEADS
from .classifier import ClassifierHead, pair_features

__all__ = ["CNNHead", "DANHead", "RNNAttentionHead", "build_sequence_head", "SEQUENCE_HEADS",
           "ClassifierHead", "pair_features"]
