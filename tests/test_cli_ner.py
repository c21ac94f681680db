"""`transferlab train/evaluate/predict` with a CoNLL file: the task is inferred, bad lines are named."""

import json

import pytest
from typer.testing import CliRunner

from transferlab.cli import app

from test_tagger import ner_data

runner = CliRunner()


def write_conll(path, data, extra=""):
    lines = ["-DOCSTART- O", ""]
    for toks, tags in zip(data.tokens, data.tags):
        lines += [f"{t} {g}" for t, g in zip(toks, tags)] + [""]
    path.write_text("\n".join(lines) + extra, encoding="utf-8")
    return path


@pytest.mark.slow
def test_train_infers_ner_from_a_conll_file_then_evaluate_and_predict(tmp_path):
    data = ner_data(60)
    train = write_conll(tmp_path / "train.txt", data.subset(range(48)))
    test = write_conll(tmp_path / "test.txt", data.subset(range(48, 60)))
    res = runner.invoke(app, ["train", "--data", str(train), "--encoder", "glove-50d", "--crf", "--epochs", "12",
                              "--lr", "0.01", "--patience", "0", "--test-data", str(test), "--out", str(tmp_path / "m")])
    assert res.exit_code == 0, res.output
    report = json.loads((tmp_path / "m" / "report.json").read_text())
    assert report["micro"]["f1"] >= 0.9 and set(report["per_type"]) == {"LOC", "PER"}
    assert json.loads((tmp_path / "m" / "config.json").read_text())["task"] == "token-classification"
    res = runner.invoke(app, ["evaluate", str(tmp_path / "m"), "--data", str(test), "--conll-out",
                              str(tmp_path / "pred.conll")])
    assert res.exit_code == 0, res.output
    assert (tmp_path / "pred.conll").read_text().split("\n")[0].split() == data.tokens[48][:1] + data.tags[48][:1] * 2
    (tmp_path / "in.jsonl").write_text(json.dumps({"id": 7, "text": "In Berlin, Anna works hard."}) + "\n")
    res = runner.invoke(app, ["predict", str(tmp_path / "m"), "--input", str(tmp_path / "in.jsonl")])
    assert res.exit_code == 0, res.output
    got = json.loads(res.stdout.strip().splitlines()[-1])
    assert got["id"] == 7 and [(e["text"], e["label"]) for e in got["entities"]] == [("Berlin", "LOC"), ("Anna", "PER")]


def test_a_three_column_line_is_named_or_skipped(tmp_path):
    data = ner_data(12)
    bad = write_conll(tmp_path / "bad.txt", data, extra="\nParis B-LOC extra\nis O\n")
    res = runner.invoke(app, ["train", "--data", str(bad), "--task", "ner", "--out", str(tmp_path / "m")])
    assert res.exit_code == 2
    assert "bad.txt:line" in res.output and "column" in res.output
    res = runner.invoke(app, ["train", "--data", str(bad), "--task", "ner", "--skip-bad-rows", "--epochs", "1",
                              "--encoder", "glove-50d", "--out", str(tmp_path / "m")])
    assert res.exit_code == 0, res.output
    assert "skipped 1" in res.output and "bad.txt:line" in res.output
    assert json.loads((tmp_path / "m" / "config.json").read_text())["fit"]["n_train"] + \
        json.loads((tmp_path / "m" / "config.json").read_text())["fit"]["n_validation"] == 12


def test_i_after_o_is_reported_or_repaired_as_asked(tmp_path):
    data = ner_data(12)
    bad = write_conll(tmp_path / "iob.txt", data, extra="\nthe O\nParis I-LOC\n")
    res = runner.invoke(app, ["train", "--data", str(bad), "--scheme", "iob2", "--out", str(tmp_path / "m")])
    assert res.exit_code == 2 and "--repair-tags" in res.output and "iob.txt:line" in res.output
    res = runner.invoke(app, ["train", "--data", str(bad), "--scheme", "iob2", "--repair-tags", "--epochs", "1",
                              "--out", str(tmp_path / "m")])
    assert res.exit_code == 0, res.output
    assert "repaired 1" in res.output


def test_classification_options_are_refused_for_ner(tmp_path):
    data = write_conll(tmp_path / "t.txt", ner_data(12))
    res = runner.invoke(app, ["train", "--data", str(data), "--threshold", "f1", "--max-train", "5",
                              "--out", str(tmp_path / "m")])
    assert res.exit_code == 2 and "--max-train, --threshold" in res.output
    res = runner.invoke(app, ["train", "--data", str(data), "--metric", "accuracy", "--out", str(tmp_path / "m")])
    assert res.exit_code == 2 and "token_accuracy" in res.output


def test_ner_options_are_refused_for_classification(tmp_path):
    data = tmp_path / "t.csv"
    data.write_text("text,label\ngood film,pos\nbad film,neg\n", encoding="utf-8")
    res = runner.invoke(app, ["train", "--data", str(data), "--crf", "--context", "16", "--out", str(tmp_path / "m")])
    assert res.exit_code == 2 and "--crf, --context apply only to named-entity recognition" in res.output
    assert not (tmp_path / "m").exists()  # refused before anything is read or written


def test_predict_spans_never_reads_one_text_as_context_of_another(monkeypatch):
    from transferlab.models.tagger import TokenTagger

    seen = []
    tagger = TokenTagger("minilm", context=8)
    monkeypatch.setattr(tagger, "predict", lambda X, show_progress=False: seen.append(X) or
                        [["O"] * len(t) for t in X.tokens])
    tagger.predict_spans(["Anna lives here", "in Rome"])
    assert seen[0].documents == [0, 1]
