"""`bench ray`: every Ray row scores the same files as the one-process path and is checked against it record by
record; a row whose outputs differ is marked failed (the comparison is what makes the speed figure mean anything)."""

import json

import pytest

pytest.importorskip("ray")

from transferlab.bench import ray_scale  # noqa: E402
from transferlab.errors import ConfigError  # noqa: E402
from transferlab.models.classifier import TextClassifier  # noqa: E402

from conftest import sentiment_data, write_csv  # noqa: E402


def _outputs(folder, rows):
    folder.mkdir()
    for name, records in rows.items():
        (folder / name).write_text("".join(json.dumps(r) + "\n" for r in records))


def test_compare_catches_a_changed_label_a_score_and_a_missing_file(tmp_path):
    a = [{"id": 0, "label": "pos", "scores": {"pos": 0.9, "neg": 0.1}},
         {"id": 1, "label": "neg", "scores": {"pos": 0.2, "neg": 0.8}}]
    _outputs(tmp_path / "ref", {"x.jsonl": a, "y.jsonl": a[:1]})
    _outputs(tmp_path / "same", {"x.jsonl": a, "y.jsonl": a[:1]})
    assert ray_scale.compare(tmp_path / "ref", tmp_path / "same", 1e-4)["equal"]
    flipped = [a[0], {**a[1], "label": "pos"}]
    _outputs(tmp_path / "label", {"x.jsonl": flipped, "y.jsonl": a[:1]})
    check = ray_scale.compare(tmp_path / "ref", tmp_path / "label", 1e-4)
    assert not check["equal"] and check["same_label"] == 2 and check["records"] == 3
    drift = [a[0], {**a[1], "scores": {"pos": 0.25, "neg": 0.75}}]
    _outputs(tmp_path / "drift", {"x.jsonl": drift, "y.jsonl": a[:1]})
    check = ray_scale.compare(tmp_path / "ref", tmp_path / "drift", 1e-4)
    assert not check["equal"] and check["largest_score_difference"] == pytest.approx(0.05)
    _outputs(tmp_path / "missing", {"x.jsonl": a})
    check = ray_scale.compare(tmp_path / "ref", tmp_path / "missing", 1e-4)
    assert not check["equal"] and check["files_missing_or_different"] == ["y.jsonl"]


def test_inputs_hold_every_record_once(tmp_path):
    texts = [f"text {i}" for i in range(11)]
    paths = ray_scale.write_inputs(texts, tmp_path / "in", 3)
    ids = sorted(json.loads(line)["id"] for p in paths for line in p.read_text().splitlines())
    assert len(paths) == 3 and ids == list(range(11))


def test_rows_are_checked(tmp_path):
    with pytest.raises(ConfigError, match="ray-0"):
        ray_scale.run(tmp_path, model=tmp_path, rows=["ray-0"])


@pytest.mark.slow
def test_ray_rows_score_like_one_process(tmp_path):
    texts, labels = sentiment_data(60)
    data = write_csv(tmp_path / "data.csv", list(zip(texts, labels)))
    TextClassifier(encoder="glove-50d", head="dan", epochs=2, max_length=32, seed=0, patience=None) \
        .fit(texts, labels).save(tmp_path / "m")
    results = ray_scale.run(tmp_path / "bench", model=tmp_path / "m", data=str(data), text_col="text",
                            label_col="label", split="stratified", n_records=12, n_files=3,
                            rows=["ray-1", "ray-2"], announce=lambda m: None)
    n = results["n_records"]
    assert 0 < n <= 12
    names = [r["name"] for r in results["rows"]]
    assert names == ["one-process", "ray-1", "ray-2"]  # the reference is always run first
    for row in results["rows"]:
        assert row["status"] == "ok" and row["records"] == n and row["records_per_second"] > 0
    for row in results["rows"][1:]:
        assert row["agreement"]["equal"] and row["agreement"]["records"] == n
    assert (tmp_path / "bench" / "results.md").is_file()
