"""The VulCurator ranking benchmark: lexical rows end to end on the real data, and rank fusion by hand."""

import json

import numpy as np

from transferlab.bench import vulcurator


def test_rank_fusion_sums_reciprocal_ranks():
    a = np.array([[3.0, 2.0, 1.0]])  # ranks 1, 2, 3
    b = np.array([[1.0, 3.0, 2.0]])  # ranks 3, 1, 2
    fused = vulcurator._fused([a, b], k=0)
    np.testing.assert_allclose(fused, [[1 + 1 / 3, 1 / 2 + 1, 1 / 3 + 1 / 2]])
    assert list(np.argsort(-fused[0])) == [1, 0, 2]


def test_first_ranked_tells_a_scorer_that_ignores_the_query():
    messages = ["fix a", "fix b", "fix a", "fix c"]
    reads_query = np.eye(4)[[1, 3, 0]]  # each query its own first commit
    ignores_query = np.tile([0.1, 0.2, 0.9, 0.3], (3, 1))
    got = vulcurator.first_ranked(reads_query, messages)
    assert got["distinct_commits"] == 3 and got["distinct_messages"] == 3 and got["most_common_share"] == 0.3333
    bad = vulcurator.first_ranked(ignores_query, messages)
    assert bad == {"distinct_commits": 1, "distinct_messages": 1, "most_common_share": 1.0,
                   "most_common_message": "fix a"}


def test_lexical_rows_run_on_the_real_split_and_merge(tmp_path):
    out = tmp_path / "v"
    first = vulcurator.run("../shared/data/security/vulcurator", out, rows=["bm25"], announce=lambda m: None)
    assert first["n"]["candidates"] == 294 and first["n"]["test"] + first["n"]["val"] + first["n"]["train"] == 260
    vulcurator.run("../shared/data/security/vulcurator", out, rows=["tfidf"], announce=lambda m: None)
    rows = {r["name"]: r for r in json.loads((out / "results.json").read_text())["rows"]}
    assert set(rows) == {"bm25", "tfidf"}
    for r in rows.values():  # far above chance (MRR of a random order over 294 commits is about 0.02)
        assert r["status"] == "ok" and r["mrr"] > 0.2 and r["recall@1"] <= r["recall@5"] <= r["recall@10"] <= 1
        assert len(r["ranks"]) == first["n"]["test"] and r["first_ranked"]["distinct_messages"] > 10
        saved = np.load(out / "rows" / r["name"] / "test_scores.npy", allow_pickle=False)
        assert saved.shape == (first["n"]["test"], 294)
    assert "| bm25 (peer) |" in (out / "results.md").read_text() and (out / "recall_at_k.png").exists()
    assert not (out / "disclosure_threshold.json").exists()  # only the frozen-MiniLM row chooses it
