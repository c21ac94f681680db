from collections import Counter

import pytest

from transferlab.data.records import Examples
from transferlab.data.splits import SPLITS, fingerprint, parse_spec, select_split, split_examples, subsample
from transferlab.errors import ConfigError, DataError


def make(n, labels=None, **columns):
    labels = labels if labels is not None else [("a", "b", "c")[i % 3] for i in range(n)]
    return Examples(texts=[f"t{i}" for i in range(n)], labels=labels, columns=columns, source="mem.csv",
                    origins=[f"mem.csv:line {i + 2}" for i in range(n)])  # fmt: skip


def sizes(parts):
    return [len(parts[p]) for p in SPLITS]


def test_seed_protocol_and_generalised_seed():
    ex = make(10_050)
    parts = split_examples(ex, "seed")
    assert sizes(parts) == [5000, 5000, 50]
    assert parts["validation"].texts[0] == "t5000" and parts["test"].texts[-1] == "t10049"
    assert sizes(split_examples(make(30), "seed:10,25")) == [10, 15, 5]
    assert select_split(make(30), "seed:10,25:test").texts == [f"t{i}" for i in range(25, 30)]


def test_seed_needs_enough_rows():
    with pytest.raises(DataError, match="needs more than 10000 examples.*mem.csv has 10000"):
        split_examples(make(10_000), "seed")
    with pytest.raises(ConfigError, match="N1 <= N2"):
        split_examples(make(30), "seed:20,10")


def test_stratified_is_seeded_stratified_and_ordered():
    ex = make(300)
    parts = split_examples(ex, "stratified")
    assert sizes(parts) == [240, 30, 30]
    for part in parts.values():
        assert Counter(part.labels) == {lab: len(part) // 3 for lab in "abc"}
        order = [int(t[1:]) for t in part.texts]
        assert order == sorted(order)
    all_texts = sorted(t for part in parts.values() for t in part.texts)
    assert all_texts == sorted(ex.texts)
    assert split_examples(ex, "stratified:0.8,0.1,0.1")["test"].texts == parts["test"].texts
    assert split_examples(ex, "stratified", seed=1)["test"].texts != parts["test"].texts
    assert sizes(split_examples(ex, "stratified:0.9,0,0.1")) == [270, 0, 30]
    assert sizes(split_examples(ex, "stratified:0.5,0.5,0.0:validation")) == [150, 150, 0]


def test_stratified_rejects_bad_fractions_and_rare_classes():
    with pytest.raises(ConfigError, match="sum to 0.9"):
        split_examples(make(30), "stratified:0.8,0.05,0.05")
    ex = make(31, labels=["a"] * 15 + ["b"] * 15 + ["rare"])
    with pytest.raises(DataError, match="class 'rare' has only 1 example"):
        split_examples(ex, "stratified")


def test_multilabel_stratifies_by_first_label():
    ex = make(100, labels=[["x", "y"] if i % 2 else ["y"] for i in range(100)])
    ex.multilabel = True
    test = split_examples(ex, "stratified:0.8,0.1,0.1")["test"]
    assert Counter(labs[0] for labs in test.labels) == {"x": 5, "y": 5}


def test_column_split_with_aliases():
    ex = make(5, split=["train", "Dev", "TEST", "val", "valid"])
    parts = split_examples(ex, "column:split")
    assert [p.texts for p in parts.values()] == [["t0"], ["t1", "t3", "t4"], ["t2"]]
    assert select_split(ex, "column:split:validation").texts == ["t1", "t3", "t4"]
    assert select_split(make(2, test=["train", "test"]), "column:test").texts == ["t0", "t1"]
    assert split_examples(make(2, test=["train", "test"]), "column:test:test")["test"].texts == ["t1"]


def test_column_split_errors():
    with pytest.raises(DataError, match=r"mem.csv:line 3: split column 'split' holds 'holdout'"):
        split_examples(make(2, split=["train", "holdout"]), "column:split")
    with pytest.raises(DataError, match="(?s)'split' was not read.*keep_cols"):
        split_examples(make(2), "column:split")


def test_time_split_orders_by_time_with_ties_in_file_order():
    stamps = ["2021-01-05", "2021-01-01T00:00:00Z", "2021-01-03 12:00", "2021-01-01T00:00:00Z", "Jan 4 2021",
              "2021-01-02", "2021-01-06", "2021-01-07", "2021-01-08", "2021-01-09"]  # fmt: skip
    ex = make(10, created=stamps)
    parts = split_examples(ex, "time:created")
    assert sizes(parts) == [8, 1, 1]
    assert parts["test"].texts == ["t9"] and parts["validation"].texts == ["t8"]
    train = split_examples(ex, "time:created:0.2,0.3,0.5")["train"]
    assert train.texts == ["t1", "t3"]
    assert select_split(ex, "time:created:test").texts == ["t9"]


def test_time_split_rejects_unparseable_stamp():
    with pytest.raises(DataError, match=r"mem.csv:line 3: time column 'created' holds 'soon'"):
        split_examples(make(2, created=["2021-01-01", "soon"]), "time:created")


def test_none_all_and_select_without_part():
    ex = make(7)
    assert sizes(split_examples(ex, "none")) == [7, 0, 0]
    assert sizes(split_examples(ex, "all")) == [7, 0, 0]
    assert select_split(ex, "stratified") is ex
    assert len(select_split(ex, "all:validation")) == 0


@pytest.mark.parametrize("spec", ["random", "seed:1,2,3", "column", "time:", "stratified:0.8,0.2", "seed:a,b"])
def test_unknown_or_malformed_spec(spec):
    with pytest.raises(ConfigError) as err:
        split_examples(make(30), spec)
    assert spec in str(err.value)


def test_parse_spec():
    assert parse_spec("stratified:0.8,0.1,0.1:dev") == ("stratified", ["0.8,0.1,0.1"], "validation")
    assert parse_spec("time:created_at") == ("time", ["created_at"], None)
    assert parse_spec("seed") == ("seed", [], None)


def test_subsample_is_stratified_ordered_and_seeded():
    ex = make(300, labels=["a"] * 200 + ["b"] * 100)
    sub = subsample(ex, 30)
    assert len(sub) == 30 and Counter(sub.labels) == {"a": 20, "b": 10}
    order = [int(t[1:]) for t in sub.texts]
    assert order == sorted(order)
    assert subsample(ex, 30).texts == sub.texts and subsample(ex, 30, seed=2).texts != sub.texts
    assert subsample(ex, 300) is ex and subsample(ex, 1000) is ex
    unlabeled = Examples(texts=[str(i) for i in range(10)])
    assert len(subsample(unlabeled, 4)) == 4


def test_fingerprint_is_order_and_label_sensitive():
    ex = make(50)
    assert fingerprint(ex) == fingerprint(make(50))
    assert fingerprint(ex) != fingerprint(ex.subset(list(reversed(range(50)))))
    relabeled = make(50, labels=["z"] + ex.labels[1:])
    assert fingerprint(ex) != fingerprint(relabeled)
    assert fingerprint(Examples(texts=["ab", "c"])) != fingerprint(Examples(texts=["a", "bc"]))
    assert len(fingerprint(ex)) == 64


def test_time_split_at_two_dates_and_concat():
    from transferlab.data.records import Examples
    from transferlab.data.splits import split_examples
    from transferlab.errors import DataError

    stamps = ["2017-05-01", "2019-01-01T10:00:00Z", "2021-02-02", "2016-12-31", "2020-01-01"]
    ex = Examples([f"t{i}" for i in range(5)], ["a", "b", "a", "b", "a"], columns={"when": stamps})
    parts = split_examples(ex, "time:when:2018-01-01,2020-01-01")
    assert [p.texts for p in parts.values()] == [["t0", "t3"], ["t1"], ["t2", "t4"]]
    with pytest.raises(DataError, match="must come before"):
        split_examples(ex, "time:when:2020-01-01,2018-01-01")
    joined = Examples.concat(parts["test"], parts["train"])
    assert joined.texts == ["t2", "t4", "t0", "t3"] and joined.labels == ["a", "a", "a", "b"]
    assert joined.columns["when"][0] == "2021-02-02"
    with pytest.raises(DataError, match="pairs"):
        Examples.concat(ex, Examples(["x"], ["a"], pairs=["y"]))
