"""`transferlab bench farsec` on a small file of the FARSEC format: choices on validation, the test half once."""

import csv
import gzip
import json

import numpy as np
import pytest
from typer.testing import CliRunner

from transferlab.bench import farsec
from transferlab.cli import app
from transferlab.errors import DataError

SEC = ["heap buffer overflow in the renderer", "xss via crafted url", "use after free in v8 exploit",
       "sandbox escape with crafted page", "same origin policy bypass", "memory corruption crash exploitable"]
OTHER = ["bookmark bar is too wide", "font rendering looks blurry", "tab drag is slow", "spell checker misses words",
         "download shelf flickers", "settings page typo", "video stutters on resize", "add a zoom shortcut"]


def _write(path, n=240, every=8, split_col=None):
    rng = np.random.default_rng(0)
    rows = []
    for i in range(n):
        sec = i % every == 0
        words = SEC if sec else OTHER
        text = f"{words[rng.integers(len(words))]} report {i} " + " ".join(rng.choice(OTHER, 2))
        rows.append({"project": "demo", "split": split_col or ("train" if i < n // 2 else "test"), "id": i,
                     "security": int(sec), "text": text})
    with gzip.open(path, "wt", encoding="utf-8", newline="") as f:
        w = csv.DictWriter(f, fieldnames=["project", "split", "id", "security", "text"])
        w.writeheader()
        w.writerows(rows)
    return path


@pytest.mark.slow
def test_bench_farsec_reports_pd_pf_g_and_chooses_on_validation(tmp_path):
    data = _write(tmp_path / "demo.csv.gz")
    res = CliRunner().invoke(app, ["bench", "farsec", "--data", str(data), "--rows", "tfidf,glove-dan",
                                   "--selection", "holdout", "--out", str(tmp_path / "out")])
    assert res.exit_code == 0, res.output
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    assert results["selection"] == {"method": "holdout"}
    assert results["n"]["train"] + results["n"]["validation"] == 120 and results["n"]["test"] == 120
    assert results["n"]["train_security"] > 0 and results["published"][0]["g_measure"] == 68.1
    for row in results["rows"]:
        assert row["status"] == "ok"
        t = row["test"]
        assert t["g_measure"] == pytest.approx(2 * t["pd"] * (1 - t["pf"]) / (t["pd"] + 1 - t["pf"]))
        # the chosen setting is the validation winner of the searched grid
        best = max(row["search"], key=lambda e: (e["validation"]["g_measure"], e["validation"]["pr_auc"]))
        assert row["chosen"] == best["settings"]
        assert len(row["search"]) == len(farsec._grid(farsec.FAMILIES[row["name"]]["grid"]))
    assert results["rows"][0]["test"]["g_measure"] > 0.8  # the signal is plain: a broken pipeline would miss it
    md = (tmp_path / "out" / "results.md").read_text()
    assert "(best)" in md and "68.1" in md and "Target g-measure" in md
    assert (tmp_path / "out" / "pr_curves.png").stat().st_size > 5000
    # families can run in parts: a later run into the same folder keeps the other families' rows ...
    res = CliRunner().invoke(app, ["bench", "farsec", "--data", str(data), "--rows", "tfidf",
                                   "--selection", "holdout", "--out", str(tmp_path / "out")])
    assert res.exit_code == 0, res.output
    again = json.loads((tmp_path / "out" / "results.json").read_text())
    assert [r["name"] for r in again["rows"]] == ["tfidf", "glove-dan"] and again["rows"][1] == results["rows"][1]
    # ... but not when the data differ
    other = _write(tmp_path / "other.csv.gz", n=200)
    res = CliRunner().invoke(app, ["bench", "farsec", "--data", str(other), "--rows", "tfidf",
                                   "--selection", "holdout", "--out", str(tmp_path / "out")])
    assert res.exit_code == 0, res.output
    assert [r["name"] for r in json.loads((tmp_path / "out" / "results.json").read_text())["rows"]] == ["tfidf"]


def test_few_positives_switch_model_choice_to_cross_validation(tmp_path):
    data = _write(tmp_path / "small.csv.gz")  # 15 security reports in the training half: 4 in its validation part
    res = CliRunner().invoke(app, ["bench", "farsec", "--data", str(data), "--rows", "tfidf", "--folds", "3",
                                   "--repeats", "2", "--out", str(tmp_path / "out")])
    assert res.exit_code == 0, res.output
    assert "under 20" in " ".join(res.output.split())
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    assert results["selection"] == {"method": "cv", "folds": 3, "repeats": 2}
    (row,) = results["rows"]
    assert row["selection"]["method"] == "cv" and len(row["search"]) == 6
    best = max(row["search"], key=lambda e: (e["validation"]["g_measure"], e["validation"]["pr_auc"]))
    assert row["chosen"] == best["settings"] and row["validation_sd"]["g_measure"] >= 0
    assert row["test"]["g_measure"] > 0.8  # refitted on the whole training half, scored once
    md = (tmp_path / "out" / "results.md").read_text()
    assert "cross-validation x 2" in md and " ± " in md


def test_farsec_format_errors_name_the_problem(tmp_path):
    with pytest.raises(DataError, match="split"):
        farsec.load(_write(tmp_path / "bad.csv.gz", split_col="older"))
    with pytest.raises(DataError, match="famil"):
        farsec.run(_write(tmp_path / "ok.csv.gz"), tmp_path / "o", families=["svm"])


@pytest.mark.slow
def test_model_choice_study_counts_choices_near_the_best(tmp_path):
    import pandas as pd

    src = _write(tmp_path / "big.csv.gz", n=800, every=10)
    small = farsec.small_project(src, tmp_path / "s.csv", size=200, positives=20, seed=1)
    frame = pd.read_csv(small)
    assert len(frame) == 200 and frame["security"].sum() == 20 and set(frame["split"]) == {"train", "test"}
    res = CliRunner().invoke(app, ["bench", "farsec-choice", "--data", str(src), "--rows", "tfidf,glove-dan",
                                   "--draws", "2", "--project-size", "200", "--project-positives", "20",
                                   "--folds", "3", "--repeats", "1", "--out", str(tmp_path / "study")])
    assert res.exit_code == 0, res.output
    results = json.loads((tmp_path / "study" / "results.json").read_text())
    assert len(results["draws"]) == 2 and set(results["summary"]) == {"holdout", "cv"}
    for d in results["draws"]:
        for m in ("holdout", "cv"):
            x = d[m]
            assert x["within"] == (x["chosen_test_g"] >= x["best_test_g"] - 0.05)
            assert x["best_test_g"] == max(x["test_g"].values())
            # every family scored under both methods (glove-dan once failed under cv, and the draw silently
            # compared tfidf with itself)
            assert set(x["test_g"]) == {"tfidf", "glove-dan"} and x["failed"] == {}
    md = (tmp_path / "study" / "results.md").read_text()
    assert "mean regret" in md and "within 5 points" in md
    assert "--rows tfidf,glove-dan --folds 3 --repeats 1" in md  # the command that reproduces it
    with pytest.raises(DataError, match="too few"):
        farsec.small_project(src, tmp_path / "x.csv", size=200, positives=500)
