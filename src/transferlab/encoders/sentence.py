"""Frozen sentence encoders (feature extraction) with an on-disk embedding cache.

Any sentence-transformers model works: the packaged MiniLM, MPNet, a local folder, or a hub id
(a plain transformer checkpoint gets mean pooling).  Embeddings are cached in SQLite keyed by the
model's identity, the long-document mode and the SHA-256 of each text, so a second run over the
same data (another head, another seed) encodes nothing.
"""

from __future__ import annotations

import hashlib
import sqlite3
from pathlib import Path
from typing import Sequence

import numpy as np
from tqdm.auto import tqdm

from .zoo import Resolved, cache_dir, files_digest, refuse_folder_code, remote_code_refusals

LONG_DOCUMENT_MODES = ("head", "head+tail", "chunks")


def quiet_length_warning(tokenizer):
    """Long-document modes tokenise a whole text on purpose and cut it themselves: mark transformers' one-time
    "sequence length is longer than the maximum" warning as given, since it does not apply."""
    if hasattr(tokenizer, "deprecation_warnings"):
        tokenizer.deprecation_warnings["sequence-length-is-longer-than-the-specified-maximum"] = True
    return tokenizer


def load_sentence_transformer(resolved: Resolved, device: str, trust_remote_code: bool = False):
    from sentence_transformers import SentenceTransformer

    import torch

    if resolved.local:
        refuse_folder_code(resolved.location, trust_remote_code)
    # float32 whatever the stored dtype: an fp16 copy would be slow on CPU and differ from the fp32 original.
    kwargs = {"device": device, "trust_remote_code": bool(trust_remote_code),
              "model_kwargs": {"dtype": torch.float32}}
    if not resolved.local and resolved.revision:
        kwargs["revision"] = resolved.revision
    with remote_code_refusals(resolved.location):
        return SentenceTransformer(resolved.location, **kwargs)


def _identity(resolved: Resolved) -> str:
    if resolved.sha256:
        return resolved.sha256
    if resolved.files:  # the weights' own hashes: a swapped file gets a new cache, whatever its mtime
        return files_digest(resolved.files)
    if resolved.local:
        weights = sorted(Path(resolved.location).glob("*.safetensors"))
        stats = [(w.name, w.stat().st_size, int(w.stat().st_mtime)) for w in weights]
        return f"{resolved.location}|{stats}"
    return f"{resolved.location}@{resolved.revision}"


class EmbeddingCache:
    """text SHA-256 -> float32 vector, one SQLite file per (model, settings)."""

    def __init__(self, key: str, folder: Path | None = None):
        folder = folder or cache_dir() / "embeddings"
        folder.mkdir(parents=True, exist_ok=True)
        self.path = folder / f"{key}.sqlite"
        self.db = sqlite3.connect(self.path)
        self.db.execute("CREATE TABLE IF NOT EXISTS emb (h TEXT PRIMARY KEY, v BLOB NOT NULL)")

    def get(self, hashes: Sequence[str]) -> dict[str, np.ndarray]:
        found: dict[str, np.ndarray] = {}
        for start in range(0, len(hashes), 500):
            chunk = list(hashes[start : start + 500])
            marks = ",".join("?" * len(chunk))
            for h, blob in self.db.execute(f"SELECT h, v FROM emb WHERE h IN ({marks})", chunk):
                found[h] = np.frombuffer(blob, dtype=np.float32)
        return found

    def put(self, items: dict[str, np.ndarray]) -> None:
        with self.db:
            self.db.executemany(
                "INSERT OR REPLACE INTO emb (h, v) VALUES (?, ?)",
                [(h, np.asarray(v, dtype=np.float32).tobytes()) for h, v in items.items()],
            )

    def close(self) -> None:
        self.db.close()


class SentenceEncoder:
    """Encode texts to fixed vectors with a frozen sentence encoder.

    ``long_document``: ``head`` keeps the first ``max_length`` tokens; ``head+tail`` keeps a quarter
    from the start and the rest from the end (Sun et al. 2019); ``chunks`` averages the embeddings
    of consecutive windows (at most ``max_chunks``), so the whole review counts.
    """

    def __init__(self, resolved: Resolved, *, device: str = "cpu", max_length: int | None = None,
                 long_document: str = "head", max_chunks: int = 8, batch_size: int = 64,
                 use_cache: bool = True, trust_remote_code: bool = False):
        self.resolved = resolved
        self.model = load_sentence_transformer(resolved, device, trust_remote_code)
        if max_length:
            self.model.max_seq_length = min(max_length, self.model.max_seq_length or max_length)
        self.max_length = int(self.model.max_seq_length)
        self.long_document = long_document
        self.max_chunks = max_chunks
        self.batch_size = batch_size
        self.use_cache = use_cache
        self.graph = None  # an ONNX Runtime graph of this encoder (runtime/onnx.py), when one is attached
        self.cache = EmbeddingCache(self._cache_key()) if use_cache else None

    def _cache_key(self) -> str:
        # A graph's embeddings (int8 above all) are not PyTorch's: they are cached apart, keyed by the graph file's
        # own hash, so a re-export never reads an earlier graph's vectors.
        runtime = f"|onnx-{self.graph.sha256}" if self.graph is not None else ""
        return hashlib.sha256(
            f"{_identity(self.resolved)}|{self.max_length}|{self.long_document}|{self.max_chunks}{runtime}".encode()
        ).hexdigest()[:24]

    def use_graph(self, graph) -> None:
        """Encode with an exported ONNX graph of this model (None: back to PyTorch)."""
        self.graph = graph
        if self.cache is not None:
            self.cache.close()
            self.cache = EmbeddingCache(self._cache_key())

    def tokenise(self, texts: Sequence[str]) -> dict:
        """Token ids of each text as the sentence-transformers model reads them (cut at ``max_length``), unpadded."""
        return dict(self.model.tokenizer(list(texts), truncation=True, max_length=self.max_length))

    def _graph_encode(self, texts: Sequence[str]) -> np.ndarray:
        """The exported graph over length-sorted batches padded per batch (what ``model.encode`` does in PyTorch)."""
        import torch

        enc = self.tokenise(texts)
        order = np.argsort([len(ids) for ids in enc["input_ids"]], kind="stable")
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for start in range(0, len(order), self.batch_size):
            idx = order[start : start + self.batch_size]
            batch = self.model.tokenizer.pad({k: [v[i] for i in idx] for k, v in enc.items()}, return_tensors="pt")
            with torch.no_grad():
                out[idx] = self.graph(**batch).float().numpy()
        return out

    @property
    def dim(self) -> int:
        get_dim = getattr(self.model, "get_embedding_dimension", None) or self.model.get_sentence_embedding_dimension
        return int(get_dim())

    def _windows(self, text: str) -> list[str]:
        """Split one text into the strings to embed, per the long-document mode."""
        if self.long_document == "head":
            return [text[: self.max_length * 20]]
        tok = quiet_length_warning(self.model.tokenizer)
        body = self.max_length - 2
        cut = text[: body * self.max_chunks * 12] if self.long_document == "chunks" else text
        if self.long_document == "head+tail" and len(text) > body * 24:
            cut = text[: body * 12] + " " + text[-body * 12 :]
        ids = tok(cut, add_special_tokens=False, truncation=False)["input_ids"]
        if len(ids) <= body:
            return [text[: self.max_length * 20]]
        if self.long_document == "head+tail":
            head = body // 4
            return [tok.decode(ids[:head] + ids[len(ids) - (body - head):])]
        return [tok.decode(ids[i : i + body]) for i in range(0, min(len(ids), body * self.max_chunks), body)]

    def _encode_uncached(self, texts: Sequence[str], show_progress: bool) -> np.ndarray:
        windows = [self._windows(t) for t in texts]
        flat = [w for ws in windows for w in ws]
        if self.graph is not None:
            vecs = self._graph_encode(flat)
        else:
            vecs = self.model.encode(flat, batch_size=self.batch_size, convert_to_numpy=True,
                                     show_progress_bar=show_progress)
        out, pos = np.zeros((len(texts), vecs.shape[1]), dtype=np.float32), 0
        for i, ws in enumerate(windows):
            out[i] = vecs[pos : pos + len(ws)].mean(axis=0)
            pos += len(ws)
        return out

    def encode(self, texts: Sequence[str], show_progress: bool = True, block: int = 2048) -> np.ndarray:
        hashes = [hashlib.sha256(t.encode("utf-8", "surrogatepass")).hexdigest() for t in texts]
        found = self.cache.get(hashes) if self.cache else {}
        todo = sorted({h: i for i, h in enumerate(hashes) if h not in found}.values())
        if todo:
            bar = tqdm(total=len(todo), desc=f"encoding with {self.resolved.name}", unit="doc",
                       disable=not show_progress)
            # Blocks let an interrupted run keep what it already paid for.
            for start in range(0, len(todo), block):
                idx = todo[start : start + block]
                vecs = self._encode_uncached([texts[i] for i in idx], show_progress=False)
                new = {hashes[i]: v for i, v in zip(idx, vecs)}
                found.update(new)
                if self.cache:
                    self.cache.put(new)
                bar.update(len(idx))
            bar.close()
        return np.stack([found[h] for h in hashes]) if hashes else np.zeros((0, self.dim), np.float32)
