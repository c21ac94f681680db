"""PairScorer: each family scores and ranks text pairs, saves and loads to the same scores."""

import numpy as np
import pytest

from transferlab.errors import DataError
from transferlab.models.pairs import PairScorer


def pair_data(n=40, seed=0):
    rng = np.random.default_rng(seed)
    topics = {"overflow": "integer overflow in the shape function", "null": "null pointer dereference in the parser",
              "leak": "memory leak when closing the session", "xss": "cross-site scripting in the login page"}
    fixes = {"overflow": "check bounds before multiplying dimensions", "null": "guard against a missing node",
             "leak": "free the buffer on close", "xss": "escape the user name before rendering"}
    keys = list(topics)
    pairs, labels = [], []
    for i in range(n):
        k = keys[i % 4]
        other = keys[(i % 4 + 1 + rng.integers(3)) % 4]
        pairs += [(f"{topics[k]} case {i}", fixes[k]), (f"{topics[k]} case {i}", fixes[other])]
        labels += [1, 0]
    return pairs, labels, [topics[k] for k in keys], [fixes[k] for k in keys]


@pytest.mark.slow
@pytest.mark.parametrize("kw", [dict(encoder="glove-50d", head="dan", epochs=15, lr=5e-3, max_length=16),
                                dict(encoder="minilm", strategy="frozen"),
                                dict(encoder="minilm", strategy="contrastive", contrastive_batch_size=8),
                                dict(encoder="minilm", epochs=2, max_length=32, batch_size=8)],
                         ids=["word-vectors", "bi-frozen", "bi-contrastive", "cross"])
def test_each_family_ranks_the_matching_fix_first_and_reloads(kw, tmp_path):
    pairs, labels, queries, candidates = pair_data()
    scorer = PairScorer(**kw, seed=0, patience=None).fit(pairs, labels)
    scores = scorer.rank(queries, candidates)
    assert scores.shape == (4, 4)
    assert (scores.argmax(1) == np.arange(4)).mean() >= 0.75
    scorer.choose_threshold(pairs[:16], labels[:16])
    scorer.save(tmp_path)
    again = PairScorer.load(tmp_path)
    np.testing.assert_allclose(again.rank(queries, candidates), scores, atol=1e-5)
    assert again.threshold_ == scorer.threshold_
    edge = again.predict_proba([("", ""), ("overflow " * 11_000, "fix " * 25_000)])  # empty; ~100k characters
    assert edge.shape == (2,) and np.isfinite(edge).all()


def test_bad_pairs_and_labels_are_named():
    with pytest.raises(DataError, match="pair 1"):
        PairScorer("glove-50d").fit([("a", "b"), ("only one",)], [1, 0])
    with pytest.raises(DataError, match="all the same"):
        PairScorer("glove-50d").fit([("a", "b"), ("c", "d")], [1, 1])
    with pytest.raises(DataError, match="yes/no"):
        PairScorer("glove-50d").fit([("a", "b"), ("c", "d")], [1, "maybe"])


def test_a_pair_file_with_one_side_empty_is_named_or_skipped(tmp_path):
    from transferlab.data.readers import read_examples

    f = tmp_path / "pairs.csv"
    f.write_text("a,b,label\nheap overflow,fix bounds,1\nnull deref,,0\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"pairs.csv:line 3.*empty text in column 'b'"):
        read_examples(str(f), text_col="a", pair_col="b", label_col="label")
    ex, report = read_examples(str(f), text_col="a", pair_col="b", label_col="label", skip_bad_rows=True)
    assert len(ex) == 1 and len(report.skipped) == 1 and "line 3" in report.skipped[0][0]


class _SaturatedClassifier:
    """A pair classifier so sure of every match that P(match) rounds to 1.0 in float32 (logit margins 20..40)."""

    labels_ = ["0", "1"]
    margins = {"fix a": 40.0, "fix b": 20.0, "fix c": 30.0}

    def decision_function(self, pairs):
        return np.array([[0.0, self.margins[b.strip()]] for _, b in pairs], np.float32)

    def predict_proba(self, pairs):
        z = self.decision_function(pairs)
        e = np.exp(z - z.max(1, keepdims=True))
        return (e / e.sum(1, keepdims=True)).astype(np.float32)


def _saturated_scorer():
    scorer = PairScorer("minilm", epochs=1)
    scorer._resolve_configs()
    scorer.classifier_ = _SaturatedClassifier()
    return scorer


def test_cross_scores_rank_by_logit_margin_where_probabilities_tie():
    scorer = _saturated_scorer()
    candidates = ["fix a", "fix b", "fix c"]
    assert (scorer.predict_proba([("q", c) for c in candidates]) == 1.0).all()  # ties: useless for ranking
    scores = scorer.rank(["q"], candidates)[0]
    assert list(np.argsort(-scores)) == [0, 2, 1]
    np.testing.assert_allclose(scores, [40.0, 20.0, 30.0])


def test_disclosure_compares_the_best_pair_on_the_threshold_scale():
    from transferlab.vuln.advisories import Advisory
    from transferlab.vuln.disclosure import DisclosureCheck

    advisories = [Advisory(id=f"GHSA-{c}", aliases=[], summary="", packages=[], references=[], details=c)
                  for c in ("fix b", "fix a")]
    check = DisclosureCheck(_saturated_scorer(), threshold=0.9, source="test")
    adv, score = check.best({"title": "q", "body": ""}, advisories)
    assert adv.id == "GHSA-fix a" and score == pytest.approx(1.0)  # a probability, not the margin 40
