"""Token-tagging networks and the backends that feed them, one per family:

- word vectors: word + casing + character features (encoders/word_states.py) -> BiLSTM tagger;
- transformer fine-tuned: each word scored from its first subword (the BERT recipe); a sentence longer than one
  window is split into windows that share ``stride`` subwords of context, and each word is scored in the window
  where it sits farthest from an edge;
- transformer frozen: the same word states computed once without gradients, then a linear tagger.
A CRF (``crf=True``) can sit on any of them.  Items are windows of sentences: ``_sentence``, ``_start``, ``_end``
say which words of which sentence an item holds (keys starting with "_" are not collated).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
from torch import nn

from ..config import FROZEN_FEATURES, ModelConfig
from ..encoders import wordvec
from ..encoders.word_states import CASES, MAX_WORD_CHARS, WordFeatures, casing
from ..encoders.zoo import TRANSFORMER, WORD_VECTORS, Resolved
from ..errors import ModelFileError
from ..heads import registry
from ..heads.crf import CRF, iob2_allowed
from .backends import Backend, _pad

TASK = "token-classification"
MAX_PIECES = 16  # subword pieces kept per word: only the first is scored, the rest are context


def _crf(tags: list[str] | None, on: bool) -> CRF | None:
    return CRF(len(tags), allowed=iob2_allowed(tags)) if on else None


class WordTaggerNet(nn.Module):
    def __init__(self, cfg: ModelConfig, vocab_size: int, emb_dim: int, n_chars: int, tags: list[str]):
        super().__init__()
        self.encoder = WordFeatures(vocab_size, emb_dim, n_chars, char_cnn=cfg.char_cnn,
                                    trainable=cfg.strategy == "trainable")
        spec = registry.get(TASK, cfg.head, WORD_VECTORS)
        self.head = spec.build(self.encoder.out_dim, len(tags), hidden=cfg.hidden or 200,
                               dropout=cfg.dropout, **cfg.head_options)
        self.crf = _crf(tags, cfg.crf)

    def forward(self, word_ids, case_ids, word_mask, char_ids=None):
        return self.head(self.encoder(word_ids, case_ids, char_ids), word_mask)


CASE_DIM = 16


def _with_case(module: nn.Module, states: torch.Tensor, case_ids) -> torch.Tensor:
    return states if module.case is None else torch.cat([states, module.case(case_ids)], dim=-1)


class TransformerTaggerNet(nn.Module):
    def __init__(self, cfg: ModelConfig, backbone: nn.Module, tags: list[str]):
        super().__init__()
        self.backbone = backbone
        self.case = nn.Embedding(len(CASES), CASE_DIM, padding_idx=0) if cfg.case_features else None
        spec = registry.get(TASK, cfg.head, TRANSFORMER)
        width = backbone.config.hidden_size + (CASE_DIM if cfg.case_features else 0)
        self.head = spec.build(width, len(tags), dropout=cfg.dropout, **cfg.head_options)
        self.crf = _crf(tags, cfg.crf)

    def forward(self, input_ids, attention_mask, word_starts, word_mask, case_ids=None):
        from ..encoders.transformer import gather_words, token_states

        states = gather_words(token_states(self.backbone, input_ids, attention_mask), word_starts)
        return self.head(_with_case(self, states, case_ids), word_mask)


class FeatureTaggerNet(nn.Module):
    def __init__(self, cfg: ModelConfig, dim: int, tags: list[str]):
        super().__init__()
        self.case = nn.Embedding(len(CASES), CASE_DIM, padding_idx=0) if cfg.case_features else None
        spec = registry.get(TASK, cfg.head, FROZEN_FEATURES)
        width = dim + (CASE_DIM if cfg.case_features else 0)
        self.head = spec.build(width, len(tags), dropout=cfg.dropout, **cfg.head_options)
        self.crf = _crf(tags, cfg.crf)

    def forward(self, features, word_mask, case_ids=None):
        return self.head(_with_case(self, features, case_ids), word_mask)


class WordTaggingBackend(Backend):
    family = WORD_VECTORS

    def build(self, train, validation, tags, seed):
        lower = [[t.lower() for t in toks] for toks in train.tokens]
        vectors = wordvec.load_vectors(self.resolved, restrict={t for toks in lower for t in toks})
        vocab = wordvec.build_vocab(lower, set(vectors.words), min_count=self.cfg.min_count)
        matrix, hits = wordvec.embedding_matrix(vocab, vectors, vectors.dim, seed)
        chars = sorted({c for toks in train.tokens for t in toks for c in t[:MAX_WORD_CHARS]})
        self.vocab, self.chars = vocab, ["<pad>", "<unk>", *chars]
        self._index()
        self.info = {"vocab_size": len(vocab), "emb_dim": vectors.dim, "pretrained_hits": hits,
                     "n_chars": len(self.chars)}
        module = WordTaggerNet(self.cfg, len(vocab), vectors.dim, len(self.chars), tags)
        module.encoder.embedding.weight.data.copy_(torch.from_numpy(matrix))
        return module

    def _index(self):
        self.word_index = {w: i for i, w in enumerate(self.vocab)}
        self.char_index = {c: i for i, c in enumerate(self.chars)}

    def restore(self, folder, tags, info):
        import json

        path = folder / "vocab.json"
        if not path.exists():
            raise ModelFileError("vocab.json is missing", where=str(folder), hint="re-save or retrain the model")
        try:  # JSON, not one word per line: a tagger's words come from the user's files and may hold \r or \n
            saved = json.loads(path.read_text(encoding="utf-8"))
            self.vocab, self.chars = list(saved["words"]), list(saved["chars"])
        except (ValueError, KeyError, TypeError):
            raise ModelFileError("vocab.json is not a TransferLab vocabulary", where=str(path)) from None
        self._index()
        self.info = dict(info)
        return WordTaggerNet(self.cfg, info["vocab_size"], info["emb_dim"], info["n_chars"], tags)

    def save_files(self, folder, module):
        import json

        (folder / "vocab.json").write_text(json.dumps({"words": self.vocab, "chars": self.chars}, ensure_ascii=True),
                                           encoding="utf-8")

    def prepare(self, sentences):
        """One item per sentence; a sentence longer than max_length words is cut into consecutive chunks (each
        word scored once, with the context of its own chunk)."""
        unk, cunk, n = self.word_index[wordvec.UNK], 1, self.cfg.max_length
        items = []
        for s, toks in enumerate(sentences.tokens):
            for k, a in enumerate(range(0, max(len(toks), 1), n)):
                words = toks[a : a + n] or ["<empty>"]
                items.append({"_sentence": s, "_start": a, "_end": min(a + n, len(toks)), "_window": k,
                              "word_ids": [self.word_index.get(t.lower(), unk) for t in words],
                              "case_ids": [casing(t) for t in words],
                              "char_ids": [[self.char_index.get(c, cunk) for c in t[:MAX_WORD_CHARS]] or [cunk]
                                           for t in words]})
        return items

    def collate(self, items):
        ids, mask = _pad([it["word_ids"] for it in items])
        cases, _ = _pad([it["case_ids"] for it in items])
        batch = {"word_ids": ids, "case_ids": cases, "word_mask": mask}
        if self.cfg.char_cnn:
            width = max(len(c) for it in items for c in it["char_ids"])
            chars = torch.zeros((len(items), ids.size(1), width), dtype=torch.long)
            for i, it in enumerate(items):
                for j, c in enumerate(it["char_ids"]):
                    chars[i, j, : len(c)] = torch.as_tensor(c)
            batch["char_ids"] = chars
        return batch

    def length(self, item):
        return len(item["word_ids"])


def word_windows(lengths: Sequence[int], body: int, stride: int) -> list[tuple[int, int]]:
    """Split words with ``lengths`` subword pieces into windows of at most ``body`` pieces, consecutive windows
    sharing about ``stride`` pieces of context.  A sentence that fits is one window."""
    n, windows, start = len(lengths), [], 0
    if n == 0:
        return [(0, 0)]
    while True:
        end, used = start, 0
        while end < n and used + lengths[end] <= body:
            used += lengths[end]
            end += 1
        end = max(end, start + 1)
        windows.append((start, end))
        if end >= n:
            return windows
        nxt, back = end, 0
        while nxt > start + 1 and back + lengths[nxt - 1] <= stride:
            back += lengths[nxt - 1]
            nxt -= 1
        start = nxt


def owners(windows: Sequence[tuple[int, int]], n_words: int) -> np.ndarray:
    """For each word, the window where it sits farthest from an edge (most context on both sides)."""
    best = np.full(n_words, -1)
    margin = np.full(n_words, -1)
    for k, (a, b) in enumerate(windows):
        w = np.arange(a, b)
        m = np.minimum(w - a, b - 1 - w)
        better = m > margin[a:b]
        best[a:b][better], margin[a:b][better] = k, m[better]
    return best


def document_context(pieces: Sequence[list[list[int]]], documents: Sequence[int] | None, s: int, size: int,
                     room: int) -> tuple[list[int], list[int]]:
    """Subword ids of the words before and after sentence ``s`` in its document (whole words, nearest first, up to
    ``size`` on each side and ``room`` in all), read as context and never labelled (FLERT, Schweter & Akbik 2020).
    Without ``documents`` (no -DOCSTART- lines, JSONL) the file is one document, in file order."""
    def same(j: int) -> bool:
        return 0 <= j < len(pieces) and (documents is None or documents[j] == documents[s])

    budget_left = min(size, room // 2)
    left: list[list[int]] = []
    j, used = s - 1, 0
    while same(j) and used < budget_left:
        for word in reversed(pieces[j]):
            if used + len(word) > budget_left:
                used = budget_left
                break
            left.append(word)
            used += len(word)
        j -= 1
    budget_right = min(size, room - sum(len(word) for word in left))
    right: list[int] = []
    j = s + 1
    while same(j) and len(right) < budget_right:
        for word in pieces[j]:
            if len(right) + len(word) > budget_right:
                budget_right = len(right)
                break
            right += word
        j += 1
    return [i for word in reversed(left) for i in word], right


class TransformerTaggingBackend(Backend):
    family = TRANSFORMER

    def build(self, train, validation, tags, seed):
        from ..encoders.transformer import load_pretrained

        self.tokenizer, backbone = load_pretrained(self.resolved, self.cfg.trust_remote_code,
                                                   self.cfg.attention_dropout)
        self.info = {}
        return self.strategy.wrap(TransformerTaggerNet(self.cfg, backbone, tags))

    def restore(self, folder, tags, info):
        from ..encoders.transformer import restore_pretrained

        self.tokenizer, backbone = restore_pretrained(folder, self.cfg.trust_remote_code)
        self.info = dict(info)
        return TransformerTaggerNet(self.cfg, backbone, tags)  # LoRA weights were saved merged

    def save_files(self, folder, module):
        from ..encoders.transformer import save_pretrained_parts

        save_pretrained_parts(folder, self.tokenizer, module.backbone)

    def state_dict(self, module):
        from ..training.strategies import merged_backbone

        state = {f"backbone.{k}": v for k, v in merged_backbone(module.backbone).state_dict().items()}
        state.update({k: v for k, v in module.state_dict().items() if not k.startswith("backbone.")})
        return state

    def _pieces(self, sentences) -> list[list[list[int]]]:
        """Subword ids per word per sentence (at least one per word: an empty word becomes [UNK])."""
        tok = self.tokenizer
        unk = tok.unk_token_id if tok.unk_token_id is not None else 0
        out = []
        for start in range(0, len(sentences), 1000):
            chunk = [[w[:200] for w in toks] or ["."] for toks in sentences.tokens[start : start + 1000]]
            enc = tok(chunk, is_split_into_words=True, add_special_tokens=False)
            for i, words in enumerate(chunk):
                pieces: list[list[int]] = [[] for _ in words]
                for pos, w in enumerate(enc.word_ids(i)):
                    if w is not None and len(pieces[w]) < MAX_PIECES:
                        pieces[w].append(enc["input_ids"][i][pos])
                out.append([p or [unk] for p in pieces])
        return out

    def prepare(self, sentences):
        from .backends import TransformerBackend

        prefix, suffix = TransformerBackend._special_template(self)
        body = self.cfg.max_length - len(prefix) - len(suffix)
        stride = self.cfg.stride if self.cfg.stride is not None else self.cfg.max_length // 4
        items = []
        all_pieces = self._pieces(sentences)
        # a text given with character spans is its own document; tokenised sentences without -DOCSTART- lines are
        # one document in the order given (as Flair reads a corpus)
        documents = sentences.documents if sentences.documents is not None else (
            list(range(len(sentences))) if sentences.texts is not None else None)
        for s, pieces in enumerate(all_pieces):
            n = len(sentences.tokens[s])
            windows = word_windows([len(p) for p in pieces], body, stride)
            own = None if len(windows) == 1 else owners(windows, n)
            for k, (a, b) in enumerate(windows):
                ids, starts = list(prefix), []
                for p in pieces[a:b]:
                    starts.append(len(ids))
                    ids += p[: max(1, body - (len(ids) - len(prefix)))]
                    ids = ids[: len(prefix) + body]
                if self.cfg.context and len(windows) == 1:
                    left, right = document_context(all_pieces, documents, s,
                                                   self.cfg.context, body - (len(ids) - len(prefix)))
                    starts = [i + len(left) for i in starts]
                    ids = list(prefix) + left + ids[len(prefix):] + right
                words = sentences.tokens[s][a:b] or ["."]
                items.append({"input_ids": ids + list(suffix), "word_starts": starts, "_sentence": s,
                              "case_ids": [casing(w) for w in words][: len(starts)],
                              "_start": a, "_end": min(b, n) if n else 0, "_window": k, "_owner": own})
        return items

    def collate(self, items):
        ids, mask = _pad([it["input_ids"] for it in items], value=self.tokenizer.pad_token_id or 0)
        starts, word_mask = _pad([it["word_starts"] for it in items])
        batch = {"input_ids": ids, "attention_mask": mask, "word_starts": starts, "word_mask": word_mask}
        if self.cfg.case_features:
            batch["case_ids"] = _pad([it["case_ids"] for it in items])[0]
        return batch


class FrozenTaggingBackend(TransformerTaggingBackend):
    """Word states from a frozen transformer, computed once per text set; a linear tagger (+CRF) trains on them."""

    family = FROZEN_FEATURES

    def build(self, train, validation, tags, seed):
        from ..encoders.transformer import load_pretrained

        self.tokenizer, self.backbone = load_pretrained(self.resolved, self.cfg.trust_remote_code)
        self.backbone.to(self.device).eval()
        self.info = {"dim": self.backbone.config.hidden_size,
                     "encoder_params": sum(p.numel() for p in self.backbone.parameters())}
        return FeatureTaggerNet(self.cfg, self.info["dim"], tags)

    def restore(self, folder, tags, info):
        from ..encoders.transformer import load_pretrained

        self.tokenizer, self.backbone = load_pretrained(self.resolved, self.cfg.trust_remote_code)
        self.backbone.to(self.device).eval()
        self.info = dict(info)
        return FeatureTaggerNet(self.cfg, info["dim"], tags)

    def save_files(self, folder, module):
        pass  # the encoder is referenced by name and checked by SHA-256 at load; only the tagger is saved

    def state_dict(self, module):
        return module.state_dict()

    @torch.no_grad()
    def prepare(self, sentences):
        from ..encoders.transformer import gather_words, token_states
        from ..training.trainer import batches

        windows = super().prepare(sentences)
        feats: list[np.ndarray | None] = [None] * len(windows)
        for idx, batch in batches(self._window_collator(), windows, None, 64, shuffle=False):
            states = token_states(self.backbone, batch["input_ids"].to(self.device),
                                  batch["attention_mask"].to(self.device))
            words = gather_words(states, batch["word_starts"].to(self.device)).float().cpu().numpy()
            for k, i in enumerate(idx):
                feats[i] = words[k, : len(windows[i]["word_starts"])]
        return [{"features": f, "case_ids": w["case_ids"], **{k: v for k, v in w.items() if k.startswith("_")}}
                for f, w in zip(feats, windows)]

    def _window_collator(self):
        parent = self

        class _C:
            collate = staticmethod(lambda items: TransformerTaggingBackend.collate(parent, items))
            length = staticmethod(lambda item: len(item["input_ids"]))
        return _C()

    def collate(self, items):
        width = max(len(it["features"]) for it in items)
        dim = items[0]["features"].shape[1]
        x = torch.zeros((len(items), width, dim))
        mask = torch.zeros((len(items), width), dtype=torch.long)
        for i, it in enumerate(items):
            x[i, : len(it["features"])] = torch.from_numpy(it["features"])
            mask[i, : len(it["features"])] = 1
        batch = {"features": x, "word_mask": mask}
        if self.cfg.case_features:
            batch["case_ids"] = _pad([it["case_ids"] for it in items])[0]
        return batch

    def length(self, item):
        return len(item["features"])


def make_tagging_backend(cfg: ModelConfig, resolved: Resolved, device: str) -> Backend:
    cls = {WORD_VECTORS: WordTaggingBackend, FROZEN_FEATURES: FrozenTaggingBackend,
           TRANSFORMER: TransformerTaggingBackend}[cfg.family]
    return cls(cfg, resolved, device)


def merge_windows(items: Sequence[dict], outputs: Sequence[np.ndarray], n_sentences: int,
                  lengths: Sequence[int]) -> list[np.ndarray]:
    """Per-sentence word scores from per-window scores: each word from the window that owns it."""
    merged: list[np.ndarray | None] = [None] * n_sentences
    for it, out in zip(items, outputs):
        s, a, b = it["_sentence"], it["_start"], it["_end"]
        if merged[s] is None:
            merged[s] = np.zeros((lengths[s], out.shape[-1]), dtype=np.float32)
        if it.get("_owner") is None:
            merged[s][a:b] = out[: b - a]
        else:
            k = np.arange(a, b)
            mine = it["_owner"][a:b] == it["_window"]
            merged[s][k[mine]] = out[: b - a][mine]
    return [m if m is not None else np.zeros((0, 1), np.float32) for m in merged]

