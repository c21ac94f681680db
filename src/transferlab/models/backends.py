"""How each family turns examples into tensors, builds its network, and saves what it needs.

A backend is the only family-specific code: the estimator, the trainer, saving and evaluation
are shared (the Flair idea: a new family implements "how do I embed a data point").
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from torch import nn

from ..config import FROZEN_FEATURES, ModelConfig
from ..data.records import Examples
from ..encoders import wordvec
from ..encoders.sentence import quiet_length_warning
from ..encoders.zoo import TRANSFORMER, WORD_VECTORS, Resolved, refuse_folder_code
from ..errors import ConfigError, ModelFileError
from .networks import FeatureNet, TransformerNet, WordVectorNet


PAIR = "pair_"


class Backend:
    family: str

    def __init__(self, cfg: ModelConfig, resolved: Resolved, device: str):
        self.cfg, self.resolved, self.device = cfg, resolved, device
        self.info: dict = {}

    # --- fit time / load time
    def build(self, train: Examples, validation: Examples | None, n_labels: int, seed: int) -> nn.Module: ...
    def restore(self, folder: Path, n_labels: int, info: dict) -> nn.Module: ...
    def save_files(self, folder: Path, module: nn.Module) -> None: ...

    # --- data: sentence pairs are handled here once; a family describes one text (prepare_texts/collate_texts)
    # and its network receives the second text's tensors under the same names prefixed with "pair_".
    def prepare(self, examples: Examples) -> list[dict]:
        items = self.prepare_texts(examples.texts)
        if examples.pairs is None:
            return items
        return [{**a, **{PAIR + k: v for k, v in b.items()}} for a, b in zip(items, self.prepare_texts(examples.pairs))]

    def collate(self, items: Sequence[dict]) -> dict[str, torch.Tensor]:
        batch = self.collate_texts([{k: v for k, v in it.items() if not k.startswith(PAIR)} for it in items])
        if any(k.startswith(PAIR) for k in items[0]):
            second = self.collate_texts([{k[len(PAIR):]: v for k, v in it.items() if k.startswith(PAIR)}
                                         for it in items])
            batch.update({PAIR + k: v for k, v in second.items()})
        return batch

    def prepare_texts(self, texts: Sequence[str]) -> list[dict]: ...

    def collate_texts(self, items: Sequence[dict]) -> dict[str, torch.Tensor]: ...

    def end_fit(self) -> None:
        """Training is over (a backend that scored training texts differently while it trained stops here)."""

    def length(self, item: dict) -> int:
        return len(item.get("input_ids", ()))

    # --- training: the fine-tuning policy (training/strategies.py)
    @property
    def strategy(self):
        if getattr(self, "_strategy", None) is None:
            from ..training.strategies import make_strategy

            self._strategy = make_strategy(self.cfg)
        return self._strategy

    def param_groups(self, module: nn.Module, lr: float, weight_decay: float) -> list[dict]:
        return self.strategy.param_groups(module, lr, weight_decay)

    def on_step(self, module: nn.Module, step: int, total: int) -> None:
        self.strategy.on_step(module, step, total)

    def state_dict(self, module: nn.Module) -> dict[str, torch.Tensor]:
        return module.state_dict()


def _pad(seqs: Sequence[Sequence[int]], value: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), width), value, dtype=torch.long)
    mask = torch.zeros((len(seqs), width), dtype=torch.long)
    for i, s in enumerate(seqs):
        ids[i, : len(s)] = torch.as_tensor(s, dtype=torch.long)
        mask[i, : len(s)] = 1
    return ids, mask


class WordVectorBackend(Backend):
    family = WORD_VECTORS

    def _tokens(self, texts: Sequence[str]) -> list[list[str]]:
        return wordvec.tokenize_all(texts, self.cfg.max_length, self.cfg.truncation)

    def build(self, train, validation, n_labels, seed):
        token_lists = self._tokens(train.texts + (train.pairs or []))
        if self.resolved.name == "fasttext-indomain":
            unlabeled = token_lists + (self._tokens(validation.texts) if validation is not None and len(validation) else [])
            vectors = wordvec.train_fasttext(unlabeled, dim=self.cfg.indomain_dim, seed=seed)
        else:
            candidates = {t for toks in token_lists for t in toks}
            vectors = wordvec.load_vectors(self.resolved, restrict=candidates)
        vocab = wordvec.build_vocab(token_lists, set(vectors.words), min_count=self.cfg.min_count)
        matrix, hits = wordvec.embedding_matrix(vocab, vectors, vectors.dim, seed)
        self.vocab = vocab
        self.index = {w: i for i, w in enumerate(vocab)}
        self.info = {"vocab_size": len(vocab), "emb_dim": vectors.dim, "pretrained_hits": hits,
                     "oov_in_vocab": len(vocab) - 2 - hits}
        module = self._module(n_labels, train.is_pair)
        module.embedding.weight.data.copy_(torch.from_numpy(matrix))
        return module

    def _module(self, n_labels: int, pair: bool) -> WordVectorNet:
        self.info["pair"] = pair
        return WordVectorNet(self.info["vocab_size"], self.info["emb_dim"], self.cfg.head, n_labels, pair=pair,
                             trainable=self.cfg.strategy == "trainable", dropout=self.cfg.dropout,
                             hidden=self.cfg.hidden, head_options=self.cfg.head_options)

    def restore(self, folder, n_labels, info):
        vocab_file = folder / "vocab.txt"
        if not vocab_file.exists():
            raise ModelFileError("vocab.txt is missing", where=str(folder), hint="re-save or retrain the model")
        self.vocab = vocab_file.read_text(encoding="utf-8").split("\n")
        self.index = {w: i for i, w in enumerate(self.vocab)}
        self.info = dict(info)
        return self._module(n_labels, info.get("pair", False))

    def save_files(self, folder, module):
        # Tokens never contain a newline (the tokenizer splits on whitespace), so one per line is safe.
        (folder / "vocab.txt").write_text("\n".join(self.vocab), encoding="utf-8")

    def prepare_texts(self, texts):
        return [{"input_ids": x} for x in wordvec.encode_tokens(self._tokens(texts), self.index)]

    def collate_texts(self, items):
        ids, mask = _pad([it["input_ids"] for it in items])
        return {"input_ids": ids, "attention_mask": mask}


class FrozenFeatureBackend(Backend):
    """A sentence encoder used frozen: embeddings computed once (and cached), then a small head.

    With ``strategy="contrastive"`` the encoder is first tuned on pairs of the labelled texts (the SetFit idea,
    training/contrastive.py), then frozen; the tuned encoder is saved in the model folder (``encoder/``).
    """

    family = FROZEN_FEATURES

    @property
    def contrastive(self) -> bool:
        return self.cfg.strategy == "contrastive"

    def _encoder(self):
        if getattr(self, "_enc", None) is None:
            from ..encoders.sentence import SentenceEncoder

            # A tuned encoder is new weights: its embeddings must not be cached under the base model's key.
            self._enc = SentenceEncoder(self.resolved, device=self.device, max_length=self.cfg.max_length,
                                        long_document=self.cfg.truncation, use_cache=not self.contrastive,
                                        trust_remote_code=self.cfg.trust_remote_code)
            if getattr(self, "_graph", None) is not None:
                self._enc.use_graph(self._graph)
        return self._enc

    def use_graph(self, graph) -> None:
        """Embed with an exported ONNX graph of the encoder (runtime/onnx.py); the head stays in PyTorch."""
        self._graph = graph
        if getattr(self, "_enc", None) is not None:
            self._enc.use_graph(graph)

    def build(self, train, validation, n_labels, seed):
        enc = self._encoder()
        self.info = {"dim": enc.dim, "pair": train.is_pair, "max_length": enc.max_length,
                     "encoder_params": sum(p.numel() for p in enc.model.parameters())}
        if self.cfg.tfidf_dim:  # the hybrid family: TF-IDF (SVD) features beside the embedding
            from ..encoders.tfidf import TfidfBlock

            self._tfidf = TfidfBlock.fit(train.texts + (train.pairs or []), self.cfg.tfidf_dim, seed)
            self.info.update(tfidf_dim=self._tfidf.dim, dim=enc.dim + self._tfidf.dim)
        elif self.cfg.tfidf_stack:  # the stacked hybrid: a TF-IDF model's out-of-fold scores beside the embedding
            from ..encoders.tfidf import TfidfStack

            if train.is_pair or train.multilabel:
                raise ConfigError("stacked TF-IDF scores are for single texts with one label each",
                                  where=train.source, hint="drop --tfidf-stack (or use --tfidf-dim)")
            self._tfidf = TfidfStack.fit(train.texts, train.labels, seed)
            self.info.update(tfidf_dim=self._tfidf.dim, tfidf_kind="stack", dim=enc.dim + self._tfidf.dim)
        if self.contrastive:
            from ..training.contrastive import tune_encoder

            if train.is_pair:
                raise ConfigError("contrastive few-shot training classifies single texts, not sentence pairs",
                                  where=train.source, hint="use --strategy finetune for pair data")
            cfg = self.cfg
            self.info["contrastive"] = tune_encoder(
                enc.model, train.texts, train.labels, epochs=cfg.contrastive_epochs, lr=cfg.contrastive_lr,
                batch_size=cfg.contrastive_batch_size, seed=seed,
                max_pairs=cfg.contrastive_pairs or 40 * len(train))
        module = self._module(n_labels)
        if self.cfg.head_solver != "lbfgs":  # the lbfgs head (SetFit's) sees the raw, unit-length embeddings
            feats = [it["features"] for it in self.prepare(train)]
            module.set_standardisation(torch.from_numpy(np.stack(feats)))
        return module

    def _module(self, n_labels):
        return FeatureNet(self.info["dim"], n_labels, pair=self.info["pair"],
                          hidden=self.cfg.hidden or (256 if self.cfg.head == "mlp" else None),
                          dropout=self.cfg.dropout if self.cfg.head == "mlp" else 0.0)

    def restore(self, folder, n_labels, info):
        self.info = dict(info)
        if info.get("tfidf_dim"):
            from ..encoders.tfidf import load_block

            self._tfidf = load_block(folder, info.get("tfidf_files") or {})
        if self.resolved.local and not self.contrastive:  # refused at load, not at the first prediction
            refuse_folder_code(self.resolved.location, self.cfg.trust_remote_code)
        if self.contrastive:
            from ..encoders.sentence import SentenceEncoder
            from ..encoders.zoo import TRANSFORMER, Resolved, sha256_file

            weights = folder / "encoder" / "model.safetensors"
            if not weights.is_file():
                raise ModelFileError("the tuned encoder (encoder/model.safetensors) is missing", where=str(folder),
                                     hint="copy the whole model folder")
            if sha256_file(weights) != info.get("encoder_sha256"):
                raise ModelFileError("encoder/model.safetensors was altered or corrupted (SHA-256 differs from "
                                     "config.json)", where=str(weights), hint="restore it or retrain")
            local = Resolved(name=self.resolved.name, family=TRANSFORMER, location=str(folder / "encoder"),
                             local=True, sha256=info["encoder_sha256"])
            self._enc = SentenceEncoder(local, device=self.device, max_length=self.cfg.max_length,
                                        long_document=self.cfg.truncation, use_cache=False,
                                        trust_remote_code=self.cfg.trust_remote_code)
        return self._module(n_labels)

    def end_fit(self):
        if getattr(self, "_tfidf", None) is not None:
            self._tfidf.end_fit()  # from here on training texts are scored like any other

    def save_files(self, folder, module):
        if getattr(self, "_tfidf", None) is not None:
            self.info["tfidf_files"] = self._tfidf.save(folder)
        if not self.contrastive:
            return  # the encoder is referenced by name and checked by SHA-256 at load; only the head is saved
        from ..encoders.zoo import sha256_file

        self._encoder().model.save(str(folder / "encoder"), safe_serialization=True)
        self.info["encoder_sha256"] = sha256_file(folder / "encoder" / "model.safetensors")

    def prepare_texts(self, texts):
        vectors = self._encoder().encode(texts, show_progress=len(texts) > 256)
        if getattr(self, "_tfidf", None) is not None and len(texts):
            vectors = np.hstack([vectors, self._tfidf.transform(texts)])
        return [{"features": v} for v in vectors]

    def collate_texts(self, items):
        return {"features": torch.from_numpy(np.stack([it["features"] for it in items]))}

    def length(self, item):
        return 1


class TransformerBackend(Backend):
    family = TRANSFORMER

    def build(self, train, validation, n_labels, seed):
        from ..encoders.transformer import load_pretrained

        self.tokenizer, backbone = load_pretrained(self.resolved, self.cfg.trust_remote_code,
                                                   self.cfg.attention_dropout)
        self.info = {"pair": train.is_pair}
        return self._wrap(backbone, n_labels)

    def _wrap(self, backbone, n_labels, *, restoring: bool = False):
        module = TransformerNet(backbone, n_labels, pooling=self.cfg.pooling, dropout=self.cfg.dropout,
                                hidden=self.cfg.hidden or (256 if self.cfg.head == "mlp" else None))
        return module if restoring else self.strategy.wrap(module)

    def restore(self, folder, n_labels, info):
        from ..encoders.transformer import restore_pretrained

        self.tokenizer, backbone = restore_pretrained(folder, self.cfg.trust_remote_code)
        self.info = dict(info)
        # Saved LoRA weights are already merged into the backbone: load them as a plain model.
        return self._wrap(backbone, n_labels, restoring=True)

    def save_files(self, folder, module):
        from ..encoders.transformer import save_pretrained_parts

        save_pretrained_parts(folder, self.tokenizer, module.backbone)

    def state_dict(self, module):
        from ..training.strategies import merged_backbone

        backbone = merged_backbone(module.backbone)  # a reloaded LoRA model is already merged
        state = {f"backbone.{k}": v for k, v in backbone.state_dict().items()}
        state.update({f"classifier.{k}": v for k, v in module.classifier.state_dict().items()})
        return state

    # --- data
    def _ids(self, text: str) -> list[int]:
        tok, n = self.tokenizer, self.cfg.max_length
        if self.cfg.truncation == "head":
            return tok(text[: n * 20], truncation=True, max_length=n)["input_ids"]
        body = n - tok.num_special_tokens_to_add(pair=False)
        cut = text if len(text) <= body * 24 else text[: body * 12] + " " + text[-body * 12:]
        ids = quiet_length_warning(tok)(cut, add_special_tokens=False)["input_ids"]
        if len(ids) > body:
            head = body // 4
            ids = ids[:head] + ids[len(ids) - (body - head):]
        prefix, suffix = self._special_template()
        return prefix + ids + suffix

    def _special_template(self) -> tuple[list[int], list[int]]:
        """The special tokens a single text gets before and after it ([CLS] .. [SEP], <s> .. </s>), found by
        tokenising a probe word: transformers 5 tokenizers no longer all have build_inputs_with_special_tokens."""
        if getattr(self, "_template", None) is None:
            tok = self.tokenizer
            full = tok("hello")["input_ids"]
            body = tok("hello", add_special_tokens=False)["input_ids"]
            k = next(i for i in range(len(full) - len(body) + 1) if full[i:i + len(body)] == body)
            self._template = (full[:k], full[k + len(body):])
        return self._template

    def prepare(self, examples):
        if examples.pairs is None:
            return self.prepare_texts(examples.texts)
        # A cross-encoder reads both texts as one input ([CLS] a [SEP] b [SEP]), so pairs are not two items here.
        n = self.cfg.max_length
        enc = self.tokenizer([t[: n * 20] for t in examples.texts], [p[: n * 20] for p in examples.pairs],
                             truncation="longest_first", max_length=n)
        keys = [k for k in ("input_ids", "token_type_ids") if k in enc]
        return [{k: enc[k][i] for k in keys} for i in range(len(examples))]

    def prepare_texts(self, texts):
        from tqdm.auto import tqdm

        return [{"input_ids": self._ids(t)} for t in tqdm(texts, desc="tokenising", leave=False,
                                                           disable=True if len(texts) < 2000 else None)]

    def collate(self, items):
        ids, mask = _pad([it["input_ids"] for it in items], value=self.tokenizer.pad_token_id or 0)
        batch = {"input_ids": ids, "attention_mask": mask}
        if "token_type_ids" in items[0]:
            batch["token_type_ids"], _ = _pad([it["token_type_ids"] for it in items])
        return batch


def make_backend(cfg: ModelConfig, resolved: Resolved, device: str) -> Backend:
    cls = {WORD_VECTORS: WordVectorBackend, FROZEN_FEATURES: FrozenFeatureBackend,
           TRANSFORMER: TransformerBackend}[cfg.family]
    return cls(cfg, resolved, device)


def read_json(path: Path, missing: str, hint: str) -> dict:
    """A folder's JSON record (config.json, cascade.json): missing or unparsable is a ModelFileError."""
    if not path.is_file():
        raise ModelFileError(f"{path.name} is missing: {missing}", where=str(path.parent), hint=hint)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ModelFileError(f"{path.name} is not valid JSON ({exc})", where=str(path)) from None


def write_json(path: Path, data: dict) -> None:
    path.write_text(json.dumps(data, indent=2, sort_keys=False, default=str) + "\n", encoding="utf-8")
