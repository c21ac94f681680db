"""TF-IDF features beside a frozen sentence encoder's (the hybrid family): word 1-2-gram TF-IDF (sublinear term
frequency, the TF-IDF peer's settings) fitted on the training texts, reduced by truncated SVD (latent semantic
analysis) to a dense block of ``dim`` features, scaled to unit length like the sentence embedding it is appended to.

Why: on security issue text, rare exact terms (CVE ids, "XSS", function names) carry signal a sentence encoder
averages away, and TF-IDF + logistic regression beats a frozen encoder there; the hybrid gives one head both views.
The vectoriser and the SVD are scikit-learn's; what is kept is plain data (the vocabulary as JSON, the idf vector
and the SVD components as safetensors), never a pickle, and rebuilt at load.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

import numpy as np

from ..errors import ModelFileError

VOCAB, TENSORS = "tfidf_vocabulary.json", "tfidf.safetensors"


class TfidfBlock:
    def __init__(self, vectorizer, components: np.ndarray):
        # C order: scikit-learn's SVD components can be Fortran-ordered, and safetensors writes the raw buffer
        self.vectorizer, self.components = vectorizer, np.ascontiguousarray(components, dtype=np.float32)

    @property
    def dim(self) -> int:
        return int(self.components.shape[0])

    @classmethod
    def fit(cls, texts: Sequence[str], dim: int, seed: int) -> "TfidfBlock":
        from sklearn.decomposition import TruncatedSVD

        from ..bench.peers import tfidf_vectorizer

        vec = tfidf_vectorizer(min_df=1 if len(texts) < 50 else 2, max_features=200_000)
        X = vec.fit_transform(list(texts))
        k = max(1, min(int(dim), X.shape[1] - 1, X.shape[0] - 1))
        svd = TruncatedSVD(n_components=k, random_state=seed).fit(X)
        return cls(vec, svd.components_)

    def transform(self, texts: Sequence[str]) -> np.ndarray:
        z = np.asarray(self.vectorizer.transform(list(texts)) @ self.components.T, dtype=np.float32)
        return z / np.clip(np.linalg.norm(z, axis=1, keepdims=True), 1e-12, None)

    def save(self, folder: Path) -> dict[str, str]:
        """Write the two files; returns their SHA-256 by name (kept in config.json and checked at load)."""
        from safetensors.numpy import save_file

        from .zoo import sha256_file

        vocab = {term: int(i) for term, i in self.vectorizer.vocabulary_.items()}
        params = {k: self.vectorizer.get_params()[k] for k in ("ngram_range", "min_df", "sublinear_tf",
                                                                "strip_accents", "lowercase")}
        (folder / VOCAB).write_text(json.dumps({"params": params, "vocabulary": vocab}, ensure_ascii=False),
                                    encoding="utf-8")
        save_file({"idf": np.ascontiguousarray(self.vectorizer.idf_, dtype=np.float64),
                   "components": self.components},
                  str(folder / TENSORS))
        return {name: sha256_file(folder / name) for name in (VOCAB, TENSORS)}

    @classmethod
    def load(cls, folder: Path, hashes: dict[str, str]) -> "TfidfBlock":
        from safetensors.numpy import load_file
        from sklearn.feature_extraction.text import TfidfVectorizer

        from .zoo import sha256_file

        for name in (VOCAB, TENSORS):
            path = folder / name
            if not path.is_file():
                raise ModelFileError(f"{name} is missing", where=str(folder), hint="copy the whole model folder")
            if sha256_file(path) != hashes.get(name):
                raise ModelFileError(f"{name} was altered or corrupted (SHA-256 differs from config.json)",
                                     where=str(path), hint="restore it from the original run or retrain")
        doc = json.loads((folder / VOCAB).read_text(encoding="utf-8"))
        tensors = load_file(str(folder / TENSORS))
        params = dict(doc["params"], ngram_range=tuple(doc["params"]["ngram_range"]))
        vec = TfidfVectorizer(**params)
        vec.vocabulary_ = doc["vocabulary"]
        vec.idf_ = tensors["idf"]
        return cls(vec, tensors["components"])
