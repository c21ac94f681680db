"""Peers measured beside our rows on the same split and hardware: the plain Hugging Face ``Trainer`` recipe, the
SetFit library, and TF-IDF + logistic regression.  Each is what a practitioner would write with that library,
not a re-implementation: library defaults except where the recipe says otherwise."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..data.records import Examples
from ..errors import ConfigError
from .measure import Stopwatch


@dataclass
class Outcome:
    """What one row produced: test probabilities (columns in ``labels`` order) and what it cost."""

    labels: list[str]
    proba: np.ndarray
    train_seconds: float
    inference_seconds: float
    epochs: float
    params_total: int
    params_trainable: int
    encoder: str
    head: str
    strategy: str
    history: list[dict] = field(default_factory=list)
    # seconds in training steps alone (no validation, no loading or tokenising before training), when the row can
    # tell them apart: what `train samples/s` is computed from, the same way for our loop and the HF Trainer
    step_seconds: float | None = None


def _EpochClock():
    """A TrainerCallback adding up the time from each epoch's start to its end: the training steps, without the
    evaluation the Trainer runs after an epoch ends (our loop's records keep the two apart the same way)."""
    import time

    from transformers import TrainerCallback

    class Clock(TrainerCallback):
        seconds = 0.0

        def on_epoch_begin(self, args, state, control, **kw):
            self._start = time.perf_counter()

        def on_epoch_end(self, args, state, control, **kw):
            self.seconds += time.perf_counter() - self._start

    return Clock()


def _label_ids(train: Examples) -> tuple[list[str], dict[str, int]]:
    if train.multilabel:
        raise ConfigError("peer rows support single-label data only", where=train.source)
    labels = train.label_names()
    return labels, {lab: i for i, lab in enumerate(labels)}


def _texts(ex: Examples) -> list:
    return list(zip(ex.texts, ex.pairs)) if ex.is_pair else list(ex.texts)


# ---------------------------------------------------------------------------------------------- TF-IDF
def tfidf_vectorizer(ngram_max: int = 2, min_df: int = 2, max_features: int | None = None):
    """Word n-gram TF-IDF with sublinear term frequency: the baseline both TF-IDF peers use."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    return TfidfVectorizer(ngram_range=(1, int(ngram_max)), min_df=int(min_df), max_features=max_features,
                           sublinear_tf=True, strip_accents="unicode")


def run_tfidf(model: dict, train_cfg: dict, settings: dict, train: Examples, val: Examples | None, test: Examples,
              row_dir: Path, device: str) -> Outcome:
    """Word 1-2-gram TF-IDF (sublinear tf) + logistic regression; C chosen on the validation part."""
    from sklearn.linear_model import LogisticRegression

    labels, index = _label_ids(train)
    join = (lambda ex: [f"{a} [SEP] {b}" for a, b in zip(ex.texts, ex.pairs)]) if train.is_pair else (
        lambda ex: list(ex.texts))
    y = np.array([index[lab] for lab in train.labels])
    grid = [float(model["C"])] if "C" in model else [0.5, 1.0, 2.0, 4.0, 8.0, 16.0]
    with Stopwatch() as sw:
        vec = tfidf_vectorizer(model.get("ngram_max", 2), model.get("min_df", 2), model.get("max_features"))
        X = vec.fit_transform(join(train))
        best, best_c = -1.0, grid[0]
        if val is not None and len(val) and len(grid) > 1:
            Xv = vec.transform(join(val))
            yv = np.array([index.get(lab, -1) for lab in val.labels])
            for c in grid:
                clf = LogisticRegression(C=c, max_iter=2000).fit(X, y)
                acc = float((clf.predict(Xv) == yv).mean())
                if acc > best:
                    best, best_c = acc, c
        clf = LogisticRegression(C=best_c, max_iter=2000).fit(X, y)
    with Stopwatch() as inf:
        proba = clf.predict_proba(vec.transform(join(test)))
    n_params = int(clf.coef_.size + clf.intercept_.size)
    return Outcome(labels, proba, sw.seconds, inf.seconds, 1, n_params, n_params, "tf-idf 1-2 grams",
                   f"logreg C={best_c:g}", "fit")


# ---------------------------------------------------------------------------------------------- HF Trainer
def run_hf_trainer(model: dict, train_cfg: dict, settings: dict, train: Examples, val: Examples | None,
                   test: Examples, row_dir: Path, device: str) -> Outcome:
    """``AutoModelForSequenceClassification`` + ``Trainer`` with the default collator (dynamic padding), plain
    head truncation, the final weights (no early stopping), bf16 on a GPU that supports it (or where the recipe's
    ``precision`` says bf16), batches grouped by length where the recipe's ``length_buckets`` says so."""
    import torch
    from datasets import Dataset
    from transformers import AutoModelForSequenceClassification, AutoTokenizer, Trainer

    from ..encoders.zoo import refuse_folder_code, resolve
    from ..evaluation.metrics import classification_report

    labels, index = _label_ids(train)
    resolved = resolve(model["encoder"])
    kw = {"revision": resolved.revision} if not resolved.local and resolved.revision else {}
    trust = bool(model.get("trust_remote_code", False))  # the recipe is the user's own file: their say-so
    refuse_folder_code(resolved.location, trust)
    tok = AutoTokenizer.from_pretrained(resolved.location, trust_remote_code=trust, **kw)
    net = AutoModelForSequenceClassification.from_pretrained(
        resolved.location, num_labels=len(labels), id2label=dict(enumerate(labels)), label2id=index,
        trust_remote_code=trust, dtype=torch.float32, **kw)
    max_length = int(settings.get("max_length", model.get("max_length", 256)))

    def dataset(ex: Examples, with_labels: bool = True) -> Dataset:
        cols = {"text": list(ex.texts)}
        if ex.is_pair:
            cols["pair"] = list(ex.pairs)
        if with_labels:
            cols["label"] = [index.get(lab, -100) for lab in ex.labels]
        ds = Dataset.from_dict(cols)
        fn = (lambda b: tok(b["text"], b["pair"], truncation=True, max_length=max_length)) if ex.is_pair else (
            lambda b: tok(b["text"], truncation=True, max_length=max_length))
        return ds.map(fn, batched=True, remove_columns=[c for c in cols if c != "label"])

    use_cuda = device != "cpu" and torch.cuda.is_available()
    args = trainer_arguments(train_cfg, settings, row_dir, has_validation=val is not None and len(val) > 0,
                             use_cuda=use_cuda)

    def compute_metrics(pred):
        logits, y = pred.predictions, pred.label_ids
        keep = y >= 0
        proba = _softmax(logits[keep])
        rep = classification_report([labels[i] for i in y[keep]], proba, labels)
        return {"accuracy": rep["accuracy"], "macro_f1": rep["macro_f1"]}

    steps = _EpochClock()
    trainer = Trainer(model=net, args=args, train_dataset=dataset(train),
                      eval_dataset=dataset(val) if val is not None and len(val) else None,
                      processing_class=tok, compute_metrics=compute_metrics, callbacks=[steps])
    with Stopwatch() as sw:
        trainer.train()
    _remove_if_empty(Path(args.output_dir))
    test_ds = dataset(test, with_labels=False)
    with Stopwatch() as inf:
        logits = trainer.predict(test_ds).predictions
    n_total = sum(p.numel() for p in net.parameters())
    n_train = sum(p.numel() for p in net.parameters() if p.requires_grad)
    return Outcome(labels, _softmax(logits), sw.seconds, inf.seconds, float(args.num_train_epochs), n_total, n_train,
                   resolved.name, "linear (AutoModelForSequenceClassification)", "finetune (HF Trainer defaults)",
                   history=_trainer_history(trainer.state.log_history), step_seconds=steps.seconds)


def trainer_arguments(train_cfg: dict, settings: dict, row_dir: Path, *, has_validation: bool, use_cuda: bool):
    """The HF Trainer's arguments for a peer row: the recipe's batch size, learning rate, weight decay, warm-up
    ratio, epochs and seed, as our loop gets them; everything else the Trainer's defaults."""
    import torch
    from transformers import TrainingArguments

    batch = int(settings.get("batch_size", train_cfg.get("batch_size", 16)))
    return TrainingArguments(
        output_dir=str(row_dir / "hf-trainer"), num_train_epochs=float(settings.get("epochs", train_cfg.get("epochs", 3))),
        per_device_train_batch_size=batch, per_device_eval_batch_size=batch * 4,
        learning_rate=float(train_cfg.get("lr", 2e-5)), weight_decay=float(train_cfg.get("weight_decay", 0.0)),
        # a float below 1 is the Trainer's warm-up ratio (transformers 5)
        warmup_steps=float(train_cfg.get("warmup_ratio", 0.0)),
        eval_strategy="epoch" if has_validation else "no", logging_strategy="epoch",
        save_strategy="no", report_to=[], seed=int(train_cfg.get("seed", 13)), use_cpu=not use_cuda,
        # bf16 on a GPU that supports it, or where the recipe asks (`precision = "bf16"`: CPU autocast too)
        bf16=bool(use_cuda and torch.cuda.is_bf16_supported()) or train_cfg.get("precision") == "bf16",
        # `length_buckets = true` in a peer recipe: the Trainer's own length grouping (its LengthGroupedSampler),
        # so our bucketed loop can be compared with the Trainer doing the same
        train_sampling_strategy="group_by_length" if train_cfg.get("length_buckets") else "random",
        disable_tqdm=False,
    )


def _trainer_history(log_history: list[dict]) -> list[dict]:
    """Trainer's log lines (train loss and eval metrics arrive separately) as one record per epoch."""
    by_epoch: dict[int, dict] = {}
    for entry in log_history:
        if "epoch" not in entry:
            continue
        epoch = int(math.ceil(entry["epoch"] - 1e-9))
        rec = by_epoch.setdefault(epoch, {"epoch": epoch})
        if "loss" in entry:
            rec["train_loss"] = entry["loss"]
        for key, value in entry.items():
            if key.startswith("eval_") and isinstance(value, (int, float)) and not key.endswith(
                    ("_runtime", "_per_second")):
                rec["val_" + key[5:]] = value
    return [by_epoch[k] for k in sorted(by_epoch) if k > 0]


def _remove_if_empty(folder: Path) -> None:
    """The libraries create their output folder even when told to save nothing."""
    if folder.is_dir() and not any(folder.iterdir()):
        folder.rmdir()


def _softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


# ---------------------------------------------------------------------------------------------- SetFit
def run_setfit(model: dict, train_cfg: dict, settings: dict, train: Examples, val: Examples | None,
               test: Examples, row_dir: Path, device: str) -> Outcome:
    """The SetFit library: contrastive fine-tuning of the sentence encoder on pairs, then logistic regression."""
    try:
        from setfit import SetFitModel, Trainer, TrainingArguments
    except ImportError:
        raise ConfigError("the SetFit peer needs the setfit package", hint="pip install 'transferlab[bench]'") from None
    import torch
    from datasets import Dataset

    from ..encoders.zoo import refuse_folder_code, resolve

    if train.is_pair:
        raise ConfigError("SetFit classifies single texts, not pairs", where=train.source)
    labels, index = _label_ids(train)
    resolved = resolve(model["encoder"])
    use_cuda = device != "cpu" and torch.cuda.is_available()
    kw = {"revision": resolved.revision} if not resolved.local and resolved.revision else {}
    refuse_folder_code(resolved.location, False)  # SetFit has no trust switch: a folder shipping code is refused
    net = SetFitModel.from_pretrained(resolved.location, device="cuda" if use_cuda else "cpu", **kw)
    net.model_body.to(torch.float32)  # an fp16 copy would train with fp16 master weights and collapse
    max_length = settings.get("max_length", model.get("max_length"))
    if max_length:
        net.model_body.max_seq_length = int(max_length)
    # Its checkpoints would land in ./checkpoints: keep them out (nothing is saved; the row's folder is the place).
    args_kw = {"output_dir": str(row_dir / "setfit"), "save_strategy": "no", "report_to": "none",
               "batch_size": int(settings.get("batch_size", train_cfg.get("batch_size", 16))),
               "num_epochs": int(settings.get("epochs", train_cfg.get("epochs", 1))),
               "seed": int(train_cfg.get("seed", 13)), "show_progress_bar": True}
    if "num_iterations" in train_cfg:
        args_kw["num_iterations"] = int(train_cfg["num_iterations"])
    steps = settings.get("max_steps", train_cfg.get("max_steps"))
    if steps:
        args_kw["max_steps"] = int(steps)
    data = Dataset.from_dict({"text": list(train.texts), "label": [index[lab] for lab in train.labels]})
    trainer = Trainer(model=net, args=TrainingArguments(**args_kw), train_dataset=data)
    with Stopwatch() as sw:
        trainer.train()
    _remove_if_empty(Path(args_kw["output_dir"]))
    with Stopwatch() as inf:
        proba = net.predict_proba(list(test.texts), batch_size=64, as_numpy=True)
    body = sum(p.numel() for p in net.model_body.parameters())
    head = getattr(net.model_head, "coef_", np.zeros(0)).size + getattr(net.model_head, "intercept_", np.zeros(0)).size
    return Outcome(labels, np.asarray(proba, dtype=np.float64), sw.seconds, inf.seconds, args_kw["num_epochs"],
                   int(body + head), int(body + head), resolved.name, "logreg (SetFit)",
                   "contrastive fine-tuning (SetFit)")


PEERS = {"tfidf": run_tfidf, "hf-trainer": run_hf_trainer, "setfit": run_setfit}
