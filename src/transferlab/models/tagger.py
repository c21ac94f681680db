"""``TokenTagger``: named-entity recognition (one IOB2 tag per word) for every family, on the shared estimator base.

    tagger = TokenTagger(encoder="glove-50d", crf=True, epochs=20)
    tagger.fit(read_conll("train.txt"), validation=read_conll("valid.txt"), out_dir="runs/ner")
    tagger.predict([["EU", "rejects", "German", "call"]])      # [["B-ORG", "O", "B-MISC", "O"]]
    tagger.predict_spans(["EU rejects German call"])           # [[{"start": 0, "end": 2, "label": "ORG", ...}]]
"""

from __future__ import annotations

import time
from dataclasses import asdict
from pathlib import Path

import numpy as np

from ..config import TOKENS
from ..data.tagged import TaggedSentences, spans_from_tags, tokenize_with_offsets
from ..encoders.zoo import resolve
from ..errors import ConfigError, DataError
from ..tasks.tokens import TokenClassification
from ..training.callbacks import CurvesPlot, EarlyStopping, MetricsFile
from ..training.trainer import Trainer, pick_device, run_batches
from .base import Estimator, saved_encoder, transfer_encoder, write_folder
from .tagging import make_tagging_backend, merge_windows


METRICS = ("f1", "precision", "recall", "token_accuracy")  # what validation reports; early stopping maximises one


def as_sentences(X, y=None) -> TaggedSentences:
    if isinstance(X, TaggedSentences):
        return X
    if isinstance(X, str) or (len(X) and isinstance(X[0], str)):
        raise ConfigError("X must be a list of sentences, each a list of words",
                          hint="wrap one sentence as [words]; for raw text use predict_spans")
    tokens = [list(map(str, s)) for s in X]
    if y is None:
        return TaggedSentences(tokens=tokens)
    tags = [list(t) for t in y]
    if len(tags) != len(tokens):
        raise DataError(f"{len(tokens)} sentences but {len(tags)} tag lists", hint="one tag list per sentence")
    from ..data.tagged import to_iob2

    for i, (toks, tg) in enumerate(zip(tokens, tags)):
        if not toks:
            raise DataError("an empty sentence cannot be tagged", where=f"sentence {i}", hint="drop it")
        if len(toks) != len(tg):
            raise DataError(f"{len(toks)} words but {len(tg)} tags", where=f"sentence {i}")
        try:
            to_iob2(tg, "iob2")
        except (DataError, ValueError) as exc:
            raise DataError(f"tags are not IOB2 ({exc})", where=f"sentence {i}",
                            hint="use O, B-TYPE and I-TYPE (read other schemes with read_conll, which converts)") from None
    return TaggedSentences(tokens=tokens, tags=tags)


class TokenTagger(Estimator):
    """One tag per word (IOB2), for word vectors (BiLSTM, optional CRF), fine-tuned or frozen transformers."""

    task_name = TOKENS
    tags_: list[str] | None = None
    history_: list[dict] = []
    fit_info_: dict = {}

    def fit(self, X, y=None, *, validation=None, out_dir: str | Path | None = None, data_info: dict | None = None,
            save_model: bool = True) -> "TokenTagger":
        train = as_sentences(X, y)
        if train.tags is None:
            raise DataError("training sentences have no tags", where=train.source)
        if not len(train):
            raise DataError("training data is empty", where=train.source)
        mcfg, tcfg = self._resolve_configs(TOKENS)
        if tcfg.metric.removeprefix("val_") not in METRICS:
            raise ConfigError(f"metric {tcfg.metric!r} is not one a tagger is judged by",
                              hint=f"choose one of {', '.join(METRICS)}")
        from .classifier import _seed_everything

        _seed_everything(tcfg.seed)
        if validation is not None:
            val = as_sentences(*validation) if isinstance(validation, tuple) else validation
        elif tcfg.validation_fraction > 0 and len(train) >= 10:
            order = np.random.default_rng(tcfg.seed).permutation(len(train))
            cut = max(1, int(len(train) * tcfg.validation_fraction))
            train, val = train.subset(sorted(order[cut:])), train.subset(sorted(order[:cut]))
        else:
            val = None
        self.tags_ = train.tag_names()
        if len(self.tags_) < 2:
            raise DataError("training data has no entity at all (every tag is O)", where=train.source,
                            hint="a tagger learns from tagged entities: check the tag column")
        self.task_ = TokenClassification(self.tags_)
        self.device_ = pick_device(tcfg.device)
        self.resolved_ = resolve(mcfg.encoder)
        self.backend_ = make_tagging_backend(mcfg, self.resolved_, self.device_)
        started = time.perf_counter()
        self.module_ = self.backend_.build(train, val, self.tags_, tcfg.seed)
        transferred = (transfer_encoder(self.module_, self.backend_, mcfg.init_from,
                                        trust_remote_code=mcfg.trust_remote_code) if mcfg.init_from else None)
        items = self.backend_.prepare(train)
        targets = self._item_targets(items, self.task_.targets(train))
        val_items = self.backend_.prepare(val) if val is not None and len(val) else None
        callbacks = [EarlyStopping(tcfg.metric, tcfg.patience)]
        if out_dir is not None:
            callbacks += [MetricsFile(Path(out_dir) / "metrics.jsonl"), CurvesPlot(Path(out_dir) / "curves.png")]
        trainer = Trainer(self.module_, self.backend_, self.task_, tcfg, callbacks=callbacks, device=self.device_,
                          evaluate=lambda it, gold: self.task_.validation_metrics(
                              self._scores(it, gold), gold, self.module_))
        self.history_ = trainer.fit(items, targets, val_items, val)
        self.module_ = trainer.module
        self.fit_info_ = {
            "train_seconds": round(time.perf_counter() - started, 2), "best": trainer.best,
            "n_train": len(train), "n_validation": len(val) if val is not None else 0,
            "n_train_windows": len(items), "scheme_read": train.scheme, "encoder_info": self.backend_.info,
            **({"init_from": transferred} if transferred else {}),
            "params_total": sum(p.numel() for p in self.module_.parameters())
            + self.backend_.info.get("encoder_params", 0),
            "params_trainable": sum(p.numel() for p in self.module_.parameters() if p.requires_grad),
            **(data_info or {}),
        }
        from ..training.distributed import is_main_process

        if out_dir is not None and save_model and is_main_process():  # data-parallel: one process writes
            self.save(out_dir)
        return self

    @staticmethod
    def _item_targets(items, sentence_targets):
        return [sentence_targets[it["_sentence"]][it["_start"] : it["_end"]] for it in items]

    def _scores(self, items, sentences: TaggedSentences, show_progress: bool = False) -> list[np.ndarray]:
        """Per-sentence word scores (n_words, tags)."""
        outputs: list[np.ndarray | None] = [None] * len(items)
        bs = self.train_config.eval_batch_size or 64
        for idx, batch, out in run_batches(self.module_, self.backend_, items, bs, self.device_, show_progress):
            out = out.float().cpu().numpy()
            for k, i in enumerate(idx):
                outputs[i] = out[k, : items[i]["_end"] - items[i]["_start"]]
        return merge_windows(items, outputs, len(sentences), [len(t) for t in sentences.tokens])

    def predict(self, X, *, show_progress: bool = False) -> list[list[str]]:
        """IOB2 tags for each sentence (a list of words).  A model trained with ``context`` reads neighbouring
        sentences: a plain list is one document in order; give TaggedSentences with ``documents`` to separate them."""
        self._check_fitted()
        sents = as_sentences(X)
        if not len(sents):
            return []
        return self.task_.decode(self._scores(self.backend_.prepare(sents), sents, show_progress), self.module_)

    def predict_spans(self, texts, *, show_progress: bool = False) -> list[list[dict]]:
        """Entities of raw texts, as {"start", "end", "label", "text"} with character offsets into each text."""
        if isinstance(texts, str):
            raise ConfigError("texts must be a list of strings", hint="wrap one text as [text]")
        words = [tokenize_with_offsets(t) for t in texts]
        # each text is its own document: a model trained with --context never reads one text as context of another
        tags = self.predict(TaggedSentences([[w for w, _, _ in ws] for ws in words], documents=list(range(len(texts)))),
                            show_progress=show_progress)
        return [spans_from_tags(tg, [(a, b) for _, a, b in ws], text) for tg, ws, text in zip(tags, words, texts)]

    def evaluate(self, sentences: TaggedSentences, *, show_progress: bool = False) -> dict:
        from ..evaluation.tagging import entity_report

        pred = self.predict(sentences, show_progress=show_progress)
        report = entity_report(list(sentences.tags), pred)
        report["predictions"] = pred
        return report

    def score(self, X, y=None) -> float:
        sents = as_sentences(X, y)
        from ..evaluation.tagging import entity_report

        return float(entity_report(list(sents.tags), self.predict(sents))["micro"]["f1"])

    def save(self, path: str | Path) -> Path:
        self._check_fitted()
        folder = Path(path)
        folder.mkdir(parents=True, exist_ok=True)
        self.backend_.save_files(folder, self.module_)
        write_folder(folder, self.backend_.state_dict(self.module_), {
            "task": self.task_name, "estimator": type(self).__name__, "family": self.model_config.family,
            "model": asdict(self.model_config), "train": asdict(self.train_config), "tags": self.tags_,
            "scheme": "iob2", "encoder": self.resolved_.to_dict(), "backend": self.backend_.info,
            "fit": self.fit_info_, "history": self.history_})
        return folder

    @classmethod
    def load(cls, path: str | Path, *, device: str = "auto", trust_remote_code: bool = False) -> "TokenTagger":
        from safetensors.torch import load_file

        folder = Path(path)
        tagger, config, weights = cls._saved(folder, trust_remote_code, TOKENS)
        mcfg = tagger.model_config_
        tagger.tags_ = config["tags"]
        tagger.task_ = TokenClassification(tagger.tags_)
        tagger.history_, tagger.fit_info_ = config.get("history", []), config.get("fit", {})
        tagger.device_ = pick_device(device)
        tagger.resolved_ = saved_encoder(config, mcfg)
        tagger.backend_ = make_tagging_backend(mcfg, tagger.resolved_, tagger.device_)
        tagger.module_ = tagger.backend_.restore(folder, tagger.tags_, config.get("backend", {}))
        tagger.module_.load_state_dict(load_file(str(weights)), strict=True)
        tagger.module_.to(tagger.device_).eval()
        return tagger
