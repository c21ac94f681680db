"""What every TransferLab estimator shares: scikit-learn's parameter protocol, and the saved-model folder.

Estimators are real scikit-learn estimators: the constructor arguments are the configuration, stored as given and
never changed by ``fit`` (which resolves defaults into copies, ``model_config_``/``train_config_``), so
``get_params``/``set_params`` and ``sklearn.base.clone`` work.  A saved model is a folder: ``config.json`` (the
resolved configuration, the task, labels, history, environment and the SHA-256 of every weights file) beside
``model.safetensors``; loading checks the format, the version and the hashes before anything is built.
"""

from __future__ import annotations

import copy
import os
import platform
from dataclasses import asdict, fields
from pathlib import Path

import torch
from sklearn.base import BaseEstimator

from .. import __version__
from ..config import ModelConfig, TrainConfig, split_kwargs
from ..encoders.zoo import TRUST_HINT, sha256_file
from ..errors import ConfigError, ModelFileError

FORMAT = "transferlab-model"
# 1: text classifiers only (no "task" key).  2: "task" and "estimator" keys; token taggers.
FORMAT_VERSION = 2
WEIGHTS = "model.safetensors"


class Estimator(BaseEstimator):
    """Base of TextClassifier, TokenTagger and PairScorer: flat keyword parameters routed to ModelConfig and
    TrainConfig, the scikit-learn way."""

    task_name = "task"

    def __init__(self, encoder: str = "glove-50d", head: str | None = None, strategy: str | None = None,
                 **kwargs):
        split_kwargs(kwargs)  # unknown names fail here, at construction, naming the valid ones
        self.encoder, self.head, self.strategy = encoder, head, strategy
        for name in self._get_param_names():
            if name not in ("encoder", "head", "strategy"):
                # a copy of a mutable default (head_options): estimators never share one dict
                setattr(self, name, kwargs[name] if name in kwargs else copy.deepcopy(self._defaults()[name]))

    @classmethod
    def _get_param_names(cls) -> list[str]:
        return sorted(f.name for f in fields(ModelConfig) + fields(TrainConfig))

    @classmethod
    def _defaults(cls) -> dict:
        if "_DEFAULTS" not in cls.__dict__:
            cls._DEFAULTS = {**asdict(ModelConfig()), **asdict(TrainConfig())}
        return cls._DEFAULTS

    def _fresh_configs(self) -> tuple[ModelConfig, TrainConfig]:
        """Unresolved configurations from the parameters, deep-copied so resolving never touches them."""
        params = copy.deepcopy(self.get_params(deep=False))
        model_kw, train_kw = split_kwargs(params)
        return ModelConfig(**model_kw), TrainConfig(**train_kw)

    def _resolve_configs(self, task: str = "classification") -> tuple[ModelConfig, TrainConfig]:
        mcfg, tcfg = self._fresh_configs()
        mcfg.resolve_defaults(task)
        tcfg.resolve_defaults(mcfg, task)
        self.model_config_, self.train_config_ = mcfg, tcfg
        return mcfg, tcfg

    def _check_fitted(self) -> None:
        if getattr(self, "module_", None) is None:
            name = type(self).__name__
            raise ConfigError(f"this {name} is not fitted yet", hint=f"call fit() or {name}.load()")

    @classmethod
    def _saved(cls, folder: Path, trust_remote_code: bool, kind: str = "classification"):
        """(estimator with the saved, resolved configuration; config.json; verified weights path) of a folder."""
        config, weights = read_folder(folder, task=cls.task_name, trust_remote_code=trust_remote_code)
        est = cls(**{**config["model"], **config["train"], "trust_remote_code": bool(trust_remote_code)})
        mcfg, tcfg = est._fresh_configs()
        est.model_config_, est.train_config_ = mcfg.resolve_defaults(kind), tcfg
        return est, config, weights

    @property
    def model_config(self) -> ModelConfig:
        """The resolved configuration once fitted or loaded; before that, the parameters as a config."""
        return getattr(self, "model_config_", None) or self._fresh_configs()[0]

    @property
    def train_config(self) -> TrainConfig:
        return getattr(self, "train_config_", None) or self._fresh_configs()[1]


def saved_encoder(config: dict, mcfg: ModelConfig):
    """The encoder a saved folder uses.  A frozen encoder is not inside the folder: it is resolved again and must be
    the same weights (a contrastively tuned one is inside, checked by its own SHA-256)."""
    from ..encoders.zoo import Resolved, check_same_encoder, resolve

    saved = Resolved(**config["encoder"])
    if mcfg.family != "frozen-features" or mcfg.strategy == "contrastive":
        return saved
    current = resolve(mcfg.encoder)
    check_same_encoder(saved, current)
    return current


def environment() -> dict:
    """Package versions and hardware, saved with every model and benchmark result."""
    import importlib.metadata as md

    versions = {"python": platform.python_version(), "transferlab": __version__}
    for pkg in ("torch", "transformers", "sentence-transformers", "peft", "accelerate", "scikit-learn", "numpy",
                "gensim", "safetensors", "seqeval"):
        try:
            versions[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            pass
    hardware = {"platform": platform.platform(), "processor": _cpu_name(),
                "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads()}
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


def write_folder(folder: Path, state: dict[str, torch.Tensor], config: dict) -> None:
    """model.safetensors, then config.json with the format, the version and the weights' SHA-256."""
    from safetensors.torch import save_file

    from .backends import write_json

    state = {k: v.detach().cpu().contiguous() for k, v in state.items()}
    save_file(state, str(folder / WEIGHTS), metadata={"format": FORMAT})
    head = {"format": FORMAT, "format_version": FORMAT_VERSION}
    write_json(folder / "config.json", {**head, **config, "weights": {WEIGHTS: sha256_file(folder / WEIGHTS)},
                                        **environment()})


def read_folder(folder: Path, *, task: str, trust_remote_code: bool) -> tuple[dict, Path]:
    """The checked config.json of a saved model of ``task`` and the path of its verified weights."""
    from .backends import read_json

    cfg_file = folder / "config.json"
    config = read_json(cfg_file, "this is not a saved TransferLab model",
                       hint="point at the folder given as --out when training")
    if config.get("format") != FORMAT or config.get("format_version", 0) > FORMAT_VERSION:
        raise ModelFileError("unknown model format or a newer version", where=str(cfg_file),
                             hint="upgrade transferlab")
    saved_task = config.get("task", "classification")  # format 1 saved text classifiers only
    if saved_task != task:
        raise ModelFileError(f"this folder holds a {saved_task} model, not a {task} model", where=str(folder),
                             hint=f"load it as a {saved_task} model (the CLI picks the right one itself)")
    weights = folder / WEIGHTS
    if not weights.exists():
        raise ModelFileError(f"{WEIGHTS} is missing", where=str(folder), hint="copy the whole model folder")
    if sha256_file(weights) != config["weights"][WEIGHTS]:
        raise ModelFileError(f"{WEIGHTS} was altered or corrupted (SHA-256 differs from config.json)",
                             where=str(weights), hint="restore the file from the original run or retrain")
    if config.get("model", {}).get("trust_remote_code") and not trust_remote_code:
        raise ModelFileError("this model folder asks to run code that ships with its encoder (trust_remote_code "
                             "in its config.json), and TransferLab runs no folder's code unless you say so",
                             where=str(folder), hint=TRUST_HINT)
    return config, weights


def saved_task(folder: Path) -> str:
    """Which task a saved model folder holds (for the CLI to pick the estimator); classification if unsure."""
    import json

    try:
        return json.loads((Path(folder) / "config.json").read_text(encoding="utf-8")).get("task", "classification")
    except (OSError, ValueError, AttributeError):
        return "classification"  # TextClassifier.load then reports what is wrong with the folder


def transfer_encoder(module: torch.nn.Module, backend, source: str | Path, *,
                     trust_remote_code: bool = False) -> dict:
    """Sequential transfer (``init_from``): start ``module``'s encoder from the one an earlier model trained on an
    intermediate task (any task: a classifier, a tagger, a pair scorer), its head replaced by this model's new one.

    Transformers: every ``backbone.*`` tensor (the fine-tuned encoder; the earlier model must have fine-tuned the
    same base encoder, checked by its weights' hashes).  Word vectors (text classifiers): the embedding rows of the
    words both vocabularies hold, and the sequence encoder (CNN, BiGRU...) when its shapes match.  A frozen encoder
    carries nothing over: it never changed."""
    from safetensors.torch import load_file

    from ..config import FROZEN_FEATURES, TRANSFORMER, WORD_VECTORS
    from ..encoders.zoo import Resolved, check_same_encoder
    from .backends import read_json

    folder = Path(source)
    peek = read_json(folder / "config.json", "this is not a saved TransferLab model",
                     hint="--init-from takes a folder written by `transferlab train`")
    config, weights = read_folder(folder, task=peek.get("task", "classification"), trust_remote_code=trust_remote_code)
    family = backend.family
    if family == FROZEN_FEATURES or config.get("family") == FROZEN_FEATURES:
        raise ConfigError("a frozen encoder never changes, so there is nothing to carry over from it",
                          where=str(folder), hint="init-from needs an earlier model that fine-tuned its encoder "
                                                  "(--strategy finetune), and a new one that fine-tunes too")
    if config.get("family") != family:
        raise ConfigError(f"the earlier model is a {config.get('family')} model, this one a {family} model",
                          where=str(folder), hint="start from a model of the same family and encoder")
    if getattr(backend.cfg, "strategy", None) == "lora":
        raise ConfigError("init-from starts the full encoder; LoRA would train adapters beside it",
                          hint="use --strategy finetune or gradual with --init-from")
    saved_resolved = Resolved(**config["encoder"])
    if family == TRANSFORMER:
        check_same_encoder(saved_resolved, backend.resolved)
    state, own = load_file(str(weights)), module.state_dict()
    copied: dict[str, torch.Tensor] = {}
    words = None
    if family == TRANSFORMER:
        copied = {k: v for k, v in state.items() if k.startswith("backbone.") and k in own
                  and own[k].shape == v.shape}
    elif family == WORD_VECTORS:
        from .backends import WordVectorBackend

        vocab_file = folder / "vocab.txt"
        if (peek.get("task", "classification") != "classification" or not vocab_file.is_file()
                or not isinstance(backend, WordVectorBackend)):
            raise ConfigError("word-vector models carry their encoder over between text classifiers only",
                              where=str(folder))
        old = {w: i for i, w in enumerate(vocab_file.read_text(encoding="utf-8").split("\n"))}
        emb = own["embedding.weight"].clone()
        pairs = [(i, old[w]) for i, w in enumerate(backend.vocab) if w in old and i >= 2]  # 0, 1: pad, unk
        if pairs:
            new_rows, old_rows = map(list, zip(*pairs))
            emb[new_rows] = state["embedding.weight"][old_rows].to(emb.dtype)
        if "<unk>" in old and len(backend.vocab) > 1:
            emb[1] = state["embedding.weight"][old["<unk>"]]
        copied = {"embedding.weight": emb}
        copied.update({k: v for k, v in state.items() if k.startswith("encoder.") and k in own
                       and own[k].shape == v.shape})
        words = len(pairs)
    if not any(k != "embedding.weight" for k in copied) and not words:
        raise ConfigError("nothing of the earlier model's encoder fits this model", where=str(folder),
                          hint="the two models must share their encoder (and, for word vectors, their head type)")
    module.load_state_dict({**own, **copied})
    info = {"from": str(folder), "task": peek.get("task", "classification"), "tensors": len(copied)}
    if words is not None:
        info["words_carried"] = words
    return info
