"""Domain-adaptive pretraining (DAPT, Gururangan et al. 2020): continue a transformer's masked-language-model
training on the user's own unlabelled text, then use the result as ``--encoder`` anywhere.

    transferlab adapt mlm --encoder minilm --data issues.csv --text-col body --out encoders/minilm-security

The offline checkpoints (all-MiniLM-L6-v2, all-mpnet-base-v2) are sentence encoders saved without their MLM head.
The head is the architecture's own (transformers' ``AutoModelForMaskedLM``: transform + decoder, the decoder tied
to the input embeddings), newly initialised when the checkpoint has none and reloaded from ``mlm/head.safetensors``
when the folder comes from an earlier adaptation.  Masking is whole-word and dynamic (transformers'
``DataCollatorForLanguageModeling(whole_word_mask=True)``, a fresh draw every batch).  Training runs through the one
loop (training/trainer.py) with the masked-LM task (tasks/mlm.py).

The output folder is an ordinary encoder folder: ``model.safetensors`` + ``config.json`` (the adapted encoder, no
head), the tokenizer, the sentence-transformers files of the source (pooling), ``mlm/head.safetensors``, and
``adaptation.json``: the base encoder and its hash, the data it saw (sources, parts, counts, a SHA-256 of each file
and of the texts), settings, per-epoch curves, validation perplexity before and after, and the SHA-256 of every
weights file written.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from torch import nn

from ..errors import ConfigError, DataError, ModelNotAvailableError

HEAD_FILE = Path("mlm") / "head.safetensors"
RECORD = "adaptation.json"
# files of a source folder never copied into the adapted one: its weights (written anew) and exported copies
_NOT_COPIED = {"model.safetensors", "pytorch_model.bin", RECORD}
_NOT_COPIED_DIRS = {"onnx", "openvino", "mlm", ".git", ".cache"}


class MaskedLMNet(nn.Module):
    """An encoder and its masked-LM head.  ``forward`` gives hidden states; the task runs ``head`` on the masked
    positions only (tasks/mlm.py)."""

    def __init__(self, mlm_model: nn.Module):
        super().__init__()
        self.backbone = mlm_model.base_model
        heads = [m for _, m in mlm_model.named_children() if m is not self.backbone]
        if len(heads) != 1:
            raise ConfigError(f"{type(mlm_model).__name__} has no single masked-LM head module",
                              hint="DAPT supports BERT-, RoBERTa-, MPNet- and XLM-R-style encoders")
        self.head = heads[0]
        self.config = mlm_model.config

    def forward(self, input_ids, attention_mask, token_type_ids=None):
        from ..encoders.transformer import token_states

        return token_states(self.backbone, input_ids, attention_mask, token_type_ids)

    def tied(self) -> bool:
        out = self.head_decoder()
        return out is not None and out.weight is self.backbone.get_input_embeddings().weight

    def head_decoder(self) -> nn.Linear | None:
        linears = [m for m in self.head.modules() if isinstance(m, nn.Linear)
                   and m.out_features == self.config.vocab_size]
        return linears[-1] if linears else None


def load_mlm(location: str, *, local: bool, hub: dict, trust_remote_code: bool = False):
    """(tokenizer, MaskedLMNet, how the head was made)."""
    from transformers import AutoModelForMaskedLM, AutoTokenizer

    from ..encoders.zoo import refuse_folder_code, remote_code_refusals

    if local:
        refuse_folder_code(location, trust_remote_code)
    from transformers.utils import logging as hf_logging

    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()  # its table of newly initialised head weights: we report "MLM head: new"
    try:
        with remote_code_refusals(location):
            tokenizer = AutoTokenizer.from_pretrained(location, **hub)
            model, info = AutoModelForMaskedLM.from_pretrained(location, use_safetensors=True, dtype=torch.float32,
                                                               output_loading_info=True, **hub)
    except OSError as exc:
        raise ModelNotAvailableError(f"cannot load a transformer from here: {exc}".splitlines()[0], where=location,
                                     hint="give a local model folder with safetensors weights, a hub id when online, "
                                          "or a short name from `transferlab models`") from None
    finally:
        hf_logging.set_verbosity(verbosity)
    if not getattr(tokenizer, "is_fast", False):
        raise ConfigError("whole-word masking needs a fast tokenizer (word offsets)", where=location)
    if tokenizer.mask_token_id is None:
        raise ConfigError("this tokenizer has no mask token: it cannot do masked-language modelling", where=location)
    net = MaskedLMNet(model)
    missing_head = [k for k in info.get("missing_keys", []) if not k.startswith(model.base_model_prefix + ".")]
    head_from = "checkpoint" if not missing_head else "new"
    saved = Path(location) / HEAD_FILE if local else None
    if saved is not None and saved.is_file():
        from safetensors.torch import load_file

        state = load_file(saved)
        result = net.head.load_state_dict(state, strict=False)
        unexpected = list(result.unexpected_keys)
        if unexpected:
            raise ConfigError(f"{saved} holds weights this head does not have: {unexpected[:3]}", where=str(saved))
        head_from = f"{HEAD_FILE.as_posix()} (an earlier adaptation)"
    if not net.tied():
        raise ConfigError("the MLM decoder is not tied to the input embeddings",
                          where=location, hint="DAPT expects tie_word_embeddings (BERT-style checkpoints)")
    return tokenizer, net, head_from


@dataclass
class MaskedBatches:
    """What the training loop asks of a backend, for masked-LM: texts cut into windows of ``max_length`` tokens,
    batches masked by transformers' collator (whole words, a fresh draw each time)."""

    tokenizer: object
    max_length: int
    probability: float = 0.15
    whole_word: bool = True
    seed: int = 13
    head_warmup: int = 0  # optimizer steps at the start with the backbone frozen: a new head learns on its own
    collator: object = field(init=False)

    def __post_init__(self):
        self.collator = self.masker(self.seed)

    def masker(self, seed: int):
        from transformers import DataCollatorForLanguageModeling

        # with whole-word masking transformers replaces every chosen word by [MASK] (it cannot draw random whole
        # words), so BERT's 80/10/10 applies only to subword masking; said here rather than warned at every call
        replace = {"mask_replace_prob": 1.0, "random_replace_prob": 0.0} if self.whole_word else {}
        return DataCollatorForLanguageModeling(self.tokenizer, mlm_probability=self.probability,
                                               whole_word_mask=self.whole_word, seed=seed, **replace)

    def prepare(self, texts: Sequence[str], chunk: int = 1000) -> list[dict]:
        items: list[dict] = []
        for start in range(0, len(texts), chunk):
            enc = self.tokenizer(list(texts[start : start + chunk]), truncation=True, max_length=self.max_length,
                                 return_overflowing_tokens=True, return_offsets_mapping=True,
                                 return_special_tokens_mask=True)
            for i in range(len(enc["input_ids"])):
                if sum(1 for m in enc["special_tokens_mask"][i] if not m) < 2:
                    continue  # nothing to predict from (an empty text, a lone token)
                items.append({"input_ids": enc["input_ids"][i], "offset_mapping": enc["offset_mapping"][i],
                              "special_tokens_mask": enc["special_tokens_mask"][i]})
        return items

    def collate(self, items: Sequence[dict], collator=None) -> dict[str, torch.Tensor]:
        # tokenizer.pad (inside the collator) pads the ids and masks but not the word offsets: pad those here
        width = max(len(it["input_ids"]) for it in items)
        items = [{**it, "offset_mapping": list(it["offset_mapping"]) + [(0, 0)] * (width - len(it["input_ids"]))}
                 for it in items]
        batch = (collator or self.collator)(items)
        return {k: batch[k] for k in ("input_ids", "attention_mask", "token_type_ids", "labels") if k in batch}

    def length(self, item: dict) -> int:
        return len(item["input_ids"])

    def param_groups(self, module: nn.Module, lr: float, weight_decay: float) -> list[dict]:
        from ..training.strategies import Strategy

        return Strategy().param_groups(module, lr, weight_decay)

    def on_step(self, module: nn.Module, step: int, total: int) -> None:
        # A new head (the offline checkpoints have none) starts as a random transform over the tied embeddings:
        # its first gradients would push noise into every encoder layer and the embeddings themselves.  With
        # ``head_warmup`` the backbone (tied decoder included) waits until the head's transform and bias have
        # learnt for that many steps; AdamW skips parameters without a gradient, so nothing else changes.
        if self.head_warmup and step in (0, self.head_warmup):
            for p in module.backbone.parameters():
                p.requires_grad = step >= self.head_warmup

    def scores(self, module: nn.Module, items: Sequence[dict], batch_size: int, device) -> tuple[float, int, int]:
        """Masked-LM loss sums on ``items`` with the same masks every call (a fixed seed): comparable epochs."""
        from ..tasks.mlm import masked_scores

        fixed = self.masker(self.seed + 1)
        order = np.argsort([len(it["input_ids"]) for it in items], kind="stable")
        chunks = (self.collate([items[i] for i in order[s : s + batch_size]], fixed)
                  for s in range(0, len(order), batch_size))
        return masked_scores(module, chunks, device)


def texts_digest(texts: Sequence[str]) -> str:
    h = hashlib.sha256()
    for t in texts:
        h.update(t.encode("utf-8", "surrogatepass"))
        h.update(b"\x00")
    return h.hexdigest()


def adapt_mlm(encoder: str, texts: Sequence[str], out: str | Path, *, validation: Sequence[str] | None = None,
              validation_fraction: float = 0.05, epochs: int = 1, batch_size: int = 16, lr: float = 5e-5,
              max_length: int = 256, probability: float = 0.15, whole_word: bool = True, patience: int | None = None,
              head_warmup: int = 0, seed: int = 13, device: str = "auto", precision: str = "auto",
              sources: list[dict] | None = None, trust_remote_code: bool = False, show_progress: bool = True) -> dict:
    """Continue masked-LM training of ``encoder`` on ``texts`` and write the adapted encoder folder to ``out``.

    ``validation`` texts (default: ``validation_fraction`` of ``texts``, drawn with ``seed``) measure perplexity
    each epoch; the epoch with the lowest validation loss is kept.  ``head_warmup`` steps first train the masked-LM
    head alone, the backbone frozen (for a new head).  ``sources`` describes where the texts came from
    (recorded in adaptation.json).  Returns the record."""
    from ..config import TrainConfig
    from ..encoders.transformer import hub_kwargs
    from ..encoders.zoo import resolve, weight_files
    from ..models.base import environment
    from ..tasks.mlm import MaskedLanguageModelling
    from ..training.callbacks import CurvesPlot, EarlyStopping, MetricsFile
    from ..training.trainer import Trainer, pick_device

    texts = [t for t in texts if isinstance(t, str) and t.strip()]
    if len(texts) < 2:
        raise DataError("masked-LM adaptation needs at least two non-empty texts", hint="give more text")
    if not 0.0 < probability < 1.0:
        raise ConfigError(f"masking probability must lie in (0, 1), got {probability}", hint="e.g. 0.15")
    if head_warmup < 0:
        raise ConfigError(f"head warm-up must be 0 or more steps, got {head_warmup}")
    out = Path(out)
    if out.exists() and any(out.iterdir()):
        raise ConfigError("the output folder exists and is not empty", where=str(out),
                          hint="give a new folder: an adapted encoder never overwrites another")
    resolved = resolve(encoder)
    if resolved.family != "transformer":
        raise ConfigError(f"{encoder} is not a transformer: masked-LM adaptation needs one",
                          hint="use minilm, mpnet, a local transformer folder or a hub id")
    rng = np.random.default_rng(seed)
    if validation is None:
        order = rng.permutation(len(texts))
        n_val = max(1, int(round(validation_fraction * len(texts)))) if validation_fraction > 0 else 0
        validation = [texts[i] for i in order[:n_val]]
        texts = [texts[i] for i in sorted(order[n_val:])]
    started = time.perf_counter()
    tokenizer, net, head_from = load_mlm(resolved.location, local=resolved.local,
                                         hub=hub_kwargs(resolved, trust_remote_code),
                                         trust_remote_code=trust_remote_code)
    limit = min(max_length, getattr(tokenizer, "model_max_length", max_length) or max_length)
    data = MaskedBatches(tokenizer, limit, probability, whole_word, seed, head_warmup)
    items, val_items = data.prepare(texts), data.prepare(list(validation))
    if not items:
        raise DataError("no text left to learn from after tokenising", hint="give longer texts")
    dev = pick_device(device)
    net.to(dev)
    eval_batch = max(batch_size, 32)
    task = MaskedLanguageModelling()

    def evaluate(val, _targets=None):  # called by the loop, on the network it trains
        return task.validation_metrics(data.scores(trainer.unwrapped, val, eval_batch, dev))

    before = task.validation_metrics(data.scores(net, val_items, eval_batch, dev)) if val_items else None
    cfg = TrainConfig(epochs=epochs, batch_size=batch_size, lr=lr, seed=seed, precision=precision)
    created = not out.exists()
    out.mkdir(parents=True, exist_ok=True)
    try:
        callbacks = [MetricsFile(out / "metrics.jsonl"), CurvesPlot(out / "curves.png")]
        if val_items:
            callbacks.append(EarlyStopping("loss", patience, mode="min"))
        torch.manual_seed(seed)
        trainer = Trainer(net, data, task, cfg, evaluate=evaluate, callbacks=callbacks, device=dev)
        history = trainer.fit(items, None, val_items or None, None)
        net = trainer.module
        after = task.validation_metrics(data.scores(net, val_items, eval_batch, dev)) if val_items else None
        _write_folder(out, resolved, tokenizer, net)
    except BaseException:
        if created:  # a half-written encoder folder must not pass for a finished one
            shutil.rmtree(out, ignore_errors=True)
        raise
    record = {
        "kind": "masked-lm", "format_version": 1,
        "base": {**resolved.to_dict(), "head": head_from},
        "data": {"sources": sources or [], "n_texts": len(texts), "n_validation_texts": len(validation),
                 "n_windows": len(items), "n_tokens": int(sum(len(it["input_ids"]) for it in items)),
                 "texts_sha256": texts_digest(texts), "validation_sha256": texts_digest(validation)},
        "settings": {"epochs": epochs, "batch_size": batch_size, "lr": lr, "max_length": limit,
                     "mlm_probability": probability, "whole_word_mask": whole_word, "head_warmup": head_warmup,
                     "seed": seed, "device": dev, "precision": precision},
        "history": history, "best": trainer.best,
        "validation": {"before": before, "after": after},
        "seconds": round(time.perf_counter() - started, 1),
        "weights": weight_files(out),
        "environment": environment(),
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    (out / RECORD).write_text(json.dumps(record, indent=2, default=str) + "\n", encoding="utf-8")
    return record


def _write_folder(out: Path, resolved, tokenizer, net: MaskedLMNet) -> None:
    """The source's other files (sentence-transformers pooling, README...), then the adapted weights, the tokenizer
    and the head (its decoder is the embedding matrix, so it is saved without it)."""
    from safetensors.torch import save_file

    if resolved.local and Path(resolved.location).is_dir():
        src = Path(resolved.location)
        for path in sorted(src.rglob("*")):
            rel = path.relative_to(src)
            if (path.is_file() and not path.is_symlink() and rel.name not in _NOT_COPIED
                    and not set(rel.parts[:-1]) & _NOT_COPIED_DIRS
                    and not rel.name.endswith((".safetensors", ".bin", ".onnx"))):
                (out / rel).parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(path, out / rel)
    state = net.backbone.state_dict()
    extra = _unadapted_tensors(resolved, state)
    net.backbone.save_pretrained(out, safe_serialization=True, state_dict={**state, **extra} if extra else None)
    tokenizer.save_pretrained(out)
    state = head_state(net)
    (out / HEAD_FILE).parent.mkdir(parents=True, exist_ok=True)
    save_file(state, str(out / HEAD_FILE), metadata={"decoder_weight": "tied to the input embeddings"})


def _unadapted_tensors(resolved, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Tensors of the source checkpoint that masked-LM training never had (BERT's pooler: transformers builds the
    masked-LM model without it), to be saved unchanged beside the adapted ones so the folder loads as a whole encoder
    instead of with freshly initialised weights.  Only for a local single-file checkpoint."""
    from safetensors import safe_open

    src = Path(resolved.location) / "model.safetensors"
    if not (resolved.local and src.is_file()):
        return {}
    dtype = next(iter(state.values())).dtype
    with safe_open(str(src), "pt") as f:
        return {k: f.get_tensor(k).to(dtype) for k in f.keys() if k not in state}


def head_state(net: MaskedLMNet) -> dict[str, torch.Tensor]:
    """The head's own tensors: each shared one once (named_parameters drops aliases such as BERT's decoder bias),
    without the decoder weight, which is the encoder's embedding matrix."""
    decoder = net.head_decoder()
    named = [*net.head.named_parameters(), *net.head.named_buffers()]
    return {k: v.detach().cpu().contiguous() for k, v in named if decoder is None or v is not decoder.weight}
