"""``PairScorer``: how well two texts go together (a vulnerability description and the commit that fixes it, a
question and its answer), as a score in [0, 1] or a ranking of candidates, for every family:

- ``cross``: a transformer fine-tuned on both texts in one input (``[CLS] a [SEP] b [SEP]``): the most accurate,
  and the most costly (every pair is one forward pass), so used on short candidate lists or to rerank;
- ``bi``: each text encoded alone by a sentence encoder, frozen (``strategy="frozen"``) or contrastively tuned on the
  matching pairs (``strategy="contrastive"``: MultipleNegativesRankingLoss, every other pair of the batch is a
  negative), compared by cosine: candidates are encoded once, so it ranks thousands;
- ``word-vectors``: two pooled word-vector encodings combined as [u, v, |u-v|, u*v], then a classifier.

Cross and word-vector scorers are TextClassifiers over text pairs with labels "0"/"1" (the sequence-classification
task; the score is P("1")); the bi-encoder is a sentence encoder, tuned by sentence-transformers' own trainer
(not the TransferLab loop: its loss wants whole batches of pairs as in-batch negatives, which that trainer's
no-duplicates sampler provides).

    scorer = PairScorer("minilm", strategy="contrastive").fit(pairs, labels)
    scorer.rank(["heap overflow in Dequantize"], commit_messages)   # (1, n_candidates) scores
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from ..config import FROZEN_FEATURES, WORD_VECTORS
from ..data.records import Examples
from ..encoders.zoo import Resolved, check_same_encoder, resolve, sha256_file
from ..errors import ConfigError, DataError, ModelFileError
from .base import FORMAT, FORMAT_VERSION, Estimator, environment

TASK = "pair-scoring"


def _pairs(X) -> list[tuple[str, str]]:
    if isinstance(X, (str, bytes)):
        raise ConfigError("X must be a list of (text, text) pairs", hint="e.g. [('query', 'candidate')]")
    out = []
    for i, p in enumerate(X):
        if not isinstance(p, (tuple, list)) or len(p) != 2 or not all(isinstance(t, str) for t in p):
            raise DataError("a pair must be two texts", where=f"pair {i}", hint="give (text, text)")
        out.append((p[0], p[1]))
    return out


def _binary(y, n: int) -> list[str]:
    if y is None or len(y) != n:
        raise DataError(f"{n} pairs need {n} labels (1 = they match, 0 = they do not)")
    labels = []
    for i, v in enumerate(y):
        s = str(v).strip().lower()
        if s not in ("0", "1", "true", "false", "yes", "no", "match", "no-match"):
            raise DataError(f"pair label {v!r} is not a yes/no answer", where=f"pair {i}",
                            hint="use 1/0, true/false, yes/no or match/no-match")
        labels.append("1" if s in ("1", "true", "yes", "match") else "0")
    if len(set(labels)) < 2:
        raise DataError("pair labels are all the same", hint="a scorer learns from matching and non-matching pairs")
    return labels


class PairScorer(Estimator):
    task_name = TASK
    threshold_: float | None = None

    @property
    def kind(self) -> str:
        fam = self.model_config.family
        if fam == WORD_VECTORS:
            return "word-vectors"
        return "bi" if fam == FROZEN_FEATURES else "cross"

    def fit(self, X, y=None, *, validation=None, out_dir: str | Path | None = None) -> "PairScorer":
        pairs = _pairs(X)
        labels = _binary(y, len(pairs))
        mcfg, tcfg = self._resolve_configs()
        self.info_: dict = {"n_pairs": len(pairs), "n_matching": labels.count("1")}
        if self.kind == "bi":
            self._fit_bi(pairs, labels, mcfg, tcfg)
        else:
            from .classifier import TextClassifier

            self.classifier_ = TextClassifier(**{**self.get_params(), "positive": "1"})
            val = None
            if validation is not None:
                vp = _pairs(validation[0])
                val = Examples([a for a, _ in vp], _binary(validation[1], len(vp)), pairs=[b for _, b in vp])
            self.classifier_.fit(Examples([a for a, _ in pairs], labels, pairs=[b for _, b in pairs]),
                                 validation=val, out_dir=out_dir, save_model=False)
            self.info_["fit"] = self.classifier_.fit_info_
        if out_dir is not None:
            self.save(out_dir)
        return self

    def _fit_bi(self, pairs, labels, mcfg, tcfg) -> None:
        self.resolved_ = resolve(mcfg.encoder)
        self.encoder_ = self._load_encoder(self.resolved_)
        if mcfg.strategy != "contrastive":
            return  # frozen: nothing to learn; the threshold is chosen on validation pairs (choose_threshold)
        import tempfile

        from datasets import Dataset
        from sentence_transformers import SentenceTransformerTrainer, SentenceTransformerTrainingArguments
        from sentence_transformers.sentence_transformer.losses import MultipleNegativesRankingLoss
        from sentence_transformers.sentence_transformer.training_args import BatchSamplers

        positives = [p for p, lab in zip(pairs, labels) if lab == "1"]
        data = Dataset.from_dict({"anchor": [a for a, _ in positives], "positive": [b for _, b in positives]})
        model = self.encoder_.model
        with tempfile.TemporaryDirectory() as tmp:
            args = SentenceTransformerTrainingArguments(
                output_dir=tmp, num_train_epochs=mcfg.contrastive_epochs, learning_rate=mcfg.contrastive_lr,
                per_device_train_batch_size=mcfg.contrastive_batch_size, warmup_ratio=0.1, seed=tcfg.seed,
                batch_sampler=BatchSamplers.NO_DUPLICATES, save_strategy="no", report_to=[], logging_steps=10,
                use_cpu=not self.encoder_.model.device.type == "cuda")
            trainer = SentenceTransformerTrainer(model=model, args=args, train_dataset=data,
                                                 loss=MultipleNegativesRankingLoss(model))
            trainer.train()
            self.info_["history"] = [r for r in trainer.state.log_history if "loss" in r]
        model.eval()

    @classmethod
    def frozen(cls, encoder: str = "minilm", **params) -> "PairScorer":
        """A bi-encoder used as it is: nothing to fit (a threshold still wants validation pairs)."""
        scorer = cls(encoder, strategy="frozen", **params)
        scorer._resolve_configs()
        scorer.info_ = {}
        scorer.resolved_ = resolve(scorer.model_config.encoder)
        scorer.encoder_ = scorer._load_encoder(scorer.resolved_)
        return scorer

    def _load_encoder(self, resolved: Resolved):
        from ..encoders.sentence import SentenceEncoder

        cfg = self.model_config
        return SentenceEncoder(resolved, device=_device(self.device), max_length=cfg.max_length, use_cache=cfg.strategy != "contrastive",
                               trust_remote_code=cfg.trust_remote_code)

    # ------------------------------------------------------------------ scoring
    def predict_proba(self, X) -> np.ndarray:
        """Match score of each (a, b) pair: P(match) for cross and word-vector scorers, cosine for the bi-encoder
        (in [-1, 1], in practice [0, 1] for sentence encoders)."""
        pairs = _pairs(X)
        if not pairs:
            return np.zeros(0, np.float32)
        if self.kind == "bi":
            a = self._embed([p[0] for p in pairs])
            b = self._embed([p[1] for p in pairs])
            return (a * b).sum(1)
        proba = self.classifier_.predict_proba(pairs)
        return proba[:, self.classifier_.labels_.index("1")]

    def decision_function(self, X) -> np.ndarray:
        """Ranking score of each pair: cosine for the bi-encoder, the logit margin log P(match) - log P(no match)
        (before calibration) for cross and word-vector scorers.  It orders pairs as P(match) does but never ties
        where the probability saturates at 1.0 or an isotonic calibration is flat."""
        pairs = _pairs(X)
        if not pairs:
            return np.zeros(0, np.float32)
        if self.kind == "bi":
            return self.predict_proba(pairs)
        z = np.asarray(self.classifier_.decision_function(pairs), dtype=np.float64)
        labels = self.classifier_.labels_
        pos = labels.index("1")
        if getattr(self.classifier_, "multilabel_", False) or z.shape[1] == 1:
            return z[:, pos]
        return z[:, pos] - z[:, labels.index("0")]

    def predict(self, X) -> np.ndarray:
        if self.threshold_ is None:
            raise ConfigError("no threshold chosen yet", hint="call choose_threshold(validation pairs, labels)")
        return self.predict_proba(X) >= self.threshold_

    def rank(self, queries: Sequence[str], candidates: Sequence[str], *, batch_pairs: int = 4096) -> np.ndarray:
        """Scores (n_queries, n_candidates), higher ranks first (``decision_function``: cosine, or the cross and
        word-vector scorers' logit margin, which does not tie where P(match) saturates).  The bi-encoder embeds each
        text once; the others score every pair."""
        if self.kind == "bi":
            return self._embed(list(queries)) @ self._embed(list(candidates)).T
        flat = [(q, c) for q in queries for c in candidates]
        scores = np.concatenate([self.decision_function(flat[i : i + batch_pairs])
                                 for i in range(0, len(flat), batch_pairs)] or [np.zeros(0)])
        return scores.reshape(len(queries), len(candidates))

    def _embed(self, texts: list[str]) -> np.ndarray:
        v = self.encoder_.encode(texts, show_progress=len(texts) > 256)
        return v / np.clip(np.linalg.norm(v, axis=1, keepdims=True), 1e-12, None)

    def choose_threshold(self, X, y, *, rule: str = "f1") -> dict:
        """The decision threshold that maximises F1 on validation pairs (stored, used by predict)."""
        from ..evaluation.decision import choose_threshold, parse_threshold

        labels = np.asarray(_binary(y, len(_pairs(X)))) == "1"
        chosen = choose_threshold(labels, self.predict_proba(X), parse_threshold(rule), name="match")
        self.threshold_ = float(chosen["threshold"])
        self.info_["threshold"] = chosen
        return chosen

    # ------------------------------------------------------------------ persistence
    def save(self, path: str | Path) -> Path:
        from .backends import write_json

        folder = Path(path)
        folder.mkdir(parents=True, exist_ok=True)
        files: dict[str, str] = {}
        if self.kind == "bi":
            if self.model_config.strategy == "contrastive":
                self.encoder_.model.save(str(folder / "encoder"), safe_serialization=True)
                files["encoder/model.safetensors"] = sha256_file(folder / "encoder" / "model.safetensors")
            encoder = self.resolved_.to_dict()
        else:
            self.classifier_.save(folder / "classifier")
            files["classifier/config.json"] = sha256_file(folder / "classifier" / "config.json")
            encoder = self.classifier_.resolved_.to_dict()
        write_json(folder / "config.json", {
            "format": FORMAT, "format_version": FORMAT_VERSION, "task": TASK, "estimator": type(self).__name__,
            "kind": self.kind, "params": self.get_params(), "encoder": encoder, "threshold": self.threshold_,
            "info": self.info_, "weights": files, **environment()})
        return folder

    @classmethod
    def load(cls, path: str | Path, *, device: str = "auto", trust_remote_code: bool = False) -> "PairScorer":
        from .backends import read_json

        folder = Path(path)
        config = read_json(folder / "config.json", "this is not a saved TransferLab model",
                           hint="point at the folder given as --out when training")
        if config.get("format") != FORMAT or config.get("task") != TASK or config.get("format_version", 0) > FORMAT_VERSION:
            raise ModelFileError("not a saved pair scorer (or from a newer TransferLab)", where=str(folder))
        for rel, digest in config.get("weights", {}).items():
            if not (folder / rel).is_file() or sha256_file(folder / rel) != digest:
                raise ModelFileError(f"{rel} is missing, altered or corrupted (SHA-256 differs from config.json)",
                                     where=str(folder), hint="restore the folder or retrain")
        params = {**config["params"], "trust_remote_code": bool(trust_remote_code), "device": device}
        if config["params"].get("trust_remote_code") and not trust_remote_code:
            from ..encoders.zoo import TRUST_HINT

            raise ModelFileError("this folder asks to run code that ships with its encoder", where=str(folder),
                                 hint=TRUST_HINT)
        scorer = cls(**params)
        scorer._resolve_configs()
        scorer.threshold_, scorer.info_ = config.get("threshold"), config.get("info", {})
        if config["kind"] == "bi":
            saved = Resolved(**config["encoder"])
            if scorer.model_config.strategy == "contrastive":
                from ..encoders.zoo import TRANSFORMER

                scorer.resolved_ = Resolved(name=saved.name, family=TRANSFORMER, location=str(folder / "encoder"),
                                            local=True, sha256=config["weights"]["encoder/model.safetensors"])
            else:
                scorer.resolved_ = resolve(scorer.model_config.encoder)
                check_same_encoder(saved, scorer.resolved_)
            scorer.encoder_ = scorer._load_encoder(scorer.resolved_)
        else:
            from .classifier import TextClassifier

            scorer.classifier_ = TextClassifier.load(folder / "classifier", device=device,
                                                     trust_remote_code=trust_remote_code)
        return scorer


def _device(requested: str) -> str:
    from ..training.trainer import pick_device

    return pick_device(requested)

