"""Fine-tuning policies for a transformer backbone, apart from how its inputs are made: which parameters train,
at what learning rate, and when.  Used by every transformer model (classifier, tagger, pair scorer).

- ``finetune``: every parameter at one learning rate (no decay on biases and norms, as in BERT's recipe).
- ``gradual``: layer-wise learning-rate decay (lower layers hold general knowledge: move them less) and gradual
  unfreezing (the head first, then one more layer from the top at even steps over the first half; ULMFiT).
- ``lora``: low-rank adapters on every linear layer of the backbone (PEFT); saved merged, so a model loads
  without PEFT.
"""

from __future__ import annotations

import re

from torch import nn


def decay_groups(named, lr: float, weight_decay: float) -> list[dict]:
    """No weight decay on biases and norms, as in BERT's recipe."""
    decay = [p for n, p in named if p.ndim > 1]
    no_decay = [p for n, p in named if p.ndim <= 1]
    return [g for g in ({"params": decay, "lr": lr, "weight_decay": weight_decay},
                        {"params": no_decay, "lr": lr, "weight_decay": 0.0}) if g["params"]]


def layer_of(name: str, n_layers: int) -> int:
    """0 = embeddings, 1..n = encoder layers, n+1 = pooler and head."""
    if "embeddings" in name:
        return 0
    m = re.search(r"\.layer\.(\d+)\.", name)
    return int(m.group(1)) + 1 if m else n_layers + 1


class Strategy:
    """The plain policy: every trainable parameter, one learning rate."""

    name = "finetune"

    def wrap(self, module: nn.Module) -> nn.Module:
        return module

    def param_groups(self, module: nn.Module, lr: float, weight_decay: float) -> list[dict]:
        return decay_groups([(n, p) for n, p in module.named_parameters() if p.requires_grad], lr, weight_decay)

    def on_step(self, module: nn.Module, step: int, total: int) -> None:
        pass


class Gradual(Strategy):
    name = "gradual"

    def __init__(self, layer_decay: float = 0.85):
        self.layer_decay = layer_decay

    def param_groups(self, module, lr, weight_decay):
        n = module.backbone.config.num_hidden_layers
        groups = []
        for depth in range(n + 2):
            named = [(k, p) for k, p in module.named_parameters() if layer_of(k, n) == depth and p.requires_grad]
            groups += decay_groups(named, lr * self.layer_decay ** (n + 1 - depth), weight_decay)
        return groups

    def on_step(self, module, step, total):
        n = module.backbone.config.num_hidden_layers
        interval = max(1, total // (2 * (n + 1)))
        open_from = max(0, n + 1 - step // interval)
        for name, p in module.named_parameters():
            p.requires_grad = layer_of(name, n) >= open_from


class LoRA(Strategy):
    name = "lora"

    def __init__(self, r: int = 8, alpha: int = 16):
        self.r, self.alpha = r, alpha

    def wrap(self, module):
        from peft import LoraConfig, get_peft_model

        adapter = LoraConfig(r=self.r, lora_alpha=self.alpha, lora_dropout=0.1, target_modules="all-linear")
        module.backbone = get_peft_model(module.backbone, adapter)
        return module


class Frozen(Strategy):
    """The backbone does not train; only what sits on it does."""

    name = "frozen"

    def wrap(self, module):
        for p in module.backbone.parameters():
            p.requires_grad = False
        return module


def make_strategy(cfg) -> Strategy:
    """The policy named by a ModelConfig's ``strategy`` (word-vector and frozen-feature models: the plain one)."""
    if cfg.strategy == "gradual":
        return Gradual(cfg.layer_decay)
    if cfg.strategy == "lora":
        return LoRA(cfg.lora_r, cfg.lora_alpha)
    return Strategy()


def merged_backbone(backbone: nn.Module) -> nn.Module:
    """A PEFT backbone with its adapters merged into a copy (training can go on); any other backbone as is."""
    if hasattr(backbone, "merge_and_unload"):
        import copy

        return copy.deepcopy(backbone).merge_and_unload()
    return backbone
