"""`bench few-shot`: the same draws for both methods, mean ± sd over seeds, a verdict at the target size."""

import json

import pytest

from transferlab.bench import fewshot
from transferlab.data.records import Examples
from transferlab.errors import DataError

from conftest import sentiment_data


def test_draw_is_k_per_class_seeded_and_refuses_small_classes():
    texts, labels = sentiment_data(40)
    ex = Examples(texts, labels)
    a, b = fewshot.draw(ex, 4, seed=1), fewshot.draw(ex, 4, seed=1)
    assert a.texts == b.texts and sorted(a.labels) == ["negative"] * 4 + ["positive"] * 4
    assert fewshot.draw(ex, 4, seed=2).texts != a.texts
    with pytest.raises(DataError, match="fewer than 30 per class"):
        fewshot.draw(ex, 30, seed=0)


def test_summary_and_verdict():
    results = {"runs": [{"method": "ours (contrastive)", "per_class": 16, "seed": s, "accuracy": a,
                         "train_seconds": 1.0} for s, a in enumerate([0.80, 0.84])]
               + [{"method": "SetFit library", "per_class": 16, "seed": s, "accuracy": a, "train_seconds": 2.0}
                  for s, a in enumerate([0.79, 0.83])]}
    rows = {r["method"]: r for r in fewshot.summary(results)}
    assert rows["ours (contrastive)"]["mean"] == pytest.approx(0.82)
    assert rows["ours (contrastive)"]["std"] == pytest.approx(0.0283, abs=1e-3)
    assert [v["status"] for v in fewshot.verdict(results, 16)] == ["met"]
    assert fewshot.verdict(results, 8)[0]["status"] == "not judged"
    results["runs"] += [{"method": fewshot.ours_name("head+tail"), "per_class": 16, "seed": s, "accuracy": a,
                         "train_seconds": 1.0} for s, a in enumerate([0.78, 0.80])]
    by_method = {v["method"]: v["status"] for v in fewshot.verdict(results, 16)}
    assert by_method == {"ours (contrastive)": "met", "ours (contrastive, head+tail)": "not met"}


@pytest.mark.slow
def test_few_shot_curve_end_to_end(tmp_path):
    texts, labels = sentiment_data(60)
    parts = {"train": Examples(texts[:40], labels[:40]), "validation": Examples([], []),
             "test": Examples(texts[40:], labels[40:])}
    res = fewshot.run(parts, tmp_path, sizes=[3], seeds=2, max_length=24, target_size=3, full=True)
    methods = {(r["method"], r["seed"]) for r in res["runs"]}
    assert {("ours (contrastive)", 0), ("ours (contrastive)", 1), ("SetFit library", 0), ("SetFit library", 1),
            ("ours (frozen, all labels)", 0)} == methods
    assert all(0.0 <= r["accuracy"] <= 1.0 for r in res["runs"])
    assert res["target"][0]["status"] in ("met", "not met")
    saved = json.loads((tmp_path / "results.json").read_text())
    assert saved["target"] == res["target"] and "± " in (tmp_path / "results.md").read_text()
    assert (tmp_path / "learning_curve.png").stat().st_size > 5000
    # a second run into the folder adds a variant and a size, and keeps (does not redo) the earlier runs
    more = fewshot.run(parts, tmp_path, sizes=[2, 3], seeds=1, max_length=24, target_size=3, peer=False,
                       truncations=("head+tail",))
    assert [r for r in more["runs"] if r["method"] != "ours (contrastive, head+tail)"] == res["runs"]
    assert {(r["per_class"], r["seed"]) for r in more["runs"] if r["method"].endswith("head+tail)")} == {(2, 0), (3, 0)}
    assert more["sizes"] == [2, 3] and len(more["target"]) == 2
    with pytest.raises(DataError, match="truncation"):
        fewshot.run(parts, tmp_path, sizes=[3], seeds=1, truncations=("tail",))
