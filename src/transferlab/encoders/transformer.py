"""Transformer encoders: loading a backbone and its tokenizer (safetensors only, no foreign code unless the user
says so), restoring one from a saved model folder, and the modules that turn a batch into token states."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from ..errors import ConfigError, ModelFileError, ModelNotAvailableError
from .zoo import Resolved, refuse_folder_code, remote_code_refusals


def hub_kwargs(resolved: Resolved, trust_remote_code: bool) -> dict:
    # always an explicit bool: None lets transformers prompt on stdin, which `predict` reads as its input
    kwargs = {"trust_remote_code": bool(trust_remote_code)}
    if not resolved.local and resolved.revision:
        kwargs["revision"] = resolved.revision
    return kwargs


# the names transformers' configurations give the attention-probability dropout (BERT, MPNet, RoBERTa, ELECTRA...:
# the first; DistilBERT, BART and most decoders: the second)
ATTENTION_DROPOUT_KEYS = ("attention_probs_dropout_prob", "attention_dropout")


def load_pretrained(resolved: Resolved, trust_remote_code: bool = False, attention_dropout: float | None = None):
    """(tokenizer, backbone) of a pretrained transformer, in float32 whatever the stored dtype; ``attention_dropout``
    replaces the checkpoint's attention-probability dropout (ModelConfig.attention_dropout)."""
    from transformers import AutoConfig, AutoModel, AutoTokenizer

    if resolved.local:
        refuse_folder_code(resolved.location, trust_remote_code)
    kwargs = hub_kwargs(resolved, trust_remote_code)
    try:
        with remote_code_refusals(resolved.location):
            tokenizer = AutoTokenizer.from_pretrained(resolved.location, **kwargs)
            if attention_dropout is not None:
                config = AutoConfig.from_pretrained(resolved.location, **kwargs)
                keys = [k for k in ATTENTION_DROPOUT_KEYS if hasattr(config, k)]
                if not keys:
                    raise ConfigError(f"this {config.model_type} encoder's configuration names no attention dropout "
                                      f"({' or '.join(ATTENTION_DROPOUT_KEYS)})", where=resolved.location,
                                      hint="drop --attention-dropout")
                for key in keys:
                    setattr(config, key, float(attention_dropout))
                kwargs["config"] = config
            backbone = AutoModel.from_pretrained(resolved.location, use_safetensors=True, dtype=torch.float32,
                                                 **kwargs)
    except OSError as exc:
        raise ModelNotAvailableError(f"cannot load a transformer from here: {exc}".splitlines()[0],
                                     where=resolved.location,
                                     hint="give a local model folder with safetensors weights, a hub id when "
                                          "online, or a short name from `transferlab models`") from None
    return tokenizer, backbone


def restore_pretrained(folder: Path, trust_remote_code: bool = False):
    """(tokenizer, backbone) from a saved model folder's tokenizer/ and encoder/ (weights come separately)."""
    from transformers import AutoConfig, AutoModel, AutoTokenizer

    trust = bool(trust_remote_code)
    for sub in ("tokenizer", "encoder"):
        if not (folder / sub).is_dir():
            raise ModelFileError(f"the {sub}/ folder is missing", where=str(folder), hint="re-save or retrain")
        refuse_folder_code(folder / sub, trust)
    with remote_code_refusals(str(folder)):
        tokenizer = AutoTokenizer.from_pretrained(folder / "tokenizer", trust_remote_code=trust)
        config = AutoConfig.from_pretrained(folder / "encoder", trust_remote_code=trust)
        backbone = AutoModel.from_config(config, trust_remote_code=trust)
    return tokenizer, backbone


def save_pretrained_parts(folder: Path, tokenizer, backbone) -> None:
    tokenizer.save_pretrained(folder / "tokenizer")
    base = backbone.get_base_model() if hasattr(backbone, "get_base_model") else backbone
    base.config.save_pretrained(folder / "encoder")


def token_states(backbone: nn.Module, input_ids, attention_mask, token_type_ids=None) -> torch.Tensor:
    kwargs = {"input_ids": input_ids, "attention_mask": attention_mask}
    if token_type_ids is not None:
        kwargs["token_type_ids"] = token_type_ids
    return backbone(**kwargs).last_hidden_state


def gather_words(states: torch.Tensor, word_starts: torch.Tensor) -> torch.Tensor:
    """(B, S, H) subword states -> (B, W, H) states of each word's first subword (padding positions give row 0)."""
    index = word_starts.unsqueeze(-1).expand(-1, -1, states.size(-1))
    return states.gather(1, index)
