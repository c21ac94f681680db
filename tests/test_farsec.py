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
    res = CliRunner().invoke(app, ["bench", "farsec", "--data", str(data), "--rows", "tfidf,tfidf-title", "--folds",
                                   "3", "--repeats", "2", "--out", str(tmp_path / "out")])
    assert res.exit_code == 0, res.output
    assert "under 20" in " ".join(res.output.split())
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    assert results["selection"] == {"method": "cv", "folds": 3, "repeats": 2}
    assert [r["name"] for r in results["rows"]] == ["tfidf", "tfidf-title"]
    for row in results["rows"]:
        assert row["status"] == "ok", row
        assert row["selection"]["method"] == "cv" and len(row["search"]) == 6
        best = max(row["search"], key=lambda e: (e["validation"]["g_measure"], e["validation"]["pr_auc"]))
        assert row["chosen"] == best["settings"] and row["validation_sd"]["g_measure"] >= 0
        assert row["test"]["g_measure"] > 0.8  # refitted on the whole training half, scored once
    assert {e["settings"]["title_weight"] for e in results["rows"][1]["search"]} == {0.5, 1.0}
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


def test_report_title_is_the_title_element_or_the_first_line():
    from transferlab.encoders.tfidf import report_title

    page = "<title>Issue 1414 -   chromium -  Buffer &quot;SaveAs&quot; overflow - Project Hosting</title> <pre> body"
    assert report_title(page) == 'Issue 1414 -   chromium -  Buffer "SaveAs" overflow - Project Hosting'
    assert report_title("XSS in the login form\n\nsteps: ...") == "XSS in the login form"
    assert report_title("no title element <title>late</title>") == "no title element <title>late</title>"
    assert len(report_title("x" * 5000)) == 500


def test_title_block_weighs_the_title_apart_and_drops_tracker_boilerplate():
    from sklearn.feature_extraction.text import TfidfVectorizer

    from transferlab.encoders.tfidf import with_title

    body = TfidfVectorizer()
    assert with_title(body, 0.0, 100) is body  # no title block: the plain vectoriser, unchanged
    rng = np.random.default_rng(0)
    words = SEC + OTHER
    texts = [f"<title>Issue {i} - chromium - {words[rng.integers(len(words))]} - Project Hosting</title> <pre> "
             + " ".join(rng.choice(OTHER, 3)) for i in range(120)]
    union = with_title(TfidfVectorizer(), 0.5, len(texts))
    X = union.fit_transform(texts).toarray()
    n_body = len(union.transformer_list[0][1].vocabulary_)
    title_vocab = union.transformer_list[1][1][-1].vocabulary_
    # each block is unit length before its weight: the title block's norm is the weight
    assert np.allclose(np.linalg.norm(X[:, :n_body], axis=1), 1.0)
    assert np.allclose(np.linalg.norm(X[:, n_body:], axis=1), 0.5)
    assert "chromium" not in title_vocab and "project hosting" not in title_vocab  # in every title: dropped
    assert "heap buffer" in title_vocab and "chromium" in union.transformer_list[0][1].vocabulary_


def test_recipe_suite_flags_are_refused_by_named_benchmarks_before_anything_runs(tmp_path):
    # `bench farsec --merge other/results.json` used to ignore --merge and start the whole benchmark
    data = _write(tmp_path / "demo.csv.gz")
    for flags in (["--merge", str(tmp_path / "other" / "results.json")], ["--list"]):
        res = CliRunner().invoke(app, ["bench", "farsec", "--data", str(data), "--rows", "tfidf",
                                       "--out", str(tmp_path / "out"), *flags])
        assert res.exit_code != 0
        said = " ".join(res.output.split())
        assert f"{flags[0]} does not apply to bench farsec" in said and "--selection" in said  # what it does read
        assert not (tmp_path / "out").exists()
