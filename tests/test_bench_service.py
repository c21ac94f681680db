"""`transferlab bench service` on a tiny model for a few seconds: every row runs against a real server, counts its
requests and errors, and micro-batching merges concurrent requests (more than one text per forward pass) where
batch-of-one does not."""

import json

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("httpx")

from conftest import sentiment_data  # noqa: E402


@pytest.mark.slow
def test_service_bench_runs_every_row_without_errors(tmp_path, imdb_path):
    from transferlab.bench import service
    from transferlab.models.classifier import TextClassifier

    texts, labels = sentiment_data(40)
    TextClassifier("glove-50d", "dan", epochs=1, max_length=32, seed=0, patience=None).fit(texts, labels).save(
        tmp_path / "m")
    res = service.run(tmp_path / "out", model=tmp_path / "m", clients=8, seconds=3, data=str(imdb_path),
                      announce=lambda m: None)
    rows = {r["name"]: r for r in res["rows"]}
    assert list(rows) == list(service.ROWS)
    for r in rows.values():
        assert r["requests"] > 0 and r["errors"] == 0 and r["statuses"] == {"200": r["requests"]}
        assert r["p50_ms"] <= r["p99_ms"]
    assert rows["classify-batch-of-one"]["texts_per_forward_pass"] == 1.0
    assert rows["classify"]["texts_per_forward_pass"] > 1.0  # concurrent requests shared passes
    assert rows["classify"]["runtime"] == "torch"  # a word-vector model without an export: what served it is said
    assert res["micro_batching_gain"] == pytest.approx(rows["classify"]["requests_per_second"]
                                                       / rows["classify-batch-of-one"]["requests_per_second"],
                                                       abs=0.01)
    saved = json.loads((tmp_path / "out" / "results.json").read_text())
    assert saved["clients"] == 8 and "Micro-batching gain" in (tmp_path / "out" / "results.md").read_text()
