"""Training events and the plugins that subscribe to them (metrics file, curves, early stopping)."""

from __future__ import annotations

import json
import math
from pathlib import Path


class Callback:
    def on_epoch_end(self, trainer, record: dict) -> None: ...
    def on_train_end(self, trainer) -> None: ...


class MetricsFile(Callback):
    """One JSON line per epoch: losses, validation metrics, learning rate, seconds."""

    def __init__(self, path: Path):
        from .distributed import is_main_process

        self.path = Path(path)
        self.main = is_main_process()  # in data-parallel training, one process writes
        if self.main:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.path.write_text("", encoding="utf-8")

    def on_epoch_end(self, trainer, record):
        if self.main:
            with open(self.path, "a", encoding="utf-8") as f:
                f.write(json.dumps(record) + "\n")


class CurvesPlot(Callback):
    """Redrawn after every epoch, so a long run can be watched."""

    def __init__(self, path: Path):
        from .distributed import is_main_process

        self.path = Path(path)
        self.main = is_main_process()

    def on_epoch_end(self, trainer, record):
        from ..evaluation.plots import plot_curves

        if self.main:
            plot_curves(trainer.history, self.path)

    def on_train_end(self, trainer):
        from ..evaluation.plots import plot_curves

        if trainer.history and self.main:
            plot_curves(trainer.history, self.path)


class EarlyStopping(Callback):
    """Keep the best weights by a validation metric; stop after ``patience`` epochs without gain.  ``mode="min"``
    for a metric where lower is better (a loss, a perplexity)."""

    def __init__(self, metric: str, patience: int | None, mode: str = "max"):
        if mode not in ("max", "min"):
            raise ValueError(f"mode must be 'max' or 'min', got {mode!r}")
        self.key = metric if metric.startswith("val_") else f"val_{metric}"
        self.patience = patience
        self.sign = 1.0 if mode == "max" else -1.0
        self.best = -math.inf
        self.best_epoch = None
        self.best_state = None
        self.bad_epochs = 0

    def on_epoch_end(self, trainer, record):
        value = record.get(self.key)
        if value is None:
            return
        if self.sign * value > self.best:
            self.best, self.best_epoch, self.bad_epochs = self.sign * value, record["epoch"], 0
            self.best_state = {k: v.detach().to("cpu", copy=True) for k, v in trainer.unwrapped.state_dict().items()}
            record["best"] = True
        else:
            self.bad_epochs += 1
            if self.patience is not None and self.bad_epochs >= self.patience:
                trainer.should_stop = True

    def on_train_end(self, trainer):
        if self.best_state is not None:
            trainer.unwrapped.load_state_dict(self.best_state)
            trainer.best = {"epoch": self.best_epoch, self.key: self.sign * self.best}
            self.best_state = None
