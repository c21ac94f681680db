import json

import matplotlib.image as mpimg
import numpy as np
import pytest

from transferlab.errors import DataError
from transferlab.evaluation.metrics import classification_report, format_report
from transferlab.evaluation.plots import plot_confusion, plot_curves

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _one_hot_proba(pred_idx, k, hi=0.8):
    proba = np.full((len(pred_idx), k), (1 - hi) / (k - 1))
    proba[np.arange(len(pred_idx)), pred_idx] = hi
    return proba


def test_perfect_binary():
    y = ["neg", "pos", "pos", "neg"]
    proba = np.array([[0.9, 0.1], [0.2, 0.8], [0.3, 0.7], [0.6, 0.4]])
    rep = classification_report(y, proba, ["neg", "pos"])
    assert rep["n"] == 4
    assert rep["accuracy"] == 1.0
    assert rep["macro_f1"] == rep["micro_f1"] == rep["weighted_f1"] == 1.0
    assert rep["roc_auc"] == 1.0 and rep["pr_auc"] == 1.0
    assert rep["confusion_matrix"] == {"labels": ["neg", "pos"], "matrix": [[2, 0], [0, 2]]}
    assert rep["per_class"]["pos"] == {"precision": 1.0, "recall": 1.0, "f1": 1.0, "support": 2}
    assert rep["log_loss"] == pytest.approx(-np.mean(np.log([0.9, 0.8, 0.7, 0.6])))


def test_three_class_by_hand():
    labels = ["a", "b", "c"]
    y = ["a", "a", "b", "b", "c", "c"]
    pred = [0, 1, 1, 1, 2, 0]
    rep = classification_report(y, _one_hot_proba(pred, 3), labels)
    # a: tp1 fp1 fn1 -> f1 .5;  b: tp2 fp1 fn0 -> p 2/3, r 1, f1 .8;  c: tp1 fp0 fn1 -> f1 2/3
    f1 = {"a": 0.5, "b": 2 * (2 / 3) * 1 / (2 / 3 + 1), "c": 2 * 1 * 0.5 / 1.5}
    assert rep["macro_f1"] == pytest.approx(sum(f1.values()) / 3)
    assert rep["micro_f1"] == pytest.approx(4 / 6)
    assert rep["accuracy"] == pytest.approx(4 / 6)
    assert rep["weighted_f1"] == pytest.approx(sum(f1.values()) / 3)  # equal supports
    assert rep["per_class"]["b"]["precision"] == pytest.approx(2 / 3)
    assert rep["per_class"]["c"]["recall"] == pytest.approx(0.5)
    assert rep["confusion_matrix"]["matrix"] == [[1, 1, 0], [0, 2, 0], [1, 0, 1]]
    assert set(rep["roc_auc_per_class"]) == set(labels)
    assert rep["roc_auc"] == pytest.approx(np.mean(list(rep["roc_auc_per_class"].values())))


def test_unseen_label_raises():
    proba = _one_hot_proba([0, 1, 0], 2)
    with pytest.raises(DataError) as err:
        classification_report(["a", "spam", "spam"], proba, ["a", "b"])
    msg = str(err.value)
    assert "'spam'" in msg and "2 row" in msg
    assert "['a', 'b']" in msg and "retrain" in msg


def test_unseen_label_multilabel_raises():
    with pytest.raises(DataError, match="'q'"):
        classification_report([["a"], ["a", "q"]], np.full((2, 2), 0.5), ["a", "b"], multilabel=True)


def test_class_missing_from_truth_gives_none_auc():
    labels = ["a", "b", "c"]
    y = ["a", "b", "a", "b"]
    proba = np.array([[0.7, 0.2, 0.1], [0.2, 0.6, 0.2], [0.5, 0.1, 0.4], [0.3, 0.3, 0.4]])
    rep = classification_report(y, proba, labels)
    assert rep["roc_auc_per_class"]["c"] is None
    assert rep["pr_auc_per_class"]["c"] is None
    defined = [rep["roc_auc_per_class"][c] for c in "ab"]
    assert None not in defined
    assert rep["roc_auc"] == pytest.approx(np.mean(defined))
    assert rep["per_class"]["c"]["support"] == 0
    json.dumps(rep)


def test_binary_single_class_truth_does_not_crash():
    rep = classification_report(["pos", "pos"], np.array([[0.4, 0.6], [0.3, 0.7]]), ["neg", "pos"])
    assert rep["roc_auc"] is None
    assert rep["pr_auc"] == 1.0


def test_multilabel_thresholds():
    labels = ["x", "y", "z"]
    y = [["x"], ["x", "y"], [], ["z"]]
    proba = np.array([[0.9, 0.4, 0.1], [0.6, 0.35, 0.2], [0.2, 0.1, 0.1], [0.1, 0.2, 0.45]])
    hi = classification_report(y, proba, labels, multilabel=True)
    lo = classification_report(y, proba, labels, multilabel=True, threshold=0.3)
    assert hi["accuracy"] == 0.5  # rows 1 and 3 exact
    assert lo["accuracy"] == 0.75  # row 1 gains a wrong "y"
    assert hi["per_class"]["y"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 1}
    assert lo["per_class"]["y"]["precision"] == 0.5 and lo["per_class"]["y"]["recall"] == 1.0
    assert hi["confusion_matrix"]["x"]["matrix"] == [[2, 0], [0, 2]]
    assert hi["roc_auc_per_class"]["x"] == 1.0
    assert hi["roc_auc"] == pytest.approx(np.mean(list(hi["roc_auc_per_class"].values())))
    assert hi["log_loss"] is None and lo["threshold"] == 0.3


def test_report_is_json_and_formats():
    labels = ["a", "b", "c"]
    rep = classification_report(["a", "b", "b"], _one_hot_proba([0, 1, 2], 3), labels)
    back = json.loads(json.dumps(rep, allow_nan=False))
    assert back == rep
    text = format_report(rep)
    assert "accuracy" in text and "confusion" in text
    assert all(lab in text for lab in labels)
    ml = classification_report([["a"], []], np.array([[0.9, 0.1, 0.2], [0.1, 0.2, 0.3]]), labels,
                               multilabel=True)
    json.dumps(ml, allow_nan=False)
    assert "tn fp" in format_report(ml)


def test_empty_input_reports_none():
    rep = classification_report([], np.zeros((0, 2)), ["a", "b"])
    assert rep["n"] == 0 and rep["accuracy"] is None
    format_report(rep)


def _assert_png(path, min_side=200):
    assert path.exists()
    assert path.read_bytes()[:8] == PNG_MAGIC
    img = mpimg.imread(path)
    assert img.shape[0] >= min_side and img.shape[1] >= min_side
    assert img.std() > 0  # not a blank canvas


def test_plot_curves(tmp_path):
    history = [
        {"epoch": 1, "step": 10, "train_loss": 0.7, "val_loss": 0.6, "val_accuracy": 0.6, "val_macro_f1": 0.55},
        {"epoch": 2, "step": 20, "train_loss": 0.5, "val_loss": 0.45, "val_accuracy": 0.75, "best": True},
        {"epoch": 3, "step": 30, "train_loss": 0.4, "val_accuracy": 0.74, "lr": 1e-5},
    ]
    out = plot_curves(history, tmp_path / "sub" / "curves.png")
    assert out == tmp_path / "sub" / "curves.png"
    _assert_png(out)


def test_plot_curves_single_epoch(tmp_path):
    out = plot_curves([{"epoch": 1, "train_loss": 0.69}], tmp_path / "one.png")
    _assert_png(out)


def test_plot_confusion(tmp_path):
    _assert_png(plot_confusion([[5, 1], [0, 3]], ["neg", "pos"], tmp_path / "cm.png"))
    k = 20
    rng = np.random.default_rng(0)
    matrix = rng.integers(0, 30, size=(k, k))
    matrix[3] = 0  # a class with no true rows must not divide by zero
    out = plot_confusion(matrix, [f"label_{i}" for i in range(k)], tmp_path / "cm20.png", title="20 labels")
    _assert_png(out, min_side=500)
