"""Word-level input states for taggers over static word vectors: the (lower-cased) word's pretrained vector, a
casing feature, and a character CNN (Ma & Hovy 2016).

GloVe is uncased, and capitalisation is most of what tells "Apple" the company from "apple": the casing feature
(Collobert et al. 2011) and the characters give it back, along with prefixes and suffixes for unknown words."""

from __future__ import annotations

import torch
from torch import nn

CASES = ("pad", "lower", "initial-upper", "all-upper", "mixed", "numeric", "has-digit", "other")
MAX_WORD_CHARS = 20  # characters of a word the char CNN sees (longer words keep their first 20)


def casing(word: str) -> int:
    if not word:
        return CASES.index("other")
    if word.isdigit():
        return CASES.index("numeric")
    if word.islower():
        return CASES.index("lower")
    if word.isupper():
        return CASES.index("all-upper")
    if word[0].isupper() and (len(word) == 1 or word[1:].islower()):
        return CASES.index("initial-upper")
    if any(c.isdigit() for c in word):
        return CASES.index("has-digit")
    if any(c.isalpha() for c in word):
        return CASES.index("mixed")
    return CASES.index("other")


class WordFeatures(nn.Module):
    """(word ids, case ids, char ids) -> (B, W, D) word states."""

    def __init__(self, vocab_size: int, emb_dim: int, n_chars: int, *, char_cnn: bool = True,
                 trainable: bool = True, char_dim: int = 25, char_filters: int = 50, case_dim: int = 8):
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, emb_dim, padding_idx=0)
        self.embedding.weight.requires_grad = trainable
        self.case = nn.Embedding(len(CASES), case_dim, padding_idx=0)
        self.char_cnn = char_cnn
        if char_cnn:
            self.chars = nn.Embedding(n_chars, char_dim, padding_idx=0)
            self.conv = nn.Conv1d(char_dim, char_filters, kernel_size=3, padding=1)
        self.out_dim = emb_dim + case_dim + (char_filters if char_cnn else 0)

    def forward(self, word_ids, case_ids, char_ids=None) -> torch.Tensor:
        parts = [self.embedding(word_ids), self.case(case_ids)]
        if self.char_cnn:
            b, w, c = char_ids.shape
            x = self.chars(char_ids.view(b * w, c)).transpose(1, 2)  # (B*W, char_dim, C)
            h = self.conv(x).masked_fill((char_ids.view(b * w, 1, c) == 0), -1e4).max(dim=2).values
            parts.append(torch.where(h > -1e3, h, torch.zeros_like(h)).view(b, w, -1))
        return torch.cat(parts, dim=-1)
