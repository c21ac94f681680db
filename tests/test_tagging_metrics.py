"""Entity-level tagging metrics, checked against numbers worked out by hand from the conlleval definition."""

from __future__ import annotations

import random
import warnings

import pytest
from seqeval.metrics import classification_report
from seqeval.scheme import IOB2

from transferlab.errors import ConfigError, DataError
from transferlab.evaluation.tagging import confusion_table, entity_report, format_report, plot_confusion

# Chunks, as (type, first token, last token):
#   sentence 0  gold PER(0-1) LOC(3)        pred PER(0-1) LOC(3)       -> both right
#   sentence 1  gold ORG(0)                 pred LOC(0)                -> right span, wrong type
#   sentence 2  gold MISC(0-1)              pred "I-MISC I-MISC": conlleval reads MISC(0-1) (right);
#                                           strict IOB2 rejects a chunk that opens with I-, so no entity
GOLD = [["B-PER", "I-PER", "O", "B-LOC"], ["B-ORG", "O"], ["B-MISC", "I-MISC", "O"]]
PRED = [["B-PER", "I-PER", "O", "B-LOC"], ["B-LOC", "O"], ["I-MISC", "I-MISC", "O"]]


def _close(row: dict, precision: float, recall: float, f1: float, support: int) -> None:
    assert row["precision"] == pytest.approx(precision)
    assert row["recall"] == pytest.approx(recall)
    assert row["f1"] == pytest.approx(f1)
    assert row["support"] == support


def test_three_gold_three_predicted_two_exact():
    # gold PER, LOC, ORG; predicted PER, LOC, LOC; PER and LOC in sentence 0 match exactly.
    report = entity_report(GOLD[:2], PRED[:2])
    _close(report["micro"], 2 / 3, 2 / 3, 2 / 3, 3)
    assert report["conlleval_f1"] == pytest.approx(2 / 3)  # no ill-formed chunk, so both readings agree


def test_strict_and_conlleval_differ_on_an_entity_opened_with_i():
    report = entity_report(GOLD, PRED)
    # conlleval: 4 gold, 4 predicted, 3 correct (PER, LOC, MISC) -> 3/4 everywhere.
    _close(report["conlleval"], 3 / 4, 3 / 4, 3 / 4, 4)
    assert report["conlleval_f1"] == pytest.approx(3 / 4)
    # strict: 4 gold, 3 predicted (PER, LOC, LOC), 2 correct -> P 2/3, R 2/4, F1 2PR/(P+R) = 4/7.
    _close(report["micro"], 2 / 3, 1 / 2, 4 / 7, 4)


def test_per_type_macro_and_token_accuracy():
    report = entity_report(GOLD, PRED)
    per = report["per_type"]
    assert list(per) == ["LOC", "MISC", "ORG", "PER"]
    _close(per["LOC"], 1 / 2, 1.0, 2 / 3, 1)  # predicted twice (sentences 0 and 1), right once
    _close(per["MISC"], 0.0, 0.0, 0.0, 1)
    _close(per["ORG"], 0.0, 0.0, 0.0, 1)
    _close(per["PER"], 1.0, 1.0, 1.0, 1)
    assert report["macro_f1"] == pytest.approx((2 / 3 + 0 + 0 + 1) / 4)
    assert report["token_accuracy"] == pytest.approx(7 / 9)  # wrong: sentence 1 token 0, sentence 2 token 0
    assert report["n_sentences"] == 3 and report["n_tokens"] == 9
    assert all(type(v) is float for row in per.values() for k, v in row.items() if k != "support")


def test_numbers_agree_with_seqevals_own_report_on_messy_predictions():
    rng = random.Random(0)
    tags = ["O"] * 4 + ["B-PER", "I-PER", "B-LOC", "I-LOC", "B-ORG", "I-ORG"]
    gold = [[rng.choice(tags) for _ in range(rng.randint(0, 12))] for _ in range(300)]
    gold = [["B" + t[1:] if t.startswith("I-") and (i == 0 or s[i - 1][2:] != t[2:]) else t
             for i, t in enumerate(s)] for s in gold]  # well-formed gold, as a dataset has
    pred = [[t if rng.random() < 0.8 else rng.choice(tags) for t in s] for s in gold]  # many ill-formed
    report = entity_report(gold, pred)
    readings = (("strict", "micro", {"mode": "strict", "scheme": IOB2}), ("default", "conlleval", {}))
    for mode, key, kwargs in readings:
        ref = classification_report(gold, pred, output_dict=True, zero_division=0, **kwargs)
        _close(report[key], ref["micro avg"]["precision"], ref["micro avg"]["recall"],
               ref["micro avg"]["f1-score"], ref["micro avg"]["support"])
        if mode == "strict":
            assert report["macro_f1"] == pytest.approx(ref["macro avg"]["f1-score"])
            for kind, row in report["per_type"].items():
                ref_row = ref[kind]
                _close(row, ref_row["precision"], ref_row["recall"], ref_row["f1-score"], ref_row["support"])
    # The ill-formed predictions do separate the two readings (either can come out higher).
    assert report["micro"]["f1"] != pytest.approx(report["conlleval_f1"])


def test_confusion_table_counts_boundary_missed_and_spurious():
    gold = [["B-PER", "I-PER", "O", "B-LOC", "O", "B-ORG", "I-ORG", "O", "O", "B-PER"],
            ["B-LOC", "B-LOC", "O"],
            ["O", "O"]]
    pred = [["B-PER", "I-PER", "O", "B-ORG", "O", "B-ORG", "O", "O", "B-LOC", "O"],
            ["B-LOC", "I-LOC", "O"],
            ["B-PER", "I-PER"]]
    # sentence 0: PER(0-1) exact; LOC(3) predicted ORG on the same span; ORG(5-6) predicted ORG(5) -> boundary;
    #             PER(9) untouched -> missed; predicted LOC(8) overlaps no gold entity -> spurious LOC.
    # sentence 1: one predicted LOC(0-1) spans two gold LOCs -> both boundary, and it is not spurious.
    # sentence 2: predicted PER(0-1) has the offsets of sentence 0's PER but another sentence -> spurious PER.
    table = confusion_table(gold, pred)
    assert table["types"] == ["LOC", "ORG", "PER"]
    assert table["columns"] == ["LOC", "ORG", "PER", "boundary", "missed"]
    assert table["rows"] == {
        "LOC": {"LOC": 0, "ORG": 1, "PER": 0, "boundary": 2, "missed": 0},
        "ORG": {"LOC": 0, "ORG": 0, "PER": 0, "boundary": 1, "missed": 0},
        "PER": {"LOC": 0, "ORG": 0, "PER": 1, "boundary": 0, "missed": 1},
    }
    assert table["spurious"] == {"LOC": 1, "ORG": 0, "PER": 1}
    report = entity_report(gold, pred)
    for kind, row in table["rows"].items():
        assert sum(row.values()) == report["per_type"][kind]["support"]


def test_confusion_uses_strict_entities():
    # The predicted "I-MISC I-MISC" is no entity under strict IOB2, so gold MISC is missed, not matched.
    table = confusion_table(GOLD, PRED)
    assert table["rows"]["MISC"]["missed"] == 1 and table["rows"]["MISC"]["MISC"] == 0
    assert table["rows"]["ORG"]["LOC"] == 1


def test_empty_input():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        report = entity_report([], [])
        text = format_report(report)
    _close(report["micro"], 0.0, 0.0, 0.0, 0)
    assert report["conlleval_f1"] == 0.0 and report["macro_f1"] == 0.0 and report["token_accuracy"] == 0.0
    assert report["per_type"] == {} and report["n_sentences"] == 0
    assert report["confusion"] == {"types": [], "columns": ["boundary", "missed"], "rows": {}, "spurious": {}}
    assert "no entities" in text


def test_all_o_sentences_give_zero_without_warnings():
    gold = [["O", "O", "O"], ["O"]]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # seqeval's macro average warns "Mean of empty slice" here by default
        report = entity_report(gold, [list(s) for s in gold])
        format_report(report)
    _close(report["micro"], 0.0, 0.0, 0.0, 0)
    assert report["conlleval_f1"] == 0.0 and report["macro_f1"] == 0.0
    assert report["token_accuracy"] == 1.0 and report["per_type"] == {}


def test_spurious_only_predictions_have_zero_precision_without_warnings():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        report = entity_report([["O", "O"]], [["B-PER", "O"]])
    _close(report["micro"], 0.0, 0.0, 0.0, 0)
    _close(report["per_type"]["PER"], 0.0, 0.0, 0.0, 0)
    assert report["confusion"]["spurious"] == {"PER": 1}


def test_mismatched_lengths_name_the_sentence():
    with pytest.raises(ValueError, match="sentence 1: 2 gold tags but 1 predicted"):
        entity_report([["O"], ["O", "O"]], [["O"], ["O"]])
    with pytest.raises(ValueError, match="2 gold sentences but 1 predicted"):
        confusion_table([["O"], ["O"]], [["O"]])


def test_bad_tags_and_schemes_are_user_errors():
    with pytest.raises(DataError) as err:
        entity_report([["O", "PER"]], [["O", "O"]])
    assert err.value.where == "gold sentence 0, token 1"
    with pytest.raises(DataError, match="'S-PER'"):
        entity_report([["O"]], [["S-PER"]])  # S- belongs to IOBES, not IOB2
    with pytest.raises(ConfigError, match="unknown tagging scheme"):
        entity_report([["O"]], [["O"]], scheme="bio")


def test_other_schemes_and_tuple_input():
    gold = [("S-PER", "O", "B-LOC", "E-LOC")]
    pred = [("S-PER", "O", "B-LOC", "I-LOC")]  # the LOC never closes with E-, so strict IOBES drops it
    report = entity_report(gold, pred, scheme="iobes")
    _close(report["micro"], 1.0, 1 / 2, 2 / 3, 2)


def test_format_report_lists_types_and_averages():
    text = format_report(entity_report(GOLD, PRED))
    lines = text.splitlines()
    loc = next(line for line in lines if line.startswith("LOC"))
    assert loc.split() == ["LOC", "0.5000", "1.0000", "0.6667", "1"]
    micro = next(line for line in lines if line.startswith("micro avg"))
    assert micro.split()[2:] == ["0.6667", "0.5000", "0.5714", "4"]
    assert "conlleval f1 (lenient): 0.7500" in text


@pytest.mark.parametrize("gold,pred", [(GOLD, PRED), ([["O"]], [["O"]])])
def test_plot_confusion_writes_a_png(tmp_path, gold, pred):
    out = plot_confusion(confusion_table(gold, pred), tmp_path / "plots" / "confusion.png")
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
