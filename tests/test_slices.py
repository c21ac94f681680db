"""Data slices (evaluation/slices.py): specs, masks, intervals, and the slices in `evaluate`, bench reports and
their HTML page."""

import json

import numpy as np
import pytest

from transferlab.errors import ConfigError, DataError
from transferlab.evaluation.slices import parse_slice, parse_slices, slice_metrics, slice_report, wilson


def test_specs_parse_and_bad_ones_say_how():
    assert str(parse_slice("short=length:-120")) == "short=length:-120"
    assert parse_slice("gh=column:source=github").columns() == ["source"]
    for bad, why in [("short", "NAME=KIND:ARG"), ("x=colour:red", "NAME=KIND:ARG"), ("x=regex:(", "regular"),
                     ("x=length:9-3", "empty"), ("x=length:-", "MIN-MAX"), ("x=column:source", "COL=VALUE")]:
        with pytest.raises(ConfigError, match=why):
            parse_slice(bad)
    with pytest.raises(ConfigError, match="repeat"):
        parse_slices(["a=length:-3", "a=length:4-"])


def test_masks_of_each_kind():
    texts = ["xss in the login form", "a typo", "heap overflow " * 10]
    cols = {"source": ["github", "mail", "github"]}
    assert list(parse_slice("x=regex:(?i)XSS").mask(texts, cols)) == [True, False, False]
    assert list(parse_slice("gh=column:source=github").mask(texts, cols)) == [True, False, True]
    assert list(parse_slice("short=length:-2").mask(texts, cols)) == [False, True, False]
    assert list(parse_slice("long=length:20-").mask(texts, cols)) == [False, False, True]
    with pytest.raises(DataError, match="column 'project'"):
        parse_slice("p=column:project=x").mask(texts, cols)


def test_intervals_and_metrics():
    lo, hi = wilson(8, 10)
    assert lo == pytest.approx(0.4902, abs=1e-3) and hi == pytest.approx(0.9433, abs=1e-3)  # textbook values
    assert wilson(0, 5)[0] == 0.0 and wilson(5, 5)[1] == 1.0
    from sklearn.metrics import f1_score

    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 500)
    pred = np.where(rng.random(500) < 0.7, y, rng.integers(0, 3, 500))
    m = slice_metrics(y, pred, 3)
    assert m["macro_f1"] == pytest.approx(f1_score(y, pred, average="macro"))
    assert m["macro_f1_ci"][0] < m["macro_f1"] < m["macro_f1_ci"][1]
    assert m["accuracy_ci"][0] < m["accuracy"] < m["accuracy_ci"][1]
    assert slice_metrics(y[:0], pred[:0], 3)["accuracy"] is None


def test_slice_report_puts_the_whole_first_and_counts_each_slice():
    texts = ["good film", "bad film", "good long film " * 50, "bad long film " * 50]
    rows = slice_report(texts, {}, ["pos", "neg", "pos", "neg"], ["pos", "neg", "neg", "neg"], ["neg", "pos"],
                        parse_slices(["short=length:-5", "long=length:100-"]))
    assert [r["name"] for r in rows] == ["all", "short", "long"]
    assert [r["n"] for r in rows] == [4, 2, 2] and rows[1]["accuracy"] == 1.0 and rows[2]["accuracy"] == 0.5
    json.dumps(rows)


@pytest.mark.slow
def test_evaluate_reports_slices_in_python_and_on_the_command_line(tmp_path):
    from typer.testing import CliRunner

    from transferlab.cli import app
    from transferlab.models.classifier import TextClassifier

    from conftest import sentiment_data, write_csv

    texts, labels = sentiment_data(40)
    clf = TextClassifier("glove-50d", "dan", epochs=5, max_length=16, patience=None).fit(texts, labels)
    clf.save(tmp_path / "m")
    report = clf.evaluate((texts, labels), slices=["loved=regex:loved|wonderful"])
    assert report["slices"][1]["n"] == sum(("loved" in t or "wonderful" in t) for t in texts)
    data = write_csv(tmp_path / "d.csv", [(t, lab, "a" if i % 2 else "b") for i, (t, lab) in
                                          enumerate(zip(texts, labels))], header=("text", "label", "src"))
    res = CliRunner().invoke(app, ["evaluate", str(tmp_path / "m"), "--data", str(data), "--slice",
                                   "odd=column:src=a", "--slice", "short=length:-4"])
    assert res.exit_code == 0, res.output
    saved = json.loads((tmp_path / "m" / "eval.json").read_text())
    assert [s["name"] for s in saved["slices"]] == ["all", "odd", "short"] and saved["slices"][1]["n"] == 20
    assert "slices (95% intervals" in res.output


def test_bench_page_is_readable_shows_slices_and_stays_inert(tmp_path):
    from transferlab.bench.report import markdown, write_outputs

    from test_bench import _results, _row

    hostile = _row("<script>alert(1)</script>", "peer", 0.8)
    good = _row("cnn", "word-vectors", 0.87, ref={"model": "fastText + CNN", "accuracy": 0.864})
    for r in (good, hostile):
        r["slices"] = [{"name": "all", "n": 100, "share": 1.0, "accuracy": 0.87, "accuracy_ci": [0.79, 0.92],
                        "macro_f1": 0.86, "macro_f1_ci": [0.8, 0.9]},
                       {"name": "short", "n": 20, "share": 0.2, "accuracy": 0.9, "accuracy_ci": [0.7, 0.97],
                        "macro_f1": 0.9, "macro_f1_ci": [0.7, 0.97]}]
    results = _results([good, hostile])
    write_outputs(results, tmp_path)
    page = (tmp_path / "report.html").read_text()
    assert "**" not in page and '<span class="badge met">met</span>' in page
    assert "<script>alert" not in page and "&lt;script&gt;" in page
    assert '"processor"' not in page and "CPUs" in page  # hardware in words, not a JSON object
    assert "short (n=20)" in page and "90.00 [70.0, 97.0]" in page
    assert "## Slices" in markdown(results)


def test_suites_declare_slices_and_a_bad_one_names_the_file(tmp_path):
    from transferlab.bench.recipes import load_suite

    suite = load_suite("imdb-seed")
    assert [str(s) for s in suite.slices] == ["short=length:-120", "long=length:400-"]
    (tmp_path / "suite.toml").write_text('name = "mine"\nslices = ["src=column:source"]\n[data]\npath = "x.csv"\n')
    (tmp_path / "a.toml").write_text('name = "tfidf"\nkind = "tfidf"\n')
    with pytest.raises(ConfigError, match="COL=VALUE") as err:
        load_suite(str(tmp_path))
    assert "suite.toml" in str(err.value.where)
    (tmp_path / "suite.toml").write_text('name = "mine"\nslices = ["src=column:source=github"]\n[data]\n'
                                         'path = "x.csv"\n')
    assert load_suite(str(tmp_path)).data_spec().keep_cols == ["source"]  # read with the data, for the slice
