"""Static word vectors: loading (GloVe package, text .vec/.txt[.gz], fastText .bin), in-domain
training with gensim FastText, tokenisation and the vocabulary a model keeps.

Out-of-vocabulary policy (also in the README): a model's vocabulary is the words of its training
text seen at least ``min_count`` times, plus every training word the pretrained vectors know.
Words with a pretrained vector start from it; the others start from a small random vector (learned
when embeddings are trainable).  At prediction time an unknown word maps to ``<unk>``, whose vector
starts as the mean of the pretrained vectors; ``<pad>`` is all zeros and masked out by every head.
"""

from __future__ import annotations

import gzip
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
from tqdm.auto import tqdm

from ..errors import DataError
from .zoo import Resolved

PAD, UNK = "<pad>", "<unk>"
_TAG = re.compile(r"<[^>]{0,40}>")
# Split "don't" as "do" + "n't" the way GloVe's and fastText's corpora were tokenised.
_TOKEN = re.compile(r"\w+(?=n't\b)|n't\b|'\w+|\w+|[^\w\s]")


def tokenize(text: str, max_tokens: int | None = None, truncation: str = "head") -> list[str]:
    """Lower-cased word tokens, HTML tags removed.  Long documents are cut before the regex runs."""
    if max_tokens is not None:
        # ~8 characters a token is generous; cutting first keeps a 1M-character document cheap.
        budget = max_tokens * 12
        if len(text) > 2 * budget:
            text = text[:budget] + " " + text[-budget:] if truncation == "head+tail" else text[:budget]
    tokens = _TOKEN.findall(_TAG.sub(" ", text.lower()))
    if max_tokens is not None and len(tokens) > max_tokens:
        if truncation == "head+tail":
            head = max_tokens // 4
            tokens = tokens[:head] + tokens[len(tokens) - (max_tokens - head):]
        else:
            tokens = tokens[:max_tokens]
    return tokens


@dataclass
class WordVectors:
    words: list[str]
    vectors: np.ndarray  # (len(words), dim) float32

    @property
    def dim(self) -> int:
        return int(self.vectors.shape[1])

    def lookup(self) -> dict[str, int]:
        return {w: i for i, w in enumerate(self.words)}


def load_vectors(resolved: Resolved, restrict: set[str] | None = None) -> WordVectors:
    """Load pretrained vectors, keeping only ``restrict`` words when given (saves memory)."""
    path = Path(resolved.location)
    if resolved.name == "glove-50d":
        return _load_glove_package(path, restrict)
    if path.suffix == ".bin":
        return _load_fasttext_bin(path, restrict)
    return _load_text_vectors(path, restrict)


def _load_glove_package(folder: Path, restrict: set[str] | None) -> WordVectors:
    import pyarrow.parquet as pq

    words = pq.read_table(folder / "glove_6B_index.parquet").column("index").to_pylist()
    matrix = np.load(folder / "glove_6B_50d_emb.npy", mmap_mode="r")
    if restrict is None:
        return WordVectors(words, np.asarray(matrix, dtype=np.float32))
    keep = [i for i, w in enumerate(words) if w in restrict]
    return WordVectors([words[i] for i in keep], np.asarray(matrix[keep], dtype=np.float32))


def _load_text_vectors(path: Path, restrict: set[str] | None) -> WordVectors:
    """word2vec/GloVe/fastText text format, with or without the "count dim" header line."""
    opener = gzip.open if path.suffix == ".gz" else open
    words: list[str] = []
    rows: list[np.ndarray] = []
    dim = None
    try:
        with opener(path, "rt", encoding="utf-8", errors="strict") as f:
            for lineno, line in enumerate(f, start=1):
                parts = line.rstrip("\n").rstrip(" ").split(" ")
                if lineno == 1 and len(parts) == 2 and all(p.isdigit() for p in parts):
                    continue
                if dim is None:
                    dim = len(parts) - 1
                if len(parts) != dim + 1:
                    raise DataError(
                        f"expected a word and {dim} numbers, found {len(parts)} fields",
                        where=f"{path}:line {lineno}",
                        hint="word-vector files have one word and its numbers per line, space separated",
                    )
                if restrict is not None and parts[0] not in restrict:
                    continue
                try:
                    rows.append(np.asarray(parts[1:], dtype=np.float32))
                except ValueError:
                    raise DataError("a vector component is not a number", where=f"{path}:line {lineno}") from None
                words.append(parts[0])
    except UnicodeDecodeError as exc:
        raise DataError(f"not UTF-8 ({exc.reason} at byte {exc.start})", where=str(path)) from None
    except (EOFError, OSError) as exc:
        raise DataError(f"cannot read the vector file: {exc}", where=str(path)) from None
    if dim is None:
        raise DataError("the vector file is empty", where=str(path))
    matrix = np.stack(rows) if rows else np.zeros((0, dim), dtype=np.float32)
    return WordVectors(words, matrix)


def _load_fasttext_bin(path: Path, restrict: set[str] | None) -> WordVectors:
    from gensim.models.fasttext import load_facebook_vectors

    try:
        kv = load_facebook_vectors(str(path))
    except Exception as exc:  # gensim raises assorted errors for a file that is not fastText's
        raise DataError(f"not a fastText .bin model ({exc})", where=str(path)) from None
    words = sorted(restrict) if restrict is not None else list(kv.index_to_key)
    # Subword n-grams give every word a vector, known to the corpus or not.
    return WordVectors(words, np.stack([kv[w] for w in words]).astype(np.float32) if words else np.zeros((0, kv.vector_size), np.float32))


def train_fasttext(token_lists: Sequence[list[str]], *, dim: int = 100, epochs: int = 10, min_count: int = 2,
                   seed: int = 13, workers: int = 2) -> WordVectors:
    """fastText skip-gram vectors trained on the user's own text (training + validation only)."""
    from gensim.models import FastText

    if not any(token_lists):
        raise DataError("no words to train in-domain vectors on", hint="check the text column")
    model = FastText(vector_size=dim, window=5, min_count=min_count, sg=1, seed=seed, workers=workers)
    model.build_vocab(corpus_iterable=token_lists)
    model.train(corpus_iterable=token_lists, total_examples=len(token_lists), epochs=epochs)
    words = list(model.wv.index_to_key)
    return WordVectors(words, np.asarray(model.wv.vectors, dtype=np.float32))


def build_vocab(token_lists: Iterable[list[str]], known: set[str] | None, *, min_count: int = 2,
                max_size: int = 100_000) -> list[str]:
    """Training words seen ``min_count`` times, or once if the pretrained vectors know them."""
    counts = Counter(tok for toks in token_lists for tok in toks)
    keep = [w for w, c in counts.most_common() if c >= min_count or (known is not None and w in known)]
    return [PAD, UNK] + keep[: max_size - 2]


def embedding_matrix(vocab: list[str], vectors: WordVectors | None, dim: int, seed: int) -> tuple[np.ndarray, int]:
    """Initial embeddings for ``vocab``; returns the matrix and how many words had a pretrained vector."""
    rng = np.random.default_rng(seed)
    if vectors is not None and len(vectors.words):
        scale = float(vectors.vectors.std())
        mean = vectors.vectors.mean(axis=0)
    else:
        scale, mean = 0.1, np.zeros(dim, dtype=np.float32)
    matrix = rng.normal(0.0, scale, size=(len(vocab), dim)).astype(np.float32)
    matrix[0] = 0.0
    matrix[1] = mean
    hits = 0
    if vectors is not None:
        index = vectors.lookup()
        for i, word in enumerate(vocab[2:], start=2):
            j = index.get(word)
            if j is not None:
                matrix[i] = vectors.vectors[j]
                hits += 1
    return matrix, hits


def encode_tokens(token_lists: Sequence[list[str]], vocab_index: dict[str, int]) -> list[list[int]]:
    unk = vocab_index[UNK]
    # An empty document still needs one position so every head has something to pool.
    return [[vocab_index.get(t, unk) for t in toks] or [unk] for toks in token_lists]


def tokenize_all(texts: Sequence[str], max_tokens: int, truncation: str, desc: str = "tokenising") -> list[list[str]]:
    return [tokenize(t, max_tokens, truncation) for t in tqdm(texts, desc=desc, leave=False, disable=True if len(texts) < 2000 else None)]
