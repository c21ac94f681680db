"""``TextClassifier``: one scikit-learn-style estimator over every family.

    clf = TextClassifier(encoder="glove-50d", head="cnn", epochs=5)
    clf.fit(train_examples, validation=val_examples, out_dir="runs/cnn")
    clf.predict(["A wonderful, moving film."])
    clf.save("runs/cnn"); TextClassifier.load("runs/cnn")

Constructor arguments are the configuration and nothing heavy happens in ``__init__``.
"""

from __future__ import annotations

import json
import platform
import time
import warnings
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

from .. import __version__
from ..config import ModelConfig, TrainConfig, split_kwargs
from ..data.records import Examples
from ..encoders.zoo import TRUST_HINT, check_same_encoder, resolve, sha256_file
from ..errors import ConfigError, DataError, ModelFileError
from ..training.callbacks import CurvesPlot, EarlyStopping, MetricsFile
from ..training.trainer import Trainer, last_linear, pick_device, predict_logits
from .backends import make_backend, read_json, write_json

FORMAT = "transferlab-model"
FORMAT_VERSION = 1
WEIGHTS = "model.safetensors"


def environment() -> dict:
    """Package versions and hardware, saved with every model and benchmark result."""
    import importlib.metadata as md

    versions = {"python": platform.python_version(), "transferlab": __version__}
    for pkg in ("torch", "transformers", "sentence-transformers", "peft", "accelerate", "scikit-learn", "numpy",
                "gensim", "safetensors"):
        try:
            versions[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            pass
    hardware = {"platform": platform.platform(), "processor": _cpu_name(),
                "cpu_count": __import__("os").cpu_count(), "torch_threads": torch.get_num_threads()}
    if torch.cuda.is_available():
        hardware["gpu"] = torch.cuda.get_device_name(0)
    return {"versions": versions, "hardware": hardware}


def _cpu_name() -> str:
    """The CPU model (``/proc/cpuinfo`` on Linux), else what ``platform`` knows."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def as_examples(X, y=None) -> Examples:
    if isinstance(X, Examples):
        return X
    if isinstance(X, str):
        raise ConfigError("X must be a list of texts, not one string", hint="wrap it: [text]")
    X = list(X)
    if X and isinstance(X[0], (tuple, list)):
        return Examples(texts=[a for a, _ in X], pairs=[b for _, b in X], labels=None if y is None else list(y),
                        multilabel=bool(y is not None and len(y) and isinstance(y[0], (list, tuple))))
    labels = None if y is None else [list(v) if isinstance(v, (list, tuple)) else str(v) for v in y]
    return Examples(texts=X, labels=labels, multilabel=bool(labels and isinstance(labels[0], list)))


class TextClassifier:
    def __init__(self, encoder: str = "glove-50d", head: str | None = None, strategy: str | None = None, **kwargs):
        model_kw, train_kw = split_kwargs(kwargs)
        self.model_config = ModelConfig(encoder=encoder, head=head, strategy=strategy, **model_kw)
        self.train_config = TrainConfig(**train_kw)
        self.labels_: list[str] | None = None
        self.multilabel_ = False
        self.history_: list[dict] = []
        self.fit_info_: dict = {}
        self.decision_: dict = {}

    # ------------------------------------------------------------------ scikit-learn surface
    def get_params(self, deep: bool = True) -> dict:
        return {**asdict(self.model_config), **asdict(self.train_config)}

    def fit(self, X, y=None, *, validation=None, out_dir: str | Path | None = None,
            data_info: dict | None = None, save_model: bool = True) -> "TextClassifier":
        """Train; with ``out_dir``, write metrics.jsonl and curves.png there, and the model unless ``save_model``
        is false (the benchmark keeps only the record)."""
        train = as_examples(X, y)
        if train.labels is None:
            raise DataError("training data has no labels", where=train.source, hint="name the label column")
        if len(train) == 0:
            raise DataError("training data is empty", where=train.source)
        mcfg = self.model_config.resolve_defaults()
        tcfg = self.train_config.resolve_defaults(mcfg)
        _seed_everything(tcfg.seed)
        if validation is not None:
            val = as_examples(*validation) if isinstance(validation, tuple) else validation
        elif tcfg.validation_fraction > 0:
            train, val = self._carve_validation(train, tcfg.validation_fraction, tcfg.seed)
        else:
            val = None
        self.labels_ = train.label_names()
        self.multilabel_ = train.multilabel
        if not train.multilabel and len(self.labels_) < 2:
            raise DataError(f"training data has one class only ({self.labels_[0]!r})", where=train.source,
                            hint="a classifier needs at least two classes")
        self.device_ = pick_device(tcfg.device)
        self.resolved_ = resolve(mcfg.encoder)
        self.backend_ = make_backend(mcfg, self.resolved_, self.device_)
        started = time.perf_counter()
        self.module_ = self.backend_.build(train, val, len(self.labels_), tcfg.seed)
        train_items, train_y = self.backend_.prepare(train), self._targets(train)
        val_items = self.backend_.prepare(val) if val is not None and len(val) else None
        val_y = self._targets(val, strict=False) if val_items else None
        from ..training.imbalance import ImbalanceLoss, check_label_counts, class_weights, sample_weights

        notes = check_label_counts(train_y, self.labels_, multilabel=self.multilabel_, where=train.source)
        if val_items:
            notes += self._check_validation_classes(val_y)
        weight = class_weights(train_y, self.labels_, tcfg.class_weight, multilabel=self.multilabel_)
        criterion = ImbalanceLoss(multilabel=self.multilabel_, weight=weight, kind=tcfg.loss, gamma=tcfg.focal_gamma,
                                  label_smoothing=tcfg.label_smoothing)
        draw = sample_weights(train_y, tcfg.sampler, multilabel=self.multilabel_)
        if mcfg.head_solver == "lbfgs":
            best = self._fit_lbfgs_head(mcfg, tcfg, train_items, train_y, weight, val_items, val_y, out_dir)
        else:
            callbacks = [EarlyStopping(tcfg.metric, tcfg.patience)]
            if out_dir is not None:
                out = Path(out_dir)
                callbacks += [MetricsFile(out / "metrics.jsonl"), CurvesPlot(out / "curves.png")]
            trainer = Trainer(self.module_, self.backend_, tcfg, multilabel=self.multilabel_,
                              evaluate=self._validation_metrics, callbacks=callbacks, device=self.device_,
                              criterion=criterion, draw=draw)
            self.history_ = trainer.fit(train_items, train_y, val_items, val_y)
            self.module_, best = trainer.module, trainer.best
        self.decision_ = self._fit_decision(tcfg, train_y, val_items, val_y)
        from ..data.splits import fingerprint

        self.fit_info_ = {
            "train_seconds": round(time.perf_counter() - started, 2), "best": best,
            "n_train": len(train), "n_validation": len(val) if val is not None else 0,
            "train_fingerprint": fingerprint(train), "encoder_info": self.backend_.info,
            # A frozen encoder lives outside the module but still costs its parameters at inference.
            "params_total": sum(p.numel() for p in self.module_.parameters())
            + self.backend_.info.get("encoder_params", 0),
            "params_trainable": sum(p.numel() for p in self.module_.parameters() if p.requires_grad),
            "class_weights": None if weight is None else dict(zip(self.labels_, map(float, weight))),
            "warnings": notes,
            **(data_info or {}),
        }
        if out_dir is not None and save_model:
            self.save(out_dir)
        return self

    def predict_proba(self, X, *, show_progress: bool = False) -> np.ndarray:
        self._check_fitted()
        ex = as_examples(X)
        if len(ex) == 0:
            return np.zeros((0, len(self.labels_)), dtype=np.float32)
        items = self.backend_.prepare(ex)
        logits = predict_logits(self.module_, self.backend_, items, self.train_config.eval_batch_size or 64,
                                self.device_, show_progress=show_progress)
        return self._proba(logits)

    def predict(self, X) -> list:
        return self.decode(self.predict_proba(X))

    def embed(self, X, *, with_proba: bool = False, show_progress: bool = False):
        """The model's own representation of each text: the input of its last linear layer (what the classifier
        sees), for any family.  Used by active learning to spread a batch over the pool.  ``with_proba`` also
        returns the (calibrated) probabilities from the same forward pass."""
        self._check_fitted()
        last = last_linear(self.module_)
        ex = as_examples(X)
        if len(ex) == 0:
            vec, proba = np.zeros((0, last.in_features), np.float32), np.zeros((0, len(self.labels_)), np.float32)
        else:
            logits, vec = predict_logits(self.module_, self.backend_, self.backend_.prepare(ex),
                                         self.train_config.eval_batch_size or 64, self.device_,
                                         show_progress=show_progress, features_of=last)
            proba = self._proba(logits)
        return (vec, proba) if with_proba else vec

    def decode(self, proba: np.ndarray) -> list:
        """Labels from (calibrated) probabilities, with the decision thresholds chosen at fit time."""
        from ..evaluation.decision import apply_decision

        return apply_decision(np.asarray(proba), self.labels_, self.decision_, multilabel=self.multilabel_)

    def _proba(self, logits: np.ndarray) -> np.ndarray:
        from ..evaluation.decision import calibrate

        return calibrate(logits, self.decision_.get("calibration"), self.labels_, multilabel=self.multilabel_)

    def score(self, X, y=None) -> float:
        ex = as_examples(X, y)
        return float(self.evaluate(ex)["accuracy"])

    def evaluate(self, examples: Examples, *, show_progress: bool = False) -> dict:
        from ..evaluation.metrics import classification_report

        self._check_known_labels(examples)
        proba = self.predict_proba(examples, show_progress=show_progress)
        report = classification_report(examples.labels, proba, self.labels_, multilabel=self.multilabel_,
                                       predictions=self.decode(proba), positive=self._positive())
        report["decision"] = self._decision_summary()
        return report

    def _positive(self) -> str | None:
        thr = self.decision_.get("threshold") or {}
        return thr.get("positive") or self.train_config.positive

    def _decision_summary(self) -> dict:
        cal = self.decision_.get("calibration") or {}
        thr = self.decision_.get("threshold") or {}
        summary = {"calibration": cal.get("method"), "temperature": cal.get("temperature")}
        if self.multilabel_ and thr:
            summary["thresholds"] = {lab: t["threshold"] for lab, t in thr["per_label"].items()}
        elif thr:
            summary.update(positive=thr["positive"], threshold=thr["threshold"], rule=thr["rule"])
        return summary

    def _check_validation_classes(self, val_y: np.ndarray) -> list[str]:
        present = (val_y.sum(axis=0) > 0) if self.multilabel_ else np.bincount(val_y[val_y >= 0],
                                                                              minlength=len(self.labels_)) > 0
        missing = [lab for lab, ok in zip(self.labels_, present) if not ok]
        if not missing:
            return []
        note = (f"class(es) {missing} have no validation example: early stopping, calibration and thresholds "
                "cannot judge them; use a stratified or larger validation part")
        warnings.warn(note, stacklevel=3)
        return [note]

    def _fit_lbfgs_head(self, mcfg, tcfg, train_items, train_y, weight, val_items, val_y, out_dir) -> dict:
        """The head as scikit-learn's L2 logistic regression, solved to convergence (training/logistic.py); the
        one-record history keeps metrics.jsonl and the report's shape."""
        from ..training.logistic import fit_logistic_head

        started = time.perf_counter()
        fit = fit_logistic_head(self.module_, self.backend_, train_items, train_y, C=mcfg.head_c, weight=weight,
                                multilabel=self.multilabel_, device=self.device_,
                                batch_size=tcfg.eval_batch_size)
        if not fit["converged"]:
            warnings.warn(f"the logistic-regression head did not converge: {fit['warning']}", stacklevel=3)
        record = {"epoch": 1, "step": fit["iterations"], "solver": "lbfgs", "C": mcfg.head_c}
        if val_items:
            record.update({f"val_{k}": v for k, v in self._validation_metrics(val_items, val_y).items()})
        record["seconds"] = round(time.perf_counter() - started, 2)
        self.history_ = [record]
        if out_dir is not None:
            Path(out_dir).mkdir(parents=True, exist_ok=True)
            (Path(out_dir) / "metrics.jsonl").write_text(json.dumps(record) + "\n", encoding="utf-8")
        return {**fit, **{k: v for k, v in record.items() if k.startswith("val_")}}

    def _fit_decision(self, tcfg: TrainConfig, train_y: np.ndarray, val_items, val_y) -> dict:
        """Calibrate on validation data, then choose thresholds on the calibrated scores (both stored)."""
        from ..evaluation import decision as dec

        rule = dec.parse_threshold(tcfg.threshold)
        if tcfg.positive is not None and tcfg.positive not in self.labels_:
            raise ConfigError(f"positive class {tcfg.positive!r} is not a training label",
                              hint=f"labels are {self.labels_}")
        if tcfg.calibration is None and rule is None:
            return {}
        if not val_items and (tcfg.calibration or rule.kind != "fixed"):
            raise ConfigError("calibration and threshold rules are fitted on validation data, and there is none",
                              hint="give a validation part (a split with validation, or --validation-fraction), "
                                   "or a fixed --threshold")
        k = len(self.labels_)
        if val_items:
            logits = predict_logits(self.module_, self.backend_, val_items, tcfg.eval_batch_size, self.device_)
        else:  # only a fixed threshold gets here: it is described on no data
            logits, val_y = np.zeros((0, k), np.float32), np.zeros((0, k) if self.multilabel_ else 0, np.int64)
        keep = np.ones(len(val_y), bool) if self.multilabel_ else val_y >= 0  # -100: a label training lacked
        out: dict = {}
        if tcfg.calibration == "temperature":
            out["calibration"] = {"method": "temperature", "fitted_on": "validation",
                                  "temperature": dec.fit_temperature(logits, val_y, multilabel=self.multilabel_)}
        elif tcfg.calibration == "isotonic":
            raw = dec.calibrate(logits[keep], None, self.labels_, multilabel=self.multilabel_)
            out["calibration"] = {"method": "isotonic", "fitted_on": "validation",
                                  "maps": dec.fit_isotonic(raw, val_y[keep], self.labels_,
                                                           multilabel=self.multilabel_)}
        if rule is None:
            return out
        self.decision_ = out
        proba = self._proba(logits[keep])
        if self.multilabel_:
            out["threshold"] = {"rule": str(rule), "per_label": {
                lab: dec.choose_threshold(val_y[:, j], proba[:, j], rule, name=lab)
                for j, lab in enumerate(self.labels_)}}
            return out
        positive = tcfg.positive
        if positive is None:
            if k != 2:
                raise ConfigError(f"a decision threshold for {k} classes needs the class it applies to",
                                  hint="name it with --positive LABEL")
            positive = dec.default_positive(self.labels_, train_y)
        j = self.labels_.index(positive)
        out["threshold"] = {"positive": positive,
                            **dec.choose_threshold(val_y[keep] == j, proba[:, j], rule, name=positive)}
        return out

    def _check_known_labels(self, ex: Examples) -> None:
        """Before predicting: a label the model never saw is named with the file and its first row."""
        self._check_fitted()
        known = set(self.labels_)
        rows = [[lab] if isinstance(lab, str) else list(lab) for lab in (ex.labels or [])]
        bad = [i for i, row in enumerate(rows) if not known.issuperset(row)]
        if bad:
            unseen = sorted({lab for i in bad for lab in rows[i] if lab not in known}, key=str)
            raise DataError(f"{len(bad)} row(s) carry label(s) the model was never trained on: "
                            f"{', '.join(map(repr, unseen))} (first at {ex.origins[bad[0]]})", where=ex.source,
                            hint=f"the model knows {self.labels_}; relabel or drop those rows, or retrain")

    # ------------------------------------------------------------------ internals
    @staticmethod
    def _carve_validation(train: Examples, frac: float, seed: int) -> tuple[Examples, Examples]:
        from ..data.splits import split_examples

        parts = split_examples(train, f"stratified:{1 - frac},{frac},0", seed=seed)
        return parts["train"], parts["validation"]

    def _targets(self, ex: Examples, strict: bool = True) -> np.ndarray:
        index = {lab: i for i, lab in enumerate(self.labels_)}
        if self.multilabel_:
            y = np.zeros((len(ex), len(index)), dtype=np.float32)
            for i, labs in enumerate(ex.labels):
                for lab in labs:
                    if lab in index:
                        y[i, index[lab]] = 1.0
            return y
        unseen = sorted({lab for lab in ex.labels if lab not in index})
        if unseen and strict:
            raise DataError(f"label(s) {unseen} not seen in training", where=ex.source)
        # A validation label the training part lacks cannot be learned; it counts as wrong (-100 is ignored by loss).
        return np.asarray([index.get(lab, -100) for lab in ex.labels], dtype=np.int64)

    def _validation_metrics(self, items, targets) -> dict:
        from ..evaluation.decision import calibrate
        from ..evaluation.metrics import classification_report
        from ..training.imbalance import ImbalanceLoss

        logits = predict_logits(self.module_, self.backend_, items, self.train_config.eval_batch_size,
                                self.device_)
        t = torch.as_tensor(targets)
        keep = t >= 0 if not self.multilabel_ else torch.ones(len(t), dtype=torch.bool)
        # the plain (unweighted) loss, so validation curves compare across loss settings
        val_loss = float(ImbalanceLoss(multilabel=self.multilabel_)(torch.from_numpy(logits)[keep], t[keep]))
        # early stopping sees raw scores: nothing is fitted yet
        proba = calibrate(logits, None, self.labels_, multilabel=self.multilabel_)
        if self.multilabel_:
            y_true = [[self.labels_[j] for j in np.flatnonzero(row)] for row in targets]
        else:
            y_true = [self.labels_[j] for j in targets[keep.numpy()]]
            proba = proba[keep.numpy()]
        report = classification_report(y_true, proba, self.labels_, multilabel=self.multilabel_)
        out = {"loss": val_loss}
        for k in ("accuracy", "macro_f1", "micro_f1", "roc_auc", "pr_auc"):
            if isinstance(report.get(k), (int, float)):
                out[k] = report[k]
        return out

    def _check_fitted(self) -> None:
        if getattr(self, "module_", None) is None:
            raise ConfigError("this TextClassifier is not fitted yet", hint="call fit() or TextClassifier.load()")

    # ------------------------------------------------------------------ persistence
    def save(self, path: str | Path) -> Path:
        self._check_fitted()
        from safetensors.torch import save_file

        folder = Path(path)
        folder.mkdir(parents=True, exist_ok=True)
        state = {k: v.detach().cpu().contiguous() for k, v in self.backend_.state_dict(self.module_).items()}
        save_file(state, str(folder / WEIGHTS), metadata={"format": FORMAT})
        self.backend_.save_files(folder, self.module_)
        config = {
            "format": FORMAT, "format_version": FORMAT_VERSION, "family": self.model_config.family,
            "model": asdict(self.model_config), "train": asdict(self.train_config),
            "labels": self.labels_, "multilabel": self.multilabel_, "encoder": self.resolved_.to_dict(),
            "backend": self.backend_.info, "fit": self.fit_info_, "history": self.history_,
            "decision": self.decision_,
            "weights": {WEIGHTS: sha256_file(folder / WEIGHTS)}, **environment(),
        }
        write_json(folder / "config.json", config)
        return folder

    @classmethod
    def load(cls, path: str | Path, *, device: str = "auto", trust_remote_code: bool = False) -> "TextClassifier":
        """Load a saved model.  Code shipped with it (or with its encoder) runs only when the caller passes
        ``trust_remote_code=True``; the folder's own config.json cannot switch that on."""
        from safetensors.torch import load_file

        folder = Path(path)
        cfg_file = folder / "config.json"
        config = read_json(cfg_file, "this is not a saved TransferLab model",
                           hint="point at the folder given as --out when training")
        if config.get("format") != FORMAT or config.get("format_version", 0) > FORMAT_VERSION:
            raise ModelFileError("unknown model format or a newer version", where=str(cfg_file),
                                 hint="upgrade transferlab")
        weights = folder / WEIGHTS
        if not weights.exists():
            raise ModelFileError(f"{WEIGHTS} is missing", where=str(folder), hint="copy the whole model folder")
        expected = config["weights"][WEIGHTS]
        if sha256_file(weights) != expected:
            raise ModelFileError(f"{WEIGHTS} was altered or corrupted (SHA-256 differs from config.json)",
                                 where=str(weights), hint="restore the file from the original run or retrain")
        if config.get("model", {}).get("trust_remote_code") and not trust_remote_code:
            raise ModelFileError("this model folder asks to run code that ships with its encoder (trust_remote_code "
                                 "in its config.json), and TransferLab runs no folder's code unless you say so",
                                 where=str(folder), hint=TRUST_HINT)
        clf = cls(**{**config["model"], **config["train"], "trust_remote_code": bool(trust_remote_code)})
        clf.model_config.resolve_defaults()
        clf.labels_, clf.multilabel_ = config["labels"], config["multilabel"]
        clf.history_, clf.fit_info_ = config.get("history", []), config.get("fit", {})
        clf.decision_ = config.get("decision") or {}
        clf.device_ = pick_device(device)
        from ..encoders.zoo import Resolved

        saved = Resolved(**config["encoder"])
        # A frozen encoder is not inside the folder: resolve it again and insist it is the same weights.
        # (A contrastively tuned encoder is inside the folder, checked by its own SHA-256.)
        reresolve = clf.model_config.family == "frozen-features" and clf.model_config.strategy != "contrastive"
        clf.resolved_ = resolve(clf.model_config.encoder) if reresolve else saved
        if reresolve:
            check_same_encoder(saved, clf.resolved_)
        clf.backend_ = make_backend(clf.model_config, clf.resolved_, clf.device_)
        clf.module_ = clf.backend_.restore(folder, len(clf.labels_), config.get("backend", {}))
        clf.module_.load_state_dict(load_file(str(weights)), strict=True)
        clf.module_.to(clf.device_).eval()
        return clf


def _seed_everything(seed: int) -> None:
    from transformers import set_seed

    set_seed(seed)
