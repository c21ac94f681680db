"""Active learning: uncertainty and diversity selection, the label store, and answers feeding the next run."""

import csv
import json

import numpy as np
import pytest
from typer.testing import CliRunner

from transferlab.active import (add_answers, load_store, merge_extra, select, store_examples, text_id,
                                uncertainty)
from transferlab.cli import app
from transferlab.data.records import Examples
from transferlab.errors import DataError
from transferlab.models.classifier import TextClassifier

from conftest import sentiment_data


def test_uncertainty_follows_the_decision_not_the_argmax():
    proba = np.array([[0.9, 0.1], [0.6, 0.4], [0.75, 0.25], [0.3, 0.7]])
    plain = uncertainty(proba, ["a", "b"], {}, multilabel=False)
    assert list(np.argsort(-plain)) == [1, 3, 2, 0]  # margins 0.2, 0.4, 0.5, 0.8
    # with a threshold of 0.25 on "b", row 2 sits on the boundary and row 1 is well past it
    thr = {"threshold": {"positive": "b", "threshold": 0.25}}
    moved = uncertainty(proba, ["a", "b"], thr, multilabel=False)
    assert moved[2] == pytest.approx(1.0) and moved[2] > moved[1] > moved[0]
    ml = uncertainty(np.array([[0.5, 0.9], [0.95, 0.05]]), ["x", "y"], {}, multilabel=True)
    assert ml[0] > ml[1]


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    texts, labels = sentiment_data(40)
    folder = tmp_path_factory.mktemp("al") / "m"
    clf = TextClassifier("glove-50d", "dan", epochs=3, max_length=12, seed=0, patience=None)
    clf.fit(Examples(texts, labels), validation=Examples(texts[:10], labels[:10]), out_dir=folder)
    return clf, folder


def _pool():
    words = ["good", "bad", "fine", "okay", "great", "awful", "so-so", "brilliant", "dull", "average"]
    return Examples([f"the film was {w} , take {i}" for i in range(12) for w in words])


@pytest.mark.slow
def test_selection_strategies(model):
    clf, _ = model
    pool = _pool()
    unc = select(clf, pool, 10, strategy="uncertainty")
    scores = [r["uncertainty"] for r in unc]
    assert len(unc) == 10 and scores == sorted(scores, reverse=True)
    all_unc = uncertainty(clf.predict_proba(pool.texts), clf.labels_, clf.decision_, multilabel=False)
    assert scores[-1] >= np.sort(all_unc)[-10] - 1e-6  # the top 10 of the whole pool
    hyb = select(clf, pool, 10, strategy="hybrid", seed=0)
    assert len({r["id"] for r in hyb}) == 10
    assert min(r["uncertainty"] for r in hyb) >= np.sort(all_unc)[-40] - 1e-6  # from the 4n shortlist
    div = select(clf, pool, 10, strategy="diversity", seed=0)
    # diversity covers the pool: its picks are further apart than the most-uncertain ones on average
    def spread(rows):
        v = clf.embed([r["text"] for r in rows])
        v = v / np.linalg.norm(v, axis=1, keepdims=True)
        return float(np.mean(1 - v @ v.T))
    assert spread(div) > spread(unc)
    done = {r["id"] for r in unc}
    again = select(clf, pool, 10, strategy="uncertainty", exclude=done)
    assert not done & {r["id"] for r in again}


def test_store_roundtrip_and_bad_batches(tmp_path):
    batch = tmp_path / "batch.csv"
    rows = [{"id": text_id("alpha"), "text": "alpha", "label": "positive"},
            {"id": text_id("beta"), "text": "beta", "label": ""},
            {"id": "", "text": "gamma", "label": "negative"}]
    with open(batch, "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=["id", "text", "label"])
        w.writeheader()
        w.writerows(rows)
    store = tmp_path / "labels.jsonl"
    rep = add_answers(batch, store, known_labels=["positive", "negative"], reviewer="ana")
    assert (rep.added, rep.updated, rep.unchanged) == (2, 0, 0)
    assert rep.unanswered == [f"{batch}:line 3"] and "fill them in" in rep.summary(store)
    entries = load_store(store)
    assert {e["text"]: e["label"] for e in entries.values()} == {"alpha": "positive", "gamma": "negative"}
    assert all(e["reviewer"] == "ana" and e["labelled_at"] for e in entries.values())
    # the same batch again changes nothing; a changed answer is a relabel, and the latest wins
    assert add_answers(batch, store).unchanged == 2
    rows[0]["label"] = "negative"
    rows[2]["label"] = "spam"
    with open(batch, "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=["id", "text", "label"])
        w.writeheader()
        w.writerows(rows)
    rep = add_answers(batch, store, known_labels=["positive", "negative"])
    assert rep.updated == 2 and rep.new_labels == {"spam"}
    assert load_store(store)[text_id("alpha")]["label"] == "negative"
    ex = store_examples(store)
    assert sorted(zip(ex.texts, ex.labels)) == [("alpha", "negative"), ("gamma", "spam")]
    # an edited text no longer matches its id; a broken store line is named
    rows[0]["text"] = "alpha (edited)"
    with open(batch, "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=["id", "text", "label"])
        w.writeheader()
        w.writerows(rows)
    with pytest.raises(DataError, match="does not match the text"):
        add_answers(batch, store)
    with open(store, "a", encoding="utf-8") as f:
        f.write("{not json\n")
    with pytest.raises(DataError, match="line 5 of the label store"):
        load_store(store)


def test_store_answers_join_training_only():
    parts = {"train": Examples(["a", "b"], ["x", "y"]), "validation": Examples(["c"], ["x"]),
             "test": Examples(["d"], ["y"])}
    extra = Examples(["b", "c", "e", "f"], ["y", "x", "x", "y"])
    merged, info = merge_extra(parts, extra)
    assert merged["train"].texts == ["a", "b", "e", "f"] and merged["train"].labels == ["x", "y", "x", "y"]
    assert info == {"added": 2, "held_out_skipped": 1, "already_in_train": 1}
    assert merged["validation"] is parts["validation"]


@pytest.mark.slow
def test_cli_loop_next_add_train(model, tmp_path):
    _, folder = model
    pool = tmp_path / "pool.jsonl"
    pool.write_text("".join(json.dumps({"text": t}) + "\n" for t in _pool().texts), encoding="utf-8")
    runner = CliRunner()
    batch = tmp_path / "next.csv"
    res = runner.invoke(app, ["label", "next", "--model", str(folder), "--pool", str(pool), "--n", "6",
                              "--out", str(batch)])
    assert res.exit_code == 0, res.output
    with open(batch, encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 6 and all(r["label"] == "" and r["predicted"] for r in rows)
    for r in rows:
        r["label"] = "positive" if any(w in r["text"] for w in ("good", "great", "brilliant", "fine")) else "negative"
    with open(batch, "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    store = tmp_path / "labels.jsonl"
    res = runner.invoke(app, ["label", "add", str(batch), "--store", str(store), "--model", str(folder)])
    assert res.exit_code == 0 and "6 added" in " ".join(res.output.split())
    res = runner.invoke(app, ["label", "next", "--model", str(folder), "--pool", str(pool), "--n", "6",
                              "--store", str(store), "--out", str(tmp_path / "next2.csv")])
    with open(tmp_path / "next2.csv", encoding="utf-8") as f:
        assert not {r["id"] for r in csv.DictReader(f)} & {r["id"] for r in rows}
    texts, labels = sentiment_data(30)
    data = tmp_path / "train.jsonl"
    data.write_text("".join(json.dumps({"text": t, "label": lab}) + "\n" for t, lab in zip(texts, labels)),
                    encoding="utf-8")
    res = runner.invoke(app, ["train", "--data", str(data), "--split", "stratified:0.8,0.2,0", "--encoder",
                              "glove-50d", "--head", "dan", "--epochs", "1", "--max-length", "8",
                              "--extra-train", str(store), "--out", str(tmp_path / "m2")])
    assert res.exit_code == 0, res.output
    assert "6 answer(s) added to training" in " ".join(res.output.split())
    cfg = json.loads((tmp_path / "m2" / "config.json").read_text())
    assert cfg["fit"]["extra_train"]["added"] == 6 and cfg["fit"]["n_train"] == 24 + 6
