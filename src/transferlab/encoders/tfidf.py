"""TF-IDF features beside a frozen sentence encoder's (the hybrid family): word 1-2-gram TF-IDF (sublinear term
frequency, the TF-IDF peer's settings) fitted on the training texts, reduced by truncated SVD (latent semantic
analysis) to a dense block of ``dim`` features, scaled to unit length like the sentence embedding it is appended to
(:class:`TfidfBlock`); or the out-of-fold decision score of a TF-IDF logistic regression, stacked (:class:`TfidfStack`).

Why: on security issue text, rare exact terms (CVE ids, "XSS", function names) carry signal a sentence encoder
averages away, and TF-IDF + logistic regression beats a frozen encoder there; the hybrid gives one head both views.
The vectoriser and the SVD are scikit-learn's; what is kept is plain data (the vocabulary as JSON, the idf vector
and the SVD components as safetensors), never a pickle, and rebuilt at load.
"""

from __future__ import annotations

import html
import json
import re
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

        vec = _vectorizer(len(texts))
        X = vec.fit_transform(list(texts))
        k = max(1, min(int(dim), X.shape[1] - 1, X.shape[0] - 1))
        svd = TruncatedSVD(n_components=k, random_state=seed).fit(X)
        return cls(vec, svd.components_)

    def transform(self, texts: Sequence[str]) -> np.ndarray:
        z = np.asarray(self.vectorizer.transform(list(texts)) @ self.components.T, dtype=np.float32)
        return z / np.clip(np.linalg.norm(z, axis=1, keepdims=True), 1e-12, None)

    def end_fit(self) -> None:
        """Nothing to drop: the SVD block scores training texts like any other."""

    def save(self, folder: Path) -> dict[str, str]:
        """Write the two files; returns their SHA-256 by name (kept in config.json and checked at load)."""
        return _save(folder, self.vectorizer, "lsa", {"components": self.components})

    @classmethod
    def load(cls, folder: Path, hashes: dict[str, str]) -> "TfidfBlock":
        return load_block(folder, hashes)


TINY = 50  # texts: below this, n-grams seen once are kept (min_df 1) and no term is too common to keep
_TITLE = re.compile(r"\s*<title>(.*?)</title>", re.S | re.I)
TITLE_CHARS = 500


def report_title(text: str) -> str:
    """A bug report's or an issue's title: its leading ``<title>`` element (the saved tracker pages of the FARSEC
    files), else its first line (where ``vuln.labels.issue_text`` puts an issue's title), at most TITLE_CHARS."""
    found = _TITLE.match(text)
    return html.unescape(found.group(1))[:TITLE_CHARS] if found else text.split("\n", 1)[0][:TITLE_CHARS]


def _titles(texts) -> list[str]:
    return [report_title(t) for t in texts]


def with_title(body, title_weight: float, n_texts: int):
    """``body`` (a word TF-IDF vectoriser of the whole text) and, when ``title_weight`` > 0, a second word 1-2-gram
    TF-IDF of each text's title (:func:`report_title`) scaled by ``title_weight``, side by side (scikit-learn's
    FeatureUnion).

    Why: a report's title is its one-line statement of the problem ("Heap overflow in ..."), but in the whole text its
    few words are diluted among hundreds; a block of its own lets the linear model weigh a title word apart from the
    same word in a stack trace. Terms in over half the titles are dropped (``max_df``): a tracker's boilerplate
    ("Issue 1208 - chromium - ... - Project Hosting on Google Code") would otherwise take most of each title's norm.
    """
    if not title_weight:
        return body
    from sklearn.pipeline import FeatureUnion, make_pipeline
    from sklearn.preprocessing import FunctionTransformer

    from ..bench.peers import tfidf_vectorizer

    small = n_texts < TINY
    title = make_pipeline(FunctionTransformer(_titles), tfidf_vectorizer(min_df=1 if small else 2).set_params(
        max_df=1.0 if small else 0.5))
    return FeatureUnion([("text", body), ("title", title)], transformer_weights={"text": 1.0,
                                                                                  "title": float(title_weight)})


def _vectorizer(n_texts: int):
    """Word 1-2-gram TF-IDF with the TF-IDF peer's settings; n-grams seen once are kept only on tiny data."""
    from ..bench.peers import tfidf_vectorizer

    return tfidf_vectorizer(min_df=1 if n_texts < TINY else 2, max_features=200_000)


def _save(folder: Path, vectorizer, kind: str, tensors: dict[str, np.ndarray]) -> dict[str, str]:
    """The vocabulary as JSON and the idf vector with ``tensors`` as safetensors; their SHA-256 by file name."""
    from safetensors.numpy import save_file

    from .zoo import sha256_file

    vocab = {term: int(i) for term, i in vectorizer.vocabulary_.items()}
    params = {k: vectorizer.get_params()[k] for k in ("ngram_range", "min_df", "sublinear_tf", "strip_accents",
                                                       "lowercase")}
    (folder / VOCAB).write_text(json.dumps({"kind": kind, "params": params, "vocabulary": vocab},
                                           ensure_ascii=False), encoding="utf-8")
    save_file({"idf": np.ascontiguousarray(vectorizer.idf_, dtype=np.float64), **tensors}, str(folder / TENSORS))
    return {name: sha256_file(folder / name) for name in (VOCAB, TENSORS)}


def load_block(folder: Path, hashes: dict[str, str]):
    """A saved TF-IDF block, either kind (``lsa``: :class:`TfidfBlock`, ``stack``: :class:`TfidfStack`), after
    checking both files against the SHA-256 in config.json."""
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
    if doc.get("kind", "lsa") == "stack":
        return TfidfStack(vec, tensors["coef"], tensors["intercept"])
    return TfidfBlock(vec, tensors["components"])


class TfidfStack:
    """Stacking (Wolpert 1992): the decision score of a word 1-2-gram TF-IDF + logistic regression model, appended
    to a frozen sentence encoder's embedding, so one head weighs both views.

    Why beside :class:`TfidfBlock`: the SVD block keeps a dense (dim x vocabulary) matrix (165 MB for Matomo's
    136k n-grams, too big to ship) and squeezes out exactly the rare exact terms the hybrid is for; the stacked score
    keeps every n-gram at the cost of one coefficient each.  A training text's own score would be in-sample (the
    TF-IDF model has seen its label, so the head would learn to trust it too much): training texts get their
    out-of-fold scores (``folds``-fold, stratified) while the model trains, every other text the model fitted on
    all of them.  ``end_fit`` drops the out-of-fold table, so a fitted and a reloaded model score alike.
    """

    kind = "stack"

    def __init__(self, vectorizer, coef: np.ndarray, intercept: np.ndarray):
        self.vectorizer = vectorizer
        self.coef = np.ascontiguousarray(coef, dtype=np.float32)
        self.intercept = np.ascontiguousarray(intercept, dtype=np.float32).reshape(-1)
        self.oof: dict[str, np.ndarray] | None = None

    @property
    def dim(self) -> int:
        return int(self.coef.shape[0])

    @classmethod
    def fit(cls, texts: Sequence[str], labels: Sequence[str], seed: int, *, folds: int = 5,
            C: float = 1.0) -> "TfidfStack":
        from sklearn.linear_model import LogisticRegression
        from sklearn.model_selection import StratifiedKFold, cross_val_predict

        from ..errors import DataError

        texts, labels = list(texts), list(labels)
        counts = {lab: labels.count(lab) for lab in set(labels)}
        k = min(int(folds), min(counts.values()))
        if len(counts) < 2 or k < 2:
            raise DataError(f"stacked TF-IDF scores need at least two examples of each of two classes; the training "
                            f"part has {counts}", hint="drop --tfidf-stack, or add examples")
        vec = _vectorizer(len(texts))
        X = vec.fit_transform(texts)
        lr = LogisticRegression(C=C, class_weight="balanced", max_iter=3000)
        oof = cross_val_predict(lr, X, labels, cv=StratifiedKFold(k, shuffle=True, random_state=seed),
                                method="decision_function")
        lr.fit(X, labels)
        block = cls(vec, lr.coef_, lr.intercept_)
        block.oof = dict(zip(texts, np.asarray(oof, np.float32).reshape(len(texts), -1)))
        return block

    def transform(self, texts: Sequence[str]) -> np.ndarray:
        z = np.asarray(self.vectorizer.transform(list(texts)) @ self.coef.T, dtype=np.float32) + self.intercept
        if self.oof:
            for i, text in enumerate(texts):
                if text in self.oof:
                    z[i] = self.oof[text]
        return z

    def end_fit(self) -> None:
        self.oof = None

    def save(self, folder: Path) -> dict[str, str]:
        return _save(folder, self.vectorizer, self.kind, {"coef": self.coef, "intercept": self.intercept})
