"""``MultiTaskModel``: one shared transformer encoder, one head per task, trained together and saved as one model.

    model = MultiTaskModel("minilm", epochs=3, task_sampling="temperature:2")
    model.fit({"security": TaskData("classification", train, validation),
               "entities": TaskData("ner", conll_train, conll_valid)})
    model.tasks_["security"].predict(texts); model.tasks_["entities"].predict_spans(texts)

Tasks are sequence classification (single texts or pairs, cross-encoded) and token classification (NER).  Each
task keeps its own backend (how its items are made), task (its loss and metrics) and head; the encoder is one
module shared by every head.  Training runs through the one loop: the loop asks this model's batch plan for
batches (each from one task, the task drawn round-robin, in proportion to its size, or by a temperature-scaled
size, Arivazhagan et al. 2019) and the multi-task loss sends each batch's outputs to its own task's loss.  The
score early stopping watches is the mean of each task's main validation metric (macro F1, entity F1).

``tasks_[name]`` are ordinary fitted estimators (TextClassifier, TokenTagger) sharing the encoder: predict,
evaluate, predict_spans and even ``save`` (one task alone) work on them.
"""

from __future__ import annotations

import copy
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ..config import CLASSIFICATION, TOKENS, TRANSFORMER, ModelConfig
from ..errors import ConfigError, DataError, ModelFileError
from ..tasks.base import Task
from .base import Estimator, saved_encoder, write_folder

KINDS = {"classification": CLASSIFICATION, "ner": TOKENS}
MAIN_METRIC = {CLASSIFICATION: "macro_f1", TOKENS: "f1"}
# per-task settings a tasks file may give (the rest is shared: encoder, epochs, learning rate...)
TASK_OPTIONS = ("head", "crf", "max_length", "case_features", "context", "stride", "dropout")


@dataclass
class TaskData:
    kind: str  # "classification" or "ner"
    train: Any  # Examples (classification) or TaggedSentences (ner)
    validation: Any = None
    options: dict | None = None  # per-task model settings (TASK_OPTIONS)

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ConfigError(f"task kind {self.kind!r} is unknown", hint=f"one of {', '.join(KINDS)}")
        unknown = sorted(set(self.options or {}) - set(TASK_OPTIONS))
        if unknown:
            raise ConfigError(f"task option(s) {unknown} are not per-task settings",
                              hint=f"per task: {', '.join(TASK_OPTIONS)}; the rest is shared")


def parse_sampling(spec: str) -> tuple[str, float]:
    s = str(spec).strip().lower()
    if s in ("proportional", "round-robin"):
        return s, 1.0
    if s.startswith("temperature:"):
        try:
            t = float(s.split(":", 1)[1])
        except ValueError:
            t = -1.0
        if t > 0:
            return "temperature", t
    raise ConfigError(f"task sampling {spec!r} is unknown", hint="proportional, round-robin or temperature:T (T>0)")


class MultiTaskNet(nn.Module):
    """Every task's network, all holding the same encoder module; a batch goes to the network of its task."""

    def __init__(self, nets: dict[str, nn.Module]):
        super().__init__()
        self.names = list(nets)
        self.nets = nn.ModuleDict(nets)

    def forward(self, task: torch.Tensor, **batch):
        k = int(task)
        return k, self.nets[self.names[k]](**batch)


class MultiTask(Task):
    """The loss of a batch is its own task's loss, on its own task's network (a CRF's transitions live there)."""

    name = "multi-task"

    def __init__(self, tasks: list[Task]):
        self.tasks = tasks

    def loss(self, outputs, targets, module=None):
        k, out = outputs
        return self.tasks[k].loss(out, targets, module.nets[module.names[k]] if module is not None else None)


class TaskBatches:
    """What the loop asks of a backend, for several tasks: a batch plan (``plan``) instead of one shuffled list,
    each batch collated by its task's backend and marked with the task's number."""

    def __init__(self, views: list, items: list[list[dict]], targets: list, sampling: str, seed: int):
        self.views, self.items, self.targets = views, items, targets
        self.kind, self.temperature = parse_sampling(sampling)
        sizes = np.array([len(x) for x in items], dtype=np.float64)
        self.probabilities = sizes ** (1.0 / self.temperature) / (sizes ** (1.0 / self.temperature)).sum()

    def flat(self) -> list[tuple[int, int]]:
        return [(k, i) for k, part in enumerate(self.items) for i in range(len(part))]

    def schedule(self, batch_size: int, rng: np.random.Generator) -> list[int]:
        """The task of each batch of one epoch (as many batches as the tasks' parts make)."""
        counts = [-(-len(part) // batch_size) for part in self.items]
        total = sum(counts)
        if self.kind == "proportional":
            order = np.repeat(np.arange(len(counts)), counts)
            return list(rng.permutation(order))
        if self.kind == "round-robin":
            return [i % len(counts) for i in range(total)]
        return list(rng.choice(len(counts), size=total, p=self.probabilities))

    def plan(self, batch_size: int, rng: np.random.Generator):
        queues: list[list[np.ndarray]] = [[] for _ in self.items]
        for k in self.schedule(batch_size, rng):
            if not queues[k]:  # this task's part is used up: a fresh pass over it
                order = rng.permutation(len(self.items[k]))
                queues[k] = [order[s : s + batch_size] for s in range(0, len(order), batch_size)]
            idx = queues[k].pop(0)
            view = self.views[k]
            batch = view.backend_.collate([self.items[k][i] for i in idx])
            batch["labels"] = view.task_.collate_targets(self.targets[k], idx)
            batch["task"] = torch.tensor(k)
            yield idx, batch

    def param_groups(self, module: nn.Module, lr: float, weight_decay: float) -> list[dict]:
        from ..training.strategies import Strategy

        return Strategy().param_groups(module, lr, weight_decay)

    def on_step(self, module: nn.Module, step: int, total: int) -> None:
        pass


class MultiTaskModel(Estimator):
    """One shared transformer encoder and one head per task (classification, pairs, NER), as one saved model."""

    task_name = "multi-task"

    def fit(self, tasks: dict[str, TaskData], *, out_dir: str | Path | None = None,
            save_model: bool = True) -> "MultiTaskModel":
        from ..encoders.transformer import load_pretrained
        from ..encoders.zoo import resolve
        from ..training.callbacks import CurvesPlot, EarlyStopping, MetricsFile
        from ..training.trainer import Trainer, pick_device
        from .classifier import _seed_everything

        if len(tasks) < 2:
            raise ConfigError("a multi-task model needs at least two tasks", hint="train one task with `train`")
        mcfg, tcfg = self._resolve_configs()
        if mcfg.family != TRANSFORMER or mcfg.strategy != "finetune":
            raise ConfigError("a multi-task model shares one fine-tuned transformer encoder",
                              hint="use a transformer encoder (minilm, mpnet, a folder) with --strategy finetune")
        parse_sampling(tcfg.task_sampling)
        _seed_everything(tcfg.seed)
        self.device_ = pick_device(tcfg.device)
        self.resolved_ = resolve(mcfg.encoder)
        tokenizer, backbone = load_pretrained(self.resolved_, mcfg.trust_remote_code, mcfg.attention_dropout)
        self.names_ = list(tasks)
        views, items, targets, val_items, val_gold = [], [], [], [], []
        for name, spec in tasks.items():
            view, its, tg, vits, vgold = self._task_view(name, spec, mcfg, tcfg, tokenizer, backbone)
            views.append(view)
            items.append(its)
            targets.append(tg)
            val_items.append(vits)
            val_gold.append(vgold)
        self.tasks_ = dict(zip(self.names_, views))
        self.kinds_ = {name: KINDS[spec.kind] for name, spec in tasks.items()}
        self.module_ = MultiTaskNet({name: v.module_ for name, v in self.tasks_.items()})
        plan = TaskBatches(views, items, targets, tcfg.task_sampling, tcfg.seed)
        started = time.perf_counter()
        callbacks = [EarlyStopping("score", tcfg.patience)]
        if out_dir is not None:
            callbacks += [MetricsFile(Path(out_dir) / "metrics.jsonl"), CurvesPlot(Path(out_dir) / "curves.png")]
        has_val = all(v is not None for v in val_items)
        trainer = Trainer(self.module_, plan, MultiTask([v.task_ for v in views]), tcfg, callbacks=callbacks,
                          device=self.device_, evaluate=lambda *_: self._validation(val_items, val_gold))
        # the loop sees (task, item) references; the plan holds each task's items and targets itself
        self.history_ = trainer.fit(plan.flat(), None, val_items if has_val else None, None)
        self.module_ = trainer.module
        for name, view in self.tasks_.items():
            view.module_ = self.module_.nets[name]
            view.module_.eval()
        self.fit_info_ = {"train_seconds": round(time.perf_counter() - started, 2), "best": trainer.best,
                          "tasks": {name: {"kind": spec.kind, "n_train": len(spec.train),
                                           "n_validation": len(spec.validation) if spec.validation is not None
                                           else 0, "options": spec.options or {}}
                                    for name, spec in tasks.items()},
                          "sampling": tcfg.task_sampling,
                          "params_total": sum(p.numel() for p in self.module_.parameters())}
        if out_dir is not None and save_model:
            self.save(out_dir)
        return self

    def _task_view(self, name, spec: TaskData, mcfg, tcfg, tokenizer, backbone):
        """A fitted-to-be single-task estimator over the shared encoder, with its items and targets."""
        cfg = copy.deepcopy(mcfg)
        for key, value in (spec.options or {}).items():
            setattr(cfg, key, value)
        kind = KINDS[spec.kind]
        # the family defaults of this task's kind (a tagger's head, a classifier's length), unless given
        cfg.head = (spec.options or {}).get("head")
        cfg.max_length = (spec.options or {}).get("max_length") or self.max_length
        cfg.resolve_defaults(kind)
        view = self._make_view(name, kind, cfg, tcfg, tokenizer, backbone, labels=None, train=spec.train)
        its = view.backend_.prepare(spec.train)
        has_val = spec.validation is not None
        vits = view.backend_.prepare(spec.validation) if has_val else None
        if kind == CLASSIFICATION:
            from ..training.imbalance import ImbalanceLoss, class_weights

            tg = view.task_.targets(spec.train)
            # each classification task weighs its own classes (--class-weight, --loss), as `train` does
            weight = class_weights(tg, view.labels_, tcfg.class_weight, multilabel=view.multilabel_)
            view.task_.criterion = ImbalanceLoss(multilabel=view.multilabel_, weight=weight, kind=tcfg.loss,
                                                 gamma=tcfg.focal_gamma, label_smoothing=tcfg.label_smoothing)
            view.fit_info_["class_weights"] = None if weight is None else dict(zip(view.labels_, map(float, weight)))
            vgold = view.task_.targets(spec.validation, strict=False) if has_val else None
        else:  # a tagger's items are windows of sentences; it is judged on the sentences themselves
            tg = view._item_targets(its, view.task_.targets(spec.train))
            vgold = spec.validation
        return view, its, tg, vits, vgold

    def _make_view(self, name, kind, cfg: ModelConfig, tcfg, tokenizer, backbone, *, labels, train=None,
                   restoring: bool = False):
        from ..tasks.classification import SequenceClassification
        from ..tasks.tokens import TokenClassification
        from .backends import TransformerBackend
        from .classifier import TextClassifier, as_examples
        from .tagger import TokenTagger, as_sentences
        from .tagging import TransformerTaggerNet, TransformerTaggingBackend

        params = {**asdict(cfg), **asdict(tcfg)}
        if kind == CLASSIFICATION:
            view = TextClassifier(**params)
            if train is not None:
                train = as_examples(train)
                if train.labels is None:
                    raise DataError(f"task {name!r}: the training data has no labels", where=train.source)
                labels = train.label_names()
                view.multilabel_ = train.multilabel
            backend = TransformerBackend(cfg, self.resolved_, self.device_)
            backend.tokenizer = tokenizer
            backend.info = {"pair": bool(train.is_pair) if train is not None else False}
            view.labels_ = labels
            view.task_ = SequenceClassification(labels, view.multilabel_)
            view.module_ = backend._wrap(backbone, len(labels), restoring=True)
            view.decision_ = {}
        else:
            view = TokenTagger(**params)
            if train is not None:
                train = as_sentences(train)
                labels = train.tag_names()
            backend = TransformerTaggingBackend(cfg, self.resolved_, self.device_)
            backend.tokenizer = tokenizer
            backend.info = {}
            view.tags_ = labels
            view.task_ = TokenClassification(labels)
            view.module_ = TransformerTaggerNet(cfg, backbone, labels)
        view.backend_, view.device_, view.resolved_ = backend, self.device_, self.resolved_
        view.model_config_, view.train_config_ = cfg, tcfg
        view.history_, view.fit_info_ = [], {"multi_task": {"model": "shared encoder", "task": name}}
        view.module_.to(self.device_)
        return view

    def _validation(self, val_items, val_gold) -> dict:
        out: dict[str, float] = {}
        mains, losses = [], []
        for name, view, its, gold in zip(self.names_, self.tasks_.values(), val_items, val_gold):
            if self.kinds_[name] == CLASSIFICATION:
                m = view._validation_metrics(its, gold)
            else:
                m = view.task_.validation_metrics(view._scores(its, gold), gold, view.module_)
            out.update({f"{name}_{k}": v for k, v in m.items()})
            mains.append(m[MAIN_METRIC[self.kinds_[name]]])
            losses.append(m["loss"])
        out["score"] = float(np.mean(mains))
        out["loss"] = float(np.mean(losses))
        return out

    # ------------------------------------------------------------------ using and keeping
    def predict(self, X, *, task: str):
        return self._task(task).predict(X)

    def evaluate(self, data, *, task: str) -> dict:
        return self._task(task).evaluate(data)

    def _task(self, name: str):
        self._check_fitted()
        if name not in self.tasks_:
            raise ConfigError(f"no task {name!r} in this model", hint=f"its tasks: {', '.join(self.tasks_)}")
        return self.tasks_[name]

    def save(self, path: str | Path) -> Path:
        """One folder: the shared encoder once (``backbone.*``), each task's head under ``heads.NAME.*``."""
        from ..encoders.transformer import save_pretrained_parts

        self._check_fitted()
        folder = Path(path)
        folder.mkdir(parents=True, exist_ok=True)
        first = next(iter(self.tasks_.values()))
        save_pretrained_parts(folder, first.backend_.tokenizer, first.module_.backbone)
        state = {k: v for k, v in first.backend_.state_dict(first.module_).items() if k.startswith("backbone.")}
        specs = []
        for name, view in self.tasks_.items():
            own = view.backend_.state_dict(view.module_)
            state.update({f"heads.{name}.{k}": v for k, v in own.items() if not k.startswith("backbone.")})
            specs.append({"name": name, "kind": "classification" if self.kinds_[name] == CLASSIFICATION else "ner",
                          "model": asdict(view.model_config_),
                          "labels": view.labels_ if self.kinds_[name] == CLASSIFICATION else view.tags_,
                          "multilabel": bool(getattr(view, "multilabel_", False)), "backend": view.backend_.info})
        write_folder(folder, state, {
            "task": self.task_name, "estimator": type(self).__name__, "family": TRANSFORMER,
            "model": asdict(self.model_config_), "train": asdict(self.train_config_), "tasks": specs,
            "encoder": self.resolved_.to_dict(), "fit": self.fit_info_, "history": self.history_})
        return folder

    @classmethod
    def load(cls, path: str | Path, *, device: str = "auto", trust_remote_code: bool = False) -> "MultiTaskModel":
        from safetensors.torch import load_file

        from ..encoders.transformer import restore_pretrained
        from ..training.trainer import pick_device

        folder = Path(path)
        model, config, weights = cls._saved(folder, trust_remote_code)
        mcfg, tcfg = model.model_config_, model.train_config_
        model.device_ = pick_device(device)
        model.resolved_ = saved_encoder(config, mcfg)
        tokenizer, backbone = restore_pretrained(folder, trust_remote_code)
        state = load_file(str(weights))
        backbone.load_state_dict({k[len("backbone."):]: v for k, v in state.items() if k.startswith("backbone.")})
        model.names_, model.tasks_, model.kinds_ = [], {}, {}
        for spec in config["tasks"]:
            name, kind = spec["name"], KINDS[spec["kind"]]
            cfg = ModelConfig(**spec["model"])
            view = model._make_view(name, kind, cfg, tcfg, tokenizer, backbone, labels=spec["labels"],
                                    restoring=True)
            if kind == CLASSIFICATION:
                view.multilabel_ = spec.get("multilabel", False)
            view.backend_.info = spec.get("backend", {})
            prefix = f"heads.{name}."
            head = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
            result = view.module_.load_state_dict(head, strict=False)  # the shared encoder is loaded above
            missing = [k for k in result.missing_keys if not k.startswith("backbone.")]
            if missing or result.unexpected_keys:
                raise ModelFileError(f"task {name!r}: the saved head does not fit (missing {missing[:3]}, "
                                     f"unexpected {list(result.unexpected_keys)[:3]})", where=str(weights))
            view.module_.to(model.device_).eval()
            model.names_.append(name)
            model.tasks_[name], model.kinds_[name] = view, kind
        model.module_ = MultiTaskNet({n: v.module_ for n, v in model.tasks_.items()})
        model.history_, model.fit_info_ = config.get("history", []), config.get("fit", {})
        return model


# ---------------------------------------------------------------------------------------------- tasks file
TASK_KEYS = {"kind", "data", "text_col", "label_col", "pair_col", "label_sep", "split", "max_train", "max_validation",
             "validation_data", "test_data", "scheme", "repair_tags", "skip_bad_rows", *TASK_OPTIONS}


def load_tasks_file(path: str | Path, *, report=None) -> tuple[dict, dict[str, TaskData], dict[str, Any]]:
    """A TOML tasks file: shared model/training settings at the top, one ``[tasks.NAME]`` table per task with its
    data (``kind``, ``data``, columns, ``split`` or ``validation_data``/``test_data``) and per-task options.

    Returns (shared parameters, {name: TaskData}, {name: test data or None}).  Data paths are read relative to the
    file's folder when they exist there, else as given.  ``report(message)`` hears what was read."""
    from ..config import split_kwargs
    from ..data.loading import DataSpec, load_parts
    from ..data.tagged import TaggedReadReport, read_tagged

    from ..errors import read_toml

    path = Path(path)
    doc = read_toml(path, "tasks file")
    tables = doc.pop("tasks", None)
    if not isinstance(tables, dict) or len(tables) < 2:
        raise ConfigError("a tasks file needs at least two [tasks.NAME] tables", where=str(path),
                          hint='e.g. [tasks.security] kind = "classification" data = "issues.csv" ...')
    try:
        split_kwargs(dict(doc))  # shared settings: the names `train` takes, unknown ones named
    except (TypeError, ConfigError) as exc:
        raise ConfigError(f"shared setting: {exc}", where=str(path)) from None

    def where(value: str) -> str:
        local = path.parent / value
        return str(local) if not Path(value).is_absolute() and local.exists() else value

    tasks, tests = {}, {}
    for name, t in tables.items():
        place = f"{path} [tasks.{name}]"
        if not isinstance(t, dict):
            raise ConfigError("a task must be a table", where=place)
        unknown = sorted(set(t) - TASK_KEYS)
        if unknown or "data" not in t or t.get("kind") not in KINDS:
            raise ConfigError(f"unknown key(s) {unknown}" if unknown else "a task needs kind (classification or ner) "
                              "and data", where=place, hint=f"task keys: {', '.join(sorted(TASK_KEYS))}")
        options = {k: t[k] for k in TASK_OPTIONS if k in t}
        if t["kind"] == "classification":
            spec = DataSpec(path=where(t["data"]), text_col=t.get("text_col", "text"),
                            label_col=t.get("label_col", "label"), pair_col=t.get("pair_col"),
                            label_sep=t.get("label_sep"), split=t.get("split", "stratified"),
                            max_train=t.get("max_train"), max_validation=t.get("max_validation"),
                            skip_bad_rows=bool(t.get("skip_bad_rows", False)))
            parts, read = load_parts(spec, seed=int(doc.get("seed", 13)))
            if report and read.skipped:
                report(f"{name}: {read.summary()}")
            tasks[name] = TaskData("classification", parts["train"],
                                   parts["validation"] if len(parts["validation"]) else None, options)
            tests[name] = parts["test"] if len(parts["test"]) else None
        else:
            kw = dict(scheme=t.get("scheme", "auto"), repair=bool(t.get("repair_tags", False)),
                      skip_bad_rows=bool(t.get("skip_bad_rows", False)))

            def tagged(value):
                rep = TaggedReadReport(source=value)
                out = read_tagged(where(value), report=rep, **kw)
                if report and (rep.skipped or rep.repaired):
                    report(f"{name}: {rep.summary()}")
                return out

            train = tagged(t["data"])
            val = tagged(t["validation_data"]) if t.get("validation_data") else None
            if val is None:  # 10% of the training sentences, as `train --task ner` does
                order = np.random.default_rng(int(doc.get("seed", 13))).permutation(len(train))
                cut = max(1, len(train) // 10)
                train, val = train.subset(sorted(order[cut:])), train.subset(sorted(order[:cut]))
            tasks[name] = TaskData("ner", train, val, options)
            tests[name] = tagged(t["test_data"]) if t.get("test_data") else None
        if report:
            sizes = f"train {len(tasks[name].train)}, validation {len(tasks[name].validation or [])}" + (
                f", test {len(tests[name])}" if tests[name] is not None else "")
            report(f"{name} ({t['kind']}): {sizes}")
    return doc, tasks, tests
