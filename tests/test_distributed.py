"""Data-parallel training (training/distributed.py): `train --processes 2` runs two gloo processes through Accelerate;
with dropout off the two-process model is the one-process model (each global batch split, gradients averaged, one
schedule step per batch), and only one process writes."""

import json
import subprocess
import sys

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from transferlab.cli import _without_option
from transferlab.training.distributed import share

from conftest import sentiment_data, write_csv


def test_each_process_takes_its_share_of_every_batch():
    idx = np.arange(10, 17)
    parts = [share(idx, r, 2) for r in range(2)]
    assert sorted(np.concatenate(parts)) == list(idx) and abs(len(parts[0]) - len(parts[1])) <= 1
    # a batch smaller than the number of processes lends its examples round again: nobody is left without a step
    assert [list(share(np.array([5]), r, 3)) for r in range(3)] == [[5], [5], [5]]
    assert _without_option(["train", "--processes", "2", "--out", "x"], "--processes") == ["train", "--out", "x"]
    assert _without_option(["train", "--processes=2"], "--processes") == ["train"]


SCRIPT = """
import sys
from pathlib import Path
sys.path.insert(0, {tests!r})
from conftest import sentiment_data
from transferlab.models.classifier import TextClassifier
texts, labels = sentiment_data(64)
clf = TextClassifier("glove-50d", "cnn", epochs=2, max_length=16, batch_size=16, dropout=0.0, seed=0, patience=None,
                     validation_fraction=0.0, lr=1e-2)
clf.fit(texts, labels, out_dir=Path({out!r}))
"""


@pytest.mark.slow
def test_two_processes_learn_the_one_process_model(tmp_path):
    from pathlib import Path

    tests = str(Path(__file__).parent)
    models = {}
    for n in (1, 2):
        out = tmp_path / f"p{n}"
        script = tmp_path / f"fit{n}.py"
        script.write_text(SCRIPT.format(tests=tests, out=str(out)))
        cmd = ([sys.executable, str(script)] if n == 1 else
               [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2", str(script)])
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
        assert proc.returncode == 0, proc.stderr[-2000:]
        models[n] = load_file(str(out / "model.safetensors"))
        assert json.loads((out / "config.json").read_text())["fit"]["processes"] == n
    assert set(models[1]) == set(models[2])
    for k, v in models[1].items():
        # the same steps on the same examples: equal up to the order of floating-point sums (Adam magnifies those a
        # little where a weight's gradients are near zero: 1e-4 seen, where unsynchronised halves or a schedule
        # stepped twice per batch move weights by 1e-2)
        torch.testing.assert_close(models[2][k], v, atol=5e-4, rtol=1e-3, msg=k)


@pytest.mark.slow
def test_train_processes_on_the_command_line_writes_once_and_matches_within_noise(tmp_path):
    from typer.testing import CliRunner

    from transferlab.cli import app

    texts, labels = sentiment_data(80)
    data = write_csv(tmp_path / "data.csv", list(zip(texts, labels)))
    base = ["train", "--data", str(data), "--encoder", "glove-50d", "--head", "cnn", "--epochs", "3", "--max-length",
            "32", "--batch-size", "16"]
    one = CliRunner().invoke(app, base + ["--out", str(tmp_path / "one")])
    assert one.exit_code == 0, one.output
    # the launcher re-runs this command as two processes: run it as a user would, in a subprocess
    two = subprocess.run([sys.executable, "-m", "transferlab", *base, "--processes", "2", "--out",
                          str(tmp_path / "two")], capture_output=True, text=True, timeout=600)
    assert two.returncode == 0, two.stderr[-2000:]
    assert two.stderr.count("saved to") == 1  # one process reports
    runs = {}
    for name in ("one", "two"):
        lines = (tmp_path / name / "metrics.jsonl").read_text().splitlines()
        assert len(lines) == 3  # one writer: a line per epoch, not one per process
        runs[name] = [json.loads(x) for x in lines]
    assert json.loads((tmp_path / "two" / "config.json").read_text())["fit"]["processes"] == 2
    # the schedule advanced once per global batch, as in one process
    assert [r["lr"] for r in runs["two"]] == pytest.approx([r["lr"] for r in runs["one"]])
    assert abs(runs["two"][-1]["val_loss"] - runs["one"][-1]["val_loss"]) < 0.1
    assert runs["two"][-1]["val_accuracy"] >= 0.9
    res = CliRunner().invoke(app, ["train", "--tasks", str(tmp_path / "t.toml"), "--processes", "2", "--out",
                                   str(tmp_path / "mt")])
    assert res.exit_code == 2 and "one process" in res.output


def test_length_buckets_keep_every_example_once_in_random_batches_with_less_padding():
    from transferlab.training.trainer import batches

    class Lengths:  # a backend whose items are token lists of given lengths
        def length(self, item):
            return len(item["input_ids"])

        def collate(self, items):
            width = max(len(it["input_ids"]) for it in items)
            return {"input_ids": torch.zeros(len(items), width), "n": torch.tensor([len(it["input_ids"])
                                                                                   for it in items])}

    rng = np.random.default_rng(0)
    items = [{"input_ids": [0] * int(n)} for n in rng.integers(1, 300, size=2000)]
    runs = {}
    for buckets in (False, True):
        seen, padded, firsts = [], 0, []
        for idx, batch in batches(Lengths(), items, None, 16, shuffle=True, rng=np.random.default_rng(1),
                                  buckets=buckets):
            seen += list(idx)
            padded += batch["input_ids"].numel() - int(batch["n"].sum())
            firsts.append(int(batch["n"].max()))
        assert sorted(seen) == list(range(len(items)))  # every example exactly once
        runs[buckets] = (padded, firsts)
    assert runs[True][0] < 0.2 * runs[False][0]  # most of the padding is gone
    firsts = runs[True][1]
    assert firsts != sorted(firsts) and firsts != sorted(firsts, reverse=True)  # batches come in random order
