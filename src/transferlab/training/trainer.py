"""The one training loop, for every task and strategy: AdamW, linear warm-up and decay, gradient accumulation and
mixed precision through Accelerate (the same code on CPU, one GPU or several), events for the plugins.

The loop knows nothing of labels: the task (tasks/) turns a batch's targets and the network's outputs into a loss
and judges validation outputs; the backend (models/backends.py, models/tagging.py) turns items into tensors and
owns the fine-tuning policy (training/strategies.py).  Two fits do not run through it, on purpose: the
contrastive encoder tuning (training/contrastive.py) trains a sentence-transformers model on text pairs with its own
cosine loss before any head exists, and the L-BFGS head (training/logistic.py) is a closed-form solver, not a
gradient loop."""

from __future__ import annotations

import time
from typing import Sequence

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from ..config import TrainConfig
from .callbacks import Callback


def pick_device(requested: str = "auto") -> str:
    if requested != "auto":
        return requested
    if torch.cuda.is_available():
        return "cuda"
    return "cpu"


def mixed_precision(cfg: TrainConfig, device: str) -> str:
    if cfg.precision == "auto":
        return "bf16" if device.startswith("cuda") and torch.cuda.is_bf16_supported() else "no"
    return {"fp32": "no"}.get(cfg.precision, cfg.precision)


def batches(backend, items: Sequence[dict], targets, batch_size: int, *, shuffle: bool,
            rng: np.random.Generator | None = None, draw: np.ndarray | None = None, task=None,
            shard: tuple[int, int] | None = None, buckets: bool = False):
    """Yield (indices, batch).  Evaluation sorts by length so padding is small; training shuffles, or with
    ``draw`` (per-example probabilities from a class-aware sampler) draws an epoch's worth with replacement, or
    follows the backend's own ``plan`` (a multi-task model: each batch from one task).  ``shard`` (rank, processes):
    data-parallel training, this process's part of each global batch (training/distributed.py).  ``buckets``
    (training only): batches of similar lengths, as the HF Trainer's ``group_by_length``: the shuffled (or drawn)
    order is cut into windows of 50 batches, each window sorted by length and cut into batches, and the batches of
    the epoch shuffled, so padding shrinks while every example still comes once per epoch in a random batch."""
    if shuffle and hasattr(backend, "plan"):  # a backend with its own batch plan (several tasks)
        yield from backend.plan(batch_size, rng)
        return
    if draw is not None:
        order = rng.choice(len(items), size=len(items), replace=True, p=draw)
    elif shuffle:
        order = rng.permutation(len(items))
    else:
        order = np.argsort([backend.length(it) for it in items], kind="stable")
    groups = [order[start : start + batch_size] for start in range(0, len(order), batch_size)]
    if buckets and (shuffle or draw is not None):
        window = 50 * batch_size
        groups = []
        for start in range(0, len(order), window):
            part = order[start : start + window]
            part = part[np.argsort([-backend.length(items[i]) for i in part], kind="stable")]
            groups += [part[k : k + batch_size] for k in range(0, len(part), batch_size)]
        groups = [groups[i] for i in rng.permutation(len(groups))]
    for idx in groups:
        if shard is not None and shard[1] > 1:
            from .distributed import share

            idx = share(idx, *shard)
        batch = backend.collate([items[i] for i in idx])
        if targets is not None:
            # without a task: an array of per-example targets (the classification case)
            batch["labels"] = task.collate_targets(targets, idx) if task else torch.as_tensor(targets[idx])
        yield idx, batch


class Trainer:
    def __init__(self, module: nn.Module, backend, task, cfg: TrainConfig, *, evaluate,
                 callbacks: Sequence[Callback] = (), device: str = "cpu", draw: np.ndarray | None = None):
        """``evaluate(val_items, val_targets) -> dict`` gives the validation metrics recorded each epoch."""
        from accelerate import Accelerator

        self.backend, self.task, self.cfg, self.evaluate = backend, task, cfg, evaluate
        self.callbacks = list(callbacks)
        from accelerate import DataLoaderConfiguration

        # split_batches: with several processes each global batch is split between them (training/distributed.py),
        # so a step is one step of the schedule, as in one process (not one per process)
        from accelerate.state import AcceleratorState

        # Accelerate keeps one process-wide state and refuses a second Accelerator with other settings (a bf16 run
        # after a float32 one in the same process: a benchmark suite, a notebook).  Each training run sets its own;
        # the process group of a distributed launch (PartialState) is kept.
        AcceleratorState._reset_state()
        self.accelerator = Accelerator(cpu=device == "cpu", mixed_precision=mixed_precision(cfg, device),
                                       gradient_accumulation_steps=cfg.grad_accum,
                                       dataloader_config=DataLoaderConfiguration(split_batches=True))
        self.module = module
        self.draw = draw
        self.history: list[dict] = []
        self.should_stop = False
        self.best: dict = {}

    @property
    def unwrapped(self) -> nn.Module:
        return self.accelerator.unwrap_model(self.model)

    def fit(self, train_items, train_targets, val_items=None, val_targets=None) -> list[dict]:
        from transformers import get_linear_schedule_with_warmup

        cfg = self.cfg
        rng = np.random.default_rng(cfg.seed)
        steps_per_epoch = max(1, -(-len(train_items) // (cfg.batch_size * cfg.grad_accum)))
        total = steps_per_epoch * cfg.epochs
        # PyTorch's fused AdamW (one kernel over every parameter, on the CPU as on CUDA; the HF Trainer's default
        # too): on MiniLM's 22.7M parameters a step took 30 ms against 172 ms for the per-tensor loop (one core)
        fused = {"fused": True} if str(self.accelerator.device).split(":")[0] in ("cpu", "cuda") else {}
        optimizer = torch.optim.AdamW(self.backend.param_groups(self.module, cfg.lr, cfg.weight_decay), lr=cfg.lr,
                                      **fused)
        scheduler = get_linear_schedule_with_warmup(optimizer, int(cfg.warmup_ratio * total), total)
        self.model, optimizer, scheduler = self.accelerator.prepare(self.module, optimizer, scheduler)
        device = self.accelerator.device
        shard = (self.accelerator.process_index, self.accelerator.num_processes)
        if shard[1] > 1 and hasattr(self.backend, "plan"):
            from ..errors import ConfigError

            raise ConfigError("a multi-task model trains in one process", hint="drop --processes")
        step = 0
        for epoch in range(1, cfg.epochs + 1):
            self.model.train()
            started, losses = time.perf_counter(), []
            bar = tqdm(batches(self.backend, train_items, train_targets, cfg.batch_size, shuffle=True, rng=rng,
                               draw=self.draw, task=self.task, shard=shard, buckets=cfg.length_buckets),
                       total=-(-len(train_items) // cfg.batch_size), desc=f"epoch {epoch}/{cfg.epochs}",
                       unit="batch", leave=False, disable=None if self.accelerator.is_main_process else True)
            for _, batch in bar:
                self.backend.on_step(self.unwrapped, step, total)
                with self.accelerator.accumulate(self.model):
                    batch = {k: v.to(device) for k, v in batch.items()}
                    labels = batch.pop("labels")
                    loss = self.task.loss(self.model(**batch), labels, self.unwrapped)
                    self.accelerator.backward(loss)
                    if self.accelerator.sync_gradients:
                        self.accelerator.clip_grad_norm_(self.model.parameters(), cfg.max_grad_norm)
                        step += 1
                    optimizer.step()
                    scheduler.step()
                    optimizer.zero_grad()
                losses.append(loss.item())
                bar.set_postfix(loss=f"{np.mean(losses[-50:]):.4f}")
            train_loss = float(np.mean(losses))
            if shard[1] > 1:  # every process's share of the epoch, not the main process's alone
                train_loss = float(self.accelerator.reduce(torch.tensor(train_loss), "mean"))
            record = {"epoch": epoch, "step": step, "train_loss": train_loss,
                      "lr": float(scheduler.get_last_lr()[0]),
                      "step_seconds": round(time.perf_counter() - started, 3)}  # the training steps alone
            if val_items:
                val_started = time.perf_counter()
                val = self.evaluate(val_items, val_targets)
                record.update({f"val_{k}": v for k, v in val.items()})
                record["validation_seconds"] = round(time.perf_counter() - val_started, 3)
            record["seconds"] = round(time.perf_counter() - started, 2)
            self.history.append(record)
            for cb in self.callbacks:
                cb.on_epoch_end(self, record)
            if self.should_stop:
                break
        for cb in self.callbacks:
            cb.on_train_end(self)
        self.module = self.unwrapped
        self.module.eval()
        return self.history


def last_linear(module: nn.Module) -> nn.Linear:
    """The classifier's output layer: its input is what the model "sees" of a text (embed, the lbfgs head)."""
    layers = [m for m in module.modules() if isinstance(m, nn.Linear)]
    if not layers:
        raise TypeError(f"{type(module).__name__} has no linear layer")
    return layers[-1]


@torch.no_grad()
def run_batches(module: nn.Module, backend, items: Sequence[dict], batch_size: int, device: str,
                show_progress: bool = False):
    """Evaluation forward passes, batched by length: yields (indices, batch, outputs)."""
    module.eval()
    for idx, batch in tqdm(batches(backend, items, None, batch_size, shuffle=False),
                           total=-(-len(items) // batch_size), desc="predicting", unit="batch",
                           leave=False, disable=not show_progress):
        batch = {k: v.to(device) for k, v in batch.items()}
        yield idx, batch, module(**batch)


@torch.no_grad()
def predict_logits(module: nn.Module, backend, items: Sequence[dict], batch_size: int, device: str,
                   show_progress: bool = False, features_of: nn.Module | None = None):
    """Logits in the order of ``items``; with ``features_of`` (a layer of ``module``) also that layer's input for
    each item, from the same forward pass: ``(logits, features)``."""
    out: np.ndarray | None = None
    feats: np.ndarray | None = None
    captured: list[torch.Tensor] = []
    hook = (features_of.register_forward_hook(lambda mod, inp, res: captured.append(inp[0]))
            if features_of is not None else None)
    try:
        for idx, _, outputs in run_batches(module, backend, items, batch_size, device, show_progress):
            logits = outputs.float().cpu().numpy()
            if out is None:
                out = np.zeros((len(items), logits.shape[1]), dtype=np.float32)
            out[idx] = logits
            if hook is not None:
                vec = captured.pop().float().cpu().numpy()
                if feats is None:
                    feats = np.zeros((len(items), vec.shape[1]), dtype=np.float32)
                feats[idx] = vec
    finally:
        if hook is not None:
            hook.remove()
    out = out if out is not None else np.zeros((0, 0), dtype=np.float32)
    return (out, feats) if features_of is not None else out
