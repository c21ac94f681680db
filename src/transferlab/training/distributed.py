"""Data-parallel training on several processes, through Accelerate.

``transferlab train --processes N`` starts N copies of the same command with PyTorch's elastic launcher (what
``accelerate launch`` and ``torchrun`` use underneath); inside, the Trainer's ``Accelerator`` reads the launcher's
environment, joins the process group (gloo on CPUs, NCCL on GPUs) and wraps the network in
DistributedDataParallel, which averages gradients across processes after every backward pass.  Each global batch
(``batch_size`` examples, the same order in every process: same seed) is split between the processes, so N
processes take the steps one process would, on the same examples, and the learning-rate schedule is unchanged.
Only the main process writes files.  ``accelerate launch -m transferlab train ...`` (with a multi-GPU or multi-node
config) runs the same code.
"""

from __future__ import annotations

import os
import subprocess
import sys
from typing import Sequence

import numpy as np


def is_main_process() -> bool:
    """True in a plain run and in the first process of a distributed one."""
    return int(os.environ.get("RANK", "0")) == 0


def world() -> tuple[int, int]:
    """(this process's rank, number of processes) from the launcher's environment; (0, 1) in a plain run."""
    return int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1"))


def share(idx: np.ndarray, rank: int, size: int) -> np.ndarray:
    """This process's part of one global batch.  Every process must take a step on every batch (DDP waits for all
    of them), so a batch smaller than the number of processes lends its examples round again."""
    if len(idx) < size:
        idx = np.resize(idx, size)
    return idx[rank::size]


def launch(argv: Sequence[str], processes: int, threads_per_process: int | None = None) -> int:
    """Run ``python -m transferlab ARGV`` as ``processes`` processes on this machine; returns the exit status."""
    from ..runtime.onnx import cpu_threads

    threads = threads_per_process or max(1, cpu_threads() // processes)
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "TRANSFERLAB_LAUNCHED": "1"}
    # --standalone: a rendezvous on a free local port, so two launches on one machine never collide
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={processes}",
           "-m", "transferlab", *argv]
    return subprocess.call(cmd, env=env)
