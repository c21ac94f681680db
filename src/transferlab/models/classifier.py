"""``TextClassifier``: one scikit-learn-style estimator over every family.

    clf = TextClassifier(encoder="glove-50d", head="cnn", epochs=5)
    clf.fit(train_examples, validation=val_examples, out_dir="runs/cnn")
    clf.predict(["A wonderful, moving film."])
    clf.save("runs/cnn"); TextClassifier.load("runs/cnn")

Constructor arguments are the configuration and nothing heavy happens in ``__init__``.
"""

from __future__ import annotations

import json
import time
import warnings
from dataclasses import asdict
from pathlib import Path

import numpy as np

from ..config import FROZEN_FEATURES, TrainConfig
from ..data.records import Examples
from ..encoders.zoo import resolve
from ..errors import ConfigError, DataError
from ..tasks.classification import SequenceClassification
from ..training.callbacks import CurvesPlot, EarlyStopping, MetricsFile
from ..training.trainer import Trainer, last_linear, pick_device, predict_logits
from .backends import make_backend
from .base import Estimator, saved_encoder, transfer_encoder, write_folder


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


class TextClassifier(Estimator):
    """One label (or a set of labels) per text or text pair, for every family."""

    task_name = "classification"
    labels_: list[str] | None = None
    multilabel_ = False
    history_: list[dict] = []
    fit_info_: dict = {}
    decision_: dict = {}

    def fit(self, X, y=None, *, validation=None, out_dir: str | Path | None = None,
            data_info: dict | None = None, save_model: bool = True, teacher=None, unlabelled=None) -> "TextClassifier":
        """Train; with ``out_dir``, write metrics.jsonl and curves.png there, and the model unless ``save_model``
        is false (the benchmark keeps only the record).

        With ``teacher`` (a fitted TextClassifier of any family, or a list of them: their softened probabilities
        are averaged) the model is trained as a student (knowledge distillation, tasks/distill.py; temperature and
        weight are ``kd_temperature``/``kd_alpha``), on the labelled data and on ``unlabelled`` texts (the teacher
        labels them; any that is also a validation text is dropped and counted)."""
        train = as_examples(X, y)
        if train.labels is None:
            raise DataError("training data has no labels", where=train.source, hint="name the label column")
        if len(train) == 0:
            raise DataError("training data is empty", where=train.source)
        mcfg, tcfg = self._resolve_configs()
        from ..training.distributed import is_main_process, world

        if world()[1] > 1 and mcfg.family == FROZEN_FEATURES:
            raise ConfigError("several processes train the fine-tuning loop (transformers, word vectors); a head on "
                              "frozen embeddings trains in seconds in one", hint="drop --processes")
        _seed_everything(tcfg.seed)
        oof = None
        if tcfg.cv_folds:
            if teacher is not None:
                raise ConfigError("cross-validated decisions and distillation do not combine", hint="drop --cv")
            if validation is not None:  # the folds cover training and validation data alike
                train = Examples.concat(train, as_examples(*validation) if isinstance(validation, tuple)
                                        else validation)
            oof = self._out_of_fold(train, tcfg)
            val = None  # the decisions come from the out-of-fold scores; the model trains on everything
        elif validation is not None:
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
        student = self._student_data(teacher, unlabelled, train, val, mcfg, tcfg) if teacher is not None else None
        self.module_ = self.backend_.build(student["build"] if student else train, val, len(self.labels_), tcfg.seed)
        transferred = (transfer_encoder(self.module_, self.backend_, mcfg.init_from,
                                        trust_remote_code=mcfg.trust_remote_code) if mcfg.init_from else None)
        self.task_ = SequenceClassification(self.labels_, self.multilabel_)
        train_items, train_y = self.backend_.prepare(train), self.task_.targets(train)
        loop_items, loop_y = train_items, train_y
        if student is not None:
            from ..tasks.distill import Distillation

            self.task_ = Distillation(self.labels_, temperature=tcfg.kd_temperature, alpha=tcfg.kd_alpha)
            loop_items = train_items + self.backend_.prepare(student["unlabelled"]) if len(student["unlabelled"]) \
                else train_items
            hard = np.concatenate([train_y, np.full(len(student["unlabelled"]), -100, np.int64)])
            loop_y = self.task_.soft_targets(hard, student["soft"])
        val_items = self.backend_.prepare(val) if val is not None and len(val) else None
        val_y = self.task_.targets(val, strict=False) if val_items else None
        from ..training.imbalance import ImbalanceLoss, check_label_counts, class_weights, sample_weights

        notes = check_label_counts(train_y, self.labels_, multilabel=self.multilabel_, where=train.source)
        if val_items:
            notes += self._check_validation_classes(val_y)
        weight = class_weights(train_y, self.labels_, tcfg.class_weight, multilabel=self.multilabel_)
        self.task_.criterion = ImbalanceLoss(multilabel=self.multilabel_, weight=weight, kind=tcfg.loss,
                                             gamma=tcfg.focal_gamma, label_smoothing=tcfg.label_smoothing)
        draw = sample_weights(train_y, tcfg.sampler, multilabel=self.multilabel_)
        if student is not None and (draw is not None or tcfg.loss != "ce" or weight is not None):
            raise ConfigError("a student learns from its teacher with plain cross-entropy on the hard labels",
                              hint="drop --sampler, --loss and --class-weight when distilling")
        if student is not None and mcfg.head_solver == "lbfgs":
            raise ConfigError("the L-BFGS head fits hard labels in closed form: it cannot learn from a teacher",
                              hint="use --head-solver adamw for a frozen-encoder student")
        if mcfg.head_solver == "lbfgs":
            best = self._fit_lbfgs_head(mcfg, tcfg, train_items, train_y, weight, val_items, val_y, out_dir)
        else:
            callbacks = [EarlyStopping(tcfg.metric, tcfg.patience)]
            if out_dir is not None:
                out = Path(out_dir)
                callbacks += [MetricsFile(out / "metrics.jsonl"), CurvesPlot(out / "curves.png")]
            trainer = Trainer(self.module_, self.backend_, self.task_, tcfg, evaluate=self._validation_metrics,
                              callbacks=callbacks, device=self.device_, draw=draw)
            self.history_ = trainer.fit(loop_items, loop_y, val_items, val_y)
            self.module_, best = trainer.module, trainer.best
        self.backend_.end_fit()
        if oof is not None:
            self.decision_ = self._fit_decision(tcfg, train_y, None, oof["targets"], logits=oof["logits"])
            if self.decision_:
                where = f"out-of-fold scores, {tcfg.cv_folds}-fold cross-validation"
                self.decision_["fitted_on"] = where
                if self.decision_.get("calibration"):
                    self.decision_["calibration"]["fitted_on"] = where
                self.decision_["cv"] = self._cv_summary(oof)
        else:
            self._warn_few_positives(tcfg, val_y)
            self.decision_ = self._fit_decision(tcfg, train_y, val_items, val_y)
        from ..data.splits import fingerprint

        self.fit_info_ = {
            "train_seconds": round(time.perf_counter() - started, 2), "processes": world()[1], "best": best,
            "n_train": len(train), "n_validation": len(val) if val is not None else 0,
            "train_fingerprint": fingerprint(train), "encoder_info": self.backend_.info,
            # A frozen encoder lives outside the module but still costs its parameters at inference.
            "params_total": sum(p.numel() for p in self.module_.parameters())
            + self.backend_.info.get("encoder_params", 0),
            "params_trainable": sum(p.numel() for p in self.module_.parameters() if p.requires_grad),
            "class_weights": None if weight is None else dict(zip(self.labels_, map(float, weight))),
            "warnings": notes,
            **({"distillation": student["info"]} if student is not None else {}),
            **({"init_from": transferred} if transferred else {}),
            **(data_info or {}),
        }
        if student is not None:  # trained: from here on it is a classifier like any other
            self.task_ = SequenceClassification(self.labels_, self.multilabel_)
        if out_dir is not None and save_model and is_main_process():  # data-parallel: one process writes
            self.save(out_dir)
        return self

    def predict_proba(self, X, *, show_progress: bool = False) -> np.ndarray:
        self._check_fitted()
        ex = as_examples(X)
        if len(ex) == 0:
            return np.zeros((0, len(self.labels_)), dtype=np.float32)
        return self._proba(self.decision_function(ex, show_progress=show_progress))

    def decision_function(self, X, *, show_progress: bool = False) -> np.ndarray:
        """Raw scores (n_texts, n_labels): the logits before softmax/sigmoid and before any calibration.  Use them
        to rank: probabilities saturate at 1.0 in float32 (a logit margin of ~17 already does) and an isotonic
        calibration is piecewise constant, so both tie where the logits still order the texts."""
        self._check_fitted()
        ex = as_examples(X)
        if len(ex) == 0:
            return np.zeros((0, len(self.labels_)), dtype=np.float32)
        # An exported ONNX graph (runtime/onnx.py) when one was attached at load, else the PyTorch network.
        network = getattr(self, "runtime_", None) or self.module_
        return predict_logits(network, self.backend_, self.backend_.prepare(ex),
                              self.train_config.eval_batch_size or 64, self.device_, show_progress=show_progress)

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

    def evaluate(self, examples: Examples, *, show_progress: bool = False, slices=None) -> dict:
        """Metrics on labelled examples; ``slices`` (specs like ``short=length:-100`` or Slice objects, see
        evaluation/slices.py) adds each slice's size, accuracy and macro F1 with 95% intervals beside the whole."""
        from ..evaluation.metrics import classification_report
        from ..evaluation.slices import parse_slices, slice_report

        wanted = parse_slices(slices)
        examples = as_examples(*examples) if isinstance(examples, tuple) else as_examples(examples)
        self._check_known_labels(examples)
        proba = self.predict_proba(examples, show_progress=show_progress)
        predictions = self.decode(proba)
        report = classification_report(examples.labels, proba, self.labels_, multilabel=self.multilabel_,
                                       predictions=predictions, positive=self._positive())
        report["decision"] = self._decision_summary()
        if wanted:
            if self.multilabel_:
                raise ConfigError("slices are reported for single-label models", hint="drop --slice")
            report["slices"] = slice_report(examples.texts, examples.columns, examples.labels, predictions,
                                            self.labels_, wanted)
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

    def _out_of_fold(self, data: Examples, tcfg: TrainConfig) -> dict:
        """Raw scores of every example from a model that did not train on it (stratified K-fold; each fold model
        trains its fixed epochs, nothing held out for early stopping), with the fold of each example."""
        from sklearn.base import clone
        from sklearn.model_selection import StratifiedKFold

        k = int(tcfg.cv_folds)
        if k < 2:
            raise ConfigError(f"--cv needs at least 2 folds, got {k}", hint="e.g. --cv 5")
        if data.multilabel:
            raise ConfigError("cross-validated decisions are for single-label data", hint="drop --cv")
        labels = data.label_names()
        counts = {lab: data.labels.count(lab) for lab in labels}
        short = {lab: n for lab, n in counts.items() if n < k}
        if short:
            raise DataError(f"--cv {k} needs at least {k} examples of every class; {short} have fewer",
                            where=data.source, hint="use fewer folds, or label more examples of those classes")
        y = np.array([labels.index(lab) for lab in data.labels])
        logits = np.zeros((len(data), len(labels)), np.float32)
        fold_of = np.zeros(len(data), int)
        splitter = StratifiedKFold(n_splits=k, shuffle=True, random_state=tcfg.seed)
        for fold, (tr, te) in enumerate(splitter.split(np.zeros(len(y)), y)):
            model = clone(self).set_params(cv_folds=None, threshold=None, calibration=None, validation_fraction=0.0,
                                           patience=None)
            model.fit(data.subset(tr))
            z = model.decision_function(data.subset(te))
            logits[te] = z[:, [model.labels_.index(lab) for lab in labels]]
            fold_of[te] = fold
        return {"logits": logits, "targets": y, "fold": fold_of, "labels": labels}

    def _cv_summary(self, oof: dict) -> dict:
        """Per fold, at the stored decision: recall, precision and false-positive rate of the positive class (or
        accuracy), as mean and standard deviation across folds."""
        pred = np.array([self.labels_.index(lab) for lab in self.decode(self._proba(oof["logits"]))])
        y, folds = oof["targets"], oof["fold"]
        positive = (self.decision_.get("threshold") or {}).get("positive")
        per: dict[str, list[float]] = {}
        for f in np.unique(folds):
            m = folds == f
            if positive is None:
                per.setdefault("accuracy", []).append(float(np.mean(pred[m] == y[m])))
                continue
            j = self.labels_.index(positive)
            pos, called = y[m] == j, pred[m] == j
            per.setdefault("recall", []).append(float((pos & called).sum() / max(pos.sum(), 1)))
            per.setdefault("precision", []).append(float((pos & called).sum() / max(called.sum(), 1)))
            per.setdefault("fpr", []).append(float((~pos & called).sum() / max((~pos).sum(), 1)))
        return {"folds": int(len(np.unique(folds))),
                **{k: {"mean": float(np.mean(v)), "sd": float(np.std(v, ddof=1)) if len(v) > 1 else 0.0}
                   for k, v in per.items()}}

    def _warn_few_positives(self, tcfg: TrainConfig, val_y) -> None:
        from ..evaluation.decision import FEW_POSITIVES

        if (tcfg.threshold is None and tcfg.calibration is None) or val_y is None or self.multilabel_:
            return
        counts = np.bincount(val_y[val_y >= 0], minlength=len(self.labels_))
        j = int(np.argmin(counts))
        if counts[j] < FEW_POSITIVES:
            warnings.warn(f"the validation part holds only {counts[j]} example(s) of {self.labels_[j]!r}: a threshold "
                          "or calibration fitted on so few follows the draw of that part; --cv 5 (cv_folds=5) fits "
                          "them on out-of-fold scores of all the training data instead", stacklevel=3)

    def _fit_decision(self, tcfg: TrainConfig, train_y: np.ndarray, val_items, val_y, *, logits=None) -> dict:
        """Calibrate on validation data (or on given out-of-fold ``logits``), then choose thresholds on the calibrated
        scores (both stored)."""
        from ..evaluation import decision as dec

        rule = dec.parse_threshold(tcfg.threshold)
        if tcfg.positive is not None and tcfg.positive not in self.labels_:
            raise ConfigError(f"positive class {tcfg.positive!r} is not a training label",
                              hint=f"labels are {self.labels_}")
        if tcfg.calibration is None and rule is None:
            return {}
        if not val_items and logits is None and (tcfg.calibration or rule.kind != "fixed"):
            raise ConfigError("calibration and threshold rules are fitted on validation data, and there is none",
                              hint="give a validation part (a split with validation, or --validation-fraction), "
                                   "or a fixed --threshold")
        k = len(self.labels_)
        if logits is not None:
            pass  # out-of-fold scores, in this model's label order
        elif val_items:
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
    def _student_data(self, teacher, unlabelled, train: Examples, val: Examples | None, mcfg, tcfg) -> dict:
        """What a student trains on: the teacher's softened probabilities for the training texts and for the
        unlabelled ones (never a validation text: those are dropped and counted)."""
        from ..tasks.distill import teacher_probabilities

        if self.multilabel_:
            raise ConfigError("distillation here is for single-label students")
        if mcfg.strategy == "contrastive":
            raise ConfigError("a contrastive student tunes its encoder on label pairs before any teacher could help",
                              hint="use --strategy frozen or finetune for the student")
        unl = as_examples([] if unlabelled is None else unlabelled)
        if len(unl) and unl.is_pair != train.is_pair:
            raise DataError("unlabelled data must be pairs exactly when the training data is",
                            where=unl.source)
        held_out = set(zip(val.texts, val.pairs or [None] * len(val))) if val is not None else set()
        keep = [i for i in range(len(unl)) if (unl.texts[i], (unl.pairs or [None] * len(unl))[i]) not in held_out
                and unl.texts[i].strip()]
        dropped = len(unl) - len(keep)
        unl = Examples([unl.texts[i] for i in keep], None, pairs=None if unl.pairs is None else
                       [unl.pairs[i] for i in keep], source=unl.source)
        teachers = teacher if isinstance(teacher, (list, tuple)) else [teacher]
        # the texts the student's vocabulary is built from and the teacher scores; the unlabelled part's label
        # slot holds a placeholder that nothing reads (the loss sees -100 there, see below)
        both = Examples.concat(train, Examples(unl.texts, [self.labels_[0]] * len(unl), pairs=unl.pairs,
                                               source=unl.source)) if len(unl) else train
        soft = teacher_probabilities(teachers, both, self.labels_, tcfg.kd_temperature)
        info = {"teachers": [f"{t.model_config.encoder} ({t.model_config.family})" for t in teachers],
                "temperature": tcfg.kd_temperature, "alpha": tcfg.kd_alpha, "n_unlabelled": len(unl),
                "n_unlabelled_dropped": dropped}
        if dropped:
            warnings.warn(f"{dropped} unlabelled text(s) were empty or also validation texts and were left out",
                          stacklevel=3)
        return {"soft": soft, "unlabelled": unl, "build": both, "info": info}

    @staticmethod
    def _carve_validation(train: Examples, frac: float, seed: int) -> tuple[Examples, Examples]:
        from ..data.splits import split_examples

        parts = split_examples(train, f"stratified:{1 - frac},{frac},0", seed=seed)
        return parts["train"], parts["validation"]

    def _validation_metrics(self, items, targets) -> dict:
        logits = predict_logits(self.module_, self.backend_, items, self.train_config.eval_batch_size,
                                self.device_)
        return self.task_.validation_metrics(logits, targets)

    # ------------------------------------------------------------------ persistence
    def save(self, path: str | Path) -> Path:
        self._check_fitted()
        folder = Path(path)
        folder.mkdir(parents=True, exist_ok=True)
        state = self.backend_.state_dict(self.module_)
        self.backend_.save_files(folder, self.module_)
        write_folder(folder, state, {
            "task": self.task_name, "estimator": type(self).__name__, "family": self.model_config.family,
            "model": asdict(self.model_config), "train": asdict(self.train_config),
            "labels": self.labels_, "multilabel": self.multilabel_, "encoder": self.resolved_.to_dict(),
            "backend": self.backend_.info, "fit": self.fit_info_, "history": self.history_,
            "decision": self.decision_})
        return folder

    @classmethod
    def load(cls, path: str | Path, *, device: str = "auto", trust_remote_code: bool = False,
             runtime: str = "auto") -> "TextClassifier":
        """Load a saved model (format 1 or 2).  Code shipped with it (or with its encoder) runs only when the caller
        passes ``trust_remote_code=True``; the folder's own config.json cannot switch that on.

        ``runtime``: ``auto`` scores with the fastest runtime the folder's export checked (``transferlab export``: an
        ONNX graph, or PyTorch in bf16) that runs here, else float32 PyTorch; ``onnx`` insists on a
        checked graph; ``bf16`` uses PyTorch in bf16 where it is native; ``torch`` is float32 PyTorch.
        Embeddings (:meth:`embed`) always come from the PyTorch network."""
        from ..runtime.onnx import attach

        from safetensors.torch import load_file

        folder = Path(path)
        clf, config, weights = cls._saved(folder, trust_remote_code)
        mcfg = clf.model_config_
        clf.labels_, clf.multilabel_ = config["labels"], config["multilabel"]
        clf.task_ = SequenceClassification(clf.labels_, clf.multilabel_)
        clf.history_, clf.fit_info_ = config.get("history", []), config.get("fit", {})
        clf.decision_ = config.get("decision") or {}
        clf.device_ = pick_device(device)
        clf.resolved_ = saved_encoder(config, mcfg)
        clf.backend_ = make_backend(mcfg, clf.resolved_, clf.device_)
        clf.module_ = clf.backend_.restore(folder, len(clf.labels_), config.get("backend", {}))
        clf.module_.load_state_dict(load_file(str(weights)), strict=True)
        clf.module_.to(clf.device_).eval()
        graph = attach(folder, runtime, clf.device_)
        if graph == "bf16":
            from ..runtime.onnx import bf16_runtime

            graph = bf16_runtime(clf)
        clf.use_runtime(graph)
        return clf

    def use_runtime(self, graph) -> None:
        """Score with an exported ONNX graph (runtime/onnx.py's OnnxNet), or with PyTorch again (None).  A frozen
        encoder's graph is the encoder alone: it computes the embeddings and the small head stays in PyTorch."""
        from ..config import FROZEN_FEATURES

        if self.model_config.family == FROZEN_FEATURES:
            self.backend_.use_graph(graph)
            self.runtime_ = None
        else:
            self.runtime_ = graph


def _seed_everything(seed: int) -> None:
    from transformers import set_seed

    set_seed(seed)
